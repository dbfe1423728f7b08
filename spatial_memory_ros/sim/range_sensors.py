"""Range sensors for either simulated world (numpy only, no ROS): a planar laser scan and a depth image of the
robot's camera, both ray-cast in the world's layout (``world.maze``: its wall grid; walls are
``wall_height(world)`` tall, the floor is z = 0, nothing is above the walls).

They see the walls and the floor only: targets and teammates are not in the layout (as in the BEV oracle, which
counts them as free floor). Memory-Maze's MuJoCo depth and these rays agree within 2 cm (README), so both worlds
use the rays. They are exact (no range noise), taken at the true pose.

- :func:`scan`: a LaserScan at the robot's centre (angles counter-clockwise from its heading), in REP-117's
  convention: +inf where no wall lies within ``range_max``.
- :func:`depth_image`: float32 metres along the optical axis for every pixel of ``world.camera_model(robot)``
  (REP-118; +inf where a pixel sees no wall or floor: over the walls' tops).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spatial_memory_ros.perception.depth_bev import DepthCamera
from spatial_memory_ros.perception.scan_bev import LaserScan
from spatial_memory_ros.sim.camera import RayCaster


@dataclass(frozen=True)
class ScanModel:
    """A simulated planar laser: ``count`` rays from ``angle_min`` every ``angle_increment`` (radians), returns
    valid in [range_min, range_max] metres, mounted at the robot's centre looking along its heading."""

    angle_min: float = -math.pi
    angle_increment: float = math.radians(0.5)
    count: int = 720
    range_min: float = 0.05
    range_max: float = 8.0

    @property
    def angle_max(self) -> float:
        """The last ray's angle (LaserScan.angle_max)."""
        return self.angle_min + self.angle_increment * (self.count - 1)


def default_scan_model(world) -> ScanModel:
    """A 720-ray, 0.5 degree laser (an RPLidar or Hokuyo class scanner) that reaches as far as the world's BEV
    (its view_range)."""
    return ScanModel(range_max=float(world.config.view_range))


def wall_height(world) -> float:
    """How tall the world's walls are, metres."""
    from spatial_memory_ros.sim import memory_maze
    from spatial_memory_ros.sim.maze import WALL_HEIGHT_CELLS

    if isinstance(world, memory_maze.MemoryMazeWorld):
        return memory_maze.WALL_HEIGHT
    return WALL_HEIGHT_CELLS * world.maze.cell_size


def _caster(world) -> RayCaster:
    """One ray caster per maze, kept on the world object (rebuilt when the world resets to a new maze)."""
    cached = getattr(world, "_range_sensor_caster", None)
    if cached is None or cached[0] is not world.maze:
        cached = (world.maze, RayCaster(world.maze))
        world._range_sensor_caster = cached
    return cached[1]


def scan(world, robot: int, model: ScanModel | None = None) -> LaserScan:
    """The robot's laser scan now (REP-117: +inf beyond range_max)."""
    model = model or default_scan_model(world)
    pose = world.true_pose(robot)
    angles = model.angle_min + model.angle_increment * np.arange(model.count)
    distance = _caster(world).cast(pose.x, pose.y, pose.theta + angles).distance
    ranges = np.where(distance <= model.range_max, distance, np.inf).astype(np.float32)
    return LaserScan(ranges, model.angle_min, model.angle_increment, model.range_min, model.range_max)


def depth_image(world, robot: int) -> np.ndarray:
    """The robot's camera's depth image now: (height, width) float32 metres along the optical axis, +inf where
    a pixel's ray rises over the walls."""
    camera = DepthCamera.from_camera_model(world.camera_model(robot))
    pose = world.true_pose(robot)
    v, u = np.mgrid[0:camera.height, 0:camera.width]
    rays = np.stack([((u - camera.cx) / camera.fx).reshape(-1), ((v - camera.cy) / camera.fy).reshape(-1),
                     np.ones(u.size)])
    directions = camera.transform[:3, :3] @ rays               # robot frame, per unit of depth
    origin = camera.transform[:3, 3]
    cos_t, sin_t = math.cos(pose.theta), math.sin(pose.theta)
    cam_x = pose.x + cos_t * origin[0] - sin_t * origin[1]
    cam_y = pose.y + sin_t * origin[0] + cos_t * origin[1]
    horizontal = np.hypot(directions[0], directions[1])
    bearing = np.arctan2(directions[1], directions[0])
    unique, inverse = np.unique(np.round(bearing, 9), return_inverse=True)  # a level camera: one per column
    walls = _caster(world).cast(cam_x, cam_y, pose.theta + unique).distance[inverse.reshape(-1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        to_wall = np.where(horizontal > 1e-12, walls / horizontal, np.inf)
        height_at_wall = origin[2] + to_wall * directions[2]
        to_floor = np.where(directions[2] < 0, -origin[2] / directions[2], np.inf)
    top = wall_height(world)
    depth = np.where((height_at_wall >= 0) & (height_at_wall <= top), to_wall,
                     np.where(to_floor <= to_wall, to_floor, np.inf))
    return depth.reshape(camera.height, camera.width).astype(np.float32)
