"""A simulated team of camera robots in Memory-Maze-style mazes (numpy only, no ROS).

The maze is a grid of square cells (walls and free space) with rooms joined by corridors and coloured target
objects. Each robot is a differential-drive disc with a forward camera rendered by ray casting (one ray per image
column; a wall's top and bottom edge pixels are blended by how much of them the wall covers), noisy wheel
odometry, and an oracle bird's-eye view (BEV): the true geometry around it masked to what the camera sees.

Frames: the map frame has x along the grid's columns and y along its rows, in metres; cell (r, c) spans
x in [c * cell_size, (c + 1) * cell_size) and y in [r * cell_size, (r + 1) * cell_size). The robot frame has
x forward and y to the left; headings are counter-clockwise from the map's x axis.

Everything random takes a seed: the same seeds give byte-identical mazes, poses and images.
"""
from __future__ import annotations

import colorsys
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from spatial_memory_ros.types import BevGrid, Pose2D

CLASS_NAMES: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan")
CLASS_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 200, 50),
    "blue": (40, 70, 235),
    "yellow": (235, 215, 30),
    "magenta": (215, 40, 215),
    "cyan": (30, 215, 215),
}
MIN_MAZE_SIZE = 9
MAX_MAZE_SIZE = 15

WALL_HEIGHT_CELLS = 1.0
CAMERA_HEIGHT_CELLS = 0.5
TARGET_RADIUS_CELLS = 0.2
TARGET_HEIGHT_CELLS = 0.45
TEAMMATE_HEIGHT_CELLS = 0.35
TEAMMATE_RGB = (70, 70, 75)

_FACE_WEST, _FACE_EAST, _FACE_SOUTH, _FACE_NORTH = 0, 1, 2, 3
_TEXTURE_ROWS = 32
_TEXTURE_COLS = 16
_FLOOR_PIXELS_PER_CELL = 8
_BISECTION_STEPS = 12


# ----------------------------------------------------------------------------------------------- maze


@dataclass(frozen=True)
class Target:
    """A coloured target object standing on the floor at (x, y) in the map frame (metres)."""

    color: str
    rgb: tuple[int, int, int]
    x: float
    y: float


@dataclass
class Maze:
    """A grid maze: walls, rooms and target objects.

    ``walls[r, c]`` is True for a wall; cell (r, c) spans x in [c, c + 1) and y in [r, r + 1) times
    ``cell_size`` metres. ``room_ids[r, c]`` is the room a free cell belongs to (corridors join their nearest
    room), -1 for walls; it picks wall and floor colours.
    """

    walls: np.ndarray
    cell_size: float = 1.0
    targets: list[Target] = field(default_factory=list)
    seed: int = 0
    room_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.walls = np.asarray(self.walls, dtype=bool)
        if self.walls.ndim != 2 or min(self.walls.shape) < 3:
            raise ValueError(f"maze walls must be a 2-D grid of at least 3x3 cells, got shape {self.walls.shape}")
        if not (math.isfinite(self.cell_size) and self.cell_size > 0):
            raise ValueError(f"cell_size must be a positive number of metres, got {self.cell_size}")
        if self.room_ids is None:
            self.room_ids = np.where(self.walls, -1, 0)

    @property
    def rows(self) -> int:
        """Number of grid rows (along y)."""
        return int(self.walls.shape[0])

    @property
    def cols(self) -> int:
        """Number of grid columns (along x)."""
        return int(self.walls.shape[1])

    @property
    def width_m(self) -> float:
        """Extent along x in metres."""
        return self.cols * self.cell_size

    @property
    def height_m(self) -> float:
        """Extent along y in metres."""
        return self.rows * self.cell_size

    def cell_of(self, x: float, y: float) -> tuple[int, int]:
        """The (row, col) of the cell containing map point (x, y); may lie outside the grid."""
        return math.floor(y / self.cell_size), math.floor(x / self.cell_size)

    def cell_center(self, row: int, col: int) -> tuple[float, float]:
        """The map-frame (x, y) of a cell's centre."""
        return (col + 0.5) * self.cell_size, (row + 0.5) * self.cell_size

    def is_wall(self, x: float, y: float) -> bool:
        """Whether map point (x, y) lies in a wall cell; everything outside the grid counts as wall."""
        row, col = self.cell_of(x, y)
        return not (0 <= row < self.rows and 0 <= col < self.cols) or bool(self.walls[row, col])

    def free_cells(self) -> np.ndarray:
        """All free cells as an (n, 2) int array of (row, col), in row-major order."""
        return np.argwhere(~self.walls)

    def disc_collides(self, x: float, y: float, radius: float) -> bool:
        """Whether a disc of the given radius centred at (x, y) overlaps any wall cell (touching is allowed)."""
        size = self.cell_size
        for row in range(math.floor((y - radius) / size), math.floor((y + radius) / size) + 1):
            for col in range(math.floor((x - radius) / size), math.floor((x + radius) / size) + 1):
                inside = 0 <= row < self.rows and 0 <= col < self.cols
                if inside and not self.walls[row, col]:
                    continue
                nearest_x = min(max(x, col * size), (col + 1) * size)
                nearest_y = min(max(y, row * size), (row + 1) * size)
                if (x - nearest_x) ** 2 + (y - nearest_y) ** 2 < radius * radius:
                    return True
        return False

    @classmethod
    def from_strings(cls, layout: Sequence[str], cell_size: float = 1.0, seed: int = 0) -> Maze:
        """A maze drawn as text, first string = row 0: '#' wall, '.' free, a target's initial (r, g, b, y, m, c).

        Every free cell belongs to room 0. Handy for tests and hand-made scenes.
        """
        if len({len(line) for line in layout}) != 1:
            raise ValueError("every row of a maze layout must have the same length")
        initials = {name[0]: name for name in CLASS_NAMES}
        walls = np.array([[char == "#" for char in line] for line in layout], dtype=bool)
        targets = []
        for row, line in enumerate(layout):
            for col, char in enumerate(line):
                if char in initials:
                    x, y = (col + 0.5) * cell_size, (row + 0.5) * cell_size
                    targets.append(Target(initials[char], CLASS_RGB[initials[char]], x, y))
                elif char not in "#.":
                    raise ValueError(f"unknown maze layout character {char!r} at row {row}, column {col}")
        return cls(walls=walls, cell_size=cell_size, targets=targets, seed=seed)


def default_num_targets(size: int) -> int:
    """Memory-Maze's object count: 3, 4, 5, 6 for sizes 9, 11, 13, 15 (even sizes round down)."""
    return (size - 3) // 2


def generate_maze(size: int = 15, seed: int = 0, num_targets: int | None = None, cell_size: float = 1.0) -> Maze:
    """A Memory-Maze-style maze: rooms joined by maze corridors, fixed by the seed.

    ``size`` counts cells along each side including the outer wall and must lie in 9..15. All free cells are
    connected. ``num_targets`` (default: 3/4/5/6 for sizes 9/11/13/15) targets of distinct colours stand at the
    centres of distinct free cells.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_MAZE_SIZE <= size <= MAX_MAZE_SIZE:
        raise ValueError(f"maze size must be an integer in {MIN_MAZE_SIZE}..{MAX_MAZE_SIZE}, got {size!r}")
    size = int(size)
    count = default_num_targets(size) if num_targets is None else int(num_targets)
    if not 0 <= count <= len(CLASS_NAMES):
        raise ValueError(f"num_targets must be in 0..{len(CLASS_NAMES)} (one per colour), got {num_targets}")
    rng = np.random.default_rng([seed, size, 0x3A2E])
    odd_size = size - 1 + size % 2
    nodes = (odd_size - 1) // 2
    wanted_rooms = max(2, size // 3)
    rooms = max((_place_rooms(rng, nodes, wanted_rooms) for _ in range(8)), key=len)
    walls = _carve(rng, odd_size, nodes, rooms)
    room_ids = _nearest_room_labels(walls, rooms)
    if size != odd_size:
        walls, room_ids = _stretch(rng, walls, room_ids)
    targets = _place_targets(rng, walls, count, cell_size)
    return Maze(walls=walls, cell_size=float(cell_size), targets=targets, seed=int(seed), room_ids=room_ids)


Room = tuple[int, int, int, int]  # first node row, first node col, node rows, node cols


def _place_rooms(rng: np.random.Generator, nodes: int, wanted: int) -> list[Room]:
    """Non-overlapping rectangles of 2..3 x 2..3 maze nodes (3..5 cells a side; 3 cells in small mazes)."""
    taken = np.zeros((nodes, nodes), dtype=bool)
    largest = 3 if nodes >= 6 else 2
    rooms: list[Room] = []
    for _ in range(200):
        if len(rooms) == wanted:
            break
        height, width = (int(v) for v in rng.integers(2, largest + 1, size=2))
        top, left = int(rng.integers(0, nodes - height + 1)), int(rng.integers(0, nodes - width + 1))
        if not taken[top:top + height, left:left + width].any():
            taken[top:top + height, left:left + width] = True
            rooms.append((top, left, height, width))
    return rooms


def _carve(rng: np.random.Generator, size: int, nodes: int, rooms: list[Room]) -> np.ndarray:
    """Carve rooms, then corridors along a random spanning tree of the node lattice plus a few loops.

    Nodes sit at the odd rows and columns of an odd-sized grid; a corridor joins two nodes through the cell
    between them.
    """
    walls = np.ones((size, size), dtype=bool)
    parent = list(range(nodes * nodes))

    def find(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for top, left, height, width in rooms:
        walls[2 * top + 1:2 * (top + height), 2 * left + 1:2 * (left + width)] = False
        anchor = top * nodes + left
        for r in range(top, top + height):
            for c in range(left, left + width):
                parent[find(r * nodes + c)] = find(anchor)
    walls[1:2 * nodes:2, 1:2 * nodes:2] = False
    edges = [(r, c, r + dr, c + dc) for r in range(nodes) for c in range(nodes)
             for dr, dc in ((0, 1), (1, 0)) if r + dr < nodes and c + dc < nodes]
    for index in rng.permutation(len(edges)):
        r0, c0, r1, c1 = edges[index]
        a, b = find(r0 * nodes + c0), find(r1 * nodes + c1)
        if a != b or rng.random() < 0.08:
            parent[a] = b
            walls[r0 + r1 + 1, c0 + c1 + 1] = False
    return walls


def _stretch(rng: np.random.Generator, walls: np.ndarray, room_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grow an odd-sized maze by one to an even size: double one random interior row and one interior column.

    Doubling a row or column keeps every free cell connected and widens the rooms and corridors it crosses.
    """
    for axis in (0, 1):
        repeats = np.ones(walls.shape[axis], dtype=np.int64)
        repeats[int(rng.integers(1, walls.shape[axis] - 1))] = 2
        walls, room_ids = np.repeat(walls, repeats, axis=axis), np.repeat(room_ids, repeats, axis=axis)
    return walls, room_ids


def _nearest_room_labels(walls: np.ndarray, rooms: list[Room]) -> np.ndarray:
    """Label every free cell with the room nearest to it along free space (-1 for walls)."""
    labels = np.full(walls.shape, -1, dtype=np.int32)
    queue: deque[tuple[int, int]] = deque()
    for room_id, (top, left, height, width) in enumerate(rooms):
        for r in range(2 * top + 1, 2 * (top + height)):
            for c in range(2 * left + 1, 2 * (left + width)):
                labels[r, c] = room_id
                queue.append((r, c))
    if not queue:
        first = tuple(int(v) for v in np.argwhere(~walls)[0])
        labels[first] = 0
        queue.append(first)
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if not walls[nr, nc] and labels[nr, nc] < 0:
                labels[nr, nc] = labels[r, c]
                queue.append((nr, nc))
    return labels


def _place_targets(rng: np.random.Generator, walls: np.ndarray, count: int, cell_size: float) -> list[Target]:
    free = np.argwhere(~walls)
    chosen = free[rng.choice(len(free), size=count, replace=False)]
    colours = CLASS_NAMES[:count]
    return [Target(name, CLASS_RGB[name], (col + 0.5) * cell_size, (row + 0.5) * cell_size)
            for name, (row, col) in zip(colours, chosen)]


def connected_free_cells(maze: Maze, start: tuple[int, int] | None = None) -> np.ndarray:
    """A (rows, cols) bool mask of the free cells reachable from ``start`` (default: the first free cell)."""
    free = ~maze.walls
    reached = np.zeros_like(free)
    if not free.any():
        return reached
    start = tuple(int(v) for v in np.argwhere(free)[0]) if start is None else start
    reached[start] = True
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if 0 <= nr < maze.rows and 0 <= nc < maze.cols and free[nr, nc] and not reached[nr, nc]:
                reached[nr, nc] = True
                queue.append((nr, nc))
    return reached


def room_color(room_id: int, saturation: float = 0.45, value: float = 0.78) -> tuple[float, float, float]:
    """The RGB (0..255 floats) that walls and floors of a room are tinted with; hues spread by the golden ratio."""
    hue = (0.07 + 0.618034 * room_id) % 1.0
    return tuple(255.0 * channel for channel in colorsys.hsv_to_rgb(hue, saturation, value))


def top_down_image(maze: Maze, pixels_per_cell: int = 16) -> np.ndarray:
    """A map-view RGB picture of the maze (row 0 at the top): walls dark, floors tinted by room, targets as dots."""
    tint = np.array([room_color(k, 0.25, 0.95) for k in range(int(maze.room_ids.max()) + 1)] or [(230, 230, 230)])
    cells = np.where(maze.walls[..., None], 40.0, tint[np.maximum(maze.room_ids, 0)])
    image = np.repeat(np.repeat(cells, pixels_per_cell, axis=0), pixels_per_cell, axis=1).astype(np.uint8)
    scale = pixels_per_cell / maze.cell_size
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]] + 0.5
    for target in maze.targets:
        dot = (xx - target.x * scale) ** 2 + (yy - target.y * scale) ** 2 < (0.3 * pixels_per_cell) ** 2
        image[dot] = target.rgb
    return image


# ------------------------------------------------------------------------------------- robots, sensors


@dataclass
class WorldConfig:
    """Simulation, robot, sensor and BEV settings (SI units)."""

    dt: float = 0.1
    robot_radius: float = 0.2
    max_linear_speed: float = 1.0
    max_angular_speed: float = 2.0
    odom_linear_noise: float = 0.05
    odom_angular_noise_deg: float = 2.0
    image_size: int = 64
    fov_deg: float = 90.0
    view_range: float = 8.0
    bev_resolution: float = 0.25
    bev_width: int = 32
    bev_height: int = 32
    bev_rays: int = 181
    render_teammates: bool = True

    def __post_init__(self) -> None:
        positive = ("dt", "robot_radius", "max_linear_speed", "max_angular_speed", "view_range", "bev_resolution")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"WorldConfig.{name} must be a positive finite number, got {value}")
        for name in ("odom_linear_noise", "odom_angular_noise_deg"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"WorldConfig.{name} must be a non-negative finite number, got {value}")
        if not 0 < self.fov_deg < 180:
            raise ValueError(f"WorldConfig.fov_deg must be in (0, 180), got {self.fov_deg}")
        for name, low in (("image_size", 8), ("bev_width", 1), ("bev_height", 1), ("bev_rays", 2)):
            if int(getattr(self, name)) < low:
                raise ValueError(f"WorldConfig.{name} must be at least {low}, got {getattr(self, name)}")

    @property
    def bev_origin(self) -> tuple[float, float]:
        """Robot-frame corner of BEV cell (0, 0): the grid starts at the robot and is centred sideways."""
        return 0.0, -0.5 * self.bev_height * self.bev_resolution


@dataclass
class _RayHits:
    """Where rays first hit a wall: distance along the ray (metres), texture face index and coordinate."""

    distance: np.ndarray
    face: np.ndarray
    u: np.ndarray
    side: np.ndarray


class _RayCaster:
    """Vectorised grid traversal: all crossings of every ray with the grid lines at once, first wall wins."""

    def __init__(self, maze: Maze) -> None:
        self.cell_size = maze.cell_size
        self.rows, self.cols = maze.walls.shape
        self.steps = np.arange(max(self.rows, self.cols) + 1)
        self.pad = len(self.steps) + 2
        padded = np.pad(maze.walls, self.pad, constant_values=True)
        self.walls_flat = padded.reshape(-1)
        self.walls_t_flat = padded.T.copy().reshape(-1)

    def cast(self, x: float, y: float, angles: np.ndarray) -> _RayHits:
        """Cast rays from map point (x, y) (metres) at absolute angles (radians)."""
        px, py = x / self.cell_size, y / self.cell_size
        dx, dy = np.cos(angles), np.sin(angles)
        tx, row_x, col_x, ux = self._crossings(px, py, dx, dy, self.rows, self.cols, self.walls_flat)
        ty, col_y, row_y, uy = self._crossings(py, px, dy, dx, self.cols, self.rows, self.walls_t_flat)
        side = tx <= ty
        row = np.clip(np.where(side, row_x, row_y), 0, self.rows - 1)
        col = np.clip(np.where(side, col_x, col_y), 0, self.cols - 1)
        face = np.where(side, np.where(dx > 0, _FACE_WEST, _FACE_EAST), np.where(dy > 0, _FACE_SOUTH, _FACE_NORTH))
        distance = np.minimum(tx, ty) * self.cell_size
        return _RayHits(distance=distance, face=(row * self.cols + col) * 4 + face, u=np.where(side, ux, uy),
                        side=side)

    def _crossings(self, p: float, q: float, dp: np.ndarray, dq: np.ndarray, q_size: int, p_size: int,
                   walls_flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """First wall crossing of the grid lines perpendicular to the p axis; returns (t, q cell, p cell, u).

        ``walls_flat`` is the wall grid indexed [q, p], padded with walls on every side and flattened.
        """
        forward = dp > 0
        direction = np.where(forward, 1, -1)
        safe_dp = np.where(forward, np.maximum(dp, 1e-12), np.minimum(dp, -1e-12))
        first_line = math.floor(p) + forward
        t = ((first_line - p) / safe_dp)[:, None] + (1.0 / np.abs(safe_dp))[:, None] * self.steps
        q_at = q + t * dq[:, None]
        stride = p_size + 2 * self.pad
        cell_q = (np.minimum(np.maximum(q_at, -1.0), float(q_size)) + self.pad).astype(np.intp)
        cell_p = (first_line - 1 + forward + self.pad)[:, None] + direction[:, None] * self.steps
        hit = walls_flat.take(cell_q * stride + cell_p)
        first = np.argmax(hit, axis=1)
        rays = np.arange(len(dp))
        q_hit = q_at[rays, first]
        return (t[rays, first], cell_q[rays, first] - self.pad, cell_p[rays, first] - self.pad,
                q_hit - np.floor(q_hit))


# -------------------------------------------------------------------------------------------- render


def ceiling_rgb(image_size: int) -> np.ndarray:
    """The ceiling colour of each image row above the horizon, (image_size // 2, 3) uint8, the same in every view."""
    fraction = np.linspace(0.0, 1.0, image_size // 2)[:, None]
    top, horizon = np.array([150.0, 160.0, 185.0]), np.array([85.0, 90.0, 110.0])
    return np.round(top + (horizon - top) * fraction).astype(np.uint8)


def _distance_shade(distance: np.ndarray, cell_size: float) -> np.ndarray:
    return 1.0 / (1.0 + 0.13 * distance / cell_size)


def _wall_textures(maze: Maze) -> np.ndarray:
    """Per (cell, face) brick textures, (rows * cols * 4, T_rows, T_cols, 3) uint8, tinted by the facing room.

    Each face also carries its own brightness, an optional coloured horizontal band and 0-2 dark vertical
    stripes, so that places look different from each other.
    """
    rng = np.random.default_rng([maze.seed, 0x7E57])
    faces = maze.rows * maze.cols * 4
    base = _face_room_colors(maze) * rng.uniform(0.8, 1.1, size=(faces, 1))
    v = np.arange(_TEXTURE_ROWS)[:, None]
    u = np.arange(_TEXTURE_COLS)[None, :]
    brick_row = v // 8
    shifted_u = u + 4 * (brick_row % 2)
    mortar = (v % 8 == 0) | (shifted_u % 8 == 0)
    brick_index = brick_row * 3 + shifted_u // 8
    brick_jitter = rng.uniform(0.88, 1.08, size=(faces, 12))[:, brick_index]
    texture = base[:, None, None, :] * np.where(mortar, 0.62, brick_jitter)[..., None]
    _paint_bands(rng, texture, base)
    _paint_stripes(rng, texture)
    return np.clip(texture, 0, 255).astype(np.uint8)


def _face_room_colors(maze: Maze) -> np.ndarray:
    """(cells * 4, 3): the tint of each face, from the room of the free cell in front of it."""
    padded = np.pad(maze.room_ids, 1, constant_values=-1)
    in_front = np.stack([padded[1:-1, :-2], padded[1:-1, 2:], padded[:-2, 1:-1], padded[2:, 1:-1]], axis=-1)
    palette = np.array([room_color(k) for k in range(int(maze.room_ids.max()) + 1)] + [(128.0, 128.0, 128.0)])
    return palette[np.where(in_front < 0, -1, in_front).reshape(-1)]


def _paint_bands(rng: np.random.Generator, texture: np.ndarray, base: np.ndarray) -> None:
    faces = texture.shape[0]
    level = rng.integers(0, 4, size=faces)
    band_color = np.clip(255.0 - base * rng.uniform(0.6, 1.0, size=(faces, 1)), 0, 255)
    rows = np.arange(_TEXTURE_ROWS)
    for band in (1, 2, 3):
        centre = band * _TEXTURE_ROWS // 4
        selected = np.flatnonzero(level == band)
        in_band = np.abs(rows - centre) <= 1
        texture[selected[:, None], np.flatnonzero(in_band)[None, :]] = band_color[selected, None, None, :]


def _paint_stripes(rng: np.random.Generator, texture: np.ndarray) -> None:
    faces = texture.shape[0]
    count = rng.integers(0, 3, size=faces)
    positions = rng.integers(1, _TEXTURE_COLS - 1, size=(faces, 2))
    for slot in (0, 1):
        selected = np.flatnonzero(count > slot)
        texture[selected, :, positions[selected, slot]] *= 0.35


def _floor_texture(maze: Maze) -> np.ndarray:
    """Top-down floor colours, (rows * P, cols * P, 3) float32: per-room tint, 2x2 tiles per cell, seams."""
    tint = np.array([room_color(k, 0.3, 0.55) for k in range(int(maze.room_ids.max()) + 1)] + [(60.0, 60.0, 60.0)])
    cells = tint[np.where(maze.room_ids < 0, -1, maze.room_ids)]
    pixels = _FLOOR_PIXELS_PER_CELL
    image = np.repeat(np.repeat(cells, pixels, axis=0), pixels, axis=1)
    index = np.arange(image.shape[0])[:, None], np.arange(image.shape[1])[None, :]
    tile = ((index[0] // (pixels // 2)) + (index[1] // (pixels // 2))) % 2
    seam = (index[0] % pixels == 0) | (index[1] % pixels == 0)
    return (image * np.where(seam, 0.7, np.where(tile == 0, 1.0, 0.88))[..., None]).astype(np.float32)


@dataclass(frozen=True)
class _Sprite:
    """An upright cylinder drawn into the image: floor position, radius, height (metres) and colour."""

    x: float
    y: float
    radius: float
    height: float
    rgb: tuple[int, int, int]


class _Renderer:
    """First-person views by ray casting: textured walls, cast floor, ceiling gradient and cylinder sprites."""

    def __init__(self, maze: Maze, config: WorldConfig) -> None:
        size = int(config.image_size)
        self.size = size
        self.cell_size = maze.cell_size
        self.focal = 0.5 * size / math.tan(math.radians(config.fov_deg) / 2)
        screen_x = np.arange(size) + 0.5 - size / 2
        self.column_angles = np.arctan2(-screen_x, self.focal)
        self.column_cos = np.cos(self.column_angles)
        self.screen_y = np.arange(size) + 0.5 - size / 2
        self.abs_screen_y = np.abs(self.screen_y)
        self.texels = _wall_textures(maze).reshape(-1, 3)
        self.floor = _floor_texture(maze)
        self.camera_height = CAMERA_HEIGHT_CELLS * maze.cell_size
        self.wall_height = WALL_HEIGHT_CELLS * maze.cell_size
        half = size // 2
        self.ceiling = ceiling_rgb(size)[:, None, :].astype(np.float32)
        self.floor_distance = self.camera_height * self.focal / np.maximum(self.screen_y[half:], 0.5)
        self.floor_shade = _distance_shade(self.floor_distance, maze.cell_size)[:, None, None].astype(np.float32)

    def render(self, pose: Pose2D, hits: _RayHits, sprites: Sequence[_Sprite]) -> np.ndarray:
        """The (size, size, 3) uint8 RGB view from ``pose`` given the wall hits of ``column_angles``."""
        depth = hits.distance * self.column_cos
        image = np.empty((self.size, self.size, 3), dtype=np.float32)
        half = self.size // 2
        image[:half] = self.ceiling
        image[half:] = self._floor(pose)
        self._draw_walls(image, depth, hits)
        self._draw_sprites(image, pose, depth, sprites)
        return image.astype(np.uint8)

    def _floor(self, pose: Pose2D) -> np.ndarray:
        angles = pose.theta + self.column_angles
        along = self.floor_distance[:, None] / self.column_cos[None, :]
        scale = _FLOOR_PIXELS_PER_CELL / self.cell_size
        fx = ((pose.x + along * np.cos(angles)) * scale).astype(np.int64)
        fy = ((pose.y + along * np.sin(angles)) * scale).astype(np.int64)
        height, width = self.floor.shape[:2]
        return self.floor[np.clip(fy, 0, height - 1), np.clip(fx, 0, width - 1)] * self.floor_shade

    def _draw_walls(self, image: np.ndarray, depth: np.ndarray, hits: _RayHits) -> None:
        projected = self.focal * self.wall_height / np.maximum(depth, 1e-6)
        # Each pixel shows the wall in proportion to how much of its height the wall covers (area sampling, as a
        # real sensor integrates): the top and bottom edge pixels then carry the wall's sub-pixel height, the only
        # cue to the depth of far walls, where a quarter metre moves an edge by a fraction of a pixel.
        coverage = np.clip(0.5 * projected[None, :] - self.abs_screen_y[:, None] + 0.5, 0.0, 1.0)
        texture_row = self.screen_y[:, None] * (_TEXTURE_ROWS / projected)[None, :] + 0.5 * _TEXTURE_ROWS
        texture_row = np.minimum(np.maximum(texture_row, 0.0), _TEXTURE_ROWS - 1).astype(np.intp)
        texture_col = np.minimum((hits.u * _TEXTURE_COLS).astype(np.intp), _TEXTURE_COLS - 1)
        column_base = hits.face * (_TEXTURE_ROWS * _TEXTURE_COLS) + texture_col
        texels = self.texels.take(texture_row * _TEXTURE_COLS + column_base[None, :], axis=0)
        shade = (_distance_shade(depth, self.cell_size) * np.where(hits.side, 1.0, 0.78)).astype(np.float32)
        wall = texels * shade[None, :, None]
        image += (wall - image) * coverage.astype(np.float32)[..., None]

    def _draw_sprites(self, image: np.ndarray, pose: Pose2D, depth: np.ndarray, sprites: Sequence[_Sprite]) -> None:
        cos_t, sin_t = math.cos(pose.theta), math.sin(pose.theta)
        placed = []
        for sprite in sprites:
            rel_x, rel_y = sprite.x - pose.x, sprite.y - pose.y
            forward = rel_x * cos_t + rel_y * sin_t
            if forward > 0.05:
                placed.append((forward, -rel_x * sin_t + rel_y * cos_t, sprite))
        for forward, left, sprite in sorted(placed, key=lambda item: -item[0]):
            self._draw_cylinder(image, forward, left, sprite, depth)

    def _pixel_span(self, low: float, high: float) -> tuple[int, int]:
        """The range of pixel indices whose centres lie in [low, high], clipped to the image."""
        return max(0, math.ceil(low - 0.5)), min(self.size, math.floor(high - 0.5) + 1)

    def _draw_cylinder(self, image: np.ndarray, forward: float, left: float, sprite: _Sprite,
                       depth: np.ndarray) -> None:
        half = self.size / 2
        centre = half - self.focal * left / forward
        half_width = self.focal * sprite.radius / forward
        first, last = self._pixel_span(centre - half_width, centre + half_width)
        row0, row1 = self._pixel_span(half + self.focal * (self.camera_height - sprite.height) / forward,
                                      half + self.focal * self.camera_height / forward)
        if first >= last or row0 >= row1:
            return
        columns = np.arange(first, last)
        columns = columns[depth[columns] > forward]
        offset = np.clip((columns + 0.5 - centre) / half_width, -1.0, 1.0)
        shade = (0.5 + 0.5 * np.sqrt(1.0 - offset**2)) * _distance_shade(np.asarray(forward), self.cell_size)
        image[row0:row1, columns] = np.asarray(sprite.rgb, dtype=np.float32)[None, :] * shade[:, None]


# ---------------------------------------------------------------------------------------- oracle BEV


class _BevOracle:
    """The true map around a robot, in its frame, masked to the camera's field of view, range and occlusions."""

    def __init__(self, maze: Maze, config: WorldConfig) -> None:
        self.maze = maze
        self.resolution = config.bev_resolution
        self.shape = (int(config.bev_height), int(config.bev_width))
        self.origin = config.bev_origin
        half_fov = math.radians(config.fov_deg) / 2
        self.view_range = config.view_range
        self.ray_angles = np.linspace(-half_fov, half_fov, int(config.bev_rays))
        grid = BevGrid(np.zeros(self.shape, np.int8), np.zeros(self.shape, np.uint8), self.resolution, *self.origin)
        cell_x, cell_y = (a.reshape(-1) for a in grid.cell_centers())
        distance, bearing = np.hypot(cell_x, cell_y), np.arctan2(cell_y, cell_x)
        candidates = np.flatnonzero((np.abs(bearing) <= half_fov) & (distance <= config.view_range))
        self.cells = candidates
        self.cell_x, self.cell_y, self.cell_distance = cell_x[candidates], cell_y[candidates], distance[candidates]
        fan_step = (self.ray_angles[-1] - self.ray_angles[0]) / (len(self.ray_angles) - 1)
        self.cell_ray = np.clip(np.round((bearing[candidates] + half_fov) / fan_step), 0, len(self.ray_angles) - 1
                                ).astype(np.int64)
        self.wall_margin = 0.75 * self.resolution

    def compute(self, pose: Pose2D, ray_distance: np.ndarray, targets: Sequence[Target]) -> BevGrid:
        """The oracle BEV at ``pose`` given the wall distances along ``ray_angles`` (relative to the heading)."""
        occupancy = np.full(self.shape[0] * self.shape[1], -1, dtype=np.int8)
        is_wall = self._walls_at_cells(pose)
        ray_depth = _min_of_neighbours(ray_distance)[self.cell_ray]
        free_seen = ~is_wall & (self.cell_distance <= ray_depth)
        occupancy[self.cells[free_seen]] = 0
        surface = (self.cell_distance <= ray_depth + self.wall_margin) | self._hit_cells(ray_distance)
        surface |= _next_to(occupancy == 0, self.shape)[self.cells]
        occupancy[self.cells[is_wall & surface]] = 100
        occupancy = occupancy.reshape(self.shape)
        objects = self._objects(pose, ray_distance, targets, occupancy)
        return BevGrid(occupancy, objects, self.resolution, self.origin[0], self.origin[1], CLASS_NAMES)

    def _walls_at_cells(self, pose: Pose2D) -> np.ndarray:
        cos_t, sin_t = math.cos(pose.theta), math.sin(pose.theta)
        map_x = pose.x + cos_t * self.cell_x - sin_t * self.cell_y
        map_y = pose.y + sin_t * self.cell_x + cos_t * self.cell_y
        size = self.maze.cell_size
        col, row = np.floor(map_x / size).astype(np.int64), np.floor(map_y / size).astype(np.int64)
        rows, cols = self.maze.walls.shape
        inside = (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
        return ~inside | self.maze.walls[np.clip(row, 0, rows - 1), np.clip(col, 0, cols - 1)]

    def _hit_cells(self, ray_distance: np.ndarray) -> np.ndarray:
        """Which candidate cells contain the point where some ray meets a wall (so wall outlines stay closed)."""
        inward = ray_distance + 1e-3
        hit_x, hit_y = inward * np.cos(self.ray_angles), inward * np.sin(self.ray_angles)
        ix = np.floor((hit_x - self.origin[0]) / self.resolution).astype(np.int64)
        iy = np.floor((hit_y - self.origin[1]) / self.resolution).astype(np.int64)
        inside = (ix >= 0) & (ix < self.shape[1]) & (iy >= 0) & (iy < self.shape[0]) & (ray_distance <= self.view_range)
        marked = np.zeros(self.shape[0] * self.shape[1], dtype=bool)
        marked[iy[inside] * self.shape[1] + ix[inside]] = True
        return marked[self.cells]

    def _objects(self, pose: Pose2D, ray_distance: np.ndarray, targets: Sequence[Target],
                 occupancy: np.ndarray) -> np.ndarray:
        objects = np.zeros(self.shape, dtype=np.uint8)
        cos_t, sin_t = math.cos(pose.theta), math.sin(pose.theta)
        radius = max(TARGET_RADIUS_CELLS * self.maze.cell_size, 0.5 * self.resolution)
        for target in targets:
            rel_x, rel_y = target.x - pose.x, target.y - pose.y
            forward, left = rel_x * cos_t + rel_y * sin_t, -rel_x * sin_t + rel_y * cos_t
            if self._target_visible(forward, left, ray_distance):
                self._mark_target(objects, occupancy, forward, left, radius, CLASS_NAMES.index(target.color) + 1)
        return objects

    def _target_visible(self, forward: float, left: float, ray_distance: np.ndarray) -> bool:
        distance, bearing = math.hypot(forward, left), math.atan2(left, forward)
        if abs(bearing) > self.ray_angles[-1] or distance > self.view_range:
            return False
        ray = int(np.argmin(np.abs(self.ray_angles - bearing)))
        return distance <= ray_distance[ray]

    def _mark_target(self, objects: np.ndarray, occupancy: np.ndarray, forward: float, left: float,
                     radius: float, class_id: int) -> None:
        res, (origin_x, origin_y) = self.resolution, self.origin
        ix0, ix1 = math.floor((forward - radius - origin_x) / res), math.floor((forward + radius - origin_x) / res)
        iy0, iy1 = math.floor((left - radius - origin_y) / res), math.floor((left + radius - origin_y) / res)
        for iy in range(max(iy0, 0), min(iy1, self.shape[0] - 1) + 1):
            for ix in range(max(ix0, 0), min(ix1, self.shape[1] - 1) + 1):
                centre_x, centre_y = origin_x + (ix + 0.5) * res, origin_y + (iy + 0.5) * res
                near = math.hypot(centre_x - forward, centre_y - left) <= radius + 0.5 * res
                if near and occupancy[iy, ix] == 0:
                    objects[iy, ix] = class_id


def _min_of_neighbours(values: np.ndarray) -> np.ndarray:
    """Each value's minimum with its neighbours: the depth a cell needs to clear between two rays of the fan."""
    padded = np.concatenate([values[:1], values, values[-1:]])
    return np.minimum(np.minimum(padded[:-2], padded[1:-1]), padded[2:])


def _next_to(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Flat bool mask of the cells 4-adjacent to a cell set in the flat ``mask`` of a grid of ``shape``."""
    grid = mask.reshape(shape)
    near = np.zeros_like(grid)
    near[1:] |= grid[:-1]
    near[:-1] |= grid[1:]
    near[:, 1:] |= grid[:, :-1]
    near[:, :-1] |= grid[:, 1:]
    return near.reshape(-1)


# --------------------------------------------------------------------------------------------- world


def _wrap_angle(angle: float) -> float:
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def _arc_displacement(theta: float, v: float, omega: float, dt: float) -> tuple[float, float]:
    """Exact displacement of a differential-drive base moving at constant (v, omega) for dt."""
    half_turn = 0.5 * omega * dt
    chord = v * dt * (math.sin(half_turn) / half_turn if abs(half_turn) > 1e-9 else 1.0)
    return chord * math.cos(theta + half_turn), chord * math.sin(theta + half_turn)


@dataclass
class _RobotState:
    true_pose: Pose2D
    odom_pose: Pose2D
    true_twist: tuple[float, float] = (0.0, 0.0)
    odom_twist: tuple[float, float] = (0.0, 0.0)
    distance: float = 0.0


class World:
    """A maze with a team of differential-drive camera robots, stepped with a fixed dt."""

    def __init__(self, maze: Maze, num_robots: int = 3, seed: int = 0, config: WorldConfig | None = None) -> None:
        """Place ``num_robots`` robots at distinct free cells (different rooms where possible), seeded."""
        self.maze = maze
        self.config = config or WorldConfig()
        if num_robots < 1:
            raise ValueError(f"num_robots must be at least 1, got {num_robots}")
        self.num_robots = int(num_robots)
        self.step_count = 0
        self._rng = np.random.default_rng([seed, 0x5140])
        self._robots = [_RobotState(pose, Pose2D(pose.x, pose.y, pose.theta)) for pose in self._start_poses()]
        self._caster = _RayCaster(maze)
        self._renderer = _Renderer(maze, self.config)
        self._oracle = _BevOracle(maze, self.config)
        self._ray_angles = np.concatenate([self._renderer.column_angles, self._oracle.ray_angles])
        self._ray_cache: dict[int, tuple[tuple[float, float, float], _RayHits]] = {}

    @property
    def time(self) -> float:
        """Simulated seconds since the start."""
        return self.step_count * self.config.dt

    def _start_poses(self) -> list[Pose2D]:
        free = self.maze.free_cells()
        target_cells = {self.maze.cell_of(t.x, t.y) for t in self.maze.targets}
        rooms = self.maze.room_ids[free[:, 0], free[:, 1]]
        room_order = self._rng.permutation(np.unique(rooms))
        cell_order = self._rng.permutation(len(free))
        ranked = sorted(cell_order, key=lambda k: (tuple(free[k]) in target_cells,
                                                   int(np.flatnonzero(room_order == rooms[k])[0])))
        poses, used_rooms, used_cells = [], set(), set()
        for prefer_new_room in (True, False):
            for k in ranked:
                if len(poses) == self.num_robots:
                    return poses
                room, cell = int(rooms[k]), tuple(int(v) for v in free[k])
                if cell in used_cells or (prefer_new_room and room in used_rooms):
                    continue
                used_rooms.add(room)
                used_cells.add(cell)
                x, y = self.maze.cell_center(*cell)
                poses.append(Pose2D(x, y, float(self._rng.uniform(-math.pi, math.pi))))
        if len(poses) < self.num_robots:
            raise ValueError(f"the maze has only {len(free)} free cells for {self.num_robots} robots")
        return poses

    def _check_robot(self, robot: int) -> _RobotState:
        if not 0 <= robot < self.num_robots:
            raise IndexError(f"robot index {robot} out of range 0..{self.num_robots - 1}")
        return self._robots[robot]

    def true_pose(self, robot: int) -> Pose2D:
        """The robot's ground-truth pose in the map frame."""
        pose = self._check_robot(robot).true_pose
        return Pose2D(pose.x, pose.y, pose.theta)

    def odom_pose(self, robot: int) -> Pose2D:
        """Dead reckoning: the integral of the measured (noisy) twist from the start pose."""
        pose = self._check_robot(robot).odom_pose
        return Pose2D(pose.x, pose.y, pose.theta)

    def true_twist(self, robot: int) -> tuple[float, float]:
        """Last step's actual (forward speed m/s, yaw rate rad/s); forward speed is reduced when blocked."""
        return self._check_robot(robot).true_twist

    def odom_twist(self, robot: int) -> tuple[float, float]:
        """Last step's measured (forward speed, yaw rate), with odometry noise."""
        return self._check_robot(robot).odom_twist

    def distance_travelled(self, robot: int) -> float:
        """Total path length the robot actually moved, metres."""
        return self._check_robot(robot).distance

    def set_pose(self, robot: int, pose: Pose2D, reset_odometry: bool = True) -> None:
        """Teleport a robot (tests, data generation); raises ValueError if it would overlap a wall or a robot."""
        state = self._check_robot(robot)
        if not all(math.isfinite(v) for v in (pose.x, pose.y, pose.theta)):
            raise ValueError(f"pose must be finite, got {pose}")
        if self._collides(robot, pose.x, pose.y):
            raise ValueError(f"pose ({pose.x:.3f}, {pose.y:.3f}) overlaps a wall or another robot")
        state.true_pose = Pose2D(float(pose.x), float(pose.y), _wrap_angle(float(pose.theta)))
        if reset_odometry:
            state.odom_pose = Pose2D(state.true_pose.x, state.true_pose.y, state.true_pose.theta)

    def step(self, commands: Sequence[tuple[float, float]]) -> None:
        """Advance every robot by dt under (v m/s, omega rad/s) commands, clamped to the speed limits.

        Robots move in index order; a move that would overlap a wall or another robot stops at the last free
        point along its path (turning always succeeds). Raises ValueError, changing nothing, for commands that
        are non-finite or not one (v, omega) pair per robot.
        """
        limits = self._validated_commands(commands)
        noise = self._rng.standard_normal((self.num_robots, 2))
        for robot, ((v, omega), (linear_noise, angular_noise)) in enumerate(zip(limits, noise)):
            self._move(robot, v, omega)
            self._measure(robot, linear_noise, angular_noise)
        self.step_count += 1

    def _validated_commands(self, commands: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        try:
            array = np.asarray(commands, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"commands must be numbers (v, omega) per robot: {error}") from None
        if array.shape != (self.num_robots, 2):
            raise ValueError(f"expected {self.num_robots} commands of (v, omega), got shape {array.shape}")
        bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
        if bad.size:
            raise ValueError(f"non-finite command for robot(s) {bad.tolist()}: {array[bad].tolist()}")
        v = np.clip(array[:, 0], -self.config.max_linear_speed, self.config.max_linear_speed)
        omega = np.clip(array[:, 1], -self.config.max_angular_speed, self.config.max_angular_speed)
        return list(zip(v.tolist(), omega.tolist()))

    def _move(self, robot: int, v: float, omega: float) -> None:
        state, dt = self._robots[robot], self.config.dt
        pose = state.true_pose
        dx, dy = _arc_displacement(pose.theta, v, omega, dt)
        fraction = self._free_fraction(robot, pose.x, pose.y, dx, dy)
        state.true_pose = Pose2D(pose.x + fraction * dx, pose.y + fraction * dy, _wrap_angle(pose.theta + omega * dt))
        state.true_twist = (fraction * v, omega)
        state.distance += fraction * math.hypot(dx, dy)

    def _free_fraction(self, robot: int, x: float, y: float, dx: float, dy: float) -> float:
        """How much of the straight move (dx, dy) the robot can make before touching a wall or robot."""
        length = math.hypot(dx, dy)
        if length == 0.0:
            return 1.0
        samples = max(1, math.ceil(length / (0.5 * self.config.robot_radius)))
        free = 0.0
        for k in range(1, samples + 1):
            blocked = k / samples
            if self._collides(robot, x + blocked * dx, y + blocked * dy):
                for _ in range(_BISECTION_STEPS):
                    middle = 0.5 * (free + blocked)
                    if self._collides(robot, x + middle * dx, y + middle * dy):
                        blocked = middle
                    else:
                        free = middle
                return free
            free = blocked
        return 1.0

    def _collides(self, robot: int, x: float, y: float) -> bool:
        radius = self.config.robot_radius
        if self.maze.disc_collides(x, y, radius):
            return True
        limit = (2.0 * radius) ** 2
        for other, state in enumerate(self._robots):
            if other != robot and (state.true_pose.x - x) ** 2 + (state.true_pose.y - y) ** 2 < limit:
                return True
        return False

    def _measure(self, robot: int, linear_noise: float, angular_noise: float) -> None:
        state, config = self._robots[robot], self.config
        v, omega = state.true_twist
        measured = (v * (1.0 + config.odom_linear_noise * linear_noise),
                    omega + math.radians(config.odom_angular_noise_deg) * angular_noise)
        odom = state.odom_pose
        dx, dy = _arc_displacement(odom.theta, measured[0], measured[1], config.dt)
        state.odom_pose = Pose2D(odom.x + dx, odom.y + dy, _wrap_angle(odom.theta + measured[1] * config.dt))
        state.odom_twist = measured

    def _rays(self, robot: int) -> _RayHits:
        pose = self._check_robot(robot).true_pose
        key = (pose.x, pose.y, pose.theta)
        cached = self._ray_cache.get(robot)
        if cached is None or cached[0] != key:
            cached = (key, self._caster.cast(pose.x, pose.y, pose.theta + self._ray_angles))
            self._ray_cache[robot] = cached
        return cached[1]

    def _sprites(self, robot: int) -> list[_Sprite]:
        size = self.maze.cell_size
        sprites = [_Sprite(t.x, t.y, TARGET_RADIUS_CELLS * size, TARGET_HEIGHT_CELLS * size, t.rgb)
                   for t in self.maze.targets]
        if self.config.render_teammates:
            sprites += [_Sprite(s.true_pose.x, s.true_pose.y, self.config.robot_radius, TEAMMATE_HEIGHT_CELLS * size,
                                TEAMMATE_RGB) for k, s in enumerate(self._robots) if k != robot]
        return sprites

    def column_depths(self, robot: int) -> np.ndarray:
        """Perpendicular distance (metres) to the wall seen in each image column of the robot's camera."""
        columns = self._renderer.size
        return self._rays(robot).distance[:columns] * self._renderer.column_cos

    def render(self, robot: int) -> np.ndarray:
        """The robot's first-person camera image, (image_size, image_size, 3) uint8 RGB, row 0 at the top."""
        hits = self._rays(robot)
        columns = self._renderer.size
        column_hits = _RayHits(hits.distance[:columns], hits.face[:columns], hits.u[:columns], hits.side[:columns])
        return self._renderer.render(self._robots[robot].true_pose, column_hits, self._sprites(robot))

    def oracle_bev(self, robot: int) -> BevGrid:
        """The true egocentric BEV around the robot, masked to its camera's view (field of view, range, occlusion)."""
        ray_distance = self._rays(robot).distance[self._renderer.size:]
        return self._oracle.compute(self._robots[robot].true_pose, ray_distance, self.maze.targets)
