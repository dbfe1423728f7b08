"""The two path integrators (torch modules, torch imported lazily), their settings, a batch and its loss.

``VanillaRNNIntegrator`` is seed 003's (Sorscher et al.'s) ReLU RNN; ``LSTMBottleneckIntegrator`` is SSM-PC's
(Banino et al.'s) LSTM with a linear bottleneck. Both map velocity inputs and start codes to place-cell logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from spatial_memory_ros.localization.grid_cells.cells import HeadDirectionCells, PlaceCells
from spatial_memory_ros.localization.grid_cells.trajectories import Trajectories, TrajectoryConfig


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
