"""Localisation metrics, plain functions over (N, 2) or (N, 3) pose arrays (x, y[, theta]) in metres.

The estimate and the ground truth are compared in the same frame without any alignment: for robots that start
from a known pose in the shared map frame, that is what matters to the team.
"""
from __future__ import annotations

import math

import numpy as np


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
    return np.abs((est[:, 2] - true[:, 2] + math.pi) % (2 * math.pi) - math.pi)


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
