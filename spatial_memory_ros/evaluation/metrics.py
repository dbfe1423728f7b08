"""Localisation metrics, plain functions over (N, 2) or (N, 3) pose arrays (x, y[, theta]) in metres.

The estimate and the ground truth are compared in the same frame without any alignment: for robots that start
from a known pose in the shared map frame, that is what matters to the team.
"""
from __future__ import annotations

import math

import numpy as np

from spatial_memory_ros.types import wrap_angle


def _positions(poses: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(poses, dtype=float)
    if array.ndim != 2 or array.shape[1] < 2 or len(array) == 0:
        raise ValueError(f"{name} must be a non-empty (N, 2) or (N, 3) array of poses, got shape {array.shape}")
    if not np.isfinite(array[:, :2]).all():
        raise ValueError(f"{name} contains non-finite positions; drop or interpolate them first")
    return array[:, :2]


def _pair(estimate: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    est, true = _positions(estimate, "estimate"), _positions(truth, "truth")
    if len(est) != len(true):
        raise ValueError(f"estimate and truth need one pose per time step each, got {len(est)} and {len(true)}")
    return est, true


def position_errors(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Euclidean position error at each time step, metres."""
    est, true = _pair(estimate, truth)
    return np.linalg.norm(est - true, axis=1)


def ate_rmse(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Absolute trajectory error: root mean square of the per-step position errors, metres (no alignment)."""
    return float(math.sqrt(np.mean(position_errors(estimate, truth) ** 2)))


def path_length(poses: np.ndarray) -> float:
    """Length of the polyline through the positions, metres."""
    positions = _positions(poses, "poses")
    return float(np.linalg.norm(np.diff(positions, axis=0), axis=1).sum())


def drift_per_100m(estimate: np.ndarray, truth: np.ndarray, distance: float | None = None) -> float:
    """Final position error per 100 m travelled (``distance``, default the true path length), metres.

    Returns NaN when the robot did not move (no distance to normalise by).
    """
    errors = position_errors(estimate, truth)
    travelled = path_length(truth) if distance is None else float(distance)
    if not math.isfinite(travelled) or travelled < 0:
        raise ValueError(f"distance must be a non-negative number of metres, got {distance}")
    return float(100.0 * errors[-1] / travelled) if travelled > 0 else float("nan")


def heading_errors(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Absolute wrapped heading error at each step, radians; needs (N, 3) arrays."""
    est, true = np.asarray(estimate, dtype=float), np.asarray(truth, dtype=float)
    if est.ndim != 2 or true.ndim != 2 or est.shape[1] < 3 or true.shape[1] < 3 or len(est) != len(true):
        raise ValueError(f"heading errors need two (N, 3) arrays of equal length, got {est.shape} and {true.shape}")
    return np.abs(wrap_angle(est[:, 2] - true[:, 2]))


def pair_by_stamp(estimate: list[tuple[float, float, float]], truth: list[tuple[float, float, float]],
                  tolerance: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Match (stamp, x, y) samples of an estimate and of the truth by stamp; returns two (N, 2) arrays."""
    truth_by_stamp = {round(t / tolerance): (x, y) for t, x, y in truth}
    pairs = [((x, y), truth_by_stamp[round(t / tolerance)]) for t, x, y in estimate
             if round(t / tolerance) in truth_by_stamp]
    if not pairs:
        return np.zeros((0, 2)), np.zeros((0, 2))
    est, true = zip(*pairs)
    return np.asarray(est, float), np.asarray(true, float)


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95% for z = 1.96) of a success rate of ``successes`` in ``trials``; NaNs for none."""
    if trials == 0:
        return float("nan"), float("nan")
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact_p(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value for paired successes (the same seeds under two methods).

    ``only_first``: pairs where only the first method succeeded; ``only_second``: where only the second did. Under
    the null hypothesis each discordant pair goes either way with probability 1/2 (a binomial sign test); 1.0 when
    there are no discordant pairs.
    """
    if only_first < 0 or only_second < 0:
        raise ValueError("discordant pair counts must be non-negative")
    n = only_first + only_second
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_first, only_second) + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired_difference_interval(first: list[bool], second: list[bool], z: float = 1.96) -> tuple[float, float, float]:
    """Difference of success rates of paired outcomes (first minus second) with its Newcombe 95% interval.

    Newcombe's method 10 (1998): Wilson intervals of each rate combined with the correlation of the pairs, so that
    seeds shared by both methods narrow the interval. Returns (difference, low, high); NaNs without pairs.
    """
    if len(first) != len(second):
        raise ValueError(f"paired outcomes need equal lengths, got {len(first)} and {len(second)}")
    n = len(first)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    a = sum(f and s for f, s in zip(first, second))
    b = sum(f and not s for f, s in zip(first, second))
    c = sum(s and not f for f, s in zip(first, second))
    d = n - a - b - c
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, z)
    l2, u2 = wilson_interval(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    if margins == 0:
        phi = 0.0
    else:
        numerator = a * d - b * c
        # the continuity-corrected phi of Newcombe's method 10
        numerator = max(abs(numerator) - n / 2, 0.0) * (1 if numerator >= 0 else -1)
        phi = numerator / math.sqrt(margins)
    diff = p1 - p2
    low = diff - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    high = diff + math.sqrt(max((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0.0))
    return diff, max(-1.0, low), min(1.0, high)
