#!/usr/bin/env python3
"""SSM-PC's team task on Memory-Maze 15x15 (issue 17, item 2): success vs bits per step, on the shipped robot loop.

Three robots start at Memory-Maze's start cells (MemoryMazeWorld's draw for the seed) in the 15x15 maze that
Memory-Maze's own generator draws for the seed (memory_maze 1.0.3, 2 m cells, its six coloured spheres as targets);
all are told one target colour ("the blue target"); an episode succeeds when every robot has touched that sphere
(centre within 0.6 + 0.2 m) within T. The team task of evaluation/team_task.py runs it (behaviour/robot.py's Robot,
comm/'s TeamComm, each robot's RobotMemory): bits per step 4 / 8 / 16 / 32 / 64 / 128 x ours (predictive coding) /
full broadcast / broadcast with SSM-PC's 20-round quota / none. "None" sends nothing whatever the budget, so it runs
once (stored at 4 bits) and stands at every budget.

Two modes (evaluation/memory_maze_team.py):
- default (the sweep): no physics, no rendering: true BEVs (Memory-Maze's 80 deg camera cone on its layout) and
  true poses, robots driven kinematically (LayoutWorld). Same mazes, starts and goals as the full stack.
- ``--full-stack``: MemoryMazeWorld (MuJoCo, each robot its own physics), each robot seeing only its rendered
  64x64 image (the shipped BEV predictor through its camera adapter) and its odometry (the TEM localizer on its own
  memory's map): evaluation/memory_maze_full_stack.py. Meant for 4 and 128 bits, ours and broadcast.

Step rate and T (SSM-PC publishes neither): one step is Memory-Maze's control period, 0.25 s (4 Hz), so bits per
step are per Memory-Maze step. T = 600 steps (150 s) was chosen from a pilot on seeds 0-19 (not the benchmark's
seeds, which start at 1000) with T up to 1200 steps, none and ours at 4 bits: the pilot's success by time showed
"none" far below "ours" at 150 s (none needs about two to three minutes: every robot must find the target alone)
while ours is near its plateau; at Memory-Maze's own episode length (4,000 steps, 1,000 s) every policy would solve
nearly everything and bits could not matter. See the README's Benchmarks section for the pilot's numbers.

Runs are resumable per episode: results accumulate in benchmarks/results/NAME.json (written after every episode),
and a rerun skips every (mode, seed, policy, bits, T, step) already there. Seeds run round by round (one seed for
every setting per round), so stopping at any time leaves the settings paired on the same seeds.
  .venv/bin/python benchmarks/memory_maze_team.py [--seeds 100] [--bits 4 128] [--policies ours none] [--jobs 1]
  .venv/bin/python benchmarks/memory_maze_team.py --full-stack --seeds 50      # 4 and 128 bits, ours and broadcast
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# Python puts this script's folder first on sys.path, where a script named after a package (a benchmarks/
# memory_maze.py once shadowed Memory-Maze's memory_maze) would hide it: take it off (spawned workers inherit it).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))


def _load_team_benchmark():
    """benchmarks/team.py (summaries, paired comparisons, target checks, plot helpers), loaded by path: putting
    benchmarks/ on sys.path would let benchmarks/memory_maze.py shadow the memory_maze package."""
    spec = importlib.util.spec_from_file_location("team_benchmark", ROOT / "benchmarks" / "team.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


team_bench = _load_team_benchmark()
from spatial_memory_ros.evaluation.memory_maze_team import (REACH_RADIUS, RETRY_FALSE_ARRIVALS, STEP_S,  # noqa: E402
                                                              run_layout_episode)
from spatial_memory_ros.comm.link import CommConfig  # noqa: E402
from spatial_memory_ros.evaluation.team_task import LabelEmbedder, TeamTaskConfig, task_texts  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_WALL_SHARE = CommConfig().wall_share
BUDGETS = team_bench.BUDGETS
POLICIES = team_bench.METHODS
FULL_STACK_BITS = (4, 128)
FULL_STACK_POLICIES = ("ours", "broadcast")
MAZE_SIZE = 15
MAX_STEPS = 600
FIRST_SEED = 1000
BY_TIME_S = (50, 75, 100, 125, 150, 200, 250, 300)
SEED_000 = {"ours": {4: 0.644, 128: 0.735}, "broadcast": {4: 0.286, 128: 0.676}}
"""Seed 000's published figures (SSM-PC on its Memory-Maze team task): success at 4 and 128 bits per step."""

_EMBEDDER: LabelEmbedder | None = None


def _init_worker(table: dict) -> None:
    global _EMBEDDER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _EMBEDDER = LabelEmbedder({text: np.asarray(vector, np.float32) for text, vector in table.items()})


def _run(task: dict) -> dict:
    task = dict(task)
    mode, step_s, checkpoint = task.pop("mode"), task.pop("step_s"), task.pop("checkpoint")
    config = TeamTaskConfig(**task)
    if mode == "full_stack":
        from spatial_memory_ros.evaluation.memory_maze_full_stack import run_full_stack_episode

        result = run_full_stack_episode(config, _EMBEDDER, step_s, checkpoint or None)
    else:
        result = run_layout_episode(config, _EMBEDDER, step_s)  # the layout is drawn once per seed and process
    result["mode"] = mode
    result["max_steps"] = config.max_steps
    result["checkpoint"] = checkpoint
    if wall_share(task) != DEFAULT_WALL_SHARE:
        result["wall_share"] = wall_share(task)
    return result


def wall_share(episode: dict) -> float:
    """The link's wall share of an episode or a task (CommConfig.wall_share; the default where not named)."""
    return float(episode.get("wall_share", episode.get("comm", {}).get("wall_share", DEFAULT_WALL_SHARE)))


def episode_key(episode: dict) -> tuple:
    """What makes an episode the same episode: a rerun skips it if the results already hold one with this key."""
    return (episode["mode"], episode["seed"], episode["strategy"], episode["bits_per_step"], episode["max_steps"],
            round(float(episode["step_s"]), 6), episode.get("checkpoint", ""), wall_share(episode))


def settings(mode: str, bits: list[int], policies: list[str], max_steps: int, step_s: float,
             checkpoint: str = "", share: float = DEFAULT_WALL_SHARE) -> list[dict]:
    """Every setting of the run as TeamTaskConfig keyword arguments plus mode, step and BEV checkpoint (full stack;
    "" = the shipped one), seed added per round; ``share``: the link's wall share (CommConfig.wall_share)."""
    base = {"mode": mode, "step_s": step_s, "checkpoint": checkpoint, "maze_size": MAZE_SIZE,
            "max_steps": max_steps, "reach_radius": REACH_RADIUS, "retry_false_arrivals": RETRY_FALSE_ARRIVALS}
    if share != DEFAULT_WALL_SHARE:
        base["comm"] = {"wall_share": share}
    rows = [{**base, "strategy": policy, "bits_per_step": b} for b in bits for policy in policies if policy != "none"]
    if "none" in policies:
        rows.append({**base, "strategy": "none", "bits_per_step": BUDGETS[0]})
    return rows


def embedding_table() -> dict:
    """The packaged sentence model's embeddings of the task's texts with Memory-Maze's colours (loaded once)."""
    from spatial_memory_ros.memory.semantics import Embedder
    from spatial_memory_ros.sim.memory_maze import CLASS_NAMES

    return LabelEmbedder.from_embedder(Embedder(), task_texts(CLASS_NAMES)).table()


def load_report(path: Path) -> dict:
    """The results so far (an empty report if none)."""
    if path.exists():
        return json.loads(path.read_text())
    return {"episodes": [], "runs": []}


def save_report(path: Path, report: dict) -> None:
    """Write atomically, so an interrupted run never leaves half a file."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1, default=float))
    tmp.replace(path)


def supersede(report: dict, note: str) -> int:
    """Move every episode, with the summaries and runs, into a new first entry of ``report['superseded']`` that says
    ``note`` (why they no longer count); returns how many moved. For a change to the robot loop: a rerun skips the
    episodes already in the report, so the old loop's ones have to move aside first."""
    moved = report.get("episodes", [])
    if moved:
        report.setdefault("superseded", []).insert(0, {"note": note, "episodes": moved,
                                                       "summaries": report.get("summaries", {}),
                                                       "runs": report.get("runs", [])})
    report.update(episodes=[], summaries={}, runs=[])
    return len(moved)


def summary(report: dict, mode: str, max_steps: int, step_s: float, bits: list[int], checkpoint: str = "",
            share: float = DEFAULT_WALL_SHARE) -> dict:
    """Per-setting rows, the paired comparisons and the issue's targets over the episodes of one mode, T, step,
    checkpoint and wall share."""
    episodes = [e for e in report["episodes"] if e["mode"] == mode and e["max_steps"] == max_steps
                and abs(e["step_s"] - step_s) < 1e-9 and e.get("checkpoint", "") == checkpoint
                and wall_share(e) == share]
    seeds = _complete_seeds(episodes)
    paired = episodes  # each row over all its seeds; each comparison over the seeds both settings ran
    sweep, _ = team_bench.group(paired, tuple(bits))
    for row in sweep:  # success within shorter limits: how the policies part over time (the pilot chose T so)
        mine = team_bench.fault_free_episodes(paired, row["method"], row["bits_per_step"])
        row["success_within_s"] = {str(limit): sum(bool(e["success"]) and e["time_to_success_s"] <= limit
                                                   for e in mine) / len(mine)
                                   for limit in BY_TIME_S if limit <= max_steps * step_s + 1e-9}
    targets = team_bench.check_targets(sweep, paired)
    rate = {(row["method"], row["bits_per_step"]): row["success_rate"] for row in sweep}
    targets["ours_4_at_least_73.5_percent"] = bool(rate.get(("ours", 4), 0.0) >= 0.735)
    comparisons = [team_bench.compare(paired, first, second, b) for b in bits
                   for first, second in (("ours", "broadcast"), ("ours", "none"), ("ours", "quota"))
                   if _ran(paired, first, b) and _ran(paired, second, b)]
    return {"mode": mode, "checkpoint": checkpoint, "max_steps": max_steps, "step_s": step_s,
            "T_s": max_steps * step_s,
            "seeds_with_every_setting": len(seeds), "sweep": sweep, "comparisons": comparisons, "targets": targets}


def _ran(episodes: list[dict], policy: str, bits: int) -> bool:
    return bool(team_bench.fault_free_episodes(episodes, policy, bits))


def _complete_seeds(episodes: list[dict]) -> set[int]:
    """Seeds on which every setting present in the episodes has run (so every comparison is paired)."""
    settings_seen = {(e["strategy"], e["bits_per_step"]) for e in episodes}
    by_seed: dict[int, set] = {}
    for e in episodes:
        by_seed.setdefault(e["seed"], set()).add((e["strategy"], e["bits_per_step"]))
    return {seed for seed, done in by_seed.items() if done >= settings_seen}


def plot(rows: list[dict], title: str, path: Path) -> None:
    """Success rate (95% Wilson interval) against bits per step, one line per policy, seed 000's figures as
    crosses."""
    figure, axis = team_bench._new_axes()
    for method, marker in zip(POLICIES, "osD^"):
        picked = [row for row in rows if row["method"] == method]
        if not picked:
            continue
        bits = [row["bits_per_step"] for row in picked]
        rate = np.array([row["success_rate"] for row in picked])
        ci = np.array([row["success_ci95"] for row in picked])
        axis.errorbar(bits, rate, yerr=[rate - ci[:, 0], ci[:, 1] - rate], marker=marker, capsize=3,
                      label=f"{team_bench.LABELS[method]} (n={picked[0]['episodes']})")
    for method, color in (("ours", "C0"), ("broadcast", "C1")):
        points = SEED_000[method]
        axis.scatter(list(points), list(points.values()), marker="x", color=color, s=50,
                     label=f"seed 000 (SSM-PC), {method}")
    axis.set_xscale("log", base=2)
    axis.set_xticks(BUDGETS, [str(b) for b in BUDGETS])
    axis.set_xlabel("link budget (payload bits per robot per step)")
    axis.set_ylabel("success rate (95% Wilson interval)")
    axis.set_ylim(0, 1.05)
    axis.set_title(title, fontsize=9)
    team_bench._save(figure, axis, path)


def print_summary(result: dict) -> None:
    print(f"\n{result['mode']}: T = {result['max_steps']} steps of {result['step_s']} s ({result['T_s']:.0f} s), "
          f"{result['seeds_with_every_setting']} seeds with every setting")
    team_bench.print_tables(result["sweep"], [])
    for row in result["comparisons"]:
        low, high = row["difference_ci95"]
        print(f"{row['first']} - {row['second']} at {row['bits_per_step']} bits, {row['seeds']} seeds: "
              f"{row['difference']:+.3f} [{low:+.3f}, {high:+.3f}], McNemar p = {row['mcnemar_p']:.2g}")
    print("targets:", json.dumps(result["targets"]))


def _record(results, report: dict, path: Path, bar) -> None:
    """Add each episode's result to the report and save it at once (so a stopped run loses at most one)."""
    for result in results:
        report["episodes"].append(result)
        save_report(path, report)
        bar.update(1)


def run(args: argparse.Namespace, path: Path) -> dict:
    """Run what is missing, round by round, saving after each episode; then summarise and plot."""
    from tqdm import tqdm

    report = load_report(path)
    if getattr(args, "supersede", None) is not None:
        print(f"moved {supersede(report, args.supersede.strip())} episodes aside (superseded)", flush=True)
        save_report(path, report)
    mode = "full_stack" if args.full_stack else "true_bev"
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    checkpoint = ""
    if args.full_stack:  # named, so that the results stay apart when the default checkpoint changes
        from spatial_memory_ros.perception.predictor import checkpoint_for_world

        chosen = Path(args.checkpoint) if args.checkpoint else checkpoint_for_world("memory_maze")
        checkpoint = os.path.relpath(chosen.resolve(), ROOT) if chosen.is_absolute() else str(chosen)
    share = getattr(args, "wall_share", DEFAULT_WALL_SHARE)
    rows = settings(mode, args.bits, args.policies, args.max_steps, args.step_s, checkpoint, share)
    done = {episode_key(e) for e in report["episodes"]}
    tasks = [{**row, "seed": seed} for seed in seeds for row in rows]
    todo = [task for task in tasks if episode_key(task) not in done]
    started = time.perf_counter()
    print(f"{len(tasks) - len(todo)} of {len(tasks)} episodes already in {path.name}; running {len(todo)}",
          flush=True)
    if todo:
        table = embedding_table()
        with tqdm(total=len(todo), unit="episode", desc=f"memory-maze team ({mode})",
                  disable=not sys.stderr.isatty()) as bar:
            if args.jobs == 1:  # in this process: nothing left running if the run is stopped
                _init_worker(table)
                results = map(_run, todo)
                _record(results, report, path, bar)
            else:
                context = multiprocessing.get_context("spawn")  # torch is loaded here: fork is not safe after that
                with context.Pool(args.jobs, initializer=_init_worker, initargs=(table,)) as pool:
                    _record(pool.imap(_run, todo), report, path, bar)
    report["runs"].append({"command": " ".join(sys.argv), "episodes_run": len(todo),
                           "wall_s": time.perf_counter() - started, "jobs": args.jobs, "ended": time.time(),
                           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                       "python": platform.python_version(),
                                       "load_average": list(os.getloadavg())}})
    all_bits = sorted({e["bits_per_step"] for e in report["episodes"] if e["mode"] == mode} | set(args.bits))
    result = summary(report, mode, args.max_steps, args.step_s, all_bits, checkpoint, share)
    key = f"{mode}_T{args.max_steps}_dt{args.step_s}{'_' + checkpoint if checkpoint else ''}"
    if share != DEFAULT_WALL_SHARE:
        key += f"_wall_share{share:g}"
        result["wall_share"] = share
    report.setdefault("summaries", {})[key] = result
    report["task"] = {"maze": f"Memory-Maze {MAZE_SIZE}x{MAZE_SIZE} (memory_maze 1.0.3's generator), 2 m cells",
                      "robots": 3, "reach_radius_m": REACH_RADIUS, "first_seed": args.first_seed,
                      "seed_000": SEED_000}
    save_report(path, report)
    print_summary(result)
    title = (f"3 robots, Memory-Maze 15x15, {mode.replace('_', ' ')}, T = {result['T_s']:.0f} s "
             f"({args.max_steps} steps of {args.step_s} s)")
    plot(result["sweep"], title, path.with_name(f"{path.stem}{'_full_stack' if args.full_stack else ''}.png"))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100, help="seeds per setting (default 100)")
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED, help=f"first seed (default {FIRST_SEED})")
    parser.add_argument("--bits", type=int, nargs="+", choices=BUDGETS, default=None, metavar="BITS",
                        help="budgets (default all; --full-stack: 4 128)")
    parser.add_argument("--policies", nargs="+", choices=POLICIES, default=None,
                        help="policies (default all; --full-stack: ours broadcast)")
    parser.add_argument("--full-stack", action="store_true",
                        help="rendered images, predicted BEVs, estimated poses (MuJoCo; about 20 steps/s per robot)")
    parser.add_argument("--checkpoint", default=None,
                        help="--full-stack: BEV checkpoint (default: Memory-Maze's shipped one, "
                             "spatial_memory_ros/models/bev_boundary.pt)")
    parser.add_argument("--max-steps", type=int, default=MAX_STEPS, help=f"T in steps (default {MAX_STEPS})")
    parser.add_argument("--step-s", type=float, default=STEP_S, help=f"seconds per step (default {STEP_S})")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--wall-share", type=float, default=DEFAULT_WALL_SHARE,
                        help="the link's wall share (CommConfig.wall_share: a comm cell is sent as a wall when at "
                             f"least this share of its seen map cells are walls; default {DEFAULT_WALL_SHARE})")
    parser.add_argument("--name", default="memory_maze_team", help="results: benchmarks/results/NAME.json")
    parser.add_argument("--quick", action="store_true", help="2 seeds, 4 bits, ours and none, T 200, NAME_quick")
    parser.add_argument("--supersede", metavar="NOTE", default=None,
                        help="after a change to the robot loop: first move every episode in the results aside "
                             "(under 'superseded', with NOTE saying why), so that they run again")
    args = parser.parse_args(argv)
    args.bits = sorted(set(args.bits or (FULL_STACK_BITS if args.full_stack else BUDGETS)))
    args.policies = [p for p in POLICIES if p in (args.policies or (FULL_STACK_POLICIES if args.full_stack
                                                                     else POLICIES))]
    if args.quick:
        args.seeds, args.bits, args.max_steps, args.name = 2, [4], 200, args.name + "_quick"
        args.policies = [p for p in args.policies if p in ("ours", "none")] or ["ours"]
    if args.seeds < 1 or args.jobs < 1 or args.max_steps < 1 or args.step_s <= 0:
        parser.error("--seeds, --jobs and --max-steps must be at least 1, --step-s positive")
    if not 0.0 < args.wall_share <= 1.0:
        parser.error(f"--wall-share must be in (0, 1], got {args.wall_share}")
    if args.supersede is not None and not args.supersede.strip():
        parser.error("--supersede needs a note that says why the episodes no longer count")
    if not args.name or "/" in args.name:
        parser.error(f"--name must be a plain file name, got {args.name!r}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    run(args, RESULTS / f"{args.name}.json")


if __name__ == "__main__":
    main()
