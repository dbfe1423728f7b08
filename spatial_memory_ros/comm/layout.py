"""What every teammate must agree on to read a payload: :class:`CommLayout`, the comm grid and its tables (no ROS).

Why this is its own module: the layout is shared configuration, not coding. The codec (:mod:`.codec`), the
partner model's pose prediction (:mod:`.partners`) and the policy all read it, and it is built once per team from
the robots' map geometry and the object classes of the world they explore. The class list is part of the wire
format (a sighting's class is a uniform symbol over it), so it is the caller's to supply from its world, never a
default of the simulator's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from spatial_memory_ros.localization.grid_code import GridCode
from spatial_memory_ros.types import GridGeometry


@dataclass(frozen=True)
class CommLayout:
    """What every teammate must agree on to read a payload: the comm grid, blocks, pose and sighting resolution.

    ``geometry`` is the comm grid (map frame, usually 2x coarser than the robots' maps); ``class_names`` the object
    classes of the world the team explores (lower case; a sighting labelled "NAME target" is sent as NAME's index,
    so every teammate must list the same classes in the same order); ``block_size`` comm cells a block side;
    sightings are placed on a grid ``sighting_subdivision`` times finer; ``grid_modules`` the largest number of
    grid-code modules, ``phase_bits`` the allowed bits per phase.
    """

    geometry: GridGeometry
    class_names: tuple[str, ...]
    block_size: int = 4
    sighting_subdivision: int = 4
    grid_modules: int = 5
    phase_bits: tuple[int, ...] = (2, 3, 4)
    pose_quantum: float = 0.125
    heading_levels: int = 16
    speed_levels: tuple[float, ...] = (0.0, 0.27, 0.53, 0.8)

    def __post_init__(self) -> None:
        if not 1 <= self.block_size <= 16:
            raise ValueError(f"block_size must be 1..16 comm cells, got {self.block_size}")
        if not 1 <= self.sighting_subdivision <= 16:
            raise ValueError(f"sighting_subdivision must be 1..16, got {self.sighting_subdivision}")
        if isinstance(self.class_names, str):
            raise ValueError(f"class_names is a list of names, not one string: got {self.class_names!r}")
        object.__setattr__(self, "class_names", tuple(self.class_names))  # hashable: the layout keys lru_caches
        if not 1 <= len(self.class_names) <= 256:
            raise ValueError("class_names must name 1..256 classes")
        if len(set(self.class_names)) != len(self.class_names) or not all(
                isinstance(name, str) and name and name == name.strip().lower() for name in self.class_names):
            raise ValueError(f"class_names must be distinct, non-empty and lower case (sighting labels are matched "
                             f"lower-cased), got {list(self.class_names)}")
        if not 3 <= self.grid_modules <= 8 or not self.phase_bits or not all(1 <= b <= 8 for b in self.phase_bits):
            raise ValueError("grid_modules must be 3..8 and phase_bits a non-empty tuple of 1..8")
        if not (math.isfinite(self.pose_quantum) and self.pose_quantum > 0):
            raise ValueError(f"pose_quantum must be > 0 metres, got {self.pose_quantum}")
        if not 2 <= self.heading_levels <= 256 or not 1 <= len(self.speed_levels) <= 16:
            raise ValueError("heading_levels must be 2..256 and speed_levels hold 1..16 speeds")

    @classmethod
    def for_map(cls, map_geometry: GridGeometry, class_names: Sequence[str], comm_resolution: float = 0.5,
                **kwargs) -> CommLayout:
        """The comm grid over a robot map: ``comm_resolution`` must be a whole multiple of the map's resolution."""
        return cls(geometry=coarse_geometry(map_geometry, comm_resolution), class_names=class_names, **kwargs)

    @property
    def num_cells(self) -> int:
        """Cells of the comm grid."""
        return self.geometry.width * self.geometry.height

    @property
    def blocks_across(self) -> tuple[int, int]:
        """(block rows, block cols)."""
        size = self.block_size
        return -(-self.geometry.height // size), -(-self.geometry.width // size)

    @property
    def num_blocks(self) -> int:
        """Blocks covering the comm grid."""
        rows, cols = self.blocks_across
        return rows * cols

    @property
    def num_sighting_cells(self) -> int:
        """Cells of the sighting grid."""
        return self.num_cells * self.sighting_subdivision ** 2

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the comm grid, metres."""
        g = self.geometry
        return g.origin_x, g.origin_y, g.origin_x + g.width * g.resolution, g.origin_y + g.height * g.resolution

    def block_shape(self, block: int) -> tuple[int, int]:
        """(rows, cols) of a block inside the grid (edge blocks are cut)."""
        block_row, block_col = divmod(block, self.blocks_across[1])
        size, g = self.block_size, self.geometry
        return min(size, g.height - block_row * size), min(size, g.width - block_col * size)

    def block_cells(self, block: int) -> np.ndarray:
        """Flat comm-cell indices of a block, row-major."""
        return _block_cell_table(self)[block]

    def grid_code(self, modules: int) -> GridCode:
        """The grid code of the first ``modules`` modules (origin at the grid's corner)."""
        return _grid_code(modules, self.geometry.origin_x, self.geometry.origin_y)

    def sighting_cell(self, x: float, y: float) -> int:
        """Index of the sighting-grid cell holding (x, y) (clamped to the grid)."""
        g, k = self.geometry, self.sighting_subdivision
        res = g.resolution / k
        col = min(max(math.floor((x - g.origin_x) / res), 0), g.width * k - 1)
        row = min(max(math.floor((y - g.origin_y) / res), 0), g.height * k - 1)
        return row * g.width * k + col

    def sighting_centre(self, cell: int) -> tuple[float, float]:
        """Map-frame centre of a sighting-grid cell."""
        g, k = self.geometry, self.sighting_subdivision
        res = g.resolution / k
        row, col = divmod(int(cell), g.width * k)
        return g.origin_x + (col + 0.5) * res, g.origin_y + (row + 0.5) * res

    def heading_index(self, theta: float) -> int:
        """Nearest heading sector of an angle."""
        return int(round(theta / (2 * math.pi) * self.heading_levels)) % self.heading_levels

    def heading(self, index: int) -> float:
        """Angle of a heading sector, radians in [0, 2 pi)."""
        return 2 * math.pi * index / self.heading_levels

    def speed_index(self, speed: float) -> int:
        """Nearest speed level."""
        return int(np.argmin(np.abs(np.asarray(self.speed_levels) - speed)))


@lru_cache(maxsize=16)
def _grid_code(modules: int, origin_x: float, origin_y: float) -> GridCode:
    return GridCode(num_modules=modules, origin=(origin_x, origin_y))


@lru_cache(maxsize=16)
def _block_cell_table(layout: CommLayout) -> tuple[np.ndarray, ...]:
    size, width = layout.block_size, layout.geometry.width
    block_cols = layout.blocks_across[1]
    table = []
    for block in range(layout.num_blocks):
        block_row, block_col = divmod(block, block_cols)
        rows, cols = layout.block_shape(block)
        r = np.arange(rows)[:, None] + block_row * size
        c = np.arange(cols)[None, :] + block_col * size
        table.append((r * width + c).reshape(-1))
    return tuple(table)


def coarse_geometry(map_geometry: GridGeometry, resolution: float) -> GridGeometry:
    """A grid with the map's origin and a resolution that is a whole multiple of the map's."""
    factor = resolution / map_geometry.resolution
    if not (math.isfinite(factor) and factor >= 1 and abs(factor - round(factor)) < 1e-6):
        raise ValueError(f"comm resolution {resolution} m must be a whole multiple of the map's "
                         f"{map_geometry.resolution} m; pick e.g. {2 * map_geometry.resolution}")
    factor = int(round(factor))
    return GridGeometry(resolution, -(-map_geometry.width // factor), -(-map_geometry.height // factor),
                        map_geometry.origin_x, map_geometry.origin_y)
