"""A path integrator measured: activity on fresh walks, decoding error, rate maps with grid scores, figures.

``write_report`` is what a training run ends with (metrics.json and rate-map mosaics in its folder).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spatial_memory_ros.localization.grid_cells.cells import HeadDirectionCells, PlaceCells
from spatial_memory_ros.localization.grid_cells.model import network_batch
from spatial_memory_ros.localization.grid_cells.scores import GridScorer, rate_maps
from spatial_memory_ros.localization.grid_cells.trajectories import TrajectoryConfig, generate_trajectories

if TYPE_CHECKING:  # training imports this module (decoding_error_cm), so the type is named only for checkers
    from spatial_memory_ros.localization.grid_cells.training import LoadedIntegrator


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
