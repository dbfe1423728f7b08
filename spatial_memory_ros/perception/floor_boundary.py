"""Where the floor ends, column by column, and the BEV that follows from it by geometry (numpy only; issue 12).

A camera on a robot sees the floor up to the first obstacle along every bearing. In the model's *canonical*
camera (level, square, ``fov_deg`` across; camera_adapter.py re-projects any pinhole camera to it) image column u
looks along bearing phi_u = atan((cx - u) / f), and the floor's last visible row there is v = cy + f * t with

    t = camera height / (horizontal range to the obstacle * cos(phi_u))

(the tangent of the angle below the horizon at which the floor ends, measured in the column's vertical plane). The
boundary net (boundary_model.py) predicts t per column from the image, and nothing else: the metric range comes
from the real camera's height, r = h / (t cos phi_u), so one model serves any camera height, pitch, field of view
and resolution, and a BEV finer than the camera's height ratio allows (the adapter's resampled grid could not).
Appearance it has to learn, which is why its training data vary colours, textures and wall heights.

``ColumnRaster`` turns per-column ranges (and the class of an object standing there) into the BEV grid of the
worlds' oracles: free up to the range, wall just behind it, unseen beyond or outside the camera's field of view.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spatial_memory_ros.perception.geometry import BevGeometry
from spatial_memory_ros.types import CameraModel

MAX_BOUNDARY = 1.25
"""Largest t the net predicts: a floor boundary a quarter image below the bottom of a 90 deg canonical image (the
obstacle is nearer than the nearest floor the camera sees)."""
WALL_DEPTH_CELLS = 0.75
"""Cells whose centre lies this many cells behind a column's range are wall (the worlds' oracles use the same
margin)."""
OUTLINE_CELLS = 2.0
"""A cell not seen free but next to one that is, and at most this many cells behind its bearing's range, is wall
(the far side of a corner: the oracles outline free space with the walls around it)."""
MIN_OBJECT_DEPTH = 0.25
"""Metres behind an object's near side that its class is drawn on, at least (an object is taken to be as deep as
it is wide in the image)."""


def column_bearings(size: int, fov_deg: float) -> np.ndarray:
    """(size,) bearing of each column of a square pinhole image ``fov_deg`` across (radians, left positive),
    ROS convention (pixel centres at integers)."""
    focal = 0.5 * size / math.tan(math.radians(fov_deg) / 2)
    return np.arctan2((size - 1) / 2 - np.arange(size), focal)


def boundary_of_ranges(ranges: np.ndarray, bearings: np.ndarray, height: float) -> np.ndarray:
    """t of each column (see the module docstring) from the horizontal ranges (metres) to the first obstacle
    along ``bearings`` seen from ``height`` metres; clipped to (0, MAX_BOUNDARY]."""
    depth = np.asarray(ranges, dtype=np.float64) * np.cos(bearings)
    with np.errstate(divide="ignore"):
        t = height / np.maximum(depth, 1e-6)
    return np.clip(t, 1e-6, MAX_BOUNDARY).astype(np.float32)


def ranges_of_boundary(t: np.ndarray, bearings: np.ndarray, height: float) -> np.ndarray:
    """Horizontal ranges (metres) from a camera ``height`` metres up at which the floor ends, from t per column."""
    return height / (np.maximum(np.asarray(t, dtype=np.float64), 1e-6) * np.cos(bearings))


@dataclass
class ColumnRaster:
    """Rasterises per-column ranges of the canonical image into the model grid of a real ``camera``.

    Each cell centre inside the real camera's horizontal field of view and the model's range reads the range of
    its bearing, interpolated linearly in 1 / range between the two nearest canonical columns (exact for a flat
    wall seen across them) unless they see different surfaces (ranges more than a cell apart: the nearer one).
    """

    geometry: BevGeometry
    camera: CameraModel

    def __post_init__(self) -> None:
        geometry = self.geometry
        self.bearings = column_bearings(geometry.image_size, geometry.fov_deg)
        x, y = geometry.cell_centres()
        dx = x.reshape(-1) - self.camera.mount_forward
        dy = y.reshape(-1)
        self.distance = np.hypot(dx, dy)
        bearing = np.arctan2(dy, dx)
        half_fov = min(math.radians(self.camera.horizontal_fov_deg), math.radians(geometry.fov_deg)) / 2
        robot_bearing = np.arctan2(y.reshape(-1), x.reshape(-1))  # the oracles' view cone is drawn from the centre
        # (a tolerance: cells on the cone's edge, exactly at half the field of view, count as inside, as in the
        # oracles, whatever the rounding)
        self.inside = ((np.abs(robot_bearing) <= half_fov + 1e-9)
                       & (np.hypot(x, y).reshape(-1) <= geometry.view_range + 1e-9))
        # bearings fall with the column index: position along the columns, then the two neighbours
        focal = 0.5 * geometry.image_size / math.tan(math.radians(geometry.fov_deg) / 2)
        position = np.clip((geometry.image_size - 1) / 2 - focal * np.tan(np.clip(bearing, -1.5, 1.5)), 0,
                           geometry.image_size - 1)
        self.low = np.floor(position).astype(np.int64)
        self.high = np.minimum(self.low + 1, geometry.image_size - 1)
        self.share = position - self.low
        self.columns_used = np.abs(self.bearings) <= half_fov + 0.5 * abs(self.bearings[0] - self.bearings[1])

    def rasterise(self, ranges: np.ndarray, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(B, columns) ranges in metres (np.inf: no obstacle in range) and optional (B, columns) object labels
        (0: a wall or nothing) -> occupancy (B, H, W) int8 (-1 / 0 / 100) and object labels (B, H, W) uint8."""
        ranges = np.atleast_2d(np.asarray(ranges, dtype=np.float64))
        batch = len(ranges)
        low, high = ranges[:, self.low], ranges[:, self.high]
        inverse = (1 - self.share) / low + self.share / high
        same_surface = np.abs(low - high) <= self.geometry.bev_resolution
        nearest = np.where(self.share < 0.5, self.low, self.high)
        cell_range = np.where(same_surface, 1.0 / np.maximum(inverse, 1e-9), ranges[:, nearest])
        distance = self.distance[None]
        free = self.inside & (distance <= cell_range)
        behind = self.inside & ~free & np.isfinite(cell_range)
        wall = behind & (distance <= cell_range + WALL_DEPTH_CELLS * self.geometry.bev_resolution)
        wall |= self._hit_cells(ranges) & self.inside & ~free
        wall |= behind & _next_to(free, self.geometry) & (distance <= cell_range + OUTLINE_CELLS * self.geometry.bev_resolution)
        objects = np.zeros(free.shape, dtype=np.uint8)
        if classes is not None:
            classes = np.atleast_2d(np.asarray(classes))
            cell_class = classes[:, nearest]
            depth = object_depths(ranges, classes, abs(self.bearings[0] - self.bearings[1]))[:, nearest]
            on_object = behind & (cell_class > 0) & (distance <= cell_range + depth)
            objects[on_object] = cell_class[on_object]
            free |= on_object
            wall &= ~on_object
        occupancy = np.full(free.shape, -1, dtype=np.int8)
        occupancy[free] = 0
        occupancy[wall] = 100
        shape = (batch, self.geometry.bev_height, self.geometry.bev_width)
        return occupancy.reshape(shape), objects.reshape(shape)

    def _hit_cells(self, ranges: np.ndarray) -> np.ndarray:
        """(B, cells) bool: the cells holding each used column's end point (so thin or grazing walls stay
        closed, as in the oracles)."""
        geometry = self.geometry
        bearings = self.bearings[self.columns_used]
        reach = ranges[:, self.columns_used] + 1e-3
        x = self.camera.mount_forward + reach * np.cos(bearings)
        y = reach * np.sin(bearings)
        ix = np.floor((x - geometry.bev_origin[0]) / geometry.bev_resolution).astype(np.int64)
        iy = np.floor((y - geometry.bev_origin[1]) / geometry.bev_resolution).astype(np.int64)
        ok = (ix >= 0) & (ix < geometry.bev_width) & (iy >= 0) & (iy < geometry.bev_height) & np.isfinite(reach)
        marked = np.zeros((len(ranges), geometry.bev_height * geometry.bev_width), dtype=bool)
        frame = np.broadcast_to(np.arange(len(ranges))[:, None], ix.shape)
        marked[frame[ok], (iy * geometry.bev_width + ix)[ok]] = True
        return marked


def _next_to(mask: np.ndarray, geometry: BevGeometry) -> np.ndarray:
    """(B, cells) bool: cells 4-adjacent to a cell set in ``mask`` (B, cells)."""
    grid = mask.reshape(len(mask), geometry.bev_height, geometry.bev_width)
    near = np.zeros_like(grid)
    near[:, 1:] |= grid[:, :-1]
    near[:, :-1] |= grid[:, 1:]
    near[:, :, 1:] |= grid[:, :, :-1]
    near[:, :, :-1] |= grid[:, :, 1:]
    return near.reshape(len(mask), -1)


def object_depths(ranges: np.ndarray, classes: np.ndarray, spacing: float) -> np.ndarray:
    """(B, columns) metres behind each column's range that its object reaches: the width of the run of adjacent
    columns showing the same object class (columns x ``spacing`` radians x range), at least MIN_OBJECT_DEPTH; an
    upright object is about as deep as it is wide."""
    depth = np.full(ranges.shape, MIN_OBJECT_DEPTH)
    for frame, (row, labels) in enumerate(zip(ranges, classes)):
        start = 0
        for end in range(1, len(labels) + 1):
            if end == len(labels) or labels[end] != labels[start]:
                if labels[start] > 0:
                    width = (end - start) * spacing * float(np.median(row[start:end]))
                    depth[frame, start:end] = max(MIN_OBJECT_DEPTH, width)
                start = end
    return depth
