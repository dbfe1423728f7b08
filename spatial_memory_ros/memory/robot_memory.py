"""One robot's spatial memory: what the spatial_memory node does, without ROS.

Each BEV seen from a pose is fused into a log-odds occupancy map and turned into memory entries (one per map
bin and label, see memory/mapping.py). When later views withdraw a bin's object label (the object is no longer seen
there often enough), the robot's own entries of that object in that bin are removed: a phantom, or a sighting
placed by a pose that has since been corrected, stops drawing the robot's goal (entries merged from teammates are
theirs to withdraw and stay, and so do entries restored from a snapshot: only what this run wrote is tracked by
bin). An entry's value is the sentence embedding of its label ('wall', 'open floor', 'red target', ...) followed by
a few patch features; a text query becomes a search key over the same layout (the query's embedding, zeros for the
patch features), so "something red" finds red targets.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spatial_memory_ros.memory.mapping import (FAR_WALL_WEIGHT, FLOOR_LABEL, PATCH_FEATURES, WALL_LABEL, Bin,
                                              LogOddsMap, ObservationBinner, Observations, bev_to_map)
from spatial_memory_ros.memory.pruning import plan_prune
from spatial_memory_ros.memory.results import MemorySnapshot
from spatial_memory_ros.memory.semantics import DEFAULT_SHARPNESS, Embedder
from spatial_memory_ros.memory.spatial_memory import SpatialMemory
from spatial_memory_ros.types import BevGrid, GridGeometry, Pose2D, is_target_label, target_label

EMBEDDING_DIM = 384
VALUE_DIM = EMBEDDING_DIM + len(PATCH_FEATURES)
MAX_QUERY_CHARS = 1000
MAX_SAMPLES = 1000


@dataclass(frozen=True)
class Entries:
    """A batch of memory entries as written (what the node publishes as a delta)."""

    ids: np.ndarray
    locations: np.ndarray     # (n, 2) metres
    location_sds: np.ndarray  # (n,) metres
    values: np.ndarray        # (n, VALUE_DIM)
    labels: list[str]
    sources: list[str]
    stamps: np.ndarray        # (n,) seconds
    needs_value: np.ndarray | None = None   # (n,) bool: rows whose value is to be made from the label

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class QueryAnswer:
    """Sampled goal locations for a query, best match first."""

    locations: np.ndarray   # (n, 2) metres, map frame
    scores: np.ndarray      # (n,) cosine similarity of the entry's label to the query, clipped to [0, 1]
    labels: list[str]
    capped: bool = False    # more samples were asked than MAX_SAMPLES

    def best(self) -> tuple[float, float, str, float] | None:
        """(x, y, label, score) of the best-matching sample, or None for an empty answer."""
        if len(self.labels) == 0:
            return None
        return float(self.locations[0, 0]), float(self.locations[0, 1]), self.labels[0], float(self.scores[0])


@dataclass
class QuerySettings:
    """How text queries sample the memory (seed 004's conditional sampling)."""

    temperature: float = 1.0
    location_weight: float = 0.01
    sigma_scale: float = 0.5
    sharpness: float = DEFAULT_SHARPNESS


class RobotMemory:
    """Occupancy map + spatial memory of one robot, fed with BEVs and poses, asked with text.

    ``class_names`` are the object classes the world's BEVs may name; ``warm_up`` embeds their labels ahead of
    time (labels not known ahead are embedded when first seen). ``min_object_views`` and ``min_object_share``: see
    ObservationBinner; ``far_wall_weight``: see LogOddsMap.
    """

    def __init__(self, geometry: GridGeometry, embedder: Embedder, robot_id: str = "robot1", *,
                 bin_size: float = 0.5, max_entries: int = 1_000_000, memory: SpatialMemory | None = None,
                 query: QuerySettings | None = None, class_names: Sequence[str] = (),
                 min_object_views: int = 2, min_object_share: float = 0.15,
                 far_wall_weight: float = FAR_WALL_WEIGHT) -> None:
        self.robot_id = robot_id
        self.class_names = tuple(class_names)
        self.embedder = embedder
        self.map = LogOddsMap(geometry, far_wall_weight=far_wall_weight)
        self.binner = ObservationBinner(bin_size, min_object_views, min_object_share)
        self.bin_size = bin_size
        self.memory = memory if memory is not None else SpatialMemory(2, VALUE_DIM, max_entries)
        if (self.memory.location_dim, self.memory.value_dim) != (2, VALUE_DIM):
            raise ValueError(f"a robot memory holds 2-D locations and {VALUE_DIM}-D values; the memory given has "
                             f"{self.memory.location_dim} and {self.memory.value_dim}")
        self.query_settings = query or QuerySettings()
        self._map_lock = threading.Lock()
        self._object_entries: dict[Bin, list[int]] = {}  # bin -> ids of own object entries there
        self.entries_withdrawn = 0

    def warm_up(self) -> None:
        """Load the language model and cache the embeddings of the labels the BEVs produce: floor, wall and a
        sighting of each of ``class_names``."""
        self.embedder.embed([FLOOR_LABEL, WALL_LABEL] + [target_label(name) for name in self.class_names])

    def observe(self, bev: BevGrid, pose: Pose2D, pose_sd: float, stamp: float) -> Entries:
        """Fuse one BEV seen from ``pose`` (position sd ``pose_sd`` metres) and write its new entries; return
        them. Raises ValueError for a non-finite pose or sd, leaving map and memory unchanged."""
        if not all(math.isfinite(v) for v in (pose.x, pose.y, pose.theta, pose_sd, stamp)) or pose_sd < 0:
            raise ValueError(f"pose ({pose.x}, {pose.y}, {pose.theta}), sd {pose_sd} or stamp {stamp} is not usable")
        seen = bev_to_map(bev, pose)
        with self._map_lock:
            self.map.integrate(seen)
        observations = self.binner.observe(seen)
        n = len(observations)
        sds = np.full(n, math.sqrt(pose_sd**2 + (self.bin_size / 2.0) ** 2), np.float32)
        values = self.values(observations) if n else np.zeros((0, VALUE_DIM), np.float32)
        stamps = np.full(n, stamp, np.float64)
        ids = self.memory.write(observations.locations, sds, values, labels=observations.labels,
                                sources=self.robot_id, stamps=stamps) if n else np.empty(0, np.int64)
        self._withdraw(observations, ids)
        return Entries(ids, observations.locations, sds, values, observations.labels, [self.robot_id] * n, stamps)

    def _withdraw(self, observations: Observations, ids: np.ndarray) -> None:
        """Remove the own object entries of the bins whose object label ``observations`` withdrew; remember the
        ids of the object entries just written, by bin."""
        stale = [entry for key in observations.withdrawn for entry in self._object_entries.pop(key, [])]
        if stale:
            self.entries_withdrawn += self.memory.remove(stale)
        for key, label, entry in zip(observations.bins, observations.labels, ids):
            if is_target_label(label):
                self._object_entries.setdefault(key, []).append(int(entry))

    def values(self, observations: Observations) -> np.ndarray:
        """Memory values of observations: label embedding, then patch features."""
        embeddings = self.embedder.embed(observations.labels)
        return np.concatenate([embeddings, observations.features], axis=1).astype(np.float32)

    def merge(self, locations: np.ndarray, location_sds: np.ndarray, values: np.ndarray, labels: list[str],
              sources: list[str], stamps: np.ndarray) -> np.ndarray:
        """Write entries a teammate shared (their source robot is kept); ValueError for bad ones, nothing written."""
        return self.merge_entries(Entries(np.full(len(labels), -1, np.int64), np.asarray(locations, np.float32),
                                          np.asarray(location_sds, np.float32), np.asarray(values, np.float32),
                                          list(labels), list(sources), np.asarray(stamps, np.float64)))

    def merge_entries(self, entries: Entries) -> np.ndarray:
        """``merge`` for a batch of Entries; rows flagged ``needs_value`` get the embedding of their label (a
        sighting sent over the team link carries no value)."""
        if any(not source or source == self.robot_id for source in entries.sources):
            raise ValueError(f"merged entries must name a teammate as source (not '' or '{self.robot_id}')")
        values = entries.values
        if entries.needs_value is not None and entries.needs_value.any():
            values = values.copy()
            rows = np.flatnonzero(entries.needs_value)
            features = np.zeros((len(rows), len(PATCH_FEATURES)), np.float32)
            features[:, PATCH_FEATURES.index("object_fraction")] = 1.0
            labelled = Observations(entries.locations[rows], [entries.labels[i] for i in rows], features)
            values[rows] = self.values(labelled)
        return self.memory.write(entries.locations, entries.location_sds, values, labels=entries.labels,
                                 sources=entries.sources, stamps=entries.stamps)

    def search_key(self, text: str) -> np.ndarray:
        """The search key of a text query: its scaled embedding, zeros over the patch features."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("the query is empty: say what to look for, e.g. 'the red target'")
        if len(text) > MAX_QUERY_CHARS:
            raise ValueError(f"the query has {len(text)} characters; at most {MAX_QUERY_CHARS} are accepted")
        embedding = self.embedder.embed(text)[0]
        return self.key_from_embedding(embedding * self.query_settings.sharpness)

    def key_from_embedding(self, embedding: np.ndarray) -> np.ndarray:
        """A search key from an embedding (EMBEDDING_DIM) or a full value-sized key (VALUE_DIM)."""
        embedding = np.asarray(embedding, np.float32).reshape(-1)
        if embedding.shape[0] == VALUE_DIM:
            return embedding
        if embedding.shape[0] != EMBEDDING_DIM:
            raise ValueError(f"an embedding must have {EMBEDDING_DIM} (or {VALUE_DIM}) values, got {embedding.shape[0]}")
        if not np.all(np.isfinite(embedding)):
            raise ValueError("the embedding has NaN or infinite values")
        return np.concatenate([embedding, np.zeros(len(PATCH_FEATURES), np.float32)])

    def query(self, key: np.ndarray, num_samples: int, location: tuple[float, float] | None = None,
              location_sd: float = 0.0, seed: int | None = None) -> QueryAnswer:
        """Sample goal locations for a search key, biased toward ``location`` when ``location_sd`` > 0; the
        samples come back best match first. ``num_samples`` above MAX_SAMPLES is capped (and says so)."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        capped = num_samples > MAX_SAMPLES
        settings = self.query_settings
        use_location = location is not None and location_sd > 0
        result = self.memory.sample(key, location=np.asarray(location, np.float32) if use_location else None,
                                    location_sd=location_sd if use_location else None,
                                    num_samples=min(num_samples, MAX_SAMPLES), temperature=settings.temperature,
                                    location_weight=settings.location_weight, sigma_scale=settings.sigma_scale,
                                    rng=seed)
        order = np.argsort(-result.similarities, kind="stable")
        return QueryAnswer(result.locations[order], np.clip(result.similarities[order], 0.0, 1.0),
                           [result.labels[i] for i in order], capped)

    def ask(self, text: str, num_samples: int = 10, location: tuple[float, float] | None = None,
            location_sd: float = 0.0, seed: int | None = None) -> QueryAnswer:
        """Text query -> sampled locations (see ``query``)."""
        return self.query(self.search_key(text), num_samples, location, location_sd, seed)

    def occupancy(self) -> np.ndarray:
        """The fused occupancy grid (int8, -1 unknown, else wall probability in percent)."""
        with self._map_lock:
            return self.map.occupancy()

    def prune_in_background(self, max_error: float, match_threshold: float | None, max_steps: int) -> int:
        """Plan a prune on a snapshot (writes go on meanwhile), then apply it; entries written during the
        planning are kept (seed 004's hot swap). Returns the number of entries removed."""
        snapshot: MemorySnapshot = self.memory.snapshot()
        plan = plan_prune(snapshot, max_error=max_error, match_threshold=match_threshold, max_steps=max_steps,
                          reference_points=0)
        return self.memory.apply_prune(plan)


def set_aside_memory_files(snapshot_path: str | Path) -> list[Path]:
    """Rename a snapshot and its journals (``.journal``, ``.journal.old``) to ``<name>.corrupt-<time>`` so a fresh
    memory can start there and the damaged files stay for a look; returns the new paths."""
    import time

    snapshot_path = Path(snapshot_path)
    suffix = time.strftime(".corrupt-%Y%m%d-%H%M%S")
    moved = []
    for path in (snapshot_path, snapshot_path.with_name(snapshot_path.name + ".journal"),
                 snapshot_path.with_name(snapshot_path.name + ".journal.old")):
        if path.exists():
            target = path.with_name(path.name + suffix)
            path.rename(target)
            moved.append(target)
    return moved


def load_or_create_memory(snapshot_path: str | Path | None, max_entries: int):
    """A DurableMemory at ``snapshot_path`` (its snapshot and journal replayed), or a plain SpatialMemory."""
    if not snapshot_path:
        return None, SpatialMemory(2, VALUE_DIM, max_entries)
    from spatial_memory_ros.memory.persistence import DurableMemory

    durable = DurableMemory.open(snapshot_path, 2, VALUE_DIM, max_entries)
    return durable, durable.memory
