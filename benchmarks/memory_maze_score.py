#!/usr/bin/env python3
"""Memory-Maze as published (issue 17.1): the shipped robot's total reward per episode beside human and oracle.

(Not named memory_maze.py: a script of that name in benchmarks/ would shadow the memory_maze package for every
benchmark run as ``python benchmarks/NAME.py``.)

The robot (evaluation/memory_maze_agent.py: BEV predictor through the camera adapter, TEM localizer, memory, the
text goal "the <colour> target", THE robot loop of behaviour/robot.py) plays the standard episodes of
memory_maze's task builder (9x9 / 11x11 / 13x13 / 15x15: 3 / 4 / 5 / 6 targets, 1,000 / 2,000 / 3,000 / 4,000
steps at 4 Hz, 6 discrete actions, +1 per target reached) from the image, the target colour and noisy odometry
(5% of speed, 2 deg/s). The published agents had NO odometry. The baseline, in the same run on the same seeds:
the same robot with its memory switched off. Mean total reward with a 95% t interval, beside the published mean
human and maximum ("oracle") scores.

Resumable per episode: benchmarks/results/memory_maze.json keeps every finished episode keyed
"<size>/<seed>/<variant>/<checkpoint name>"; a rerun skips those. ``--checkpoint`` runs another BEV checkpoint
(its file name names its rows). Writes the JSON after each episode, then memory_maze.png. Beside the table it
prints, and writes under "comparisons", paired differences on shared seeds: memory on minus memory off, memory on
minus the previous loop (the newest "superseded" generation), and each other checkpoint minus the shipped one.

  .venv/bin/python benchmarks/memory_maze_score.py --sizes 9 11 --episodes 10
  .venv/bin/python benchmarks/memory_maze_score.py --quick      # 9x9, one seed, 100 steps: a check, not a score
  .venv/bin/python benchmarks/memory_maze_score.py --summary-only   # table, comparisons, plot; runs nothing
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from spatial_memory_ros.evaluation.memory_maze_agent import (VARIANTS, AgentConfig, recorded_settings,  # noqa: E402
                                                             run_episode)
from spatial_memory_ros.evaluation.memory_maze_env import EPISODE_STEPS, PUBLISHED, steps_per_target  # noqa: E402
from spatial_memory_ros.evaluation.score_pairs import mean_interval  # noqa: E402
from spatial_memory_ros.perception.predictor import BOUNDARY_CHECKPOINT  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "memory_maze.json"
FIRST_SEED = 3_000_000
"""Episode seeds start here: mazes no BEV data set used (training 0..63, validation 1,000,000 up, bev.py
2,000,000 up)."""
LABELS = {"memory": "robot (memory on)", "no_memory": "robot, memory off"}
SHIPPED_CHECKPOINT = BOUNDARY_CHECKPOINT.name
"""The results name of the default Memory-Maze checkpoint, the baseline of a candidate checkpoint's comparison."""


def episode_key(size: int, seed: int, variant: str, checkpoint: str) -> str:
    """The results key of one episode."""
    return f"{size}/{seed}/{variant}/{checkpoint}"


def summarise(episodes: dict) -> list[dict]:
    """One row per (checkpoint, size, variant) over full-length episodes: score, interval, diagnostics."""
    groups: dict[tuple, list[dict]] = {}
    for row in episodes.values():
        if row["steps"] == EPISODE_STEPS[row["size"]]:
            groups.setdefault((row["checkpoint"], row["size"], row["variant"]), []).append(row)
    rows = []
    for (checkpoint, size, variant), group in sorted(groups.items()):
        mean, low, high = mean_interval([r["total_reward"] for r in group])

        def average(key: str, sub: str | None = None) -> float:
            values = [(r.get(key) or {}).get(sub) if sub else r.get(key) for r in group]
            values = [v for v in values if v is not None]
            return float(np.mean(values)) if values else float("nan")

        exploring = [r["status_share"].get("exploring", 0.0) for r in group]
        split = [steps_per_target(r["reward_steps"], r["steps"]) for r in group if "reward_steps" in r]
        gaps = [s["steps_per_target_after_first"] for s in split if s["steps_per_target_after_first"] is not None]
        quarters = [r["position_error_by_quarter_m"] for r in group if r.get("position_error_by_quarter_m")]
        rows.append({"checkpoint": checkpoint, "size": size, "variant": variant, "episodes": len(group),
                     "seeds": sorted(r["seed"] for r in group), "mean_reward": mean, "ci95": [low, high],
                     **{f"published_{k}": v for k, v in PUBLISHED[size].items()},
                     "share_of_oracle": mean / PUBLISHED[size]["oracle"],
                     "position_error_mean_m": average("position_error_mean_m"),
                     "position_error_by_quarter_m": np.mean(quarters, axis=0).tolist() if quarters else None,
                     "bev_free_iou": average("bev", "free_iou"), "bev_wall_iou": average("bev", "wall_iou"),
                     "bev_object_f1": average("bev", "object_f1"), "share_exploring": float(np.mean(exploring)),
                     "false_arrivals": average("false_arrivals"), "wall_s_per_episode": average("wall_s"),
                     # where the steps go: finding the first target, then each next one (the driving ceiling's
                     # figures, benchmarks/diagnostics/memory_maze_ceiling.py, are the same two)
                     "first_reward_step": float(np.mean([s["first_reward_step"] for s in split])) if split
                     else float("nan"),
                     "steps_per_target_after_first": float(np.mean(gaps)) if gaps else float("nan")})
    return rows


def paired_gains(episodes: dict, baseline: dict, variant: str, baseline_variant: str) -> list[dict]:
    """Per (checkpoint, size): the mean of ``variant``'s total reward minus ``baseline_variant``'s over the seeds
    both have a full-length episode for (in ``episodes`` and ``baseline``), with its 95% t interval. Pairing by seed
    removes the maze-to-maze spread that dominates each row's own interval."""
    def full(rows: dict, wanted: str) -> dict:
        return {(r["checkpoint"], r["size"], r["seed"]): r["total_reward"] for r in rows.values()
                if r["variant"] == wanted and r["steps"] == EPISODE_STEPS[r["size"]]}

    mine, theirs = full(episodes, variant), full(baseline, baseline_variant)
    groups: dict[tuple, list[tuple[int, float]]] = {}
    for (checkpoint, size, seed), reward in mine.items():
        if (checkpoint, size, seed) in theirs:
            groups.setdefault((checkpoint, size), []).append((seed, reward - theirs[checkpoint, size, seed]))
    rows = []
    for (checkpoint, size), pairs in sorted(groups.items()):
        mean, low, high = mean_interval([difference for _, difference in pairs])
        rows.append({"checkpoint": checkpoint, "size": size, "variant": variant, "baseline": baseline_variant,
                     "pairs": len(pairs), "seeds": sorted(seed for seed, _ in pairs), "mean_difference": mean,
                     "ci95": [low, high]})
    return rows


def checkpoint_gains(episodes: dict, shipped: str) -> list[dict]:
    """Per other checkpoint and size: its memory-on reward minus the ``shipped`` checkpoint's on shared seeds of the
    same file, so a candidate model is judged against the default by the same pairing as a loop change."""
    theirs = {key: row for key, row in episodes.items() if row["checkpoint"] == shipped}
    rows = []
    for candidate in sorted({row["checkpoint"] for row in episodes.values()} - {shipped}):
        mine = {key: row for key, row in episodes.items() if row["checkpoint"] == candidate}
        relabelled = {key: {**row, "checkpoint": candidate} for key, row in theirs.items()}
        rows += [{**row, "baseline_checkpoint": shipped}
                 for row in paired_gains(mine, relabelled, "memory", "memory")]
    return rows


def comparisons(data: dict, shipped: str = SHIPPED_CHECKPOINT) -> dict:
    """The paired comparisons the table is read with: memory on minus memory off (the baseline of the same run),
    memory on minus the previous loop's memory on (the newest superseded generation), and each other checkpoint
    minus the shipped one, all on shared seeds."""
    episodes = data["episodes"]
    generations = data.get("superseded") or [{}]
    newest = generations if isinstance(generations, dict) else generations[0]  # a dict: the one of session 10 files
    previous = newest.get("episodes", {})
    return {"memory_minus_memory_off": paired_gains(episodes, episodes, "memory", "no_memory"),
            "memory_minus_previous_loop": paired_gains(episodes, previous, "memory", "memory"),
            "checkpoint_minus_shipped": checkpoint_gains(episodes, shipped)}


def print_comparisons(compared: dict) -> None:
    """The paired comparisons, one line per checkpoint and size."""
    for name, rows in compared.items():
        for r in rows:
            print(f"{name.replace('_', ' ')}: {r['size']}x{r['size']} {r['checkpoint']}: {r['mean_difference']:+.1f} "
                  f"[{r['ci95'][0]:+.1f}, {r['ci95'][1]:+.1f}] over {r['pairs']} seeds")


def print_table(rows: list[dict]) -> None:
    """The score table."""
    print(f"{'checkpoint':<28} {'size':>5} {'variant':<10} {'n':>3} {'reward (95% CI)':>22} {'human':>6} "
          f"{'oracle':>6} {'%orc':>5} {'loc m':>6} {'free/wall IoU':>13} {'obj F1':>6} {'explore':>7} {'1st':>5} "
          f"{'steps/tgt':>9} {'s/ep':>6}")
    for r in rows:
        print(f"{r['checkpoint']:<28} {r['size']:>5} {r['variant']:<10} {r['episodes']:>3} "
              f"{r['mean_reward']:>7.1f} [{r['ci95'][0]:5.1f}, {r['ci95'][1]:5.1f}] {r['published_human']:>6.1f} "
              f"{r['published_oracle']:>6.1f} {100 * r['share_of_oracle']:>5.0f} {r['position_error_mean_m']:>6.2f} "
              f"{r['bev_free_iou']:>6.2f}/{r['bev_wall_iou']:<6.2f} {r['bev_object_f1']:>6.2f} "
              f"{r['share_exploring']:>7.2f} {r.get('first_reward_step', float('nan')):>5.0f} "
              f"{r.get('steps_per_target_after_first', float('nan')):>9.1f} {r['wall_s_per_episode']:>6.0f}")


def plot(rows: list[dict], path: Path) -> None:
    """Mean score per size (95% interval) per checkpoint and variant, beside published human and oracle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    sizes = sorted(PUBLISHED)
    axis.plot(sizes, [PUBLISHED[s]["oracle"] for s in sizes], "k--", marker="_", label="published oracle (max)")
    axis.plot(sizes, [PUBLISHED[s]["human"] for s in sizes], "k:", marker="_", label="published human")
    series = sorted({(r["checkpoint"], r["variant"]) for r in rows})
    for index, (checkpoint, variant) in enumerate(series):
        mine = [r for r in rows if (r["checkpoint"], r["variant"]) == (checkpoint, variant)]
        x = np.array([r["size"] for r in mine]) + 0.15 * (index - (len(series) - 1) / 2)
        mean = np.array([r["mean_reward"] for r in mine])
        ci = np.array([r["ci95"] for r in mine])
        axis.errorbar(x, mean, yerr=[mean - ci[:, 0], ci[:, 1] - mean], marker="os"[variant != "memory"],
                      capsize=3, linestyle="none", label=f"{LABELS[variant]}, {checkpoint}")
    axis.set_xticks(sizes, [f"{s}x{s}" for s in sizes])
    axis.set_xlabel("maze (1,000 / 2,000 / 3,000 / 4,000 steps at 4 Hz)")
    axis.set_ylabel("total reward per episode (mean, 95% CI)")
    axis.set_title("Memory-Maze: the shipped robot loop with odometry (published agents had none)", fontsize=9)
    axis.legend(fontsize=7, loc="upper left")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def load_results(path: Path) -> dict:
    """The results file so far (empty if none)."""
    if not path.is_file():
        return {"episodes": {}}
    data = json.loads(path.read_text())
    data.setdefault("episodes", {})
    return data


def supersede(data: dict, note: str, covers=None) -> int:
    """Move the episodes ``covers(row)`` is true of (default: every one) into a new first entry of
    ``data['superseded']`` that says ``note`` (why they no longer count), with the summary and commands they were
    read with; returns how many moved. For a change to the robot loop: a rerun skips the episodes already in the
    results, so the old loop's ones have to move aside first. Episodes not covered stay (and so do the commands,
    if any stays), so one part of the table can be measured again without losing the rest."""
    generations = data.get("superseded", [])
    if isinstance(generations, dict):  # the one generation that files of session 10 kept
        generations = [generations]
    episodes = data.get("episodes", {})
    moved = {key: row for key, row in episodes.items() if covers is None or covers(row)}
    kept = {key: row for key, row in episodes.items() if key not in moved}
    if moved:
        generations.insert(0, {"note": note, "episodes": moved, "summary": data.get("summary", []),
                               "commands": data.get("commands", [])})
    data.update(superseded=generations, episodes=kept, summary=summarise(kept),
                commands=data.get("commands", []) if kept else [])
    return len(moved)


def _write_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".json.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1, default=float))
    temporary.replace(path)


def make_adapter(checkpoint: Path | None):
    """The BEV predictor (shipped, or ``checkpoint``) through the camera adapter for Memory-Maze's camera."""
    from spatial_memory_ros.perception.predictor import checkpoint_for_world, load_predictor
    from spatial_memory_ros.sim.memory_maze import CLASS_NAMES, camera_model

    path = checkpoint or checkpoint_for_world("memory_maze")
    predictor = load_predictor(path, num_threads=1)
    return predictor.for_camera(camera_model(), CLASS_NAMES), path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(EPISODE_STEPS), choices=sorted(EPISODE_STEPS))
    parser.add_argument("--episodes", type=int, default=10, help="seeds per size (default 10: seeds 3,000,000 up)")
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED,
                        help=f"first seed (default {FIRST_SEED:,}); runs on two cores split the seeds this way")
    parser.add_argument("--look-alike-after", type=int, default=AgentConfig.look_alike_after, metavar="STEPS",
                        help="try other objects after this many steps of search without a goal (RobotConfig."
                             f"look_alike_after; default {AgentConfig.look_alike_after}, the shipped agent's; 0: "
                             "never); a value other than the shipped agent's needs a results file of its own")
    parser.add_argument("--doubt-walls-after", type=int, default=AgentConfig.doubt_walls_after, metavar="STEPS",
                        help="explore behind doubtful walls after this many steps of search without a goal "
                             f"(RobotConfig.doubt_walls_after; default {AgentConfig.doubt_walls_after}, the shipped "
                             "agent's; 0: never); a value other than the shipped agent's needs a results file of its "
                             "own")
    parser.add_argument("--turn-in-place-deg", type=float, default=AgentConfig.turn_in_place_deg, metavar="DEG",
                        help="the path follower turns on the spot above this heading error (PlannerConfig."
                             f"turn_in_place_deg; default {AgentConfig.turn_in_place_deg:g}, the shipped agent's); a "
                             "value other than the shipped agent's needs a results file of its own")
    _add_switch(parser, "doubt_when_out_of_frontiers",
                "with no frontier left on its map, explore behind doubtful walls before the random walk")
    _add_switch(parser, "goal_through_doubtful_walls",
                "a goal's path may cross walls the map holds only weakly, at a cost per metre")
    _add_switch(parser, "replan_when_frontier_seen",
                "replan at once when the frontier driven to has been seen, not after replan_every steps")
    _add_switch(parser, "arena_bound", "skip frontiers that cannot lie in a maze of the known size, size x 2 m "
                "a side (PlannerConfig.arena_size_m)")
    parser.add_argument("--min-wall-incidence", type=float, default=AgentConfig.min_wall_incidence, metavar="COS",
                        help="drop predicted wall cells seen more edge-on than this |cos| between ray and wall "
                             "normal from the BEV, before localizer and memory (perception.wall_incidence; default "
                             f"{AgentConfig.min_wall_incidence:g}, the shipped agent's; 0: keep every wall); another "
                             "value needs a results file of its own")
    parser.add_argument("--far-wall-weight", type=float, default=AgentConfig.far_wall_weight, metavar="W",
                        help="weight in (0, 1] of a wall seen 7 m off or more in the memory's map, against one seen "
                             "within 3 m, linear between (mapping.LogOddsMap; default "
                             f"{AgentConfig.far_wall_weight:g}, the shipped agent's; 1: all alike); another value "
                             "needs a results file of its own")
    parser.add_argument("--frontier-min-unknown-m2", type=float, default=AgentConfig.frontier_min_unknown_m2,
                        metavar="M2",
                        help="skip frontiers with less than this unknown area (m^2) behind them: holes in explored "
                             "rooms (PlannerConfig.frontier_min_unknown_m2; default "
                             f"{AgentConfig.frontier_min_unknown_m2:g}, the shipped agent's; 0: off); another value "
                             "needs a results file of its own")
    parser.add_argument("--steps", type=int, default=None,
                        help="stop each episode after this many steps (smoke runs; such rows are not scored)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--checkpoint", type=Path, default=None, help="BEV checkpoint (default: the shipped one)")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    parser.add_argument("--time-budget-min", type=float, default=0.0,
                        help="start no episode after this many minutes (0: no limit); rerun to continue")
    parser.add_argument("--supersede", metavar="NOTE", default=None,
                        help="first move aside (under 'superseded', with NOTE saying why) the episodes this command "
                             "covers: its sizes, variants and checkpoint, every seed. After a change to the robot "
                             "loop, since a rerun skips finished episodes; with --summary-only it runs nothing, so "
                             "runs on both cores can then share the file")
    parser.add_argument("--summary-only", action="store_true",
                        help="run no episode: rewrite the summary, comparisons and plot from the results file (after "
                             "merging the files of runs on other machines, say)")
    parser.add_argument("--quick", action="store_true",
                        help="9x9, 1 seed, 100 steps, into memory_maze_quick.json (a check, not a score)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.episodes, args.steps = [9], 1, args.steps or 100
        if args.results == RESULTS:
            args.results = RESULTS.with_name("memory_maze_quick.json")
    if args.episodes < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--episodes and --steps must be at least 1")
    if not 0.0 < args.turn_in_place_deg <= 180.0:
        parser.error(f"--turn-in-place-deg must be in (0, 180] degrees, got {args.turn_in_place_deg:g}")
    if not 0.0 <= args.min_wall_incidence <= 1.0:
        parser.error(f"--min-wall-incidence is a |cos| in [0, 1], got {args.min_wall_incidence:g}")
    if not 0.0 < args.far_wall_weight <= 1.0:
        parser.error(f"--far-wall-weight is a weight in (0, 1], got {args.far_wall_weight:g}")
    if not (math.isfinite(args.frontier_min_unknown_m2) and args.frontier_min_unknown_m2 >= 0.0):
        parser.error(f"--frontier-min-unknown-m2 is an area in m^2 >= 0, got {args.frontier_min_unknown_m2:g}")
    if args.look_alike_after < 0 or args.doubt_walls_after < 0:
        parser.error("--look-alike-after and --doubt-walls-after must be 0 (never) or a number of steps")
    if args.supersede is not None and not args.supersede.strip():
        parser.error("--supersede needs a note that says why the episodes no longer count")
    trial = _trial_settings(args)
    if trial and args.results.resolve() == RESULTS.resolve():
        parser.error(f"{', '.join(trial)} differ from the shipped agent's: the table's file ({RESULTS.name}) holds "
                     "the shipped agent only; give these episodes a --results file of their own")
    if args.summary_only:
        data = load_results(args.results)
        if args.supersede is not None:
            _supersede_covered(args, data)
        _write(args, data, None)
        _report(data, args.results)
        return 0
    from tqdm import tqdm

    from spatial_memory_ros.memory.semantics import Embedder

    started = time.perf_counter()
    adapter, checkpoint_path = make_adapter(args.checkpoint)
    checkpoint = checkpoint_path.name
    embedder = Embedder()
    data = load_results(args.results)
    if args.supersede is not None:
        _supersede_covered(args, data, checkpoint)
    episodes = data["episodes"]
    todo = [(size, seed, variant) for size in args.sizes
            for seed in range(args.first_seed, args.first_seed + args.episodes)
            for variant in args.variants
            if not _finished(episodes.get(episode_key(size, seed, variant, checkpoint)), size, args.steps)]
    quiet = not sys.stderr.isatty()
    settings = recorded_settings(_asked_config(args))
    print(f"{len(todo)} episodes to run ({checkpoint}); results in {args.results}", flush=True)
    for size, seed, variant in tqdm(todo, desc="episodes", unit="episode", disable=quiet):
        if args.time_budget_min and time.perf_counter() - started > 60.0 * args.time_budget_min:
            print("time budget spent: rerun to continue", flush=True)
            break
        steps = args.steps or EPISODE_STEPS[size]
        with tqdm(total=steps, desc=f"{size}x{size} seed {seed} {variant}", unit="step", leave=False,
                  disable=quiet) as bar:
            row = run_episode(size, seed, variant, adapter, embedder, steps=args.steps,
                              progress=lambda done: bar.update(done - bar.n), settings=settings)
        row.pop("action_sequence")
        row.update(settings)
        row["checkpoint"] = checkpoint
        episodes[episode_key(size, seed, variant, checkpoint)] = row
        tqdm.write(f"{size}x{size} seed {seed} {variant}: reward {row['total_reward']:.0f} in {row['wall_s']:.0f} s")
        _write(args, data, checkpoint_path)
    _write(args, data, checkpoint_path)
    _report(data, args.results)
    print(f"wrote {args.results} in {time.perf_counter() - started:.0f} s")
    return 0


def _add_switch(parser: argparse.ArgumentParser, field: str, what: str) -> None:
    """An on|off option for the AgentConfig switch ``field`` of the score robot, defaulting to the shipped one."""
    default = "on" if getattr(AgentConfig, field) else "off"
    parser.add_argument("--" + field.replace("_", "-"), choices=("on", "off"), default=default,
                        help=f"{what} (AgentConfig.{field}; default {default}, the shipped agent's); the other "
                             "needs a results file of its own")


def _asked_config(args) -> AgentConfig:
    """The AgentConfig of the robot settings ``args`` asks for."""
    return AgentConfig(look_alike_after=args.look_alike_after, doubt_walls_after=args.doubt_walls_after,
                       turn_in_place_deg=args.turn_in_place_deg,
                       doubt_when_out_of_frontiers=args.doubt_when_out_of_frontiers == "on",
                       goal_through_doubtful_walls=args.goal_through_doubtful_walls == "on",
                       min_wall_incidence=args.min_wall_incidence, far_wall_weight=args.far_wall_weight,
                       frontier_min_unknown_m2=args.frontier_min_unknown_m2,
                       replan_when_frontier_seen=args.replan_when_frontier_seen == "on",
                       arena_bound=args.arena_bound == "on")


def _trial_settings(args) -> list[str]:
    """The robot settings of ``args`` that differ from the shipped agent's (AgentConfig), as option names."""
    shipped, asked = recorded_settings(AgentConfig()), recorded_settings(_asked_config(args))
    return ["--" + name.replace("_", "-") for name in asked if asked[name] != shipped[name]]


def _supersede_covered(args, data: dict, checkpoint: str | None = None) -> None:
    """Move aside the episodes of ``args``' sizes, variants and checkpoint (``--supersede``) and save the file."""
    if checkpoint is None:
        from spatial_memory_ros.perception.predictor import checkpoint_for_world

        checkpoint = (args.checkpoint or checkpoint_for_world("memory_maze")).name

    def covers(row: dict) -> bool:
        return row["size"] in args.sizes and row["variant"] in args.variants and row["checkpoint"] == checkpoint

    moved = supersede(data, args.supersede.strip(), covers)
    print(f"moved {moved} episodes aside (superseded): {checkpoint}, {'/'.join(args.variants)}, sizes "
          f"{' '.join(map(str, args.sizes))}", flush=True)
    _write_atomically(args.results, data)


def _report(data: dict, results: Path) -> None:
    """Print the table and the paired comparisons; plot the table beside the results file."""
    print_table(data["summary"])
    print_comparisons(data["comparisons"])
    if data["summary"]:
        plot(data["summary"], results.with_suffix(".png"))


def _finished(row: dict | None, size: int, steps: int | None) -> bool:
    return row is not None and row["steps"] >= (steps or EPISODE_STEPS[size])


def _write(args, data: dict, checkpoint_path: Path | None) -> None:
    """Write the results file (episodes, summary, machine, command) atomically, keeping the episodes and commands
    another run (on the other core) wrote to it meanwhile."""
    on_disk = load_results(args.results)
    for key, row in on_disk["episodes"].items():
        data["episodes"].setdefault(key, row)
    data.setdefault("commands", [])
    data["commands"].extend(command for command in on_disk.get("commands", []) if command not in data["commands"])
    if checkpoint_path is not None:
        data.setdefault("checkpoints", {})[checkpoint_path.name] = {
            "path": str(checkpoint_path), "sha256": hashlib.sha256(checkpoint_path.read_bytes()).hexdigest()}
    data["summary"] = summarise(data["episodes"])
    data["comparisons"] = comparisons(data)
    data["task"] = {"builder": "memory_maze.tasks.memory_maze_NxN(global_observables=True, "
                               "target_color_in_image=False, seed=seed)", "control_hz": 4, "actions": 6,
                    "steps": EPISODE_STEPS, "published": PUBLISHED, "first_seed": FIRST_SEED,
                    "robot_inputs": "image, target colour, odometry (5% of speed, 2 deg/s); published agents had "
                                    "no odometry; agent_pos, maze_layout, targets_pos only for diagnostics"}
    data["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    command = " ".join(sys.argv)
    if not args.summary_only and command not in data["commands"]:
        data["commands"].append(command)
    _write_atomically(args.results, data)


if __name__ == "__main__":
    sys.exit(main())
