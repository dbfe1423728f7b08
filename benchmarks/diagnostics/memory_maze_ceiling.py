#!/usr/bin/env python3
"""The driving ceiling of the Memory-Maze score: the shipped navigator given the true pose, map and target.

Splits the robot's distance to the published "oracle" in two (evaluation/memory_maze_ceiling.py): the ceiling's
own distance to it is what the robot's driving (its planner, path follower and the 6 discrete actions) costs; the
robot's distance to the ceiling on the same seeds is what exploring, seeing and localizing cost. The robot's
rows come from the score results (benchmarks/results/memory_maze.json, the shipped checkpoint, memory on).

  .venv/bin/python benchmarks/diagnostics/memory_maze_ceiling.py --sizes 9 --episodes 10

A diagnostic, not a score: it decides from the truth. Resumable per episode (a rerun skips finished ones); writes
benchmarks/results/memory_maze_ceiling.json after each episode and prints the table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from spatial_memory_ros.evaluation.memory_maze_ceiling import drive_with_truth  # noqa: E402
from spatial_memory_ros.evaluation.memory_maze_env import EPISODE_STEPS, PUBLISHED, steps_per_target  # noqa: E402
from spatial_memory_ros.perception.predictor import BOUNDARY_CHECKPOINT  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "memory_maze_ceiling.json"
SCORES = REPO / "benchmarks" / "results" / "memory_maze.json"
FIRST_SEED = 3_000_000  # memory_maze_score.py's seeds, so every episode pairs with a robot episode
SHIPPED = BOUNDARY_CHECKPOINT.name  # the score robot's default Memory-Maze checkpoint, as memory_maze_score.py names it


def robot_rows(path: Path) -> dict[tuple[int, int], dict]:
    """The score robot's full-length memory-on episodes with the shipped checkpoint, by (size, seed)."""
    if not path.is_file():
        return {}
    episodes = json.loads(path.read_text()).get("episodes", {})
    return {(r["size"], r["seed"]): r for r in episodes.values()
            if r["variant"] == "memory" and r["checkpoint"] == SHIPPED and r["steps"] == EPISODE_STEPS[r["size"]]}


def table(ceiling: dict, robot: dict[tuple[int, int], dict]) -> list[dict]:
    """Per size: the ceiling's mean score, the robot's on the same seeds, and where each spends its steps."""
    rows = []
    for size in sorted({r["size"] for r in ceiling.values()}):
        mine = [r for r in ceiling.values() if r["size"] == size and r["steps"] == EPISODE_STEPS[size]]
        if not mine:
            continue
        paired = [(r, robot[size, r["seed"]]) for r in mine if (size, r["seed"]) in robot]
        robot_steps = [steps_per_target(b.get("reward_steps", []), b["steps"]) for _, b in paired]
        gaps = [s["steps_per_target_after_first"] for s in robot_steps if s["steps_per_target_after_first"]]
        rows.append({
            "size": size, "episodes": len(mine), "ceiling_mean": float(np.mean([r["total_reward"] for r in mine])),
            "ceiling_steps_per_target": float(np.mean([r["steps_per_target_after_first"] for r in mine
                                                       if r["steps_per_target_after_first"]])),
            "paired_seeds": len(paired),
            "robot_mean": float(np.mean([b["total_reward"] for _, b in paired])) if paired else None,
            "ceiling_mean_on_paired": float(np.mean([a["total_reward"] for a, _ in paired])) if paired else None,
            "robot_first_reward_step": float(np.mean([s["first_reward_step"] for s in robot_steps]))
            if robot_steps else None,
            "robot_steps_per_target": float(np.mean(gaps)) if gaps else None,
            **{f"published_{k}": v for k, v in PUBLISHED[size].items()}})
    return rows


def print_table(rows: list[dict]) -> None:
    """The table: ceiling, robot (same seeds), human, oracle; steps per target after the first reward."""
    print(f"{'size':>5} {'n':>3} {'ceiling':>8} {'robot':>6} {'(pairs)':>7} {'human':>6} {'oracle':>6} "
          f"{'ceiling/oracle':>14} {'robot/ceiling':>13} {'steps/target ceiling':>20} {'robot':>6} "
          f"{'robot 1st reward':>16}")
    for r in rows:
        robot = "-" if r["robot_mean"] is None else f"{r['robot_mean']:.1f}"
        share = "-" if r["robot_mean"] is None else f"{r['robot_mean'] / r['ceiling_mean_on_paired']:.2f}"
        gap = "-" if r["robot_steps_per_target"] is None else f"{r['robot_steps_per_target']:.1f}"
        first = "-" if r["robot_first_reward_step"] is None else f"{r['robot_first_reward_step']:.0f}"
        print(f"{r['size']:>5} {r['episodes']:>3} {r['ceiling_mean']:>8.1f} {robot:>6} {r['paired_seeds']:>7} "
              f"{r['published_human']:>6.1f} {r['published_oracle']:>6.1f} "
              f"{r['ceiling_mean'] / r['published_oracle']:>14.2f} {share:>13} {r['ceiling_steps_per_target']:>20.1f} "
              f"{gap:>6} {first:>16}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[9], choices=sorted(EPISODE_STEPS))
    parser.add_argument("--episodes", type=int, default=10, help="seeds per size (default 10)")
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED, help=f"first seed (default {FIRST_SEED:,})")
    parser.add_argument("--steps", type=int, default=None, help="stop each episode after this many steps (a check)")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    parser.add_argument("--scores", type=Path, default=SCORES, help=f"the robot's score results (default {SCORES})")
    args = parser.parse_args(argv)
    if args.episodes < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--episodes and --steps must be at least 1")
    from tqdm import tqdm

    data = json.loads(args.results.read_text()) if args.results.is_file() else {}
    episodes = data.setdefault("episodes", {})
    for size in args.sizes:
        for seed in range(args.first_seed, args.first_seed + args.episodes):
            key = f"{size}/{seed}"
            done = episodes.get(key)
            if done is not None and done["steps"] >= (args.steps or EPISODE_STEPS[size]):
                continue
            steps = args.steps or EPISODE_STEPS[size]
            with tqdm(total=steps, desc=f"{size}x{size} seed {seed}", unit="step", leave=False,
                      disable=not sys.stderr.isatty()) as bar:
                row = drive_with_truth(size, seed, steps=args.steps, progress=lambda done: bar.update(done - bar.n))
            print(f"{size}x{size} seed {seed}: ceiling {row['total_reward']:.0f} in {row['wall_s']:.0f} s", flush=True)
            episodes[key] = row
            _write(args, data)
    _write(args, data)
    print_table(data["table"])
    return 0


def _write(args, data: dict) -> None:
    on_disk = json.loads(args.results.read_text()) if args.results.is_file() else {}
    for key, row in on_disk.get("episodes", {}).items():  # another run (the other core) may share the file
        data["episodes"].setdefault(key, row)
    data["table"] = table(data["episodes"], robot_rows(args.scores))
    data["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count()}
    data.setdefault("commands", [])
    command = " ".join(sys.argv)
    if command not in data["commands"]:
        data["commands"].append(command)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.results.with_suffix(f".json.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, default=float))
    temporary.replace(args.results)


if __name__ == "__main__":
    sys.exit(main())
