"""Fine-tune a camera BEV predictor on a robot's own camera with self-supervised labels (torch; issue 13).

The model stays a model of its canonical camera (perception/camera_adapter.py): each training image is the robot's
camera image re-projected to the canonical camera, and the canonical logits are resampled onto the real grid
(bilinear, differentiable) where the geometric labels live, so the loss is taken exactly where the deployed
predictor (``BevPredictor.for_camera``) reads its answers. The occupancy cross-entropy counts only the cells the
labelling sensor saw (perception/self_supervised.py: free, wall, occluded); unknown cells carry no loss, object
colours are not trained (a range sensor sees none). Batch-norm statistics stay frozen (a few thousand frames of one
camera should not move what the encoder normalises by). Optionally a share of every batch rehearses frames of the
checkpoint's own camera (rendered by the built-in simulator, so nothing else is needed) against the starting model's
own answers on them (distillation: learning without forgetting, Li & Hoiem 2016), which keeps what it knew there.

``AdaptationRun`` keeps the whole training state in ``<out>/last.pt`` after every epoch (``resume`` continues an
interrupted run exactly) and the best epoch by held-out score in ``<out>/best.pt``.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from spatial_memory_ros.perception.camera_adapter import bev_sample_grid, canonical_camera, real_view_mask
from spatial_memory_ros.perception.geometry import FREE, UNSEEN, WALL
from spatial_memory_ros.perception.self_supervised import AdaptationSet, masked_metrics

if TYPE_CHECKING:
    import torch

    from spatial_memory_ros.perception.frames import BevFrames
    from spatial_memory_ros.types import CameraModel


@dataclass(frozen=True)
class AdaptationConfig:
    """How to fine-tune: ``epochs`` over the training pairs, ``batch_size`` frames per step (of which a
    ``rehearsal`` share from the original camera when rehearsal frames are given), AdamW with ``lr`` warmed up over the
    first 10% of the steps, then cosine-decayed, ``wall_weight`` on wall cells, ``seed`` for batch order and flips."""

    epochs: int = 6
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 1e-4
    wall_weight: float = 1.5
    rehearsal: float = 0.5
    rehearsal_weight: float = 1.0
    seed: int = 0
    layers: str = "all"
    """What adapts: 'encoder' (the image encoder and its projection into column tokens: what a camera's look
    changes; the geometry after it is the camera adapter's and stays) or 'all'."""

    def steps_per_epoch(self, pairs: int) -> int:
        """Optimizer steps that show every training pair about once."""
        own = max(1, self.batch_size - self.rehearsal_batch)
        return max(1, math.ceil(pairs / own))

    @property
    def rehearsal_batch(self) -> int:
        """Frames of the original camera in each batch (when rehearsal frames are given)."""
        return int(round(self.batch_size * self.rehearsal))


@dataclass
class EpochRecord:
    """One epoch's outcome: training loss, held-out scores on the robot's pairs and (if any) on the original
    camera's validation frames, seconds so far."""

    epoch: int
    loss: float
    heldout: dict
    original: dict = field(default_factory=dict)
    seconds: float = 0.0


class AdaptationRun:
    """Fine-tunes ``model`` (a BevNet loaded from a checkpoint; its decision ``bias`` is kept) for ``camera``
    (a types.CameraModel with the robot's intrinsics and mount) on ``train`` pairs, scoring ``heldout`` pairs
    after every epoch. ``train`` / ``heldout`` images are already re-projected to the model's canonical camera
    (``CameraAdapter.canonical_images``). ``rehearsal``: frames of the model's own camera, distilled from the
    starting model; ``original``: validation frames of that camera with true BEVs (perception/frames.BevFrames);
    either may be None."""

    def __init__(self, model, bias, camera: CameraModel, train: AdaptationSet, heldout: AdaptationSet,
                 out: Path, config: AdaptationConfig = AdaptationConfig(), canonical_height: float = 0.5,
                 rehearsal: BevFrames | None = None, original: BevFrames | None = None) -> None:
        import torch

        from spatial_memory_ros.perception.geometry import view_cone_mask
        from spatial_memory_ros.perception.training import training_tensors

        self.model, self.bias, self.camera, self.config = model, bias, camera, config
        self.train_set, self.heldout, self.out = train, heldout, Path(out)
        self.original = original
        geometry = model.geometry
        grid, self.outside = bev_sample_grid(geometry, camera, canonical_camera(geometry, canonical_height))
        self.sample_grid = torch.from_numpy(grid)
        self.deploy_mask = real_view_mask(geometry, camera)
        self.view_mask = self.deploy_mask & ~self.outside
        self.canonical_mask = torch.from_numpy(view_cone_mask(geometry))
        self.images = torch.from_numpy(np.ascontiguousarray(train.images))
        self.labels = torch.from_numpy(_labels(train.occupancy))
        self.weights = torch.from_numpy(train.mask & self.view_mask[None]).float()
        self.rehearsal = training_tensors(rehearsal) if rehearsal is not None and len(rehearsal) else None
        self.teacher = None if self.rehearsal is None else _teacher_logits(model, self.rehearsal[0])
        torch.manual_seed(config.seed)
        self.optimizer = torch.optim.AdamW(_trainable(model, config.layers), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.total_steps = config.epochs * config.steps_per_epoch(len(train))
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, partial(_warmup_cosine,
                                                                                  total=self.total_steps))
        self.rng = np.random.default_rng([config.seed, 0xADA7])
        self.epoch, self.step, self.elapsed = 0, 0, 0.0
        self.history: list[EpochRecord] = []
        self.best_epoch, self.best_score = 0, -math.inf
        self.out.mkdir(parents=True, exist_ok=True)

    # -------------------------------------------------------------------------------------------- scoring

    def predict(self, images: np.ndarray, batch: int = 64) -> np.ndarray:
        """Occupancy (-1 / 0 / 100) on the real grid for canonical images, as the deployed adapter decodes it."""
        import torch

        from spatial_memory_ros.perception.camera_adapter import resample_logits
        from spatial_memory_ros.perception.model import images_to_tensor
        from spatial_memory_ros.perception.predictor import decode_logits

        was_training = self.model.training
        self.model.eval()
        results = []
        with torch.inference_mode():
            for k in range(0, len(images), batch):
                logits = self.model(images_to_tensor(images[k:k + batch]))
                logits = resample_logits(logits, self.sample_grid.numpy(), self.outside)
                results.append(decode_logits(logits, self.deploy_mask, self.bias)[0])
        self._set_train(was_training)
        return np.concatenate(results) if results else np.zeros((0,) + self.view_mask.shape, np.int8)

    def score_heldout(self) -> dict:
        """Free and wall IoU on the held-out pairs' labelled cells."""
        return masked_metrics(self.predict(self.heldout.images), self.heldout.occupancy,
                              self.heldout.mask & self.view_mask[None])

    def score_original(self) -> dict:
        """BevMetrics (free / wall IoU, object F1) on the original camera's validation frames, if any."""
        if self.original is None:
            return {}
        from spatial_memory_ros.perception.training import evaluate

        summary = evaluate(self.model, self.original, self.bias)
        self._set_train(True)
        return {key: summary[key] for key in ("free_iou", "wall_iou", "object_f1", "frames")}

    # -------------------------------------------------------------------------------------------- training

    def train(self, progress: Callable[[int, int, float], None] | None = None) -> list[EpochRecord]:
        """Run the remaining epochs; after each, score, keep the best and write ``last.pt`` (resumable).
        ``progress(step, total_steps, loss)`` is called after every step."""
        if not self.history:
            self.history.append(EpochRecord(0, float("nan"), self.score_heldout(), self.score_original(), 0.0))
            self._keep_if_best(self.history[-1])
            self._write_log(self.history[-1])
        started = time.monotonic() - self.elapsed
        steps = self.config.steps_per_epoch(len(self.train_set))
        while self.epoch < self.config.epochs:
            self._set_train(True)
            losses = []
            for _ in range(steps):
                losses.append(self._step())
                self.step += 1
                if progress:
                    progress(self.step, self.total_steps, losses[-1])
            self.epoch += 1
            self.elapsed = time.monotonic() - started
            record = EpochRecord(self.epoch, float(np.mean(losses)), self.score_heldout(), self.score_original(),
                                 round(self.elapsed, 1))
            self.history.append(record)
            self._keep_if_best(record)
            self._write_log(record)
            self._save_state()
        return self.history

    def _set_train(self, training: bool) -> None:
        from torch import nn

        self.model.train(training)
        for module in self.model.modules():   # frozen normalisation statistics
            if isinstance(module, nn.BatchNorm2d):
                module.eval()

    def _step(self) -> float:
        import torch
        from torch.nn import functional

        config = self.config
        own = config.batch_size - (config.rehearsal_batch if self.rehearsal is not None else 0)
        index = torch.from_numpy(self.rng.integers(0, len(self.images), size=own))
        flip = torch.from_numpy(self.rng.random(own) < 0.5)
        images, labels, weights = self.images[index], self.labels[index], self.weights[index]
        # a left-right mirror of the camera is the mirror of its BEV (the real grid is symmetric about y = 0)
        images = torch.where(flip[:, None, None, None], images.flip(2), images)
        labels = torch.where(flip[:, None, None], labels.flip(1), labels)
        weights = torch.where(flip[:, None, None], weights.flip(1), weights)
        pixels = images.permute(0, 3, 1, 2).float().div_(255.0)
        teacher = None
        if self.rehearsal is not None and config.rehearsal_batch:
            r_images = self.rehearsal[0]
            r_index = torch.from_numpy(self.rng.integers(0, len(r_images), size=config.rehearsal_batch))
            teacher = self.teacher[r_index].float()
            pixels = torch.cat([pixels, r_images[r_index].permute(0, 3, 1, 2).float().div_(255.0)])
        logits = self.model(pixels)
        real = functional.grid_sample(logits[:own, :3], self.sample_grid.expand(own, -1, -1, -1), mode="bilinear",
                                      padding_mode="border", align_corners=True)
        class_weight = torch.tensor([1.0, 1.0, config.wall_weight])
        cells = functional.cross_entropy(real, labels, weight=class_weight, reduction="none")
        loss = (cells * weights).sum() / weights.sum().clamp(min=1.0)
        if teacher is not None:
            rehearsal_loss = _distillation(logits[own:], teacher, self.canonical_mask)
            loss = (own * loss + config.rehearsal_weight * config.rehearsal_batch * rehearsal_loss) / config.batch_size
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.schedule.step()
        return float(loss.item())

    # -------------------------------------------------------------------------------------------- state

    def _keep_if_best(self, record: EpochRecord) -> None:
        from spatial_memory_ros.perception.predictor import save_checkpoint

        score = _nan_zero(record.heldout["free_iou"]) + _nan_zero(record.heldout["wall_iou"])
        if score > self.best_score:
            self.best_score, self.best_epoch = score, record.epoch
            save_checkpoint(self.out / "best.pt", self.model, {"epoch": record.epoch, "heldout": record.heldout,
                                                               "original": record.original}, self.bias)

    def _write_log(self, record: EpochRecord) -> None:
        with (self.out / "log.jsonl").open("a") as log:
            log.write(json.dumps(asdict(record)) + "\n")

    def _save_state(self) -> None:
        import torch

        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "schedule": self.schedule.state_dict(), "rng": self.rng.bit_generator.state,
                 "torch_rng": torch.get_rng_state(), "epoch": self.epoch, "step": self.step,
                 "elapsed": self.elapsed, "config": asdict(self.config),
                 "history": [asdict(r) for r in self.history], "best": [self.best_epoch, self.best_score],
                 "pairs": [len(self.train_set), len(self.heldout)]}
        temporary = self.out / "last.pt.tmp"
        torch.save(state, temporary)
        temporary.replace(self.out / "last.pt")

    def resume(self) -> str | None:
        """Continue from ``<out>/last.pt``; an error message if it is not a run of this set and configuration."""
        import torch

        path = self.out / "last.pt"
        if not path.is_file():
            return f"--resume: no {path} to continue from"
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state["config"] != asdict(self.config) or state["pairs"] != [len(self.train_set), len(self.heldout)]:
            return (f"--resume: {path} is a run of {state['pairs']} pairs with {state['config']}, not of "
                    f"{[len(self.train_set), len(self.heldout)]} pairs with {asdict(self.config)}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.step, self.elapsed = state["epoch"], state["step"], state["elapsed"]
        self.history = [EpochRecord(**r) for r in state["history"]]
        self.best_epoch, self.best_score = state["best"]
        return None


ENCODER_LAYERS = ("encoder.", "column_projection.")


def _trainable(model, layers: str) -> list:
    """The parameters that adapt (the others are frozen); ValueError for an unknown choice."""
    if layers not in ("encoder", "all"):
        raise ValueError(f"layers must be 'encoder' or 'all', got {layers!r}")
    chosen = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(layers == "all" or name.startswith(ENCODER_LAYERS))
        if parameter.requires_grad:
            chosen.append(parameter)
    return chosen


def _teacher_logits(model, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """The starting model's logits (float16) for the rehearsal images: what it should keep answering."""
    import torch

    from spatial_memory_ros.perception.model import images_to_tensor

    model.eval()
    with torch.inference_mode():
        return torch.cat([model(images_to_tensor(images[k:k + batch].numpy())).half()
                          for k in range(0, len(images), batch)])


def _distillation(logits: torch.Tensor, teacher: torch.Tensor, view_mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the model's occupancy and object distributions against the starting model's (learning
    without forgetting, Li & Hoiem 2016), over the view cone's cells."""
    import torch

    mask = view_mask.to(logits.dtype)
    total = logits.new_zeros(())
    for channels in (slice(0, 3), slice(3, None)):
        target = torch.softmax(teacher[:, channels], dim=1)
        cells = -(target * torch.log_softmax(logits[:, channels], dim=1)).sum(1)
        total = total + (cells * mask).sum() / (mask.sum() * len(logits))
    return total


def _warmup_cosine(step: int, total: int) -> float:
    """The learning-rate factor: linear warm-up over the first 10% of the steps (Adam's first steps move every
    weight by about the learning rate, whatever the gradient: without it the first batches of a new camera undo
    much of what the model knew), then cosine decay to 0."""
    warmup = max(1, total // 10)
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / max(1, total - warmup)))


def _labels(occupancy: np.ndarray) -> np.ndarray:
    """BEV occupancy (-1 / 0 / 100) -> model labels (UNSEEN / FREE / WALL) int64."""
    labels = np.full(occupancy.shape, UNSEEN, dtype=np.int64)
    labels[occupancy == 0] = FREE
    labels[occupancy == 100] = WALL
    return labels


def _nan_zero(value: float) -> float:
    return 0.0 if value is None or math.isnan(value) else float(value)
