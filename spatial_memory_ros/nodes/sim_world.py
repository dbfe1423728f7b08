"""sim_world: a simulated maze with a team of camera robots on ROS topics, in either world of sim/interface.py:
``world:=builtin`` (the ray-cast maze of sim/world.py, 1 m cells) or ``world:=memory_maze`` (Memory-Maze in MuJoCo,
sim/memory_maze.py, 2 m cells; maze_size 9, 11, 13 or 15; each robot in its own physics, so robots do not see or
bump into each other).

Publishes, for each robot ``robotK`` (K = 1..robots):
  /robotK/camera/image_raw    sensor_msgs/Image (rgb8, 64x64)            sensor QoS
  /robotK/camera/camera_info  sensor_msgs/CameraInfo (the world's pinhole camera; same stamp as the image)
  /robotK/camera/depth        sensor_msgs/Image (32FC1 metres; a depth camera on the colour camera's mount with
                              its fields of view at depth_width columns; only while someone listens)
  /robotK/camera/depth/camera_info  sensor_msgs/CameraInfo (the depth camera's; with each depth image)
  /robotK/scan                sensor_msgs/LaserScan (720 rays, 0.5 deg, in robotK/base_link; only while someone
                              listens) -- both ray-cast in the layout, sim/range_sensors.py
  /robotK/odom                nav_msgs/Odometry (noisy twist, dead-reckoned pose)
  /robotK/ground_truth/pose   geometry_msgs/PoseWithCovarianceStamped (evaluation only; zero covariance)
  /robotK/ground_truth/bev    spatial_memory_ros/BevMap (oracle BEV)
  /robotK/initialpose         geometry_msgs/PoseWithCovarianceStamped (the start pose, latched: a robot's known start)
and for the team: /clock (sim time), /ground_truth/map (OccupancyGrid, latched), /sim/status (SimStatus),
/tf (robotK/odom -> robotK/base_link, dead reckoning) and /tf_static (robotK/base_link -> robotK/camera:
the world's camera mount).
Subscribes /robotK/cmd_vel (geometry_msgs/Twist).
The world advances in fixed steps of 1/rate_hz sim seconds, at most real_time_factor times faster than the
wall clock (0: as fast as the CPU allows). In lockstep (default) it waits, after publishing each step's sensors,
for a cmd_vel from every robot that has a controller, so runs are repeatable and never outpace the controllers;
otherwise a robot whose last command is older than command_timeout stops.
"""
from __future__ import annotations

import math
import sys
import time
from functools import partial

from geometry_msgs.msg import PoseWithCovarianceStamped, Twist
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, LaserScan
from tf2_msgs.msg import TFMessage

from spatial_memory_ros.conversions import (InvalidMessage, bev_to_msg, image_to_msg, maze_to_occupancy_grid,
                                            odometry_to_msg, pose_to_msg, seconds_to_time, transform_msg,
                                            twist_to_command)
from spatial_memory_ros.sensor_conversions import camera_info_to_msg, depth_to_msg, scan_to_msg
from spatial_memory_ros.sim import range_sensors
from spatial_memory_ros.sim.interface import WORLDS, SimWorld, WorldUnavailable, make_world
from spatial_memory_ros.sim.world import WorldConfig
from spatial_memory_ros.types import Pose2D
from spatial_memory_ros.msg import BevMap, SimStatus
from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS, InputGuard, Param, declare_parameters

EXIT_WORLD_UNAVAILABLE = 78  # EX_CONFIG: the world cannot start here (not installed, no GL); retrying will not help

PARAMETERS = [
    Param("world", "builtin", "the simulated world: 'builtin' (ray-cast maze, 1 m cells) or 'memory_maze' "
          "(Memory-Maze in MuJoCo, 2 m cells; needs memory-maze, mujoco 3.17 and EGL or OSMesa)"),
    Param("robots", 3, "number of simulated robots (robot1..robotN)", 1, 16),
    Param("maze_size", 15, "maze side in cells: builtin 9..15 with the outer wall; memory_maze 9, 11, 13 or 15 "
          "inside it (Memory-Maze's own sizes)", 9, 15),
    Param("seed", 0, "seed of the maze, start poses and sensor noise", 0, 2**31 - 1),
    Param("rate_hz", 10.0, "world steps per simulated second", 1.0, 100.0),
    Param("real_time_factor", 0.0, "maximum speed-up over the wall clock; 0 = as fast as the CPU allows", 0.0, 1000.0),
    Param("max_sim_time", 0.0, "stop stepping after this many simulated seconds; 0 = run until shut down",
          0.0, 1e7),
    Param("wait_for_controllers", 60.0, "hold sim time at 0 until every robot's cmd_vel has a publisher, at most "
          "this many wall seconds (0: start at once)", 0.0, 600.0),
    Param("ready_topics", [""], "before the first step, wait (see wait_for_controllers) until each listed topic has "
          "that many subscribers, among them the named nodes if any: entries 'TOPIC=COUNT' or "
          "'TOPIC=COUNT@/ns/node,/ns/node2'; graph.py lists every reader of the sim's sensors by name, so a "
          "recorder listening already does not stand in for a node still starting"),
    Param("lockstep", True, "advance only when every robot with a controller has answered the last sensors "
          "with a cmd_vel (deterministic, and as fast as the controllers allow)"),
    Param("lockstep_timeout", 1.0, "in lockstep, step anyway after this many wall seconds without an answer",
          0.01, 60.0),
    Param("command_timeout", 0.5, "a robot stops if its last cmd_vel is older than this (sim seconds)", 0.0, 60.0),
    Param("odom_linear_noise", 0.05, "std of the multiplicative noise on measured forward speed (fraction)",
          0.0, 1.0),
    Param("odom_angular_noise_deg", 2.0, "std of the additive noise on measured yaw rate (deg/s)", 0.0, 90.0),
    Param("max_linear_speed", 1.0, "forward speed limit (m/s)", 0.0, 10.0),
    Param("max_angular_speed", 2.0, "yaw rate limit (rad/s)", 0.0, 20.0),
    Param("depth_width", range_sensors.DEPTH_WIDTH, "columns of the depth camera (camera/depth), on the colour "
          "camera's mount with its fields of view; 0 = the colour camera's own resolution", 0, 1280),
]

STATUS_PERIOD = 1.0  # wall seconds
MAX_STEPS_PER_TICK = 5   # catch-up steps per timer tick when pacing falls behind
CONTROLLER_SETTLE = 0.5  # wall seconds between discovering the controllers and the first step (DDS matching)


class SimWorldNode(Node):
    """Steps the simulated world and publishes each robot's sensors and ground truth."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("sim_world", **node_kwargs)
        self.params = declare_parameters(self, PARAMETERS)
        self.world = self._make_world()
        self.robot_ids = [f"robot{k + 1}" for k in range(self.world.num_robots)]
        self.guard = InputGuard(self)
        self._commands = [(0.0, 0.0)] * self.world.num_robots
        self._command_times = [-1e9] * self.world.num_robots
        self._frames = [0] * self.world.num_robots
        self._answered = [False] * self.world.num_robots
        self._controlled = [False] * self.world.num_robots
        self._last_publish = time.monotonic()
        self._make_interfaces()
        self._wall_start: float | None = None
        self._created = time.monotonic()
        self._ready_topics = parse_ready_topics(self.params["ready_topics"])
        self._controllers_seen: float | None = None
        self._finished = False
        self._step_timer = self.create_timer(0.001, self._tick)
        self._status_timer = self.create_timer(STATUS_PERIOD, self.publish_status)
        self.get_logger().info(
            f"simulating {self.world.num_robots} robots in a {self.params['maze_size']}x{self.params['maze_size']} "
            f"{self.params['world']} maze (seed {self.params['seed']}) at {self.params['rate_hz']:g} Hz, "
            f"real-time factor {'unlimited' if self.params['real_time_factor'] == 0 else self.params['real_time_factor']}")

    def _make_world(self) -> SimWorld:
        """The world the parameters name; one fatal line and exit 78 (no traceback) if it cannot start here."""
        p = self.params
        config = WorldConfig(dt=1.0 / p["rate_hz"], odom_linear_noise=p["odom_linear_noise"],
                             odom_angular_noise_deg=p["odom_angular_noise_deg"],
                             max_linear_speed=p["max_linear_speed"], max_angular_speed=p["max_angular_speed"])
        try:
            if p["world"] not in WORLDS:
                raise ValueError(f"world '{p['world']}' is not one of {', '.join(WORLDS)}")
            return make_world(p["world"], size=p["maze_size"], seed=p["seed"], num_robots=p["robots"],
                              config=config)
        except (ValueError, WorldUnavailable) as error:
            self.get_logger().fatal(f"sim_world cannot start the {p['world']} world: {error}")
            raise SystemExit(EXIT_WORLD_UNAVAILABLE) from None

    def close(self) -> None:
        """Release the world (Memory-Maze's physics and GL contexts)."""
        self.world.close()

    def _make_interfaces(self) -> None:
        self.clock_pub = self.create_publisher(Clock, "/clock", 10)
        self.map_pub = self.create_publisher(OccupancyGrid, "/ground_truth/map", LATCHED_QOS)
        self.status_pub = self.create_publisher(SimStatus, "/sim/status", LATCHED_QOS)
        self.camera_pubs, self.odom_pubs, self.pose_pubs, self.bev_pubs, self.start_pubs = [], [], [], [], []
        self.info_pubs, self.depth_pubs, self.depth_info_pubs, self.scan_pubs = [], [], [], []
        for index, robot in enumerate(self.robot_ids):
            self.camera_pubs.append(self.create_publisher(Image, f"/{robot}/camera/image_raw", SENSOR_QOS))
            self.info_pubs.append(self.create_publisher(CameraInfo, f"/{robot}/camera/camera_info", SENSOR_QOS))
            self.depth_pubs.append(self.create_publisher(Image, f"/{robot}/camera/depth", SENSOR_QOS))
            self.depth_info_pubs.append(self.create_publisher(CameraInfo, f"/{robot}/camera/depth/camera_info",
                                                              SENSOR_QOS))
            self.scan_pubs.append(self.create_publisher(LaserScan, f"/{robot}/scan", SENSOR_QOS))
            self.odom_pubs.append(self.create_publisher(Odometry, f"/{robot}/odom", RELIABLE_QOS))
            self.pose_pubs.append(self.create_publisher(PoseWithCovarianceStamped, f"/{robot}/ground_truth/pose", RELIABLE_QOS))
            self.bev_pubs.append(self.create_publisher(BevMap, f"/{robot}/ground_truth/bev", RELIABLE_QOS))
            self.create_subscription(Twist, f"/{robot}/cmd_vel", partial(self._on_cmd_vel, index), RELIABLE_QOS)
            start = self.create_publisher(PoseWithCovarianceStamped, f"/{robot}/initialpose", LATCHED_QOS)
            start.publish(pose_to_msg(self.world.true_pose(index), seconds_to_time(0.0), "map", xy_sd=0.05,
                                      yaw_sd=0.02))
            self.start_pubs.append(start)
        self.map_pub.publish(maze_to_occupancy_grid(self.world.maze, seconds_to_time(0.0)))
        self.tf_pub = self.create_publisher(TFMessage, "/tf", RELIABLE_QOS)
        self.tf_static_pub = self.create_publisher(TFMessage, "/tf_static", LATCHED_QOS)
        self.tf_static_pub.publish(TFMessage(transforms=[self._camera_mount(k) for k in range(len(self.robot_ids))]))

    def _camera_mount(self, index: int):
        """base_link -> camera: the world's camera mount (height, forward offset, pitch down); the camera frame
        keeps the robot's axes (x forward, y left), tilted down by the pitch."""
        robot, camera = self.robot_ids[index], self.world.camera_model(index)
        msg = transform_msg(f"{robot}/base_link", f"{robot}/camera", Pose2D(camera.mount_forward, 0.0, 0.0),
                            seconds_to_time(0.0))
        msg.transform.translation.z = float(camera.mount_height)
        msg.transform.rotation.y = math.sin(0.5 * camera.mount_pitch)  # a positive pitch about y looks down
        msg.transform.rotation.w = math.cos(0.5 * camera.mount_pitch)
        return msg

    def _on_cmd_vel(self, robot: int, msg: Twist) -> None:
        try:
            self._commands[robot] = twist_to_command(msg)
        except InvalidMessage as error:
            self.guard.reject("invalid cmd_vel", f"{self.robot_ids[robot]}: {error}")
            return
        self._command_times[robot] = self.world.time
        self._answered[robot] = True
        if self.params["lockstep"]:
            self._advance(max_steps=1)

    def _controllers_ready(self) -> bool:
        """True once every robot's cmd_vel has a publisher and every ready topic its readers (discovery settles for
        CONTROLLER_SETTLE seconds more), or the wait_for_controllers time is up."""
        waited = time.monotonic() - self._created
        missing = [f"{robot}/cmd_vel" for robot in self.robot_ids if self.count_publishers(f"/{robot}/cmd_vel") == 0]
        missing += [topic for topic, count, readers in self._ready_topics if not self._readers_present(topic, count,
                                                                                                    readers)]
        if not missing:
            if self._controllers_seen is None:
                self._controllers_seen = time.monotonic()
            return time.monotonic() - self._controllers_seen >= CONTROLLER_SETTLE
        if waited >= self.params["wait_for_controllers"]:
            self.get_logger().warning(f"starting without {', '.join(missing)} ready after {waited:.1f} s "
                                      f"(no controller: the robot stands still; too few readers: they miss frames)")
            return True
        return False

    def _readers_present(self, topic: str, count: int, readers: tuple[str, ...]) -> bool:
        if self.count_subscribers(topic) < count:
            return False
        if not readers:
            return True
        present = {f"{info.node_namespace.rstrip('/')}/{info.node_name}"
                   for info in self.get_subscriptions_info_by_topic(topic)}
        return all(reader in present for reader in readers)

    def _steps_allowed(self) -> int:
        """How many world steps the wall clock allows now (pacing by real_time_factor)."""
        if self._wall_start is None:
            if not self._controllers_ready():
                return 0
            self._wall_start = time.monotonic()
            self._controlled = [self.count_publishers(f"/{robot}/cmd_vel") > 0 for robot in self.robot_ids]
            self.publish_sensors()  # the first frame, once the controllers listen; they answer it
            return 0
        rtf = self.params["real_time_factor"]
        if rtf <= 0.0:
            return MAX_STEPS_PER_TICK
        allowed = int((time.monotonic() - self._wall_start) * self.params["rate_hz"] * rtf)
        return min(max(allowed - self.world.step_count, 0), MAX_STEPS_PER_TICK)

    def _commands_answered(self) -> bool:
        """Lockstep: every controlled robot has answered the last sensors, or lockstep_timeout has passed."""
        if all(answered or not controlled for answered, controlled in zip(self._answered, self._controlled)):
            return True
        if time.monotonic() - self._last_publish >= self.params["lockstep_timeout"]:
            late = [r for r, a, c in zip(self.robot_ids, self._answered, self._controlled) if c and not a]
            self.guard.reject("controller too slow", f"no cmd_vel from {', '.join(late)} within "
                                                     f"{self.params['lockstep_timeout']:g} s; stepping anyway")
            return True
        return False

    def _tick(self) -> None:
        self._advance(max_steps=MAX_STEPS_PER_TICK)

    def _advance(self, max_steps: int) -> None:
        """Take the steps that pacing (and, in lockstep, the controllers' answers) allow now."""
        if self._finished:
            return
        for _ in range(min(self._steps_allowed(), max_steps)):
            max_time = self.params["max_sim_time"]
            if max_time > 0.0 and self.world.time >= max_time - 1e-9:
                self._finish()
                return
            if self.params["lockstep"] and not self._commands_answered():
                return
            self.step_once()

    def step_once(self) -> None:
        """Advance the world one step with the latest commands (stale ones count as stop) and publish."""
        timeout = self.params["command_timeout"]
        commands = [cmd if self.params["lockstep"] or self.world.time - t <= timeout else (0.0, 0.0)
                    for cmd, t in zip(self._commands, self._command_times)]
        self.world.step(commands)
        self._answered = [False] * self.world.num_robots
        self.clock_pub.publish(Clock(clock=seconds_to_time(self.world.time)))
        self.publish_sensors()

    def publish_sensors(self) -> None:
        """Publish every robot's camera image, odometry, ground-truth pose and oracle BEV for the current step."""
        stamp = seconds_to_time(self.world.time)
        linear_sd = self.params["odom_linear_noise"] * self.params["max_linear_speed"]
        angular_sd = self.params["odom_angular_noise_deg"] * 3.141592653589793 / 180.0
        self._last_publish = time.monotonic()
        self.tf_pub.publish(TFMessage(transforms=[
            transform_msg(f"{robot}/odom", f"{robot}/base_link", self.world.odom_pose(index), stamp)
            for index, robot in enumerate(self.robot_ids)]))
        for index, robot in enumerate(self.robot_ids):
            base = f"{robot}/base_link"
            self.camera_pubs[index].publish(image_to_msg(self.world.render(index), stamp, f"{robot}/camera"))
            self.info_pubs[index].publish(camera_info_to_msg(self.world.camera_model(index), stamp, f"{robot}/camera"))
            self._publish_range_sensors(index, stamp)
            self._frames[index] += 1
            self.odom_pubs[index].publish(odometry_to_msg(
                self.world.odom_pose(index), self.world.odom_twist(index), stamp, f"{robot}/odom", base,
                linear_sd, angular_sd))
            self.pose_pubs[index].publish(pose_to_msg(self.world.true_pose(index), stamp, "map"))
            self.bev_pubs[index].publish(bev_to_msg(self.world.oracle_bev(index), stamp, base, robot))

    def _publish_range_sensors(self, index: int, stamp) -> None:
        """The robot's depth image and laser scan, each only while it has a subscriber (they cost ray casts)."""
        robot = self.robot_ids[index]
        if self.depth_pubs[index].get_subscription_count() > 0:
            camera = range_sensors.depth_camera_model(self.world, index, self.params["depth_width"])
            self.depth_info_pubs[index].publish(camera_info_to_msg(camera, stamp, f"{robot}/camera"))
            self.depth_pubs[index].publish(depth_to_msg(range_sensors.depth_image(self.world, index, camera), stamp,
                                                        f"{robot}/camera"))
        if self.scan_pubs[index].get_subscription_count() > 0:
            self.scan_pubs[index].publish(scan_to_msg(range_sensors.scan(self.world, index), stamp,
                                                      f"{robot}/base_link", self.world.config.dt))

    def publish_status(self) -> None:
        """Publish /sim/status (steps, sim and wall time, frames and distance per robot)."""
        msg = SimStatus()
        msg.header.stamp = seconds_to_time(self.world.time)
        msg.steps = self.world.step_count
        msg.sim_time = float(self.world.time)
        msg.wall_time = 0.0 if self._wall_start is None else time.monotonic() - self._wall_start
        msg.robot_ids = list(self.robot_ids)
        msg.frames_published = list(self._frames)
        msg.distance_travelled = [float(self.world.distance_travelled(k)) for k in range(self.world.num_robots)]
        self.status_pub.publish(msg)

    def _finish(self) -> None:
        self._finished = True
        self.publish_status()
        self.get_logger().info(f"reached max_sim_time {self.params['max_sim_time']:g} s after "
                               f"{self.world.step_count} steps; holding still")


def parse_ready_topics(entries: list[str]) -> list[tuple[str, int, tuple[str, ...]]]:
    """'TOPIC=COUNT[@NODE,NODE...]' entries as (topic, count, fully qualified reader names); empty entries are
    skipped, malformed ones raise ValueError."""
    parsed = []
    for entry in filter(None, (e.strip() for e in entries)):
        topic, _, rest = entry.partition("=")
        count, _, names = rest.partition("@")
        readers = tuple(filter(None, (name.strip() for name in names.split(","))))
        if not topic or not count.isdigit() or any(not name.startswith("/") for name in readers):
            raise ValueError(f"ready_topics entry '{entry}' is not TOPIC=COUNT or TOPIC=COUNT@/ns/node,..., e.g. "
                             f"/robot1/bev=3@/robot1/localizer,/robot1/spatial_memory,/robot1/explorer")
        parsed.append((topic, int(count), readers))
    return parsed


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down (Ctrl-C)."""
    from spatial_memory_ros.nodes import spin_node

    return spin_node(SimWorldNode, sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())
