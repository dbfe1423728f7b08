"""Self-supervised labels for the camera BEV predictor (numpy only; no ROS, no torch): a robot's own range sensor
(a LaserScan or a depth image, made into a BEV by perception/scan_bev.py or depth_bev.py) labels the camera frames
taken at the same moment, so the learned predictor can be fine-tuned on the robot's own camera without a map or
any hand labelling (issue 13).

- :func:`pair_by_stamp`: each camera frame with the sensor message nearest in stamp, within a tolerance.
- :func:`label_mask`: which cells of a geometric BEV may teach the camera. Free and wall cells do; so do cells the
  sensor reports unseen because an observed wall lies between the sensor and them (occluded: what the camera
  model calls unseen too). Every other unseen cell (beyond the sensor's range or angles, behind a return that
  carried no information) is *unknown* and is left out of the loss: unknown is not free.
- :class:`AdaptationSet`: the pairs (camera image, geometric BEV, loss mask, stamp), split in time (the bag's tail
  is held out for validation), and checked before any training (:meth:`AdaptationSet.check`): an empty set, or
  one whose labels cannot be right for this camera, is refused with a message that says what is wrong.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spatial_memory_ros.types import GridGeometry

FREE, WALL, UNSEEN = 0, 100, -1
DEFAULT_TOLERANCE = 0.05
"""Seconds: a camera frame and a sensor message at most this far apart in stamp make a pair."""
MIN_TRAIN_FRAMES = 8
MIN_VALIDATION_FRAMES = 2
MIN_LABELLED_SHARE = 0.15
"""Of the camera's view cone, at least this share of the cells (over the whole set) must be labelled: less means
the sensor does not look where the camera looks (a wrong mount, a wrong topic)."""


class AdaptationDataError(ValueError):
    """The training pairs cannot be made or used; the message says what is missing or wrong."""


@dataclass(frozen=True)
class Pairing:
    """Camera frame ``image_index[k]`` goes with sensor message ``label_index[k]``, ``offset[k]`` seconds later
    (label stamp - image stamp). ``unpaired``: camera frames with no sensor message within the tolerance;
    ``nearest``: for every camera frame, the smallest |offset| to any sensor message (seconds, inf if none)."""

    image_index: np.ndarray
    label_index: np.ndarray
    offset: np.ndarray
    unpaired: int
    nearest: np.ndarray

    def __len__(self) -> int:
        return len(self.image_index)

    def describe(self) -> str:
        """One line: how many pairs, and how far apart their stamps were."""
        if not len(self):
            return f"0 pairs ({self.unpaired} camera frames unpaired)"
        spread = np.abs(self.offset)
        return (f"{len(self)} pairs, |stamp offset| median {1e3 * float(np.median(spread)):.1f} ms, max "
                f"{1e3 * float(spread.max()):.1f} ms; {self.unpaired} camera frames unpaired")


def pair_by_stamp(image_stamps: np.ndarray, label_stamps: np.ndarray,
                  tolerance: float = DEFAULT_TOLERANCE) -> Pairing:
    """Pair each camera frame with the sensor message nearest in stamp (seconds), if within ``tolerance``.

    A sensor message may label several camera frames (a camera faster than the sensor); stamps need not be
    sorted. ValueError for a negative or non-finite tolerance.
    """
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"the stamp tolerance must be a finite number of seconds >= 0, got {tolerance}")
    image_stamps = np.asarray(image_stamps, dtype=np.float64).reshape(-1)
    label_stamps = np.asarray(label_stamps, dtype=np.float64).reshape(-1)
    if label_stamps.size == 0 or image_stamps.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Pairing(empty, empty, np.zeros(0), int(image_stamps.size), np.full(image_stamps.size, np.inf))
    order = np.argsort(label_stamps, kind="stable")
    sorted_stamps = label_stamps[order]
    upper = np.clip(np.searchsorted(sorted_stamps, image_stamps), 0, sorted_stamps.size - 1)
    lower = np.clip(upper - 1, 0, sorted_stamps.size - 1)
    pick = np.where(np.abs(sorted_stamps[lower] - image_stamps) <= np.abs(sorted_stamps[upper] - image_stamps),
                    lower, upper)
    offset = sorted_stamps[pick] - image_stamps
    keep = np.abs(offset) <= tolerance
    return Pairing(np.flatnonzero(keep), order[pick[keep]], offset[keep], int((~keep).sum()), np.abs(offset))


def label_mask(occupancy: np.ndarray, geometry: GridGeometry, sensor_xy: tuple[float, float] = (0.0, 0.0),
               samples_per_cell: int = 3) -> np.ndarray:
    """(H, W) bool: the cells of a geometric BEV (-1 / 0 / 100) that may label the camera: free, wall, and the
    unseen cells that an observed wall hides from the sensor at ``sensor_xy`` (robot frame, metres). A cell is
    hidden when the segment from the sensor to its centre crosses a wall cell (sampled ``samples_per_cell``
    times per cell of length)."""
    occupancy = np.asarray(occupancy)
    known = occupancy != UNSEEN
    unseen = ~known
    if not unseen.any() or not (occupancy == WALL).any():
        return known
    xs, ys = geometry.cell_centres()
    rows, cols = np.nonzero(unseen)
    dx, dy = xs[rows, cols] - sensor_xy[0], ys[rows, cols] - sensor_xy[1]
    length = np.hypot(dx, dy) / geometry.resolution
    steps = max(2, int(math.ceil(float(length.max(initial=1.0)) * samples_per_cell)))
    fraction = np.linspace(0.0, 1.0, steps + 1)[None, :-1] * np.ones((rows.size, 1))
    # stop one cell short of the cell itself: a wall cell is not hidden by itself
    fraction = fraction * np.maximum(0.0, 1.0 - 1.0 / np.maximum(length, 1e-9))[:, None]
    px = sensor_xy[0] + fraction * dx[:, None]
    py = sensor_xy[1] + fraction * dy[:, None]
    r, c, inside = geometry.cell_indices(px, py)
    wall_on_way = np.zeros(px.shape, dtype=bool)
    wall_on_way[inside] = occupancy[r[inside], c[inside]] == WALL
    mask = known.copy()
    mask[rows, cols] = wall_on_way.any(axis=1)
    return mask


@dataclass
class AdaptationSet:
    """Training pairs in stamp order: ``images`` (N, H, W, 3) uint8 of the robot's camera, ``occupancy`` (N, h, w)
    int8 geometric BEVs (-1 / 0 / 100) on the model's grid, ``mask`` (N, h, w) bool cells that may teach
    (:func:`label_mask`), ``stamps`` (N,) float64 seconds of the camera frames."""

    images: np.ndarray
    occupancy: np.ndarray
    mask: np.ndarray
    stamps: np.ndarray

    def __post_init__(self) -> None:
        count = len(self.images)
        if not (len(self.occupancy) == len(self.mask) == len(self.stamps) == count):
            raise ValueError("images, occupancy, mask and stamps must have the same length")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray | slice) -> AdaptationSet:
        """The pairs at ``index``."""
        return AdaptationSet(self.images[index], self.occupancy[index], self.mask[index], self.stamps[index])

    def split(self, validation_fraction: float, gap: float = 1.0) -> tuple[AdaptationSet, AdaptationSet]:
        """(training, validation): the last ``validation_fraction`` of the recording's time span is held out;
        the ``gap`` seconds before it are dropped from both, so no validation frame is a near copy of a training
        frame. ValueError for a fraction outside (0, 1)."""
        if not 0.0 < validation_fraction < 1.0:
            raise ValueError(f"the validation fraction must be in (0, 1), got {validation_fraction}")
        if not len(self):
            return self, self
        start, end = float(self.stamps.min()), float(self.stamps.max())
        cut = end - validation_fraction * (end - start)
        return (self.subset(np.flatnonzero(self.stamps < cut - gap)),
                self.subset(np.flatnonzero(self.stamps >= cut)))

    def labelled_share(self, view_mask: np.ndarray) -> float:
        """The share of the camera's view-cone cells that carry a label, over all frames."""
        if not len(self) or not view_mask.any():
            return 0.0
        return float(self.mask[:, view_mask].mean())

    def counts(self, view_mask: np.ndarray) -> dict[str, int]:
        """Labelled cells of each kind inside the camera's view cone."""
        inside = self.mask & view_mask[None]
        return {"free": int((inside & (self.occupancy == FREE)).sum()),
                "wall": int((inside & (self.occupancy == WALL)).sum()),
                "occluded": int((inside & (self.occupancy == UNSEEN)).sum())}

    def check(self, view_mask: np.ndarray, validation: AdaptationSet | None = None, source: str = "the bag",
              min_train: int = MIN_TRAIN_FRAMES, min_validation: int = MIN_VALIDATION_FRAMES,
              min_labelled_share: float = MIN_LABELLED_SHARE) -> None:
        """AdaptationDataError unless this (training) set and ``validation`` can train a camera model: enough
        frames in each, labels inside the camera's view cone (``view_mask``), and both free and wall cells among
        them (a set without walls, or all wall, is mislabelled: a sensor looking elsewhere, a wrong mount)."""
        if len(self) < min_train:
            raise AdaptationDataError(f"{source} gives {len(self)} training pairs, at least {min_train} are needed: "
                                      f"record longer, or check the stamp tolerance")
        if validation is not None and len(validation) < min_validation:
            raise AdaptationDataError(f"{source} gives {len(validation)} held-out validation pairs (the tail of the "
                                      f"recording), at least {min_validation} are needed: record longer")
        share = self.labelled_share(view_mask)
        counts = self.counts(view_mask)
        if share < min_labelled_share:
            raise AdaptationDataError(
                f"the sensor labels only {100 * share:.1f}% of the camera's view (at least "
                f"{100 * min_labelled_share:.0f}% needed): it does not look where the camera looks — check the "
                f"sensor's mount parameters and that the topics belong to the same robot")
        total = counts["free"] + counts["wall"]
        if counts["wall"] == 0 or counts["free"] == 0 or counts["wall"] > 0.8 * total:
            raise AdaptationDataError(
                f"the labels inside the camera's view hold {counts['free']} free and {counts['wall']} wall cells: "
                f"a set without walls, without free space or nearly all wall is mislabelled (a wrong sensor "
                f"mount or range, a wrong topic); training does not start")


def masked_metrics(predicted: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Free and wall IoU of predicted BEVs (-1 / 0 / 100) against geometric labels, over the labelled cells
    only (pooled over all frames)."""
    predicted = np.where(mask, predicted, UNSEEN)
    result = {}
    for name, value in (("free", FREE), ("wall", WALL)):
        p, t = predicted == value, (labels == value) & mask
        union = int((p | t).sum())
        result[f"{name}_iou"] = int((p & t).sum()) / union if union else float("nan")
    result["frames"] = int(len(labels))
    return result
