"""The built-in world's camera (numpy only, no ROS): a ray caster over the maze grid and a first-person renderer.

One ray per image column; a wall's top and bottom edge pixels are blended by how much of them the wall covers.
Walls carry per-face brick textures tinted by the room they face, the floor is cast per pixel, the ceiling is a
gradient and targets and teammates are upright cylinder sprites. The robot frame has x forward and y to the left;
headings are counter-clockwise from the map's x axis.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from spatial_memory_ros.sim.maze import WALL_HEIGHT_CELLS, Maze, room_color
from spatial_memory_ros.types import Pose2D

if TYPE_CHECKING:
    from spatial_memory_ros.sim.world import WorldConfig

CAMERA_HEIGHT_CELLS = 0.5

_FACE_WEST, _FACE_EAST, _FACE_SOUTH, _FACE_NORTH = 0, 1, 2, 3
_TEXTURE_ROWS = 32
_TEXTURE_COLS = 16
_FLOOR_PIXELS_PER_CELL = 8


@dataclass
class RayHits:
    """Where rays first hit a wall: distance along the ray (metres), texture face index and coordinate."""

    distance: np.ndarray
    face: np.ndarray
    u: np.ndarray
    side: np.ndarray


class RayCaster:
    """Vectorised grid traversal: all crossings of every ray with the grid lines at once, first wall wins."""

    def __init__(self, maze: Maze) -> None:
        self.cell_size = maze.cell_size
        self.rows, self.cols = maze.walls.shape
        self.steps = np.arange(max(self.rows, self.cols) + 1)
        self.pad = len(self.steps) + 2
        padded = np.pad(maze.walls, self.pad, constant_values=True)
        self.walls_flat = padded.reshape(-1)
        self.walls_t_flat = padded.T.copy().reshape(-1)

    def cast(self, x: float, y: float, angles: np.ndarray) -> RayHits:
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
        return RayHits(distance=distance, face=(row * self.cols + col) * 4 + face, u=np.where(side, ux, uy),
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


_SHADE_RATE = 0.13


def _distance_shade(distance: np.ndarray, cell_size: float) -> np.ndarray:
    return 1.0 / (1.0 + _SHADE_RATE * distance / cell_size)


def _random_wall_textures(rng: np.random.Generator, faces: int) -> np.ndarray:
    """(faces, T_rows, T_cols, 3) uint8 wall textures of random colours: one palette of 1 to 6 colours per
    maze, bricks, plain paint or noise of random contrast (training data of issue 12)."""
    palette = rng.uniform(20, 255, size=(int(rng.integers(1, 7)), 3))
    base = palette[rng.integers(len(palette), size=faces)] * rng.uniform(0.8, 1.15, size=(faces, 1))
    v = np.arange(_TEXTURE_ROWS)[:, None]
    u = np.arange(_TEXTURE_COLS)[None, :]
    kind = rng.integers(3)
    if kind == 0:  # bricks with mortar of random darkness
        shifted = u + 4 * ((v // 8) % 2)
        mortar = (v % 8 == 0) | (shifted % 8 == 0)
        pattern = np.where(mortar, rng.uniform(0.4, 1.3), 1.0) * np.ones((faces, 1, 1))
    elif kind == 1:  # plain paint
        pattern = np.ones((faces, _TEXTURE_ROWS, _TEXTURE_COLS))
    else:  # noise
        pattern = 1.0 + rng.uniform(0.05, 0.4) * rng.standard_normal((faces, _TEXTURE_ROWS, _TEXTURE_COLS))
    texture = base[:, None, None, :] * pattern[..., None]
    if rng.random() < 0.5:  # the built-in maze's coloured bands and dark stripes, as landmarks
        _paint_bands(rng, texture, base)
        _paint_stripes(rng, texture)
    return np.clip(texture, 0, 255).astype(np.uint8)


def _random_floor(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A top-down floor of ``shape`` pixels, float32 RGB: one random colour, tiles or noise of random contrast."""
    colour = rng.uniform(10, 255, size=3)
    rows, cols = np.arange(shape[0])[:, None], np.arange(shape[1])[None, :]
    tile = int(rng.choice([1, 2, 4, 8, 16]))
    checker = ((rows // tile + cols // tile) % 2) * rng.uniform(0.0, 0.35)
    noise = rng.uniform(0.0, 0.25) * rng.standard_normal(shape)
    return (colour * np.clip(1.0 - checker + noise, 0.2, 2.0)[..., None]).astype(np.float32)


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
class Sprite:
    """An upright cylinder drawn into the image: floor position, radius, height (metres) and colour."""

    x: float
    y: float
    radius: float
    height: float
    rgb: tuple[int, int, int]


class Renderer:
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
        self.shade_rate = _SHADE_RATE

    def restyle(self, rng: np.random.Generator) -> None:
        """Random appearance for training data that must transfer to other worlds (issue 12): wall, floor and
        ceiling colours and textures, wall height (1.2 to 4 camera heights) and how fast things darken with
        distance. Where walls stand is unchanged, so the world's labels stay true; targets and teammates keep
        their colours (they are what tells objects apart)."""
        self.texels = _random_wall_textures(rng, len(self.texels) // (_TEXTURE_ROWS * _TEXTURE_COLS)).reshape(-1, 3)
        self.floor = _random_floor(rng, self.floor.shape[:2])
        if rng.random() < 0.3:  # a floor of the walls' own hue, darker (as in the built-in maze)
            wall_colour = self.texels.reshape(-1, 3).astype(np.float32).mean(axis=0)
            self.floor *= (wall_colour * rng.uniform(0.4, 0.8)) / np.maximum(self.floor.mean(axis=(0, 1)), 1.0)
        top, horizon = rng.uniform(0, 255, size=(2, 3))
        fraction = np.linspace(0.0, 1.0, self.size // 2)[:, None]
        self.ceiling = (top + (horizon - top) * fraction)[:, None, :].astype(np.float32)
        self.wall_height = self.camera_height * rng.uniform(1.2, 4.0)
        self.shade_rate = rng.uniform(0.0, 0.25)
        self.floor_shade = (1.0 / (1.0 + self.shade_rate * self.floor_distance / self.cell_size)
                            )[:, None, None].astype(np.float32)

    def render(self, pose: Pose2D, hits: RayHits, sprites: Sequence[Sprite]) -> np.ndarray:
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

    def _draw_walls(self, image: np.ndarray, depth: np.ndarray, hits: RayHits) -> None:
        inverse_depth = self.focal / np.maximum(depth, 1e-6)
        bottom = self.camera_height * inverse_depth  # screen rows (0 at the horizon, down positive) of the edges
        top = (self.camera_height - self.wall_height) * inverse_depth
        # Each pixel shows the wall in proportion to how much of its height the wall covers (area sampling, as a
        # real sensor integrates): the top and bottom edge pixels then carry the wall's sub-pixel height, the only
        # cue to the depth of far walls, where a quarter metre moves an edge by a fraction of a pixel.
        rows = self.screen_y[:, None]
        coverage = np.clip(np.minimum(bottom[None, :], rows + 0.5) - np.maximum(top[None, :], rows - 0.5), 0.0, 1.0)
        texture_row = (rows - top[None, :]) * (_TEXTURE_ROWS / (bottom - top))[None, :]
        texture_row = np.minimum(np.maximum(texture_row, 0.0), _TEXTURE_ROWS - 1).astype(np.intp)
        texture_col = np.minimum((hits.u * _TEXTURE_COLS).astype(np.intp), _TEXTURE_COLS - 1)
        column_base = hits.face * (_TEXTURE_ROWS * _TEXTURE_COLS) + texture_col
        texels = self.texels.take(texture_row * _TEXTURE_COLS + column_base[None, :], axis=0)
        shade = (1.0 / (1.0 + self.shade_rate * depth / self.cell_size) * np.where(hits.side, 1.0, 0.78)
                 ).astype(np.float32)
        wall = texels * shade[None, :, None]
        image += (wall - image) * coverage.astype(np.float32)[..., None]

    def _draw_sprites(self, image: np.ndarray, pose: Pose2D, depth: np.ndarray, sprites: Sequence[Sprite]) -> None:
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

    def _draw_cylinder(self, image: np.ndarray, forward: float, left: float, sprite: Sprite,
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
