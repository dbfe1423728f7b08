"""The interface every simulated world offers (numpy only, no ROS), the camera model it reports, and a factory.

Two worlds implement it: the built-in ray-cast maze (sim/world.py, ``builtin``) and Memory-Maze in MuJoCo
(sim/memory_maze.py, ``memory_maze``). A node, a benchmark or a data generator that keeps to :class:`SimWorld`
runs in either:

- ``reset(seed, size)`` draws a new maze (and start poses and noise) from the seed;
- ``step(commands)`` moves every robot by one ``dt`` under its (v m/s, omega rad/s);
- per robot: ``render`` (the camera image), ``camera_model`` (intrinsics and the camera's pose on the robot),
  ``odom_pose`` / ``odom_twist`` (noisy odometry), ``true_pose`` / ``true_twist``, ``oracle_bev`` (the true BEV
  built from the world's layout by sim/oracle.py's BevOracle, in the project's BEV geometry);
- ``maze``: the layout as a wall grid in the map frame (sim/maze.py's Maze: ``walls[row, col]``, ``cell_size``
  metres, cell (0, 0) at the origin, outer walls included) with the targets, whose ``color`` is one of the
  world's ``class_names``.

Frames: the map frame has x along the grid's columns and y along its rows; the robot frame has x forward and y to
the left; headings are counter-clockwise from the map's x axis.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

import numpy as np

from spatial_memory_ros.types import BevGrid, CameraModel, Pose2D

if TYPE_CHECKING:
    from spatial_memory_ros.sim.maze import Maze, Target
    from spatial_memory_ros.sim.world import WorldConfig

WORLDS = ("builtin", "memory_maze")


class WorldUnavailable(RuntimeError):
    """A world cannot start on this machine; the message says what to install or set."""


@runtime_checkable
class SimWorld(Protocol):
    """What a simulated world offers: see the module docstring."""

    num_robots: int
    step_count: int
    maze: Maze
    config: WorldConfig

    @property
    def time(self) -> float: ...

    @property
    def class_names(self) -> tuple[str, ...]: ...

    @property
    def targets(self) -> list[Target]: ...

    @property
    def target_radius(self) -> float: ...

    def reset(self, seed: int, size: int) -> None: ...

    def step(self, commands: Sequence[tuple[float, float]]) -> None: ...

    def render(self, robot: int) -> np.ndarray: ...

    def camera_model(self, robot: int) -> CameraModel: ...

    def odom_pose(self, robot: int) -> Pose2D: ...

    def odom_twist(self, robot: int) -> tuple[float, float]: ...

    def true_pose(self, robot: int) -> Pose2D: ...

    def true_twist(self, robot: int) -> tuple[float, float]: ...

    def distance_travelled(self, robot: int) -> float: ...

    def oracle_bev(self, robot: int) -> BevGrid: ...

    def close(self) -> None: ...


def make_world(world: str = "builtin", size: int = 15, seed: int = 0, num_robots: int = 3,
               config: WorldConfig | None = None) -> SimWorld:
    """The named world (``builtin`` or ``memory_maze``) with a maze of ``size`` drawn from ``seed``.

    ``size`` is the world's own maze size: the built-in world's side in cells with the outer wall (9..15), or
    Memory-Maze's 9, 11, 13 or 15 (inside the outer wall). Raises ValueError for an unknown world and
    WorldUnavailable when Memory-Maze cannot start here.
    """
    if world == "builtin":
        from spatial_memory_ros.sim.maze import generate_maze
        from spatial_memory_ros.sim.world import World

        return World(generate_maze(size=size, seed=seed), num_robots=num_robots, seed=seed, config=config)
    if world == "memory_maze":
        from spatial_memory_ros.sim.memory_maze import MemoryMazeWorld

        return MemoryMazeWorld(size=size, seed=seed, num_robots=num_robots, config=config)
    raise ValueError(f"unknown world '{world}': expected one of {', '.join(WORLDS)}")


def world_extent(world: str, size: int) -> tuple[int, float]:
    """(cells along each side of the wall grid, outer walls included; cell size in metres) of a world's maze,
    without building it: what the map extent (SharedParameters.for_maze) needs."""
    if world == "builtin":
        return int(size), 1.0
    if world == "memory_maze":
        from spatial_memory_ros.sim.memory_maze import CELL_SIZE, check_size

        return check_size(size) + 2, CELL_SIZE
    raise ValueError(f"unknown world '{world}': expected one of {', '.join(WORLDS)}")


def world_class_names(world: str) -> tuple[str, ...]:
    """The object classes (target colours) a world's targets and BEVs use, without building it."""
    if world == "builtin":
        from spatial_memory_ros.sim.maze import CLASS_NAMES

        return tuple(CLASS_NAMES)
    if world == "memory_maze":
        from spatial_memory_ros.sim.memory_maze import CLASS_NAMES

        return tuple(CLASS_NAMES)
    raise ValueError(f"unknown world '{world}': expected one of {', '.join(WORLDS)}")


def world_layout(world: str, size: int, seed: int) -> Maze:
    """The maze (wall grid in the map frame and targets) that ``world`` draws for ``size`` and ``seed``: what the
    evaluation scores maps and goals against. Memory-Maze builds its physics for this (seconds); cached."""
    return _world_layout(world, int(size), int(seed))


@functools.lru_cache(maxsize=4)
def _world_layout(world: str, size: int, seed: int) -> Maze:
    if world == "builtin":
        from spatial_memory_ros.sim.maze import generate_maze

        return generate_maze(size=size, seed=seed)
    built = make_world(world, size=size, seed=seed, num_robots=1)
    try:
        return built.maze
    finally:
        built.close()
