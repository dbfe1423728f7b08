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
An object (a run of columns of one class) is drawn as the disc its silhouette implies: a round object of radius R
whose centre lies D away spans 2 asin(R / D) and shows its near side at D - R, so the width and the nearest range
give both. The walls it hides are taken to continue between the columns beside it (interpolated in 1 / range,
exact for a flat wall), which is also how the oracles draw them: objects stand on free floor and hide nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

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
MAX_OBJECT_HALF_ANGLE = 1.2
"""Radians: an object run wider than twice this (nearly the whole view) is taken to subtend this much (the disc
geometry breaks down when the camera is inside the object)."""


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
        if classes is not None:
            classes = np.atleast_2d(np.asarray(classes))
        walls = ranges if classes is None else hidden_wall_ranges(ranges, classes, self.bearings)
        free, wall = self._free_and_walls(walls)
        objects = np.zeros(free.shape, dtype=np.uint8)
        if classes is not None:
            self._draw_objects(objects, free, ranges, classes, walls)
        occupancy = np.full(free.shape, -1, dtype=np.int8)
        occupancy[free] = 0
        occupancy[wall] = 100
        shape = (len(ranges), self.geometry.bev_height, self.geometry.bev_width)
        return occupancy.reshape(shape), objects.reshape(shape)

    def _free_and_walls(self, ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, cells) free and wall masks of (B, columns) wall ranges."""
        low, high = ranges[:, self.low], ranges[:, self.high]
        inverse = (1 - self.share) / low + self.share / high
        same_surface = np.abs(low - high) <= self.geometry.bev_resolution
        nearest = np.where(self.share < 0.5, self.low, self.high)
        cell_range = np.where(same_surface, 1.0 / np.maximum(inverse, 1e-9), ranges[:, nearest])
        distance = self.distance[None]
        free = self.inside & (distance <= cell_range)
        behind = self.inside & ~free & np.isfinite(cell_range)
        resolution = self.geometry.bev_resolution
        wall = behind & (distance <= cell_range + WALL_DEPTH_CELLS * resolution)
        wall |= self._hit_cells(ranges) & self.inside & ~free
        wall |= behind & _next_to(free, self.geometry) & (distance <= cell_range + OUTLINE_CELLS * resolution)
        return free, wall

    def _draw_objects(self, objects: np.ndarray, free: np.ndarray, ranges: np.ndarray, classes: np.ndarray,
                      walls: np.ndarray) -> None:
        """Marks each object's disc (object_discs) on the free cells of ``objects`` (B, cells), in place."""
        x, y = self.geometry.cell_centres()
        x, y = x.reshape(-1), y.reshape(-1)
        reach = 0.5 * self.geometry.bev_resolution  # the oracles mark cells whose centre is within half a cell
        used = np.flatnonzero(self.columns_used)
        for frame, label, bearing, centre, radius in object_discs(ranges, classes, self.bearings, used, walls,
                                                                          slack=reach):
            centre_x = self.camera.mount_forward + centre * math.cos(bearing)
            on_disc = np.hypot(x - centre_x, y - centre * math.sin(bearing)) <= radius + reach
            on_disc &= free[frame]
            objects[frame, on_disc] = label

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


def hidden_wall_ranges(ranges: np.ndarray, classes: np.ndarray, bearings: np.ndarray) -> np.ndarray:
    """(B, columns) ranges with the columns that show an object (classes > 0) replaced by the wall the object-free
    columns beside it see: 1 / (range cos bearing), the boundary's image row up to the camera's scale, interpolated
    linearly across the columns (exact for a straight wall, whose base is a straight line in the image); the
    nearest object-free column's value at the ends."""
    walls = np.array(ranges, dtype=np.float64)
    columns = np.arange(walls.shape[1])
    cosine = np.cos(bearings)
    for frame in np.flatnonzero((classes > 0).any(axis=1)):
        hidden = classes[frame] > 0
        if hidden.all():
            continue
        row = 1.0 / (np.maximum(walls[frame, ~hidden], 1e-6) * cosine[~hidden])  # np.inf (nothing in range): 0
        filled = np.interp(columns[hidden], columns[~hidden], row)
        walls[frame, hidden] = 1.0 / (np.maximum(filled, 1e-9) * cosine[hidden])
    return walls


def object_discs(ranges: np.ndarray, classes: np.ndarray, bearings: np.ndarray, used: np.ndarray,
                 walls: np.ndarray, slack: float) -> list[tuple[int, int, float, float, float]]:
    """(frame, label, bearing, centre range, radius) of each object seen as a run of columns of one class.

    The centre's bearing is the run's middle, or, for a run cut off by the edge of the camera's ``used`` columns,
    the bearing of its nearest column (the near side of a round object faces the camera); an object whose nearest
    column is the cut-off edge is left out (its centre is probably out of view, where the oracles do not draw it),
    and so is one whose centre lies more than ``slack`` metres behind the wall at its bearing (seen only round a
    corner).
    """
    discs = []
    spacing = np.abs(np.gradient(bearings))
    first, last = int(used[0]), int(used[-1])
    for frame, row in enumerate(classes):
        for start, end, label in _runs(row):
            run = np.arange(start, end)
            closest = int(run[np.argmin(ranges[frame, run])])
            cut_low, cut_high = start <= first, end - 1 >= last
            if cut_low or cut_high:
                if (cut_low and cut_high) or closest in (start, end - 1):
                    continue
                other = end - 1 if cut_low else start
                middle, half_angle = closest, abs(bearings[closest] - bearings[other]) + 0.5 * spacing[other]
            else:
                middle = (start + end - 1) // 2
                half_angle = 0.5 * (abs(bearings[start] - bearings[end - 1]) + spacing[start])
            bearing = float(bearings[closest] if cut_low or cut_high else 0.5 * (bearings[start] + bearings[end - 1]))
            sine = math.sin(min(half_angle, MAX_OBJECT_HALF_ANGLE))
            centre = float(ranges[frame, closest]) / (1.0 - sine)
            if not math.isfinite(centre) or centre > walls[frame, middle] + slack:
                continue
            discs.append((frame, int(label), bearing, centre, centre * sine))
    return discs


def _runs(labels: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(start, end, label) of each maximal run of one non-zero label in a 1-D array."""
    start = 0
    for end in range(1, len(labels) + 1):
        if end == len(labels) or labels[end] != labels[start]:
            if labels[start] > 0:
                yield start, end, int(labels[start])
            start = end
