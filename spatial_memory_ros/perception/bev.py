"""Bird's-eye-view (BEV) prediction from one egocentric camera image (numpy/torch, no ROS).

After SSM-PC's predictive BEV: a strided conv encoder over the 64x64 RGB image, a transformer over the image's
columns (each column is a bearing), a transformer decoder whose learned queries each own one 4x4 patch of the
egocentric grid, and an upsampling head. One addition of ours: each BEV cell also reads the column token of its own
bearing directly (a fixed interpolation given by the pinhole camera), which in short trials on 1 CPU thread gave
much better walls for the same number of steps. It predicts the oracle BEV of ``sim/world.py``: per cell unseen /
free / wall, and the colour class of any target object. It is sized for 2 CPU cores (see ``BevModelConfig``).

Also here: the frames the model is trained on (rendered from seeded mazes, stored as compressed npz shards), the
metrics (free and wall IoU, per-class accuracy of object cells, object detection precision and recall), and
``BevPredictor``, the inference API the ROS node uses.

torch is imported only where a model is built or run, so data generation and metrics need numpy alone.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from spatial_memory_ros.sim.maze import CLASS_NAMES, generate_maze
from spatial_memory_ros.sim.world import World, WorldConfig
from spatial_memory_ros.types import BevGrid, Pose2D

if TYPE_CHECKING:
    import torch

UNSEEN, FREE, WALL = 0, 1, 2
"""Occupancy labels the model predicts; BevGrid uses -1 / 0 / 100 for the same three."""
OCCUPANCY_VALUES = np.array([-1, 0, 100], dtype=np.int8)
NUM_OBJECT_LABELS = len(CLASS_NAMES) + 1

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "models" / "bev.pt"
CHECKPOINT_FORMAT = "spatial_memory_ros.bev"
CHECKPOINT_VERSION = 1
TRAIN_COMMAND = ("spatial-memory data bev --mazes 300 --frames-per-maze 160 --out runs/bev-data && "
                 "spatial-memory train bev --data runs/bev-data --out runs/bev-1 --steps 3600 && "
                 "spatial-memory train bev --data runs/bev-data --out runs/bev-2 --init runs/bev-1/best.pt "
                 "--depth-bins 36 --lr 0.001 --steps 5000 --val-every 250 --export {path}")
"""How the shipped checkpoint was made (models/bev.md): a first run, then a second that goes on from its weights
with the depth path added. Named in every checkpoint error."""

TRAIN_SEED_BASE = 0
VALIDATION_SEED_BASE = 1_000_000
BENCHMARK_SEED_BASE = 2_000_000
"""Maze seeds: training data starts at 0, validation and benchmark mazes come from disjoint ranges."""

SHARD_PATTERN = "shard-{index:05d}.npz"
MANIFEST_NAME = "manifest.json"


class CheckpointError(RuntimeError):
    """A BEV checkpoint is missing, unreadable or does not fit this code; the message says how to train one."""


# ------------------------------------------------------------------------------------------- labels


def occupancy_to_labels(occupancy: np.ndarray) -> np.ndarray:
    """BevGrid occupancy (-1 / 0 / 100) to model labels (UNSEEN / FREE / WALL), uint8 of the same shape."""
    occupancy = np.asarray(occupancy)
    labels = np.full(occupancy.shape, UNSEEN, dtype=np.uint8)
    labels[occupancy == 0] = FREE
    labels[occupancy == 100] = WALL
    return labels


def labels_to_occupancy(labels: np.ndarray) -> np.ndarray:
    """Model labels (UNSEEN / FREE / WALL) to BevGrid occupancy (-1 / 0 / 100), int8."""
    return OCCUPANCY_VALUES[np.asarray(labels, dtype=np.intp)]


def view_cone_mask(config: WorldConfig | None = None) -> np.ndarray:
    """(bev_height, bev_width) bool: the cells whose centres lie inside the camera's field of view and range.

    Cells outside it are unseen in every oracle BEV, so predictions are forced to unseen there.
    """
    config = config or WorldConfig()
    origin_x, origin_y = config.bev_origin
    iy, ix = np.mgrid[0:config.bev_height, 0:config.bev_width]
    x = origin_x + (ix + 0.5) * config.bev_resolution
    y = origin_y + (iy + 0.5) * config.bev_resolution
    inside_fov = np.abs(np.arctan2(y, x)) <= math.radians(config.fov_deg) / 2
    return inside_fov & (np.hypot(x, y) <= config.view_range)


# --------------------------------------------------------------------------------------------- data


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


# ------------------------------------------------------------------------------------------ metrics


@dataclass
class BevMetrics:
    """Accumulates BEV prediction quality over frames; ``summary()`` gives the numbers.

    Free and wall IoU are pooled over all frames (intersection and union cell counts summed) and counted over the
    whole grid: outside the camera's view both prediction and truth are unseen, so this is the IoU inside the
    visible region. Object cells: per class, the share of true cells of that class predicted as that class.
    Detections: each 8-connected blob of one predicted colour is a detection; it matches a true object of the
    same colour whose centroid lies within one cell of its own along both axes.
    """

    intersection: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))
    union: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))
    object_cells: np.ndarray = field(default_factory=lambda: np.zeros(NUM_OBJECT_LABELS, dtype=np.int64))
    object_hits: np.ndarray = field(default_factory=lambda: np.zeros(NUM_OBJECT_LABELS, dtype=np.int64))
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    frames: int = 0

    def update(self, predicted_occupancy: np.ndarray, predicted_objects: np.ndarray, true_occupancy: np.ndarray,
               true_objects: np.ndarray) -> None:
        """Add a batch: occupancy as BevGrid values (-1 / 0 / 100), objects as class ids, all (N, H, W)."""
        predicted_occupancy, true_occupancy = np.asarray(predicted_occupancy), np.asarray(true_occupancy)
        predicted_objects, true_objects = np.asarray(predicted_objects), np.asarray(true_objects)
        if predicted_occupancy.ndim == 2:
            predicted_occupancy, predicted_objects = predicted_occupancy[None], predicted_objects[None]
            true_occupancy, true_objects = true_occupancy[None], true_objects[None]
        for label, value in ((FREE, 0), (WALL, 100)):
            predicted, true = predicted_occupancy == value, true_occupancy == value
            self.intersection[label] += int(np.count_nonzero(predicted & true))
            self.union[label] += int(np.count_nonzero(predicted | true))
        for label in range(1, NUM_OBJECT_LABELS):
            true = true_objects == label
            self.object_cells[label] += int(np.count_nonzero(true))
            self.object_hits[label] += int(np.count_nonzero(true & (predicted_objects == label)))
        for predicted, true in zip(predicted_objects, true_objects):
            tp, fp, fn = match_objects(predicted, true)
            self.true_positives += tp
            self.false_positives += fp
            self.false_negatives += fn
        self.frames += len(true_occupancy)

    def summary(self) -> dict:
        """free_iou, wall_iou, object precision / recall / f1, per-class object cell accuracy, frames."""
        precision = _ratio(self.true_positives, self.true_positives + self.false_positives)
        recall = _ratio(self.true_positives, self.true_positives + self.false_negatives)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        per_class = {name: _ratio(self.object_hits[k + 1], self.object_cells[k + 1])
                     for k, name in enumerate(CLASS_NAMES) if self.object_cells[k + 1] > 0}
        return {
            "free_iou": _ratio(self.intersection[FREE], self.union[FREE]),
            "wall_iou": _ratio(self.intersection[WALL], self.union[WALL]),
            "object_precision": precision,
            "object_recall": recall,
            "object_f1": f1,
            "object_cell_accuracy": _ratio(self.object_hits.sum(), self.object_cells.sum()),
            "object_cell_accuracy_per_class": per_class,
            "objects_true": self.true_positives + self.false_negatives,
            "objects_detected": self.true_positives + self.false_positives,
            "frames": self.frames,
        }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator > 0 else float("nan")


def object_blobs(object_class: np.ndarray) -> list[tuple[int, float, float]]:
    """Each 8-connected blob of one object class in a (H, W) grid as (class id, centroid iy, centroid ix)."""
    blobs = []
    labelled = np.zeros(object_class.shape, dtype=bool)
    height, width = object_class.shape
    for start_y, start_x in np.argwhere(object_class > 0):
        if labelled[start_y, start_x]:
            continue
        label = object_class[start_y, start_x]
        stack, cells = [(start_y, start_x)], []
        labelled[start_y, start_x] = True
        while stack:
            y, x = stack.pop()
            cells.append((y, x))
            for ny in range(max(y - 1, 0), min(y + 2, height)):
                for nx in range(max(x - 1, 0), min(x + 2, width)):
                    if not labelled[ny, nx] and object_class[ny, nx] == label:
                        labelled[ny, nx] = True
                        stack.append((ny, nx))
        centroid = np.mean(cells, axis=0)
        blobs.append((int(label), float(centroid[0]), float(centroid[1])))
    return blobs


def match_objects(predicted: np.ndarray, true: np.ndarray, tolerance_cells: float = 1.0) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of predicted object blobs against the true ones.

    A predicted blob matches an unmatched true blob of the same class whose centroid is within
    ``tolerance_cells`` along both axes; each true blob matches at most one prediction (nearest first).
    """
    predicted_blobs, true_blobs = object_blobs(predicted), object_blobs(true)
    pairs = sorted((max(abs(py - ty), abs(px - tx)), p, t)
                   for p, (pc, py, px) in enumerate(predicted_blobs)
                   for t, (tc, ty, tx) in enumerate(true_blobs) if pc == tc)
    used_predicted, used_true = set(), set()
    for distance, p, t in pairs:
        if distance <= tolerance_cells and p not in used_predicted and t not in used_true:
            used_predicted.add(p)
            used_true.add(t)
    matched = len(used_true)
    return matched, len(predicted_blobs) - matched, len(true_blobs) - matched


# -------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class BevModelConfig:
    """Layer sizes of BevNet, chosen so it runs at well over 100 frames/s in batches of 3 on 2 CPU threads."""

    conv_channels: tuple[int, ...] = (24, 32, 48, 64)
    columns: int = 32
    d_model: int = 64
    heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    feedforward: int = 128
    query_grid: int = 8
    head_channels: int = 32
    image_size: int = 64
    bev_size: int = 32
    depth_bins: int = 0
    """Bins of the per-column depth distribution (0: no depth path). With K > 0 every column token also predicts a
    distribution of the distance to the first wall along its bearing over K bins up to ``DEPTH_RANGE_MARGIN`` past
    the view range, and each cell reads three numbers from the distributions of its bearing: the probability that
    the wall is nearer than the cell, that it lies within one cell of the cell's range, and that it is farther."""

    @classmethod
    def from_dict(cls, values: dict) -> BevModelConfig:
        """The config stored in a checkpoint (lists back to tuples; checkpoints older than the depth path have
        none)."""
        values = dict(values)
        values["conv_channels"] = tuple(values["conv_channels"])
        values.setdefault("depth_bins", 0)
        return cls(**values)


DEPTH_RANGE_MARGIN = 1.0
"""Metres past the camera's view range that the depth path's last bin reaches (farther walls fall in it)."""


def build_model(config: BevModelConfig | None = None, world: WorldConfig | None = None) -> torch.nn.Module:
    """A fresh BevNet for the camera and grid of ``world`` (default WorldConfig); torch is imported here."""
    return _model_classes()["BevNet"](config or BevModelConfig(), world or WorldConfig())


def cell_ranges(config: WorldConfig | None = None) -> np.ndarray:
    """(H * W,) float32: the distance in metres from the camera to each BEV cell's centre (along its bearing)."""
    config = config or WorldConfig()
    origin_x, origin_y = config.bev_origin
    iy, ix = np.mgrid[0:config.bev_height, 0:config.bev_width]
    x = origin_x + (ix + 0.5) * config.bev_resolution
    y = origin_y + (iy + 0.5) * config.bev_resolution
    return np.hypot(x, y).reshape(-1).astype(np.float32)


def column_lift_matrix(columns: int, config: WorldConfig | None = None) -> np.ndarray:
    """(columns, H * W) float32: how each BEV cell's feature mixes the column tokens along its bearing.

    A cell at bearing phi (left positive) projects to image column u = W/2 - f tan(phi) of the pinhole camera;
    its weights interpolate linearly between the two nearest of ``columns`` evenly spaced tokens. Cells outside the
    view cone get all-zero weights.
    """
    config = config or WorldConfig()
    focal = 0.5 * config.image_size / math.tan(math.radians(config.fov_deg) / 2)
    origin_x, origin_y = config.bev_origin
    iy, ix = np.mgrid[0:config.bev_height, 0:config.bev_width]
    x = origin_x + (ix + 0.5) * config.bev_resolution
    y = origin_y + (iy + 0.5) * config.bev_resolution
    pixel = 0.5 * config.image_size - focal * y / np.maximum(x, 1e-6)
    position = np.clip(pixel / config.image_size * columns - 0.5, 0, columns - 1).reshape(-1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, columns - 1)
    share = (position - low).astype(np.float32)
    weights = np.zeros((columns, position.size), dtype=np.float32)
    cells = np.arange(position.size)
    weights[low, cells] += 1 - share
    weights[high, cells] += share
    weights[:, ~view_cone_mask(config).reshape(-1)] = 0.0
    return weights


def _depth_gather(columns: int, bins: int, bin_width: float,
                  config: WorldConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices into a flattened (columns, bins + 1) cumulative depth distribution and their weights, each
    (3, 4, H * W): for each cell, its range less one cell, its range and its range plus one cell, read from the two
    columns of its bearing (``column_lift_matrix``) at the two bin edges around that distance."""
    config = config or WorldConfig()
    lift = column_lift_matrix(columns, config)  # (columns, HW), at most two non-zero weights per cell
    order = np.argsort(-lift, axis=0, kind="stable")[:2]  # (2, HW)
    column_weight = np.take_along_axis(lift, order, axis=0)
    ranges = cell_ranges(config)
    index = np.zeros((3, 4, ranges.size), dtype=np.int64)
    weight = np.zeros((3, 4, ranges.size), dtype=np.float32)
    for q, offset in enumerate((-config.bev_resolution, 0.0, config.bev_resolution)):
        position = np.clip((ranges + offset) / bin_width, 0, bins)
        low = np.minimum(np.floor(position).astype(np.int64), bins - 1)
        share = (position - low).astype(np.float32)
        for j in range(2):
            for k, (edge, edge_weight) in enumerate(((low, 1 - share), (low + 1, share))):
                index[q, 2 * j + k] = order[j] * (bins + 1) + edge
                weight[q, 2 * j + k] = column_weight[j] * edge_weight
    return index, weight


_CLASSES: dict = {}


def _model_classes() -> dict:
    """Define the torch modules on first use so importing this file does not import torch."""
    if _CLASSES:
        return _CLASSES
    import torch
    from torch import nn

    class ConvBlock(nn.Sequential):
        def __init__(self, inputs: int, outputs: int, stride: tuple[int, int], kernel: int = 3) -> None:
            super().__init__(nn.Conv2d(inputs, outputs, kernel, stride=stride, padding=kernel // 2, bias=False),
                             nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))

    class BevNet(nn.Module):
        """Image -> column tokens -> transformer -> BEV cells, by geometry and by learned queries -> logits.

        The encoder halves the image height four times and its width once, leaving one token per two pixel
        columns (2.8 degrees of bearing); a transformer encoder mixes them. Two paths then fill the 32x32 grid:
        each cell takes the token of its own bearing (a fixed interpolation given by the camera) plus a learned
        embedding of its place, and a transformer decoder's learned queries, one per 4x4 patch, attend to all
        tokens and are unfolded into their patches (SSM-PC's decoder). With ``depth_bins`` > 0 each cell also gets
        three depth features from its bearing's predicted wall-distance distribution (``_depth_features``). A small
        conv head turns the sum into (B, 3 + 7, 32, 32) logits: occupancy (unseen, free, wall), then object
        (none + 6 colours).
        """

        def __init__(self, config: BevModelConfig, world: WorldConfig) -> None:
            super().__init__()
            self.config = config
            channels = (3, *config.conv_channels)
            width_strides = _width_strides(config.image_size, config.columns, len(config.conv_channels))
            self.encoder = nn.Sequential(*(ConvBlock(channels[k], channels[k + 1], (2, width_strides[k]))
                                           for k in range(len(width_strides))))
            rows_left = config.image_size // 2 ** len(width_strides)
            d_model, size = config.d_model, config.bev_size
            self.column_projection = nn.Linear(channels[-1] * rows_left, d_model)
            self.column_position = nn.Parameter(torch.randn(1, config.columns, d_model) * 0.02)
            layer_sizes = dict(d_model=d_model, nhead=config.heads, dim_feedforward=config.feedforward,
                               dropout=0.0, batch_first=True, norm_first=True)
            self.column_encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer_sizes),
                                                        config.encoder_layers, norm=nn.LayerNorm(d_model),
                                                        enable_nested_tensor=False)
            self.query_decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer_sizes),
                                                       config.decoder_layers, norm=nn.LayerNorm(d_model))
            self.queries = nn.Parameter(torch.randn(1, config.query_grid ** 2, d_model) * 0.02)
            self.patch = size // config.query_grid
            self.to_patches = nn.Linear(d_model, d_model * self.patch ** 2)
            self.register_buffer("lift", torch.from_numpy(column_lift_matrix(config.columns, world)),
                                 persistent=False)
            self.cell_embedding = nn.Parameter(torch.randn(1, d_model, size, size) * 0.02)
            hidden = config.head_channels
            extra = 0
            if config.depth_bins:
                self.depth = nn.Linear(d_model, config.depth_bins)
                bin_width = (world.view_range + DEPTH_RANGE_MARGIN) / config.depth_bins
                index, weight = _depth_gather(config.columns, config.depth_bins, bin_width, world)
                self.register_buffer("depth_index", torch.from_numpy(index), persistent=False)
                self.register_buffer("depth_weight", torch.from_numpy(weight), persistent=False)
                extra = 3
            self.head = nn.Sequential(
                nn.Conv2d(d_model + extra, hidden, 1), nn.ReLU(inplace=True),
                nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(hidden, 3 + NUM_OBJECT_LABELS, 1))

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            """images: (B, 3, 64, 64) float in [0, 1] -> (B, 10, 32, 32) logits."""
            features = self.encoder(images - 0.5)
            batch, channels, rows, columns = features.shape
            tokens = features.permute(0, 3, 1, 2).reshape(batch, columns, channels * rows)
            tokens = self.column_encoder(self.column_projection(tokens) + self.column_position)
            size, grid = self.config.bev_size, self.config.query_grid
            lifted = (tokens.transpose(1, 2) @ self.lift).reshape(batch, -1, size, size)
            decoded = self.query_decoder(self.queries.expand(batch, -1, -1), tokens)
            patches = self.to_patches(decoded).transpose(1, 2).reshape(batch, -1, grid, grid)
            cells = lifted + nn.functional.pixel_shuffle(patches, self.patch) + self.cell_embedding
            if self.config.depth_bins:
                cells = torch.cat([cells, self._depth_features(tokens).reshape(batch, 3, size, size)], dim=1)
            return self.head(cells)

        def _depth_features(self, tokens: torch.Tensor) -> torch.Tensor:
            """(B, 3, H * W): P(wall nearer than the cell), P(wall within one cell of it), P(wall farther)."""
            probabilities = torch.softmax(self.depth(tokens), dim=-1)  # (B, columns, K)
            cumulative = nn.functional.pad(probabilities.cumsum(-1), (1, 0))  # (B, columns, K + 1): P(depth < k)
            # P(depth < range - 1 cell, range, range + 1 cell) of each cell, interpolated between its bearing's two
            # nearest columns and two nearest bin edges: (B, 3, HW)
            cdf = (cumulative.flatten(1)[:, self.depth_index] * self.depth_weight).sum(2)
            inside = self.depth_weight[2].sum(0)  # 1 inside the view cone, 0 outside
            return torch.stack([cdf[:, 1], cdf[:, 2] - cdf[:, 0], inside - cdf[:, 2]], dim=1)

    _CLASSES.update(BevNet=BevNet)
    return _CLASSES


def _width_strides(image_size: int, columns: int, layers: int) -> list[int]:
    """Width strides (1 or 2) of the encoder's layers, earliest first, that take ``image_size`` to ``columns``."""
    halvings = int(round(math.log2(image_size / columns)))
    if 2 ** halvings * columns != image_size or not 0 <= halvings <= layers:
        raise ValueError(f"columns must be image_size / 2**k with k <= {layers}, got {columns} for {image_size}")
    return [2] * halvings + [1] * (layers - halvings)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, 64, 64, 3) uint8 -> (B, 3, 64, 64) float32 in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


@dataclass(frozen=True)
class DecisionBias:
    """Offsets added to the wall logit and to every object-colour logit before the argmax.

    Training leaves them at 0; ``calibrate`` picks them on validation frames (the rare classes are under-called
    by a plain argmax), and the checkpoint carries them to the predictor.
    """

    wall: float = 0.0
    object: float = 0.0


def decode_logits(logits: torch.Tensor, view_mask: np.ndarray,
                  bias: DecisionBias = DecisionBias()) -> tuple[np.ndarray, np.ndarray]:
    """(B, 10, H, W) logits -> occupancy (B, H, W) int8 (-1 / 0 / 100) and object class (B, H, W) uint8.

    Cells outside ``view_mask`` are unseen; objects are kept only on cells predicted free (as in the oracle).
    """
    values = logits.numpy()  # numpy's argmax over channels is many times faster than torch's on CPU
    occupancy_logits, object_logits = values[:, :3].copy(), values[:, 3:].copy()
    occupancy_logits[:, WALL] += bias.wall
    object_logits[:, 1:] += bias.object
    labels = occupancy_logits.argmax(axis=1).astype(np.uint8)
    objects = object_logits.argmax(axis=1).astype(np.uint8)
    labels[:, ~view_mask] = UNSEEN
    objects[labels != FREE] = 0
    return labels_to_occupancy(labels), objects


# ------------------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class BevLossWeights:
    """Weights of the loss terms: cross-entropy of occupancy and of object class inside the view cone, and a
    total-variation penalty on the free-space probability (SSM-PC's smoothness term)."""

    wall: float = 1.5
    object_class: float = 1.0
    object_present: float = 8.0
    total_variation: float = 0.05
    wall_range: float = 0.0
    """Extra weight of true wall cells per metre of range: a wall cell r metres away counts
    ``wall * (1 + wall_range * r)``. Far walls are few and hard (depth errors along the ray), so they are otherwise
    a small part of the loss."""


def training_tensors(frames: BevFrames) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (N, 64, 64, 3) uint8, occupancy labels (N, 32, 32) int64 and object labels (N, 32, 32) int64."""
    import torch

    return (torch.from_numpy(np.ascontiguousarray(frames.images)),
            torch.from_numpy(occupancy_to_labels(frames.occupancy).astype(np.int64)),
            torch.from_numpy(frames.object_class.astype(np.int64)))


def mirror_left_right(images: torch.Tensor, occupancy: torch.Tensor, objects: torch.Tensor,
                      flip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mirror the frames where ``flip`` (N,) is true: image columns reversed, BEV y (left) negated.

    The camera's field of view and the BEV grid are symmetric about the heading, so a mirrored frame is a valid
    frame of a mirrored maze. images (N, H, W, 3); occupancy and objects (N, 32, 32) indexed [iy, ix].
    """
    images, occupancy, objects = images.clone(), occupancy.clone(), objects.clone()
    images[flip] = images[flip].flip(2)
    occupancy[flip] = occupancy[flip].flip(1)
    objects[flip] = objects[flip].flip(1)
    return images, occupancy, objects


def bev_loss(logits: torch.Tensor, occupancy: torch.Tensor, objects: torch.Tensor, view_mask: torch.Tensor,
             weights: BevLossWeights = BevLossWeights()) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of a batch and its parts. logits (N, 10, H, W); labels (N, H, W) int64; view_mask (H, W)."""
    import torch
    from torch.nn import functional

    occupancy_weight = torch.tensor([1.0, 1.0, weights.wall], device=logits.device)
    object_weight = torch.full((NUM_OBJECT_LABELS,), weights.object_present, device=logits.device)
    object_weight[0] = 1.0
    mask = view_mask.to(logits.dtype)
    cells = mask.sum() * len(logits)
    cell_weight = mask
    if weights.wall_range:
        ranges = torch.from_numpy(cell_ranges()).reshape(mask.shape).to(logits.device)
        cell_weight = mask * torch.where(occupancy == WALL, 1 + weights.wall_range * ranges, 1.0)
    occupancy_term = (functional.cross_entropy(logits[:, :3], occupancy, weight=occupancy_weight,
                                               reduction="none") * cell_weight).sum() / cells
    object_term = (functional.cross_entropy(logits[:, 3:], objects, weight=object_weight,
                                            reduction="none") * mask).sum() / cells
    free = torch.softmax(logits[:, :3], dim=1)[:, FREE]
    variation = ((free[:, 1:] - free[:, :-1]).abs().mean() + (free[:, :, 1:] - free[:, :, :-1]).abs().mean())
    loss = occupancy_term + weights.object_class * object_term + weights.total_variation * variation
    return loss, {"occupancy": occupancy_term.item(), "object": object_term.item(), "tv": variation.item()}


def predict_logits(model: torch.nn.Module, images: np.ndarray, batch_size: int = 64) -> torch.Tensor:
    """Logits of ``model`` for (N, 64, 64, 3) uint8 images, in batches, without gradients; model mode unchanged."""
    import torch

    was_training = model.training
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model(images_to_tensor(images[k:k + batch_size]))
                            for k in range(0, len(images), batch_size)])
    model.train(was_training)
    return logits


def metrics_of_logits(logits: torch.Tensor, frames: BevFrames, bias: DecisionBias = DecisionBias()) -> dict:
    """BevMetrics summary of precomputed logits against the frames' oracle BEVs."""
    metrics = BevMetrics()
    metrics.update(*decode_logits(logits, view_cone_mask(), bias), frames.occupancy, frames.object_class)
    return metrics.summary()


def evaluate(model: torch.nn.Module, frames: BevFrames, bias: DecisionBias = DecisionBias()) -> dict:
    """BevMetrics summary of ``model`` (a BevNet) on ``frames``."""
    return metrics_of_logits(predict_logits(model, frames.images), frames, bias)


def calibrate(model: torch.nn.Module, frames: BevFrames,
              candidates: Sequence[float] = (-3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 2)) -> tuple[DecisionBias, dict]:
    """The decision biases that maximise free + wall IoU (wall bias) and object F1 (object bias) on ``frames``,
    and the metrics they give. Use validation frames, never the benchmark's."""
    logits = predict_logits(model, frames.images)

    def occupancy_score(wall: float) -> float:
        summary = metrics_of_logits(logits, frames, DecisionBias(wall=wall))
        return summary["free_iou"] + summary["wall_iou"]

    wall = max(candidates, key=occupancy_score)
    objects = max(candidates, key=lambda b: _f1(metrics_of_logits(logits, frames, DecisionBias(wall, b))))
    bias = DecisionBias(wall=float(wall), object=float(objects))
    return bias, metrics_of_logits(logits, frames, bias)


def _f1(summary: dict) -> float:
    return summary["object_f1"]


def headline_score(summary: dict) -> float:
    """One number to pick the best checkpoint by: the mean of free IoU, wall IoU and object F1."""
    values = [summary["free_iou"], summary["wall_iou"], summary["object_f1"]]
    return float(np.mean([0.0 if math.isnan(v) else v for v in values]))


# ----------------------------------------------------------------------------------------- checkpoint


def geometry_of(config: WorldConfig | None = None) -> dict:
    """The sensor and grid geometry a checkpoint was trained for; loading checks it against the running code."""
    config = config or WorldConfig()
    return {"image_size": int(config.image_size), "fov_deg": float(config.fov_deg),
            "view_range": float(config.view_range), "bev_resolution": float(config.bev_resolution),
            "bev_width": int(config.bev_width), "bev_height": int(config.bev_height),
            "bev_origin": [float(v) for v in config.bev_origin], "class_names": list(CLASS_NAMES)}


def save_checkpoint(path: str | Path, model: torch.nn.Module, info: dict | None = None,
                    bias: DecisionBias = DecisionBias()) -> Path:
    """Write weights, layer sizes, geometry, decision biases and ``info`` (data, command, metrics) to ``path``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
               "model_config": asdict(model.config), "geometry": geometry_of(),
               "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
               "decision_bias": asdict(bias), "info": json.loads(json.dumps(info or {}))}
    torch.save(payload, path)
    return path


def load_model(path: str | Path = DEFAULT_CHECKPOINT) -> tuple[torch.nn.Module, dict, DecisionBias]:
    """The BevNet stored at ``path`` (eval mode), the checkpoint's info dict and its decision biases.

    Raises CheckpointError naming the file and the commands that train one if the file is missing, is not a
    BEV checkpoint, or was made for other layer sizes, another camera or another grid.
    """
    import torch

    path = Path(path)
    how = "train one with: " + TRAIN_COMMAND.format(path=path)
    if not path.is_file():
        raise CheckpointError(f"BEV checkpoint {path} not found; {how}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for corrupt or foreign files
        raise CheckpointError(f"BEV checkpoint {path} could not be read ({type(error).__name__}: {error}); "
                              f"{how}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a BEV predictor checkpoint; {how}")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"BEV checkpoint {path} has format version {payload.get('version')}, this code reads "
                              f"version {CHECKPOINT_VERSION}; {how}")
    if payload.get("geometry") != geometry_of():
        raise CheckpointError(f"BEV checkpoint {path} was trained for camera/grid {payload.get('geometry')}, but "
                              f"the simulator now uses {geometry_of()}; {how}")
    try:
        model = build_model(BevModelConfig.from_dict(payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
        bias = DecisionBias(**payload.get("decision_bias", {}))
    except (KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"BEV checkpoint {path} does not match the model in this code ({error}); {how}") \
            from None
    return model.eval(), payload.get("info", {}), bias


# ------------------------------------------------------------------------------------------ predictor


class BevPredictor:
    """Predicts egocentric BEV grids from camera images with a trained BevNet (CPU, no gradients)."""

    def __init__(self, model: torch.nn.Module, info: dict | None = None, bias: DecisionBias = DecisionBias(),
                 config: WorldConfig | None = None) -> None:
        """Wrap a BevNet (put in eval mode, batch norms folded); prefer ``BevPredictor.load``."""
        import torch

        self.model = _fuse_batch_norms(model.eval())
        self.info = info or {}
        self.bias = bias
        self.world_config = config or WorldConfig()
        self.view_mask = view_cone_mask(self.world_config)
        self._torch = torch

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CHECKPOINT, num_threads: int | None = None) -> BevPredictor:
        """Load a checkpoint (default: the shipped one). ``num_threads`` sets torch's (process-wide) thread count.

        Raises CheckpointError (with the file and the training command) if it is missing or does not fit. On a
        busy machine, 2 threads stay fast only with OMP_WAIT_POLICY=PASSIVE in the environment before torch is
        first imported (benchmarks/bev.py: 164 vs 71 frames/s at batch 3).
        """
        if num_threads is not None:
            import torch

            torch.set_num_threads(int(num_threads))
        return cls(*load_model(path))

    def predict_arrays(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 64, 64, 3) or (64, 64, 3) uint8 RGB -> occupancy (B, 32, 32) int8 (-1 / 0 / 100) and object class
        (B, 32, 32) uint8 (0 none, k = CLASS_NAMES[k - 1]). Raises ValueError for any other shape or dtype."""
        images = self._checked(images)
        with self._torch.inference_mode():
            logits = self.model(images_to_tensor(images))
        return decode_logits(logits, self.view_mask, self.bias)

    def predict(self, images: np.ndarray) -> list[BevGrid]:
        """(B, 64, 64, 3) or (64, 64, 3) uint8 RGB images -> one BevGrid per image, in the robot frame."""
        occupancy, objects = self.predict_arrays(images)
        config = self.world_config
        origin_x, origin_y = config.bev_origin
        return [BevGrid(occ, obj, config.bev_resolution, origin_x, origin_y, CLASS_NAMES)
                for occ, obj in zip(occupancy, objects)]

    def _checked(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        size = self.world_config.image_size
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1:] != (size, size, 3) or len(images) == 0:
            raise ValueError(f"expected RGB images shaped (B, {size}, {size}, 3) or ({size}, {size}, 3), "
                             f"got {images.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"expected uint8 RGB images, got dtype {images.dtype}")
        return images


def _fuse_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Fold each eval-mode BatchNorm into the conv before it (same outputs, fewer ops per frame)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for block in model.modules():
        if isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[1], nn.BatchNorm2d):
            block[0] = fuse_conv_bn_eval(block[0], block[1])
            block[1] = nn.Identity()
    return model
