"""Training runs and their checkpoints: settings, save / load, and the seeded, resumable training loop.

A checkpoint is a plain dict (format ``spatial_memory_ros.grid_cells/1``: weights, cells, settings, metadata)
read with ``torch.load(weights_only=True)``; ``load_path_integrator`` reads the shipped
spatial_memory_ros/models/grid_cells.pt by default.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from spatial_memory_ros.localization.grid_cells.analysis import decoding_error_cm
from spatial_memory_ros.localization.grid_cells.cells import HeadDirectionCells, PlaceCells
from spatial_memory_ros.localization.grid_cells.model import (ModelConfig, build_cells, build_model, network_batch,
                                                              path_integration_loss)
from spatial_memory_ros.localization.grid_cells.trajectories import TrajectoryConfig, generate_trajectories

CHECKPOINT_FORMAT = "spatial_memory_ros.grid_cells/1"
TRAIN_HINT = ("train one with `spatial-memory train grid-cells --out <dir>` "
              "(see spatial_memory_ros/models/grid_cells.md)")
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "models" / "grid_cells.pt"


class CheckpointError(ValueError):
    """A grid-cell checkpoint that cannot be used: wrong format, wrong shapes, or unreadable."""


@dataclass
class TrainConfig:
    """One training run: model, movement, optimiser, length, seed and bookkeeping."""

    model: ModelConfig = field(default_factory=ModelConfig)
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    steps: int = 5000
    batch_size: int = 100
    sequence_length: int = 20
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    seed: int = 0
    threads: int = 1
    checkpoint_every: int = 250
    max_minutes: float | None = None
    clip_grad_norm: float = 1.0

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"optimizer must be 'adam' (seed 003) or 'rmsprop' (SSM-PC), got {self.optimizer!r}")
        for name in ("steps", "batch_size", "sequence_length", "threads", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"TrainConfig.learning_rate must be positive, got {self.learning_rate}")


@dataclass
class LoadedIntegrator:
    """A path integrator read from a checkpoint, with everything needed to run and decode it."""

    model: Any
    place_cells: PlaceCells
    hd_cells: HeadDirectionCells
    config: TrainConfig
    step: int
    metadata: dict


def _config_to_dict(config: TrainConfig) -> dict:
    return asdict(config)


def _config_from_dict(data: dict) -> TrainConfig:
    fields = dict(data)
    fields["model"] = ModelConfig(**data["model"])
    fields["trajectory"] = TrajectoryConfig(**data["trajectory"])
    return TrainConfig(**fields)


def save_checkpoint(path: Path | str, model, optimizer, place: PlaceCells, hd: HeadDirectionCells,
                    config: TrainConfig, step: int, metadata: dict) -> Path:
    """Write a checkpoint atomically (weights in float32, optimiser state if given, cells, config, metadata)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "config": _config_to_dict(config), "step": int(step),
               "model_state": {k: v.detach().float().clone() for k, v in model.state_dict().items()},
               "place_cells": place.state(), "hd_cells": hd.state(), "metadata": metadata}
    if optimizer is not None:
        payload["optimizer_state"] = optimizer.state_dict()
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)
    return path


def _read_checkpoint(path: Path) -> dict:
    import torch

    if not path.is_file():
        raise FileNotFoundError(f"no grid-cell checkpoint at {path}; {TRAIN_HINT}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise CheckpointError(f"{path} is not a readable grid-cell checkpoint ({error}); {TRAIN_HINT}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a grid-cell checkpoint of format {CHECKPOINT_FORMAT}; {TRAIN_HINT}")
    return payload


def load_path_integrator(path: Path | str | None = None) -> LoadedIntegrator:
    """Load a trained path integrator (default: the shipped spatial_memory_ros/models/grid_cells.pt).

    Raises FileNotFoundError for a missing file and CheckpointError (a ValueError) for a file of another format or
    with weights whose shapes do not match its own configuration; both name the file and how to train one.
    """
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    payload = _read_checkpoint(path)
    try:
        config = _config_from_dict(payload["config"])
        model = build_model(config.model)
        model.load_state_dict(payload["model_state"])
        place, hd = PlaceCells.from_state(payload["place_cells"]), HeadDirectionCells.from_state(payload["hd_cells"])
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"{path}: weights or settings do not fit the model they describe "
                              f"({str(error).splitlines()[0]}); {TRAIN_HINT}") from None
    if place.num_cells != config.model.num_place_cells:
        raise CheckpointError(f"{path}: {place.num_cells} place cells stored, the model expects "
                              f"{config.model.num_place_cells}; {TRAIN_HINT}")
    model.eval()
    return LoadedIntegrator(model, place, hd, config, int(payload["step"]), payload.get("metadata", {}))


def train_path_integrator(config: TrainConfig, out_dir: Path | str, resume: bool = False,
                          progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """Train a path integrator, checkpointing to ``out_dir/checkpoint.pt``; returns that path.

    Batches come from ``seed`` and the step number, so a resumed run sees the data an uninterrupted one would.
    Stops early, checkpointed, after ``max_minutes`` of training time.
    """
    import torch

    torch.set_num_threads(config.threads)
    out_dir = Path(out_dir)
    checkpoint = out_dir / "checkpoint.pt"
    torch.manual_seed(config.seed)
    model = build_model(config.model)
    place, hd = build_cells(config.model, config.trajectory, config.seed)
    optimizer = _optimizer(model, config)
    step, metadata = 0, {"history": [], "train_seconds": 0.0}
    if resume and checkpoint.is_file():
        step, metadata = _resume(checkpoint, config, model, optimizer)
        log(f"resumed from {checkpoint} at step {step}")
    _train_loop(model, optimizer, place, hd, config, step, metadata, checkpoint, progress, log)
    return checkpoint


def _optimizer(model, config: TrainConfig):
    import torch

    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    return torch.optim.RMSprop(model.parameters(), lr=config.learning_rate, momentum=0.9)


def _resume(checkpoint: Path, config: TrainConfig, model, optimizer) -> tuple[int, dict]:
    payload = _read_checkpoint(checkpoint)
    stored = _config_from_dict(payload["config"])
    if stored.model != config.model or stored.seed != config.seed:
        raise CheckpointError(f"{checkpoint} was trained with another model or seed ({stored.model}, seed "
                              f"{stored.seed}); resume with the same settings or use another --out")
    model.load_state_dict(payload["model_state"])
    if "optimizer_state" in payload:
        optimizer.load_state_dict(payload["optimizer_state"])
    return int(payload["step"]), dict(payload.get("metadata", {}))


def _train_loop(model, optimizer, place, hd, config: TrainConfig, step: int, metadata: dict,
                checkpoint: Path, progress: bool, log: Callable[[str], None]) -> None:
    import torch
    from tqdm import tqdm

    start = time.perf_counter() - float(metadata.get("train_seconds", 0.0))
    bar = tqdm(total=config.steps, initial=step, disable=not progress, desc="grid cells", unit="step")
    running: dict[str, float] = {}
    model.train()
    while step < config.steps:
        walks = generate_trajectories(config.batch_size, config.sequence_length, config.trajectory,
                                      seed=np.random.default_rng([config.seed, step, 0x7A1]))
        loss, parts = path_integration_loss(model, network_batch(walks, place, hd))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        optimizer.step()
        step += 1
        running = {k: 0.98 * running.get(k, v) + 0.02 * v for k, v in parts.items()}
        bar.update(1)
        bar.set_postfix({k: f"{v:.3f}" for k, v in running.items()})
        out_of_time = config.max_minutes is not None and time.perf_counter() - start > 60 * config.max_minutes
        if step % config.checkpoint_every == 0 or step == config.steps or out_of_time:
            metadata["train_seconds"] = time.perf_counter() - start
            error = decoding_error_cm(model, place, hd, config.trajectory, config.sequence_length, walks=100)
            model.train()
            metadata["history"].append({"step": step, **running, "decoding_error_cm": error,
                                        "seconds": metadata["train_seconds"]})
            save_checkpoint(checkpoint, model, optimizer, place, hd, config, step, metadata)
        if out_of_time:
            log(f"stopped at step {step} after --max-minutes {config.max_minutes}; resume with --resume")
            break
    bar.close()
    model.eval()
