"""How well a BEV fits an occupancy map: the map, its likelihood fields and the checked BEV points (numpy, cv2).

The map is an ``OccupancyMap``: int8 values as in nav_msgs/OccupancyGrid (-1 unknown, 0..100 occupancy), a
resolution and the origin of cell (0, 0). A BEV's wall and free cells, placed at a candidate pose, are scored
against distance-based likelihood fields of the map (tolerant of small offsets); unknown map cells are neutral.
``MapLikelihood`` is shared by the TEM localizer (tem.py) and the benchmark's particle filter.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from spatial_memory_ros.localization.tem_config import TemConfig

OCCUPIED_THRESHOLD = 50
FREE_THRESHOLD = 20
BEV_WALL, BEV_FREE, BEV_UNSEEN = 100, 0, -1


# ------------------------------------------------------------------------------------------------ map


@dataclass
class OccupancyMap:
    """A 2-D occupancy grid in the map frame, like nav_msgs/OccupancyGrid with zero origin yaw.

    ``data[iy, ix]`` is -1 unknown or 0..100 (>= 50 occupied, <= 20 free, between: unknown); cell [iy, ix] spans
    x in [origin_x + ix * resolution, ...) and y in [origin_y + iy * resolution, ...).
    """

    data: np.ndarray
    resolution: float
    origin_x: float = 0.0
    origin_y: float = 0.0

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim != 2 or min(data.shape) < 1:
            raise ValueError(f"map data must be a 2-D grid [iy, ix], got shape {data.shape}; reshape "
                             "OccupancyGrid.data to (info.height, info.width)")
        if not np.issubdtype(data.dtype, np.integer) or data.min() < -1 or data.max() > 100:
            raise ValueError("map values must be integers in -1..100 (OccupancyGrid convention)")
        if not (math.isfinite(self.resolution) and self.resolution > 0):
            raise ValueError(f"map resolution must be a positive number of metres, got {self.resolution}")
        if not (math.isfinite(self.origin_x) and math.isfinite(self.origin_y)):
            raise ValueError(f"map origin must be finite, got ({self.origin_x}, {self.origin_y})")
        self.data = data.astype(np.int8)

    @property
    def occupied(self) -> np.ndarray:
        """Cells known to be walls."""
        return self.data >= OCCUPIED_THRESHOLD

    @property
    def free(self) -> np.ndarray:
        """Cells known to be free."""
        return (self.data >= 0) & (self.data <= FREE_THRESHOLD)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) in metres."""
        height, width = self.data.shape
        return (self.origin_x, self.origin_y, self.origin_x + width * self.resolution,
                self.origin_y + height * self.resolution)


def maze_occupancy(maze: Any, resolution: float = 0.25) -> OccupancyMap:
    """A true maze rasterised to an OccupancyMap: 100 in walls, 0 elsewhere.

    ``maze`` is duck-typed (localization does not import sim): anything with ``rows``, ``cols``, ``cell_size``
    (m) and a boolean ``walls[row, col]`` grid, such as sim.world.Maze.
    """
    rows = int(round(maze.rows * maze.cell_size / resolution))
    cols = int(round(maze.cols * maze.cell_size / resolution))
    centre_y = (np.arange(rows) + 0.5) * resolution
    centre_x = (np.arange(cols) + 0.5) * resolution
    row = np.clip((centre_y / maze.cell_size).astype(int), 0, maze.rows - 1)
    col = np.clip((centre_x / maze.cell_size).astype(int), 0, maze.cols - 1)
    walls = maze.walls[row[:, None], col[None, :]]
    return OccupancyMap(np.where(walls, 100, 0).astype(np.int8), resolution, 0.0, 0.0)


# ---------------------------------------------------------------------------------- likelihood fields


@dataclass
class _Fields:
    """Per-point log-likelihoods of a BEV wall / free cell landing on each field cell, padded with 'unknown'."""

    wall: np.ndarray
    free: np.ndarray
    expected: np.ndarray
    resolution: float
    origin_x: float
    origin_y: float


def _likelihood_fields(occupancy: OccupancyMap, config: TemConfig, pad_m: float) -> _Fields:
    """Distance-based fields on a grid of about ``field_resolution``, padded by ``pad_m`` metres of unknown."""
    upsample = max(1, math.ceil(occupancy.resolution / config.field_resolution - 1e-9))
    resolution = occupancy.resolution / upsample
    pad = int(math.ceil(pad_m / resolution))
    occupied = np.repeat(np.repeat(occupancy.occupied, upsample, 0), upsample, 1)
    free = np.repeat(np.repeat(occupancy.free, upsample, 0), upsample, 1)
    outside_wall = _distance(~occupied) * resolution
    inside_wall = _distance(occupied) * resolution
    unknown = config.unknown_log_likelihood
    hit = lambda distance: np.log(config.miss_probability + (1 - config.miss_probability)  # noqa: E731
                                  * np.exp(-0.5 * (distance / config.hit_sigma) ** 2))
    known = occupied | free
    wall = np.where(known, np.where(occupied, 0.0, hit(outside_wall)), unknown)
    free_field = np.where(known, np.where(free, 0.0, hit(inside_wall)), unknown)
    expected = np.where(occupied, 1.0, np.where(free, 0.0, 0.5))
    padded = [np.pad(a, pad, constant_values=value) for a, value in ((wall, unknown), (free_field, unknown),
                                                                       (expected, 0.5))]
    return _Fields(*padded, resolution, occupancy.origin_x - pad * resolution, occupancy.origin_y - pad * resolution)


def _distance(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (cells) from each True cell of ``mask`` to the nearest False cell (0 where False)."""
    if mask.all():
        return np.full(mask.shape, 1e6, dtype=np.float32)
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


class MapLikelihood:
    """How well BEV cells placed at candidate poses fit an occupancy map (shared by the TEM and a particle filter).

    ``fit`` is the mean log-likelihood per BEV point: 0 when every wall cell lands in a wall and every free cell in
    free space, log(miss_probability) per contradicted cell, ``unknown_log_likelihood`` for cells on unknown map.
    """

    def __init__(self, occupancy: OccupancyMap, config: TemConfig | None = None) -> None:
        """Likelihood fields of ``occupancy``, padded so that any BEV placed on the map stays inside them."""
        self.config = config or TemConfig()
        view = max(self.config.bev_shape) * self.config.bev_resolution * math.sqrt(2)
        self.fields = _likelihood_fields(occupancy, self.config, pad_m=view + self.config.margin + 1.0)
        self._table = np.stack([self.fields.wall.reshape(-1), self.fields.free.reshape(-1)])

    def points(self, bev: Any) -> BevPoints:
        """The checked, subsampled BEV cells of ``bev`` (ValueError if its size, resolution or values are wrong)."""
        return bev_points(bev, self.config)

    def fit(self, points: BevPoints, x: np.ndarray, y: np.ndarray, theta: float | np.ndarray) -> np.ndarray:
        """Mean log-likelihood per point of the BEV at poses (x, y, theta); theta broadcasts against x.

        x and y are (N,); theta is a scalar, (N,), or (K, 1) for K headings at each of the N positions (-> (K, N)).
        """
        fields = self.fields
        height, width = fields.wall.shape
        theta = np.asarray(theta, dtype=float)
        cos_t, sin_t = np.cos(theta)[..., None, :], np.sin(theta)[..., None, :]
        px, py = points.xy[:, 0:1], points.xy[:, 1:2]
        grid_x = (np.asarray(x, dtype=float) - fields.origin_x) / fields.resolution
        grid_y = (np.asarray(y, dtype=float) - fields.origin_y) / fields.resolution
        scale = 1.0 / fields.resolution
        ix = np.floor(grid_x + scale * (cos_t * px - sin_t * py)).astype(np.int64)
        iy = np.floor(grid_y + scale * (sin_t * px + cos_t * py)).astype(np.int64)
        flat = np.minimum(np.maximum(iy, 0), height - 1) * width + np.minimum(np.maximum(ix, 0), width - 1)
        kind = np.where(points.is_wall, 0, 1)[:, None]
        return self._table[kind, flat].mean(axis=-2)

    def expected_occupancy(self, points: BevPoints, x: float, y: float, theta: float) -> np.ndarray:
        """The map's occupancy (1 wall, 0 free, 0.5 unknown) under each BEV point placed at one pose."""
        fields = self.fields
        cos_t, sin_t = math.cos(theta), math.sin(theta)
        map_x = x + cos_t * points.xy[:, 0] - sin_t * points.xy[:, 1]
        map_y = y + sin_t * points.xy[:, 0] + cos_t * points.xy[:, 1]
        ix = np.clip(np.floor((map_x - fields.origin_x) / fields.resolution).astype(int), 0,
                     fields.expected.shape[1] - 1)
        iy = np.clip(np.floor((map_y - fields.origin_y) / fields.resolution).astype(int), 0,
                     fields.expected.shape[0] - 1)
        return fields.expected[iy, ix]

    def prior_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """1 where a robot centre may be, ``clearance_weight`` nearer than its radius to a wall, 0 inside walls."""
        fields, config = self.fields, self.config
        ix = np.clip(np.floor((np.asarray(x) - fields.origin_x) / fields.resolution).astype(int), 0,
                     fields.wall.shape[1] - 1)
        iy = np.clip(np.floor((np.asarray(y) - fields.origin_y) / fields.resolution).astype(int), 0,
                     fields.wall.shape[0] - 1)
        expected, wall = fields.expected[iy, ix], fields.wall[iy, ix]
        near_limit = math.log(config.miss_probability + (1 - config.miss_probability)
                              * math.exp(-0.5 * (config.robot_radius / config.hit_sigma) ** 2))
        prior = np.where(wall > near_limit + 1e-9, config.clearance_weight, 1.0)
        prior[expected == 0.5] = 1.0
        prior[expected == 1.0] = 0.0
        return prior


@dataclass
class BevPoints:
    """Robot-frame (x, y) of the BEV cells that take part in a correction, and whether each is a wall."""

    xy: np.ndarray
    is_wall: np.ndarray


def bev_points(bev: Any, config: TemConfig) -> BevPoints:
    """Check a BEV (shape, resolution, finite origin, values -1/0/100) and pick its wall and free cells.

    At most ``max_wall_points`` walls and ``max_free_points`` free cells, evenly spread. ValueError if it does not
    fit ``config``.
    """
    occupancy = np.asarray(getattr(bev, "occupancy", None))
    if occupancy.shape != config.bev_shape:
        raise ValueError(f"BEV must be {config.bev_shape[0]}x{config.bev_shape[1]} cells [iy, ix], got shape "
                         f"{occupancy.shape}; set TemConfig.bev_shape to match the BEV producer")
    resolution = float(getattr(bev, "resolution", float("nan")))
    origin = (float(getattr(bev, "origin_x", float("nan"))), float(getattr(bev, "origin_y", float("nan"))))
    if not math.isclose(resolution, config.bev_resolution, rel_tol=1e-6):
        raise ValueError(f"BEV resolution {resolution} m differs from TemConfig.bev_resolution "
                         f"{config.bev_resolution} m")
    if not all(math.isfinite(v) for v in origin):
        raise ValueError(f"BEV origin must be finite, got {origin}")
    if not ((occupancy == BEV_FREE) | (occupancy == BEV_WALL) | (occupancy == BEV_UNSEEN)).all():
        raise ValueError("BEV occupancy values must be -1 (unseen), 0 (free) or 100 (wall)")
    x, y = _bev_cell_centres(occupancy.shape, resolution, origin)
    chosen = []
    for value, limit in ((BEV_WALL, config.max_wall_points), (BEV_FREE, config.max_free_points)):
        cells = np.flatnonzero(occupancy.reshape(-1) == value)
        if len(cells) > limit:
            cells = cells[np.linspace(0, len(cells) - 1, limit).round().astype(int)]
        chosen.append(cells)
    cells = np.concatenate(chosen)
    return BevPoints(np.column_stack([x[cells], y[cells]]), np.arange(len(cells)) < len(chosen[0]))


@functools.lru_cache(maxsize=8)
def _bev_cell_centres(shape: tuple[int, int], resolution: float, origin: tuple[float, float]):
    """Flat robot-frame (x, y) of every BEV cell centre (cached: every BEV of a producer has the same geometry)."""
    iy, ix = np.mgrid[0:shape[0], 0:shape[1]]
    x = (origin[0] + (ix + 0.5) * resolution).reshape(-1)
    y = (origin[1] + (iy + 0.5) * resolution).reshape(-1)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y
