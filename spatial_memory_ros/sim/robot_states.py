"""What every simulated world tells about each of its robots, from one per-robot state record (the true and the
dead-reckoned pose, the last step's true and measured twist, the distance travelled), and how it checks the robots'
commands. The built-in world and Memory-Maze keep such records (``self._robots``) and share these pieces instead of
each writing them."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from spatial_memory_ros.types import Pose2D


def validated_commands(commands: Sequence[tuple[float, float]], num_robots: int, max_linear_speed: float,
                       max_angular_speed: float) -> list[tuple[float, float]]:
    """One (v, omega) per robot as floats, clipped to the speed limits; ValueError naming what is wrong (not
    numbers, the wrong count, or a non-finite command and whose)."""
    try:
        array = np.asarray(commands, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"commands must be numbers (v, omega) per robot: {error}") from None
    if array.shape != (num_robots, 2):
        raise ValueError(f"expected {num_robots} commands of (v, omega), got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad.size:
        raise ValueError(f"non-finite command for robot(s) {bad.tolist()}: {array[bad].tolist()}")
    v = np.clip(array[:, 0], -max_linear_speed, max_linear_speed)
    omega = np.clip(array[:, 1], -max_angular_speed, max_angular_speed)
    return list(zip(v.tolist(), omega.tolist()))


class RobotStates:
    """Accessors over ``self._robots``: one record per robot with ``true_pose``, ``odom_pose``, ``true_twist``,
    ``odom_twist`` and ``distance``."""

    num_robots: int
    _robots: list[Any]

    def _robot(self, robot: int) -> Any:
        if not 0 <= robot < self.num_robots:
            raise IndexError(f"robot index {robot} out of range 0..{self.num_robots - 1}")
        return self._robots[robot]

    def true_pose(self, robot: int) -> Pose2D:
        """The robot's ground-truth pose in the map frame."""
        pose = self._robot(robot).true_pose
        return Pose2D(pose.x, pose.y, pose.theta)

    def odom_pose(self, robot: int) -> Pose2D:
        """Dead reckoning: the integral of the measured (noisy) twist from the start pose."""
        pose = self._robot(robot).odom_pose
        return Pose2D(pose.x, pose.y, pose.theta)

    def true_twist(self, robot: int) -> tuple[float, float]:
        """Last step's actual (forward speed m/s, yaw rate rad/s), from the robot's motion over the step."""
        return self._robot(robot).true_twist

    def odom_twist(self, robot: int) -> tuple[float, float]:
        """Last step's measured (forward speed, yaw rate), with odometry noise."""
        return self._robot(robot).odom_twist

    def distance_travelled(self, robot: int) -> float:
        """Total path length the robot actually moved, metres."""
        return self._robot(robot).distance
