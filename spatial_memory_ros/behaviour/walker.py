"""A random walk with wall avoidance, driven by an egocentric BEV grid (numpy only, no ROS).

The walker looks along a fan of candidate headings, measures how far a corridor as wide as the robot (plus a
margin) runs free along each, and steers towards a clear heading close to a randomly wandering preference and
away from places it has already been (counted on a coarse grid in its own dead-reckoned frame). When nothing
ahead is clear it turns in place, keeping one turning direction until a way opens; now and then it also turns
by a random angle on its own (run and tumble), which finds side openings that a forward camera misses.

Walls anywhere and unseen cells inside the field of view count as obstacles, except unseen ground nearer than
anything seen along a heading (the blind zone below a raised camera). A forward camera cannot see what
is beside the robot, so the walker also remembers the walls of its recent BEVs for a few seconds, moved along
by the robot's own motion (odometry when given, else its own commands); a step on which the robot did not move
as commanded (it bumped into something) leaves an obstacle in that memory just ahead of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spatial_memory_ros.types import BevGrid

WALL = 100
UNSEEN = -1


@dataclass
class ExplorerConfig:
    """Speeds (SI units), safety distances and wandering of the random walker.

    ``stop_distance``: turn in place when no heading is clear this far; ``resume_distance``: a turn ends once a
    heading is clear this far. ``preference_weight``, ``wander_std``: pull of the wandering preferred heading
    (per radian) and its random-walk step. ``tumble_*``: chance per step and angle range of a spontaneous turn.
    ``memory_*``: how many steps and how far (metres) walls are remembered, and how much of a BEV cell a
    remembered wall is inflated by. ``novelty_weight``: penalty per log-visit of where a heading leads.
    """

    max_linear_speed: float = 0.8
    max_angular_speed: float = 1.5
    robot_radius: float = 0.2
    safety_margin: float = 0.08
    stop_distance: float = 0.45
    resume_distance: float = 1.0
    slow_down_distance: float = 1.5
    lookahead: float = 3.0
    heading_span_deg: float = 80.0
    num_headings: int = 17
    fov_deg: float = 90.0
    preference_weight: float = 0.6
    wander_std: float = 0.25
    turn_gain: float = 2.0
    tumble_probability: float = 0.005
    tumble_min_deg: float = 60.0
    tumble_max_deg: float = 180.0
    blocked_extra_turn_deg: float = 90.0
    dt: float = 0.1
    memory_steps: int = 40
    memory_radius: float = 2.0
    memory_cell_fraction: float = 0.5
    novelty_weight: float = 2.0
    visit_cell_size: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_linear_speed", "max_angular_speed", "robot_radius", "lookahead", "turn_gain"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"ExplorerConfig.{name} must be a positive finite number, got {value}")
        if self.num_headings < 1:
            raise ValueError(f"ExplorerConfig.num_headings must be at least 1, got {self.num_headings}")


@dataclass(frozen=True)
class _Probe:
    """Where to look in a BEV of one geometry: for each heading, sample cells along a robot-wide corridor."""

    headings: np.ndarray
    distances: np.ndarray
    flat_index: np.ndarray
    inside: np.ndarray
    in_view: np.ndarray
    cell_x: np.ndarray
    cell_y: np.ndarray


class RandomWalker:
    """A seeded random walk that avoids walls seen in an egocentric BEV grid."""

    def __init__(self, seed: int = 0, config: ExplorerConfig | None = None) -> None:
        """Create a walker; the same seed and inputs give the same commands."""
        self.config = config or ExplorerConfig()
        self._rng = np.random.default_rng([seed, 0xE7])
        self._probes: dict[tuple, _Probe] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the wandering preference, any turn in progress and the remembered walls."""
        self._preference = 0.0
        self._turn_direction = 0.0
        self._turn_left = 0.0
        self._turned = 0.0
        self._last_command = (0.0, 0.0)
        self._odom = (0.0, 0.0, 0.0)
        self._visits: dict[tuple[int, int], int] = {}
        self._memory = np.zeros((0, 2))
        self._memory_age = np.zeros(0, dtype=np.int64)

    def command(self, bev: BevGrid, twist: tuple[float, float] | None = None) -> tuple[float, float]:
        """The next (forward speed m/s, yaw rate rad/s) given the robot's current BEV.

        ``twist`` is the robot's measured (forward speed, yaw rate) over the last step, if known; it moves the
        remembered walls and reveals bumps (a non-finite twist is ignored). Call once per ``config.dt``.
        """
        if twist is not None and not all(math.isfinite(value) for value in twist):
            twist = None
        probe = self._probe(bev)
        motion = self._last_command if twist is None else twist
        self._track(*motion)
        self._remember(bev, probe, twist)
        self._last_command = self._decide(bev, probe)
        return self._last_command

    def _decide(self, bev: BevGrid, probe: _Probe) -> tuple[float, float]:
        config = self.config
        if not np.any(bev.occupancy != UNSEEN) and not len(self._memory):
            return 0.0, self._turn(config.max_angular_speed)
        if self._turn_left > 0.0:
            self._turn_left -= config.max_angular_speed * config.dt
            return 0.0, self._turn_direction * config.max_angular_speed
        clearance = np.minimum(self.clearances(bev, probe), self._memory_clearances(probe.headings, bev.resolution))
        if self._turn_direction and clearance.max() < self._resume_distance():
            self._turned += config.max_angular_speed * config.dt
            return 0.0, self._turn_direction * config.max_angular_speed
        if clearance.max() < config.stop_distance:
            self._start_turn(clearance, probe.headings)
            return 0.0, self._turn_direction * config.max_angular_speed
        self._turn_direction = 0.0
        if self._rng.random() < config.tumble_probability:
            self._tumble()
            return 0.0, self._turn_direction * config.max_angular_speed
        return self._cruise(clearance, probe.headings)

    def _resume_distance(self) -> float:
        """The clearance that ends a turn in place: lowered to the stop distance after a full turn found none."""
        if self._turned < 2.0 * math.pi:
            return self.config.resume_distance
        return self.config.stop_distance

    def _tumble(self) -> None:
        """Start turning in place by a random angle in a random direction (run-and-tumble exploration)."""
        config = self.config
        self._turn_direction = 1.0 if self._rng.random() < 0.5 else -1.0
        self._turn_left = math.radians(self._rng.uniform(config.tumble_min_deg, config.tumble_max_deg))
        self._preference = 0.0

    def clearances(self, bev: BevGrid, probe: _Probe | None = None) -> np.ndarray:
        """Free distance (metres, capped at the lookahead) along each candidate heading of the fan."""
        probe = probe or self._probe(bev)
        values = bev.occupancy.reshape(-1)[probe.flat_index]
        wall_at = (probe.inside & (values == WALL)).any(axis=2)
        unseen_at = (probe.in_view & (values == UNSEEN)).any(axis=2)
        # Unseen cells nearer than anything this BEV has seen are the ground at the robot's feet that a raised or
        # pitched camera cannot see (Memory-Maze's: about 0.9 m): counted as obstacles, they would block every
        # heading and leave the robot turning in place for good. Unseen cells beyond that still block.
        seen_at = (probe.inside & (values != UNSEEN)).any(axis=2)
        first_seen = probe.distances[np.argmax(seen_at, axis=1)][seen_at.any(axis=1)]
        blind = float(first_seen.min()) if len(first_seen) else 0.0
        blocked_at = wall_at | (unseen_at & (probe.distances >= blind)[None, :])
        first = np.argmax(blocked_at, axis=1)
        return np.where(blocked_at.any(axis=1), probe.distances[first], self.config.lookahead)

    def _memory_clearances(self, headings: np.ndarray, resolution: float) -> np.ndarray:
        """Free distance along each heading past the remembered walls (cell centres, so half a cell nearer)."""
        if not len(self._memory):
            return np.full(len(headings), self.config.lookahead)
        cos_h, sin_h = np.cos(headings)[:, None], np.sin(headings)[:, None]
        along = self._memory[:, 0] * cos_h + self._memory[:, 1] * sin_h
        across = -self._memory[:, 0] * sin_h + self._memory[:, 1] * cos_h
        config = self.config
        half_width = config.robot_radius + config.safety_margin + config.memory_cell_fraction * resolution
        in_path = (np.abs(across) < half_width) & (along > 0.0)
        nearest = np.where(in_path, along - 0.5 * resolution, np.inf).min(axis=1)
        return np.clip(nearest, 0.0, self.config.lookahead)

    def _remember(self, bev: BevGrid, probe: _Probe, twist: tuple[float, float] | None) -> None:
        """Move the remembered walls by the last step's motion, age them, and add the BEV's walls."""
        config = self.config
        v, omega = self._last_command if twist is None else twist
        memory = _move_points(self._memory, v, omega, config.dt)
        ages = self._memory_age + 1
        if twist is not None and self._last_command[0] > 0.05 and v < 0.2 * self._last_command[0]:
            bump = self._bump_obstacle(bev.resolution)
            memory = np.vstack([memory, bump])
            ages = np.concatenate([ages, np.zeros(len(bump), dtype=np.int64)])
        walls = bev.occupancy.reshape(-1) == WALL
        memory = np.vstack([memory, np.column_stack([probe.cell_x[walls], probe.cell_y[walls]])])
        ages = np.concatenate([ages, np.zeros(int(walls.sum()), dtype=np.int64)])
        keep = (ages < config.memory_steps) & (np.hypot(memory[:, 0], memory[:, 1]) < config.memory_radius)
        self._memory, self._memory_age = memory[keep], ages[keep]

    def _track(self, v: float, omega: float) -> None:
        """Dead-reckon the walker's own pose over the last step and count a visit to the cell it is in."""
        x, y, theta = self._odom
        dx, dy = _arc_step(v, omega, self.config.dt)
        cos_t, sin_t = math.cos(theta), math.sin(theta)
        self._odom = (x + cos_t * dx - sin_t * dy, y + sin_t * dx + cos_t * dy, theta + omega * self.config.dt)
        cell = self._visit_cell(self._odom[0], self._odom[1])
        self._visits[cell] = self._visits.get(cell, 0) + 1

    def _visit_cell(self, x: float, y: float) -> tuple[int, int]:
        size = self.config.visit_cell_size
        return math.floor(x / size), math.floor(y / size)

    def _novelty_penalty(self, clearance: np.ndarray, headings: np.ndarray) -> np.ndarray:
        """How often the walker has been where each heading leads (log visits at the end of its free path)."""
        x, y, theta = self._odom
        ends_x = x + clearance * np.cos(theta + headings)
        ends_y = y + clearance * np.sin(theta + headings)
        return np.log1p([self._visits.get(self._visit_cell(ex, ey), 0) for ex, ey in zip(ends_x, ends_y)])

    def _bump_obstacle(self, resolution: float) -> np.ndarray:
        """Points across the path just ahead, standing for whatever stopped the robot (a wall or a teammate)."""
        radius = self.config.robot_radius
        across = np.linspace(-radius, radius, 5)
        return np.column_stack([np.full(5, radius + 0.5 * resolution), across])

    def _cruise(self, clearance: np.ndarray, headings: np.ndarray) -> tuple[float, float]:
        config = self.config
        self._preference = float(np.clip(self._preference + self._rng.normal(0.0, config.wander_std),
                                         headings[0], headings[-1]))
        score = clearance - config.preference_weight * np.abs(headings - self._preference)
        score -= config.novelty_weight * self._novelty_penalty(clearance, headings)
        score[clearance < config.resume_distance] -= config.lookahead
        best = int(np.argmax(score))
        omega = float(np.clip(config.turn_gain * headings[best], -config.max_angular_speed, config.max_angular_speed))
        ahead = clearance[len(clearance) // 2]
        room = np.clip((ahead - config.stop_distance) / max(config.slow_down_distance - config.stop_distance, 1e-6),
                       0.0, 1.0)
        alignment = max(0.0, math.cos(headings[best]))
        return float(config.max_linear_speed * room * alignment), omega

    def _start_turn(self, clearance: np.ndarray, headings: np.ndarray) -> None:
        if self._turn_direction:
            return
        left, right = clearance[headings > 0].sum(), clearance[headings < 0].sum()
        if math.isclose(left, right):
            self._turn_direction = 1.0 if self._rng.random() < 0.5 else -1.0
        else:
            self._turn_direction = 1.0 if left > right else -1.0
        self._turn_left = math.radians(self._rng.uniform(0.0, self.config.blocked_extra_turn_deg))
        self._turned = 0.0
        self._preference = 0.0

    def _turn(self, speed: float) -> float:
        if not self._turn_direction:
            self._turn_direction = 1.0 if self._rng.random() < 0.5 else -1.0
        return self._turn_direction * speed

    def _probe(self, bev: BevGrid) -> _Probe:
        key = (bev.occupancy.shape, bev.resolution, bev.origin_x, bev.origin_y)
        if key not in self._probes:
            self._probes[key] = self._build_probe(bev)
        return self._probes[key]

    def _build_probe(self, bev: BevGrid) -> _Probe:
        """Sample points of every heading's corridor, (headings, distances, offsets), as flat BEV indices."""
        config = self.config
        span = math.radians(config.heading_span_deg) / 2
        headings = np.linspace(-span, span, config.num_headings) if config.num_headings > 1 else np.zeros(1)
        step = 0.5 * bev.resolution
        distances = np.arange(step, config.lookahead + step, step)
        half_width = config.robot_radius + config.safety_margin
        offsets = np.linspace(-half_width, half_width, max(3, math.ceil(2 * half_width / step) + 1))
        along = distances[None, :, None]
        heading = headings[:, None, None]
        x = along * np.cos(heading) - offsets[None, None, :] * np.sin(heading)
        y = along * np.sin(heading) + offsets[None, None, :] * np.cos(heading)
        ix = np.floor((x - bev.origin_x) / bev.resolution).astype(np.int64)
        iy = np.floor((y - bev.origin_y) / bev.resolution).astype(np.int64)
        inside = (ix >= 0) & (ix < bev.width) & (iy >= 0) & (iy < bev.height)
        in_view = np.abs(np.arctan2(y, x)) <= math.radians(config.fov_deg) / 2 - 0.05
        flat = np.where(inside, np.clip(iy, 0, bev.height - 1) * bev.width + np.clip(ix, 0, bev.width - 1), 0)
        cell_x, cell_y = (centres.reshape(-1) for centres in bev.cell_centers())
        return _Probe(headings, distances, flat, inside, inside & in_view, cell_x, cell_y)


def _arc_step(v: float, omega: float, dt: float) -> tuple[float, float]:
    """Displacement, in the frame at the start, of a base moving at constant (v, omega) for dt."""
    half = 0.5 * omega * dt
    chord = v * dt * (math.sin(half) / half if abs(half) > 1e-9 else 1.0)
    return chord * math.cos(half), chord * math.sin(half)


def _move_points(points: np.ndarray, v: float, omega: float, dt: float) -> np.ndarray:
    """Robot-frame points re-expressed in the robot's frame after it moved at (v, omega) for dt."""
    turn = omega * dt
    shifted = points - np.array(_arc_step(v, omega, dt))
    cos_t, sin_t = math.cos(turn), math.sin(turn)
    x, y = shifted[:, 0], shifted[:, 1]
    return np.column_stack([cos_t * x + sin_t * y, -sin_t * x + cos_t * y])
