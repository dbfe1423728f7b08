"""Grid cells from path integration (Sorscher et al. 2019; SSM-PC's grid-cell module), in numpy and torch.

Parts, in the order a training run uses them:

- ``generate_trajectories``: rat-like random walks in a square box with Sorscher's statistics (dt 0.02 s,
  Rayleigh forward speed of scale 0.13 * 2 pi m/s, rotation noise 11.52 rad/s, slowdown and turn-away near walls)
  and seed 003's movement flags (speed scale and maximum, velocity smoothing, turn-noise scale, border region,
  wall slowdown, wall turn scale) in ``TrajectoryConfig``.
- ``PlaceCells`` (Gaussian or difference of Gaussians, softmax over cells) and ``HeadDirectionCells`` (von Mises):
  the targets, and position / heading decoders.
- Two path integrators: ``VanillaRNNIntegrator`` (seed 003: ReLU RNN without bias, started from the place code,
  cross-entropy + L2 on the recurrent weights) and ``LSTMBottleneckIntegrator`` (SSM-PC / Banino et al.: LSTM,
  linear bottleneck with dropout, place and head-direction heads).
- Analysis: ``rate_maps``, ``autocorrelograms``, ``GridScorer`` (grid scores 60 and 90 over ring masks, the
  DeepMind scorer's method), ``decoding_error_cm``, ``plot_rate_maps``.
- ``train_path_integrator`` with checkpoints, resume and a seed; ``load_path_integrator`` for the shipped model.

torch is imported lazily by everything that needs it, so importing this module stays cheap.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

RAYLEIGH_SPEED_SCALE = 0.13 * 2.0 * math.pi  # m/s, Sorscher's forward-speed scale
ROTATION_SIGMA = 11.52  # rad/s, Sorscher's turning noise
CHECKPOINT_FORMAT = "spatial_memory_ros.grid_cells/1"
TRAIN_HINT = ("train one with `spatial-memory train grid-cells --out <dir>` "
              "(see spatial_memory_ros/models/grid_cells.md)")
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "models" / "grid_cells.pt"


class CheckpointError(ValueError):
    """A grid-cell checkpoint that cannot be used: wrong format, wrong shapes, or unreadable."""


# ------------------------------------------------------------------------------------------ trajectories


@dataclass
class TrajectoryConfig:
    """Box and movement statistics of the simulated animal (SI units); defaults are Sorscher's."""

    box_width: float = 2.2
    box_height: float = 2.2
    dt: float = 0.02
    speed_scale: float = 1.0
    speed_max: float | None = None
    velocity_smoothing: float = 0.0
    turn_sigma_scale: float = 1.0
    border_region: float = 0.03
    wall_slowdown: float = 0.25
    wall_turn_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("box_width", "box_height", "dt", "speed_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"TrajectoryConfig.{name} must be a positive finite number, got {value}")
        if self.speed_max is not None and not self.speed_max > 0:
            raise ValueError(f"TrajectoryConfig.speed_max must be positive or None, got {self.speed_max}")
        if not 0.0 <= self.velocity_smoothing < 1.0:
            raise ValueError(f"TrajectoryConfig.velocity_smoothing must be in [0, 1), got {self.velocity_smoothing}")
        for name in ("turn_sigma_scale", "border_region", "wall_slowdown", "wall_turn_scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"TrajectoryConfig.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class Trajectories:
    """A batch of walks: ``positions`` (B, T+1, 2) and ``headings`` (B, T+1) from the start to each step's end.

    Step t moves from positions[:, t] along headings[:, t] (less any part cut off by the box), at allocentric
    ``velocities[:, t]`` (m/s), then turns to headings[:, t + 1]; ``angular_velocity[:, t]`` is that turn / ``dt``.
    """

    positions: np.ndarray
    headings: np.ndarray
    velocities: np.ndarray
    angular_velocity: np.ndarray
    dt: float

    @property
    def speeds(self) -> np.ndarray:
        """Speed of each step, (B, T) m/s."""
        return np.linalg.norm(self.velocities, axis=-1)

    @property
    def steps(self) -> int:
        """Number of steps T."""
        return int(self.speeds.shape[1])


def generate_trajectories(batch: int, steps: int, config: TrajectoryConfig | None = None,
                          seed: int | np.random.Generator = 0) -> Trajectories:
    """``batch`` random walks of ``steps`` steps in a box centred on the origin, seeded."""
    config = config or TrajectoryConfig()
    if batch < 1 or steps < 1:
        raise ValueError(f"batch and steps must be at least 1, got batch={batch}, steps={steps}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng([int(seed), 0x6C1D])
    half = np.array([config.box_width, config.box_height]) / 2.0
    positions = np.zeros((batch, steps + 1, 2))
    headings = np.zeros((batch, steps + 1))
    positions[:, 0] = rng.uniform(-half, half, size=(batch, 2))
    headings[:, 0] = rng.uniform(-math.pi, math.pi, size=batch)
    turn_noise = rng.normal(0.0, ROTATION_SIGMA * config.turn_sigma_scale, size=(batch, steps)) * config.dt
    raw_speeds = rng.rayleigh(RAYLEIGH_SPEED_SCALE * config.speed_scale, size=(batch, steps))
    previous_speed = raw_speeds[:, 0].copy()
    for t in range(steps):
        speed = raw_speeds[:, t] if config.speed_max is None else np.minimum(raw_speeds[:, t], config.speed_max)
        speed = config.velocity_smoothing * previous_speed + (1.0 - config.velocity_smoothing) * speed
        previous_speed = speed
        near_wall, turn_away = _wall_avoidance(positions[:, t], headings[:, t], half, config)
        speed = np.where(near_wall, speed * config.wall_slowdown, speed)
        direction = np.stack([np.cos(headings[:, t]), np.sin(headings[:, t])], axis=-1)
        positions[:, t + 1] = np.clip(positions[:, t] + speed[:, None] * config.dt * direction, -half, half)
        headings[:, t + 1] = _wrap(headings[:, t] + turn_away + turn_noise[:, t])
    turns = _wrap(np.diff(headings, axis=1))
    velocities = np.diff(positions, axis=1) / config.dt
    return Trajectories(positions, headings, velocities, turns / config.dt, config.dt)


def _wall_avoidance(position: np.ndarray, heading: np.ndarray, half: np.ndarray,
                    config: TrajectoryConfig) -> tuple[np.ndarray, np.ndarray]:
    """Which walkers are heading into a wall within the border region, and the turn that steers them along it."""
    distances = np.stack([half[0] - position[:, 0], half[1] - position[:, 1],
                          half[0] + position[:, 0], half[1] + position[:, 1]], axis=-1)
    nearest = np.argmin(distances, axis=-1)
    wall_normal = nearest * (math.pi / 2.0)
    towards = _wrap(heading - wall_normal)
    near_wall = (distances[np.arange(len(nearest)), nearest] < config.border_region) & (np.abs(towards) < math.pi / 2)
    turn = np.where(near_wall, np.sign(towards) * (math.pi / 2 - np.abs(towards)) * config.wall_turn_scale, 0.0)
    return near_wall, turn


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


# ------------------------------------------------------------------------------- place and head-direction


class PlaceCells:
    """Place cells with random centres in the box; softmax-normalised Gaussian or difference-of-Gaussians tuning."""

    def __init__(self, num_cells: int = 512, sigma: float = 0.12, surround_scale: float = 2.0,
                 difference_of_gaussians: bool = True, box_width: float = 2.2, box_height: float = 2.2,
                 seed: int = 0, centres: np.ndarray | None = None) -> None:
        """``surround_scale`` multiplies the variance of the surround Gaussian (DoG only)."""
        if num_cells < 3 or not sigma > 0 or not surround_scale > 1.0:
            raise ValueError(f"place cells need num_cells >= 3, sigma > 0 and surround_scale > 1, got "
                             f"{num_cells}, {sigma}, {surround_scale}")
        self.sigma, self.surround_scale = float(sigma), float(surround_scale)
        self.difference_of_gaussians = bool(difference_of_gaussians)
        self.box_width, self.box_height, self.seed = float(box_width), float(box_height), int(seed)
        if centres is None:
            rng = np.random.default_rng([self.seed, 0x91AC])
            half = np.array([box_width, box_height]) / 2.0
            centres = rng.uniform(-half, half, size=(num_cells, 2))
        self.centres = np.asarray(centres, dtype=np.float32)
        if self.centres.shape != (num_cells, 2):
            raise ValueError(f"place-cell centres must be ({num_cells}, 2), got {self.centres.shape}")

    @property
    def num_cells(self) -> int:
        """Number of place cells."""
        return int(self.centres.shape[0])

    def encode(self, positions: Any) -> Any:
        """Target activity (..., num_cells) summing to 1 over cells, for positions (..., 2); torch in, torch out."""
        import torch

        tensor = torch.as_tensor(positions, dtype=torch.float32)
        centres = torch.as_tensor(self.centres)
        squared = ((tensor[..., None, :] - centres) ** 2).sum(-1)
        activity = torch.softmax(-squared / (2 * self.sigma ** 2), dim=-1)
        if self.difference_of_gaussians:
            activity = activity - torch.softmax(-squared / (2 * self.surround_scale * self.sigma ** 2), dim=-1)
            activity = activity - activity.min(dim=-1, keepdim=True).values
            activity = activity / activity.sum(dim=-1, keepdim=True)
        return activity if isinstance(positions, torch.Tensor) else activity.numpy()

    def decode(self, activity: Any, top_k: int = 3) -> np.ndarray:
        """Position (..., 2): the mean centre of the ``top_k`` most active cells (Sorscher's decoder)."""
        values = np.asarray(activity.detach().cpu() if hasattr(activity, "detach") else activity)
        top = np.argpartition(-values, top_k - 1, axis=-1)[..., :top_k]
        return self.centres[top].mean(axis=-2)

    def state(self) -> dict:
        """What a checkpoint stores to rebuild these cells exactly."""
        return {"num_cells": self.num_cells, "sigma": self.sigma, "surround_scale": self.surround_scale,
                "difference_of_gaussians": self.difference_of_gaussians, "box_width": self.box_width,
                "box_height": self.box_height, "seed": self.seed, "centres": self.centres.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> PlaceCells:
        """Rebuild from ``state()``."""
        return cls(state["num_cells"], state["sigma"], state["surround_scale"], state["difference_of_gaussians"],
                   state["box_width"], state["box_height"], state["seed"], np.asarray(state["centres"]))


class HeadDirectionCells:
    """Head-direction cells, preferred directions evenly spaced from a seeded random offset; von Mises tuning."""

    def __init__(self, num_cells: int = 12, concentration: float = 20.0, seed: int = 0,
                 preferred: np.ndarray | None = None) -> None:
        """Concentration 20 and 12 cells are SSM-PC's (and Banino et al.'s) settings."""
        if num_cells < 2 or not concentration > 0:
            raise ValueError(f"head-direction cells need num_cells >= 2 and concentration > 0, got "
                             f"{num_cells}, {concentration}")
        self.concentration, self.seed = float(concentration), int(seed)
        if preferred is None:
            offset = np.random.default_rng([self.seed, 0x4D1]).uniform(0.0, 2 * math.pi / num_cells)
            preferred = _wrap(offset + np.arange(num_cells) * 2 * math.pi / num_cells)
        self.preferred = np.asarray(preferred, dtype=np.float32)

    @property
    def num_cells(self) -> int:
        """Number of head-direction cells."""
        return int(self.preferred.shape[0])

    def encode(self, headings: Any) -> Any:
        """Target activity (..., num_cells) for headings (...) in radians; torch in, torch out."""
        import torch

        tensor = torch.as_tensor(headings, dtype=torch.float32)
        logits = self.concentration * torch.cos(tensor[..., None] - torch.as_tensor(self.preferred))
        activity = torch.softmax(logits, dim=-1)
        return activity if isinstance(headings, torch.Tensor) else activity.numpy()

    def decode(self, activity: Any) -> np.ndarray:
        """Heading (...) in radians: the activity-weighted circular mean of the preferred directions."""
        values = np.asarray(activity.detach().cpu() if hasattr(activity, "detach") else activity)
        return np.arctan2(values @ np.sin(self.preferred), values @ np.cos(self.preferred))

    def state(self) -> dict:
        """What a checkpoint stores to rebuild these cells exactly."""
        return {"num_cells": self.num_cells, "concentration": self.concentration, "seed": self.seed,
                "preferred": self.preferred.tolist()}

    @classmethod
    def from_state(cls, state: dict) -> HeadDirectionCells:
        """Rebuild from ``state()``."""
        return cls(state["num_cells"], state["concentration"], state["seed"], np.asarray(state["preferred"]))


# ------------------------------------------------------------------------------------------ networks


def _torch_modules():
    import torch
    from torch import nn

    class VanillaRNNIntegrator(nn.Module):
        """Seed 003's path integrator: 2-D velocity -> ReLU RNN (no bias) -> place-cell logits.

        The initial hidden state is a linear read-in of the start position's place code. Two choices of ours make
        it learn in thousands rather than a hundred thousand steps on a CPU: the place code is multiplied by the
        number of cells before the read-in (its entries are ~1/Np, so the initial state would start ~1000x too
        small), and the recurrent weights start orthogonal (an integrator neither decays nor explodes).
        """

        kind = "rnn"

        def __init__(self, num_place_cells: int, hidden_size: int = 4096, weight_decay: float = 1e-4,
                     num_hd_cells: int = 0) -> None:
            super().__init__()
            self.hidden_size, self.weight_decay = hidden_size, weight_decay
            self.encoder = nn.Linear(num_place_cells, hidden_size, bias=False)
            self.rnn = nn.RNN(2, hidden_size, nonlinearity="relu", bias=False, batch_first=True)
            self.decoder = nn.Linear(hidden_size, num_place_cells, bias=False)
            self.code_scale = float(num_place_cells)
            nn.init.orthogonal_(self.rnn.weight_hh_l0)

        def units(self, inputs: torch.Tensor, start_place: torch.Tensor, start_hd: torch.Tensor | None = None):
            """Hidden activity (B, T, hidden) for velocity inputs (B, T, 2)."""
            initial = self.encoder(start_place * self.code_scale)[None]
            return self.rnn(inputs[..., :2], initial)[0]

        def forward(self, inputs, start_place, start_hd=None):
            """(place logits (B, T, Np), None, hidden activity (B, T, hidden))."""
            units = self.units(inputs, start_place)
            return self.decoder(units), None, units

        def regularisation(self) -> torch.Tensor:
            """L2 penalty on the recurrent weights (seed 003's weight decay)."""
            return self.weight_decay * (self.rnn.weight_hh_l0 ** 2).sum()

    class LSTMBottleneckIntegrator(nn.Module):
        """SSM-PC's grid-cell module: [vx, vy, omega] -> LSTM -> linear bottleneck (dropout) -> place, HD logits.

        The initial (h, c) are linear read-ins of the start place and head-direction codes; the bottleneck units
        are the ones analysed for grid-like tuning.
        """

        kind = "lstm"

        def __init__(self, num_place_cells: int, hidden_size: int = 128, bottleneck_size: int = 256,
                     num_hd_cells: int = 12, dropout: float = 0.5, weight_decay: float = 1e-5) -> None:
            super().__init__()
            self.hidden_size, self.bottleneck_size, self.weight_decay = hidden_size, bottleneck_size, weight_decay
            codes = num_place_cells + num_hd_cells
            self.init_h, self.init_c = nn.Linear(codes, hidden_size), nn.Linear(codes, hidden_size)
            self.lstm = nn.LSTM(3, hidden_size, batch_first=True)
            self.bottleneck = nn.Linear(hidden_size, bottleneck_size, bias=False)
            self.dropout = nn.Dropout(dropout)
            self.place_head = nn.Linear(bottleneck_size, num_place_cells)
            self.hd_head = nn.Linear(bottleneck_size, num_hd_cells)

        def units(self, inputs, start_place, start_hd=None):
            """Bottleneck activity (B, T, bottleneck) for inputs (B, T, 3) = [vx, vy, omega]."""
            codes = torch.cat([start_place, start_hd], dim=-1)
            state = (self.init_h(codes)[None], self.init_c(codes)[None])
            return self.bottleneck(self.lstm(inputs, state)[0])

        def forward(self, inputs, start_place, start_hd=None):
            """(place logits, head-direction logits, bottleneck activity)."""
            units = self.units(inputs, start_place, start_hd)
            dropped = self.dropout(units)
            return self.place_head(dropped), self.hd_head(dropped), units

        def regularisation(self) -> torch.Tensor:
            """L2 penalty on the heads (Banino et al. regularise the output layers)."""
            return self.weight_decay * ((self.place_head.weight ** 2).sum() + (self.hd_head.weight ** 2).sum())

    return VanillaRNNIntegrator, LSTMBottleneckIntegrator


@dataclass
class ModelConfig:
    """Which path integrator and its sizes; defaults give seed 003's vanilla RNN at a size this CPU can train."""

    kind: str = "rnn"
    hidden_size: int = 512
    bottleneck_size: int = 256
    num_place_cells: int = 512
    place_cell_sigma: float = 0.12
    surround_scale: float = 2.0
    difference_of_gaussians: bool = True
    num_hd_cells: int = 12
    hd_concentration: float = 20.0
    dropout: float = 0.5
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        if self.kind not in ("rnn", "lstm"):
            raise ValueError(f"ModelConfig.kind must be 'rnn' (seed 003) or 'lstm' (SSM-PC), got {self.kind!r}")
        for name in ("hidden_size", "bottleneck_size", "num_place_cells", "num_hd_cells"):
            if int(getattr(self, name)) < 2:
                raise ValueError(f"ModelConfig.{name} must be at least 2, got {getattr(self, name)}")


def build_model(config: ModelConfig):
    """A fresh path integrator (torch module) for ``config``."""
    rnn_class, lstm_class = _torch_modules()
    if config.kind == "rnn":
        return rnn_class(config.num_place_cells, config.hidden_size, config.weight_decay)
    return lstm_class(config.num_place_cells, config.hidden_size, config.bottleneck_size, config.num_hd_cells,
                      config.dropout, config.weight_decay)


def build_cells(config: ModelConfig, trajectory: TrajectoryConfig, seed: int) -> tuple[PlaceCells, HeadDirectionCells]:
    """The place and head-direction cells of a run, fixed by its seed."""
    place = PlaceCells(config.num_place_cells, config.place_cell_sigma, config.surround_scale,
                       config.difference_of_gaussians, trajectory.box_width, trajectory.box_height, seed)
    return place, HeadDirectionCells(config.num_hd_cells, config.hd_concentration, seed)


def network_batch(trajectories: Trajectories, place: PlaceCells, hd: HeadDirectionCells) -> dict:
    """Tensors for one batch: inputs [vx, vy, omega] (B, T, 3), start codes, place and HD targets."""
    import torch

    inputs = np.concatenate([trajectories.velocities, trajectories.angular_velocity[..., None]], axis=-1)
    positions = torch.as_tensor(trajectories.positions, dtype=torch.float32)
    headings = torch.as_tensor(trajectories.headings, dtype=torch.float32)
    return {"inputs": torch.as_tensor(inputs, dtype=torch.float32),
            "start_place": place.encode(positions[:, 0]), "start_hd": hd.encode(headings[:, 0]),
            "place_targets": place.encode(positions[:, 1:]), "hd_targets": hd.encode(headings[:, 1:]),
            "positions": positions[:, 1:]}


def path_integration_loss(model, batch: dict) -> tuple[Any, dict]:
    """Cross-entropy to the place (and HD) targets plus the model's weight penalty; returns (loss, parts)."""
    import torch

    place_logits, hd_logits, _ = model(batch["inputs"], batch["start_place"], batch["start_hd"])
    place_ce = -(batch["place_targets"] * torch.log_softmax(place_logits, dim=-1)).sum(-1).mean()
    loss = place_ce + model.regularisation()
    parts = {"place_ce": place_ce.item()}
    if hd_logits is not None:
        hd_ce = -(batch["hd_targets"] * torch.log_softmax(hd_logits, dim=-1)).sum(-1).mean()
        loss = loss + hd_ce
        parts["hd_ce"] = hd_ce.item()
    return loss, parts


# ------------------------------------------------------------------------------------------ analysis


def collect_activity(model, place: PlaceCells, hd: HeadDirectionCells, trajectory: TrajectoryConfig,
                     batches: int = 10, batch_size: int = 200, steps: int = 20, seed: int = 1234) -> dict:
    """Run the model on fresh walks; returns positions (N, 2), unit activity (N, U) and decoded positions."""
    import torch

    model.eval()
    positions, units, decoded = [], [], []
    with torch.no_grad():
        for index in range(batches):
            walks = generate_trajectories(batch_size, steps, trajectory, seed=seed + index)
            batch = network_batch(walks, place, hd)
            place_logits, _, activity = model(batch["inputs"], batch["start_place"], batch["start_hd"])
            positions.append(walks.positions[:, 1:].reshape(-1, 2))
            units.append(activity.reshape(-1, activity.shape[-1]).numpy())
            decoded.append(place.decode(place_logits).reshape(-1, 2))
    return {"positions": np.concatenate(positions), "units": np.concatenate(units),
            "decoded": np.concatenate(decoded), "steps": steps}


def decoding_error_cm(model, place: PlaceCells, hd: HeadDirectionCells, trajectory: TrajectoryConfig,
                      steps: int, walks: int = 500, seed: int = 4321) -> float:
    """Mean distance (cm) between the decoded and the true position after ``steps`` steps of path integration."""
    import torch

    model.eval()
    with torch.no_grad():
        trajectories = generate_trajectories(walks, steps, trajectory, seed=seed)
        batch = network_batch(trajectories, place, hd)
        place_logits, _, _ = model(batch["inputs"], batch["start_place"], batch["start_hd"])
    decoded = place.decode(place_logits[:, -1])
    return float(100.0 * np.linalg.norm(decoded - trajectories.positions[:, -1], axis=-1).mean())


def rate_maps(positions: np.ndarray, activity: np.ndarray, box_width: float, box_height: float,
              bins: int = 20) -> np.ndarray:
    """Mean activity of each unit in each spatial bin, (units, bins, bins) indexed [unit, iy, ix]; NaN if unvisited."""
    ix = np.clip(((positions[:, 0] / box_width + 0.5) * bins).astype(int), 0, bins - 1)
    iy = np.clip(((positions[:, 1] / box_height + 0.5) * bins).astype(int), 0, bins - 1)
    flat = iy * bins + ix
    counts = np.bincount(flat, minlength=bins * bins).astype(float)
    sums = np.zeros((activity.shape[1], bins * bins))
    np.add.at(sums.T, flat, activity)
    with np.errstate(invalid="ignore", divide="ignore"):
        maps = sums / counts
    maps[:, counts == 0] = np.nan
    return maps.reshape(-1, bins, bins)


def _cross_correlate_full(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """out[..., dy + n - 1, dx + m - 1] = sum_ij a[i + dy, j + dx] * b[i, j], by FFT, for (..., n, m) inputs."""
    n, m = a.shape[-2:]
    shape = (2 * n, 2 * m)
    product = np.fft.rfft2(a, s=shape) * np.conj(np.fft.rfft2(b, s=shape))
    full = np.fft.irfft2(product, s=shape)
    return np.roll(full, (n - 1, m - 1), axis=(-2, -1))[..., :2 * n - 1, :2 * m - 1]


def autocorrelograms(maps: np.ndarray, min_overlap: int = 20) -> np.ndarray:
    """Spatial autocorrelograms (..., 2b-1, 2b-1): Pearson correlation of each map with itself at every lag.

    Unvisited (NaN) bins are left out of each lag's overlap; lags with fewer than ``min_overlap`` bins give 0.
    """
    valid = np.isfinite(maps).astype(float)
    values = np.nan_to_num(maps)
    overlap = _cross_correlate_full(valid, valid)
    sum_a, sum_b = _cross_correlate_full(values, valid), _cross_correlate_full(valid, values)
    sq_a, sq_b = _cross_correlate_full(values ** 2, valid), _cross_correlate_full(valid, values ** 2)
    cross = _cross_correlate_full(values, values)
    variance = (overlap * sq_a - sum_a ** 2) * (overlap * sq_b - sum_b ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (overlap * cross - sum_a * sum_b) / np.sqrt(np.maximum(variance, 0.0))
    good = (overlap >= min_overlap - 0.5) & (variance > 1e-12)
    return np.where(good, corr, 0.0)


class GridScorer:
    """Grid scores of rate maps over ring masks of the autocorrelogram (the DeepMind scorer's method).

    score 60 = mean(c60, c120) - mean(c30, c90, c150) and score 90 = c90 - mean(c45, c135), where c_a is the
    correlation, inside a ring, of the autocorrelogram with itself rotated by a degrees; each unit's score is the
    best over rings of inner radius 0.2 and outer radius 0.4..1.0 (fractions of the map width in bins).
    """

    ANGLES = (30, 45, 60, 90, 120, 135, 150)

    def __init__(self, bins: int = 20, inner: float = 0.2, outers: tuple[float, ...] | None = None) -> None:
        """Rings for ``bins`` x ``bins`` rate maps."""
        self.bins = bins
        outers = tuple(np.linspace(0.4, 1.0, 10)) if outers is None else outers
        size = 2 * bins - 1
        yy, xx = np.mgrid[0:size, 0:size] - (bins - 1)
        radius = np.hypot(yy, xx)
        self.rings = [(radius >= inner * bins) & (radius <= outer * bins) for outer in outers]
        self._samplers = {angle: _rotation_sampler(size, math.radians(angle)) for angle in self.ANGLES}

    def scores(self, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score 60, score 90), each (units,), for rate maps (units, bins, bins)."""
        sacs = autocorrelograms(maps)
        rotated = {angle: _rotate(sacs, sampler) for angle, sampler in self._samplers.items()}
        best_60 = np.full(len(maps), -np.inf)
        best_90 = np.full(len(maps), -np.inf)
        for ring in self.rings:
            corr = {angle: _ring_correlation(sacs, rotated[angle], ring) for angle in self.ANGLES}
            score_60 = (corr[60] + corr[120]) / 2 - (corr[30] + corr[90] + corr[150]) / 3
            score_90 = corr[90] - (corr[45] + corr[135]) / 2
            best_60, best_90 = np.maximum(best_60, score_60), np.maximum(best_90, score_90)
        return best_60, best_90


def _rotation_sampler(size: int, angle: float) -> tuple[np.ndarray, ...]:
    """Bilinear sampling indices and weights that rotate a (size, size) image by ``angle`` about its centre."""
    centre = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size] - centre
    src_x = math.cos(angle) * xx + math.sin(angle) * yy + centre
    src_y = -math.sin(angle) * xx + math.cos(angle) * yy + centre
    x0, y0 = np.floor(src_x).astype(int), np.floor(src_y).astype(int)
    fx, fy = src_x - x0, src_y - y0
    corners = []
    for dy, dx, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yi, xi = y0 + dy, x0 + dx
        inside = (yi >= 0) & (yi < size) & (xi >= 0) & (xi < size)
        corners.append((np.clip(yi, 0, size - 1), np.clip(xi, 0, size - 1), np.where(inside, weight, 0.0)))
    return tuple(corners)


def _rotate(images: np.ndarray, sampler: tuple) -> np.ndarray:
    return sum(images[..., yi, xi] * weight for yi, xi, weight in sampler)


def _ring_correlation(sacs: np.ndarray, rotated: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Correlation inside the ring of each autocorrelogram with its rotation (centred on the unrotated mean)."""
    area = ring.sum()
    inside, rotated_inside = sacs[:, ring], rotated[:, ring]
    mean = inside.sum(-1, keepdims=True) / area
    centred = inside - mean
    variance = (centred ** 2).sum(-1) / area + 1e-5
    return ((centred * (rotated_inside - mean)).sum(-1) / area) / variance


def plot_rate_maps(maps: np.ndarray, scores: np.ndarray, path: Path | str, title: str = "") -> Path:
    """Save the rate maps (units, bins, bins) in a square mosaic, each titled with its grid score, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = len(maps)
    columns = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(1.8 * columns, 1.9 * rows + 0.4), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index < count:
            finite = np.isfinite(maps[index]).any()
            shown = np.nan_to_num(maps[index], nan=float(np.nanmin(maps[index])) if finite else 0.0)
            axis.imshow(shown, origin="lower", cmap="jet", interpolation="gaussian")
            axis.set_title(f"{scores[index]:.2f}", fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def analyse(model, place: PlaceCells, hd: HeadDirectionCells, trajectory: TrajectoryConfig,
            bins: int = 20, batches: int = 20, threshold: float = 0.3, seed: int = 1234) -> dict:
    """Rate maps, grid scores 60/90, the fraction of units above ``threshold`` and decoding errors (cm)."""
    activity = collect_activity(model, place, hd, trajectory, batches=batches, seed=seed)
    maps = rate_maps(activity["positions"], activity["units"], trajectory.box_width, trajectory.box_height, bins)
    score_60, score_90 = GridScorer(bins).scores(maps)
    active = np.nanmax(maps.reshape(len(maps), -1), axis=1) > 1e-6
    return {
        "maps": maps, "score_60": score_60, "score_90": score_90,
        "fraction_grid_60": float(np.mean(score_60 > threshold)),
        "fraction_grid_90": float(np.mean(score_90 > threshold)),
        "active_units": int(active.sum()), "units": int(len(maps)),
        "decoding_error_cm_20": decoding_error_cm(model, place, hd, trajectory, 20),
        "decoding_error_cm_100": decoding_error_cm(model, place, hd, trajectory, 100),
    }


def summary_metrics(analysis: dict) -> dict:
    """The JSON-friendly numbers of ``analyse`` (no arrays)."""
    score_60 = analysis["score_60"]
    return {key: analysis[key] for key in ("fraction_grid_60", "fraction_grid_90", "active_units", "units",
                                            "decoding_error_cm_20", "decoding_error_cm_100")} | {
        "grid_score_60_max": float(score_60.max()), "grid_score_60_median": float(np.median(score_60)),
        "grid_score_90_max": float(analysis["score_90"].max())}


# ------------------------------------------------------------------------------------------ training


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


def write_report(loaded: LoadedIntegrator, out_dir: Path | str, seed: int = 1234, batches: int = 20) -> dict:
    """Analyse a trained model: metrics.json, ratemaps_best16.png and ratemaps_all.png in ``out_dir``."""
    out_dir = Path(out_dir)
    result = analyse(loaded.model, loaded.place_cells, loaded.hd_cells, loaded.config.trajectory,
                     batches=batches, seed=seed)
    metrics = summary_metrics(result) | {"step": loaded.step,
                                         "train_seconds": float(loaded.metadata.get("train_seconds", 0.0))}
    order = np.argsort(-result["score_60"])
    best = order[:16]
    plot_rate_maps(result["maps"][best], result["score_60"][best], out_dir / "ratemaps_best16.png",
                   f"{loaded.config.model.kind}: 16 best units by grid score 60")
    shown = order[:min(64, len(order))]
    plot_rate_maps(result["maps"][shown], result["score_60"][shown], out_dir / "ratemaps_top64.png",
                   f"{loaded.config.model.kind}: top 64 units by grid score 60")
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics
