"""Training the floor-boundary net (torch; issue 12): batches with appearance and camera augmentation, one-cycle
AdamW, validation on unseen mazes, resumable run folders and the exported checkpoint.

Augmentation stands in for cameras the data do not have: brightness, contrast, gamma, small per-channel gains,
pixel noise and blur for the sensor; replicated image borders for a camera with a narrower field of view or a
pitch (camera_adapter.py fills what such a camera does not see by replicating its edges); left-right mirroring.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional

from spatial_memory_ros.perception.boundary_data import (BoundaryFrames, boundary_geometry, read_boundary_shards,
                                                         render_boundary_frames)
from spatial_memory_ros.perception.boundary_model import (CHECKPOINT_FORMAT, CHECKPOINT_VERSION, BoundaryModelConfig,
                                                          FloorBoundaryPredictor, boundary_loss, build_boundary_model,
                                                          focal_of, save_boundary_checkpoint)
from spatial_memory_ros.perception.frames import VALIDATION_SEED_BASE
from spatial_memory_ros.perception.geometry import BevGeometry


def augment(images: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """(B, 3, S, S) in [0, 1] -> the same images as other sensors and mounts would give them."""
    batch = len(images)
    def draw(low, high, *shape):
        return torch.from_numpy(rng.uniform(low, high, size=(batch, *shape)).astype(np.float32))
    images = images.clamp(1e-4, 1) ** draw(0.6, 1.6, 1, 1, 1)
    images = images * draw(0.9, 1.1, 3, 1, 1) * draw(0.6, 1.4, 1, 1, 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = mean + (images - mean) * draw(0.6, 1.3, 1, 1, 1)
    blurred = rng.random(batch) < 0.3
    if blurred.any():
        index = torch.from_numpy(np.flatnonzero(blurred))
        images[index] = functional.avg_pool2d(images[index], 3, stride=1, padding=1, count_include_pad=False)
    images = images + torch.randn_like(images) * draw(0.0, 0.04, 1, 1, 1)
    for k in np.flatnonzero(rng.random(batch) < 0.4):
        _replicate_borders(images[k], *rng.integers(0, 7, size=2), rng.integers(0, 7), rng.integers(0, 4))
    return images.clamp(0, 1)


def _replicate_borders(image: torch.Tensor, left: int, right: int, top: int, bottom: int) -> None:
    size = image.shape[-1]
    if left:
        image[:, :, :left] = image[:, :, left:left + 1]
    if right:
        image[:, :, size - right:] = image[:, :, size - right - 1:size - right]
    if top:
        image[:, :top] = image[:, top:top + 1]
    if bottom:
        image[:, size - bottom:] = image[:, size - bottom - 1:size - bottom]


def batch_tensors(frames: BoundaryFrames, index: np.ndarray, rng: np.random.Generator | None) -> tuple:
    """Images (augmented and mirrored at random when ``rng`` is given), t, classes and valid columns."""
    images = torch.from_numpy(frames.images[index]).permute(0, 3, 1, 2).float().div_(255.0)
    t = torch.from_numpy(frames.boundary[index])
    classes = torch.from_numpy(frames.column_class[index].astype(np.int64))
    valid = torch.from_numpy(frames.valid[index])
    if rng is not None:
        images = augment(images, rng)
        flip = torch.from_numpy(rng.random(len(index)) < 0.5)
        images[flip] = images[flip].flip(-1)
        t[flip], classes[flip], valid[flip] = t[flip].flip(-1), classes[flip].flip(-1), valid[flip].flip(-1)
    return images, t, classes, valid


def evaluate(model: torch.nn.Module, frames: BoundaryFrames, object_bias: float = 0.0) -> dict:
    """Boundary error in pixels (mean, median) over the valid columns and object-column F1 of ``frames``."""
    focal = focal_of(model.geometry)
    errors, hits, predicted, actual = [], 0, 0, 0
    model.eval()
    with torch.inference_mode():
        for first in range(0, len(frames), 128):
            index = np.arange(first, min(first + 128, len(frames)))
            images, t, classes, valid = batch_tensors(frames, index, None)
            out_t, logits = model(images)
            logits[..., 1:] += object_bias
            label = logits.argmax(-1)
            errors.append((focal * (out_t - t).abs())[valid].numpy())
            hits += int(((label == classes) & (classes > 0) & valid).sum())
            predicted += int(((label > 0) & valid).sum())
            actual += int(((classes > 0) & valid).sum())
    error = np.concatenate(errors)
    precision, recall = hits / max(predicted, 1), hits / max(actual, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    return {"boundary_error_px": float(error.mean()), "boundary_median_px": float(np.median(error)),
            "object_column_f1": f1, "frames": len(frames)}


def initial_weights(path: Path, geometry: BevGeometry) -> dict:
    """The weights of the floor-boundary checkpoint ``path`` to fine-tune from; CheckpointError unless it is one
    with the model's layer sizes and ``geometry``'s classes."""
    from spatial_memory_ros.perception.predictor import CheckpointError

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != CHECKPOINT_FORMAT or payload.get("version") != CHECKPOINT_VERSION:
            raise ValueError("not a floor-boundary checkpoint of this version")
        config, classes = payload["model_config"], payload["geometry"]["class_names"]
    except Exception as error:  # torch and the dict access raise several unrelated types
        raise CheckpointError(f"--init {path}: {type(error).__name__}: {error}") from None
    if BoundaryModelConfig.from_dict(config) != BoundaryModelConfig():
        raise CheckpointError(f"--init {path} has the layer sizes {config}, this code trains "
                              f"{asdict(BoundaryModelConfig())}; start from fresh weights (leave out --init)")
    if tuple(classes) != geometry.class_names:
        raise CheckpointError(f"--init {path} predicts the classes {list(classes)}, the data and model have "
                              f"{list(geometry.class_names)}; start from fresh weights (leave out --init)")
    return payload["state_dict"]


class TrainingRun:
    """One run folder: data, validation sets, model, optimizer, schedule; ``train`` resumes where it stopped."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        self.geometry = boundary_geometry()
        self.data = BoundaryFrames.concatenate([read_boundary_shards(folder) for folder in args.data])
        manifests = {folder: json.loads((Path(folder) / "manifest.json").read_text()) for folder in args.data
                     if (Path(folder) / "manifest.json").exists()}
        self.manifests = list(manifests.values())
        for folder, manifest in manifests.items():
            classes = manifest.get("geometry", {}).get("class_names")
            if classes is not None and tuple(classes) != self.geometry.class_names:
                raise ValueError(f"{folder} was labelled with the classes {classes}, the model has "
                                 f"{list(self.geometry.class_names)}: regenerate it with `spatial-memory data "
                                 f"boundary`")
        self.validation = self._validation_sets()
        self.model = build_boundary_model(self.geometry, BoundaryModelConfig())
        if getattr(args, "init", None) is not None:
            self.model.load_state_dict(initial_weights(args.init, self.geometry))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.lr, weight_decay=1e-4)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=args.lr, total_steps=args.steps,
                                                            pct_start=0.15)
        self.step, self.best, self.seconds = 0, math.inf, 0.0
        args.out.mkdir(parents=True, exist_ok=True)
        if args.resume and (args.out / "last.pt").exists():
            state = torch.load(args.out / "last.pt", map_location="cpu", weights_only=False)
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            self.step, self.best, self.seconds = state["step"], state["best"], state["seconds"]
            print(f"resumed {args.out / 'last.pt'} at step {self.step}")

    def _validation_sets(self) -> dict[str, BoundaryFrames]:
        from spatial_memory_ros.sim.interface import WorldUnavailable

        sets = {}
        for world in filter(None, (w.strip() for w in self.args.val_worlds.split(","))):
            try:
                sets[world] = BoundaryFrames.concatenate([
                    render_boundary_frames(world, VALIDATION_SEED_BASE + k, self.args.val_frames_per_maze,
                                           self.geometry) for k in range(self.args.val_mazes)])
            except WorldUnavailable as error:
                print(f"validation on {world} skipped: {error}", file=sys.stderr)
        return sets

    def train(self) -> None:
        """Run the remaining steps, validating every --val-every steps and at the end."""
        from tqdm import tqdm

        args = self.args
        rng = np.random.default_rng([args.seed, self.step])
        focal = focal_of(self.geometry)
        progress = tqdm(total=args.steps, initial=self.step, unit="step", desc="train boundary",
                        disable=args.no_progress or not sys.stderr.isatty())
        started = time.monotonic() - self.seconds
        while self.step < args.steps:
            self.model.train()
            images, t, classes, valid = batch_tensors(self.data, rng.integers(len(self.data), size=args.batch_size),
                                                      rng)
            out_t, logits = self.model(images)
            loss = boundary_loss(out_t, logits, t, classes, valid, focal)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            self.step += 1
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.3f}")
            if self.step % args.val_every == 0 or self.step == args.steps:
                self.seconds = time.monotonic() - started
                self._validate(float(loss.item()))
        progress.close()

    def _validate(self, loss: float) -> None:
        metrics = {world: evaluate(self.model, frames) for world, frames in self.validation.items()}
        score = float(np.mean([m["boundary_error_px"] for m in metrics.values()])) if metrics else -self.step
        record = {"step": self.step, "loss": loss, "seconds": round(self.seconds, 1), "validation": metrics}
        with (self.args.out / "log.jsonl").open("a") as log:
            log.write(json.dumps(record) + "\n")
        print(json.dumps(record), file=sys.stderr)
        if score < self.best:
            self.best = score
            save_boundary_checkpoint(self.args.out / "best.pt", self.model, self._info(metrics))
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "schedule": self.schedule.state_dict(), "step": self.step, "best": self.best,
                    "seconds": self.seconds}, self.args.out / "last.pt.partial")
        (self.args.out / "last.pt.partial").replace(self.args.out / "last.pt")

    def _info(self, metrics: dict) -> dict:
        args = self.args
        return {"step": self.step, "seconds": round(self.seconds, 1), "validation": metrics,
                "data": [str(f) for f in args.data], "data_manifests": self.manifests, "frames": len(self.data),
                "command": " ".join(sys.argv), "threads": args.threads,
                "init": str(args.init) if getattr(args, "init", None) else None}

    def export(self, path: Path) -> Path:
        """best.pt with the object bias that maximises the validation object-column F1, written to ``path``."""
        best = FloorBoundaryPredictor.load(self.args.out / "best.pt")  # batch norms folded: for evaluating only
        frames = list(self.validation.values())
        scores = {}
        for bias in (-2.0, -1.0, 0.0, 1.0, 2.0):
            scores[bias] = float(np.mean([evaluate(best.model, f, bias)["object_column_f1"] for f in frames])) \
                if frames else 0.0
        payload = torch.load(self.args.out / "best.pt", map_location="cpu", weights_only=True)
        payload["object_bias"] = max(scores, key=scores.get)
        payload["info"]["object_bias_scores"] = {str(k): v for k, v in scores.items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)
        return path
