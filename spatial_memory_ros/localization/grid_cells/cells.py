"""Place cells and head-direction cells: the path integrators' targets, and position / heading decoders.

Each population stores its centres or preferred directions (``state``) so a checkpoint rebuilds it exactly.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from spatial_memory_ros.localization.grid_cells.trajectories import wrap_angle


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
            preferred = wrap_angle(offset + np.arange(num_cells) * 2 * math.pi / num_cells)
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
