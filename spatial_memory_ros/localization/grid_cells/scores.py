"""How grid-like units are: rate maps, spatial autocorrelograms and grid scores 60 / 90 (numpy only).

``GridScorer`` follows the DeepMind scorer (ring masks over the autocorrelogram, correlation with its rotations).
"""
from __future__ import annotations

import math

import numpy as np


def rate_maps(positions: np.ndarray, activity: np.ndarray, box_width: float, box_height: float,
              bins: int = 20) -> np.ndarray:
    """Mean activity of each unit in each spatial bin, (units, bins, bins) indexed [unit, iy, ix]; NaN if unvisited."""
    ix = np.clip(((positions[:, 0] / box_width + 0.5) * bins).astype(int), 0, bins - 1)
    iy = np.clip(((positions[:, 1] / box_height + 0.5) * bins).astype(int), 0, bins - 1)
    flat = iy * bins + ix
    counts = np.bincount(flat, minlength=bins * bins).astype(float)
    sums = np.zeros((activity.shape[1], bins * bins))
    np.add.at(sums.T, flat, activity)
    with np.errstate(invalid="ignore", divide="ignore"):
        maps = sums / counts
    maps[:, counts == 0] = np.nan
    return maps.reshape(-1, bins, bins)


def _cross_correlate_full(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """out[..., dy + n - 1, dx + m - 1] = sum_ij a[i + dy, j + dx] * b[i, j], by FFT, for (..., n, m) inputs."""
    n, m = a.shape[-2:]
    shape = (2 * n, 2 * m)
    product = np.fft.rfft2(a, s=shape) * np.conj(np.fft.rfft2(b, s=shape))
    full = np.fft.irfft2(product, s=shape)
    return np.roll(full, (n - 1, m - 1), axis=(-2, -1))[..., :2 * n - 1, :2 * m - 1]


def autocorrelograms(maps: np.ndarray, min_overlap: int = 20) -> np.ndarray:
    """Spatial autocorrelograms (..., 2b-1, 2b-1): Pearson correlation of each map with itself at every lag.

    Unvisited (NaN) bins are left out of each lag's overlap; lags with fewer than ``min_overlap`` bins give 0.
    """
    valid = np.isfinite(maps).astype(float)
    values = np.nan_to_num(maps)
    overlap = _cross_correlate_full(valid, valid)
    sum_a, sum_b = _cross_correlate_full(values, valid), _cross_correlate_full(valid, values)
    sq_a, sq_b = _cross_correlate_full(values ** 2, valid), _cross_correlate_full(valid, values ** 2)
    cross = _cross_correlate_full(values, values)
    variance = (overlap * sq_a - sum_a ** 2) * (overlap * sq_b - sum_b ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (overlap * cross - sum_a * sum_b) / np.sqrt(np.maximum(variance, 0.0))
    good = (overlap >= min_overlap - 0.5) & (variance > 1e-12)
    return np.where(good, corr, 0.0)


class GridScorer:
    """Grid scores of rate maps over ring masks of the autocorrelogram (the DeepMind scorer's method).

    score 60 = mean(c60, c120) - mean(c30, c90, c150) and score 90 = c90 - mean(c45, c135), where c_a is the
    correlation, inside a ring, of the autocorrelogram with itself rotated by a degrees; each unit's score is the
    best over rings of inner radius 0.2 and outer radius 0.4..1.0 (fractions of the map width in bins).
    """

    ANGLES = (30, 45, 60, 90, 120, 135, 150)

    def __init__(self, bins: int = 20, inner: float = 0.2, outers: tuple[float, ...] | None = None) -> None:
        """Rings for ``bins`` x ``bins`` rate maps."""
        self.bins = bins
        outers = tuple(np.linspace(0.4, 1.0, 10)) if outers is None else outers
        size = 2 * bins - 1
        yy, xx = np.mgrid[0:size, 0:size] - (bins - 1)
        radius = np.hypot(yy, xx)
        self.rings = [(radius >= inner * bins) & (radius <= outer * bins) for outer in outers]
        self._samplers = {angle: _rotation_sampler(size, math.radians(angle)) for angle in self.ANGLES}

    def scores(self, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score 60, score 90), each (units,), for rate maps (units, bins, bins)."""
        sacs = autocorrelograms(maps)
        rotated = {angle: _rotate(sacs, sampler) for angle, sampler in self._samplers.items()}
        best_60 = np.full(len(maps), -np.inf)
        best_90 = np.full(len(maps), -np.inf)
        for ring in self.rings:
            corr = {angle: _ring_correlation(sacs, rotated[angle], ring) for angle in self.ANGLES}
            score_60 = (corr[60] + corr[120]) / 2 - (corr[30] + corr[90] + corr[150]) / 3
            score_90 = corr[90] - (corr[45] + corr[135]) / 2
            best_60, best_90 = np.maximum(best_60, score_60), np.maximum(best_90, score_90)
        return best_60, best_90


def _rotation_sampler(size: int, angle: float) -> tuple[np.ndarray, ...]:
    """Bilinear sampling indices and weights that rotate a (size, size) image by ``angle`` about its centre."""
    centre = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size] - centre
    src_x = math.cos(angle) * xx + math.sin(angle) * yy + centre
    src_y = -math.sin(angle) * xx + math.cos(angle) * yy + centre
    x0, y0 = np.floor(src_x).astype(int), np.floor(src_y).astype(int)
    fx, fy = src_x - x0, src_y - y0
    corners = []
    for dy, dx, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yi, xi = y0 + dy, x0 + dx
        inside = (yi >= 0) & (yi < size) & (xi >= 0) & (xi < size)
        corners.append((np.clip(yi, 0, size - 1), np.clip(xi, 0, size - 1), np.where(inside, weight, 0.0)))
    return tuple(corners)


def _rotate(images: np.ndarray, sampler: tuple) -> np.ndarray:
    return sum(images[..., yi, xi] * weight for yi, xi, weight in sampler)


def _ring_correlation(sacs: np.ndarray, rotated: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Correlation inside the ring of each autocorrelogram with its rotation (centred on the unrotated mean)."""
    area = ring.sum()
    inside, rotated_inside = sacs[:, ring], rotated[:, ring]
    mean = inside.sum(-1, keepdims=True) / area
    centred = inside - mean
    variance = (centred ** 2).sum(-1) / area + 1e-5
    return ((centred * (rotated_inside - mean)).sum(-1) / area) / variance
