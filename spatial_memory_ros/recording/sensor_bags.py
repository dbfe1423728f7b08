"""A robot's sensor bag without ROS (rosbags only): write one (camera image + CameraInfo, LaserScan, depth image,
odometry; what ``spatial-memory record --adaptation`` records from a live robot) and read one back as camera-BEV
training pairs (perception/self_supervised.py).

Reading (:func:`read_pairs`) finds the topics (by the names the nodes use, ``camera/image_raw``,
``camera/camera_info``, ``scan``, ``camera/depth``, under any one namespace, or as given), decodes every message
with the bag's own types, pairs each camera frame with the sensor message nearest in header stamp within a
tolerance, and turns the sensor message into a BEV on the model's grid. A bag without the needed topics, without a
usable CameraInfo, or whose stamps never come within the tolerance is refused (:class:`AdaptationDataError`) with a
message that names what is missing and what the bag holds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from spatial_memory_ros.perception.self_supervised import (DEFAULT_TOLERANCE, AdaptationDataError, AdaptationSet,
                                                           Pairing, label_mask, pair_by_stamp)
from spatial_memory_ros.recording.bags import BagError, BagReader, BagWriter, make_qos
from spatial_memory_ros.types import GridGeometry, Pose2D

IMAGE, INFO, SCAN, DEPTH, ODOM = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/LaserScan",
                                  "sensor_msgs/msg/Image", "nav_msgs/msg/Odometry")
TOPIC_SUFFIXES = {"image": ("camera/image_raw", IMAGE), "info": ("camera/camera_info", INFO),
                  "scan": ("scan", SCAN), "depth": ("camera/depth", DEPTH)}
"""Default topic of each role (after the robot's namespace) and its type: the names sim_world and
geometric_bev use."""
RGB_ENCODINGS = {"rgb8": (3, (0, 1, 2)), "bgr8": (3, (2, 1, 0)), "rgba8": (4, (0, 1, 2)), "bgra8": (4, (2, 1, 0))}


@dataclass(frozen=True)
class LabelSensor:
    """Where the labelling sensor sits and how its BEV is made: ``labels`` 'scan' or 'depth'; ``scan_mount``
    the scan frame's pose on the robot; the depth camera's ``camera_height`` / ``camera_pitch`` (down, rad) /
    ``camera_forward`` (the depth image is the camera's own: its intrinsics come from its CameraInfo);
    depth points below ``floor_height`` are floor, above ``max_height`` ignored; cells beyond ``max_range``
    unseen."""

    labels: str = "scan"
    scan_mount: Pose2D = field(default_factory=lambda: Pose2D(0.0, 0.0, 0.0))
    camera_height: float = 0.5
    camera_pitch: float = 0.0
    camera_forward: float = 0.0
    floor_height: float = 0.1
    max_height: float = 2.0
    max_range: float = 8.0

    def __post_init__(self) -> None:
        if self.labels not in ("scan", "depth"):
            raise ValueError(f"labels must be 'scan' or 'depth', got {self.labels!r}")


@dataclass
class BagPairs:
    """What :func:`read_pairs` made of a bag: the pairs, the camera's intrinsics (width, height, fx, fy, cx, cy),
    the topics used, how the stamps paired and how many messages were refused (and why)."""

    pairs: AdaptationSet
    intrinsics: tuple[int, int, float, float, float, float]
    topics: dict[str, str]
    pairing: Pairing
    counts: dict[str, int]
    refused: dict[str, int] = field(default_factory=dict)


def find_topics(available: dict[str, str], labels: str, namespace: str | None = None,
                given: dict[str, str] | None = None) -> dict[str, str]:
    """The topic of each role needed for ``labels`` ('scan': image, info, scan; 'depth': image, info, depth) from
    ``available`` (topic -> type). ``given`` names some roles' topics outright; the rest are found by their
    default names under ``namespace`` (or any one namespace). AdaptationDataError naming what is missing or
    ambiguous, and what the bag holds."""
    roles = ("image", "info", labels)
    given = {role: topic for role, topic in (given or {}).items() if topic}
    found = {}
    holds = ", ".join(f"{t} ({m.rsplit('/', 1)[-1]})" for t, m in sorted(available.items())) or "nothing"
    for role in roles:
        suffix, msgtype = TOPIC_SUFFIXES[role]
        if role in given:
            topic = given[role] if given[role].startswith("/") else f"/{given[role]}"
            if topic not in available:
                raise AdaptationDataError(f"the bag has no {topic} (given for the {role}); it holds: {holds}")
            if available[topic] != msgtype:
                raise AdaptationDataError(f"{topic} is {available[topic]}, the {role} must be {msgtype}")
            found[role] = topic
            continue
        prefix = "/" + namespace.strip("/") + "/" if namespace and namespace.strip("/") else "/"
        candidates = sorted(t for t, m in available.items()
                            if m == msgtype and (t == prefix + suffix or (namespace is None and
                                                                          t.endswith("/" + suffix))))
        if not candidates:
            raise AdaptationDataError(f"the bag has no {role} topic ({prefix if namespace else '.../'}{suffix}, "
                                      f"{msgtype}) needed for --labels {labels}; it holds: {holds}")
        if len(candidates) > 1:
            raise AdaptationDataError(f"the bag has several {role} topics ({', '.join(candidates)}): choose one "
                                      f"robot with --namespace or name the topic")
        found[role] = candidates[0]
    return found


def read_pairs(path: Path | str, sensor: LabelSensor, grid: GridGeometry, tolerance: float = DEFAULT_TOLERANCE,
               namespace: str | None = None, topics: dict[str, str] | None = None,
               image_transform: Callable[[np.ndarray, tuple], np.ndarray] | None = None,
               stride: int = 1) -> BagPairs:
    """Camera frames of the bag at ``path`` paired with geometric BEVs (on ``grid``, the model's) from its scan or
    depth images (see the module docstring). ``image_transform(rgb, intrinsics)``: applied to each camera image
    as it is read (e.g. re-projected to the model's camera, which bounds memory); ``stride``: keep every n-th
    pair. BagError for an unreadable bag; AdaptationDataError for missing topics, no usable CameraInfo, or no
    pair within ``tolerance``."""
    from spatial_memory_ros.perception.depth_bev import DepthCamera, depth_to_bev, mount_transform
    from spatial_memory_ros.perception.scan_bev import scan_to_bev

    refused: dict[str, int] = {}

    def refuse(reason: str) -> None:
        refused[reason] = refused.get(reason, 0) + 1

    with BagReader(path) as reader:
        roles = find_topics({name: t.msgtype for name, t in reader.topics.items()}, sensor.labels, namespace,
                            topics)
        by_topic = {topic: role for role, topic in roles.items()}
        images: list[tuple[float, object]] = []
        labels: list[tuple[float, object]] = []
        intrinsics = None
        for message in reader.messages(set(roles.values())):
            role = by_topic[message.topic]
            msg = reader.deserialize(message)
            if role == "info":
                try:
                    current = camera_info_intrinsics(msg)
                except ValueError as error:
                    refuse(f"camera_info: {error}")
                    continue
                if intrinsics is not None and current != intrinsics:
                    raise AdaptationDataError(f"the camera's CameraInfo changed during the recording ({intrinsics} "
                                              f"then {current}): record one camera setting per bag")
                intrinsics = current
            elif role == "image":
                images.append((stamp_seconds(msg), msg))
            else:
                labels.append((stamp_seconds(msg), msg))
    if intrinsics is None:
        raise AdaptationDataError(f"the bag has no usable CameraInfo on {roles['info']} "
                                  f"({', '.join(refused) or 'no message at all'}): the camera's intrinsics are needed")
    if not images or not labels:
        missing = roles["image"] if not images else roles[sensor.labels]
        raise AdaptationDataError(f"{missing} holds no message: nothing to pair")
    pairing = pair_by_stamp([s for s, _ in images], [s for s, _ in labels], tolerance)
    if not len(pairing):
        nearest = float(np.min(pairing.nearest))
        raise AdaptationDataError(
            f"no camera frame on {roles['image']} has a {sensor.labels} message within {tolerance} s of its stamp "
            f"(the nearest is {nearest:.3f} s away): the stamps cannot be synchronised — are both sensors stamped "
            f"by the same clock (sim time vs wall time)? A larger --stamp-tolerance accepts a looser pairing")
    depth_camera = None
    if sensor.labels == "depth":
        transform = mount_transform(sensor.camera_height, sensor.camera_pitch, sensor.camera_forward)
        depth_camera = DepthCamera(*intrinsics, transform)
        origin = (sensor.camera_forward, 0.0)
    else:
        origin = (sensor.scan_mount.x, sensor.scan_mount.y)
    out_images, occupancy, masks, stamps = [], [], [], []
    for k in range(0, len(pairing), max(1, int(stride))):
        stamp, image_msg = images[pairing.image_index[k]]
        label_msg = labels[pairing.label_index[k]][1]
        try:
            rgb = image_rgb(image_msg, intrinsics)
            if sensor.labels == "scan":
                bev, _ = scan_to_bev(laser_scan(label_msg), sensor.scan_mount, grid)
            else:
                bev, _ = depth_to_bev(depth_metres(label_msg, intrinsics), depth_camera, grid,
                                      sensor.floor_height, sensor.max_height, sensor.max_range)
        except ValueError as error:
            refuse(str(error).split(":")[0])
            continue
        out_images.append(image_transform(rgb, intrinsics) if image_transform else rgb)
        occupancy.append(bev.occupancy)
        masks.append(label_mask(bev.occupancy, grid, origin))
        stamps.append(stamp)
    if not out_images:
        raise AdaptationDataError(f"every pair was refused ({refused}): nothing to train on")
    pairs = AdaptationSet(np.stack(out_images), np.stack(occupancy), np.stack(masks), np.asarray(stamps))
    counts = {"images": len(images), sensor.labels: len(labels)}
    return BagPairs(pairs, intrinsics, roles, pairing, counts, refused)


# ------------------------------------------------------------------------------- decoding (rosbags dataclasses)

def stamp_seconds(msg) -> float:
    """header.stamp in seconds."""
    return float(msg.header.stamp.sec) + 1e-9 * float(msg.header.stamp.nanosec)


def camera_info_intrinsics(msg) -> tuple[int, int, float, float, float, float]:
    """(width, height, fx, fy, cx, cy) of a CameraInfo; ValueError if it is not a usable pinhole."""
    k = [float(v) for v in msg.k]
    if len(k) != 9 or not all(math.isfinite(v) for v in k):
        raise ValueError("K is not 9 finite numbers")
    if msg.width == 0 or msg.height == 0 or k[0] <= 0 or k[4] <= 0:
        raise ValueError(f"{msg.width}x{msg.height} with fx={k[0]}, fy={k[4]} is not a usable pinhole (uncalibrated?)")
    return int(msg.width), int(msg.height), k[0], k[4], k[2], k[5]


def image_rgb(msg, intrinsics: tuple) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an rgb8 / bgr8 / rgba8 / bgra8 Image of the CameraInfo's size; ValueError else."""
    if msg.encoding not in RGB_ENCODINGS:
        raise ValueError(f"image encoding '{msg.encoding}': rgb8, bgr8, rgba8 or bgra8 expected")
    channels, order = RGB_ENCODINGS[msg.encoding]
    width, height = intrinsics[:2]
    if (msg.width, msg.height) != (width, height):
        raise ValueError(f"image size: {msg.width}x{msg.height}, its CameraInfo says {width}x{height}")
    data = np.asarray(msg.data, dtype=np.uint8)
    if msg.step < channels * width or data.size != msg.step * height:
        raise ValueError(f"image data: {data.size} bytes with step {msg.step} for {width}x{height}")
    rows = data.reshape(height, msg.step)[:, :channels * width].reshape(height, width, channels)
    return np.ascontiguousarray(rows[:, :, list(order)])


def laser_scan(msg):
    """perception.scan_bev.LaserScan of a LaserScan; ValueError if its ray count does not fit its angles or its
    description is unusable (check_scan)."""
    from spatial_memory_ros.perception.scan_bev import LaserScan, check_scan

    ranges = np.asarray(msg.ranges, dtype=np.float32)
    count = ranges.size
    expected = msg.angle_min + msg.angle_increment * (count - 1)
    if count == 0 or not math.isfinite(expected) or abs(expected - msg.angle_max) > max(
            0.5 * abs(msg.angle_increment), 1e-6):
        raise ValueError(f"scan: {count} ranges do not fit angle_min {msg.angle_min} .. angle_max {msg.angle_max} "
                         f"every {msg.angle_increment}")
    scan = LaserScan(ranges, float(msg.angle_min), float(msg.angle_increment), float(msg.range_min),
                     float(msg.range_max))
    check_scan(scan)
    return scan


def depth_metres(msg, intrinsics: tuple) -> np.ndarray:
    """A 32FC1 (metres) or 16UC1 / mono16 (millimetres) depth Image of the CameraInfo's size, as float32 or uint16
    (perception.depth_bev reads both); ValueError for another encoding or size."""
    dtypes = {"32FC1": np.float32, "16UC1": np.uint16, "mono16": np.uint16}
    if msg.encoding not in dtypes:
        raise ValueError(f"depth encoding '{msg.encoding}': 32FC1 or 16UC1 expected")
    dtype = np.dtype(dtypes[msg.encoding]).newbyteorder(">" if msg.is_bigendian else "<")
    width, height = intrinsics[:2]
    if (msg.width, msg.height) != (width, height):
        raise ValueError(f"depth size: {msg.width}x{msg.height}, its CameraInfo says {width}x{height}")
    data = np.asarray(msg.data, dtype=np.uint8)
    if msg.step < dtype.itemsize * width or data.size != msg.step * height:
        raise ValueError(f"depth data: {data.size} bytes with step {msg.step} for {width}x{height}")
    rows = data.reshape(height, msg.step)[:, :dtype.itemsize * width].copy()
    return rows.view(dtype).reshape(height, width).astype(dtype.newbyteorder("="))


# ------------------------------------------------------------------------------------------------ writing

class SensorBagWriter:
    """Writes a robot's sensor bag (mcap, rosbag2 v8, through recording/bags.py) from numpy, without ROS: what
    ``spatial-memory record --adaptation`` records, for tests and simulated drives. Topics under
    ``namespace``; images best effort (sensor QoS), the rest reliable."""

    def __init__(self, path: Path | str, namespace: str = "robot1", frame_prefix: str | None = None) -> None:
        self.writer = BagWriter(path)
        self.store = self.writer.typestore
        self.prefix = f"/{namespace.strip('/')}/" if namespace.strip("/") else "/"
        self.frame = (frame_prefix if frame_prefix is not None else namespace.strip("/")) or ""
        self.types = self.store.types

    def topic(self, role: str) -> str:
        """The topic of a role: image, info, scan, depth, odom."""
        return self.prefix + (TOPIC_SUFFIXES[role][0] if role in TOPIC_SUFFIXES else "odom")

    def _write(self, role: str, msgtype: str, msg, stamp: float, reliable: bool = True) -> None:
        topic = self.topic(role)
        if not self.writer.has_topic(topic):
            self.writer.add_topic(topic, msgtype, qos=[make_qos(reliable=reliable)])
        self.writer.write(topic, int(round(stamp * 1e9)), self.store.serialize_cdr(msg, msgtype))

    def _header(self, stamp: float, frame: str):
        seconds = math.floor(stamp)
        time = self.types["builtin_interfaces/msg/Time"](sec=int(seconds), nanosec=int(round((stamp - seconds) * 1e9)))
        name = f"{self.frame}/{frame}" if self.frame else frame
        return self.types["std_msgs/msg/Header"](stamp=time, frame_id=name)

    def image(self, stamp: float, rgb: np.ndarray) -> None:
        """An rgb8 camera image."""
        rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
        height, width = rgb.shape[:2]
        msg = self.types[IMAGE](header=self._header(stamp, "camera"), height=height, width=width, encoding="rgb8",
                                is_bigendian=0, step=3 * width, data=rgb.reshape(-1))
        self._write("image", IMAGE, msg, stamp, reliable=False)

    def camera_info(self, stamp: float, camera) -> None:
        """The CameraInfo of a types.CameraModel (no distortion)."""
        roi = self.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                              do_rectify=False)
        p = [camera.fx, 0.0, camera.cx, 0.0, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        msg = self.types[INFO](header=self._header(stamp, "camera"), height=int(camera.height),
                               width=int(camera.width), distortion_model="plumb_bob", d=np.zeros(5),
                               k=np.asarray(camera.projection_matrix(), dtype=np.float64),
                               r=np.eye(3).reshape(-1), p=np.asarray(p, dtype=np.float64), binning_x=0,
                               binning_y=0, roi=roi)
        self._write("info", INFO, msg, stamp, reliable=False)

    def scan(self, stamp: float, scan) -> None:
        """A LaserScan of a perception.scan_bev.LaserScan."""
        count = len(scan.ranges)
        msg = self.types[SCAN](header=self._header(stamp, "laser"), angle_min=float(scan.angle_min),
                               angle_max=float(scan.angle_min + scan.angle_increment * (count - 1)),
                               angle_increment=float(scan.angle_increment), time_increment=0.0, scan_time=0.0,
                               range_min=float(scan.range_min), range_max=float(scan.range_max),
                               ranges=np.asarray(scan.ranges, dtype=np.float32), intensities=np.zeros(0, np.float32))
        self._write("scan", SCAN, msg, stamp, reliable=False)

    def depth(self, stamp: float, depth: np.ndarray) -> None:
        """A 32FC1 depth image (metres)."""
        depth = np.ascontiguousarray(depth, dtype="<f4")
        height, width = depth.shape
        msg = self.types[DEPTH](header=self._header(stamp, "camera"), height=height, width=width, encoding="32FC1",
                                is_bigendian=0, step=4 * width, data=depth.view(np.uint8).reshape(-1))
        self._write("depth", DEPTH, msg, stamp, reliable=False)

    def odometry(self, stamp: float, pose: Pose2D, twist: tuple[float, float]) -> None:
        """Odometry in <ns>/odom of <ns>/base_link."""
        t = self.types
        point = t["geometry_msgs/msg/Point"](x=float(pose.x), y=float(pose.y), z=0.0)
        quaternion = t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(pose.theta / 2),
                                                       w=math.cos(pose.theta / 2))
        covariance = np.zeros(36)
        pose_msg = t["geometry_msgs/msg/PoseWithCovariance"](
            pose=t["geometry_msgs/msg/Pose"](position=point, orientation=quaternion), covariance=covariance)
        vector = t["geometry_msgs/msg/Vector3"]
        twist_msg = t["geometry_msgs/msg/TwistWithCovariance"](
            twist=t["geometry_msgs/msg/Twist"](linear=vector(x=float(twist[0]), y=0.0, z=0.0),
                                               angular=vector(x=0.0, y=0.0, z=float(twist[1]))),
            covariance=covariance)
        name = f"{self.frame}/base_link" if self.frame else "base_link"
        msg = t[ODOM](header=self._header(stamp, "odom"), child_frame_id=name, pose=pose_msg, twist=twist_msg)
        self._write("odom", ODOM, msg, stamp)

    def close(self) -> None:
        """Close the bag (summary, metadata, CRCs)."""
        self.writer.close()

    def __enter__(self) -> SensorBagWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["AdaptationDataError", "BagError", "BagPairs", "LabelSensor", "SensorBagWriter", "find_topics",
           "read_pairs"]
