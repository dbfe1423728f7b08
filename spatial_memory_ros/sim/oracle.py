"""The built-in world's BEV oracle (numpy only, no ROS): the true egocentric bird's-eye view around a robot, built
from the maze's layout and masked to what its camera sees (field of view, range and occlusion by walls).

This is the ground truth the BEV predictor learns (perception/frames.py) and what the robots drive by when they
run on the oracle.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from spatial_memory_ros.sim.maze import CLASS_NAMES, TARGET_RADIUS_CELLS, Maze, Target
from spatial_memory_ros.types import BevGrid, Pose2D

if TYPE_CHECKING:
    from spatial_memory_ros.sim.world import WorldConfig


class BevOracle:
    """The true map around a robot, in its frame, masked to the camera's field of view, range and occlusions."""

    def __init__(self, maze: Maze, config: WorldConfig, class_names: Sequence[str] = CLASS_NAMES,
                 target_radius: float | None = None) -> None:
        """``class_names``: the world's object classes (each target's ``color`` is one); ``target_radius``:
        the targets' radius in metres (default: the built-in world's, TARGET_RADIUS_CELLS cells)."""
        self.maze = maze
        self.class_names = tuple(class_names)
        self.target_radius = TARGET_RADIUS_CELLS * maze.cell_size if target_radius is None else float(target_radius)
        self.resolution = config.bev_resolution
        self.shape = (int(config.bev_height), int(config.bev_width))
        self.origin = config.bev_origin
        half_fov = math.radians(config.fov_deg) / 2
        self.view_range = config.view_range
        self.ray_angles = np.linspace(-half_fov, half_fov, int(config.bev_rays))
        grid = BevGrid(np.zeros(self.shape, np.int8), np.zeros(self.shape, np.uint8), self.resolution, *self.origin)
        cell_x, cell_y = (a.reshape(-1) for a in grid.cell_centers())
        distance, bearing = np.hypot(cell_x, cell_y), np.arctan2(cell_y, cell_x)
        candidates = np.flatnonzero((np.abs(bearing) <= half_fov) & (distance <= config.view_range))
        self.cells = candidates
        self.cell_x, self.cell_y, self.cell_distance = cell_x[candidates], cell_y[candidates], distance[candidates]
        fan_step = (self.ray_angles[-1] - self.ray_angles[0]) / (len(self.ray_angles) - 1)
        self.cell_ray = np.clip(np.round((bearing[candidates] + half_fov) / fan_step), 0, len(self.ray_angles) - 1
                                ).astype(np.int64)
        self.wall_margin = 0.75 * self.resolution

    def compute(self, pose: Pose2D, ray_distance: np.ndarray, targets: Sequence[Target]) -> BevGrid:
        """The oracle BEV at ``pose`` given the wall distances along ``ray_angles`` (relative to the heading)."""
        occupancy = np.full(self.shape[0] * self.shape[1], -1, dtype=np.int8)
        is_wall = self._walls_at_cells(pose)
        ray_depth = _min_of_neighbours(ray_distance)[self.cell_ray]
        free_seen = ~is_wall & (self.cell_distance <= ray_depth)
        occupancy[self.cells[free_seen]] = 0
        surface = (self.cell_distance <= ray_depth + self.wall_margin) | self._hit_cells(ray_distance)
        surface |= _next_to(occupancy == 0, self.shape)[self.cells]
        occupancy[self.cells[is_wall & surface]] = 100
        occupancy = occupancy.reshape(self.shape)
        objects = self._objects(pose, ray_distance, targets, occupancy)
        return BevGrid(occupancy, objects, self.resolution, self.origin[0], self.origin[1], self.class_names)

    def _walls_at_cells(self, pose: Pose2D) -> np.ndarray:
        cos_t, sin_t = math.cos(pose.theta), math.sin(pose.theta)
        map_x = pose.x + cos_t * self.cell_x - sin_t * self.cell_y
        map_y = pose.y + sin_t * self.cell_x + cos_t * self.cell_y
        size = self.maze.cell_size
        col, row = np.floor(map_x / size).astype(np.int64), np.floor(map_y / size).astype(np.int64)
        rows, cols = self.maze.walls.shape
        inside = (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
        return ~inside | self.maze.walls[np.clip(row, 0, rows - 1), np.clip(col, 0, cols - 1)]

    def _hit_cells(self, ray_distance: np.ndarray) -> np.ndarray:
        """Which candidate cells contain the point where some ray meets a wall (so wall outlines stay closed)."""
        inward = ray_distance + 1e-3
        hit_x, hit_y = inward * np.cos(self.ray_angles), inward * np.sin(self.ray_angles)
        ix = np.floor((hit_x - self.origin[0]) / self.resolution).astype(np.int64)
        iy = np.floor((hit_y - self.origin[1]) / self.resolution).astype(np.int64)
        inside = (ix >= 0) & (ix < self.shape[1]) & (iy >= 0) & (iy < self.shape[0]) & (ray_distance <= self.view_range)
        marked = np.zeros(self.shape[0] * self.shape[1], dtype=bool)
        marked[iy[inside] * self.shape[1] + ix[inside]] = True
        return marked[self.cells]

    def _objects(self, pose: Pose2D, ray_distance: np.ndarray, targets: Sequence[Target],
                 occupancy: np.ndarray) -> np.ndarray:
        objects = np.zeros(self.shape, dtype=np.uint8)
        cos_t, sin_t = math.cos(pose.theta), math.sin(pose.theta)
        radius = max(self.target_radius, 0.5 * self.resolution)
        for target in targets:
            rel_x, rel_y = target.x - pose.x, target.y - pose.y
            forward, left = rel_x * cos_t + rel_y * sin_t, -rel_x * sin_t + rel_y * cos_t
            if self._target_visible(forward, left, ray_distance):
                self._mark_target(objects, occupancy, forward, left, radius, self.class_names.index(target.color) + 1)
        return objects

    def _target_visible(self, forward: float, left: float, ray_distance: np.ndarray) -> bool:
        distance, bearing = math.hypot(forward, left), math.atan2(left, forward)
        if abs(bearing) > self.ray_angles[-1] or distance > self.view_range:
            return False
        ray = int(np.argmin(np.abs(self.ray_angles - bearing)))
        return distance <= ray_distance[ray]

    def _mark_target(self, objects: np.ndarray, occupancy: np.ndarray, forward: float, left: float,
                     radius: float, class_id: int) -> None:
        res, (origin_x, origin_y) = self.resolution, self.origin
        ix0, ix1 = math.floor((forward - radius - origin_x) / res), math.floor((forward + radius - origin_x) / res)
        iy0, iy1 = math.floor((left - radius - origin_y) / res), math.floor((left + radius - origin_y) / res)
        for iy in range(max(iy0, 0), min(iy1, self.shape[0] - 1) + 1):
            for ix in range(max(ix0, 0), min(ix1, self.shape[1] - 1) + 1):
                centre_x, centre_y = origin_x + (ix + 0.5) * res, origin_y + (iy + 0.5) * res
                near = math.hypot(centre_x - forward, centre_y - left) <= radius + 0.5 * res
                if near and occupancy[iy, ix] == 0:
                    objects[iy, ix] = class_id


def _min_of_neighbours(values: np.ndarray) -> np.ndarray:
    """Each value's minimum with its neighbours: the depth a cell needs to clear between two rays of the fan."""
    padded = np.concatenate([values[:1], values, values[-1:]])
    return np.minimum(np.minimum(padded[:-2], padded[1:-1]), padded[2:])


def _next_to(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flat bool mask of the cells 4-adjacent to a cell set in the flat ``mask`` of a grid of ``shape``."""
    grid = mask.reshape(shape)
    near = np.zeros_like(grid)
    near[1:] |= grid[:-1]
    near[:-1] |= grid[1:]
    near[:, 1:] |= grid[:, :-1]
    near[:, :-1] |= grid[:, 1:]
    return near.reshape(-1)
