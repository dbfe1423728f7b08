"""Memory-Maze as published (Pasukonis et al. 2022), for a robot that may see only what a robot would have (no ROS).

``MemoryMazeEpisode`` builds the standard task with memory_maze's own builder (``memory_maze_{N}x{N}``: the
published sizes, target counts, 4 Hz control, 6 discrete actions, +1 reward each time the walker touches the
target whose colour is asked, then a new target colour; episodes of 1,000 / 2,000 / 3,000 / 4,000 steps) and
splits what it returns in two:

* :class:`RobotInput`, the only thing the robot's decisions see: the 64x64 camera image, the asked target's
  colour, and odometry: the walker's own motion over the last step (read from its head body, as
  sim/memory_maze.py does) with the sim worlds' noise (5% of speed, 2 deg/s on the yaw rate). The published
  agents had no odometry: they saw the image, the colour (as a border in the image) and their reward.
* :class:`Truth`, for the report's diagnostics only: the agent's position and heading, the maze layout and the
  targets' positions (memory_maze's ``global_observables``). Built with ``diagnostics=False`` the task has none of
  them; a test runs both and checks that the robot's actions are the same.

The image is built with ``target_color_in_image=False`` (the raw camera image; the colour comes as a vector), the
form ENVIRONMENT.md recommends; the gym ids draw the same colour as a 2-pixel border instead.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from spatial_memory_ros.sim.memory_maze import CELL_SIZE, CLASS_NAMES, check_size, head_heading, step_twist
from spatial_memory_ros.types import Pose2D

CONTROL_DT = 0.25
"""Seconds per step: memory_maze's DEFAULT_CONTROL_FREQ of 4 Hz."""
EPISODE_STEPS = {9: 1000, 11: 2000, 13: 3000, 15: 4000}
"""Steps of a full episode per size (the published time limits of 250 / 500 / 750 / 1,000 s at 4 Hz)."""
PUBLISHED = {9: {"human": 26.4, "oracle": 34.8}, 11: {"human": 44.3, "oracle": 58.0},
             13: {"human": 55.5, "oracle": 74.5}, 15: {"human": 67.7, "oracle": 87.7}}
"""Memory-Maze's published mean human score and mean maximum ("oracle") score per size (its README, arXiv
2210.13383)."""
ROBOT_KEYS = ("image", "target_color")
"""The only observation keys a robot's decision may read."""
PRIVILEGED_KEYS = ("agent_pos", "agent_dir", "maze_layout", "targets_pos", "targets_vec", "target_pos",
                   "target_vec")
"""Observation keys of global_observables: diagnostics only."""
ACTION_NAMES = ("noop", "forward", "left", "right", "forward_left", "forward_right")
ACTION_TWISTS = np.array([[0.0, 0.0], [1.75, 0.0], [0.0, 1.28], [0.0, -1.28], [1.0, 0.9], [1.0, -0.9]])
"""(v m/s, omega rad/s) of each discrete action, as first measured (forward: 0.9 m/s on its first step from rest,
1.75 after; turns 1.28 rad/s; forward-turns about 1 m/s and 0.9 rad/s). They only decide which action is nearest
to a command. In an episode (9x9, 400 steps, session 16) the forward-turns moved faster: 0.41-0.45 m and 16-18 deg
per step (1.6-1.8 m/s, 1.1-1.3 rad/s), forward 0.49 m, turns on the spot 17.5 deg and about 0.09 m of drift."""
ODOM_LINEAR_NOISE = 0.05
ODOM_ANGULAR_NOISE = math.radians(2.0)


@dataclass(frozen=True)
class RobotInput:
    """What the robot gets at one step, and nothing else."""

    image: np.ndarray                 # (64, 64, 3) uint8 RGB
    target_color: np.ndarray          # (3,) RGB in [0, 1] of the target asked now
    odometry: tuple[float, float]     # measured (v m/s, omega rad/s) over the last step
    stamp: float                      # seconds since the episode began


@dataclass(frozen=True)
class Truth:
    """What only the report may read: the walker's true pose in the map frame (2 m cells, outer walls included,
    origin at the outer corner, as sim/memory_maze.py), the layout and the targets."""

    pose: Pose2D
    maze_layout: np.ndarray
    targets_pos: np.ndarray


def robot_input(observation: dict, odometry: tuple[float, float], stamp: float) -> RobotInput:
    """The robot's part of an observation: ROBOT_KEYS copied, nothing else."""
    return RobotInput(np.array(observation["image"], np.uint8, copy=True),
                      np.array(observation["target_color"], np.float64, copy=True),
                      (float(odometry[0]), float(odometry[1])), float(stamp))


def truth_of(observation: dict) -> Truth | None:
    """The diagnostic part of an observation, or None when the task was built without global observables."""
    if not all(key in observation for key in ("agent_pos", "agent_dir", "maze_layout", "targets_pos")):
        return None
    col, row = np.asarray(observation["agent_pos"], np.float64)
    dx, dy = np.asarray(observation["agent_dir"], np.float64)
    pose = Pose2D((col + 1.0) * CELL_SIZE, (row + 1.0) * CELL_SIZE, math.atan2(dy, dx))
    return Truth(pose, np.array(observation["maze_layout"]), np.array(observation["targets_pos"], np.float64))


def colour_name(target_color: np.ndarray) -> str:
    """The Memory-Maze colour name (CLASS_NAMES) nearest to an RGB target colour in [0, 1]."""
    from memory_maze.maze import TARGET_COLORS

    distances = [float(np.linalg.norm(np.asarray(target_color, np.float64) - colour)) for colour in TARGET_COLORS]
    return CLASS_NAMES[int(np.argmin(distances))]


def steps_per_target(reward_steps: list[int], steps: int) -> dict:
    """How an episode's steps went: the step of the first reward (the episode's length if none) and the mean
    number of steps between rewards after it (None with fewer than two rewards)."""
    first = reward_steps[0] if reward_steps else steps
    gaps = np.diff(reward_steps)
    return {"first_reward_step": int(first), "steps_per_target_after_first": float(gaps.mean()) if len(gaps) else None}


def nearest_action(v: float, omega: float) -> int:
    """The discrete action whose motion (ACTION_TWISTS, each axis scaled by its largest value) is nearest to
    the command (v, omega); a command that only creeps forward (v > 0 but nearer to noop) still moves."""
    scale = np.abs(ACTION_TWISTS).max(axis=0)
    command = np.array([max(float(v), 0.0), float(omega)]) / scale
    distances = np.linalg.norm(ACTION_TWISTS / scale - command, axis=1)
    return int(np.argmin(distances))


def _load_tasks() -> Any:
    from spatial_memory_ros.sim.memory_maze import _load_tasks as load

    return load()


class MemoryMazeEpisode:
    """One published Memory-Maze episode of ``size`` from ``seed``, stepped with discrete actions.

    ``reset()`` then ``step(action)`` until ``done``; each returns (RobotInput, Truth or None). ``total_reward``
    sums the task's own rewards. Odometry noise follows ``seed`` too.
    """

    def __init__(self, size: int, seed: int, diagnostics: bool = True, steps: int | None = None) -> None:
        self.size = check_size(size)
        self.seed = int(seed)
        self.max_steps = EPISODE_STEPS[self.size] if steps is None else int(steps)
        if not 1 <= self.max_steps <= EPISODE_STEPS[self.size]:
            raise ValueError(f"steps must be in 1..{EPISODE_STEPS[self.size]} for {size}x{size}, got {steps}")
        tasks = _load_tasks()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.env = getattr(tasks, f"memory_maze_{self.size}x{self.size}")(
                global_observables=diagnostics, target_color_in_image=False, seed=self.seed)
        self._rng = np.random.default_rng([self.seed, 0x0D0])
        self.step_count = 0
        self.total_reward = 0.0
        self.reward_steps: list[int] = []
        self.distance = 0.0
        self._episode_over = False

    def reset(self) -> tuple[RobotInput, Truth | None]:
        """Start the episode: the first image and colour, zero odometry."""
        time_step = self.env.reset()
        physics = self.env.physics
        walker = self.env.task._walker
        self._head = physics.model.name2id(walker.mjcf_model.model + "/head_body", "body")
        self._pose = self._head_pose()
        self.step_count, self.total_reward, self.reward_steps, self.distance = 0, 0.0, [], 0.0
        self._episode_over = False
        return robot_input(time_step.observation, (0.0, 0.0), 0.0), truth_of(time_step.observation)

    @property
    def done(self) -> bool:
        """Whether the episode has ended (its time limit, or ``steps``)."""
        return self._episode_over or self.step_count >= self.max_steps

    def step(self, action: int) -> tuple[RobotInput, Truth | None, float]:
        """One 0.25 s step with discrete ``action`` (0..5): the robot's next input, the truth, the reward."""
        if self.done:
            raise RuntimeError("the episode is over")
        if not 0 <= int(action) < len(ACTION_NAMES):
            raise ValueError(f"action must be in 0..{len(ACTION_NAMES) - 1}, got {action}")
        time_step = self.env.step(int(action))
        before, self._pose = self._pose, self._head_pose()
        v, omega = step_twist(before, self._pose, CONTROL_DT)
        self.distance += math.hypot(self._pose.x - before.x, self._pose.y - before.y)
        noise = self._rng.standard_normal(2)
        measured = (v * (1.0 + ODOM_LINEAR_NOISE * noise[0]), omega + ODOM_ANGULAR_NOISE * noise[1])
        reward = float(time_step.reward or 0.0)
        self.step_count += 1
        if reward > 0:
            self.total_reward += reward
            self.reward_steps.append(self.step_count)
        self._episode_over = bool(time_step.last())
        observation = time_step.observation
        return (robot_input(observation, measured, self.step_count * CONTROL_DT), truth_of(observation), reward)

    def _head_pose(self) -> Pose2D:
        """The walker head's pose in MuJoCo's world frame (the odometry's source; its offset does not matter)."""
        physics = self.env.physics
        x, y = physics.data.xpos[self._head, :2]
        return Pose2D(float(x), float(y), head_heading(physics, self._head))

    def close(self) -> None:
        """Release the physics and its GL context."""
        try:
            self.env.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def mujoco_gl() -> str:
    """The MuJoCo GL backend in use (egl unless set)."""
    return os.environ.get("MUJOCO_GL", "egl")
