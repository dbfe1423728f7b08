"""Does a BEV source see places, or a pattern fixed to the robot? A check the source cannot pass by itself.

A BEV predictor that fails on a camera it was not trained for tends to draw the same thing in every frame (a wall
right at the camera, say). Matched against a map the robot built from those same BEVs, such a pattern fits best
where the robot stood a moment ago, so every correction drags the estimate back: on Memory-Maze the shipped
predictor made the localizer 5x worse than dead reckoning on a self-built map, while the map-fit gate (tem.py)
passed it, since the map was made of the same garbage. What such a source cannot fake is the robot's own motion:
after the robot has moved (``min_travel`` metres or ``min_turn`` radians by odometry), a source that sees places
puts a wall where the earlier BEV had it *in the world* (the earlier BEV moved by the odometry), while an ego-fixed
pattern agrees with the earlier BEV *in the robot's frame*. :class:`PlaceCheck` compares the two agreements over
its last ``window`` pairs of BEVs and distrusts the source when the robot-frame agreement beats the world-frame one
by more than ``tolerance``, or when the world-frame agreement is below ``min_world`` (the world does not change).

Measured (500 steps at 10 Hz, window means, 15x15 Memory-Maze and 9x9 built-in maze): oracle BEVs agree 0.95-0.98
in the world frame and 0.79-0.86 in the robot's; a predictor trained with Memory-Maze frames 0.97 / 0.72-0.79; the
shipped predictor on the built-in world 0.95-0.96 / 0.78-0.83, and on Memory-Maze, where it fails, 0.66-0.86 /
0.86-0.98.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from spatial_memory_ros.types import wrap_angle

WALL, UNSEEN = 100, -1


@dataclass(frozen=True)
class PlaceCheckConfig:
    """When two BEVs are compared (``min_travel`` m or ``min_turn`` rad apart by odometry, at most ``max_travel``
    m), how many compared wall cells a pair needs (``min_points``), and the verdict over the last ``window`` pairs
    (at least ``min_pairs``): distrust when robot-frame agreement exceeds world-frame agreement by ``tolerance``
    or world-frame agreement is below ``min_world``."""

    min_travel: float = 0.75
    min_turn: float = math.radians(30.0)
    max_travel: float = 3.0
    min_points: int = 5
    window: int = 30
    min_pairs: int = 5
    tolerance: float = 0.0
    min_world: float = 0.85
    history: int = 40


@dataclass
class _Kept:
    pose: tuple[float, float, float]
    walls: np.ndarray      # (h, w) bool, dilated by one cell (a wall one cell off still agrees)
    free: np.ndarray       # (h, w) bool
    seen: np.ndarray       # (h, w) bool
    origin: tuple[float, float]
    resolution: float


class PlaceCheck:
    """Dead-reckons the robot from odometry and scores each BEV against an earlier one, in both frames."""

    def __init__(self, config: PlaceCheckConfig | None = None) -> None:
        self.config = config or PlaceCheckConfig()
        self.pose = (0.0, 0.0, 0.0)
        self._kept: deque[_Kept] = deque(maxlen=self.config.history)
        self.world_agreement: deque[float] = deque(maxlen=self.config.window)
        self.ego_agreement: deque[float] = deque(maxlen=self.config.window)

    def move(self, v: float, omega: float, dt: float) -> None:
        """One odometry step (forward speed, yaw rate, seconds), already checked by the caller."""
        x, y, theta = self.pose
        mid = theta + 0.5 * omega * dt
        self.pose = (x + v * dt * math.cos(mid), y + v * dt * math.sin(mid), theta + omega * dt)

    @property
    def trusted(self) -> bool:
        """True once at least ``min_pairs`` pairs show the source agreeing with itself in the world's frame (enough,
        and no less than in the robot's)."""
        if len(self.world_agreement) < self.config.min_pairs:
            return False  # not judged yet: a source earns trust (a few metres of driving), it is not lent it
        world = float(np.mean(self.world_agreement))
        return self.ego_advantage <= self.config.tolerance and world >= self.config.min_world

    @property
    def distrusted(self) -> bool:
        """True once at least ``min_pairs`` pairs were compared and the source failed (not merely unjudged)."""
        return len(self.world_agreement) >= self.config.min_pairs and not self.trusted

    @property
    def world_share(self) -> float:
        """Mean world-frame agreement over the window (1 before any pair)."""
        return float(np.mean(self.world_agreement)) if self.world_agreement else 1.0

    @property
    def ego_share(self) -> float:
        """Mean robot-frame agreement over the window (0 before any pair)."""
        return float(np.mean(self.ego_agreement)) if self.ego_agreement else 0.0

    @property
    def ego_advantage(self) -> float:
        """Mean robot-frame minus world-frame agreement over the window (0 before any pair)."""
        if not self.world_agreement:
            return 0.0
        return float(np.mean(self.ego_agreement) - np.mean(self.world_agreement))

    def observe(self, occupancy: np.ndarray, resolution: float, origin: tuple[float, float]) -> None:
        """Score a (validated) BEV against the newest kept BEV far enough back, then keep it if the robot moved."""
        walls, seen = occupancy == WALL, occupancy != UNSEEN
        earlier = self._partner()
        if earlier is not None and seen.any():
            self._score(occupancy, resolution, origin, earlier)
        if not self._kept or self._apart(self._kept[-1].pose) >= 0.25:
            self._kept.append(_Kept(self.pose, _dilate(walls), seen & ~walls, seen, origin, resolution))

    def _apart(self, pose: tuple[float, float, float]) -> float:
        """Travel from ``pose`` to now, with a turn counted as its share of ``min_travel`` per ``min_turn``."""
        config = self.config
        travel = math.hypot(self.pose[0] - pose[0], self.pose[1] - pose[1])
        turn = abs(wrap_angle(self.pose[2] - pose[2]))
        return max(travel, turn / config.min_turn * config.min_travel)

    def _partner(self) -> _Kept | None:
        config = self.config
        for kept in reversed(self._kept):
            if math.hypot(self.pose[0] - kept.pose[0], self.pose[1] - kept.pose[1]) > config.max_travel:
                return None
            if self._apart(kept.pose) >= config.min_travel:
                return kept
        return None

    def _score(self, occupancy: np.ndarray, resolution: float, origin: tuple[float, float], earlier: _Kept) -> None:
        iy, ix = np.nonzero(occupancy != UNSEEN)
        is_wall = occupancy[iy, ix] == WALL
        x = origin[0] + (ix + 0.5) * resolution
        y = origin[1] + (iy + 0.5) * resolution
        needed = self.config.min_points
        ego = _agreement(x, y, is_wall, earlier, needed)
        # the same cells moved into the earlier robot frame by the odometry between the two BEVs
        (x0, y0, t0), (x1, y1, t1) = earlier.pose, self.pose
        wx = x1 + x * math.cos(t1) - y * math.sin(t1) - x0
        wy = y1 + x * math.sin(t1) + y * math.cos(t1) - y0
        world = _agreement(wx * math.cos(t0) + wy * math.sin(t0), -wx * math.sin(t0) + wy * math.cos(t0), is_wall,
                           earlier, needed)
        if ego is None or world is None:
            return
        self.ego_agreement.append(ego)
        self.world_agreement.append(world)


def _agreement(x: np.ndarray, y: np.ndarray, is_wall: np.ndarray, earlier: _Kept, min_points: int) -> float | None:
    """Share of seen cells (centres in the earlier robot frame) that the earlier BEV labels alike (wall near a
    wall, free on free), among those it saw; None if fewer than ``min_points`` were seen by both."""
    rows = np.floor((y - earlier.origin[1]) / earlier.resolution).astype(int)
    cols = np.floor((x - earlier.origin[0]) / earlier.resolution).astype(int)
    height, width = earlier.seen.shape
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    rows, cols, is_wall = rows[inside], cols[inside], is_wall[inside]
    compared = earlier.seen[rows, cols]
    if compared.sum() < min_points:
        return None
    rows, cols, is_wall = rows[compared], cols[compared], is_wall[compared]
    alike = np.where(is_wall, earlier.walls[rows, cols], earlier.free[rows, cols])
    return float(alike.mean())


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out

