"""Rat-like random walks in a square box centred on the origin, seeded (numpy only).

Sorscher et al.'s statistics: dt 0.02 s, Rayleigh forward speed of scale 0.13 * 2 pi m/s, rotation noise
11.52 rad/s, slowdown and turn-away near walls; seed 003's movement flags in ``TrajectoryConfig``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spatial_memory_ros.types import wrap_angle

RAYLEIGH_SPEED_SCALE = 0.13 * 2.0 * math.pi  # m/s, Sorscher's forward-speed scale
ROTATION_SIGMA = 11.52  # rad/s, Sorscher's turning noise


@dataclass
class TrajectoryConfig:
    """Box and movement statistics of the simulated animal (SI units); defaults are Sorscher's."""

    box_width: float = 2.2
    box_height: float = 2.2
    dt: float = 0.02
    speed_scale: float = 1.0
    speed_max: float | None = None
    velocity_smoothing: float = 0.0
    turn_sigma_scale: float = 1.0
    border_region: float = 0.03
    wall_slowdown: float = 0.25
    wall_turn_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("box_width", "box_height", "dt", "speed_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"TrajectoryConfig.{name} must be a positive finite number, got {value}")
        if self.speed_max is not None and not self.speed_max > 0:
            raise ValueError(f"TrajectoryConfig.speed_max must be positive or None, got {self.speed_max}")
        if not 0.0 <= self.velocity_smoothing < 1.0:
            raise ValueError(f"TrajectoryConfig.velocity_smoothing must be in [0, 1), got {self.velocity_smoothing}")
        for name in ("turn_sigma_scale", "border_region", "wall_slowdown", "wall_turn_scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"TrajectoryConfig.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class Trajectories:
    """A batch of walks: ``positions`` (B, T+1, 2) and ``headings`` (B, T+1) from the start to each step's end.

    Step t moves from positions[:, t] along headings[:, t] (less any part cut off by the box), at allocentric
    ``velocities[:, t]`` (m/s), then turns to headings[:, t + 1]; ``angular_velocity[:, t]`` is that turn / ``dt``.
    """

    positions: np.ndarray
    headings: np.ndarray
    velocities: np.ndarray
    angular_velocity: np.ndarray
    dt: float

    @property
    def speeds(self) -> np.ndarray:
        """Speed of each step, (B, T) m/s."""
        return np.linalg.norm(self.velocities, axis=-1)

    @property
    def steps(self) -> int:
        """Number of steps T."""
        return int(self.speeds.shape[1])


def generate_trajectories(batch: int, steps: int, config: TrajectoryConfig | None = None,
                          seed: int | np.random.Generator = 0) -> Trajectories:
    """``batch`` random walks of ``steps`` steps in a box centred on the origin, seeded."""
    config = config or TrajectoryConfig()
    if batch < 1 or steps < 1:
        raise ValueError(f"batch and steps must be at least 1, got batch={batch}, steps={steps}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng([int(seed), 0x6C1D])
    half = np.array([config.box_width, config.box_height]) / 2.0
    positions = np.zeros((batch, steps + 1, 2))
    headings = np.zeros((batch, steps + 1))
    positions[:, 0] = rng.uniform(-half, half, size=(batch, 2))
    headings[:, 0] = rng.uniform(-math.pi, math.pi, size=batch)
    turn_noise = rng.normal(0.0, ROTATION_SIGMA * config.turn_sigma_scale, size=(batch, steps)) * config.dt
    raw_speeds = rng.rayleigh(RAYLEIGH_SPEED_SCALE * config.speed_scale, size=(batch, steps))
    previous_speed = raw_speeds[:, 0].copy()
    for t in range(steps):
        speed = raw_speeds[:, t] if config.speed_max is None else np.minimum(raw_speeds[:, t], config.speed_max)
        speed = config.velocity_smoothing * previous_speed + (1.0 - config.velocity_smoothing) * speed
        previous_speed = speed
        near_wall, turn_away = _wall_avoidance(positions[:, t], headings[:, t], half, config)
        speed = np.where(near_wall, speed * config.wall_slowdown, speed)
        direction = np.stack([np.cos(headings[:, t]), np.sin(headings[:, t])], axis=-1)
        positions[:, t + 1] = np.clip(positions[:, t] + speed[:, None] * config.dt * direction, -half, half)
        headings[:, t + 1] = wrap_angle(headings[:, t] + turn_away + turn_noise[:, t])
    turns = wrap_angle(np.diff(headings, axis=1))
    velocities = np.diff(positions, axis=1) / config.dt
    return Trajectories(positions, headings, velocities, turns / config.dt, config.dt)


def _wall_avoidance(position: np.ndarray, heading: np.ndarray, half: np.ndarray,
                    config: TrajectoryConfig) -> tuple[np.ndarray, np.ndarray]:
    """Which walkers are heading into a wall within the border region, and the turn that steers them along it."""
    distances = np.stack([half[0] - position[:, 0], half[1] - position[:, 1],
                          half[0] + position[:, 0], half[1] + position[:, 1]], axis=-1)
    nearest = np.argmin(distances, axis=-1)
    wall_normal = nearest * (math.pi / 2.0)
    towards = wrap_angle(heading - wall_normal)
    near_wall = (distances[np.arange(len(nearest)), nearest] < config.border_region) & (np.abs(towards) < math.pi / 2)
    turn = np.where(near_wall, np.sign(towards) * (math.pi / 2 - np.abs(towards)) * config.wall_turn_scale, 0.0)
    return near_wall, turn

