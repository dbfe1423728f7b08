"""How right the BEV predictor's wall cells are, by distance and by the angle they are seen at (session 27).

On frames of unseen Memory-Maze mazes (seeds 2,000,000 up, uniformly random free poses, the shipped model behind the
camera adapter), every cell the model calls a wall is checked against the world's oracle BEV: a true wall, floor, or
a cell the camera cannot see at all. Cells are grouped by range band and by ``perception.wall_incidence`` (|cos|
between the camera ray and the wall's normal: 1 head-on, 0 edge-on); the "all" column of each band is the baseline
the angle is judged against. It tells whether leaving edge-on walls out of the BEV (``without_grazing_walls``)
drops wrong walls or right ones.

  .venv/bin/python benchmarks/diagnostics/bev_wall_incidence.py [--mazes 6] [--frames-per-maze 40] [--sizes 13 15]

Prints a table and writes benchmarks/results/bev_wall_incidence.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from spatial_memory_ros.perception.wall_incidence import wall_incidence  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bev_wall_incidence.json"
RANGE_BANDS = ((0.0, 3.0), (3.0, 5.0), (5.0, 9.0))
INCIDENCE_BANDS = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.7), (0.7, 1.01))
OUTCOMES = ("wall", "floor", "unseen")


def tally(occupancy: np.ndarray, truth: np.ndarray, ranges: np.ndarray, forward: np.ndarray, left: np.ndarray,
          counts: np.ndarray) -> None:
    """Add one frame's predicted wall cells to ``counts`` (range band, incidence band, outcome)."""
    said_wall = occupancy >= 50
    incidence = wall_incidence(occupancy, forward, left)
    outcome = np.where(truth == 100, 0, np.where(truth == 0, 1, 2))
    for i, (near, far) in enumerate(RANGE_BANDS):
        in_band = said_wall & (ranges >= near) & (ranges < far)
        for j, (low, high) in enumerate(INCIDENCE_BANDS):
            cells = in_band & (incidence >= low) & (incidence < high)
            counts[i, j] += np.bincount(outcome[cells], minlength=3)


def measure(sizes: list[int], mazes: int, frames_per_maze: int) -> np.ndarray:
    """(range bands, incidence bands, outcomes) counts of predicted wall cells over the frames."""
    import torch

    from spatial_memory_ros.perception.frames import BENCHMARK_SEED_BASE, render_world_frames, world_camera
    from spatial_memory_ros.perception.predictor import checkpoint_for_world, load_predictor
    from spatial_memory_ros.sim.interface import world_class_names

    torch.set_num_threads(1)
    predictor = load_predictor(checkpoint_for_world("memory_maze"))
    adapter = predictor.for_camera(world_camera("memory_maze"), world_class_names("memory_maze"))
    forward, left = predictor.geometry.cell_centres()
    ranges = np.hypot(forward, left)
    counts = np.zeros((len(RANGE_BANDS), len(INCIDENCE_BANDS), len(OUTCOMES)), np.int64)
    for size in sizes:
        for seed in range(BENCHMARK_SEED_BASE, BENCHMARK_SEED_BASE + mazes):
            frames = render_world_frames("memory_maze", seed, frames_per_maze, size=size)
            occupancy, _ = adapter.predict_arrays(frames.images)
            for predicted, truth in zip(occupancy, frames.occupancy):
                tally(predicted, truth, ranges, forward, left, counts)
    return counts


def rows(counts: np.ndarray) -> list[dict]:
    """One row per range band: per incidence band and for all, cells and the share that is truly a wall."""
    out = []
    for i, (near, far) in enumerate(RANGE_BANDS):
        row = {"range_m": [near, far]}
        for j, (low, high) in enumerate(INCIDENCE_BANDS):
            row[f"incidence {low:.1f}-{min(high, 1.0):.1f}"] = _shares(counts[i, j])
        row["all"] = _shares(counts[i].sum(0))
        out.append(row)
    return out


def _shares(counts: np.ndarray) -> dict:
    total = int(counts.sum())
    return {"cells": total, **{name: round(float(counts[k]) / total, 3) if total else None
                               for k, name in enumerate(OUTCOMES)}}


def print_table(table: list[dict]) -> None:
    columns = [key for key in table[0] if key != "range_m"]
    print("share of the predicted wall cells that are true walls (cells)")
    print(f"{'range':>9} " + " ".join(f"{c:>17}" for c in columns))
    for row in table:
        near, far = row["range_m"]
        cells = [f"{row[c]['wall']:.2f} ({row[c]['cells']})" if row[c]["cells"] else "-" for c in columns]
        print(f"{near:3.0f}-{far:.0f} m " + " ".join(f"{c:>17}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mazes", type=int, default=6, help="mazes per size (default 6)")
    parser.add_argument("--frames-per-maze", type=int, default=40, help="frames per maze (default 40)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[13, 15], choices=(9, 11, 13, 15))
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"JSON to write (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.mazes < 1 or args.frames_per_maze < 1:
        parser.error("--mazes and --frames-per-maze must be at least 1")
    started = time.monotonic()
    table = rows(measure(args.sizes, args.mazes, args.frames_per_maze))
    print_table(table)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps({"command": sys.argv, "sizes": args.sizes, "mazes": args.mazes,
                                        "frames_per_maze": args.frames_per_maze, "rows": table,
                                        "seconds": round(time.monotonic() - started, 1)}, indent=1))
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
