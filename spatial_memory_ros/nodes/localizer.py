"""localizer: where the robot is, from its own motion and what it sees (localization/tem.py, localization/grid_code.py).

Subscribes  odom         nav_msgs/Odometry (only the twist is used: the belief is path-integrated from it)
            bev          spatial_memory_ros/BevMap (oracle or predicted): corrects the belief against the map of
                         map_lag seconds earlier, once the odometry has reached the BEV's stamp
            map          nav_msgs/OccupancyGrid (this robot's memory map, stamped with its newest BEV; transient
                         local)
            initialpose  geometry_msgs/PoseWithCovarianceStamped (the start pose: the sim's, or RViz's 2D Pose Estimate)
Publishes   pose         geometry_msgs/PoseWithCovarianceStamped in `map`, after each BEV (same stamp as the BEV)
            grid_code    spatial_memory_ros/GridCode (the estimate as multi-module grid phases)
            belief       nav_msgs/OccupancyGrid heat map of the location belief, every belief_period
            path         nav_msgs/Path of the estimates, every belief_period
            /tf          map_frame -> odom_frame (the estimate composed with the inverse odometry pose), as AMCL does;
                         the odometry frame is the one the odometry's header names (the sim's robotK/odom, a real
                         base's odom), else odom_frame, so a base that publishes odom -> base_frame joins the map
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rclpy.node import Node
from tf2_msgs.msg import TFMessage

from spatial_memory_ros.conversions import (InvalidMessage, compose, grid_code_to_msg, inverse, msg_to_bev,
                                            msg_to_occupancy, msg_to_pose, occupancy_to_msg, pose_to_msg,
                                            quaternion_to_yaw, time_to_seconds, transform_msg)
from spatial_memory_ros.localization.grid_code import GridCode as GridCodeModel
from spatial_memory_ros.types import GridGeometry
from spatial_memory_ros.localization.stamp_order import StampOrder, StampOrderConfig
from spatial_memory_ros.localization.map_likelihood import OccupancyMap
from spatial_memory_ros.localization.tem import TemLocalizer
from spatial_memory_ros.localization.tem_config import TemConfig
from spatial_memory_ros.types import Pose2D
from spatial_memory_ros.msg import BevMap, GridCode
from spatial_memory_ros.ros_common import (LATCHED_QOS, MAP_SEQUENCE_QOS, RELIABLE_QOS, InputGuard, Param,
                                           declare_parameters, robot_id_of)

PARAMETERS = [
    Param("map_frame", "map", "the fixed frame of the pose, path and map -> odom transform (nav2's map_frame)"),
    Param("odom_frame", "odom", "the odometry frame, when the odometry's header names none (nav2's odom_frame)"),
    Param("base_frame", "base_link", "the robot's body frame, whose pose `pose` estimates and the odometry tracks "
                                     "(nav2's base_frame; the odometry's child_frame_id)"),
    Param("initial_x", 0.0, "start x in `map` (m), until an initialpose arrives", -1e6, 1e6),
    Param("initial_y", 0.0, "start y in `map` (m), until an initialpose arrives", -1e6, 1e6),
    Param("initial_theta", 0.0, "start heading in `map` (rad), until an initialpose arrives", -10.0, 10.0),
    Param("initial_sd", 0.25, "spread of the start belief (m)", 0.01, 100.0),
    Param("belief_resolution", 0.125, "cell size of the belief grid (m)", 0.02, 2.0),
    Param("linear_noise", 0.05, "odometry speed noise, fraction of speed (the sim's odom_linear_noise)", 0.0, 1.0),
    Param("angular_noise_deg", 2.0, "odometry yaw-rate noise (deg/s)", 0.0, 90.0),
    Param("observation_weight", 0.05, "how strongly one BEV reshapes the belief (0.15 suits a true, complete map; "
                                      "0.05 a map the robot builds itself from predicted BEVs)", 0.0, 10.0),
    Param("min_known_fraction", 0.8, "correct only when this fraction of the BEV's cells falls on mapped cells at "
                                     "the estimate (views of unmapped space pull a self-built map's belief astray; "
                                     "0 = always)", 0.0, 1.0),
    Param("plausible_fit", -0.1, "a BEV is applied only if it fits the map at least this well (mean log-likelihood "
                                 "per point) near the estimate; -1e9: every BEV", -1e9, 0.0),
    Param("trust_radius", 0.3, "... within this distance (m) of the estimate, or two belief sds if wider", 0.0, 1e6),
    Param("min_trust", 0.5, "share of the last trust_window BEVs that must be plausible before any is applied "
                            "(0: the plausibility gate is off)", 0.0, 1.0),
    Param("trust_window", 50, "BEVs over which the source's trust is counted", 1, 100000),
    Param("place_check", True, "apply a BEV source only once its BEVs agree with its own earlier ones in the world "
                               "frame (moved by odometry) better than in the robot's: a source drawing one pattern "
                               "wherever the robot goes never corrects (localization/place_check.py)"),
    Param("map_from_bevs", True, "the map is built from these BEVs (the spatial memory's): it keeps the belief out "
                                 "of its walls only while their source is trusted; false for an independent map "
                                 "(a floor plan), whose walls always do"),
    Param("landmarks", True, "objects the BEVs label (targets) are landmarks: seen again, they fix the position "
          "and heading (localization/landmarks.py)"),
    Param("rectilinear_walls", False, "the world's walls meet at right angles (most buildings, Memory-Maze): each "
          "BEV's wall direction then corrects the heading modulo 90 deg (localization/wall_directions.py); leave "
          "false where walls run at other angles"),
    Param("landmark_gate", 3.0, "a sighting farther than this (m) from every stored object of its class is a new "
          "landmark", 0.1, 100.0),
    Param("map_lag", 2.0, "a BEV stamped T is matched against the memory map of T - map_lag (s): then the "
                          "belief does not depend on message timing (replays give the live poses), and the map "
                          "holds no cells drawn from the pose being corrected; must exceed the memory's map_period "
                          "plus one BEV period; 0 = the newest map, whatever its stamp (for a fixed prior map)",
          0.0, 60.0),
    Param("map_wait", 3.0, "seconds of odometry a BEV waits for its map before it is corrected against the newest "
                           "one (with no memory running)", 0.1, 60.0),
    Param("odom_hold", 2.0, "seconds of odometry held back waiting for a BEV stamped at or after it (so corrections "
                            "go in stamp order) before it is applied anyway", 0.0, 60.0),
    Param("max_odom_gap", 1.0, "an odometry gap longer than this (s) is a jump: dropped, with a warning", 0.01, 60.0),
    Param("belief_period", 0.5, "seconds between belief heat map and path publications", 0.05, 60.0),
    Param("path_length", 5000, "poses kept in the published path", 10, 1_000_000),
    Param("grid_modules", 5, "modules of the published grid code", 3, 12),
    Param("grid_base_period", 1.0, "smallest grid period (m)", 0.05, 100.0),
    Param("grid_ratio", 1.4, "period ratio between successive modules", 1.05, 3.0),
]


@dataclass(frozen=True)
class OdomStep:
    """One odometry message, as the belief uses it."""
    stamp: float
    v: float
    omega: float
    pose: Pose2D


class LocalizerNode(Node):
    """TEM belief localizer for one robot."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("localizer", **node_kwargs)
        p = self.params = declare_parameters(self, PARAMETERS)
        config = TemConfig(resolution=p["belief_resolution"], linear_noise=p["linear_noise"],
                           angular_noise=math.radians(p["angular_noise_deg"]),
                           observation_weight=p["observation_weight"], max_dt=p["max_odom_gap"],
                           min_known_fraction=p["min_known_fraction"], plausible_fit=p["plausible_fit"],
                           trust_radius=p["trust_radius"], min_trust=p["min_trust"], trust_window=p["trust_window"],
                           place_check=p["place_check"], map_from_bevs=p["map_from_bevs"],
                           landmarks=p["landmarks"], landmark_gate=p["landmark_gate"],
                           rectilinear_walls=p["rectilinear_walls"])
        self.tem = TemLocalizer(config, initial_pose=(p["initial_x"], p["initial_y"], p["initial_theta"]),
                                initial_sigma=p["initial_sd"])
        self.grid_code = GridCodeModel(p["grid_modules"], p["grid_base_period"], p["grid_ratio"])
        self.guard = InputGuard(self)
        self.robot_id = robot_id_of(self)
        self._odom_pose: Pose2D | None = None
        self.odom_frame = p["odom_frame"]  # replaced by the frame the odometry's header names
        self.inputs = StampOrder(StampOrderConfig(map_lag=p["map_lag"], map_wait=p["map_wait"],
                                                  odom_hold=p["odom_hold"]))
        self._map_in_use: OccupancyMap | None = None
        self._path = Path()
        self._path.header.frame_id = p["map_frame"]
        self._make_interfaces()
        self.get_logger().info(f"TEM localizer at ({p['initial_x']:.2f}, {p['initial_y']:.2f}); waiting for "
                               f"{self.resolve_topic_name('initialpose')} and {self.resolve_topic_name('map')}")

    def _make_interfaces(self) -> None:
        self.pose_pub = self.create_publisher(PoseWithCovarianceStamped, "pose", RELIABLE_QOS)
        self.grid_pub = self.create_publisher(GridCode, "grid_code", RELIABLE_QOS)
        self.belief_pub = self.create_publisher(OccupancyGrid, "belief", LATCHED_QOS)
        self.path_pub = self.create_publisher(Path, "path", LATCHED_QOS)
        self.tf_pub = self.create_publisher(TFMessage, "/tf", RELIABLE_QOS)
        self.create_subscription(Odometry, "odom", self._on_odom, RELIABLE_QOS)
        self.create_subscription(BevMap, "bev", self._on_bev, RELIABLE_QOS)
        self.create_subscription(OccupancyGrid, "map", self._on_map, MAP_SEQUENCE_QOS)
        self.create_subscription(PoseWithCovarianceStamped, "initialpose", self._on_initial_pose, LATCHED_QOS)
        self.create_timer(self.params["belief_period"], self.publish_belief)

    def _on_odom(self, msg: Odometry) -> None:
        position, twist = msg.pose.pose.position, msg.twist.twist
        step = OdomStep(time_to_seconds(msg.header.stamp), float(twist.linear.x), float(twist.angular.z),
                        Pose2D(position.x, position.y, quaternion_to_yaw(msg.pose.pose.orientation)))
        if not all(math.isfinite(value) for value in (step.stamp, step.v, step.omega)):
            self.guard.reject("invalid odometry", f"stamp {step.stamp}, speed {step.v}, yaw rate {step.omega} "
                                                  f"must be finite; message dropped")
            return
        if msg.header.frame_id:
            self.odom_frame = msg.header.frame_id
        self.inputs.add_odometry(step.stamp, step)
        self._apply_releases()

    def _on_bev(self, msg: BevMap) -> None:
        try:
            bev = msg_to_bev(msg)
        except InvalidMessage as error:
            self.guard.reject("invalid BEV", str(error))
            return
        if not self.inputs.add_bev(time_to_seconds(msg.header.stamp), (bev, msg.header.stamp)):
            self.guard.reject("BEV without odometry", "no odometry up to the BEV's stamp: is odom published?")
        self._apply_releases()

    def _on_map(self, msg: OccupancyGrid) -> None:
        try:
            grid, geometry = msg_to_occupancy(msg)
            occupancy = OccupancyMap(grid, geometry.resolution, geometry.origin_x, geometry.origin_y)
        except (InvalidMessage, ValueError) as error:
            self.guard.reject("invalid map", str(error))
            return
        self.inputs.add_map(time_to_seconds(msg.header.stamp), occupancy)
        if self.params["map_lag"] <= 0.0:
            self._use_map(occupancy)
        self._apply_releases()

    def _apply_releases(self) -> None:
        """Apply odometry and BEVs in stamp order as localization/stamp_order.py releases them (see there for why)."""
        for release in self.inputs.releases():
            if release.kind == "odometry":
                self._apply_odometry(release.item)
                continue
            if release.map_waited_out:
                wanted = release.stamp - self.params["map_lag"]
                self.guard.reject("no recent map", f"no map stamped after {wanted:.2f} s came in time; correcting "
                                                   f"against an older one (is spatial_memory running?)")
            bev, stamp = release.item
            self._correct(bev, stamp, release.map)

    def _apply_odometry(self, step: "OdomStep") -> None:
        try:
            self.tem.predict_stamped(step.v, step.omega, step.stamp)
        except ValueError as error:
            self.guard.reject("invalid odometry", str(error))
            return
        self._odom_pose = step.pose

    def _use_map(self, occupancy: OccupancyMap) -> None:
        if occupancy is not self._map_in_use:
            self.tem.set_map(occupancy)
            self._map_in_use = occupancy

    def _correct(self, bev, stamp, occupancy: OccupancyMap | None) -> None:
        if occupancy is not None:
            self._use_map(occupancy)
        try:
            result = self.tem.correct(bev)
        except ValueError as error:
            self.guard.reject("invalid BEV", str(error))
            return
        if result.message and result.applied:
            self.get_logger().warning(result.message)
        if result.rejected:  # counted, and warned about at a limited rate: the belief follows odometry meanwhile
            self.guard.reject("untrusted BEV source" if "untrusted" in result.rejected else "implausible BEV",
                              result.rejected)
        self.publish_pose(stamp)

    def _on_initial_pose(self, msg: PoseWithCovarianceStamped) -> None:
        try:
            pose, sd = msg_to_pose(msg)
        except InvalidMessage as error:
            self.guard.reject("invalid initial pose", str(error))
            return
        self.tem.reset((pose.x, pose.y, pose.theta), max(sd, 0.05))
        self._path.poses.clear()
        self.get_logger().info(f"belief reset to ({pose.x:.2f}, {pose.y:.2f}, {pose.theta:.2f}) +- {max(sd, 0.05):.2f} m")

    def publish_pose(self, stamp) -> None:
        """Publish the estimate (pose with covariance, grid code) and extend the path."""
        estimate = self.tem.estimate()
        pose = Pose2D(estimate.x, estimate.y, estimate.theta)
        msg = pose_to_msg(pose, stamp, self.params["map_frame"])
        msg.pose.covariance = estimate.covariance_6x6()
        self.pose_pub.publish(msg)
        phases = self.grid_code.phases(np.array([estimate.x, estimate.y]))
        decoded = self.grid_code.decode(phases, near=(estimate.x, estimate.y), radius=1.0)
        sd = math.sqrt(0.5 * (estimate.covariance[0, 0] + estimate.covariance[1, 1]))
        self.grid_pub.publish(grid_code_to_msg(self.grid_code, phases, (float(decoded[0]), float(decoded[1]),
                                                                          estimate.theta), sd, stamp,
                                               self.robot_id))
        if self._odom_pose is not None and all(math.isfinite(v) for v in vars(self._odom_pose).values()):
            map_to_odom = compose(pose, inverse(self._odom_pose))
            self.tf_pub.publish(TFMessage(transforms=[transform_msg(self.params["map_frame"], self.odom_frame,
                                                                    map_to_odom, stamp)]))
        stamped = PoseStamped(header=msg.header, pose=msg.pose.pose)
        self._path.poses.append(stamped)
        if len(self._path.poses) > self.params["path_length"]:
            del self._path.poses[0]

    def publish_belief(self) -> None:
        """Publish the belief heat map and the path."""
        belief = self.tem.belief_grid()
        stamp = self.get_clock().now().to_msg()
        height, width = belief.probabilities.shape
        geometry = GridGeometry(belief.resolution, width, height, belief.origin_x, belief.origin_y)
        self.belief_pub.publish(occupancy_to_msg(belief.as_occupancy_values(), geometry, stamp))
        self._path.header.stamp = stamp
        self.path_pub.publish(self._path)


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down (Ctrl-C)."""
    from spatial_memory_ros.nodes import spin_node

    return spin_node(LocalizerNode, sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())
