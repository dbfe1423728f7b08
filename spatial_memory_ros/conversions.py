"""Conversions between the domain packages' types (numpy arrays, dataclasses) and ROS messages.

Functions that read a message validate it and raise :class:`InvalidMessage` with a sentence saying what
was wrong, so that nodes can drop the input with that sentence as the warning.
"""
from __future__ import annotations

import array
import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseWithCovarianceStamped, Quaternion, TransformStamped, Twist
from nav_msgs.msg import OccupancyGrid, Odometry
from sensor_msgs.msg import Image
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from spatial_memory_ros.types import GridGeometry
from spatial_memory_ros.memory.spatial_memory import SpatialMemory
from spatial_memory_ros.memory.robot_memory import Entries
from spatial_memory_ros.sim.maze import Maze
from spatial_memory_ros.types import BevGrid, Pose2D
from spatial_memory_ros.msg import (BevMap, MemoryEntry, MemoryEntryArray, PartnerState, PartnerStateArray,
                                    TeamPacket)
from spatial_memory_ros.msg import GridCode as GridCodeMsg

MAX_ABS_SPEED = 100.0  # m/s or rad/s; anything beyond is garbage, not a command


class InvalidMessage(ValueError):
    """A message that cannot be used; the text says what was wrong."""


def seconds_to_time(seconds: float) -> Time:
    """builtin_interfaces/Time from seconds."""
    sec = int(math.floor(seconds))
    return Time(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def time_to_seconds(stamp: Time) -> float:
    """Seconds from builtin_interfaces/Time."""
    return stamp.sec + stamp.nanosec * 1e-9


def yaw_to_quaternion(yaw: float) -> Quaternion:
    """A rotation about +z by ``yaw`` radians."""
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2.0), w=math.cos(yaw / 2.0))


def quaternion_to_yaw(q: Quaternion) -> float:
    """The yaw of a quaternion (rotation about +z)."""
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


def image_to_msg(rgb: np.ndarray, stamp: Time, frame_id: str) -> Image:
    """sensor_msgs/Image (rgb8) from an (H, W, 3) uint8 array."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {rgb.dtype} {rgb.shape}")
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = 3 * msg.width
    msg.data = array.array("B", np.ascontiguousarray(rgb).tobytes())
    return msg


def msg_to_image(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB array from an rgb8 or bgr8 sensor_msgs/Image; raises InvalidMessage otherwise."""
    if msg.encoding not in ("rgb8", "bgr8"):
        raise InvalidMessage(f"image encoding '{msg.encoding}' is not supported: publish rgb8 (or bgr8)")
    if msg.width == 0 or msg.height == 0:
        raise InvalidMessage("image is empty (width or height is 0)")
    if msg.step < 3 * msg.width:
        raise InvalidMessage(f"image step {msg.step} is smaller than 3 * width = {3 * msg.width}")
    expected = msg.step * msg.height
    if len(msg.data) != expected:
        raise InvalidMessage(f"image data has {len(msg.data)} bytes, step * height = {expected}")
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    image = rows[:, : 3 * msg.width].reshape(msg.height, msg.width, 3)
    return image[..., ::-1].copy() if msg.encoding == "bgr8" else image.copy()


def bev_to_msg(bev: BevGrid, stamp: Time, frame_id: str, robot_id: str) -> BevMap:
    """spatial_memory_ros/BevMap from a core BevGrid."""
    msg = BevMap()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.robot_id = robot_id
    msg.resolution = float(bev.resolution)
    msg.height, msg.width = (int(n) for n in bev.occupancy.shape)
    msg.origin.x, msg.origin.y, msg.origin.theta = float(bev.origin_x), float(bev.origin_y), 0.0
    msg.occupancy = array.array("b", np.ascontiguousarray(bev.occupancy, dtype=np.int8).tobytes())
    msg.object_class = array.array("B", np.ascontiguousarray(bev.object_class, dtype=np.uint8).tobytes())
    msg.class_names = list(bev.class_names)
    return msg


def msg_to_bev(msg: BevMap, max_cells: int = 1 << 20) -> BevGrid:
    """core BevGrid from a BevMap; raises InvalidMessage if its sizes or values are inconsistent."""
    cells = int(msg.width) * int(msg.height)
    if cells == 0:
        raise InvalidMessage("BEV is empty (width or height is 0)")
    if cells > max_cells:
        raise InvalidMessage(f"BEV has {cells} cells, more than the {max_cells} accepted")
    if not (math.isfinite(msg.resolution) and msg.resolution > 0.0):
        raise InvalidMessage(f"BEV resolution {msg.resolution} is not a positive number")
    if not (math.isfinite(msg.origin.x) and math.isfinite(msg.origin.y)):
        raise InvalidMessage("BEV origin is not finite")
    if len(msg.occupancy) != cells:
        raise InvalidMessage(f"BEV occupancy has {len(msg.occupancy)} values, width * height = {cells}")
    if len(msg.object_class) not in (0, cells):
        raise InvalidMessage(f"BEV object_class has {len(msg.object_class)} values, expected 0 or {cells}")
    occupancy = np.frombuffer(msg.occupancy, dtype=np.int8).reshape(msg.height, msg.width).copy()
    if np.any((occupancy < -1) | (occupancy > 100)):
        raise InvalidMessage("BEV occupancy values must be -1 (unseen) or 0..100")
    if len(msg.object_class):
        objects = np.frombuffer(msg.object_class, dtype=np.uint8).reshape(msg.height, msg.width).copy()
    else:
        objects = np.zeros_like(occupancy, dtype=np.uint8)
    if objects.max(initial=0) > len(msg.class_names):
        raise InvalidMessage(f"BEV object class {objects.max()} has no name ({len(msg.class_names)} names)")
    return BevGrid(occupancy=occupancy, object_class=objects, resolution=float(msg.resolution),
                   origin_x=float(msg.origin.x), origin_y=float(msg.origin.y),
                   class_names=tuple(msg.class_names))


def pose_to_msg(pose: Pose2D, stamp: Time, frame_id: str, xy_sd: float = 0.0,
                yaw_sd: float = 0.0) -> PoseWithCovarianceStamped:
    """geometry_msgs/PoseWithCovarianceStamped from a planar pose and its standard deviations."""
    msg = PoseWithCovarianceStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.pose.pose.position.x, msg.pose.pose.position.y = float(pose.x), float(pose.y)
    msg.pose.pose.orientation = yaw_to_quaternion(pose.theta)
    covariance = [0.0] * 36
    covariance[0] = covariance[7] = float(xy_sd) ** 2
    covariance[35] = float(yaw_sd) ** 2
    msg.pose.covariance = covariance
    return msg


def msg_to_pose(msg: PoseWithCovarianceStamped) -> tuple[Pose2D, float]:
    """(planar pose, position standard deviation in metres) from a PoseWithCovarianceStamped;
    raises InvalidMessage for non-finite values."""
    position, orientation = msg.pose.pose.position, msg.pose.pose.orientation
    values = (position.x, position.y, orientation.x, orientation.y, orientation.z, orientation.w)
    if not all(math.isfinite(v) for v in values):
        raise InvalidMessage("pose has non-finite position or orientation")
    if abs(orientation.x) + abs(orientation.y) + abs(orientation.z) + abs(orientation.w) == 0.0:
        raise InvalidMessage("pose orientation is the zero quaternion")
    variance = 0.5 * (msg.pose.covariance[0] + msg.pose.covariance[7])
    if not (math.isfinite(variance) and variance >= 0.0):
        raise InvalidMessage(f"pose position variance {variance} is not a non-negative number")
    return Pose2D(float(position.x), float(position.y), quaternion_to_yaw(orientation)), math.sqrt(variance)


def odometry_to_msg(pose: Pose2D, twist: tuple[float, float], stamp: Time, frame_id: str,
                    child_frame_id: str, linear_sd: float, angular_sd: float) -> Odometry:
    """nav_msgs/Odometry with the dead-reckoned pose and the measured (noisy) twist with its covariance."""
    msg = Odometry()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.child_frame_id = child_frame_id
    msg.pose.pose.position.x, msg.pose.pose.position.y = float(pose.x), float(pose.y)
    msg.pose.pose.orientation = yaw_to_quaternion(pose.theta)
    msg.twist.twist.linear.x = float(twist[0])
    msg.twist.twist.angular.z = float(twist[1])
    covariance = [0.0] * 36
    covariance[0] = float(linear_sd) ** 2
    covariance[35] = float(angular_sd) ** 2
    msg.twist.covariance = covariance
    return msg


def twist_to_command(msg: Twist) -> tuple[float, float]:
    """(forward speed, yaw rate) from a Twist; raises InvalidMessage for non-finite or absurd values."""
    linear, angular = float(msg.linear.x), float(msg.angular.z)
    if not (math.isfinite(linear) and math.isfinite(angular)):
        raise InvalidMessage(f"cmd_vel is not finite (linear.x={linear}, angular.z={angular})")
    if abs(linear) > MAX_ABS_SPEED or abs(angular) > MAX_ABS_SPEED:
        raise InvalidMessage(f"cmd_vel is out of range (linear.x={linear:g}, angular.z={angular:g}; "
                             f"|value| must be <= {MAX_ABS_SPEED:g})")
    return linear, angular


def command_to_twist(linear: float, angular: float) -> Twist:
    """A Twist with forward speed and yaw rate."""
    msg = Twist()
    msg.linear.x = float(linear)
    msg.angular.z = float(angular)
    return msg


def maze_to_occupancy_grid(maze: Maze, stamp: Time, frame_id: str = "map") -> OccupancyGrid:
    """The true maze as a nav_msgs/OccupancyGrid (walls 100, free 0) for RViz and evaluation."""
    msg = OccupancyGrid()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.info.resolution = float(maze.cell_size)
    msg.info.height, msg.info.width = (int(n) for n in maze.walls.shape)
    msg.info.origin.orientation.w = 1.0
    msg.data = array.array("b", np.where(maze.walls, 100, 0).astype(np.int8).tobytes())
    return msg


MAX_MERGED_ENTRIES = 10_000


def entries_to_msg(entries: Entries, stamp: Time, frame_id: str = "map") -> MemoryEntryArray:
    """spatial_memory_ros/MemoryEntryArray from a batch of core entries."""
    msg = MemoryEntryArray()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    for k in range(len(entries)):
        entry = MemoryEntry(x=float(entries.locations[k, 0]), y=float(entries.locations[k, 1]),
                            location_sd=float(entries.location_sds[k]), label=entries.labels[k],
                            source_robot=entries.sources[k], stamp=seconds_to_time(float(entries.stamps[k])))
        entry.value = array.array("f", np.ascontiguousarray(entries.values[k], np.float32).tobytes())
        msg.entries.append(entry)
    return msg


def msg_to_entries(msg: MemoryEntryArray, value_dim: int) -> Entries:
    """core entries from a MemoryEntryArray; raises InvalidMessage for sizes or values that cannot be stored."""
    count = len(msg.entries)
    if count == 0:
        raise InvalidMessage("the entry array is empty")
    if count > MAX_MERGED_ENTRIES:
        raise InvalidMessage(f"{count} entries in one message; at most {MAX_MERGED_ENTRIES} are accepted")
    bad_dims = [len(e.value) for e in msg.entries if len(e.value) not in (0, value_dim)]
    if bad_dims:
        raise InvalidMessage(f"entry values must have {value_dim} numbers (or none: then the label is embedded); "
                             f"got {bad_dims[0]}")
    if any(len(e.value) == 0 and not e.label.strip() for e in msg.entries):
        raise InvalidMessage("an entry without a value needs a label to embed")
    locations = np.array([(e.x, e.y) for e in msg.entries], np.float32)
    sds = np.array([e.location_sd for e in msg.entries], np.float32)
    values = np.array([e.value if len(e.value) else np.full(value_dim, np.nan) for e in msg.entries], np.float32)
    missing = np.isnan(values).all(axis=1)
    values[missing] = 0.0
    if not (np.all(np.isfinite(locations)) and np.all(np.isfinite(values)) and np.all(np.isfinite(sds))):
        raise InvalidMessage("entries hold NaN or infinite numbers")
    if np.any(sds <= 0):
        raise InvalidMessage("entry location_sd must be > 0")
    stamps = np.array([time_to_seconds(e.stamp) for e in msg.entries], np.float64)
    return Entries(np.full(count, -1, np.int64), locations, sds, values, [e.label for e in msg.entries],
                   [e.source_robot for e in msg.entries], stamps, needs_value=missing)


def occupancy_to_msg(grid: np.ndarray, geometry: GridGeometry, stamp: Time, frame_id: str = "map") -> OccupancyGrid:
    """nav_msgs/OccupancyGrid from an int8 grid (-1 unknown, 0..100) on ``geometry``."""
    msg = OccupancyGrid()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.info.map_load_time = stamp
    msg.info.resolution = float(geometry.resolution)
    msg.info.width, msg.info.height = int(geometry.width), int(geometry.height)
    msg.info.origin.position.x, msg.info.origin.position.y = float(geometry.origin_x), float(geometry.origin_y)
    msg.info.origin.orientation.w = 1.0
    msg.data = array.array("b", np.ascontiguousarray(grid, np.int8).tobytes())
    return msg


LABEL_COLOURS_RGB = {"wall": (0.35, 0.35, 0.4), "open floor": (0.8, 0.8, 0.75), "red target": (0.9, 0.1, 0.1),
                     "green target": (0.1, 0.8, 0.1), "blue target": (0.1, 0.2, 0.95),
                     "yellow target": (0.95, 0.9, 0.1), "magenta target": (0.9, 0.1, 0.9),
                     "cyan target": (0.1, 0.9, 0.9)}
MAX_MARKER_POINTS = 50_000


def memory_markers(memory: SpatialMemory, stamp: Time, namespace: str, frame_id: str = "map") -> MarkerArray:
    """One CUBE_LIST marker of the memory's newest entries (at most MAX_MARKER_POINTS), coloured by label."""
    locations, labels = memory.newest(MAX_MARKER_POINTS)
    marker = Marker(type=Marker.CUBE_LIST, action=Marker.ADD, ns=namespace, id=0)
    marker.header.stamp = stamp
    marker.header.frame_id = frame_id
    marker.pose.orientation.w = 1.0
    marker.scale.x = marker.scale.y = marker.scale.z = 0.15
    for (x, y), label in zip(locations, labels):
        marker.points.append(Point(x=float(x), y=float(y), z=0.05))
        r, g, b = LABEL_COLOURS_RGB.get(str(label), (1.0, 0.6, 0.0))
        marker.colors.append(ColorRGBA(r=r, g=g, b=b, a=0.9))
    return MarkerArray(markers=[marker])


def msg_to_occupancy(msg: OccupancyGrid, max_cells: int = 1 << 24) -> tuple[np.ndarray, GridGeometry]:
    """(int8 grid [iy, ix], GridGeometry) of an OccupancyGrid; raises InvalidMessage for inconsistent ones."""
    info = msg.info
    cells = int(info.width) * int(info.height)
    if cells == 0 or cells > max_cells:
        raise InvalidMessage(f"map has {info.width} x {info.height} cells; expected 1..{max_cells}")
    if len(msg.data) != cells:
        raise InvalidMessage(f"map data has {len(msg.data)} values, width * height = {cells}")
    if abs(info.origin.orientation.z) > 1e-6 or abs(info.origin.orientation.x) + abs(info.origin.orientation.y) > 0:
        raise InvalidMessage("maps with a rotated origin are not supported")
    try:
        geometry = GridGeometry(float(info.resolution), int(info.width), int(info.height),
                                float(info.origin.position.x), float(info.origin.position.y))
    except ValueError as error:
        raise InvalidMessage(str(error)) from error
    grid = np.frombuffer(msg.data, np.int8).reshape(info.height, info.width)
    if grid.min() < -1 or grid.max() > 100:
        raise InvalidMessage("map values must be -1 (unknown) or 0..100")
    return grid, geometry


def grid_code_to_msg(code, phases: np.ndarray, decoded: tuple[float, float, float], decoded_sd: float,
                     stamp: Time, robot_id: str, frame_id: str = "map") -> GridCodeMsg:
    """spatial_memory_ros/GridCode from a core grid code and its phases (M, 2)."""
    msg = GridCodeMsg(robot_id=robot_id, decoded_sd=float(decoded_sd))
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.periods = [float(m.period) for m in code.modules]
    msg.orientations = [float(m.orientation) for m in code.modules]
    msg.phases = array.array("f", np.asarray(phases, np.float32).reshape(-1).tobytes())
    msg.decoded_pose.x, msg.decoded_pose.y, msg.decoded_pose.theta = (float(v) for v in decoded)
    return msg


def transform_msg(parent: str, child: str, pose: Pose2D, stamp: Time) -> TransformStamped:
    """geometry_msgs/TransformStamped placing ``child`` at planar ``pose`` in ``parent``."""
    msg = TransformStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = parent
    msg.child_frame_id = child
    msg.transform.translation.x, msg.transform.translation.y = float(pose.x), float(pose.y)
    msg.transform.rotation = yaw_to_quaternion(pose.theta)
    return msg


def compose(a: Pose2D, b: Pose2D) -> Pose2D:
    """The planar pose a * b (b expressed in a's frame, moved into a's parent)."""
    cos_a, sin_a = math.cos(a.theta), math.sin(a.theta)
    return Pose2D(a.x + cos_a * b.x - sin_a * b.y, a.y + sin_a * b.x + cos_a * b.y,
                  math.atan2(math.sin(a.theta + b.theta), math.cos(a.theta + b.theta)))


def inverse(a: Pose2D) -> Pose2D:
    """The planar pose a^-1."""
    cos_a, sin_a = math.cos(a.theta), math.sin(a.theta)
    return Pose2D(-(cos_a * a.x + sin_a * a.y), sin_a * a.x - cos_a * a.y, -a.theta)


def wire_to_msg(wire, stamp: Time) -> TeamPacket:
    """spatial_memory_ros/TeamPacket from a core WirePacket."""
    msg = TeamPacket(sender=wire.sender, sequence=int(wire.sequence), budget_window=int(wire.budget_window),
                     payload_bits=int(wire.payload_bits))
    msg.header.stamp = stamp
    msg.payload = array.array("B", bytes(wire.payload))
    msg.auth_tag = array.array("B", bytes(wire.auth_tag))
    return msg


def sightings_to_msg(sightings, source: str, stamp: Time, location_sd: float = 0.5) -> MemoryEntryArray:
    """Teammates' target sightings as entries without values (the memory embeds their labels)."""
    msg = MemoryEntryArray()
    msg.header.stamp = stamp
    msg.header.frame_id = "map"
    msg.entries = [MemoryEntry(x=float(s.x), y=float(s.y), location_sd=float(location_sd), label=s.label,
                               source_robot=source, stamp=stamp) for s in sightings]
    return msg


def partner_states_to_msg(states, stamp: Time) -> PartnerStateArray:
    """spatial_memory_ros/PartnerStateArray from core partner estimates."""
    msg = PartnerStateArray()
    msg.header.stamp = stamp
    msg.header.frame_id = "map"
    for state in states:
        partner = PartnerState(robot_id=state.robot_id, age=float(state.age_s),
                               packets_received=int(state.packets_received))
        partner.pose.pose.position.x, partner.pose.pose.position.y = float(state.x), float(state.y)
        partner.pose.pose.orientation = yaw_to_quaternion(state.theta)
        covariance = [0.0] * 36
        covariance[0] = covariance[7] = float(state.sd) ** 2
        partner.pose.covariance = covariance
        msg.partners.append(partner)
    return msg


def partner_markers(states, stamp: Time, namespace: str, frame_id: str = "map") -> MarkerArray:
    """Each partner as a disc of radius 2 sd at its predicted position, with its name (RViz)."""
    markers = MarkerArray(markers=[Marker(action=Marker.DELETEALL, ns=namespace)])
    for index, state in enumerate(states):
        disc = Marker(type=Marker.CYLINDER, action=Marker.ADD, ns=namespace, id=2 * index + 1)
        label = Marker(type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, ns=namespace, id=2 * index + 2,
                       text=f"{state.robot_id} ({state.age_s:.1f} s)")
        for marker in (disc, label):
            marker.header.stamp = stamp
            marker.header.frame_id = frame_id
            marker.pose.position.x, marker.pose.position.y = float(state.x), float(state.y)
            marker.pose.orientation.w = 1.0
        disc.scale.x = disc.scale.y = max(0.2, 4.0 * float(state.sd))
        disc.scale.z = 0.05
        disc.color = ColorRGBA(r=1.0, g=0.6, b=0.0, a=0.4)
        label.pose.position.z = 0.5
        label.scale.z = 0.3
        label.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
        markers.markers += [disc, label]
    return markers
