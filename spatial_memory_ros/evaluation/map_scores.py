"""How close a robot's occupancy map is to the true maze: the maze rasterised onto the map grid, its wall
surfaces, and coverage and IoU scores of an estimate against it.

Scoring needs the true world, which the memory never sees, so it lives with the evaluation rather than with the
BEV -> map bookkeeping in memory/mapping.py (which must not import the simulator); the cell codes (UNKNOWN, FREE,
WALL) are the map's own.
"""
from __future__ import annotations

import numpy as np

from spatial_memory_ros.memory.mapping import FREE, UNKNOWN, WALL
from spatial_memory_ros.sim.maze import Maze
from spatial_memory_ros.types import GridGeometry


def rasterize_maze(maze: Maze, geometry: GridGeometry) -> np.ndarray:
    """The true maze on ``geometry``: int8 WALL where a cell centre is inside a wall, else FREE."""
    xs, ys = geometry.cell_centres()
    rows = np.floor(ys / maze.cell_size).astype(np.int64)
    cols = np.floor(xs / maze.cell_size).astype(np.int64)
    inside = (rows >= 0) & (rows < maze.walls.shape[0]) & (cols >= 0) & (cols < maze.walls.shape[1])
    walls = np.ones(xs.shape, bool)
    walls[inside] = maze.walls[rows[inside], cols[inside]]
    return np.where(walls, WALL, FREE).astype(np.int8)


def map_scores(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Coverage and IoU of an occupancy estimate (int8, -1/0..100) against the truth (FREE/WALL).

    coverage: fraction of the true free cells that the estimate has seen; free_iou / wall_iou: IoU of the
    estimate's free (p < 0.5) and wall (p >= 0.5) cells with the truth's, over the whole grid; map_iou: their mean.
    The true walls are their surfaces (wall cells next to free space): a camera never sees a wall's inside.
    accuracy_seen: fraction of the seen cells whose free/wall call agrees with the truth (how right the map is
    where it has looked, whatever the coverage).
    """
    if estimate.shape != truth.shape:
        raise ValueError(f"estimate {estimate.shape} and truth {truth.shape} differ in shape")
    seen = estimate != UNKNOWN
    est_free, est_wall = seen & (estimate < 50), seen & (estimate >= 50)
    true_free, true_wall = truth == FREE, wall_surfaces(truth)

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        union = np.count_nonzero(a | b)
        return float(np.count_nonzero(a & b) / union) if union else 1.0

    free_iou, wall_iou = iou(est_free, true_free), iou(est_wall, true_wall)
    coverage = float(np.count_nonzero(seen & true_free) / max(np.count_nonzero(true_free), 1))
    agree = np.count_nonzero(est_free & true_free) + np.count_nonzero(est_wall & (truth == WALL))
    accuracy_seen = float(agree / np.count_nonzero(seen)) if seen.any() else 1.0
    return {"coverage": coverage, "free_iou": free_iou, "wall_iou": wall_iou, "map_iou": 0.5 * (free_iou + wall_iou),
            "accuracy_seen": accuracy_seen}


def wall_surfaces(truth: np.ndarray) -> np.ndarray:
    """Wall cells with a free 4-neighbour (bool, same shape)."""
    free = np.pad(truth == FREE, 1)
    next_to_free = free[:-2, 1:-1] | free[2:, 1:-1] | free[1:-1, :-2] | free[1:-1, 2:]
    return (truth == WALL) & next_to_free
