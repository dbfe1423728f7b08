"""Benchmark of the two worlds behind sim/interface.py (issue 12): Memory-Maze in MuJoCo against the built-in
ray-cast world as the baseline, measured in the same run, without ROS.

For each world and maze size: seconds to build (Memory-Maze: the MJCF, its physics, one GL context per robot),
team steps per second with 1 and 3 robots at dt = 0.1 s for the motion alone and with every robot's camera image
and oracle BEV each step (what sim_world publishes), and the real-time factor at 10 Hz that gives.

Prints a table and writes benchmarks/results/worlds.json.
  .venv/bin/python benchmarks/worlds.py [--steps 40] [--quick]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spatial_memory_ros.sim.interface import WorldUnavailable, make_world  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "worlds.json"
CASES = [("builtin", 15), ("memory_maze", 9), ("memory_maze", 15)]


def measure(world_name: str, size: int, robots: int, steps: int) -> dict:
    """Build time and team steps/s (motion only; with images and oracle BEVs) of one world."""
    start = time.perf_counter()
    world = make_world(world_name, size=size, seed=0, num_robots=robots)
    build_s = time.perf_counter() - start
    rng = np.random.default_rng(0)

    def rate(sense: bool) -> float:
        begin = time.perf_counter()
        for _ in range(steps):
            world.step([(float(rng.uniform(0.0, 1.0)), float(rng.uniform(-1.0, 1.0)))] * robots)
            if sense:
                for robot in range(robots):
                    world.render(robot)
                    world.oracle_bev(robot)
        return steps / (time.perf_counter() - begin)

    try:
        motion, sensed = rate(False), rate(True)
    finally:
        world.close()
    return {"world": world_name, "size": size, "robots": robots, "build_s": round(build_s, 2),
            "steps_per_s_motion": round(motion, 1), "steps_per_s_with_sensors": round(sensed, 2),
            "real_time_factor_10hz": round(sensed * world.config.dt, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="steps per measurement (default 40)")
    parser.add_argument("--quick", action="store_true", help="10 steps, 9x9 Memory-Maze only beside the baseline")
    args = parser.parse_args()
    steps = 10 if args.quick else args.steps
    cases = CASES[:2] if args.quick else CASES
    rows, skipped = [], None
    for world_name, size in cases:
        for robots in (1, 3):
            try:
                rows.append(measure(world_name, size, robots, steps))
            except WorldUnavailable as error:
                skipped = str(error)
                break
    print(f"{'world':<12} {'size':>4} {'robots':>6} {'build s':>8} {'steps/s motion':>15} {'steps/s sensed':>15} "
          f"{'RTF@10Hz':>9}")
    for row in rows:
        print(f"{row['world']:<12} {row['size']:>4} {row['robots']:>6} {row['build_s']:>8} "
              f"{row['steps_per_s_motion']:>15} {row['steps_per_s_with_sensors']:>15} {row['real_time_factor_10hz']:>9}")
    if skipped:
        print(f"Memory-Maze skipped: {skipped}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "benchmark": "worlds", "command": " ".join(sys.argv), "steps": steps,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_1min": os.getloadavg()[0],
                    "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
        "results": rows, "memory_maze_skipped": skipped}, indent=2))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
