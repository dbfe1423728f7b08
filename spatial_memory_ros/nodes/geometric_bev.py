"""geometric_bev: a LaserScan or a depth image -> bird's-eye view, by geometry (perception/scan_bev.py,
perception/depth_bev.py), for robots with a range sensor instead of (or beside) the learned camera predictor.

For each robot namespace in ``robots`` (default [""]: this node's own namespace), with ``source:=scan``:
Subscribes  <ns>/scan                 sensor_msgs/LaserScan (REP-117: +inf = nothing within range_max; NaN, -inf,
                                      returns below range_min or above range_max carry no information)
with ``source:=depth``:
Subscribes  <ns>/camera/depth         sensor_msgs/Image (32FC1 metres or 16UC1 millimetres, REP-118)
            <ns>/camera/camera_info   sensor_msgs/CameraInfo (the depth image's intrinsics; needed first;
                                      the topic is the parameter depth_info_topic)
Publishes   <ns>/bev                  spatial_memory_ros/BevMap (same stamp as the sensor's message)
            <ns>/bev/grid             nav_msgs/OccupancyGrid of the BEV in <robot>/base_link, for RViz
The sensor's pose on the robot comes from parameters (scan_*, camera_*), not TF: a fixed mount.
Refused, counted on ~/dropped_inputs with one warning per reason: scans whose ray count does not match their
angles or whose angles / range limits are unusable, scans without a single usable return, depth images in
another encoding or of another size than their CameraInfo, depth before any CameraInfo (the newest one waits for
it; any older one is refused), unusable CameraInfo.
"""
from __future__ import annotations

import sys
from functools import partial

import numpy as np
from nav_msgs.msg import OccupancyGrid
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, LaserScan

from spatial_memory_ros.conversions import InvalidMessage, bev_to_msg, occupancy_to_msg
from spatial_memory_ros.sensor_conversions import msg_to_depth, msg_to_intrinsics, msg_to_scan
from spatial_memory_ros.msg import BevMap
from spatial_memory_ros.perception.depth_bev import DepthCamera, depth_to_bev, mount_transform
from spatial_memory_ros.perception.scan_bev import DEFAULT_BEV, scan_to_bev
from spatial_memory_ros.ros_common import (RELIABLE_QOS, SENSOR_QOS, InputGuard, Param, declare_parameters,
                                           robot_id_of)
from spatial_memory_ros.types import GridGeometry, Pose2D

SOURCES = ("scan", "depth")

PARAMETERS = [
    Param("source", "scan", "what the BEV is made from: 'scan' (sensor_msgs/LaserScan on scan) or 'depth' "
          "(a depth image on camera/depth with camera/camera_info)"),
    Param("robots", [""], "robot namespaces served by this node ('' = the node's own namespace)"),
    Param("base_frame", "base_link", "the robot frame the BEV is in, after '<robot>/' (header.frame_id)"),
    Param("scan_x", 0.0, "the scan frame's position ahead of the robot's centre (m)", -10.0, 10.0),
    Param("scan_y", 0.0, "the scan frame's position left of the robot's centre (m)", -10.0, 10.0),
    Param("scan_yaw", 0.0, "the scan frame's yaw on the robot (rad, counter-clockwise)", -3.2, 3.2),
    Param("depth_info_topic", "camera/camera_info", "the depth image's CameraInfo, under each robot's namespace "
          "(the simulator's depth camera has its own: camera/depth/camera_info)"),
    Param("camera_height", 0.5, "the depth camera's optical centre above the floor (m)", 0.0, 10.0),
    Param("camera_pitch", 0.0, "the depth camera's pitch (rad, positive = looking down)", -1.5, 1.5),
    Param("camera_forward", 0.0, "the depth camera's optical centre ahead of the robot's centre (m)", -10.0, 10.0),
    Param("camera_transform", [0.0], "instead of camera_height/pitch/forward: the 4x4 row-major transform from the "
          "camera's optical frame (x right, y down, z forward) to the robot's floor frame (x forward, y left, z up, "
          "z = 0 on the floor); [0.0] = unset"),
    Param("floor_height", 0.1, "depth points lower than this (m above the floor) are floor, higher ones obstacles",
          0.0, 10.0),
    Param("max_height", 2.0, "depth points higher than this (m) are ignored (ceilings, overhangs)", 0.0, 100.0),
    Param("max_range", 8.0, "depth: cells farther from the camera stay unseen (m)", 0.1, 100.0),
    Param("pixel_stride", 1, "depth: use every n-th pixel along rows and columns (large images)", 1, 64),
    Param("bev_resolution", DEFAULT_BEV.resolution, "BEV cell size (m); must match the memory and localizer",
          0.01, 10.0),
    Param("bev_width", DEFAULT_BEV.width, "BEV cells along x (forward)", 1, 4096),
    Param("bev_height", DEFAULT_BEV.height, "BEV cells along y (left)", 1, 4096),
    Param("bev_origin_x", DEFAULT_BEV.origin_x, "robot-frame x of the BEV's corner cell (m)", -1000.0, 1000.0),
    Param("bev_origin_y", DEFAULT_BEV.origin_y, "robot-frame y of the BEV's corner cell (m)", -1000.0, 1000.0),
]


class GeometricBevNode(Node):
    """Turns each robot's scan or depth image into a BEV."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("geometric_bev", **node_kwargs)
        p = self.params = declare_parameters(self, PARAMETERS)
        if p["source"] not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got '{p['source']}'")
        self.geometry = GridGeometry(p["bev_resolution"], p["bev_width"], p["bev_height"], p["bev_origin_x"],
                                     p["bev_origin_y"])
        self.transform = self._camera_transform()
        self.guard = InputGuard(self)
        self.robots = [ns.strip("/") for ns in p["robots"]] or [""]
        self._intrinsics: dict[int, tuple] = {}
        self._waiting: dict[int, Image] = {}
        self._outputs = []
        self.frames_converted = 0
        for index, namespace in enumerate(self.robots):
            prefix = f"/{namespace}/" if namespace else ""
            self._outputs.append((self.create_publisher(BevMap, f"{prefix}bev", RELIABLE_QOS),
                                  self.create_publisher(OccupancyGrid, f"{prefix}bev/grid", RELIABLE_QOS)))
            if p["source"] == "scan":
                self.create_subscription(LaserScan, f"{prefix}scan", partial(self._on_scan, index), SENSOR_QOS)
            else:
                self.create_subscription(Image, f"{prefix}camera/depth", partial(self._on_depth, index), SENSOR_QOS)
                self.create_subscription(CameraInfo, f"{prefix}{p['depth_info_topic']}",
                                         partial(self._on_info, index), SENSOR_QOS)
        self.get_logger().info(f"geometric BEV from {p['source']} for {len(self.robots)} robot(s)")

    def _camera_transform(self) -> np.ndarray:
        values = list(self.params["camera_transform"])
        if values == [0.0]:
            p = self.params
            return mount_transform(p["camera_height"], p["camera_pitch"], p["camera_forward"])
        if len(values) != 16:
            raise ValueError(f"camera_transform must have 16 values (a row-major 4x4), got {len(values)}")
        transform = np.asarray(values, dtype=np.float64).reshape(4, 4)
        DepthCamera(1, 1, 1.0, 1.0, 0.0, 0.0, transform).check()  # ValueError: not rigid or not finite
        return transform

    def _on_scan(self, index: int, msg: LaserScan) -> None:
        robot = robot_id_of(self, self.robots[index])
        try:
            scan = msg_to_scan(msg)
        except InvalidMessage as error:
            self.guard.reject("invalid scan", f"{robot}: {error}")
            return
        p = self.params
        bev, report = scan_to_bev(scan, Pose2D(p["scan_x"], p["scan_y"], p["scan_yaw"]), self.geometry)
        if report.hits + report.no_return == 0:
            self.guard.reject("scan without a usable return", f"{robot}: {report.invalid} NaN/-inf, "
                                                              f"{report.below_min} below range_min, "
                                                              f"{report.above_max} above range_max")
            return
        self._publish(index, msg.header.stamp, bev)

    def _on_info(self, index: int, msg: CameraInfo) -> None:
        try:
            self._intrinsics[index] = msg_to_intrinsics(msg)
        except InvalidMessage as error:
            self.guard.reject("invalid camera_info", f"{robot_id_of(self, self.robots[index])}: {error}")
            return
        waiting = self._waiting.pop(index, None)
        if waiting is not None:
            self._on_depth(index, waiting)

    def _on_depth(self, index: int, msg: Image) -> None:
        robot = robot_id_of(self, self.robots[index])
        intrinsics = self._intrinsics.get(index)
        if intrinsics is None:
            # the first image may overtake its CameraInfo: hold one, refuse the one before it
            if self._waiting.get(index) is not None:
                self.guard.reject("depth without camera_info", f"{robot}: no usable CameraInfo on "
                                                               f"camera/camera_info yet; the depth image cannot be "
                                                               f"projected")
            self._waiting[index] = msg
            return
        try:
            depth = msg_to_depth(msg)
            if depth.shape != (intrinsics[1], intrinsics[0]):
                raise InvalidMessage(f"depth is {depth.shape[1]}x{depth.shape[0]} but its CameraInfo says "
                                     f"{intrinsics[0]}x{intrinsics[1]}")
        except InvalidMessage as error:
            self.guard.reject("invalid depth", f"{robot}: {error}")
            return
        p = self.params
        camera = DepthCamera(*intrinsics, self.transform)
        bev, _ = depth_to_bev(depth, camera, self.geometry, p["floor_height"], p["max_height"], p["max_range"],
                              p["pixel_stride"])
        self._publish(index, msg.header.stamp, bev)

    def _publish(self, index: int, stamp, bev) -> None:
        bev_pub, grid_pub = self._outputs[index]
        robot = robot_id_of(self, self.robots[index])
        frame = f"{robot}/{self.params['base_frame']}"
        bev_pub.publish(bev_to_msg(bev, stamp, frame, robot))
        grid_pub.publish(occupancy_to_msg(bev.occupancy, self.geometry, stamp, frame))
        self.frames_converted += 1


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down (Ctrl-C)."""
    from spatial_memory_ros.nodes import spin_node

    return spin_node(GeometricBevNode, sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())
