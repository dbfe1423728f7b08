"""What every simulated world tells about each of its robots, from one per-robot state record: the true and the
dead-reckoned pose, the last step's true and measured twist, and the distance travelled. The built-in world and
Memory-Maze keep such records (``self._robots``) and share these accessors instead of each writing them."""
from __future__ import annotations

from typing import Any

from spatial_memory_ros.types import Pose2D


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
