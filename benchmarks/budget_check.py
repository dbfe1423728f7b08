"""The bit budget as a hard limit (Security issue, attack 4): over many in-process team episodes with sightings,
no robot ever sends more payload bits than its budget allows, bits_per_step x budget windows, for every strategy.

Each episode runs the shipped robot loop (evaluation/team_task.py) in a small maze with its targets, so sightings
arrive while the link is busy; the check is per robot, over the whole episode and at every step. The baseline in the
same run is the budget itself (the bits a sender could have spent); the JSON is benchmarks/results/budget_check.json.

    .venv/bin/python benchmarks/budget_check.py [--episodes 200] [--steps 300] [--quick]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from tqdm import tqdm

from spatial_memory_ros.evaluation.team_task import LabelEmbedder, TeamEpisode, TeamTaskConfig
from spatial_memory_ros.types import is_target_label

RESULTS = Path(__file__).resolve().parent / "results" / "budget_check.json"
SETTINGS = [("ours", 4), ("ours", 16), ("broadcast", 4), ("broadcast", 16), ("quota", 16)]


def run(episodes: int, steps: int) -> dict:
    """Every setting in turn, seed after seed; the worst ratio of sent bits to the budget, per robot, at any step."""
    embedder = LabelEmbedder.synthetic()
    rows, worst = [], 0.0
    for k in tqdm(range(episodes), unit="episode", disable=not sys.stderr.isatty()):
        strategy, bits = SETTINGS[k % len(SETTINGS)]
        episode = TeamEpisode(TeamTaskConfig(maze_size=9, max_steps=steps, strategy=strategy, bits_per_step=bits,
                                             seed=k), embedder)
        episode_worst = 0.0
        while not episode.done:
            episode.step()
            for member in episode.robots:
                windows = member.comm.budget_steps
                if windows:
                    ratio = member.comm.stats.payload_bits_sent / (bits * windows)
                    episode_worst = max(episode_worst, ratio)
        sightings = sum(is_target_label(label) for member in episode.robots
                        for label in member.memory.memory.snapshot().labels)
        worst = max(worst, episode_worst)
        rows.append({"seed": k, "strategy": strategy, "bits_per_step": bits, "steps": episode.step_count,
                     "worst_sent_over_budget": round(episode_worst, 4), "target_entries": sightings})
    return {"episodes": rows, "worst_sent_over_budget": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=200, help="episodes, settings in turn (default 200)")
    parser.add_argument("--steps", type=int, default=300, help="steps per episode at 10 Hz (default 300)")
    parser.add_argument("--quick", action="store_true", help="10 episodes of 100 steps")
    args = parser.parse_args()
    episodes, steps = (10, 100) if args.quick else (args.episodes, args.steps)
    start = time.monotonic()
    result = run(episodes, steps)
    result.update({"command": " ".join(["benchmarks/budget_check.py"] + sys.argv[1:]), "machine": platform.platform(),
                   "wall_s": round(time.monotonic() - start, 1), "target": "sent / budget <= 1 for every robot"})
    print(f"{'strategy':<10} {'bits':>4} {'episodes':>8} {'with sightings':>14} {'worst sent / budget':>20}")
    for strategy, bits in SETTINGS:
        mine = [r for r in result["episodes"] if (r["strategy"], r["bits_per_step"]) == (strategy, bits)]
        if mine:
            seen = sum(r["target_entries"] > 0 for r in mine)
            worst = max(r["worst_sent_over_budget"] for r in mine)
            print(f"{strategy:<10} {bits:>4} {len(mine):>8} {seen:>14} {worst:>20.4f}")
    print(f"worst of all {episodes} episodes: {result['worst_sent_over_budget']:.4f} (<= 1: never over the budget)")
    if not args.quick:
        RESULTS.write_text(json.dumps(result, indent=1))
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
