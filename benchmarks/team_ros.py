"""The team task through the real nodes and DDS (Team communication issue: "a ROS run of a few episodes at two
budgets gives the same success within its interval"), beside the in-process task (evaluation/team_task.py) on the same seeds.

Each ROS episode is one `spatial-memory demo` run (runner.run_demo, one process per node, in a child process of
its own): 3 robots in the 15x15 maze of the seed, oracle BEV and ground-truth pose (the in-process sweep's setting),
the team link at B bits per step with our strategy, every explorer told the episode's text goal (the in-process
task's: 'the <colour> target' of the target that seed draws). Success is judged by the demo from the ground-truth
poses: every robot within 0.6 m of that target within 150 sim seconds (1,500 steps); the run stops at success.
The in-process episodes of the same seeds and budgets are run here too (the language model's embeddings of the
task's texts, as benchmarks/team.py does) and the 50-episode rates of benchmarks/results/team.json are quoted.

Prints a table, writes benchmarks/results/team_ros.json.
  .venv/bin/python benchmarks/team_ros.py [--seeds 3] [--budgets 4 128] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from spatial_memory_ros.evaluation.metrics import wilson_interval  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
FIRST_SEED = 1000  # benchmarks/team.py's
MAZE_SIZE, ROBOTS, MAX_SIM_S, REACH_RADIUS = 15, 3, 150.0, 0.6


def task_query(seed: int) -> str:
    """The in-process team task's text goal for a seed: the target its episodes draw."""
    from spatial_memory_ros.evaluation.team_task import draw_goal_target
    from spatial_memory_ros.sim.maze import generate_maze

    return f"the {draw_goal_target(generate_maze(MAZE_SIZE, seed=seed), seed).color} target"


# -------------------------------------------------------------------------------------------------- ROS episode


def run_ros_episode(seed: int, bits: int, out: Path, wall_timeout: float) -> dict:
    """One episode through the demo runner, in a child process (a fresh rclpy and DDS participant each time)."""
    out.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--episode", str(seed), str(bits), str(out), str(wall_timeout)]
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=wall_timeout + 120,
                            env=os.environ.copy())
    wall = time.monotonic() - start
    lines = [line for line in result.stdout.splitlines() if line.startswith("RUN_DIR ")]
    if result.returncode != 0 or not lines:
        return {"seed": seed, "bits_per_step": bits, "error": (result.stdout + result.stderr)[-2000:],
                "wall_s": round(wall, 1)}
    run_dir = Path(lines[-1].split(" ", 1)[1])
    summary = json.loads((run_dir / "summary.json").read_text())
    goal = summary["goal"]
    per_robot = summary["per_robot"]
    return {"seed": seed, "bits_per_step": bits, "goal": goal["query"], "success": goal["team_success"],
            "time_to_success_s": goal["time_to_success_s"], "robots_reached": goal["robots_reached"],
            "time_to_goal_s": {r: v["time_to_goal_s"] for r, v in per_robot.items()},
            "sim_s": summary["sim_seconds"], "run_wall_s": summary["wall_seconds"],
            "real_time_factor": summary["real_time_factor"],
            "payload_bits_per_step": {r: v["team_link"].get("payload_bits_per_step") for r, v in per_robot.items()},
            "partner_error_m": {r: v["team_link"].get("partner_error_m") for r, v in per_robot.items()},
            "map_coverage": {r: v.get("map", {}).get("coverage") for r, v in per_robot.items()},
            "run_dir": str(run_dir.relative_to(ROOT)) if run_dir.is_relative_to(ROOT) else str(run_dir),
            "wall_s": round(wall, 1)}


def episode_main(seed: int, bits: int, out: Path, wall_timeout: float) -> None:
    """Child process: run the demo for one episode and print its run folder."""
    from spatial_memory_ros.demo.options import DemoOptions
    from spatial_memory_ros.demo.run import run_demo

    options = DemoOptions(duration=MAX_SIM_S, robots=ROBOTS, seed=seed, maze_size=MAZE_SIZE, out=out,
                          progress=False, query=task_query(seed), bev="oracle", pose="ground_truth", bits=bits,
                          comm="ours", reach_radius=REACH_RADIUS, stop_at_goal=True, wall_timeout=wall_timeout)
    print("RUN_DIR", run_demo(options), flush=True)


# --------------------------------------------------------------------------------------------- in-process side


def run_in_process(seeds: list[int], budgets: list[int]) -> list[dict]:
    """The in-process team task (evaluation/team_task.py) on the same seeds and budgets, with the real language model."""
    from spatial_memory_ros.memory.semantics import Embedder
    from spatial_memory_ros.evaluation.team_task import LabelEmbedder, TeamTaskConfig, run_episode

    embedder = LabelEmbedder.from_embedder(Embedder())
    results = []
    for bits in budgets:
        for seed in seeds:
            result = run_episode(TeamTaskConfig(strategy="ours", bits_per_step=bits, seed=seed), embedder)
            results.append({"seed": seed, "bits_per_step": bits, "goal": result.goal, "success": result.success,
                            "time_to_success_s": result.time_to_success_s,
                            "reached_s": [None if s is None else round(s * 0.1, 1) for s in result.reached_step],
                            "wall_s": round(result.wall_s, 1)})
    return results


def sweep_rates(budgets: list[int]) -> dict:
    """benchmarks/results/team.json's 50-episode success of 'ours' at these budgets, and its seeds' episodes."""
    path = RESULTS / "team.json"
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    rates = {}
    for row in data["sweep"]:
        if row["method"] == "ours" and row["bits_per_step"] in budgets:
            rates[row["bits_per_step"]] = {"episodes": row["episodes"], "successes": row["successes"],
                                           "success_rate": row["success_rate"], "success_ci95": row["success_ci95"],
                                           "mean_time_to_success_s": row["mean_time_to_success_s"]}
    episodes = {(e["bits_per_step"], e["seed"]): e for e in data["episodes"]
                if e["strategy"] == "ours" and e["packet_loss"] == 0 and e["dropout_step"] is None}
    return {"rates": rates, "episodes": episodes}


# ------------------------------------------------------------------------------------------------------ report


def summarise(ros: list[dict], in_process: list[dict], sweep: dict, budgets: list[int]) -> list[dict]:
    rows = []
    for bits in budgets:
        done = [e for e in ros if e["bits_per_step"] == bits and "error" not in e]
        wins = sum(e["success"] for e in done)
        low, high = wilson_interval(wins, len(done))
        local = [e for e in in_process if e["bits_per_step"] == bits]
        rate = sweep.get("rates", {}).get(bits)
        times = [e["time_to_success_s"] for e in done if e["success"]]
        local_times = [e["time_to_success_s"] for e in local if e["success"]]
        rows.append({
            "bits_per_step": bits, "ros_episodes": len(done), "ros_successes": wins,
            "ros_errors": sum(1 for e in ros if e["bits_per_step"] == bits and "error" in e),
            "ros_success_rate": wins / len(done) if done else None, "ros_success_ci95": [low, high],
            "ros_mean_time_to_success_s": float(np.mean(times)) if times else None,
            "in_process_same_seeds_successes": sum(e["success"] for e in local),
            "in_process_same_seeds_episodes": len(local),
            "in_process_same_seeds_mean_time_s": float(np.mean(local_times)) if local_times else None,
            "in_process_sweep": rate,
            "sweep_rate_within_ros_interval": (rate is not None and bool(done)
                                               and low - 1e-9 <= rate["success_rate"] <= high + 1e-9),
            "same_outcome_per_seed": sum(1 for e in done for l in local if l["seed"] == e["seed"]
                                         and l["success"] == e["success"]),
        })
    return rows


def print_tables(ros: list[dict], in_process: list[dict], rows: list[dict]) -> None:
    local = {(e["bits_per_step"], e["seed"]): e for e in in_process}
    print(f"\n{'bits':>4} {'seed':>5} {'goal':<18} {'ROS':>4} {'t ROS s':>8} {'robots':>6} {'in-proc':>7} "
          f"{'t in-proc s':>11} {'sim/wall':>8} {'wall s':>7}")
    for e in ros:
        other = local.get((e["bits_per_step"], e["seed"]), {})
        if "error" in e:
            print(f"{e['bits_per_step']:>4} {e['seed']:>5} ERROR: {e['error'][-200:]!r}")
            continue
        t = e["time_to_success_s"]
        t_local = other.get("time_to_success_s")
        print(f"{e['bits_per_step']:>4} {e['seed']:>5} {e['goal']:<18} {'yes' if e['success'] else 'no':>4} "
              f"{'-' if t is None else f'{t:.1f}':>8} {e['robots_reached']:>4}/3 "
              f"{'yes' if other.get('success') else 'no':>7} {'-' if t_local is None else f'{t_local:.1f}':>11} "
              f"{e['real_time_factor'] or 0:>8.2f} {e['wall_s']:>7.0f}")
    print(f"\n{'bits':>4} {'ROS success (95% CI)':<26} {'in-process, same seeds':<23} "
          f"{'in-process sweep, 50 seeds (95% CI)':<38} {'sweep in ROS CI':<15}")
    for row in rows:
        low, high = row["ros_success_ci95"]
        sweep = row["in_process_sweep"]
        sweep_text = (f"{sweep['successes']}/{sweep['episodes']} = {sweep['success_rate']:.2f} "
                      f"[{sweep['success_ci95'][0]:.2f}, {sweep['success_ci95'][1]:.2f}]") if sweep else "-"
        ros_text = (f"{row['ros_successes']}/{row['ros_episodes']} [{low:.2f}, {high:.2f}]"
                    if row["ros_episodes"] else "-")
        print(f"{row['bits_per_step']:>4} {ros_text:<26} "
              f"{row['in_process_same_seeds_successes']}/{row['in_process_same_seeds_episodes']:<21} "
              f"{sweep_text:<38} {'yes' if row['sweep_rate_within_ros_interval'] else 'no':<15}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="episodes per budget, seeds 1000, 1001, ... (default 3)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[4, 128], help="bits per step (default 4 128)")
    parser.add_argument("--episode-timeout", type=float, default=900.0, help="wall seconds per ROS episode")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "team_ros", help="parent of the run folders")
    parser.add_argument("--quick", action="store_true", help="one seed at one budget (4 bits)")
    parser.add_argument("--episode", nargs=4, metavar=("SEED", "BITS", "OUT", "TIMEOUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.episode:
        seed, bits, out, timeout = args.episode
        episode_main(int(seed), int(bits), Path(out), float(timeout))
        return
    # A DDS domain of its own, discovery on this machine: no cross-talk with other runs or test sessions.
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    seeds = [FIRST_SEED + k for k in range(1 if args.quick else args.seeds)]
    budgets = [4] if args.quick else args.budgets
    start = time.monotonic()
    sweep = sweep_rates(budgets)
    for seed in seeds:
        recorded = sweep.get("episodes", {}).get((budgets[0], seed))
        if recorded is not None and recorded["goal"] != task_query(seed):
            raise SystemExit(f"seed {seed}: team.json's goal {recorded['goal']!r} is not {task_query(seed)!r}")
    ros = []
    for seed in seeds:  # seed-major, so an interrupted run still has both budgets of its first seeds
        for bits in budgets:
            episode = run_ros_episode(seed, bits, args.out, args.episode_timeout)
            ros.append(episode)
            print(f"ROS seed {seed} bits {bits}: " + ("error" if "error" in episode else
                  f"success {episode['success']} at {episode['time_to_success_s']} s, {episode['robots_reached']}/3 "
                  f"reached, {episode['sim_s']:.0f} sim s in {episode['wall_s']:.0f} wall s"), flush=True)
    ros_wall = time.monotonic() - start
    in_process = run_in_process(seeds, budgets)
    for e in in_process:
        recorded = sweep.get("episodes", {}).get((e["bits_per_step"], e["seed"]))
        e["matches_team_json"] = None if recorded is None else (
            recorded["success"] == e["success"] and recorded["time_to_success_s"] == e["time_to_success_s"])
    rows = summarise(ros, in_process, sweep, budgets)
    print_tables(ros, in_process, rows)
    wall = time.monotonic() - start
    print(f"\n{len(ros)} ROS episodes in {ros_wall / 60:.1f} min, total {wall / 60:.1f} min")
    name = "team_ros_quick.json" if args.quick else "team_ros.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps({
        "command": " ".join([".venv/bin/python", "benchmarks/team_ros.py"] + sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "task": {"maze_size": MAZE_SIZE, "robots": ROBOTS, "max_sim_s": MAX_SIM_S, "reach_radius_m": REACH_RADIUS,
                 "bev": "oracle", "pose": "ground truth", "strategy": "ours", "seeds": seeds, "budgets": budgets,
                 "ros": "demo runner: one process per node, Fast DDS, sim in lockstep; stops at success"},
        "summary": rows, "ros_episodes": ros, "in_process_episodes": in_process,
        "timing": {"ros_wall_s": round(ros_wall, 1), "wall_s": round(wall, 1)},
    }, indent=2))
    print(f"wrote {RESULTS / name}")


if __name__ == "__main__":
    main()
