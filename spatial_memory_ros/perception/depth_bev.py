"""A depth image -> an egocentric BEV grid, geometrically (numpy only, no ROS).

Every valid pixel is back-projected through the pinhole intrinsics and the camera's pose on the robot into the
robot's floor frame (x forward, y left, z up, z = 0 on the floor). Points below ``floor_height`` are floor,
points from there up to ``max_height`` are obstacles (walls), points above are ignored (a ceiling, a lamp).
Each image column then becomes one ray of a virtual laser scan from the camera's foot: its nearest obstacle point
(free space up to it, wall just behind), or, with none, its farthest floor point (free up to it), each ray along
the bearing of the very point that defines it (a pitched camera's columns fan out in bearing: binning columns by
one bearing misplaced walls by a cell at the image's sides). The cells are judged as perception/scan_bev.py judges
a laser scan's (by their centres, so a wall surface lands where the layout puts it), and the cells that any
pixel's ray passes close to on its way to its point are free too (unless the rays' ends make them wall).
Everything else is unseen.

Depth images follow REP-118: float32 metres along the optical axis (NaN, +-inf and values <= 0 carry no
information) or uint16 millimetres (0 carries none). The optical frame is REP-103's: x right, y down, z forward.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spatial_memory_ros.perception.scan_bev import DEFAULT_BEV, UNSEEN, bearings_to_bev
from spatial_memory_ros.types import BevGrid, GridGeometry, Pose2D


CARVE_RADIUS = 0.3
"""A pixel's ray frees a cell when it passes this close to the cell's centre (cells)."""
CARVE_ROW_STRIDE = 4
"""Rays of every n-th (used) image row carve free space (nearby rows' rays nearly coincide; 3x faster than all,
the same IoU in the benchmark)."""
MAX_CARVING_RAYS = 4096
"""At most this many pixels' rays carve free space (evenly spread over the image): a VGA image costs what a
64x64 one does."""


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

    # one ray per image column, a virtual scan: along the bearing of the column's nearest obstacle point to it,
    # else along the bearing of its farthest floor point to there (a pitched camera's columns fan out in bearing,
    # so each ray takes the bearing of the very point that defines it)
    looking = np.hypot(directions[0], directions[1]) > 1e-9     # a pixel looking straight down has no bearing
    used = (floor | obstacle) & looking
    if not used.any():
        shape = (geometry.height, geometry.width)
        return BevGrid(np.full(shape, UNSEEN, np.int8), np.zeros(shape, np.uint8), geometry.resolution,
                       geometry.origin_x, geometry.origin_y, ()), report
    column = np.broadcast_to(np.arange(u.shape[1]), u.shape).reshape(-1)
    nearest_wall = _first_per_column(column, obstacle & looking, reach)
    farthest_floor = _first_per_column(column, floor & looking, -reach)
    has_wall = nearest_wall >= 0
    chosen = np.where(has_wall, nearest_wall, farthest_floor)
    kept = chosen >= 0
    pick = chosen[kept]
    rays = np.where(has_wall[kept], reach[pick], np.nan)
    free_range = reach[pick]
    sensor = Pose2D(float(origin[0]), float(origin[1]), 0.0)
    rows = (np.arange(z.size) // u.shape[1]) % CARVE_ROW_STRIDE == 0    # nearby rows' rays nearly coincide
    carving = np.flatnonzero(used & rows)
    carving = carving[::max(1, math.ceil(carving.size / MAX_CARVING_RAYS))]   # bounded work for large images
    carved = _carved(geometry, sensor, points[:2, carving], reach[carving], max_range)
    spread = float(np.ptp(bearing[used])) / max(u.shape[1] - 1, 1)
    bev = bearings_to_bev(geometry, sensor, bearing[pick], free_range, rays, max_range, wall_depth,
                          max_spacing=3.0 * max(spread, 1e-6), also_free=carved)
    return bev, report


def _first_per_column(column: np.ndarray, selected: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Per image column, the index of its selected point with the smallest ``key`` (-1 where none)."""
    candidates = np.flatnonzero(selected)
    result = np.full(int(column.max()) + 1, -1, dtype=np.int64)
    if candidates.size:
        order = candidates[np.lexsort((key[candidates], column[candidates]))]
        first = np.ones(order.size, dtype=bool)
        first[1:] = column[order[1:]] != column[order[:-1]]
        result[column[order[first]]] = order[first]
    return result


def _carved(bev: GridGeometry, sensor: Pose2D, points: np.ndarray, reach: np.ndarray, max_range: float) -> np.ndarray:
    """The cells under the rays of floor and obstacle points, up to the points: each pixel saw through them (a
    pitched camera's columns fan out in bearing, so the bins alone miss some of this)."""
    limit = np.minimum(reach - 0.5 * bev.resolution, max_range)   # short of the point: its cell is the bins' call
    steps = np.arange(0.0, 1.0, 0.2 * bev.resolution / max(float(limit.max(initial=0.0)), 1e-9))
    fraction = steps[None, :] * (limit / np.maximum(reach, 1e-9))[:, None]   # along each point's ray, to the limit
    x = sensor.x + fraction * (points[0] - sensor.x)[:, None]
    y = sensor.y + fraction * (points[1] - sensor.y)[:, None]
    inside_ray = fraction * reach[:, None] < limit[:, None] - 1e-6
    ix = np.floor((x[inside_ray] - bev.origin_x) / bev.resolution).astype(np.int64)
    iy = np.floor((y[inside_ray] - bev.origin_y) / bev.resolution).astype(np.int64)
    # a cell is carved only by a ray passing near its centre (as the bins judge cells by their centres)
    off_x = x[inside_ray] - (bev.origin_x + (ix + 0.5) * bev.resolution)
    off_y = y[inside_ray] - (bev.origin_y + (iy + 0.5) * bev.resolution)
    inside = ((ix >= 0) & (ix < bev.width) & (iy >= 0) & (iy < bev.height)
              & (np.hypot(off_x, off_y) <= CARVE_RADIUS * bev.resolution))
    cells = np.zeros((bev.height, bev.width), dtype=bool)
    cells[iy[inside], ix[inside]] = True
    return cells


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
