"""Training frames of the floor-boundary net (issue 12): canonical-camera images with, per image column, where the
floor ends (``t`` of perception/floor_boundary.py) and the class of the object standing there, from either world.

Labels come from geometry, not from a renderer's internals: rays cast from the camera's position along each
canonical column's bearing through the world's layout (sim/camera.py ``RayCaster``) give the range to the first
wall, and targets and teammates (upright discs) can stand nearer. So Memory-Maze frames are labelled exactly as
built-in ones. Built-in frames can have a random appearance per maze (``randomize``: colours, textures, wall
height, shading; sim/camera.py ``Renderer.restyle``): the leave-one-world-out model learns only from those.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from spatial_memory_ros.perception.floor_boundary import boundary_of_ranges, column_bearings
from spatial_memory_ros.perception.geometry import BevGeometry
from spatial_memory_ros.types import CameraModel, Pose2D

FIELDS = ("images", "boundary", "column_class", "valid", "maze_seeds")


@dataclass
class BoundaryFrames:
    """images (N, S, S, 3) uint8 in the canonical camera; boundary (N, S) float32 (t per column); column_class
    (N, S) uint8 (model object slot of the obstacle that ends the floor there, 0 for a wall or a teammate);
    valid (N, S) bool (columns the real camera saw); maze_seeds (N,) int64."""

    images: np.ndarray
    boundary: np.ndarray
    column_class: np.ndarray
    valid: np.ndarray
    maze_seeds: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def concatenate(cls, parts: Sequence[BoundaryFrames]) -> BoundaryFrames:
        """All frames of ``parts`` in order."""
        return cls(*(np.concatenate([getattr(part, name) for part in parts]) for name in FIELDS))


def write_boundary_shard(path: str | Path, frames: BoundaryFrames) -> None:
    """One compressed npz shard."""
    with Path(path).open("wb") as file:
        np.savez_compressed(file, **{name: getattr(frames, name) for name in FIELDS})


def read_boundary_shards(directory: str | Path) -> BoundaryFrames:
    """Every shard-*.npz of ``directory``; FileNotFoundError or ValueError naming the folder and the command."""
    paths = sorted(Path(directory).glob("shard-*.npz"))
    if not paths:
        raise FileNotFoundError(f"no floor-boundary shards (shard-*.npz) in {directory}; write some with "
                                f"`spatial-memory data boundary --out {directory}`")
    parts = []
    for path in paths:
        try:
            with np.load(path) as data:
                parts.append(BoundaryFrames(*(data[name] for name in FIELDS)))
        except (OSError, KeyError, ValueError) as error:
            raise ValueError(f"{path} is not a floor-boundary shard ({error}); write shards with "
                             f"`spatial-memory data boundary`") from None
    return BoundaryFrames.concatenate(parts)


def boundary_geometry() -> BevGeometry:
    """The floor-boundary model's grid and classes: the built-in model's grid, with the object classes of every
    world by colour name (the built-in world's six, then Memory-Maze's purple and salmon), so that a class means one
    colour in every world's data instead of sharing a slot between two colours (camera_adapter.class_slots)."""
    from spatial_memory_ros.perception.frames import sim_geometry
    from spatial_memory_ros.sim.interface import WORLDS, world_class_names

    names: list[str] = []
    for world in WORLDS:
        names += [name for name in world_class_names(world) if name not in names]
    return dataclasses.replace(sim_geometry(), class_names=tuple(names))


def disc_ranges(eye: Pose2D, angles: np.ndarray, discs: Sequence[tuple[float, float, float]]) -> tuple[np.ndarray,
                                                                                                          np.ndarray]:
    """Range along each absolute ray angle from ``eye`` to the nearest of ``discs`` (x, y, radius) that lies ahead,
    and which disc it is (-1 none); np.inf where no disc is hit."""
    best = np.full(len(angles), np.inf)
    which = np.full(len(angles), -1, dtype=np.int64)
    dx, dy = np.cos(angles), np.sin(angles)
    for index, (x, y, radius) in enumerate(discs):
        cx, cy = x - eye.x, y - eye.y
        along = cx * dx + cy * dy
        square = along**2 - (cx * cx + cy * cy - radius * radius)
        with np.errstate(invalid="ignore"):
            hit = along - np.sqrt(square)
        nearer = (square >= 0) & (hit > 0) & (hit < best)
        best[nearer], which[nearer] = hit[nearer], index
    return best, which


def render_boundary_frames(world: str, seed: int, frames: int, geometry: BevGeometry, randomize: float = 0.0,
                           size: int | None = None) -> BoundaryFrames:
    """``frames`` labelled canonical frames of maze ``seed`` of ``world`` (``builtin``: 3 robots, all seen by
    each other; ``memory_maze``: 1) at uniformly random free poses; ``randomize`` is the chance (by the seed)
    that the built-in camera is restyled for this maze (True: always). Raises WorldUnavailable when the world
    cannot start here."""
    from spatial_memory_ros.perception.camera_adapter import canonical_camera, image_maps, warp_image, world_to_slot
    from spatial_memory_ros.perception.frames import _scatter_robots, world_camera, world_size_for_seed
    from spatial_memory_ros.sim.interface import make_world, world_class_names

    camera = world_camera(world)
    canonical = canonical_camera(geometry)
    bearings = column_bearings(geometry.image_size, geometry.fov_deg)
    valid = np.abs(bearings) <= math.radians(camera.horizontal_fov_deg) / 2
    slots = world_to_slot(geometry.class_names, world_class_names(world))
    rng = np.random.default_rng([seed, 0xF100])
    robots = 3 if world == "builtin" else 1
    built = make_world(world, size=size or world_size_for_seed(world, seed), seed=seed, num_robots=robots)
    style = np.random.default_rng([seed, 0x57E1])  # its own draws: the poses do not depend on the style
    if style.random() < float(randomize) and hasattr(built, "restyle_camera"):
        built.restyle_camera(style)
    map_x, map_y = image_maps(camera, canonical)
    identity = world == "builtin"
    images, boundary, classes = [], [], []
    try:
        while len(images) < frames:
            _scatter_robots(built, rng)
            for robot in range(robots):
                ranges, column_class = column_labels(built, robot, camera, bearings, slots)
                image = built.render(robot)
                images.append(image if identity else warp_image(image, map_x, map_y))
                boundary.append(boundary_of_ranges(ranges, bearings, camera.mount_height))
                classes.append(column_class)
    finally:
        built.close()
    count = frames
    return BoundaryFrames(np.stack(images[:count]), np.stack(boundary[:count]), np.stack(classes[:count]),
                          np.repeat(valid[None], count, 0), np.full(count, seed, dtype=np.int64))


def column_labels(built, robot: int, camera: CameraModel, bearings: np.ndarray,
                  slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The true horizontal range from ``robot``'s camera to the first obstacle along each of ``bearings`` in
    ``built`` (a world of sim/interface.py), and the model slot of the target standing there (0: a wall or a
    teammate)."""
    from spatial_memory_ros.sim.camera import RayCaster

    caster = getattr(built, "_boundary_caster", None)
    if caster is None:
        caster = built._boundary_caster = RayCaster(built.maze)
    pose = built.true_pose(robot)
    eye = Pose2D(pose.x + camera.mount_forward * math.cos(pose.theta),
                 pose.y + camera.mount_forward * math.sin(pose.theta), pose.theta)
    angles = eye.theta + bearings
    ranges = caster.cast(eye.x, eye.y, angles).distance
    names = built.class_names
    discs = [(t.x, t.y, built._oracle.target_radius) for t in built.maze.targets]
    labels = [int(slots[names.index(t.color) + 1]) for t in built.maze.targets]
    for other in range(built.num_robots):
        if other != robot:
            mate = built.true_pose(other)
            discs.append((mate.x, mate.y, built.config.robot_radius))
            labels.append(0)
    disc_range, which = disc_ranges(eye, angles, discs)
    nearer = disc_range < ranges
    column_class = np.where(nearer, np.asarray(labels + [0])[which], 0).astype(np.uint8)
    return np.minimum(ranges, disc_range), column_class


def true_column_ranges(world: str, seed: int, frames: int, size: int, camera: CameraModel,
                       geometry: BevGeometry) -> tuple[np.ndarray, np.ndarray]:
    """The true per-column ranges and object slots at the poses ``perception.frames.render_world_frames`` draws
    for the same arguments (one robot), for scoring a perfect floor-boundary prediction."""
    from spatial_memory_ros.perception.camera_adapter import world_to_slot
    from spatial_memory_ros.perception.frames import _scatter_robots
    from spatial_memory_ros.sim.interface import make_world, world_class_names

    bearings = column_bearings(geometry.image_size, geometry.fov_deg)
    slots = world_to_slot(geometry.class_names, world_class_names(world))
    rng = np.random.default_rng([seed, 0xB0A7])
    built = make_world(world, size=size, seed=seed, num_robots=1)
    ranges, classes = [], []
    try:
        for _ in range(frames):
            _scatter_robots(built, rng)
            one_range, one_class = column_labels(built, 0, camera, bearings, slots)
            ranges.append(one_range)
            classes.append(one_class)
    finally:
        built.close()
    return np.stack(ranges), np.stack(classes)
