"""Frames the BEV predictor is trained and evaluated on (numpy only): camera images with their oracle BEVs,
rendered from seeded mazes of the simulator and stored as compressed npz shards with a manifest.

The one part of perception/ that knows the simulator, which it needs only to make data: ``sim_geometry`` is the
camera and grid the simulator renders, so models trained on these frames are built for it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from spatial_memory_ros.perception.geometry import BevGeometry
from spatial_memory_ros.types import CameraModel
from spatial_memory_ros.sim.maze import CLASS_NAMES, generate_maze
from spatial_memory_ros.sim.world import World, WorldConfig
from spatial_memory_ros.types import Pose2D

TRAIN_SEED_BASE = 0
VALIDATION_SEED_BASE = 1_000_000
BENCHMARK_SEED_BASE = 2_000_000
"""Maze seeds: training data starts at 0, validation and benchmark mazes come from disjoint ranges."""

SHARD_PATTERN = "shard-{index:05d}.npz"
MANIFEST_NAME = "manifest.json"


def sim_geometry(config: WorldConfig | None = None) -> BevGeometry:
    """The simulator's camera and BEV grid (default WorldConfig) and its object classes."""
    config = config or WorldConfig()
    origin_x, origin_y = config.bev_origin
    return BevGeometry(int(config.image_size), float(config.fov_deg), float(config.view_range),
                       float(config.bev_resolution), int(config.bev_width), int(config.bev_height),
                       (float(origin_x), float(origin_y)), tuple(CLASS_NAMES))


@dataclass
class BevFrames:
    """A batch of camera images with their oracle BEVs: images (N, 64, 64, 3) uint8, occupancy (N, 32, 32) int8
    (-1 / 0 / 100), object_class (N, 32, 32) uint8 and the seed of the maze each frame came from (N,) int64."""

    images: np.ndarray
    occupancy: np.ndarray
    object_class: np.ndarray
    maze_seeds: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.images)
        if not (len(self.occupancy) == len(self.object_class) == len(self.maze_seeds) == count):
            raise ValueError("images, occupancy, object_class and maze_seeds must have the same length")

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def concatenate(cls, parts: Sequence[BevFrames]) -> BevFrames:
        """All frames of ``parts`` in order."""
        if not parts:
            raise ValueError("nothing to concatenate")
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in
                     ("images", "occupancy", "object_class", "maze_seeds")))


def maze_size_for_seed(seed: int) -> int:
    """The maze size (9..15) used for a data seed: cycles through all sizes so each is equally common."""
    return 9 + int(seed) % 7


def render_maze_frames(seed: int, frames: int, walker_fraction: float = 0.5, num_robots: int = 3,
                       config: WorldConfig | None = None) -> BevFrames:
    """``frames`` images and oracle BEVs from the maze of ``seed`` (size ``maze_size_for_seed(seed)``).

    A ``walker_fraction`` of them come from robots driven by RandomWalker (the poses the running system sees:
    along corridors, near walls), the rest from uniformly random free poses and headings. ``num_robots`` robots
    share the maze, so teammates appear in some images as they do in a team run.
    """
    from spatial_memory_ros.behaviour.walker import RandomWalker

    rng = np.random.default_rng([seed, 0xBE7])
    world = World(generate_maze(maze_size_for_seed(seed), seed), num_robots=num_robots, seed=seed,
                  config=config or WorldConfig())
    walker_frames = int(round(frames * walker_fraction))
    images, occupancy, objects = [], [], []
    walkers = [RandomWalker(seed=int(rng.integers(2**31)) + k) for k in range(num_robots)]
    sample_every = 4
    steps = 0
    while len(images) < walker_frames:
        commands = [w.command(world.oracle_bev(k), world.odom_twist(k)) for k, w in enumerate(walkers)]
        world.step(commands)
        steps += 1
        if steps % sample_every == 0:
            _record(world, range(num_robots), images, occupancy, objects)
    while len(images) < frames:
        _scatter_robots(world, rng)
        _record(world, range(num_robots), images, occupancy, objects)
    count = frames
    return BevFrames(np.stack(images[:count]), np.stack(occupancy[:count]), np.stack(objects[:count]),
                     np.full(count, seed, dtype=np.int64))


def _record(world: World, robots: range, images: list, occupancy: list, objects: list) -> None:
    for robot in robots:
        bev = world.oracle_bev(robot)
        images.append(world.render(robot))
        occupancy.append(bev.occupancy)
        objects.append(bev.object_class)


def _scatter_robots(world: World, rng: np.random.Generator) -> None:
    """Move every robot to a uniformly random collision-free pose (an overlap just means another draw)."""
    maze, radius = world.maze, world.config.robot_radius
    free = maze.free_cells()
    for robot in range(world.num_robots):
        for _ in range(100):
            row, col = free[rng.integers(len(free))]
            x = col * maze.cell_size + rng.uniform(radius, maze.cell_size - radius)
            y = row * maze.cell_size + rng.uniform(radius, maze.cell_size - radius)
            try:
                world.set_pose(robot, Pose2D(float(x), float(y), float(rng.uniform(-math.pi, math.pi))))
                break
            except ValueError:
                continue


def write_shard(path: str | Path, frames: BevFrames) -> Path:
    """Write frames to one compressed npz shard at ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        np.savez_compressed(file, images=frames.images.astype(np.uint8), occupancy=frames.occupancy.astype(np.int8),
                            object_class=frames.object_class.astype(np.uint8),
                            maze_seeds=frames.maze_seeds.astype(np.int64))
    return path


def read_shard(path: str | Path) -> BevFrames:
    """Read one shard written by ``write_shard``; raises ValueError naming the file if it is not one."""
    path = Path(path)
    try:
        with np.load(path) as data:
            frames = BevFrames(data["images"], data["occupancy"], data["object_class"], data["maze_seeds"])
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"{path} is not a BEV data shard ({error}); write shards with `spatial-memory data bev`")
    if frames.images.shape[1:] != (64, 64, 3) or frames.images.dtype != np.uint8:
        raise ValueError(f"{path}: images must be (N, 64, 64, 3) uint8, got {frames.images.shape} "
                         f"{frames.images.dtype}")
    return frames


def shard_paths(directory: str | Path) -> list[Path]:
    """The shards in a data directory, in order; raises FileNotFoundError if there are none."""
    directory = Path(directory)
    paths = sorted(directory.glob("shard-*.npz"))
    if not paths:
        raise FileNotFoundError(f"no BEV data shards (shard-*.npz) in {directory}; "
                                f"write some with `spatial-memory data bev --out {directory}`")
    return paths


def read_shards(directory: str | Path) -> BevFrames:
    """Every shard of a data directory, concatenated."""
    return BevFrames.concatenate([read_shard(path) for path in shard_paths(directory)])


def read_manifest(directory: str | Path) -> dict:
    """The manifest.json of a data directory ({} if it has none)."""
    path = Path(directory) / MANIFEST_NAME
    return json.loads(path.read_text()) if path.exists() else {}


def maze_seed_range(first_seed: int, mazes: int) -> range:
    """The maze seeds of a data set of ``mazes`` mazes starting at ``first_seed``."""
    return range(int(first_seed), int(first_seed) + int(mazes))


def frames_for_seeds(seeds: Sequence[int], frames_per_maze: int, walker_fraction: float = 0.5) -> BevFrames:
    """Frames from each maze seed in turn (validation and benchmark sets are made this way, in memory)."""
    return BevFrames.concatenate([render_maze_frames(seed, frames_per_maze, walker_fraction) for seed in seeds])


MEMORY_MAZE_SIZES = (9, 11, 13, 15)


def world_size_for_seed(world: str, seed: int) -> int:
    """The maze size a data seed uses in ``world``: the built-in 9..15 in turn, Memory-Maze's 9, 11, 13, 15."""
    if world == "memory_maze":
        return MEMORY_MAZE_SIZES[int(seed) % len(MEMORY_MAZE_SIZES)]
    return maze_size_for_seed(seed)


def render_world_frames(world: str, seed: int, frames: int, size: int | None = None,
                        num_robots: int = 1) -> BevFrames:
    """``frames`` images and the world's own oracle BEVs from uniformly random free poses of the maze ``seed``
    (size ``world_size_for_seed`` unless given) of any world of sim/interface.py (``builtin`` or
    ``memory_maze``). Each world's oracle uses its own camera's view cone (Memory-Maze: 80 deg) on the same
    32 x 32 grid of 0.25 m. Raises WorldUnavailable when the world cannot start here."""
    from spatial_memory_ros.sim.interface import make_world

    rng = np.random.default_rng([seed, 0xB0A7])
    built = make_world(world, size=size or world_size_for_seed(world, seed), seed=seed, num_robots=num_robots)
    images, occupancy, objects = [], [], []
    try:
        while len(images) < frames:
            _scatter_robots(built, rng)
            _record(built, range(num_robots), images, occupancy, objects)
    finally:
        built.close()
    return BevFrames(np.stack(images[:frames]), np.stack(occupancy[:frames]), np.stack(objects[:frames]),
                     np.full(frames, seed, dtype=np.int64))


def world_camera(world: str) -> CameraModel:
    """The camera of a world's robots (types.CameraModel), without building the world."""
    if world == "memory_maze":
        from spatial_memory_ros.sim.memory_maze import camera_model

        return camera_model()
    if world == "builtin":
        from spatial_memory_ros.sim.camera import CAMERA_HEIGHT_CELLS

        config = WorldConfig()
        return CameraModel.pinhole(config.image_size, config.image_size, config.fov_deg, CAMERA_HEIGHT_CELLS * 1.0)
    raise ValueError(f"unknown world '{world}'")


def render_canonical_frames(world: str, seed: int, frames: int, geometry: BevGeometry,
                            canonical_height: float = 0.5, size: int | None = None) -> BevFrames:
    """Training frames of ``world`` for a model of ``geometry`` (issue 12): each image re-projected to the
    model's canonical camera (perception/camera_adapter.py) and its oracle BEV drawn in the canonical grid, i.e.
    the world shrunk by canonical height / camera height about the camera (cells of bev_resolution / scale real
    metres from the camera's position, the camera's own view cone), objects in the model's class slots. For
    the built-in world this is ``render_world_frames`` itself."""
    from dataclasses import replace

    from spatial_memory_ros.perception.camera_adapter import image_maps, warp_image, world_to_slot
    from spatial_memory_ros.sim.camera import RayCaster
    from spatial_memory_ros.sim.interface import make_world, world_class_names
    from spatial_memory_ros.sim.oracle import BevOracle

    camera = world_camera(world)
    canonical = CameraModel.pinhole(geometry.image_size, geometry.image_size, geometry.fov_deg, canonical_height)
    names = world_class_names(world)
    slots = world_to_slot(geometry.class_names, names)
    rng = np.random.default_rng([seed, 0xB0A7])
    built = make_world(world, size=size or world_size_for_seed(world, seed), seed=seed, num_robots=1)
    scale = canonical.mount_height / camera.mount_height
    config = replace(built.config, bev_resolution=geometry.bev_resolution / scale,
                     view_range=geometry.view_range / scale, fov_deg=camera.horizontal_fov_deg,
                     bev_width=geometry.bev_width, bev_height=geometry.bev_height)
    oracle = BevOracle(built.maze, config, names, built._oracle.target_radius)
    caster = RayCaster(built.maze)
    map_x, map_y = image_maps(camera, canonical)
    identity = camera == canonical
    images, occupancy, objects = [], [], []
    try:
        while len(images) < frames:
            _scatter_robots(built, rng)
            pose = built.true_pose(0)
            eye = Pose2D(pose.x + camera.mount_forward * math.cos(pose.theta),
                         pose.y + camera.mount_forward * math.sin(pose.theta), pose.theta)
            bev = oracle.compute(eye, caster.cast(eye.x, eye.y, eye.theta + oracle.ray_angles).distance,
                                 built.maze.targets)
            image = built.render(0)
            images.append(image if identity else warp_image(image, map_x, map_y))
            occupancy.append(bev.occupancy)
            objects.append(slots[bev.object_class])
    finally:
        built.close()
    return BevFrames(np.stack(images), np.stack(occupancy), np.stack(objects), np.full(frames, seed, np.int64))
