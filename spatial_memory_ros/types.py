"""Neutral types that every part of the package shares: planar poses, egocentric BEV grids, map grids, and
how an object sighting is named.

Nothing here knows a world: object classes are whatever names the world (or the sensor) supplies with each
grid, so the simulator's colours, Memory-Maze's colours or a real robot's detector classes all fit.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

TARGET_SUFFIX = " target"  # an object sighting of class NAME is the memory label "NAME target"


def wrap_angle(angle):
    """An angle (radians; a float or a numpy array) wrapped into [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def target_label(class_name: str) -> str:
    """The memory label of a sighting of ``class_name`` ("red" -> "red target")."""
    return f"{class_name}{TARGET_SUFFIX}"


def is_target_label(label: str) -> bool:
    """Whether a memory label names an object sighting (as opposed to floor, wall or anything else)."""
    return label.endswith(TARGET_SUFFIX) and len(label) > len(TARGET_SUFFIX)


def target_class(label: str) -> str:
    """The class name of a sighting label ("red target" -> "red"); ValueError for a label that is not one."""
    if not is_target_label(label):
        raise ValueError(f"'{label}' is not an object sighting label (it must end with '{TARGET_SUFFIX}')")
    return label[:-len(TARGET_SUFFIX)]


@dataclass
class Pose2D:
    """A planar pose: position in metres and heading in radians (counter-clockwise from the x axis)."""

    x: float
    y: float
    theta: float


@dataclass
class BevGrid:
    """An egocentric bird's-eye-view grid in the robot frame (x forward, y left).

    ``occupancy[iy, ix]`` is -1 unseen, 0 free or 100 wall; ``object_class[iy, ix]`` is 0 for none or k for
    ``class_names[k - 1]``. Cell [iy, ix] covers x in [origin_x + ix * resolution, ...) and
    y in [origin_y + iy * resolution, ...).
    """

    occupancy: np.ndarray
    object_class: np.ndarray
    resolution: float
    origin_x: float
    origin_y: float
    class_names: tuple[str, ...] = ()

    @property
    def height(self) -> int:
        """Number of cells along y."""
        return int(self.occupancy.shape[0])

    @property
    def width(self) -> int:
        """Number of cells along x."""
        return int(self.occupancy.shape[1])

    def cell_centers(self) -> tuple[np.ndarray, np.ndarray]:
        """Robot-frame (x, y) of every cell centre, each shaped like ``occupancy``."""
        iy, ix = np.mgrid[0:self.height, 0:self.width]
        return self.origin_x + (ix + 0.5) * self.resolution, self.origin_y + (iy + 0.5) * self.resolution



@dataclass(frozen=True)
class GridGeometry:
    """A map-frame grid: cell (row r, col c) covers x in [origin_x + c*res, ...), y in [origin_y + r*res, ...)."""

    resolution: float
    width: int
    height: int
    origin_x: float = 0.0
    origin_y: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.resolution) and self.resolution > 0):
            raise ValueError(f"grid resolution must be > 0 metres, got {self.resolution}")
        if self.width < 1 or self.height < 1 or self.width * self.height > 1 << 24:
            raise ValueError(f"grid must have 1..16M cells, got {self.width} x {self.height}")

    @classmethod
    def covering(cls, world_extent, resolution: float = 0.25) -> GridGeometry:
        """The grid from (0, 0) that covers anything with ``width_m`` and ``height_m`` (a maze) exactly."""
        return cls(resolution, int(round(world_extent.width_m / resolution)),
                   int(round(world_extent.height_m / resolution)))

    def cell_indices(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, inside) of map-frame points."""
        cols = np.floor((x - self.origin_x) / self.resolution).astype(np.int64)
        rows = np.floor((y - self.origin_y) / self.resolution).astype(np.int64)
        inside = (cols >= 0) & (cols < self.width) & (rows >= 0) & (rows < self.height)
        return rows, cols, inside

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Map-frame x and y of every cell centre, each (height, width)."""
        xs = self.origin_x + (np.arange(self.width) + 0.5) * self.resolution
        ys = self.origin_y + (np.arange(self.height) + 0.5) * self.resolution
        return np.meshgrid(xs, ys)


@dataclass(frozen=True)
class CameraModel:
    """A pinhole camera on a robot: what sensor_msgs/CameraInfo carries, and where the camera sits.

    Intrinsics in pixels, ROS convention (pixel centres at integer coordinates, so the image centre of a 64-pixel
    side is 31.5): ``fx``, ``fy`` focal lengths, ``cx``, ``cy`` principal point; no distortion. The mount: the
    optical centre ``mount_height`` metres above the floor and ``mount_forward`` metres ahead of the robot's
    centre (the base_link origin, the point whose pose ``true_pose`` gives), looking along the robot's heading,
    pitched ``mount_pitch`` radians down (positive = down).
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    mount_height: float
    mount_forward: float = 0.0
    mount_pitch: float = 0.0

    @classmethod
    def pinhole(cls, width: int, height: int, vertical_fov_deg: float, mount_height: float,
                mount_forward: float = 0.0, mount_pitch: float = 0.0) -> CameraModel:
        """A camera with square pixels whose image spans ``vertical_fov_deg`` from top to bottom."""
        f = 0.5 * height / math.tan(math.radians(vertical_fov_deg) / 2)
        return cls(int(width), int(height), f, f, (width - 1) / 2, (height - 1) / 2, float(mount_height),
                   float(mount_forward), float(mount_pitch))

    @property
    def horizontal_fov_deg(self) -> float:
        """Full horizontal field of view."""
        return math.degrees(2 * math.atan(0.5 * self.width / self.fx))

    @property
    def vertical_fov_deg(self) -> float:
        """Full vertical field of view."""
        return math.degrees(2 * math.atan(0.5 * self.height / self.fy))

    def projection_matrix(self) -> list[float]:
        """K, row-major 3x3 (CameraInfo.k)."""
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    def as_dict(self) -> dict:
        """Plain JSON values."""
        return {key: (float(value) if isinstance(value, float) else value) for key, value in asdict(self).items()}
