"""Per-class logit offsets for the floor-boundary model's object head, fitted on a world's labelled frames (no torch).

A class that training saw rarely is under-predicted: Memory-Maze's salmon exists only in its 15x15 mazes, and the
shipped model called 94 of 237 salmon columns red (recall 0.32) on unseen 15x15 mazes. Adding a constant to a
class's logit before the argmax moves the decision boundary between it and its neighbours without retraining (the
logit adjustment for class priors). The offsets only re-rank the colours (:func:`decide`): whether a column holds
an object at all stays the model's own decision, so detection is untouched (a first fit that let the offsets move
the object / no-object line lowered the BEV's object F1 on unseen mazes). :func:`fit_class_offsets` picks one
offset per class by coordinate ascent of the macro F1 of the column classes on validation frames; the checkpoint keeps them per world
(``class_calibrations``), and ``FloorBoundaryPredictor`` adds them only for a world with exactly those classes: a
world's offsets say nothing of another world's look (the built-in world's red is not Memory-Maze's).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

OFFSET_GRID = tuple(np.round(np.arange(-3.0, 3.01, 0.25), 2))
"""Offsets tried per class (logit units)."""
MIN_GAIN = 0.002
"""Macro F1 an offset must add over the current one to be taken: noise on a few hundred columns is larger."""
MIN_COLUMNS = 100
"""A class with fewer true columns in the frames keeps offset 0: too few to fit (a first run on 640 Memory-Maze
frames held 15 salmon columns, and the fit then raised red, the class salmon is mistaken for)."""


def decide(logits: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Labels (...,) from logits (..., K), slot 0 = no object: a column holds an object where an object logit is
    the largest, as the model says; its class is the argmax of the object logits plus ``offsets[1:]``."""
    logits = np.asarray(logits)
    is_object = logits.argmax(-1) > 0
    colour = (logits[..., 1:] + np.asarray(offsets)[1:]).argmax(-1) + 1
    return np.where(is_object, colour, 0)


def column_confusion(logits: np.ndarray, true: np.ndarray, valid: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(K, K) counts of true class (rows) against :func:`decide` (columns) over the valid columns; ``logits``
    (N, S, K) with slot 0 = no object, ``true`` (N, S) slots, ``valid`` (N, S) bool."""
    logits = np.asarray(logits, np.float64)
    if logits.ndim != 3 or np.shape(true) != logits.shape[:2] or np.shape(valid) != logits.shape[:2]:
        raise ValueError(f"logits must be (N, S, K) and true, valid (N, S); got {logits.shape}, {np.shape(true)}, "
                         f"{np.shape(valid)}")
    classes = logits.shape[-1]
    predicted = decide(logits, np.asarray(offsets, np.float64))
    mask = np.asarray(valid, bool)
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (np.asarray(true)[mask].astype(np.int64), predicted[mask]), 1)
    return confusion


def class_scores(confusion: np.ndarray, slots: Sequence[int]) -> dict[int, dict[str, float]]:
    """Precision, recall and F1 of each object slot in ``slots`` (every prediction of the slot counts, the
    no-object columns included)."""
    scores = {}
    for slot in slots:
        hits = float(confusion[slot, slot])
        precision = hits / max(float(confusion[:, slot].sum()), 1.0)
        recall = hits / max(float(confusion[slot].sum()), 1.0)
        f1 = 2 * precision * recall / max(precision + recall, 1e-9)
        scores[int(slot)] = {"precision": precision, "recall": recall, "f1": f1, "columns": int(confusion[slot].sum())}
    return scores


def macro_f1(confusion: np.ndarray, slots: Sequence[int]) -> float:
    """Mean F1 over ``slots``."""
    scores = class_scores(confusion, slots)
    return float(np.mean([s["f1"] for s in scores.values()])) if scores else 0.0


def fit_class_offsets(logits: np.ndarray, true: np.ndarray, valid: np.ndarray, slots: Sequence[int],
                      rounds: int = 3, grid: Sequence[float] = OFFSET_GRID,
                      min_columns: int = MIN_COLUMNS) -> np.ndarray:
    """(K,) logit offsets (0 for slot 0 and every slot not in ``slots``) that maximise the macro F1 of ``slots``
    on the frames, by coordinate ascent from zero: each round tries every offset of ``grid`` for one slot at a
    time and keeps a change only if it adds at least MIN_GAIN. Slots with under ``min_columns`` true columns keep 0
    and stay out of the score: too few to fit, and a class left out cannot be traded away for the others."""
    offsets = np.zeros(np.shape(logits)[-1])
    counts = np.bincount(np.asarray(true)[np.asarray(valid, bool)].astype(np.int64).ravel(), minlength=len(offsets))
    seen = [int(s) for s in slots if counts[int(s)] >= min_columns]
    if not seen:
        return offsets
    best = macro_f1(column_confusion(logits, true, valid, offsets), seen)
    for _ in range(int(rounds)):
        changed = False
        for slot in seen:
            kept = offsets[slot]
            for value in grid:
                offsets[slot] = value
                score = macro_f1(column_confusion(logits, true, valid, offsets), seen)
                if score >= best + MIN_GAIN:
                    best, kept, changed = score, value, True
            offsets[slot] = kept
        if not changed:
            break
    return offsets
