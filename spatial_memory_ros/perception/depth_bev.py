"""A depth image -> an egocentric BEV grid, geometrically (numpy only, no ROS).

Every valid pixel is back-projected through the pinhole intrinsics and the camera's pose on the robot into the
robot's floor frame (x forward, y left, z up, z = 0 on the floor). Points below ``floor_height`` are floor,
points from there up to ``max_height`` are obstacles (walls), points above are ignored (a ceiling, a lamp). The
points are then binned by their bearing from the camera: a bearing's first obstacle ends its free space and makes
the cells just behind it wall; a bearing that shows only floor is free up to its farthest floor point. The cells
are judged as perception/scan_bev.py judges a laser scan's (by their centres, so a wall surface lands where the
layout puts it), and floor seen beyond a low obstacle is free too. Everything else is unseen.

Depth images follow REP-118: float32 metres along the optical axis (NaN, +-inf and values <= 0 carry no
information) or uint16 millimetres (0 carries none). The optical frame is REP-103's: x right, y down, z forward.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spatial_memory_ros.perception.scan_bev import DEFAULT_BEV, FREE, UNSEEN, polar_to_bev
from spatial_memory_ros.types import BevGrid, GridGeometry, Pose2D


BINS_PER_COLUMN = 4
"""Bearing bins per pixel column used."""


def mount_transform(height: float, pitch: float = 0.0, forward: float = 0.0, lateral: float = 0.0,
                    yaw: float = 0.0) -> np.ndarray:
    """The 4x4 transform from a camera's optical frame (x right, y down, z forward) to the robot's floor frame
    (x forward, y left, z up, z = 0 on the floor) for a camera ``height`` metres up, ``forward`` / ``lateral``
    metres ahead / left of the robot's centre, turned ``yaw`` radians left and pitched ``pitch`` radians down."""
    cp, sp, cy, sy = math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw)
    transform = np.eye(4)
    transform[:3, 0] = (sy, -cy, 0.0)                    # image right
    transform[:3, 1] = (-sp * cy, -sp * sy, -cp)          # image down
    transform[:3, 2] = (cp * cy, cp * sy, -sp)            # optical axis
    transform[:3, 3] = (forward, lateral, height)
    return transform


@dataclass(frozen=True)
class DepthCamera:
    """A pinhole depth camera on a robot: image size, intrinsics (pixels, ROS convention: CameraInfo's K) and
    ``transform``, the 4x4 from its optical frame to the robot's floor frame (:func:`mount_transform`)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    transform: np.ndarray = field(default_factory=lambda: np.eye(4))

    @classmethod
    def mounted(cls, width: int, height: int, fx: float, fy: float, cx: float, cy: float, mount_height: float,
                mount_pitch: float = 0.0, mount_forward: float = 0.0) -> DepthCamera:
        """A camera at a height, pitched down, ahead of the robot's centre, looking along its heading."""
        return cls(int(width), int(height), float(fx), float(fy), float(cx), float(cy),
                   mount_transform(mount_height, mount_pitch, mount_forward))

    @classmethod
    def from_camera_model(cls, camera) -> DepthCamera:
        """From a simulated world's CameraModel (sim/interface.py)."""
        return cls.mounted(camera.width, camera.height, camera.fx, camera.fy, camera.cx, camera.cy,
                           camera.mount_height, camera.mount_pitch, camera.mount_forward)

    def check(self) -> None:
        """ValueError if the camera cannot be used: a size below 1, focal lengths that are not positive and
        finite, a non-finite principal point, or a transform that is not a finite rigid 4x4."""
        if self.width < 1 or self.height < 1:
            raise ValueError(f"camera size {self.width}x{self.height} is empty")
        if not all(math.isfinite(v) and v > 0 for v in (self.fx, self.fy)):
            raise ValueError(f"focal lengths fx={self.fx}, fy={self.fy} must be positive and finite")
        if not all(math.isfinite(v) for v in (self.cx, self.cy)):
            raise ValueError(f"principal point ({self.cx}, {self.cy}) must be finite")
        transform = np.asarray(self.transform, dtype=np.float64)
        if transform.shape != (4, 4) or not np.isfinite(transform).all():
            raise ValueError("the camera's transform must be a finite 4x4 matrix")
        rotation = transform[:3, :3]
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4) or np.linalg.det(rotation) < 0:
            raise ValueError("the camera's transform must be rigid (a rotation and a translation)")


@dataclass
class DepthReport:
    """How the pixels of one depth image were used."""

    pixels: int = 0
    invalid: int = 0      # NaN, inf, <= 0 (0 mm)
    floor: int = 0
    obstacle: int = 0
    above: int = 0        # above max_height: ignored


def depth_in_metres(depth: np.ndarray) -> np.ndarray:
    """float64 metres from float32/float64 metres or uint16 millimetres (0 -> NaN); ValueError for any other
    dtype or a depth that is not 2-D."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"a depth image is 2-D, got shape {depth.shape}")
    if depth.dtype == np.uint16:
        metres = depth.astype(np.float64) * 1e-3
        metres[depth == 0] = np.nan
        return metres
    if depth.dtype in (np.float32, np.float64):
        return depth.astype(np.float64)
    raise ValueError(f"depth must be float32 metres or uint16 millimetres, got {depth.dtype}")


def depth_to_bev(depth: np.ndarray, camera: DepthCamera, geometry: GridGeometry = DEFAULT_BEV,
                 floor_height: float = 0.1, max_height: float = 2.0, max_range: float = 8.0, stride: int = 1,
                 wall_depth: float | None = None) -> tuple[BevGrid, DepthReport]:
    """The BEV a depth image shows, and how its pixels were used.

    ``floor_height``: points lower than this (metres above the floor) are floor; ``max_height``: points higher
    are ignored; ``max_range``: cells farther from the camera stay unseen; ``stride``: use every stride-th pixel
    along both axes (large images); ``wall_depth`` as in scan_bev.scan_to_bev. ValueError for an unusable camera,
    a depth of another size or dtype, or heights with floor_height >= max_height.
    """
    camera.check()
    if not floor_height < max_height:
        raise ValueError(f"floor_height {floor_height} must be below max_height {max_height}")
    metres = depth_in_metres(depth)
    if metres.shape != (camera.height, camera.width):
        raise ValueError(f"depth is {metres.shape[1]}x{metres.shape[0]}, the camera is {camera.width}x{camera.height}")
    stride = max(1, int(stride))
    v, u = np.mgrid[0:camera.height:stride, 0:camera.width:stride]
    z = metres[v, u].reshape(-1)
    rays = np.stack([(u.reshape(-1) - camera.cx) / camera.fx, (v.reshape(-1) - camera.cy) / camera.fy,
                     np.ones(z.size)])
    transform = np.asarray(camera.transform, dtype=np.float64)
    directions = transform[:3, :3] @ rays                       # robot-frame direction per unit of depth
    origin = transform[:3, 3]
    bearing = np.arctan2(directions[1], directions[0])
    valid = np.isfinite(z) & (z > 0)
    points = origin[:, None] + directions * np.where(valid, z, 0.0)
    reach = np.hypot(points[0] - origin[0], points[1] - origin[1])
    floor = valid & (points[2] < floor_height)
    obstacle = valid & (points[2] >= floor_height) & (points[2] <= max_height)
    report = DepthReport(pixels=int(z.size), invalid=int((~valid).sum()), floor=int(floor.sum()),
                         obstacle=int(obstacle.sum()), above=int((valid & (points[2] > max_height)).sum()))

    # bins of bearing: as many as the image has (used) columns, across the bearings its pixels look along
    looking = np.hypot(directions[0], directions[1]) > 1e-9     # a pixel looking straight down has no bearing
    if not looking.any():
        shape = (geometry.height, geometry.width)
        return BevGrid(np.full(shape, UNSEEN, np.int8), np.zeros(shape, np.uint8), geometry.resolution,
                       geometry.origin_x, geometry.origin_y, ()), report
    low, high = float(bearing[looking].min()), float(bearing[looking].max())
    # fine bins (pixel bearings are not evenly spaced), each empty one filled from its nearest bin with points
    bins = max(2, BINS_PER_COLUMN * u.shape[1])
    step = max((high - low) / (bins - 1), 1e-6)
    index = np.clip(np.round((bearing - low) / step).astype(np.int64), 0, bins - 1)
    wall_range = np.full(bins, np.inf)
    np.minimum.at(wall_range, index[obstacle], reach[obstacle])
    floor_range = np.full(bins, -np.inf)
    np.maximum.at(floor_range, index[floor], reach[floor])
    seen = np.zeros(bins, dtype=bool)
    seen[index[floor | obstacle]] = True
    if seen.any():
        nearest = _nearest_seen(seen)
        wall_range, floor_range = wall_range[nearest], floor_range[nearest]
    has_wall = np.isfinite(wall_range)
    free_range = np.where(has_wall, wall_range, np.where(np.isfinite(floor_range), floor_range, np.nan))
    sensor = Pose2D(float(origin[0]), float(origin[1]), 0.0)
    bev = polar_to_bev(geometry, sensor, low, step, free_range, np.where(has_wall, wall_range, np.nan), max_range,
                       wall_depth, wrap=False)
    _mark_floor(bev, points[:, floor], sensor, max_range)
    return bev, report


def _nearest_seen(seen: np.ndarray) -> np.ndarray:
    """For every bin, the index of the nearest bin with ``seen`` set (ties: the lower one); empty bins farther
    than one pixel column's worth of bins from any seen bin stay themselves."""
    where = np.flatnonzero(seen)
    position = np.arange(seen.size)
    right = np.clip(np.searchsorted(where, position), 0, where.size - 1)
    left = np.clip(right - 1, 0, where.size - 1)
    pick = np.where(np.abs(where[left] - position) <= np.abs(where[right] - position), where[left], where[right])
    return np.where(np.abs(pick - position) <= BINS_PER_COLUMN, pick, position)


def _mark_floor(bev: BevGrid, points: np.ndarray, sensor: Pose2D, max_range: float) -> None:
    """Unseen cells that hold floor points (floor seen beyond a low obstacle) become free."""
    ix = np.floor((points[0] - bev.origin_x) / bev.resolution).astype(np.int64)
    iy = np.floor((points[1] - bev.origin_y) / bev.resolution).astype(np.int64)
    inside = ((ix >= 0) & (ix < bev.width) & (iy >= 0) & (iy < bev.height)
              & (np.hypot(points[0] - sensor.x, points[1] - sensor.y) <= max_range))
    cells = bev.occupancy[iy[inside], ix[inside]]
    bev.occupancy[iy[inside][cells == UNSEEN], ix[inside][cells == UNSEEN]] = FREE


def field_of_view(camera: DepthCamera, geometry: GridGeometry = DEFAULT_BEV, max_range: float = 8.0) -> np.ndarray:
    """(height, width) bool: the cells whose centres lie within the camera's horizontal field of view (the
    bearings its pixels look along) and ``max_range``."""
    from spatial_memory_ros.perception.scan_bev import field_of_view as polar_field

    transform = np.asarray(camera.transform, dtype=np.float64)
    u = np.array([0.0, camera.width - 1.0, 0.0, camera.width - 1.0])
    v = np.array([0.0, 0.0, camera.height - 1.0, camera.height - 1.0])
    directions = transform[:3, :3] @ np.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy,
                                               np.ones(4)])
    bearing = np.arctan2(directions[1], directions[0])
    sensor = Pose2D(float(transform[0, 3]), float(transform[1, 3]), 0.0)
    return polar_field(geometry, sensor, float(bearing.min()), float(bearing.max()), max_range)
