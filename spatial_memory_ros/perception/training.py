"""Training the BEV predictor (torch, imported on first use): the loss and its weights, training tensors and their
left-right mirroring, and evaluation and calibration of the decision biases on validation frames. The training
loop is ``spatial-memory train bev`` (commands/train_bev.py); the frames come from perception/frames.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from spatial_memory_ros.perception.geometry import (FREE, WALL, BevGeometry, cell_ranges, occupancy_to_labels,
                                                    view_cone_mask)
from spatial_memory_ros.perception.metrics import BevMetrics
from spatial_memory_ros.perception.model import images_to_tensor
from spatial_memory_ros.perception.predictor import DecisionBias, decode_logits

if TYPE_CHECKING:
    import torch

    from spatial_memory_ros.perception.frames import BevFrames


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
             weights: BevLossWeights = BevLossWeights(),
             geometry: BevGeometry | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of a batch and its parts. logits (N, 10, H, W); labels (N, H, W) int64; view_mask (H, W).

    ``geometry`` (the model's) gives each cell's range; only a ``wall_range`` weight needs it.
    """
    import torch
    from torch.nn import functional

    occupancy_weight = torch.tensor([1.0, 1.0, weights.wall], device=logits.device)
    object_weight = torch.full((logits.shape[1] - 3,), weights.object_present, device=logits.device)
    object_weight[0] = 1.0
    mask = view_mask.to(logits.dtype)
    cells = mask.sum() * len(logits)
    cell_weight = mask
    if weights.wall_range:
        if geometry is None:
            raise ValueError("a wall_range loss weight needs the grid's geometry (each cell's range)")
        ranges = torch.from_numpy(cell_ranges(geometry)).reshape(mask.shape).to(logits.device)
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


def metrics_of_logits(logits: torch.Tensor, frames: BevFrames, geometry: BevGeometry,
                      bias: DecisionBias = DecisionBias()) -> dict:
    """BevMetrics summary of precomputed logits (of a model for ``geometry``) against the frames' oracle BEVs."""
    metrics = BevMetrics(geometry.class_names)
    metrics.update(*decode_logits(logits, view_cone_mask(geometry), bias), frames.occupancy, frames.object_class)
    return metrics.summary()


def evaluate(model: torch.nn.Module, frames: BevFrames, bias: DecisionBias = DecisionBias()) -> dict:
    """BevMetrics summary of ``model`` (a BevNet) on ``frames``."""
    return metrics_of_logits(predict_logits(model, frames.images), frames, model.geometry, bias)


def calibrate(model: torch.nn.Module, frames: BevFrames,
              candidates: Sequence[float] = (-3, -2, -1.5, -1, -0.5, 0, 0.5, 1, 2)) -> tuple[DecisionBias, dict]:
    """The decision biases that maximise free + wall IoU (wall bias) and object F1 (object bias) on ``frames``,
    and the metrics they give. Use validation frames, never the benchmark's."""
    logits = predict_logits(model, frames.images)

    def metrics_with(bias: DecisionBias) -> dict:
        return metrics_of_logits(logits, frames, model.geometry, bias)

    def occupancy_score(wall: float) -> float:
        summary = metrics_with(DecisionBias(wall=wall))
        return summary["free_iou"] + summary["wall_iou"]

    wall = max(candidates, key=occupancy_score)
    objects = max(candidates, key=lambda b: _f1(metrics_with(DecisionBias(wall, b))))
    bias = DecisionBias(wall=float(wall), object=float(objects))
    return bias, metrics_with(bias)


def _f1(summary: dict) -> float:
    return summary["object_f1"]
