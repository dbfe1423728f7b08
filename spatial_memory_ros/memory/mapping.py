"""From egocentric BEVs to the map frame: a log-odds occupancy map and memory observations.

A BEV (types.BevGrid, robot frame) seen from a pose is moved into the map frame cell by cell. The
occupancy map fuses every BEV in log odds; the :class:`ObservationBinner` turns BEVs into memory entries,
one per map bin of ``bin_size`` metres and label, written again only when a bin's label changes, so the
memory grows with the area seen rather than with time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spatial_memory_ros.types import BevGrid, GridGeometry, Pose2D, is_target_label, target_label

UNKNOWN, FREE, WALL = -1, 0, 100
FLOOR_LABEL, WALL_LABEL = "open floor", "wall"
PATCH_FEATURES = ("free_fraction", "wall_fraction", "object_fraction", "range_fraction")
NEAR_RANGE_M, FAR_RANGE_M = 3.0, 7.0  # a wall sighting weighs fully within NEAR, far_wall_weight from FAR on
FAR_WALL_WEIGHT = 1.0
"""The shipped LogOddsMap.far_wall_weight: a wall seen far off counts as much as one seen close, until a trial shows
otherwise. On Memory-Maze 45% of the BEV model's wall cells 5-9 m off are true walls against 79% within 3 m
(benchmarks/results/bev_wall_incidence.json); at full weight one such sighting takes three views of floor to undo."""


@dataclass
class BevInMap:
    """The visible cells of one BEV, moved into the map frame."""

    x: np.ndarray
    y: np.ndarray
    occupancy: np.ndarray       # int8, FREE or WALL (or a wall probability in percent)
    object_class: np.ndarray    # uint8, 0 = none
    range_fraction: np.ndarray  # distance from the robot / BEV extent, in [0, 1]
    range_m: np.ndarray | None = None  # distance from the robot (m); None: every cell counts as near
    class_names: tuple[str, ...] = field(default_factory=tuple)


def bev_to_map(bev: BevGrid, pose: Pose2D) -> BevInMap:
    """The seen (not UNKNOWN) cells of ``bev`` as map-frame points, given the robot's map pose."""
    height, width = bev.occupancy.shape
    iy, ix = np.nonzero(bev.occupancy != UNKNOWN)
    forward = bev.origin_x + (ix + 0.5) * bev.resolution
    left = bev.origin_y + (iy + 0.5) * bev.resolution
    cos_t, sin_t = math.cos(pose.theta), math.sin(pose.theta)
    extent = math.hypot(width * bev.resolution, height * bev.resolution / 2.0)
    distance = np.hypot(forward, left)
    return BevInMap(
        x=pose.x + cos_t * forward - sin_t * left,
        y=pose.y + sin_t * forward + cos_t * left,
        occupancy=bev.occupancy[iy, ix],
        object_class=bev.object_class[iy, ix],
        range_fraction=np.clip(distance / extent, 0.0, 1.0),
        range_m=distance,
        class_names=tuple(bev.class_names),
    )


def wall_weights(range_m: np.ndarray, far_wall_weight: float) -> np.ndarray:
    """How much a wall sighting at ``range_m`` counts: 1 within NEAR_RANGE_M, ``far_wall_weight`` from FAR_RANGE_M
    on, linear between."""
    t = np.clip((range_m - NEAR_RANGE_M) / (FAR_RANGE_M - NEAR_RANGE_M), 0.0, 1.0)
    return (1.0 - t * (1.0 - far_wall_weight)).astype(np.float32)


class LogOddsMap:
    """Occupancy in log odds, fused from BEVs: each seen cell adds ``hit`` (wall) or ``miss`` (free).

    A wall seen far off adds ``hit`` times its :func:`wall_weights` (``far_wall_weight`` 1: all alike): a predictor's
    far walls are its least reliable, and a false one closes a corridor until enough views of floor undo it. Floor
    sightings are not weighted, so the free space the localizer matches against is as before."""

    def __init__(self, geometry: GridGeometry, hit: float = 0.85, miss: float = -0.4, limit: float = 4.0,
                 far_wall_weight: float = FAR_WALL_WEIGHT) -> None:
        if not (math.isfinite(far_wall_weight) and 0.0 < far_wall_weight <= 1.0):
            raise ValueError(f"far_wall_weight is a weight in (0, 1], got {far_wall_weight}")
        self.geometry = geometry
        self.hit, self.miss, self.limit = hit, miss, limit
        self.far_wall_weight = float(far_wall_weight)
        self.log_odds = np.zeros((geometry.height, geometry.width), np.float32)
        self.observed = np.zeros((geometry.height, geometry.width), bool)

    def integrate(self, seen: BevInMap) -> int:
        """Fuse one BEV (already in the map frame); return how many of its cells fell inside the map."""
        rows, cols, inside = self.geometry.cell_indices(seen.x, seen.y)
        rows, cols = rows[inside], cols[inside]
        wall_probability = np.clip(seen.occupancy[inside].astype(np.float32) / 100.0, 0.0, 1.0)
        hit = self.hit
        if self.far_wall_weight < 1.0 and seen.range_m is not None:
            hit = self.hit * wall_weights(seen.range_m[inside], self.far_wall_weight)
        increments = np.where(wall_probability >= 0.5, hit, self.miss).astype(np.float32)
        np.add.at(self.log_odds, (rows, cols), increments)
        np.clip(self.log_odds, -self.limit, self.limit, out=self.log_odds)
        self.observed[rows, cols] = True
        return int(inside.sum())

    def occupancy(self) -> np.ndarray:
        """int8 (height, width): -1 never seen, else the wall probability in percent (0..100)."""
        probability = 1.0 / (1.0 + np.exp(-self.log_odds))
        grid = np.round(probability * 100.0).astype(np.int8)
        grid[~self.observed] = UNKNOWN
        return grid


Bin = tuple[int, int]


@dataclass
class Observations:
    """Memory entries made from one BEV: one row per (bin, label), and the bins whose object label this BEV
    withdrew (their views no longer support the object: the entries written for it there are out of date)."""

    locations: np.ndarray   # (n, 2) metres, map frame
    labels: list[str]
    features: np.ndarray    # (n, len(PATCH_FEATURES)) float32
    bins: list[Bin] = field(default_factory=list)        # the bin of each row
    withdrawn: list[Bin] = field(default_factory=list)   # bins that were labelled with an object until this BEV

    def __len__(self) -> int:
        return len(self.labels)


class ObservationBinner:
    """Turns BEVs into memory observations: per map bin, its label ('wall', 'open floor' or '<colour> target')
    and patch features; a bin is reported again only when its label changes (objects win over walls, walls over
    floor within a bin).

    An object label needs evidence: a bin is labelled with an object class only once that class has been seen in
    it in at least ``min_object_views`` BEVs, and in at least ``min_object_share`` of the BEVs that saw the bin; a
    bin whose later views bring the share below that loses its object label again (``Observations.withdrawn``). A
    predictor's object classes flicker (a wall texture read as a colour in one frame); a real object is seen again
    from the next pose, a flicker is not, and a phantom costs the robot a trip across the maze. The share is low
    (0.15) because a learned predictor misses real objects often: on Memory-Maze the bins of real targets showed
    the target in a median 18% of their views, phantom bins in 8% (0.1 and 0.2 were measured: see the README).
    ``min_object_views`` 1 with ``min_object_share`` 0 takes every view's objects at once.
    """

    def __init__(self, bin_size: float = 0.5, min_object_views: int = 2, min_object_share: float = 0.15) -> None:
        if not (math.isfinite(bin_size) and bin_size > 0):
            raise ValueError(f"bin_size must be > 0 metres, got {bin_size}")
        if min_object_views < 1:
            raise ValueError(f"min_object_views must be at least 1, got {min_object_views}")
        self.bin_size = bin_size
        if not 0.0 <= min_object_share <= 1.0:
            raise ValueError(f"min_object_share must be in [0, 1], got {min_object_share}")
        self.min_object_views = int(min_object_views)
        self.min_object_share = float(min_object_share)
        self._written: dict[tuple[int, int], str] = {}
        self._object_views: dict[tuple[int, int], dict[int, int]] = {}  # bin -> {class: views, 0: views without}

    def observe(self, seen: BevInMap) -> Observations:
        """The bins of ``seen`` whose label is new or changed since they were last reported."""
        if len(seen.x) == 0:
            return Observations(np.zeros((0, 2), np.float32), [], np.zeros((0, len(PATCH_FEATURES)), np.float32))
        keys = np.stack([np.floor(seen.x / self.bin_size), np.floor(seen.y / self.bin_size)], 1).astype(np.int64)
        unique_keys, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        locations, labels, features, bins, withdrawn = [], [], [], [], []
        for bin_index, key in enumerate((int(i), int(j)) for i, j in unique_keys):
            members = inverse == bin_index
            label = self._label(seen, members, key)
            before = self._written.get(key)
            if before == label:
                continue
            if before is not None and is_target_label(before):
                withdrawn.append(key)
            self._written[key] = label
            locations.append((seen.x[members].mean(), seen.y[members].mean()))
            features.append(_patch_features(seen, members))
            labels.append(label)
            bins.append(key)
        return Observations(np.asarray(locations, np.float32).reshape(-1, 2), labels,
                            np.asarray(features, np.float32).reshape(-1, len(PATCH_FEATURES)), bins, withdrawn)

    def _label(self, seen: BevInMap, members: np.ndarray, key: tuple[int, int]) -> str:
        classes = seen.object_class[members]
        index = self._object_class(key, int(np.bincount(classes[classes > 0]).argmax()) if classes.any() else 0)
        if index:
            names = seen.class_names
            return target_label(names[index - 1]) if index - 1 < len(names) else "object"
        return WALL_LABEL if np.any(seen.occupancy[members] >= 50) else FLOOR_LABEL

    def _object_class(self, key: tuple[int, int], seen_class: int) -> int:
        """Count this view of the bin (``seen_class`` 0: no object in it); the class its views support, or 0."""
        if self.min_object_views == 1 and self.min_object_share == 0.0:
            return seen_class
        views = self._object_views.setdefault(key, {})
        views[seen_class] = views.get(seen_class, 0) + 1
        best = max((c for c in views if c), key=views.__getitem__, default=0)
        enough = views.get(best, 0) >= max(self.min_object_views, self.min_object_share * sum(views.values()))
        if best and enough:
            return best
        return 0


def _patch_features(seen: BevInMap, members: np.ndarray) -> list[float]:
    occupancy = seen.occupancy[members]
    return [float(np.mean(occupancy < 50)), float(np.mean(occupancy >= 50)),
            float(np.mean(seen.object_class[members] > 0)), float(np.mean(seen.range_fraction[members]))]
