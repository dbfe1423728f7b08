#!/usr/bin/env python3
"""Grid-cell benchmark (Localizer issue): the shipped path integrator and the analytic grid code.

1. The trained network (default spatial_memory_ros/models/grid_cells.pt): decoding error (cm) after 20 and 100
   steps of path integration, grid scores 60 / 90 over ring masks and the fraction of units above 0.3 (and above
   the untrained network's 99th-percentile score, a stricter control), the training time stored in the checkpoint;
   the rate maps of its 16 best units in benchmarks/results/grid_cells_ratemaps.png.
   Baselines measured in the same run: the same network untrained (its initial weights), and exact integration of
   the velocities read out through the same place cells (the floor that the place-cell decoder allows).
2. The analytic multi-module grid code (localization/grid_code.py) that teammates send: message size, decoding error and
   far-off rate over a 15 m x 15 m maze with each phase quantised to 2, 3, 4, 6 bits (and unquantised), the
   decoding range (largest square decoded without a far-off error), and the error when the receiver has a prior.

Prints tables and writes benchmarks/results/grid_cells.json (grid_cells_quick.json with --quick).
  .venv/bin/python benchmarks/grid_cells.py [--quick] [--checkpoint PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spatial_memory_ros.localization.grid_cells.analysis import analyse, plot_rate_maps, summary_metrics  # noqa: E402
from spatial_memory_ros.localization.grid_cells.model import build_model  # noqa: E402
from spatial_memory_ros.localization.grid_cells.training import (  # noqa: E402
    DEFAULT_CHECKPOINT, CheckpointError, LoadedIntegrator, load_path_integrator)
from spatial_memory_ros.localization.grid_cells.trajectories import generate_trajectories  # noqa: E402
from spatial_memory_ros.localization.grid_code import GridCode, decoding_stats  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
BITS = (2, 3, 4, 6, None)
RANGES_M = (10.0, 15.0, 20.0, 30.0)
THRESHOLD = 0.3


def network_rows(loaded: LoadedIntegrator, batches: int, walks: int) -> list[dict]:
    """Trained vs untrained network (same architecture and seed) vs exact integration through the place code."""
    import torch

    torch.set_num_threads(1)
    trajectory = loaded.config.trajectory
    torch.manual_seed(loaded.config.seed)
    untrained = build_model(loaded.config.model)
    rows = []
    for name, model in (("trained network", loaded.model), ("untrained network", untrained)):
        started = time.perf_counter()
        result = analyse(model, loaded.place_cells, loaded.hd_cells, trajectory, batches=batches)
        rows.append({"model": name, **summary_metrics(result), "analysis_seconds": time.perf_counter() - started,
                     "_maps": result["maps"], "_scores": result["score_60"]})
    control = float(np.percentile(rows[1]["_scores"], 99))
    for row in rows[:2]:
        row["untrained_p99_score_60"] = control
        row["fraction_above_untrained_p99"] = float(np.mean(row["_scores"] > control))
    rows.append({"model": "exact integration + place-cell decoder",
                 "decoding_error_cm_20": exact_decoding_error_cm(loaded, 20, walks),
                 "decoding_error_cm_100": exact_decoding_error_cm(loaded, 100, walks)})
    return rows


def exact_decoding_error_cm(loaded: LoadedIntegrator, steps: int, walks: int, seed: int = 4321) -> float:
    """Error of decoding the true end point's place code: what a perfect integrator would score."""
    trajectories = generate_trajectories(walks, steps, loaded.config.trajectory, seed=seed)
    end = trajectories.positions[:, -1]
    decoded = loaded.place_cells.decode(loaded.place_cells.encode(end))
    return float(100.0 * np.linalg.norm(decoded - end, axis=-1).mean())


def grid_code_rows(code: GridCode, samples: int) -> list[dict]:
    """Per bit depth: message bits, error over a 15 m maze, decoding range, error with a 2 m prior."""
    rows = []
    for bits in BITS:
        started = time.perf_counter()
        maze = decoding_stats(code, bits, (0.0, 0.0, 15.0, 15.0), samples=samples)
        decode_ms = 1000.0 * (time.perf_counter() - started) / samples
        in_range = [side for side in RANGES_M
                    if decoding_stats(code, bits, (0.0, 0.0, side, side), samples=samples, seed=1)["far_off_rate"] == 0]
        prior = decoding_stats(code, bits, (0.0, 0.0, 15.0, 15.0), samples=samples, seed=2, near_radius=2.0)
        rows.append({"bits_per_phase": bits, "message_bits": None if bits is None else code.message_bits(bits),
                     "maze_mean_error_cm": 100 * maze["mean_error_m"], "maze_p95_error_cm": 100 * maze["p95_error_m"],
                     "maze_far_off_rate": maze["far_off_rate"], "decode_ms": decode_ms,
                     "decoding_range_m": max(in_range) if in_range else 0.0,
                     "prior_2m_mean_error_cm": 100 * prior["mean_error_m"],
                     "prior_2m_far_off_rate": prior["far_off_rate"]})
    return rows


def print_tables(rows: list[dict], code_rows: list[dict], code: GridCode, loaded: LoadedIntegrator) -> None:
    model = loaded.config.model
    size = (f"{model.hidden_size} units" if model.kind == "rnn"
            else f"LSTM {model.hidden_size} + {model.bottleneck_size}")
    print(f"\nPath integrator: {model.kind} ({size}), {model.num_place_cells} place cells, trained "
          f"{loaded.step} steps in {loaded.metadata.get('train_seconds', 0.0) / 60:.1f} min")
    print(f"{'model':<40} {'err@20 cm':>10} {'err@100 cm':>11} {'grid60>0.3':>11} {'grid90>0.3':>11} "
          f"{'max g60':>8} {'g60>ctrl':>9}")
    for row in rows:
        grid = (f"{row['fraction_grid_60']:>11.1%} {row['fraction_grid_90']:>11.1%} {row['grid_score_60_max']:>8.2f} "
                f"{row['fraction_above_untrained_p99']:>9.1%}" if "fraction_grid_60" in row
                else f"{'-':>11} {'-':>11} {'-':>8} {'-':>9}")
        print(f"{row['model']:<40} {row['decoding_error_cm_20']:>10.1f} {row['decoding_error_cm_100']:>11.1f} {grid}")
    print(f"(ctrl: the untrained network's 99th-percentile grid score 60, {rows[0]['untrained_p99_score_60']:.2f}, "
          "a shuffle-like control for the lenient 0.3 threshold)")
    periods = ", ".join(f"{p:.2f}" for p in code.periods)
    print(f"\nAnalytic grid code: {code.num_modules} modules, periods {periods} m (ratio 1.4), hexagonal")
    print(f"{'bits/phase':>10} {'msg bits':>9} {'15 m maze: mean cm':>19} {'p95 cm':>7} {'far-off':>8} "
          f"{'range m':>8} {'2 m prior: cm':>14} {'ms/decode':>10}")
    for row in code_rows:
        bits = "exact" if row["bits_per_phase"] is None else str(row["bits_per_phase"])
        message = "-" if row["message_bits"] is None else str(row["message_bits"])
        print(f"{bits:>10} {message:>9} {row['maze_mean_error_cm']:>19.2f} {row['maze_p95_error_cm']:>7.2f} "
              f"{row['maze_far_off_rate']:>8.1%} {row['decoding_range_m']:>8.0f} "
              f"{row['prior_2m_mean_error_cm']:>14.2f} {row['decode_ms']:>10.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer walks and decodes (a smoke run)")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="path integrator to measure")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    started = time.time()
    try:
        loaded = load_path_integrator(args.checkpoint)
    except (FileNotFoundError, CheckpointError) as error:
        print(error, file=sys.stderr)
        return 1
    batches, walks, samples = (4, 100, 30) if args.quick else (20, 500, 100)
    rows = network_rows(loaded, batches, walks)
    code = GridCode()
    code_rows = grid_code_rows(code, samples)
    print_tables(rows, code_rows, code, loaded)
    suffix = "_quick" if args.quick else ""
    figure = RESULTS / f"grid_cells_ratemaps{suffix}.png"
    best = np.argsort(-rows[0]["_scores"])[:16]
    plot_rate_maps(rows[0]["_maps"][best], rows[0]["_scores"][best], figure,
                   "16 best units by grid score 60 (trained network)")
    out = args.out or RESULTS / f"grid_cells{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    clean = [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
    out.write_text(json.dumps({
        "benchmark": "grid_cells", "quick": args.quick, "checkpoint": str(args.checkpoint),
        "model": {"kind": loaded.config.model.kind, "hidden_size": loaded.config.model.hidden_size,
                  "num_place_cells": loaded.config.model.num_place_cells, "steps": loaded.step,
                  "train_seconds": loaded.metadata.get("train_seconds")},
        "grid_score_threshold": THRESHOLD, "network": clean,
        "grid_code": {"periods_m": code.periods.tolist(), "rows": code_rows},
        "ratemaps_png": str(figure.relative_to(REPO)), "machine": platform.platform(), "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "wall_seconds": time.time() - started}, indent=2))
    print(f"\nwrote {out} and {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
