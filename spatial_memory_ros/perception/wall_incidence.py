"""The angle a BEV's walls are seen at, and a BEV without the walls it sees edge-on.

A wall seen edge-on (the camera's ray nearly along its face) is the one a predictor gets wrong most: a side
doorway seen at a slant is hidden behind its own jamb and the predicted wall runs straight through it, closing the
room behind in the robot's map. On Memory-Maze, predicted wall cells within 5 m seen within about 11.5 deg of
edge-on are true walls 49-62% of the time, against 66-79% for all of them
(benchmarks/diagnostics/bev_wall_incidence.py). Left unseen, such cells keep the floor beside them a frontier until
a better view decides, and the localizer does not match a view against walls its map left out.
"""
from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from spatial_memory_ros.types import BevGrid

UNSEEN = -1  # BevGrid.occupancy of a cell the camera does not see (types.BevGrid)
MIN_WALL_INCIDENCE = 0.0
"""The shipped :func:`without_grazing_walls` threshold (the score robot's): every predicted wall is kept until a
trial shows that leaving the edge-on ones out helps (session 27, README)."""


def wall_incidence(occupancy: np.ndarray, forward: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Per BEV cell, |cos| of the angle between the camera's ray to it and the normal of the wall surface there
    (1: seen head-on, 0: seen edge-on); 1 where no floor edge gives the surface a direction.

    The surface normal is the gradient of the (3 x 3 smoothed) floor mask: a wall's seen face borders the floor in
    front of it. ``forward`` / ``left`` are the cells' robot-frame centres (same shape as ``occupancy``)."""
    floor = ((occupancy >= 0) & (occupancy < 50)).astype(np.float32)
    smooth = cv2.blur(floor, (3, 3), borderType=cv2.BORDER_REPLICATE)
    grad_left, grad_forward = np.gradient(smooth)
    norm = np.hypot(grad_forward, grad_left) * np.hypot(forward, left)
    dot = np.abs(grad_forward * forward + grad_left * left)
    return np.where(norm > 1e-6, dot / np.maximum(norm, 1e-12), 1.0).astype(np.float32)


def without_grazing_walls(bev: BevGrid, min_incidence: float = MIN_WALL_INCIDENCE) -> BevGrid:
    """``bev`` with its wall cells seen more edge-on than ``min_incidence`` (a |cos| in [0, 1]; 0: none) made
    unseen; object cells are kept. Raises ValueError for a threshold that is not a |cos|."""
    if not (math.isfinite(min_incidence) and 0.0 <= min_incidence <= 1.0):
        raise ValueError(f"min_incidence is a |cos| in [0, 1], got {min_incidence}")
    if min_incidence == 0.0:
        return bev
    height, width = bev.occupancy.shape
    iy, ix = np.mgrid[0:height, 0:width]
    forward = bev.origin_x + (ix + 0.5) * bev.resolution
    left = bev.origin_y + (iy + 0.5) * bev.resolution
    grazing = wall_incidence(bev.occupancy, forward, left) < min_incidence
    drop = (bev.occupancy >= 50) & grazing & (bev.object_class == 0)
    if not drop.any():
        return bev
    return replace(bev, occupancy=np.where(drop, UNSEEN, bev.occupancy).astype(bev.occupancy.dtype))
