"""The state of a recorded run at one moment, built from its messages (ROS-free: messages are read by their field
names, so rosbags dataclasses and rclpy messages both work): the true maze and, per robot ``/robotK``, its map,
belief, trails, partners, camera and team-link statistics. render.py draws it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from spatial_memory_ros.evaluation.plots import ROBOT_COLOURS_RGB

MAZE_TOPIC = "/ground_truth/map"
CLOCK_TOPIC = "/clock"
ROBOT_SUFFIXES = ("map", "belief", "pose", "ground_truth/pose", "partners", "camera/image_raw", "comm/stats")
NOT_ROBOTS = {"ground_truth", "team", "sim", "tf", "rosout"}
_ROBOT_TOPIC = re.compile(r"^/([^/]+)/(" + "|".join(re.escape(s) for s in ROBOT_SUFFIXES) + r")$")


# ---------------------------------------------------------------------------------------------- message values

@dataclass(frozen=True)
class Grid:
    """An occupancy grid (int8 [row, col], row 0 at ``origin_y``) on a map-frame lattice."""

    values: np.ndarray
    resolution: float
    origin_x: float = 0.0
    origin_y: float = 0.0

    @classmethod
    def from_msg(cls, msg) -> Grid | None:
        """The grid of a nav_msgs/OccupancyGrid, or None if its size and data disagree."""
        info = msg.info
        data = np.asarray(msg.data, dtype=np.int8)
        if info.width * info.height == 0 or data.size != info.width * info.height or not info.resolution > 0:
            return None
        return cls(data.reshape(info.height, info.width), float(info.resolution),
                   float(info.origin.position.x), float(info.origin.position.y))

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in metres."""
        rows, cols = self.values.shape
        return (self.origin_x, self.origin_y, self.origin_x + cols * self.resolution,
                self.origin_y + rows * self.resolution)


@dataclass(frozen=True)
class Pose:
    """A planar pose with its x-y covariance (2x2, m^2)."""

    x: float
    y: float
    yaw: float
    covariance: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))

    @classmethod
    def from_msg(cls, msg) -> Pose | None:
        """The pose of a geometry_msgs/PoseWithCovariance (or a message holding one as ``pose``); None if not finite."""
        inner = msg.pose if hasattr(msg.pose, "covariance") else msg
        position, q = inner.pose.position, inner.pose.orientation
        yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
        cov = np.asarray(inner.covariance, dtype=np.float64)
        covariance = cov.reshape(6, 6)[:2, :2] if cov.size == 36 else np.zeros((2, 2))
        values = (position.x, position.y, yaw)
        if not all(math.isfinite(v) for v in values) or not np.all(np.isfinite(covariance)):
            return None
        return cls(float(position.x), float(position.y), yaw, covariance)


@dataclass(frozen=True)
class Partner:
    """A teammate as one robot believes it to be."""

    robot_id: str
    pose: Pose
    age: float
    packets_received: int


@dataclass(frozen=True)
class CommStats:
    """What a robot's team link has spent."""

    bits_per_step: float
    budget_bits_per_step: int
    packets_sent: int
    packets_received: int


def stamp_seconds(msg) -> float | None:
    """Seconds of a message's header stamp (or of a rosgraph_msgs/Clock); None if it has neither."""
    stamp = getattr(getattr(msg, "header", None), "stamp", None) or getattr(msg, "clock", None)
    return None if stamp is None else stamp.sec + stamp.nanosec * 1e-9


def image_to_rgb(msg) -> np.ndarray | None:
    """An RGB uint8 array of a sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8 or mono8); None for other encodings."""
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}.get(msg.encoding)
    data = np.asarray(msg.data, dtype=np.uint8)
    if channels is None or msg.height * msg.step > data.size or msg.step < msg.width * channels:
        return None
    rows = data[:msg.height * msg.step].reshape(msg.height, msg.step)[:, :msg.width * channels]
    pixels = rows.reshape(msg.height, msg.width, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    pixels = pixels[:, :, :3]
    return pixels[:, :, ::-1].copy() if msg.encoding.startswith("bgr") else pixels.copy()


# ---------------------------------------------------------------------------------------------- the scene

@dataclass
class RobotState:
    """Everything one robot has published so far."""

    truth: list[tuple[float, float]] = field(default_factory=list)
    estimate: list[tuple[float, float]] = field(default_factory=list)
    truth_pose: Pose | None = None
    estimate_pose: Pose | None = None
    map: Grid | None = None
    belief: Grid | None = None
    partners: list[Partner] = field(default_factory=list)
    camera: np.ndarray | None = None
    comm: CommStats | None = None


def robot_topics(topics) -> dict[str, list[str]]:
    """Robot namespace -> the drawable topics it has, from a collection of topic names."""
    robots: dict[str, list[str]] = {}
    for topic in topics:
        match = _ROBOT_TOPIC.match(topic)
        if match and match.group(1) not in NOT_ROBOTS:
            robots.setdefault(match.group(1), []).append(topic)
    return dict(sorted(robots.items(), key=lambda item: _natural_key(item[0])))


def is_drawn(topic: str) -> bool:
    """True for the topics the pictures use: the maze and every robot's drawable topics."""
    match = _ROBOT_TOPIC.match(topic)
    return topic == MAZE_TOPIC or bool(match and match.group(1) not in NOT_ROBOTS)


def _natural_key(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


class Scene:
    """The state of a run at one moment, built by applying its messages in time order."""

    def __init__(self, robots: list[str]) -> None:
        self.robots = {name: RobotState() for name in sorted(robots, key=_natural_key)}
        self.maze: Grid | None = None
        self.time = 0.0

    def colour(self, robot: str) -> tuple[int, int, int]:
        """The robot's colour (RGB), by its place in the team (as in plots.draw_trajectories); grey if unknown."""
        names = list(self.robots)
        if robot not in names:
            return (120, 120, 120)
        return ROBOT_COLOURS_RGB[names.index(robot) % len(ROBOT_COLOURS_RGB)]

    def apply(self, topic: str, msg) -> None:
        """Take one decoded message; topics that are not drawn are ignored."""
        if topic == MAZE_TOPIC:
            self.maze = Grid.from_msg(msg) or self.maze
            return
        match = _ROBOT_TOPIC.match(topic)
        if match and match.group(1) in self.robots:
            _APPLY[match.group(2)](self.robots[match.group(1)], msg)


def _apply_map(robot: RobotState, msg) -> None:
    robot.map = Grid.from_msg(msg) or robot.map


def _apply_belief(robot: RobotState, msg) -> None:
    robot.belief = Grid.from_msg(msg) or robot.belief


def _apply_estimate(robot: RobotState, msg) -> None:
    pose = Pose.from_msg(msg)
    if pose is not None:
        robot.estimate_pose = pose
        robot.estimate.append((pose.x, pose.y))


def _apply_truth(robot: RobotState, msg) -> None:
    pose = Pose.from_msg(msg)
    if pose is not None:
        robot.truth_pose = pose
        robot.truth.append((pose.x, pose.y))


def _apply_partners(robot: RobotState, msg) -> None:
    partners = []
    for state in msg.partners:
        pose = Pose.from_msg(state)
        if pose is not None:
            partners.append(Partner(state.robot_id, pose, float(state.age), int(state.packets_received)))
    robot.partners = partners


def _apply_camera(robot: RobotState, msg) -> None:
    image = image_to_rgb(msg)
    if image is not None:
        robot.camera = image


def _apply_comm(robot: RobotState, msg) -> None:
    robot.comm = CommStats(float(msg.payload_bits_per_step), int(msg.budget_bits_per_step),
                           int(msg.packets_sent), int(msg.packets_received))


_APPLY = {"map": _apply_map, "belief": _apply_belief, "pose": _apply_estimate, "ground_truth/pose": _apply_truth,
          "partners": _apply_partners, "camera/image_raw": _apply_camera, "comm/stats": _apply_comm}
