"""Benchmark of team communication under a bit budget (Team communication issue), in process, on the shipped robot
loop (behaviour.Robot).

Sweep: bits per step in {4, 8, 16, 32, 64, 128} x {ours, full broadcast, broadcast with SSM-PC's 20-round quota,
no communication}, EPISODES episodes each on fixed seeds (1000, 1001, ...), every method on the same mazes,
starts and goals. "No communication" sends nothing whatever the budget, so its episodes are run once and the same
results stand at every budget (the budget only feeds a bucket it never draws on). Then the faults: packet loss of
10 / 30 / 50% and one robot dropping out at step 300, for ours and full broadcast at 16 bits per step.

Per setting: success rate with its 95% Wilson interval, success within 50 s (500 steps, where the methods differ
even when all succeed at 150 s), mean time to success, map IoU and coverage of each robot's team map at the end,
partner localisation error (a robot with no estimate of a teammate guesses the map centre), and the payload bits
actually sent per robot and step. Language: the packaged all-MiniLM-L6-v2, its embeddings of the task's 20 texts
computed once here and handed to the workers.

Episodes run round by round (one seed for every setting per round) on --jobs worker processes; the first round
measures an episode's cost, and rounds stop when the next would overrun --time-budget-min, so every setting has the
same number of episodes. Prints a table, writes benchmarks/results/team.json, team.png (success against bits) and
team_over_time.png (share of episodes solved by each time, at the smallest budget).

Since every method runs on the same seeds, ours and full broadcast at 4 bits are also compared pair by pair: the
difference of success rates with its Newcombe 95% interval and the exact McNemar p-value. The decisive 4-bit
comparison can be run alone on more seeds (38 min on 2 busy CPUs for 200 seeds of three methods):
  .venv/bin/python benchmarks/team.py [--episodes 50] [--jobs 2] [--time-budget-min 60] [--quick]
  .venv/bin/python benchmarks/team.py --budgets 4 --methods ours broadcast none --episodes 200 \
      --fault-episodes 0 --name team_4bit
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spatial_memory_ros.evaluation.metrics import (mcnemar_exact_p, paired_difference_interval,  # noqa: E402
                                             wilson_interval)
from spatial_memory_ros.evaluation.team_task import LabelEmbedder, TeamTaskConfig, run_episode  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
BUDGETS = (4, 8, 16, 32, 64, 128)
METHODS = ("ours", "broadcast", "quota", "none")
LABELS = {"ours": "ours (predictive coding)", "broadcast": "full broadcast", "quota": "broadcast, 20-round quota",
          "none": "no communication"}
FAULTS = ({"packet_loss": 0.1}, {"packet_loss": 0.3}, {"packet_loss": 0.5}, {"dropout_step": 300})
FAULT_METHODS = ("ours", "broadcast")
FAULT_BITS = 16
FIRST_SEED = 1000
QUICK_WINDOW_S = 50.0

_EMBEDDER: LabelEmbedder | None = None


def _init_worker(table: dict) -> None:
    global _EMBEDDER
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _EMBEDDER = LabelEmbedder({text: np.asarray(vector, np.float32) for text, vector in table.items()})


def _run(task: dict) -> dict:
    config = TeamTaskConfig(**task)
    return run_episode(config, _EMBEDDER).to_dict()


def settings(quick: bool, budgets: tuple[int, ...] = BUDGETS,
             methods: tuple[str, ...] = METHODS) -> tuple[list[dict], list[dict]]:
    """The sweep's and the faults' settings, as TeamTaskConfig keyword arguments (seed added later)."""
    base = {"maze_size": 9, "max_steps": 600} if quick else {}
    sweep = [{**base, "strategy": method, "bits_per_step": bits}
             for bits in budgets for method in methods if method != "none"]
    if "none" in methods:
        sweep.append({**base, "strategy": "none", "bits_per_step": BUDGETS[0]})
    faults = [{**base, "strategy": method, "bits_per_step": FAULT_BITS, **fault}
              for fault in FAULTS for method in FAULT_METHODS]
    return sweep, faults


def embedding_table() -> dict:
    """Embeddings of the task's texts with the packaged sentence model (loaded once, here)."""
    from spatial_memory_ros.memory.semantics import Embedder

    return LabelEmbedder.from_embedder(Embedder()).table()


def run_rounds(pool, all_settings: list[dict], episodes: int, jobs: int, budget_s: float,
               name: str) -> tuple[list, dict]:
    """Run seed after seed over every setting until ``episodes`` seeds are done or the time budget would overrun."""
    from tqdm import tqdm

    results: list[dict] = []
    start = time.perf_counter()
    round_times: list[float] = []
    with tqdm(total=episodes * len(all_settings), unit="episode", desc=name) as bar:
        for index in range(episodes):
            elapsed = time.perf_counter() - start
            if round_times and elapsed + max(round_times) > budget_s:
                tqdm.write(f"stopping after {index} seeds: another round (~{max(round_times):.0f} s) would "
                           f"overrun the {budget_s / 60:.0f}-minute budget")
                break
            tasks = [{**setting, "seed": FIRST_SEED + index} for setting in all_settings]
            round_start = time.perf_counter()
            for result in pool.imap_unordered(_run, tasks):
                results.append(result)
                bar.update(1)
            round_times.append(time.perf_counter() - round_start)
            if index == 0:
                per_episode = round_times[0] * jobs / len(tasks)
                needed = per_episode * len(tasks) * episodes / jobs
                tqdm.write(f"first round: {round_times[0]:.0f} s for {len(tasks)} episodes (~{per_episode:.1f} s "
                           f"CPU each); {episodes} seeds need ~{needed / 60:.0f} min on {jobs} jobs, budget "
                           f"{budget_s / 60:.0f} min")
    timing = {"wall_s": time.perf_counter() - start, "rounds": len(round_times), "round_s": round_times,
              "episodes_run": len(results), "jobs": jobs, "budget_s": budget_s}
    return results, timing


def summarise(episodes: list[dict]) -> dict:
    """Success rate and interval, times, maps, partner error and bits over a setting's episodes."""
    n = len(episodes)
    wins = sum(e["success"] for e in episodes)
    times = [e["time_to_success_s"] for e in episodes if e["success"]]
    low, high = wilson_interval(wins, n)
    quick_wins = sum(e["success"] and e["time_to_success_s"] <= QUICK_WINDOW_S for e in episodes)

    def mean(key: str) -> float:
        values = [e[key] for e in episodes if e[key] is not None and math.isfinite(e[key])]
        return float(np.mean(values)) if values else float("nan")

    return {"episodes": n, "successes": wins, "success_rate": wins / n if n else float("nan"),
            "success_ci95": [low, high], "success_within_50s": quick_wins / n if n else float("nan"),
            "mean_time_to_success_s": float(np.mean(times)) if times else float("nan"),
            "map_iou": mean("map_iou"), "coverage": mean("coverage"), "partner_error_m": mean("partner_error_m"),
            "bits_used_per_step": mean("bits_used_per_step"), "packets_sent": mean("packets_sent"),
            "envelope_bytes_per_s": mean("envelope_bytes_per_s"), "drops": int(sum(e["drops"] for e in episodes))}


def group(results: list[dict], budgets: tuple[int, ...] = BUDGETS) -> tuple[list[dict], list[dict]]:
    """Rows of the sweep (no communication repeated at every budget run) and of the faults."""
    def key(e: dict) -> tuple:
        return e["strategy"], e["bits_per_step"], e["packet_loss"], e["dropout_step"]

    buckets: dict[tuple, list[dict]] = {}
    for episode in results:
        buckets.setdefault(key(episode), []).append(episode)
    sweep = []
    for bits in budgets:
        for method in METHODS:
            episodes = buckets.get((method, BUDGETS[0] if method == "none" else bits, 0.0, None), [])
            if episodes:
                sweep.append({"method": method, "bits_per_step": bits, **summarise(episodes)})
    faults = []
    for fault in FAULTS:
        for method in FAULT_METHODS:
            episodes = buckets.get((method, FAULT_BITS, fault.get("packet_loss", 0.0), fault.get("dropout_step")), [])
            if episodes:
                faults.append({"method": method, "bits_per_step": FAULT_BITS, **fault, **summarise(episodes)})
    return sweep, faults


def fault_free_episodes(results: list[dict], method: str, bits: int) -> list[dict]:
    """A method's episodes at ``bits`` without faults ("no communication" ran once, stored at the first budget)."""
    stored_bits = BUDGETS[0] if method == "none" else bits
    return [e for e in results if e["strategy"] == method and e["bits_per_step"] == stored_bits
            and e["packet_loss"] == 0.0 and e["dropout_step"] is None]


def paired_outcomes(results: list[dict], first: str, second: str, bits: int) -> tuple[list[bool], list[bool]]:
    """Success of two methods on the seeds both ran at ``bits`` (no faults), in seed order."""
    def by_seed(method: str) -> dict[int, bool]:
        return {e["seed"]: bool(e["success"]) for e in fault_free_episodes(results, method, bits)}

    a, b = by_seed(first), by_seed(second)
    seeds = sorted(set(a) & set(b))
    return [a[s] for s in seeds], [b[s] for s in seeds]


def compare(results: list[dict], first: str, second: str, bits: int) -> dict:
    """Paired comparison of two methods on the same seeds: difference of success rates with its Newcombe 95%
    interval, the discordant seeds and the exact McNemar p-value."""
    one, two = paired_outcomes(results, first, second, bits)
    diff, low, high = paired_difference_interval(one, two)
    only_first = sum(a and not b for a, b in zip(one, two))
    only_second = sum(b and not a for a, b in zip(one, two))
    return {"first": first, "second": second, "bits_per_step": bits, "seeds": len(one), "difference": diff,
            "difference_ci95": [low, high], "only_first_succeeded": only_first,
            "only_second_succeeded": only_second, "mcnemar_p": mcnemar_exact_p(only_first, only_second)}


def check_targets(sweep: list[dict], results: list[dict] | None = None) -> dict:
    """The issue's targets, measured. With the episodes, also the paired test of ours against full broadcast at
    4 bits: "well below" is read as a difference whose 95% interval excludes zero (the seeds are shared, so the
    paired test applies); its size is reported as measured."""
    rate = {(row["method"], row["bits_per_step"]): row["success_rate"] for row in sweep}
    ours4, ours128 = rate.get(("ours", 4), float("nan")), rate.get(("ours", 128), float("nan"))
    broadcast4 = rate.get(("broadcast", 4), float("nan"))
    both = [bits for bits in BUDGETS if ("ours", bits) in rate and ("none", bits) in rate]
    beats_none = {bits: rate[("ours", bits)] > rate[("none", bits)] for bits in both}
    mean_time = {(row["method"], row["bits_per_step"]): row["mean_time_to_success_s"] for row in sweep}
    faster_than_none = {bits: mean_time[("ours", bits)] < mean_time[("none", bits)] for bits in both}
    return {"ours_4_over_128": ours4 / ours128 if ours128 else float("nan"),
            "ours_4_keeps_90_percent": bool(ours128 and ours4 >= 0.9 * ours128),
            "broadcast_4_minus_ours_4": broadcast4 - ours4,
            "ours_beats_no_comm": beats_none,
            "ours_beats_no_comm_everywhere": bool(beats_none) and all(beats_none.values()),
            "ours_faster_than_no_comm": faster_than_none,
            **(_paired_targets(results) if results else {})}


def _paired_targets(results: list[dict]) -> dict:
    ours_vs_broadcast = compare(results, "ours", "broadcast", 4)
    if not ours_vs_broadcast["seeds"]:
        return {}
    return {"ours_vs_broadcast_4": ours_vs_broadcast,
            "broadcast_4_significantly_below_ours_4": bool(ours_vs_broadcast["difference_ci95"][0] > 0),
            "ours_vs_none_4": compare(results, "ours", "none", 4),
            "broadcast_vs_none_4": compare(results, "broadcast", "none", 4)}


def print_tables(sweep: list[dict], faults: list[dict]) -> None:
    header = (f"{'method':<28}{'bits':>5}{'n':>4}  {'success [95% CI]':<22}{'<=50s':>6}{'t_succ s':>9}"
              f"{'mapIoU':>7}{'cover':>6}{'partner m':>10}{'bits/step':>10}")
    print(header)
    print("-" * len(header))
    for row in sweep:
        low, high = row["success_ci95"]
        print(f"{LABELS[row['method']]:<28}{row['bits_per_step']:>5}{row['episodes']:>4}  "
              f"{row['success_rate']:.2f} [{low:.2f}, {high:.2f}]{'':<6}{row['success_within_50s']:>6.2f}"
              f"{row['mean_time_to_success_s']:>9.1f}{row['map_iou']:>7.2f}{row['coverage']:>6.2f}"
              f"{row['partner_error_m']:>10.2f}{row['bits_used_per_step']:>10.1f}")
    if faults:
        print(f"\nfaults at {FAULT_BITS} bits/step")
        for row in faults:
            fault = f"loss {row['packet_loss']:.0%}" if "packet_loss" in row else f"dropout @{row['dropout_step']}"
            low, high = row["success_ci95"]
            print(f"{LABELS[row['method']]:<28}{fault:<14}{row['episodes']:>4}  {row['success_rate']:.2f} "
                  f"[{low:.2f}, {high:.2f}]  t_succ {row['mean_time_to_success_s']:.1f} s  "
                  f"partner {row['partner_error_m']:.2f} m  drops {row['drops']}")


def _new_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, 4.2))


def _save(figure, axis, path: Path) -> None:
    import matplotlib.pyplot as plt

    axis.legend(fontsize=8, loc="lower right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot(sweep: list[dict], path: Path) -> None:
    figure, axis = _new_axes()
    for method, marker in zip(METHODS, "osD^"):
        rows = [row for row in sweep if row["method"] == method]
        if not rows:
            continue
        bits = [row["bits_per_step"] for row in rows]
        rate = np.array([row["success_rate"] for row in rows])
        ci = np.array([row["success_ci95"] for row in rows])
        axis.errorbar(bits, rate, yerr=[rate - ci[:, 0], ci[:, 1] - rate], marker=marker, capsize=3,
                      label=LABELS[method])
    axis.set_xscale("log", base=2)
    axis.set_xticks(BUDGETS, [str(b) for b in BUDGETS])
    axis.set_xlabel("link budget (payload bits per robot per step)")
    axis.set_ylabel("success rate (95% Wilson interval)")
    axis.set_ylim(0, 1.05)
    n = max((row["episodes"] for row in sweep), default=0)
    axis.set_title(f"3 robots, 15x15 maze, find the named target in 150 s ({n} episodes each)", fontsize=9)
    _save(figure, axis, path)


def plot_success_over_time(results: list[dict], bits: int, max_s: float, path: Path) -> None:
    """Share of episodes solved by each time, one line per method at ``bits`` (no faults): where the methods part."""
    figure, axis = _new_axes()
    grid = np.linspace(0.0, max_s, 301)
    for method in METHODS:
        episodes = fault_free_episodes(results, method, bits)
        if not episodes:
            continue
        times = np.array([e["time_to_success_s"] for e in episodes if e["success"]], dtype=float)
        solved = (times[None, :] <= grid[:, None]).sum(axis=1) / len(episodes)
        axis.plot(grid, solved, label=f"{LABELS[method]} (n={len(episodes)})")
    axis.set_xlabel("time since start (s)")
    axis.set_ylabel("share of episodes solved")
    axis.set_ylim(0, 1.02)
    axis.set_title(f"success over time at {bits} bits per robot per step", fontsize=9)
    _save(figure, axis, path)


def print_comparisons(targets: dict) -> None:
    for key in ("ours_vs_broadcast_4", "ours_vs_none_4", "broadcast_vs_none_4"):
        row = targets.get(key)
        if row:
            low, high = row["difference_ci95"]
            print(f"{row['first']} - {row['second']} at {row['bits_per_step']} bits, {row['seeds']} shared seeds: "
                  f"{row['difference']:+.3f} [{low:+.3f}, {high:+.3f}]; only {row['first']} "
                  f"{row['only_first_succeeded']}, only {row['second']} {row['only_second_succeeded']}, "
                  f"McNemar p = {row['mcnemar_p']:.2g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=50, help="seeds per setting (default 50)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--time-budget-min", type=float, default=60.0,
                        help="no new sweep round once the next would end after this (default 60)")
    parser.add_argument("--fault-episodes", type=int, default=10, help="seeds per fault setting (default 10, 0: none)")
    parser.add_argument("--fault-budget-min", type=float, default=15.0, help="time budget of the faults (default 15)")
    parser.add_argument("--quick", action="store_true", help="2 episodes, 9x9 maze, 60 s limit, separate JSON")
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS), choices=BUDGETS, metavar="BITS",
                        help=f"only these budgets (default all: {' '.join(map(str, BUDGETS))})")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS,
                        help="only these methods (default all)")
    parser.add_argument("--name", default=None,
                        help="results name: benchmarks/results/NAME.json and .png (default team, team_quick)")
    args = parser.parse_args()
    if args.episodes < 1 or args.jobs < 1 or args.fault_episodes < 0:
        parser.error("--episodes and --jobs must be at least 1, --fault-episodes at least 0")
    if args.name is not None and (not args.name or "/" in args.name):
        parser.error(f"--name must be a plain file name without '/', got {args.name!r}")
    episodes = 2 if args.quick and args.episodes == 50 else args.episodes
    fault_episodes = min(args.fault_episodes, 2) if args.quick else args.fault_episodes
    sweep_settings, fault_settings = settings(args.quick, tuple(sorted(set(args.budgets))),
                                              tuple(m for m in METHODS if m in args.methods))
    started = time.perf_counter()
    table = embedding_table()
    embed_s = time.perf_counter() - started
    context = multiprocessing.get_context("spawn")  # the parent has loaded torch; fork is not safe after that
    with context.Pool(args.jobs, initializer=_init_worker, initargs=(table,)) as pool:
        results, timing = run_rounds(pool, sweep_settings, episodes, args.jobs, 60.0 * args.time_budget_min,
                                     "team sweep")
        fault_results, fault_timing = run_rounds(pool, fault_settings, fault_episodes, args.jobs,
                                                 60.0 * args.fault_budget_min, "faults") if fault_episodes else ([], {})
    results += fault_results
    timing = {"sweep": timing, "faults": fault_timing, "embedding_s": embed_s,
              "wall_s": timing["wall_s"] + fault_timing.get("wall_s", 0.0), "episodes_run": len(results)}
    sweep, faults = group(results, tuple(sorted(set(args.budgets))))
    print_tables(sweep, faults)
    targets = check_targets(sweep, results)
    print()
    print_comparisons(targets)
    print("\ntargets:", json.dumps(targets))
    name = args.name or ("team_quick" if args.quick else "team")
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(sweep, RESULTS / f"{name}.png")
    plot_success_over_time(results, min(args.budgets), (600 if args.quick else 1500) * 0.1,
                           RESULTS / f"{name}_over_time.png")
    report = {
        "command": " ".join(sys.argv), "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                                  "python": platform.python_version()},
        "task": {"maze_size": 9 if args.quick else 15, "robots": 3, "max_steps": 600 if args.quick else 1500,
                 "dt_s": 0.1, "reach_radius_m": 0.6, "pose": "true pose (oracle localisation)",
                 "bev": "oracle", "first_seed": FIRST_SEED, "episodes_requested": episodes,
                 "fault_episodes_requested": fault_episodes},
        "timing": timing, "sweep": sweep, "faults": faults, "targets": targets, "episodes": results,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=1, default=float))
    print(f"wrote {RESULTS / f'{name}.json'}, {name}.png and {name}_over_time.png in {timing['wall_s'] / 60:.1f} min "
          f"({timing['episodes_run']} episodes)")


if __name__ == "__main__":
    main()
