#!/usr/bin/env python3
"""Localization in another world (issue 12): TEM ATE with *predicted* BEVs against dead reckoning, on Memory-Maze.

Each run drives one robot with the random walker (steering on a laser scan: it only makes the trajectory) for
``--steps`` steps at 10 Hz in a Memory-Maze of benchmark seeds (1,000,000 up: never used for training data), with
5% odometry noise. The camera images along the run go through the BEV predictor (a checkpoint through its camera
adapter, perception/camera_adapter.py), and the TEM localizer (localization/tem.py, with its plausibility gate) is
corrected by them:

- true map: the maze's walls rasterised at 0.25 m (as benchmarks/localization.py);
- self-built map: a map voted from the localizer's own estimates, as the live stack builds it (the node's settings,
  ``SELF_BUILT[-1]`` in benchmarks/localization.py);
- the same with the oracle BEV, the reference of what the localizer can do in that world.

Baseline in the same run: dead reckoning (the world's integral of the noisy twist). Targets (issue 12): ATE <= 0.5x
dead reckoning on a true map and <= 0.8x on a self-built map, never worse than dead reckoning in any run.

Resumable: each finished run is stored in the results JSON at once (keyed world/size/seed/checkpoint) and skipped
by a rerun. Prints a table, writes benchmarks/results/localization_worlds.json.
  .venv/bin/python benchmarks/localization_worlds.py [--runs 15] [--steps 500] [--size 15]
        [--checkpoint spatial_memory_ros/models/bev_boundary.pt] [--quick]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# benchmarks/ (this script's folder, put first on sys.path by Python) holds memory_maze.py, which would shadow the
# memory_maze package that sim/memory_maze.py imports
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != REPO / "benchmarks"]
sys.path.insert(0, str(REPO))


def _localization_benchmark():
    """benchmarks/localization.py as a module (benchmarks/ is kept off sys.path, see above)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("localization_benchmark", REPO / "benchmarks" / "localization.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


_LOCALIZATION = _localization_benchmark()
ANGULAR_DEG_PER_FRACTION, SELF_BUILT, Run = (_LOCALIZATION.ANGULAR_DEG_PER_FRACTION, _LOCALIZATION.SELF_BUILT,
                                             _LOCALIZATION.Run)
run_tem, run_tem_self_built = _LOCALIZATION.run_tem, _LOCALIZATION.run_tem_self_built

from spatial_memory_ros.behaviour.walker import RandomWalker  # noqa: E402
from spatial_memory_ros.evaluation.metrics import ate_rmse  # noqa: E402
from spatial_memory_ros.perception.scan_bev import scan_to_bev  # noqa: E402
from spatial_memory_ros.sim import range_sensors  # noqa: E402
from spatial_memory_ros.sim.interface import make_world  # noqa: E402
from spatial_memory_ros.sim.world import WorldConfig  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
BENCHMARK_SEED_BASE = 1_000_000
NODE_SETTINGS = SELF_BUILT[-1]          # the localizer node's self-built-map settings


def drive(world_name: str, size: int, seed: int, noise: float, steps: int) -> tuple[Run, np.ndarray]:
    """One run: the recorded drive (with oracle BEVs) and the camera images along it, (steps, H, W, 3)."""
    config = WorldConfig(odom_linear_noise=noise, odom_angular_noise_deg=ANGULAR_DEG_PER_FRACTION * noise)
    world = make_world(world_name, size=size, seed=seed, num_robots=1, config=config)
    try:
        walker, scan_model = RandomWalker(seed=seed), range_sensors.default_scan_model(world)
        start = world.true_pose(0)
        truth, odometry = [(start.x, start.y, start.theta)], [(start.x, start.y, start.theta)]
        twists, bevs, images = [], [], []
        for _ in range(steps):
            # steered on a 360 deg laser scan: a camera's BEV leaves the floor just ahead unseen on Memory-Maze
            # (0.9 m up, 80 deg), which the walker takes for an obstacle, and it would only turn in place
            world.step([walker.command(scan_to_bev(range_sensors.scan(world, 0, scan_model))[0],
                                       world.odom_twist(0))])
            bev = world.oracle_bev(0)
            true, odom = world.true_pose(0), world.odom_pose(0)
            truth.append((true.x, true.y, true.theta))
            odometry.append((odom.x, odom.y, odom.theta))
            twists.append(world.odom_twist(0))
            bevs.append(bev)
            images.append(world.render(0))
        run = Run(seed, noise, np.array(truth), np.array(odometry), np.array(twists), bevs,
                  (start.x, start.y, start.theta), world.maze, world.config.dt)
        return run, np.stack(images)
    finally:
        world.close()


def predict(adapter, images: np.ndarray, batch: int = 64) -> list:
    """The adapter's BevGrids for every image, in batches."""
    return [bev for first in range(0, len(images), batch) for bev in adapter.predict(images[first:first + batch])]


def score_run(run: Run, predicted: list) -> dict:
    """ATE of dead reckoning and of the TEM (true / self-built map, predicted / oracle BEVs) on one run."""
    with_predicted = Run(run.maze_seed, run.noise, run.truth, run.odometry, run.twists, predicted, run.start,
                         run.maze, run.dt)
    true_predicted, _, _ = run_tem(with_predicted)
    true_oracle, _, _ = run_tem(run)
    return {"dead_reckoning_ate_m": ate_rmse(run.odometry, run.truth),
            "true_map_predicted_ate_m": ate_rmse(true_predicted, run.truth),
            "true_map_oracle_ate_m": ate_rmse(true_oracle, run.truth),
            "self_built_predicted_ate_m": ate_rmse(run_tem_self_built(run, predicted, NODE_SETTINGS), run.truth),
            "self_built_oracle_ate_m": ate_rmse(run_tem_self_built(run, run.bevs, NODE_SETTINGS), run.truth)}


COLUMNS = ("dead_reckoning_ate_m", "true_map_predicted_ate_m", "self_built_predicted_ate_m", "true_map_oracle_ate_m",
           "self_built_oracle_ate_m")


def summarise(rows: list[dict]) -> dict:
    """Means, ratios to dead reckoning, and the runs where the TEM ended worse than dead reckoning."""
    dead = float(np.mean([r["dead_reckoning_ate_m"] for r in rows]))
    summary = {"runs": len(rows), "dead_reckoning_ate_m": dead}
    for column in COLUMNS[1:]:
        mean = float(np.mean([r[column] for r in rows]))
        summary[column] = mean
        summary[column.replace("_ate_m", "_ratio")] = mean / dead if dead > 0 else math.nan
        summary[column.replace("_ate_m", "_worse_runs")] = sum(r[column] > r["dead_reckoning_ate_m"] for r in rows)
    return summary


def print_table(key: str, rows: list[dict], summary: dict) -> None:
    print(f"\n{key}: ATE (RMSE, m) per run; TEM corrected by predicted BEVs (and by the oracle's, for reference)")
    print(f"{'seed':>8} {'dead reck.':>11} {'true map':>9} {'own map':>8} {'| oracle:':>9} {'true map':>9} "
          f"{'own map':>8}")
    for row in rows:
        print(f"{row['seed']:>8} {row['dead_reckoning_ate_m']:>11.3f} {row['true_map_predicted_ate_m']:>9.3f} "
              f"{row['self_built_predicted_ate_m']:>8.3f} {'':>9} {row['true_map_oracle_ate_m']:>9.3f} "
              f"{row['self_built_oracle_ate_m']:>8.3f}")
    print(f"{'mean':>8} {summary['dead_reckoning_ate_m']:>11.3f} {summary['true_map_predicted_ate_m']:>9.3f} "
          f"{summary['self_built_predicted_ate_m']:>8.3f} {'':>9} {summary['true_map_oracle_ate_m']:>9.3f} "
          f"{summary['self_built_oracle_ate_m']:>8.3f}")
    print(f"{'/ DR':>8} {1.0:>11.2f} {summary['true_map_predicted_ratio']:>9.2f} "
          f"{summary['self_built_predicted_ratio']:>8.2f} {'':>9} {summary['true_map_oracle_ratio']:>9.2f} "
          f"{summary['self_built_oracle_ratio']:>8.2f}")
    print(f"{'worse':>8} {'':>11} {summary['true_map_predicted_worse_runs']:>9} "
          f"{summary['self_built_predicted_worse_runs']:>8} {'':>9} {summary['true_map_oracle_worse_runs']:>9} "
          f"{summary['self_built_oracle_worse_runs']:>8}   (runs worse than dead reckoning, of {summary['runs']})")
    print("targets: true map <= 0.50 x DR, own map <= 0.80 x DR, 0 runs worse than DR")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--world", default="memory_maze", help="world (default memory_maze)")
    parser.add_argument("--size", type=int, default=15, help="maze size (default 15)")
    parser.add_argument("--runs", type=int, default=15, help="runs, one maze each (default 15)")
    parser.add_argument("--steps", type=int, default=500, help="steps per run at 10 Hz (default 500: 50 s)")
    parser.add_argument("--noise", type=float, default=0.05, help="odometry noise, fraction of speed (default 0.05)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="BEV checkpoint (default: the one the world's camera ships with, "
                             "perception/predictor.py checkpoint_for_world)")
    parser.add_argument("--quick", action="store_true", help="2 runs of 100 steps into a separate JSON (smoke run)")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.steps = 2, 100
    args.out = args.out or RESULTS / ("localization_worlds_quick.json" if args.quick else "localization_worlds.json")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from spatial_memory_ros.perception.predictor import checkpoint_for_world, load_predictor
    from spatial_memory_ros.sim.interface import world_class_names

    args.checkpoint = args.checkpoint or checkpoint_for_world(args.world)
    result = json.loads(args.out.read_text()) if args.out.exists() else {"benchmark": "localization_worlds"}
    result["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    checkpoint = os.path.relpath(args.checkpoint.resolve(), REPO)
    key = f"{args.world}:{args.size} steps {args.steps} noise {args.noise:g} checkpoint {checkpoint}"
    rows = result.setdefault("runs", {}).setdefault(key, [])
    done = {row["seed"] for row in rows}
    predictor = load_predictor(args.checkpoint, num_threads=1)
    adapter = predictor  # the built-in world's camera is the canonical one
    if args.world == "memory_maze":
        from spatial_memory_ros.sim.memory_maze import camera_model

        adapter = predictor.for_camera(camera_model(), world_class_names(args.world))
    for index in range(args.runs):
        seed = BENCHMARK_SEED_BASE + index
        if seed in done:
            continue
        started = time.perf_counter()
        run, images = drive(args.world, args.size, seed, args.noise, args.steps)
        row = {"seed": seed, **score_run(run, predict(adapter, images)),
               "seconds": round(time.perf_counter() - started, 1)}
        rows.append(row)
        result.setdefault("summary", {})[key] = summarise(rows)
        args.out.write_text(json.dumps(result, indent=2))  # after every run: a rerun resumes here
        print(f"  [{index + 1}/{args.runs}] seed {seed}: DR {row['dead_reckoning_ate_m']:.3f} m, TEM predicted "
              f"{row['true_map_predicted_ate_m']:.3f} (true map) {row['self_built_predicted_ate_m']:.3f} (own map), "
              f"{row['seconds']:.0f} s", flush=True)
    rows = sorted((r for r in rows if r["seed"] < BENCHMARK_SEED_BASE + args.runs), key=lambda r: r["seed"])
    if not rows:
        print("no runs", file=sys.stderr)
        return 1
    summary = summarise(rows)
    result.setdefault("summary", {})[key] = summary
    args.out.write_text(json.dumps(result, indent=2))
    print_table(key, rows, summary)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
