"""Memory-Maze (Pasukonis et al. 2022; MuJoCo through dm_control) as a world behind sim/interface.py, headless.

Each robot has its own MuJoCo physics instance of the same maze (copies of one compiled model and state), so the
robots cannot see or bump into each other: each sees the maze and its targets alone.

Driving: Memory-Maze's walker is a ball rolled by a torque motor with a steered head (dm_control's
RollingBallWithHead, with Memory-Maze's extra joint damping). Its own action is (roll, steer) in [-1, 1]^2; the gym
ids quantise it to 6 discrete actions at 4 Hz. Here the walker is driven by velocity instead: every physics step
(200 Hz) a controller sets (roll, steer) from the commanded (v, omega) by feed-forward through the walker's measured
steady-state response (about 2 m/s and 1.5 rad/s per unit, steering has a dead zone of about 0.14 from torsional
friction) plus proportional feedback on the measured speed and yaw rate, so a robot follows continuous (v, omega)
commands, up to MAX_LINEAR_SPEED and MAX_ANGULAR_SPEED, wherever walls do not stop it (MuJoCo's contacts).

Sensing: the camera image is MuJoCo's render of the walker's egocentric camera (64x64, fovy 80 deg, 0.9 m high,
0.15 m ahead of the head's centre, pitched 5.71 deg down); odometry is the walker's own motion over each step with
the same noise as the built-in world (5% of speed, 2 deg/s on the yaw rate by default, integrated on arcs); the true
pose is the head's (agent_pos / agent_dir); the oracle BEV is sim/oracle.py's BevOracle on the layout converted to a
wall grid (2 m cells, outer walls added) with the targets (spheres of radius 0.6 m) and their colours.

Map frame: cell (0, 0) of the wall grid (outer walls included) at the origin, so map xy = MuJoCo world xy +
(size + 2) metres, and Memory-Maze's agent_pos (layout units, outer walls removed) = map xy / 2 - 1.

mujoco, dm_control and memory_maze are imported only when a world is built; MUJOCO_GL is set to egl first unless
already set. Any failure to start raises WorldUnavailable saying what to install or set.
"""
from __future__ import annotations

import math
import os
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from spatial_memory_ros.sim.camera import RayCaster
from spatial_memory_ros.sim.interface import WorldUnavailable
from spatial_memory_ros.types import CameraModel
from spatial_memory_ros.sim.maze import Maze, Target
from spatial_memory_ros.sim.oracle import BevOracle
from spatial_memory_ros.sim.robot_states import RobotStates, validated_commands
from spatial_memory_ros.sim.world import WorldConfig, _arc_displacement
from spatial_memory_ros.types import BevGrid, Pose2D, wrap_angle

CLASS_NAMES: tuple[str, ...] = ("red", "green", "blue", "purple", "yellow", "salmon")
"""Memory-Maze's target colours in its own order (memory_maze.maze.TARGET_COLORS): target k has colour k."""
SIZES = (9, 11, 13, 15)
"""Memory-Maze's maze sizes (inside the outer walls); 3, 4, 5 and 6 targets."""
CELL_SIZE = 2.0
WALL_HEIGHT = 1.5
TARGET_RADIUS = 0.6
CAMERA_FOVY_DEG = 80.0
CAMERA_HEIGHT = 0.9
CAMERA_FORWARD = 0.15
CAMERA_PITCH = math.atan2(0.09950371902, 0.99503719021)  # the walker XML's camera zaxis: 5.71 deg down
IMAGE_SIZE = 64
PHYSICS_TIMESTEP = 0.005
MUJOCO_VERSION = "3.17.0"
REQUIREMENTS = f"memory-maze==1.0.3 mujoco=={MUJOCO_VERSION} dm-control==1.0.50 gym==0.26.2"

MAX_LINEAR_SPEED = 2.0    # m/s, the walker's top speed (roll action 1)
MAX_ANGULAR_SPEED = 1.25  # rad/s, a little under its top yaw rate (steer action 1: 1.28 rad/s)
_ROLL_GAIN = 2.0          # m/s per unit of roll action, steady state
_STEER_GAIN = 1.5         # rad/s per unit of steer action beyond the dead zone, steady state
_STEER_DEAD_ZONE = 0.145  # steer action that torsional friction absorbs
_ROLL_FEEDBACK = 0.5      # roll action per m/s of speed error
_STEER_FEEDBACK = 0.3     # steer action per rad/s of yaw-rate error


def check_size(size: int) -> int:
    """``size`` as an int if it is one of Memory-Maze's sizes, else ValueError."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or int(size) not in SIZES:
        raise ValueError(f"Memory-Maze size must be one of {', '.join(map(str, SIZES))}, got {size!r}")
    return int(size)


def camera_model() -> CameraModel:
    """Memory-Maze's egocentric camera as a pinhole model with its mount on the walker."""
    return CameraModel.pinhole(IMAGE_SIZE, IMAGE_SIZE, CAMERA_FOVY_DEG, CAMERA_HEIGHT, CAMERA_FORWARD, CAMERA_PITCH)


def default_config(config: WorldConfig | None = None) -> WorldConfig:
    """``config`` (default: WorldConfig()) with Memory-Maze's camera (80 deg, 64 px) and the walker's size."""
    config = config or WorldConfig()
    return replace(config, fov_deg=CAMERA_FOVY_DEG, image_size=IMAGE_SIZE, robot_radius=0.2, render_teammates=False)


def _load_tasks() -> Any:
    """memory_maze.tasks, with MUJOCO_GL defaulting to egl and the mujoco version checked."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import mujoco
    except ImportError as error:
        raise WorldUnavailable(f"Memory-Maze needs MuJoCo: pip install {REQUIREMENTS} (make setup installs them; "
                               f"{error})") from None
    except Exception as error:  # noqa: BLE001 - mujoco loads the MUJOCO_GL backend on import: say what to do
        raise WorldUnavailable(_gl_problem(error)) from None
    if not mujoco.__version__.startswith(MUJOCO_VERSION.rsplit(".", 1)[0] + "."):
        raise WorldUnavailable(f"Memory-Maze needs mujoco {MUJOCO_VERSION} (dm_control breaks on mujoco "
                               f"{mujoco.__version__}): pip install mujoco=={MUJOCO_VERSION}")
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from memory_maze import tasks
    except ImportError as error:
        raise WorldUnavailable(f"Memory-Maze is not installed: pip install {REQUIREMENTS} ({error})") from None
    except Exception as error:  # noqa: BLE001 - dm_control loads its GL backend on import: say what to do
        raise WorldUnavailable(_gl_problem(error)) from None
    return tasks


def _gl_problem(error: BaseException) -> str:
    gl = os.environ.get("MUJOCO_GL", "")
    return (f"Memory-Maze cannot render with MUJOCO_GL={gl} ({type(error).__name__}: {error}). MUJOCO_GL=egl "
            "needs Mesa's libEGL (apt-get install libegl1 libgl1-mesa-dri); or apt-get install libosmesa6 and set "
            "MUJOCO_GL=osmesa")


class _Robot:
    """One robot: its own physics, its true and dead-reckoned state."""

    def __init__(self, physics: Any) -> None:
        self.physics = physics
        self.true_pose = Pose2D(0.0, 0.0, 0.0)
        self.odom_pose = Pose2D(0.0, 0.0, 0.0)
        self.true_twist = (0.0, 0.0)
        self.odom_twist = (0.0, 0.0)
        self.distance = 0.0
        self.image: np.ndarray | None = None
        self.rays: tuple[tuple[float, float, float], np.ndarray] | None = None


class MemoryMazeWorld(RobotStates):
    """Memory-Maze with a team of robots driven by (v, omega): the world interface of sim/interface.py."""

    def __init__(self, size: int = 15, seed: int = 0, num_robots: int = 3, config: WorldConfig | None = None) -> None:
        if num_robots < 1:
            raise ValueError(f"num_robots must be at least 1, got {num_robots}")
        self.num_robots = int(num_robots)
        self.config = default_config(config)
        self._substeps = max(1, round(self.config.dt / PHYSICS_TIMESTEP))
        if not math.isclose(self._substeps * PHYSICS_TIMESTEP, self.config.dt, rel_tol=1e-6):
            raise ValueError(f"Memory-Maze steps its physics every {PHYSICS_TIMESTEP} s: dt must be a multiple "
                             f"of it, got {self.config.dt}")
        self._tasks = _load_tasks()
        self._env: Any = None
        self._robots: list[_Robot] = []
        self.reset(seed, size)

    # ------------------------------------------------------------------------------------------ building

    def reset(self, seed: int, size: int) -> None:
        """A new Memory-Maze of ``size`` (9, 11, 13, 15) from ``seed``: its layout and targets, each robot's
        start at a distinct free cell (not a target's), new odometry noise."""
        size = check_size(size)
        self.close()
        self.size, self.seed, self.step_count = size, int(seed), 0
        self._rng = np.random.default_rng([int(seed), 0x3A3E])
        self._env, self._walker, observation = self._build_env(size, int(seed))
        self._offset = float(size + 2)  # map xy = MuJoCo world xy + offset
        self.maze = self._layout(observation)
        self._caster = RayCaster(self.maze)
        self._oracle = BevOracle(self.maze, self.config, CLASS_NAMES, TARGET_RADIUS)
        base = self._env.physics
        physics = [base] + [base.copy(share_model=True) for _ in range(self.num_robots - 1)]
        self._robots = [_Robot(p) for p in physics]
        self._joints = self._joint_indices(base)
        for robot, pose in zip(self._robots, self._start_poses()):
            self._place(robot, pose)
        try:
            for robot in range(self.num_robots):  # each physics makes its GL context on its first render (~1 s)
                self.render(robot)
        except Exception as error:  # noqa: BLE001 - any GL failure: say what to do
            self.close()
            raise WorldUnavailable(_gl_problem(error)) from None

    def _build_env(self, size: int, seed: int) -> tuple[Any, Any, dict]:
        factory = getattr(self._tasks, f"memory_maze_{size}x{size}")
        try:
            env = factory(global_observables=True, target_color_in_image=False, discrete_actions=False,
                          seed=seed, control_freq=1.0 / self.config.dt)
            observation = env.reset().observation
        except AttributeError as error:
            if "flex" in str(error) or "MjModel" in str(error):
                raise WorldUnavailable(f"dm_control does not match this mujoco ({error}): pip install "
                                       f"{REQUIREMENTS}") from None
            raise WorldUnavailable(_gl_problem(error)) from None
        except Exception as error:  # noqa: BLE001 - the first observation renders: a GL failure shows here
            if "GL" in type(error).__name__ or "GL" in str(error) or "render" in str(error).lower():
                raise WorldUnavailable(_gl_problem(error)) from None
            raise
        return env, env.task._walker, observation

    def _layout(self, observation: dict) -> Maze:
        return layout_maze(observation["maze_layout"], observation["targets_pos"], self.seed)

    def _joint_indices(self, physics: Any) -> dict[str, int]:
        model = physics.model
        prefix = self._walker.mjcf_model.model + "/"
        names = {"x": "root_x/", "y": "root_y/", "steer": "steer"}  # the root joints sit on the attachment frame
        indices = {}
        for key, name in names.items():
            joint = model.name2id(prefix + name, "joint")
            indices[key + "_qpos"] = int(model.jnt_qposadr[joint])
            indices[key + "_qvel"] = int(model.jnt_dofadr[joint])
        indices["roll_act"] = model.name2id(prefix + "roll", "actuator")
        indices["steer_act"] = model.name2id(prefix + "steer", "actuator")
        indices["head"] = model.name2id(prefix + "head_body", "body")
        return indices

    def _start_poses(self) -> list[Pose2D]:
        free = self.maze.free_cells()
        target_cells = {self.maze.cell_of(t.x, t.y) for t in self.maze.targets}
        order = [k for k in self._rng.permutation(len(free)) if tuple(int(v) for v in free[k]) not in target_cells]
        if len(order) < self.num_robots:
            raise ValueError(f"the maze has only {len(order)} free cells without a target for {self.num_robots} "
                             f"robots")
        poses = []
        for k in order[:self.num_robots]:
            x, y = self.maze.cell_center(int(free[k][0]), int(free[k][1]))
            poses.append(Pose2D(x, y, float(self._rng.uniform(-math.pi, math.pi))))
        return poses

    def _place(self, robot: _Robot, pose: Pose2D) -> None:
        physics = robot.physics
        self._walker.set_pose(physics, position=np.array([pose.x - self._offset, pose.y - self._offset, 0.0]))
        # At steer 0 the head looks along +x (its forward y axis turned by -90 deg); the steer axis points down.
        physics.data.qpos[self._joints["steer_qpos"]] = -pose.theta
        physics.data.qvel[:] = 0.0
        physics.data.ctrl[:] = 0.0
        physics.forward()
        robot.true_pose = self._measured_pose(robot)
        robot.odom_pose = Pose2D(robot.true_pose.x, robot.true_pose.y, robot.true_pose.theta)
        robot.true_twist = robot.odom_twist = (0.0, 0.0)
        robot.image, robot.rays = None, None

    def close(self) -> None:
        """Release the physics instances and their GL contexts."""
        for robot in self._robots:
            try:
                robot.physics.free()
            except Exception:  # noqa: BLE001 - freeing is best effort
                pass
        self._robots = []
        if self._env is not None:
            try:
                self._env.close()
            except Exception:  # noqa: BLE001
                pass
            self._env = None

    # ------------------------------------------------------------------------------------------ interface

    @property
    def target_radius(self) -> float:
        """Radius (m) of Memory-Maze's target spheres."""
        return TARGET_RADIUS

    @property
    def time(self) -> float:
        """Simulated seconds since the last reset."""
        return self.step_count * self.config.dt

    @property
    def class_names(self) -> tuple[str, ...]:
        """Memory-Maze's target colours."""
        return CLASS_NAMES

    @property
    def targets(self) -> list[Target]:
        """The maze's targets in the map frame."""
        return list(self.maze.targets)

    def camera_model(self, robot: int) -> CameraModel:
        """The walker's egocentric camera."""
        self._robot(robot)
        return camera_model()

    def set_pose(self, robot: int, pose: Pose2D, reset_odometry: bool = True) -> None:
        """Teleport a robot (tests, data generation); ValueError if the walker's ball would overlap a wall."""
        state = self._robot(robot)
        if not all(math.isfinite(v) for v in (pose.x, pose.y, pose.theta)):
            raise ValueError(f"pose must be finite, got {pose}")
        if self.maze.disc_collides(pose.x, pose.y, self.config.robot_radius):
            raise ValueError(f"pose ({pose.x:.3f}, {pose.y:.3f}) overlaps a wall")
        odom = state.odom_pose
        self._place(state, pose)
        if not reset_odometry:
            state.odom_pose = odom

    def step(self, commands: Sequence[tuple[float, float]]) -> None:
        """Drive every walker for dt at (v m/s, omega rad/s), clamped to the config's and the walker's limits.

        Raises ValueError, changing nothing, for commands that are non-finite or not one (v, omega) per robot.
        """
        targets = self._validated_commands(commands)
        noise = self._rng.standard_normal((self.num_robots, 2))
        for robot, (v, omega), (linear_noise, angular_noise) in zip(self._robots, targets, noise):
            before = robot.true_pose
            self._drive(robot, v, omega)
            after = self._measured_pose(robot)
            self._record_motion(robot, before, after, linear_noise, angular_noise)
        self.step_count += 1

    def _validated_commands(self, commands: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        return validated_commands(commands, self.num_robots, min(self.config.max_linear_speed, MAX_LINEAR_SPEED),
                                  min(self.config.max_angular_speed, MAX_ANGULAR_SPEED))

    def _drive(self, robot: _Robot, v: float, omega: float) -> None:
        """dt of physics, the (roll, steer) action set each physics step by the velocity controller."""
        physics, j = robot.physics, self._joints
        data = physics.data
        for _ in range(self._substeps):
            heading = _head_heading(physics, j["head"])
            speed = data.qvel[j["x_qvel"]] * math.cos(heading) + data.qvel[j["y_qvel"]] * math.sin(heading)
            yaw_rate = -data.qvel[j["steer_qvel"]]  # the steer joint's axis points down
            roll = v / _ROLL_GAIN + _ROLL_FEEDBACK * (v - speed)
            steer = 0.0
            if abs(omega) > 1e-3:
                steer = math.copysign(_STEER_DEAD_ZONE, omega) + omega / _STEER_GAIN
                steer += _STEER_FEEDBACK * (omega - yaw_rate)
            # the walker rolls forward for negative roll and turns left (counter-clockwise) for negative steer
            data.ctrl[j["roll_act"]] = -float(np.clip(roll, -1.0, 1.0))
            data.ctrl[j["steer_act"]] = -float(np.clip(steer, -1.0, 1.0))
            physics.step()
        robot.image, robot.rays = None, None

    def _measured_pose(self, robot: _Robot) -> Pose2D:
        physics = robot.physics
        x, y = physics.data.xpos[self._joints["head"], :2]
        return Pose2D(float(x) + self._offset, float(y) + self._offset,
                      _head_heading(physics, self._joints["head"]))

    def _record_motion(self, robot: _Robot, before: Pose2D, after: Pose2D, linear_noise: float,
                       angular_noise: float) -> None:
        """True twist from the walker's motion over the step (as an arc), then the noisy odometry."""
        dt, config = self.config.dt, self.config
        v, omega = step_twist(before, after, dt)
        robot.true_pose = after
        robot.true_twist = (v, omega)
        robot.distance += math.hypot(after.x - before.x, after.y - before.y)
        measured = (v * (1.0 + config.odom_linear_noise * linear_noise),
                    omega + math.radians(config.odom_angular_noise_deg) * angular_noise)
        odom = robot.odom_pose
        ox, oy = _arc_displacement(odom.theta, measured[0], measured[1], dt)
        robot.odom_pose = Pose2D(odom.x + ox, odom.y + oy, wrap_angle(odom.theta + measured[1] * dt))
        robot.odom_twist = measured

    def render(self, robot: int) -> np.ndarray:
        """The walker's egocentric camera image, (64, 64, 3) uint8 RGB, row 0 at the top."""
        state = self._robot(robot)
        if state.image is None:
            state.image = np.ascontiguousarray(
                state.physics.render(IMAGE_SIZE, IMAGE_SIZE, camera_id=f"{self._walker.mjcf_model.model}/egocentric"),
                dtype=np.uint8)
        return state.image

    def oracle_bev(self, robot: int) -> BevGrid:
        """The true egocentric BEV around the robot from the layout, masked to its camera's view."""
        state = self._robot(robot)
        pose = state.true_pose
        key = (pose.x, pose.y, pose.theta)
        if state.rays is None or state.rays[0] != key:
            hits = self._caster.cast(pose.x, pose.y, pose.theta + self._oracle.ray_angles)
            state.rays = (key, hits.distance)
        return self._oracle.compute(pose, state.rays[1], self.maze.targets)


def layout_maze(maze_layout: np.ndarray, targets_pos: np.ndarray, seed: int = 0) -> Maze:
    """The map-frame Maze (2 m cells, outer walls added) of Memory-Maze's ``maze_layout`` (1 = free, outer walls
    removed) and ``targets_pos`` (layout units; target k has colour CLASS_NAMES[k])."""
    free = np.asarray(maze_layout, dtype=np.uint8) == 1
    walls = np.pad(~free, 1, constant_values=True)
    targets = []
    for index, (col, row) in enumerate(np.asarray(targets_pos, dtype=np.float64)):
        rgb = tuple(int(round(v)) for v in np.clip(_target_rgb(index) * 255.0, 0, 255))
        targets.append(Target(CLASS_NAMES[index], rgb, float((col + 1.0) * CELL_SIZE), float((row + 1.0) * CELL_SIZE)))
    return Maze(walls=walls, cell_size=CELL_SIZE, targets=targets, seed=seed)


def step_twist(before: Pose2D, after: Pose2D, dt: float) -> tuple[float, float]:
    """The (v, omega) of the arc that takes ``before`` to ``after`` in ``dt`` seconds (v < 0 when it went back)."""
    dx, dy = after.x - before.x, after.y - before.y
    turn = wrap_angle(after.theta - before.theta)
    half_turn = 0.5 * turn
    along = dx * math.cos(before.theta + half_turn) + dy * math.sin(before.theta + half_turn)
    sinc = math.sin(half_turn) / half_turn if abs(half_turn) > 1e-9 else 1.0
    return math.copysign(math.hypot(dx, dy), along) / (dt * sinc), turn / dt


def head_heading(physics: Any, head: int) -> float:
    """The heading of the walker's head body ``head`` (its forward y axis) in the world (= map) frame."""
    return _head_heading(physics, head)


def _head_heading(physics: Any, head: int) -> float:
    """The head's forward direction (its y axis) as a heading in the world (= map) frame."""
    xmat = physics.data.xmat[head]
    return math.atan2(float(xmat[4]), float(xmat[1]))  # column 1 of the row-major 3x3: (xmat[1], xmat[4], xmat[7])


def _target_rgb(index: int) -> np.ndarray:
    from memory_maze.maze import TARGET_COLORS

    return np.asarray(TARGET_COLORS[index], dtype=np.float64)
