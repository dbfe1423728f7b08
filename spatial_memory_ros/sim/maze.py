"""The built-in world's mazes (numpy only, no ROS): grids of walls and free cells, rooms joined by corridors, and
coloured target objects, generated from a seed as in Memory-Maze.

Frames: the map frame has x along the grid's columns and y along its rows, in metres; cell (r, c) spans
x in [c * cell_size, (c + 1) * cell_size) and y in [r * cell_size, (r + 1) * cell_size).

Everything random takes a seed: the same seed gives a byte-identical maze.
"""
from __future__ import annotations

import colorsys
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

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
TARGET_RADIUS_CELLS = 0.2
TARGET_HEIGHT_CELLS = 0.45
"""Heights and the targets' radius, in cells: what the camera draws and the oracle marks."""


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
