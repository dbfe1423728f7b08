"""The demo's run folder: summary.json (with a one-line verdict) and the pictures."""
from __future__ import annotations

import json
from pathlib import Path

from spatial_memory_ros.demo.observer import RunObservation
from spatial_memory_ros.demo.options import DemoOptions, demo_query
from spatial_memory_ros.demo.scoring import add_memory_results, goal_results
from spatial_memory_ros.ros_common import FAULT_PREFIX


def write_run_folder(run_dir: Path, options: DemoOptions, observation: RunObservation, wall_seconds: float,
                     interrupted: str | None = None) -> None:
    """summary.json (first, so an interrupted write-up still leaves it), trajectories.png and the maps."""
    from spatial_memory_ros.conversions import msg_to_occupancy
    from spatial_memory_ros.evaluation.plots import draw_occupancy, draw_trajectories, save_png
    from spatial_memory_ros.sim.interface import world_layout

    write_summary(run_dir, options, observation, wall_seconds, interrupted)
    maze = world_layout(options.world, options.maze_size, options.seed)
    paths = {robot: [(x, y) for _, x, y in track] for robot, track in observation.trajectories.items()}
    save_png(run_dir / "trajectories.png", draw_trajectories(maze, paths))
    for robot, grid in observation.maps.items():
        save_png(run_dir / f"map_{robot}.png", draw_occupancy(*msg_to_occupancy(grid)))


def write_summary(run_dir: Path, options: DemoOptions, observation: RunObservation, wall_seconds: float,
                  interrupted: str | None = None) -> dict:
    """summary.json, written whole or not at all (a temporary file renamed over it). ``complete`` is false and
    ``interrupted`` says when if Ctrl-C cut the run or its write-up short."""
    summary = build_summary(options, observation, wall_seconds)
    summary = {"complete": interrupted is None, **({"interrupted": interrupted} if interrupted else {}), **summary}
    partial = run_dir / "summary.json.partial"
    partial.write_text(json.dumps(summary, indent=2))
    partial.replace(run_dir / "summary.json")
    return summary


def build_summary(options: DemoOptions, observation: RunObservation, wall_seconds: float) -> dict:
    """The demo's summary: per robot distance, speed, frames, map scores, localization against dead reckoning,
    link use and the goal; overall sim and wall seconds; and a one-line verdict."""
    status = observation.status
    sim_seconds = float(status.sim_time) if status is not None else 0.0
    per_robot = {}
    if status is not None:
        for robot, frames, distance in zip(status.robot_ids, status.frames_published, status.distance_travelled):
            per_robot[robot] = {
                "distance_travelled_m": round(float(distance), 3),
                "mean_speed_m_s": round(float(distance) / sim_seconds, 4) if sim_seconds > 0 else 0.0,
                "frames_published": int(frames),
                "poses_received": len(observation.trajectories.get(robot, [])),
            }
    add_memory_results(per_robot, options, observation)
    goal = goal_results(options, observation)
    for robot, entry in per_robot.items():
        entry.update(goal["per_robot"].get(robot, {"goal_reached": False, "time_to_goal_s": None}))
    summary = {
        "mode": "composed" if options.composed else "processes",
        "robots": options.robots,
        "seed": options.seed,
        "world": options.world,
        "maze_size": options.maze_size,
        "sim_seconds": round(sim_seconds, 3),
        "wall_seconds": round(wall_seconds, 3),
        "real_time_factor": round(sim_seconds / wall_seconds, 3) if wall_seconds > 0 else None,
        "query": demo_query(options),
        "bev_source": options.bev,
        "team_link": {"bits_per_step": options.bits, "strategy": options.comm},
        "pose_source": options.pose,
        "goal": {k: v for k, v in goal.items() if k != "per_robot"},
        "per_robot": per_robot,
        "dropped_inputs": {node: counts for node, counts in sorted(observation.drops.items()) if counts},
        "control_errors": control_errors(observation),
    }
    summary["verdict"] = verdict(summary)
    return summary


def control_errors(observation: RunObservation) -> int:
    """Failures of the nodes' own code (faults, not refused bad input) that the nodes counted during the run."""
    return sum(count for counts in observation.drops.values() for reason, count in counts.items()
               if reason.startswith(FAULT_PREFIX))


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def verdict(summary: dict) -> str:
    """One line that says how the run went: speed, mapping, localization against dead reckoning, link, goal."""
    robots = list(summary.get("per_robot", {}).values())
    parts = [f"{summary['robots']} robot(s), {summary['sim_seconds']:.0f} s simulated at "
             f"{summary['real_time_factor'] or 0:.2f}x real time"]
    coverage = _mean([r.get("map", {}).get("coverage") for r in robots])
    iou = _mean([r.get("map", {}).get("map_iou") for r in robots])
    if coverage is not None:
        parts.append(f"mapped {100 * coverage:.0f}% of the maze" + (f" (map IoU {iou:.2f})" if iou is not None else ""))
    ate = _mean([r.get("localization", {}).get("ate_m") for r in robots])
    dead = _mean([r.get("localization", {}).get("dead_reckoning_ate_m") for r in robots])
    if ate is not None and dead is not None:
        parts.append(f"localized to {ate:.2f} m ATE vs {dead:.2f} m dead reckoning "
                     f"({'better' if ate < dead else 'WORSE'})")
    bits = _mean([r.get("team_link", {}).get("payload_bits_per_step") for r in robots])
    if bits is not None:
        parts.append(f"{bits:.1f} of {summary['team_link']['bits_per_step']} bits/step used")
    if summary.get("control_errors"):
        parts.append(f"{summary['control_errors']} CONTROL ERROR(S): see dropped_inputs and the node logs")
    goal = summary.get("goal", {})
    if goal.get("targets_xy"):
        reached = goal.get("robots_reached", 0)
        when = f" in {goal['time_to_success_s']:.0f} s" if goal.get("team_success") else ""
        parts.append(f"'{goal['query']}' reached by {reached}/{summary['robots']}{when}")
    return "; ".join(parts)
