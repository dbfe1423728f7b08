"""The location belief as a grid, and seed 002's translation kernel that moves it by one odometry step (numpy only).

A move of (shift_x, shift_y) cells is a separable kernel: the sub-cell part split bilinearly between the two nearest
cells, topped up with a Gaussian blur for motion noise; mass moved off the grid is dropped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class BeliefGrid:
    """The location belief as a grid [iy, ix] summing to 1, with its resolution and origin (map frame)."""

    probabilities: np.ndarray
    resolution: float
    origin_x: float
    origin_y: float

    def as_occupancy_values(self) -> np.ndarray:
        """int8 0..100 heat map (100 = the most likely cell), for a nav_msgs/OccupancyGrid in RViz."""
        peak = float(self.probabilities.max())
        scaled = self.probabilities / peak if peak > 0 else self.probabilities
        return np.round(100.0 * scaled).astype(np.int8)


def translation_kernel_1d(shift: float, blur_sigma: float = 0.0) -> tuple[int, np.ndarray]:
    """1-D kernel that moves a signal by ``shift`` cells: (first offset, taps); out[i] = sum_j taps[j] in[i - o - j].

    The sub-cell part is split bilinearly between the two nearest cells, which by itself spreads the mass with
    variance f (1 - f); the Gaussian blur only adds what is missing to reach ``blur_sigma`` (cells).
    """
    base = math.floor(shift)
    fraction = shift - base
    extra_variance = max(blur_sigma ** 2 - fraction * (1.0 - fraction), 0.0)
    if extra_variance < 1e-4:
        return base, np.array([1.0 - fraction, fraction])
    radius = max(1, math.ceil(3.0 * math.sqrt(extra_variance)))
    gauss = np.exp(-0.5 * np.arange(-radius, radius + 1) ** 2 / extra_variance)
    taps = np.convolve(gauss / gauss.sum(), [1.0 - fraction, fraction])
    return base - radius, taps


def translation_kernel(shift_x: float, shift_y: float, blur_sigma: float = 0.0) -> tuple[tuple[int, int], np.ndarray]:
    """Seed 002's 2-D kernel [ky, kx] for a move of (shift_x, shift_y) cells, with its (y, x) first offsets.

    Separable: the outer product of the two 1-D kernels of ``translation_kernel_1d``.
    """
    offset_x, taps_x = translation_kernel_1d(shift_x, blur_sigma)
    offset_y, taps_y = translation_kernel_1d(shift_y, blur_sigma)
    return (offset_y, offset_x), np.outer(taps_y, taps_x)


def _convolve_axis(grid: np.ndarray, offset: int, taps: np.ndarray, axis: int) -> np.ndarray:
    """out[i] = sum_j taps[j] * grid[i - offset - j] along ``axis``; mass moved off the grid is dropped."""
    out = np.zeros_like(grid)
    size = grid.shape[axis]
    for j, weight in enumerate(taps):
        shift = offset + j
        if weight == 0.0 or abs(shift) >= size:
            continue
        source = [slice(None)] * 2
        target = [slice(None)] * 2
        source[axis] = slice(max(0, -shift), size - max(0, shift))
        target[axis] = slice(max(0, shift), size - max(0, -shift))
        out[tuple(target)] += weight * grid[tuple(source)]
    return out


def apply_translation(belief: np.ndarray, shift_x: float, shift_y: float, blur_sigma: float = 0.0) -> np.ndarray:
    """Move a belief grid [iy, ix] by (shift_x, shift_y) cells with blur; mass leaving the grid is lost."""
    offset_x, taps_x = translation_kernel_1d(shift_x, blur_sigma)
    offset_y, taps_y = translation_kernel_1d(shift_y, blur_sigma)
    return _convolve_axis(_convolve_axis(belief, offset_x, taps_x, axis=1), offset_y, taps_y, axis=0)
