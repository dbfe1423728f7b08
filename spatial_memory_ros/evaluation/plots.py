"""Pictures for people: the maze with targets and trajectories, drawn with OpenCV (no display needed)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from spatial_memory_ros.sim.maze import Maze

ROBOT_COLOURS_RGB = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                     (70, 240, 240), (240, 50, 230), (128, 128, 0)]


def draw_maze(maze: Maze, pixels_per_cell: int = 40) -> np.ndarray:
    """An RGB picture of the maze (map frame, +y up): walls dark, floor light, targets as coloured discs."""
    rows, cols = maze.walls.shape
    image = np.full((rows * pixels_per_cell, cols * pixels_per_cell, 3), 235, np.uint8)
    wall_pixels = np.kron(maze.walls[::-1].astype(np.uint8), np.ones((pixels_per_cell, pixels_per_cell), np.uint8))
    image[wall_pixels.astype(bool)] = (60, 60, 70)
    for target in maze.targets:
        centre = _to_pixel(maze, target.x, target.y, pixels_per_cell)
        cv2.circle(image, centre, pixels_per_cell // 3, tuple(int(c) for c in target.rgb), -1, cv2.LINE_AA)
        cv2.circle(image, centre, pixels_per_cell // 3, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def draw_trajectories(maze: Maze, paths: dict[str, list[tuple[float, float]]], pixels_per_cell: int = 40) -> np.ndarray:
    """The maze with each robot's path (a coloured line, a ring at its start, a dot at its end) and a legend."""
    image = draw_maze(maze, pixels_per_cell)
    for index, (robot, path) in enumerate(sorted(paths.items())):
        colour = ROBOT_COLOURS_RGB[index % len(ROBOT_COLOURS_RGB)]
        if path:
            points = np.array([_to_pixel(maze, x, y, pixels_per_cell) for x, y in path], np.int32)
            cv2.polylines(image, [points.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
            cv2.circle(image, tuple(int(v) for v in points[0]), 7, colour, 2, cv2.LINE_AA)
            cv2.circle(image, tuple(int(v) for v in points[-1]), 6, colour, -1, cv2.LINE_AA)
        cv2.rectangle(image, (4, 6 + 22 * index), (110, 28 + 22 * index), (255, 255, 255), -1)
        cv2.putText(image, robot, (8, 22 + 22 * index), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 2, cv2.LINE_AA)
    return image


def draw_occupancy(grid: np.ndarray, geometry, pixels_per_cell: int = 10) -> np.ndarray:
    """An RGB picture of an occupancy grid (+y up): unknown grey, free white, walls dark by probability."""
    shade = np.where(grid < 0, 180, 255 - (np.clip(grid, 0, 100).astype(np.int32) * 220) // 100).astype(np.uint8)
    image = np.repeat(shade[::-1, :, None], 3, axis=2)
    return np.kron(image, np.ones((pixels_per_cell, pixels_per_cell, 1), np.uint8))


def draw_bev(bev, pixels_per_cell: int = 4) -> np.ndarray:
    """An RGB picture of an egocentric BEV with the robot at the bottom centre looking up: unseen grey, free
    white, walls dark, target cells in their colour."""
    from spatial_memory_ros.sim.maze import CLASS_RGB

    occupancy, objects = bev.occupancy.T[::-1, ::-1], bev.object_class.T[::-1, ::-1]
    image = np.full(occupancy.shape + (3,), 150, np.uint8)
    image[occupancy == 0] = 250
    image[occupancy >= 50] = 40
    for index, name in enumerate(bev.class_names, start=1):
        image[objects == index] = CLASS_RGB.get(name, (255, 128, 0))
    return np.kron(image, np.ones((pixels_per_cell, pixels_per_cell, 1), np.uint8))


def save_png(path: Path | str, rgb: np.ndarray) -> None:
    """Write an RGB array as a PNG."""
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def _to_pixel(maze: Maze, x: float, y: float, pixels_per_cell: int) -> tuple[int, int]:
    scale = pixels_per_cell / maze.cell_size
    return int(round(x * scale)), int(round(maze.walls.shape[0] * pixels_per_cell - y * scale))
