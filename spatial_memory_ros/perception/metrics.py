"""How good predicted BEVs are (numpy only): free and wall IoU, per-class accuracy of object cells, object detection
precision and recall (blobs of one colour matched to the true objects), and the one score checkpoints are picked by.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spatial_memory_ros.perception.geometry import FREE, WALL


@dataclass
class BevMetrics:
    """Accumulates BEV prediction quality over frames; ``summary()`` gives the numbers.

    Free and wall IoU are pooled over all frames (intersection and union cell counts summed) and counted over the
    whole grid: outside the camera's view both prediction and truth are unseen, so this is the IoU inside the
    visible region. Object cells: per class, the share of true cells of that class predicted as that class.
    Detections: each 8-connected blob of one predicted colour is a detection; it matches a true object of the
    same colour whose centroid lies within one cell of its own along both axes. ``class_names`` names the object
    classes (class k is ``class_names[k - 1]``), as the frames' geometry does.
    """

    class_names: tuple[str, ...]
    intersection: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))
    union: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=np.int64))
    object_cells: np.ndarray = field(init=False)
    object_hits: np.ndarray = field(init=False)
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    frames: int = 0

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)
        self.object_cells = np.zeros(len(self.class_names) + 1, dtype=np.int64)
        self.object_hits = np.zeros(len(self.class_names) + 1, dtype=np.int64)

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
        for label in range(1, len(self.object_cells)):
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
                     for k, name in enumerate(self.class_names) if self.object_cells[k + 1] > 0}
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


def headline_score(summary: dict) -> float:
    """One number to pick the best checkpoint by: the mean of free IoU, wall IoU and object F1."""
    values = [summary["free_iou"], summary["wall_iou"], summary["object_f1"]]
    return float(np.mean([0.0 if math.isnan(v) else v for v in values]))
