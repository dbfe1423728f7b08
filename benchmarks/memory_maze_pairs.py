#!/usr/bin/env python3
"""Does a Memory-Maze candidate ship? Its episodes against the shipped robot's, paired by seed.

A candidate is another BEV checkpoint or robot setting whose episodes memory_maze_score.py wrote to a results file
of their own; the baseline is the shipped robot's rows of the score table. Prints per size and pooled (as a share
of each size's oracle) the paired difference with its 95% interval, and the decision of the rule set before the
runs (spatial_memory_ros/evaluation/score_pairs.py): ships / candidate / worse. Writes the figures to --out.

  .venv/bin/python benchmarks/memory_maze_pairs.py --checkpoint bev_boundary_tuned15.pt \\
      --candidate benchmarks/results/memory_maze_tuned15_trial.json benchmarks/results/memory_maze_reached_clears_trial.json \\
      --out benchmarks/results/memory_maze_tuned15_pairs.json

With several candidate files a later file's episode replaces an earlier one's of the same seed (a rerun with the
current loop replaces an older loop's episode).

Only episodes run with the shipped robot's settings count on the baseline side; --where KEY=VALUE (repeatable)
picks the candidate's rows by a recorded setting (--where doubt_when_out_of_frontiers=true).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from spatial_memory_ros.evaluation.memory_maze_env import EPISODE_STEPS, PUBLISHED  # noqa: E402
from spatial_memory_ros.evaluation.score_pairs import full_episodes, pair_up, summarise_pairs  # noqa: E402
from spatial_memory_ros.perception.predictor import BOUNDARY_CHECKPOINT  # noqa: E402

SCORES = REPO / "benchmarks" / "results" / "memory_maze.json"


def episodes(path: Path) -> list[dict]:
    """The episode rows of a results file; exits with a message when it cannot be read."""
    try:
        return list(json.loads(path.read_text())["episodes"].values())
    except (OSError, ValueError, KeyError) as error:
        sys.exit(f"cannot read episodes from {path}: {error}; give a results file memory_maze_score.py wrote")


def parse_where(items: list[str]) -> dict[str, object]:
    """KEY=VALUE settings, the value read as JSON where it parses (true, 70, 0.5) and as text otherwise."""
    wanted = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--where takes KEY=VALUE, got {item!r}")
        try:
            wanted[key] = json.loads(text)
        except ValueError:
            wanted[key] = text
    return wanted


def matches(row: dict, wanted: dict[str, object], defaults: dict[str, object]) -> bool:
    """Whether ``row`` was run with ``wanted``'s settings (a setting it did not record counts as ``defaults``')."""
    return all(row.get(key, defaults.get(key)) == value for key, value in wanted.items())


def shipped_settings() -> dict[str, object]:
    """The settings memory_maze_score.py records per row, as the shipped agent has them."""
    from spatial_memory_ros.evaluation.memory_maze_agent import AgentConfig, recorded_settings

    return recorded_settings(AgentConfig())


def unrecorded_settings() -> dict[str, object]:
    """What a row that does not record a setting was run with: the value before the setting existed where that is
    known (memory_maze_agent.UNRECORDED_SETTINGS), else the shipped value."""
    from spatial_memory_ros.evaluation.memory_maze_agent import UNRECORDED_SETTINGS

    return {**shipped_settings(), **UNRECORDED_SETTINGS}


def print_summary(summary: dict, label: str) -> None:
    print(f"{label}: candidate - shipped, paired by seed")
    print(f"{'size':>6} {'pairs':>5} {'shipped':>8} {'candidate':>9} {'difference [95% CI]':>24} {'better/worse':>12}")
    for row in summary["sizes"]:
        low, high = row["ci95"]
        print(f"{row['size']:>4}x{row['size']:<1} {row['pairs']:>5} {row['baseline_mean']:>8.1f} "
              f"{row['candidate_mean']:>9.1f} {row['mean_difference']:>+8.1f} [{low:+6.1f}, {high:+6.1f}] "
              f"{row['better']:>6} / {row['worse']}")
    pooled = summary["pooled"]
    low, high = pooled["ci95"]
    print(f"pooled over {pooled['pairs']} pairs, share of oracle: {100 * pooled['mean_share_of_oracle']:+.1f}% "
          f"[{100 * low:+.1f}, {100 * high:+.1f}], signed-rank p = {pooled['signed_rank_p']:.2g}")
    print(f"decision: {summary['decision']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", type=Path, nargs="+", required=True,
                        help="the candidate's results JSON files; a later file's episode replaces an earlier one's")
    parser.add_argument("--checkpoint", default=BOUNDARY_CHECKPOINT.name,
                        help=f"the candidate's checkpoint name in its rows (default {BOUNDARY_CHECKPOINT.name})")
    parser.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                        help="keep only the candidate's rows run with this setting (repeatable)")
    parser.add_argument("--baseline", type=Path, default=SCORES, help=f"the shipped robot's results (default {SCORES})")
    parser.add_argument("--out", type=Path, default=None, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    try:
        wanted = parse_where(args.where)
    except ValueError as error:
        parser.error(str(error))
    defaults, unrecorded = shipped_settings(), unrecorded_settings()
    shipped = BOUNDARY_CHECKPOINT.name
    baseline = full_episodes(episodes(args.baseline), EPISODE_STEPS,
                             lambda row: row["checkpoint"] == shipped and matches(row, defaults, unrecorded))
    candidate: dict[tuple[int, int], float] = {}
    for path in args.candidate:
        candidate.update(full_episodes(episodes(path), EPISODE_STEPS, lambda row: row["checkpoint"] == args.checkpoint
                                       and matches(row, wanted, unrecorded)))
    pairs = pair_up(candidate, baseline)
    if not pairs:
        parser.error(f"no seed of {' '.join(map(str, args.candidate))} ({args.checkpoint}, {wanted or 'any settings'}) is in "
                     f"{args.baseline}'s shipped rows: run the same seeds on both sides first")
    summary = summarise_pairs(pairs, {size: published["oracle"] for size, published in PUBLISHED.items()})
    label = f"{args.checkpoint}{' ' + ' '.join(args.where) if args.where else ''}"
    print_summary(summary, label)
    if args.out is not None:
        record = {"command": " ".join(sys.argv), "candidate": [str(path) for path in args.candidate], "checkpoint": args.checkpoint,
                  "where": wanted, "baseline": str(args.baseline), "baseline_checkpoint": shipped,
                  "pairs": [vars(p) for p in pairs], **summary}
        args.out.write_text(json.dumps(record, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
