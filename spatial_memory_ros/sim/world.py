"""A simulated team of camera robots in Memory-Maze-style mazes (numpy only, no ROS).

Each robot is a differential-drive disc with a forward camera (sim/camera.py), noisy wheel odometry, and an oracle
bird's-eye view (BEV, sim/oracle.py): the true geometry around it masked to what the camera sees. The mazes come
from sim/maze.py.

Frames: the map frame has x along the grid's columns and y along its rows, in metres (sim/maze.py). The robot
frame has x forward and y to the left; headings are counter-clockwise from the map's x axis.

Everything random takes a seed: the same seeds give byte-identical mazes, poses and images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from spatial_memory_ros.sim.camera import CAMERA_HEIGHT_CELLS, Renderer, RayCaster, RayHits, Sprite
from spatial_memory_ros.types import CameraModel, wrap_angle
from spatial_memory_ros.sim.maze import (CLASS_NAMES, TARGET_HEIGHT_CELLS, TARGET_RADIUS_CELLS, Maze, Target,
                                         generate_maze)
from spatial_memory_ros.sim.oracle import BevOracle
from spatial_memory_ros.sim.robot_states import RobotStates, validated_commands
from spatial_memory_ros.types import BevGrid, Pose2D

TEAMMATE_HEIGHT_CELLS = 0.35
TEAMMATE_RGB = (70, 70, 75)
_BISECTION_STEPS = 12


@dataclass
class WorldConfig:
    """Simulation, robot, sensor and BEV settings (SI units)."""

    dt: float = 0.1
    robot_radius: float = 0.2
    max_linear_speed: float = 1.0
    max_angular_speed: float = 2.0
    odom_linear_noise: float = 0.05
    odom_angular_noise_deg: float = 2.0
    image_size: int = 64
    fov_deg: float = 90.0
    view_range: float = 8.0
    bev_resolution: float = 0.25
    bev_width: int = 32
    bev_height: int = 32
    bev_rays: int = 181
    render_teammates: bool = True

    def __post_init__(self) -> None:
        positive = ("dt", "robot_radius", "max_linear_speed", "max_angular_speed", "view_range", "bev_resolution")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"WorldConfig.{name} must be a positive finite number, got {value}")
        for name in ("odom_linear_noise", "odom_angular_noise_deg"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"WorldConfig.{name} must be a non-negative finite number, got {value}")
        if not 0 < self.fov_deg < 180:
            raise ValueError(f"WorldConfig.fov_deg must be in (0, 180), got {self.fov_deg}")
        for name, low in (("image_size", 8), ("bev_width", 1), ("bev_height", 1), ("bev_rays", 2)):
            if int(getattr(self, name)) < low:
                raise ValueError(f"WorldConfig.{name} must be at least {low}, got {getattr(self, name)}")

    @property
    def bev_origin(self) -> tuple[float, float]:
        """Robot-frame corner of BEV cell (0, 0): the grid starts at the robot and is centred sideways."""
        return 0.0, -0.5 * self.bev_height * self.bev_resolution


# --------------------------------------------------------------------------------------------- world


def _arc_displacement(theta: float, v: float, omega: float, dt: float) -> tuple[float, float]:
    """Exact displacement of a differential-drive base moving at constant (v, omega) for dt."""
    half_turn = 0.5 * omega * dt
    chord = v * dt * (math.sin(half_turn) / half_turn if abs(half_turn) > 1e-9 else 1.0)
    return chord * math.cos(theta + half_turn), chord * math.sin(theta + half_turn)


@dataclass
class _RobotState:
    true_pose: Pose2D
    odom_pose: Pose2D
    true_twist: tuple[float, float] = (0.0, 0.0)
    odom_twist: tuple[float, float] = (0.0, 0.0)
    distance: float = 0.0


class World(RobotStates):
    """A maze with a team of differential-drive camera robots, stepped with a fixed dt."""

    def __init__(self, maze: Maze, num_robots: int = 3, seed: int = 0, config: WorldConfig | None = None) -> None:
        """Place ``num_robots`` robots at distinct free cells (different rooms where possible), seeded."""
        self.maze = maze
        self.config = config or WorldConfig()
        if num_robots < 1:
            raise ValueError(f"num_robots must be at least 1, got {num_robots}")
        self.num_robots = int(num_robots)
        self.step_count = 0
        self._rng = np.random.default_rng([seed, 0x5140])
        self._robots = [_RobotState(pose, Pose2D(pose.x, pose.y, pose.theta)) for pose in self._start_poses()]
        self._caster = RayCaster(maze)
        self._camera = Renderer(maze, self.config)
        self._oracle = BevOracle(maze, self.config)
        self._ray_angles = np.concatenate([self._camera.column_angles, self._oracle.ray_angles])
        self._ray_cache: dict[int, tuple[tuple[float, float, float], RayHits]] = {}

    @property
    def target_radius(self) -> float:
        """Radius (m) of the targets as the oracle BEVs draw them."""
        return float(self._oracle.target_radius)

    @property
    def time(self) -> float:
        """Simulated seconds since the start."""
        return self.step_count * self.config.dt

    # The world interface (sim/interface.py) beyond stepping and sensing.

    @property
    def class_names(self) -> tuple[str, ...]:
        """The object classes of this world's targets and BEVs."""
        return tuple(CLASS_NAMES)

    @property
    def targets(self) -> list[Target]:
        """The maze's targets (map frame, ``color`` one of ``class_names``)."""
        return list(self.maze.targets)

    def reset(self, seed: int, size: int) -> None:
        """A new maze of ``size`` cells (outer wall included) from ``seed``, with new start poses and noise."""
        maze = generate_maze(size=size, seed=seed, cell_size=self.maze.cell_size)
        self.__init__(maze, num_robots=self.num_robots, seed=seed, config=self.config)

    def camera_model(self, robot: int) -> CameraModel:
        """The robot's camera: a level pinhole at the robot's centre, CAMERA_HEIGHT_CELLS cells above the floor."""
        self._robot(robot)
        size = int(self.config.image_size)
        return CameraModel.pinhole(size, size, self.config.fov_deg, CAMERA_HEIGHT_CELLS * self.maze.cell_size)

    def close(self) -> None:
        """Nothing to release (the interface's close)."""

    def restyle_camera(self, rng: np.random.Generator) -> None:
        """Give the camera a random appearance (sim/camera.py ``Renderer.restyle``; training data only)."""
        self._camera.restyle(rng)

    def _start_poses(self) -> list[Pose2D]:
        free = self.maze.free_cells()
        target_cells = {self.maze.cell_of(t.x, t.y) for t in self.maze.targets}
        rooms = self.maze.room_ids[free[:, 0], free[:, 1]]
        room_order = self._rng.permutation(np.unique(rooms))
        cell_order = self._rng.permutation(len(free))
        ranked = sorted(cell_order, key=lambda k: (tuple(free[k]) in target_cells,
                                                   int(np.flatnonzero(room_order == rooms[k])[0])))
        poses, used_rooms, used_cells = [], set(), set()
        for prefer_new_room in (True, False):
            for k in ranked:
                if len(poses) == self.num_robots:
                    return poses
                room, cell = int(rooms[k]), tuple(int(v) for v in free[k])
                if cell in used_cells or (prefer_new_room and room in used_rooms):
                    continue
                used_rooms.add(room)
                used_cells.add(cell)
                x, y = self.maze.cell_center(*cell)
                poses.append(Pose2D(x, y, float(self._rng.uniform(-math.pi, math.pi))))
        if len(poses) < self.num_robots:
            raise ValueError(f"the maze has only {len(free)} free cells for {self.num_robots} robots")
        return poses

    def set_pose(self, robot: int, pose: Pose2D, reset_odometry: bool = True) -> None:
        """Teleport a robot (tests, data generation); raises ValueError if it would overlap a wall or a robot."""
        state = self._robot(robot)
        if not all(math.isfinite(v) for v in (pose.x, pose.y, pose.theta)):
            raise ValueError(f"pose must be finite, got {pose}")
        if self._collides(robot, pose.x, pose.y):
            raise ValueError(f"pose ({pose.x:.3f}, {pose.y:.3f}) overlaps a wall or another robot")
        state.true_pose = Pose2D(float(pose.x), float(pose.y), wrap_angle(float(pose.theta)))
        if reset_odometry:
            state.odom_pose = Pose2D(state.true_pose.x, state.true_pose.y, state.true_pose.theta)

    def step(self, commands: Sequence[tuple[float, float]]) -> None:
        """Advance every robot by dt under (v m/s, omega rad/s) commands, clamped to the speed limits.

        Robots move in index order; a move that would overlap a wall or another robot stops at the last free
        point along its path (turning always succeeds). Raises ValueError, changing nothing, for commands that
        are non-finite or not one (v, omega) pair per robot.
        """
        limits = self._validated_commands(commands)
        noise = self._rng.standard_normal((self.num_robots, 2))
        for robot, ((v, omega), (linear_noise, angular_noise)) in enumerate(zip(limits, noise)):
            self._move(robot, v, omega)
            self._measure(robot, linear_noise, angular_noise)
        self.step_count += 1

    def _validated_commands(self, commands: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        return validated_commands(commands, self.num_robots, self.config.max_linear_speed,
                                  self.config.max_angular_speed)

    def _move(self, robot: int, v: float, omega: float) -> None:
        state, dt = self._robots[robot], self.config.dt
        pose = state.true_pose
        dx, dy = _arc_displacement(pose.theta, v, omega, dt)
        fraction = self._free_fraction(robot, pose.x, pose.y, dx, dy)
        state.true_pose = Pose2D(pose.x + fraction * dx, pose.y + fraction * dy, wrap_angle(pose.theta + omega * dt))
        state.true_twist = (fraction * v, omega)
        state.distance += fraction * math.hypot(dx, dy)

    def _free_fraction(self, robot: int, x: float, y: float, dx: float, dy: float) -> float:
        """How much of the straight move (dx, dy) the robot can make before touching a wall or robot."""
        length = math.hypot(dx, dy)
        if length == 0.0:
            return 1.0
        samples = max(1, math.ceil(length / (0.5 * self.config.robot_radius)))
        free = 0.0
        for k in range(1, samples + 1):
            blocked = k / samples
            if self._collides(robot, x + blocked * dx, y + blocked * dy):
                for _ in range(_BISECTION_STEPS):
                    middle = 0.5 * (free + blocked)
                    if self._collides(robot, x + middle * dx, y + middle * dy):
                        blocked = middle
                    else:
                        free = middle
                return free
            free = blocked
        return 1.0

    def _collides(self, robot: int, x: float, y: float) -> bool:
        radius = self.config.robot_radius
        if self.maze.disc_collides(x, y, radius):
            return True
        limit = (2.0 * radius) ** 2
        for other, state in enumerate(self._robots):
            if other != robot and (state.true_pose.x - x) ** 2 + (state.true_pose.y - y) ** 2 < limit:
                return True
        return False

    def _measure(self, robot: int, linear_noise: float, angular_noise: float) -> None:
        state, config = self._robots[robot], self.config
        v, omega = state.true_twist
        measured = (v * (1.0 + config.odom_linear_noise * linear_noise),
                    omega + math.radians(config.odom_angular_noise_deg) * angular_noise)
        odom = state.odom_pose
        dx, dy = _arc_displacement(odom.theta, measured[0], measured[1], config.dt)
        state.odom_pose = Pose2D(odom.x + dx, odom.y + dy, wrap_angle(odom.theta + measured[1] * config.dt))
        state.odom_twist = measured

    def _rays(self, robot: int) -> RayHits:
        pose = self._robot(robot).true_pose
        key = (pose.x, pose.y, pose.theta)
        cached = self._ray_cache.get(robot)
        if cached is None or cached[0] != key:
            cached = (key, self._caster.cast(pose.x, pose.y, pose.theta + self._ray_angles))
            self._ray_cache[robot] = cached
        return cached[1]

    def _sprites(self, robot: int) -> list[Sprite]:
        size = self.maze.cell_size
        sprites = [Sprite(t.x, t.y, TARGET_RADIUS_CELLS * size, TARGET_HEIGHT_CELLS * size, t.rgb)
                   for t in self.maze.targets]
        if self.config.render_teammates:
            sprites += [Sprite(s.true_pose.x, s.true_pose.y, self.config.robot_radius, TEAMMATE_HEIGHT_CELLS * size,
                                TEAMMATE_RGB) for k, s in enumerate(self._robots) if k != robot]
        return sprites

    def column_depths(self, robot: int) -> np.ndarray:
        """Perpendicular distance (metres) to the wall seen in each image column of the robot's camera."""
        columns = self._camera.size
        return self._rays(robot).distance[:columns] * self._camera.column_cos

    def render(self, robot: int) -> np.ndarray:
        """The robot's first-person camera image, (image_size, image_size, 3) uint8 RGB, row 0 at the top."""
        hits = self._rays(robot)
        columns = self._camera.size
        column_hits = RayHits(hits.distance[:columns], hits.face[:columns], hits.u[:columns], hits.side[:columns])
        return self._camera.render(self._robots[robot].true_pose, column_hits, self._sprites(robot))

    def oracle_bev(self, robot: int) -> BevGrid:
        """The true egocentric BEV around the robot, masked to its camera's view (field of view, range, occlusion)."""
        ray_distance = self._rays(robot).distance[self._camera.size:]
        return self._oracle.compute(self._robots[robot].true_pose, ray_distance, self.maze.targets)
