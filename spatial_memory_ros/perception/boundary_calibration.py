"""Calibrating a floor-boundary checkpoint's object classes on a world's validation mazes (torch): render labelled
frames, fit per-class logit offsets (perception/class_calibration.py), write a copy of the checkpoint with them
under the world's name; the predictor applies them to images of a world with exactly that world's classes."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from spatial_memory_ros.perception.boundary_data import BoundaryFrames, render_boundary_frames
from spatial_memory_ros.perception.boundary_model import FloorBoundaryPredictor
from spatial_memory_ros.perception.class_calibration import class_scores, column_confusion, fit_class_offsets
from spatial_memory_ros.perception.frames import VALIDATION_SEED_BASE
from spatial_memory_ros.perception.model import images_to_tensor


def column_logits(predictor: FloorBoundaryPredictor, images: np.ndarray, batch: int = 128) -> np.ndarray:
    """(N, S, K) object logits of canonical images, with the checkpoint's common object bias but no class offsets."""
    parts = []
    with torch.inference_mode():
        for first in range(0, len(images), batch):
            _, logits = predictor.model(images_to_tensor(np.ascontiguousarray(images[first:first + batch])))
            parts.append(logits.numpy())
    logits = np.concatenate(parts).astype(np.float64)
    logits[..., 1:] += predictor.object_bias
    return logits


def calibrate_checkpoint(checkpoint: Path, world: str, mazes: int, frames_per_maze: int, out: Path,
                         command: str = "", progress: Callable[[], None] | None = None) -> dict:
    """Fit the class offsets of ``world``'s object classes on its validation mazes (seeds VALIDATION_SEED_BASE up:
    never in training data) and write ``checkpoint`` with them to ``out``. Returns the report (per class scores
    before and after, the offsets, frames, seconds). WorldUnavailable if the world cannot start here."""
    from spatial_memory_ros.sim.interface import world_class_names

    started = time.monotonic()
    predictor = FloorBoundaryPredictor.load(checkpoint)
    names = predictor.geometry.class_names
    parts = []
    for k in range(mazes):
        parts.append(render_boundary_frames(world, VALIDATION_SEED_BASE + k, frames_per_maze, predictor.geometry))
        if progress is not None:
            progress()
    frames = BoundaryFrames.concatenate(parts)
    logits = column_logits(predictor, frames.images)
    slots = [names.index(name) + 1 for name in world_class_names(world) if name in names]
    offsets = fit_class_offsets(logits, frames.column_class, frames.valid, slots)
    zero = np.zeros_like(offsets)
    report = {"world": world, "mazes": mazes, "frames": len(frames), "seeds": [VALIDATION_SEED_BASE,
                                                                                VALIDATION_SEED_BASE + mazes - 1],
              "class_bias": {names[s - 1]: float(offsets[s]) for s in slots},
              "before": _named(class_scores(column_confusion(logits, frames.column_class, frames.valid, zero), slots),
                               names),
              "after": _named(class_scores(column_confusion(logits, frames.column_class, frames.valid, offsets),
                                           slots), names),
              "command": command, "seconds": round(time.monotonic() - started, 1), "source": str(checkpoint)}
    payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    payload["class_calibrations"] = {**payload.get("class_calibrations", {}), world: {
        "classes": list(world_class_names(world)), "bias": report["class_bias"]}}
    payload.setdefault("info", {}).setdefault("class_calibration", {})[world] = json.loads(json.dumps(report))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, out)
    return report


def _named(scores: dict[int, dict], names: tuple[str, ...]) -> dict[str, dict]:
    return {names[slot - 1]: {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
            for slot, row in scores.items()}
