"""explorer: drives one robot: frontier exploration of the team's map, then a text goal found in the spatial
memory, then a planned path to it (behaviour/planner.py Navigator); or a plain random walk (behaviour/walker.py).

Subscribes  bev             spatial_memory_ros/BevMap (graph.py remaps it to the oracle or predicted BEV); each one
                            is answered with exactly one cmd_vel (the simulator steps in lockstep on them)
            odom            nav_msgs/Odometry (its twist tells whether the last command moved the robot:
                            teammates do not show in the BEV, so a bump is noticed only this way)
            pose            geometry_msgs/PoseWithCovarianceStamped (graph.py remaps: localizer or ground truth)
            map             nav_msgs/OccupancyGrid to plan on (graph.py remaps it to team_comm's team_map)
            partners        spatial_memory_ros/PartnerStateArray (teammates' believed positions: kept away from)
            memory/entries, memory/merge   spatial_memory_ros/MemoryEntryArray (a sighting matching the goal query,
                            own or a teammate's, makes the explorer ask the memory at once)
Calls       query           spatial_memory_ros/QueryMemory, asynchronously every query_period (never blocks)
Publishes   cmd_vel         geometry_msgs/Twist, one command per BEV received
            goal            geometry_msgs/PointStamped (latched): where the memory says the goal is
            plan            nav_msgs/Path (latched): the path being followed (to the goal or a frontier)
            ~/status        std_msgs/String (latched): walking | waiting | exploring | going to goal | arrived
Every decision (when to ask, where to go, arriving, parking) is behaviour/robot.py's Robot, the same loop the
benchmarks run; this node only turns messages into its Senses and its command into a Twist. A control-path error
is logged once with its traceback, counted on ~/dropped_inputs as 'planning error', and answered with a stop.
"""
from __future__ import annotations

import math
import sys
import time
from collections import OrderedDict

import numpy as np
from geometry_msgs.msg import PointStamped, PoseStamped, PoseWithCovarianceStamped, Twist
from nav_msgs.msg import OccupancyGrid, Odometry, Path
from rclpy.node import Node
from std_msgs.msg import String

from spatial_memory_ros.conversions import (InvalidMessage, command_to_twist, msg_to_bev, msg_to_occupancy,
                                            msg_to_pose, time_to_seconds, yaw_to_quaternion)
from spatial_memory_ros.behaviour.planner import Partner, PlannerConfig
from spatial_memory_ros.behaviour.robot import Robot, RobotConfig, Senses
from spatial_memory_ros.msg import BevMap, MemoryEntryArray, PartnerStateArray
from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS, InputGuard, Param, declare_parameters
from spatial_memory_ros.srv import QueryMemory

MAX_MAP_CELLS = 1 << 21  # plans run Dijkstra over every cell; a larger map is refused
POSE_STAMPS_KEPT = 20

PARAMETERS = [
    Param("mode", "navigate", "walk: random walk only; navigate: frontiers, then the goal_query, on the map"),
    Param("seed", 0, "seed of the random walk", 0, 2**31 - 1),
    Param("map_frame", "map", "the fixed frame of the published goal and plan (nav2's map_frame)"),
    Param("goal_query", "", "text goal asked of the memory, e.g. 'the red target'; empty: explore only"),
    Param("query_period", 1.0, "sim seconds between queries while the goal is not reached", 0.1, 600.0),
    Param("query_timeout", 5.0, "wall seconds to wait for a query's answer before giving it up", 0.1, 600.0),
    Param("query_samples", 10, "samples asked per query", 1, 1000),
    Param("park", True, "after reaching the goal, wait out of the way (2.5 to 8 m from it) instead of on it"),
    Param("max_linear_speed", 0.8, "forward speed limit of the commands (m/s)", 0.01, 10.0),
    Param("max_angular_speed", 1.5, "yaw rate limit of the commands (rad/s)", 0.01, 20.0),
    Param("goal_tolerance", 0.2, "distance (m) to the goal at which the robot counts itself arrived", 0.01, 10.0),
    Param("goal_clear_radius", 0.3, "walls mapped this close (m) to the goal are taken for the target itself "
          "(set it to the targets' radius)", 0.0, 5.0),
    Param("replan_every", 10, "steps between replans", 1, 1000),
    Param("sight_range", 3.0, "drive to the goal's object where the current BEV shows it (2 BEVs in a row) within "
          "this range (m) instead of to the memory's goal, which carries the pose drift; 0: never", 0.0, 100.0),
    Param("look_around", True, "at the memory's goal, turn once on the spot (looking for the target) before "
          "counting itself arrived"),
    Param("doubt_walls_after", RobotConfig.doubt_walls_after, "control steps of searching for the goal_query "
          "without a goal after which exploring also looks behind walls the map holds only weakly (a doorway that "
          "a wall seen from afar closed on the map); 0: never", 0, 10**7),
    Param("control_period", 0.1, "seconds between BEVs (the walker's step; the sim's 1/rate_hz)", 0.01, 10.0),
]


class ExplorerNode(Node):
    """Turns each BEV into a velocity command by the shipped robot loop (behaviour.robot.Robot)."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("explorer", **node_kwargs)
        p = self.params = declare_parameters(self, PARAMETERS)
        planner = PlannerConfig(max_linear_speed=p["max_linear_speed"], max_angular_speed=p["max_angular_speed"],
                                dt=p["control_period"], goal_tolerance=p["goal_tolerance"],
                                goal_clear_radius=p["goal_clear_radius"], replan_every=p["replan_every"])
        config = RobotConfig(planner, mode=p["mode"], park=p["park"], seed=p["seed"], sight_range=p["sight_range"],
                             look_around=p["look_around"], doubt_walls_after=p["doubt_walls_after"],
                             ask_every=max(1, int(round(p["query_period"] / p["control_period"]))))
        self.robot = Robot(p["goal_query"], config)
        if p["goal_query"].strip() and not self.robot.query:
            self.get_logger().warning(f"goal_query '{p['goal_query']}' has no content words: exploring only")
        self.guard = InputGuard(self)
        self.queries_sent = self.queries_answered = 0
        self._twist: tuple[float, float] | None = None
        self._pose = None
        self._poses: OrderedDict[float, object] = OrderedDict()  # stamp -> Pose2D, the last few
        self._map: np.ndarray | None = None
        self._partners: tuple[Partner, ...] = ()
        self._pending = None  # (future, wall time sent)
        self._published = {"status": None, "goal": None, "plan": None}
        self._make_interfaces()
        what = f"navigate, goal '{self.robot.query}'" if p["mode"] == "navigate" and self.robot.query else p["mode"]
        self.get_logger().info(f"{what} (seed {p['seed']}) on {self.resolve_topic_name('bev')}")

    def _make_interfaces(self) -> None:
        self.cmd_pub = self.create_publisher(Twist, "cmd_vel", RELIABLE_QOS)
        self.goal_pub = self.create_publisher(PointStamped, "goal", LATCHED_QOS)
        self.plan_pub = self.create_publisher(Path, "plan", LATCHED_QOS)
        self.status_pub = self.create_publisher(String, "~/status", LATCHED_QOS)
        self.create_subscription(Odometry, "odom", self._on_odom, RELIABLE_QOS)
        self.create_subscription(BevMap, "bev", self._on_bev, RELIABLE_QOS)
        if self.params["mode"] == "navigate":
            self.create_subscription(PoseWithCovarianceStamped, "pose", self._on_pose, RELIABLE_QOS)
            self.create_subscription(OccupancyGrid, "map", self._on_map, LATCHED_QOS)
            self.create_subscription(PartnerStateArray, "partners", self._on_partners, RELIABLE_QOS)
            if self.robot.asks:
                self.query_client = self.create_client(QueryMemory, "query")
                for topic in ("memory/entries", "memory/merge"):
                    self.create_subscription(MemoryEntryArray, topic, self._on_entries, RELIABLE_QOS)
        self._publish_status()

    # -- inputs ----------------------------------------------------------------------------------------------

    def _on_odom(self, msg: Odometry) -> None:
        twist = (msg.twist.twist.linear.x, msg.twist.twist.angular.z)
        if not all(math.isfinite(v) for v in twist):
            self.guard.reject("invalid odometry", f"twist {twist} is not finite")
            return
        self._twist = twist

    def _on_pose(self, msg: PoseWithCovarianceStamped) -> None:
        try:
            pose, _ = msg_to_pose(msg)
        except InvalidMessage as error:
            self.guard.reject("invalid pose", str(error))
            return
        self._pose = pose
        self._poses[time_to_seconds(msg.header.stamp)] = pose
        while len(self._poses) > POSE_STAMPS_KEPT:
            self._poses.popitem(last=False)

    def _on_map(self, msg: OccupancyGrid) -> None:
        try:
            grid, geometry = msg_to_occupancy(msg, max_cells=MAX_MAP_CELLS)
        except InvalidMessage as error:
            self.guard.reject("invalid map", str(error))
            return
        previous = self.robot.geometry
        if self.robot.use_geometry(geometry) and previous is not None:
            self.get_logger().warning(f"the map's geometry changed to {geometry}: planning afresh")
        self._map = grid

    def _on_partners(self, msg: PartnerStateArray) -> None:
        partners = []
        for state in msg.partners:
            x, y = state.pose.pose.position.x, state.pose.pose.position.y
            variance = 0.5 * (state.pose.covariance[0] + state.pose.covariance[7])
            if all(math.isfinite(v) for v in (x, y, variance)) and variance >= 0.0:
                partners.append(Partner(float(x), float(y), math.sqrt(variance)))
            else:
                self.guard.reject("invalid partner", f"{state.robot_id}: position or variance not finite")
        self._partners = tuple(partners)

    def _on_entries(self, msg: MemoryEntryArray) -> None:
        self.robot.notice(entry.label for entry in msg.entries)

    # -- the step ---------------------------------------------------------------------------------------------

    def _on_bev(self, msg: BevMap) -> None:
        """One command per BEV, whatever else is missing or broken (the sim waits for it)."""
        try:
            bev = msg_to_bev(msg)
        except InvalidMessage as error:
            self.guard.reject("invalid BEV", str(error))
            bev = None
        senses = Senses(bev, self._poses.get(time_to_seconds(msg.header.stamp), self._pose), self._map,
                        self._partners, self._twist)
        try:
            self._maybe_ask()
            linear, angular = self.robot.step(senses)
        except Exception as error:  # noqa: BLE001 - a planning bug must not stop the commands: seen and counted
            self.guard.fault("planning error", error)
            linear, angular = 0.0, 0.0
        self.cmd_pub.publish(command_to_twist(linear, angular))
        self._publish_status()
        self._publish_goal()
        self._publish_plan()

    # -- asking the memory -----------------------------------------------------------------------------------

    def _maybe_ask(self) -> None:
        if self._pending is not None:
            future, sent = self._pending
            if future.done() or time.monotonic() - sent <= self.params["query_timeout"]:
                return
            self.guard.reject("query timed out", f"no answer from {self.query_client.srv_name} within "
                                                 f"{self.params['query_timeout']:g} s")
            remove = getattr(self.query_client, "remove_pending_request", None)
            if remove is not None:
                remove(future)
            future.cancel()
            self._pending = None
        if not self.robot.should_ask() or not self.query_client.service_is_ready():
            return
        request = QueryMemory.Request(query=self.robot.ask_text, num_samples=self.params["query_samples"])
        future = self.query_client.call_async(request)
        self._pending = (future, time.monotonic())
        self.robot.asked()
        self.queries_sent += 1
        future.add_done_callback(self._on_answer)

    def _on_answer(self, future) -> None:
        if self._pending is not None and self._pending[0] is future:
            self._pending = None
        if future.cancelled():
            return
        try:
            response = future.result()
        except Exception as error:  # noqa: BLE001 - a failed call is a missing answer, not a crash
            self.guard.reject("query failed", f"{type(error).__name__}: {error}")
            return
        if response is None or not response.success:
            self.guard.reject("query failed", response.message if response is not None else "no response")
            return
        xs, ys, labels = np.asarray(response.xs, np.float64), np.asarray(response.ys, np.float64), list(response.labels)
        if not (len(xs) == len(ys) == len(labels)) or not np.isfinite(xs).all() or not np.isfinite(ys).all():
            self.guard.reject("invalid query answer", f"{len(xs)} xs, {len(ys)} ys, {len(labels)} labels, or "
                                                      f"non-finite locations")
            return
        self.queries_answered += 1
        self.robot.take_answer(np.column_stack([xs, ys]), labels)

    # -- outputs ----------------------------------------------------------------------------------------------

    def _publish_status(self) -> None:
        if self.robot.status != self._published["status"]:
            goal = self.robot.current_goal
            if self.robot.status == "arrived" and goal is not None:
                self.get_logger().info(f"arrived at the goal ({goal[0]:.2f}, {goal[1]:.2f}) after {self.robot.steps} "
                                       f"steps")
            self._published["status"] = self.robot.status
            self.status_pub.publish(String(data=self.robot.status))

    def _publish_goal(self) -> None:
        goal, last = self.robot.current_goal, self._published["goal"]
        if goal is None or (last is not None and math.hypot(goal[0] - last[0], goal[1] - last[1]) < 0.05):
            return
        msg = PointStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.params["map_frame"]
        msg.point.x, msg.point.y = float(goal[0]), float(goal[1])
        self.goal_pub.publish(msg)
        self._published["goal"] = goal

    def _publish_plan(self) -> None:
        path = self.robot.plan
        if path is None or path is self._published["plan"]:
            return
        self._published["plan"] = path
        msg = Path()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.params["map_frame"]
        for k, (x, y) in enumerate(path):
            pose = PoseStamped()
            pose.header = msg.header
            pose.pose.position.x, pose.pose.position.y = float(x), float(y)
            nx, ny = path[min(k + 1, len(path) - 1)]
            heading = math.atan2(ny - y, nx - x) if k + 1 < len(path) else 0.0
            pose.pose.orientation = yaw_to_quaternion(heading)
            msg.poses.append(pose)
        self.plan_pub.publish(msg)


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down (Ctrl-C)."""
    from spatial_memory_ros.nodes import spin_node

    return spin_node(ExplorerNode, sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())
