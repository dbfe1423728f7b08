"""Scores of a demo run from what the observer saw: the goal judged from ground truth, maps against the true
maze, localization against dead reckoning, the team link, and the nodes' errors."""
from __future__ import annotations

import functools
import math

from spatial_memory_ros.behaviour.goals import label_matches, targets_named
from spatial_memory_ros.demo.observer import RunObservation
from spatial_memory_ros.demo.options import DemoOptions, demo_query
from spatial_memory_ros.graph import robot_ids


def goal_results(options: DemoOptions, observation: RunObservation) -> dict:
    """Whether and when (sim seconds) each robot came within ``reach_radius`` of the true target the query names,
    judged from the ground-truth poses (not from what the explorers claim); the team succeeds when all have."""
    query = demo_query(options)
    targets = _goal_targets(options.world, options.maze_size, options.seed, query)
    per_robot = {}
    for robot in robot_ids(options.robots):
        reached = next((t for t, x, y in list(observation.trajectories.get(robot, []))
                        if any(math.hypot(x - g.x, y - g.y) <= options.reach_radius for g in targets)), None)
        per_robot[robot] = {"goal_reached": reached is not None,
                            "time_to_goal_s": round(reached, 3) if reached is not None else None}
    times = [entry["time_to_goal_s"] for entry in per_robot.values()]
    success = bool(targets) and all(t is not None for t in times)
    return {"query": query, "targets_xy": [[round(t.x, 3), round(t.y, 3)] for t in targets],
            "reach_radius_m": options.reach_radius, "team_success": success,
            "time_to_success_s": max(times) if success else None,
            "robots_reached": sum(t is not None for t in times), "per_robot": per_robot}


@functools.lru_cache(maxsize=8)
def _goal_targets(world: str, maze_size: int, seed: int, query: str) -> tuple:
    """The maze's targets that the query names."""
    from spatial_memory_ros.sim.interface import world_layout

    return tuple(targets_named(world_layout(world, maze_size, seed).targets, query))


def localization_errors(observation: RunObservation, robot: str) -> dict:
    """ATE of the localizer's estimate and of dead reckoning against the ground truth, on the same run."""
    from spatial_memory_ros.evaluation.metrics import ate_rmse, pair_by_stamp

    truth = observation.trajectories.get(robot, [])
    result = {}
    for name, track in (("ate_m", observation.estimates.get(robot, [])),
                        ("dead_reckoning_ate_m", observation.odometry.get(robot, []))):
        estimate, true = pair_by_stamp(track, truth)
        result[name] = round(ate_rmse(estimate, true), 4) if len(estimate) else None
        result[name.replace("ate_m", "poses")] = len(estimate)
    return result


def link_summary(observation: RunObservation, robot: str) -> dict:
    """Bits used per step, packets, wire bytes, drops by reason and partner localisation error of one robot."""
    stats = observation.comm_stats.get(robot)
    errors = observation.partner_errors.get(robot, [])
    summary = {"partner_error_m": round(sum(errors) / len(errors), 3) if errors else None}
    if stats is not None:
        summary.update({"budget_bits_per_step": int(stats.budget_bits_per_step),
                        "payload_bits_per_step": round(float(stats.payload_bits_per_step), 2),
                        "packets_sent": int(stats.packets_sent), "packets_received": int(stats.packets_received),
                        "wire_bytes_per_s": round(float(stats.wire_bytes_per_second), 1),
                        "drops": {r: int(c) for r, c in zip(stats.drop_reasons, stats.drop_counts) if c}})
    return summary


def oracle_bev_map(observation: RunObservation, robot: str, geometry):
    """The map the robot would have fused from the oracle BEVs, with the same poses its memory used."""
    from spatial_memory_ros.conversions import msg_to_bev
    from spatial_memory_ros.memory.mapping import LogOddsMap, bev_to_map
    from spatial_memory_ros.types import Pose2D

    fused = LogOddsMap(geometry)
    headings = observation.estimate_headings.get(robot, {})
    bevs = observation.oracle_bevs.get(robot, {})
    for stamp, x, y in observation.estimates.get(robot, []):
        if stamp in bevs and stamp in headings:
            fused.integrate(bev_to_map(msg_to_bev(bevs[stamp]), Pose2D(x, y, headings[stamp])))
    return fused.occupancy()


def add_memory_results(per_robot: dict, options: DemoOptions, observation: RunObservation) -> None:
    """Each robot's map coverage and IoU against the true maze, and its answer to the text query."""
    from spatial_memory_ros.conversions import msg_to_occupancy
    from spatial_memory_ros.evaluation.map_scores import map_scores, rasterize_maze
    from spatial_memory_ros.sim.interface import world_layout

    maze = world_layout(options.world, options.maze_size, options.seed)
    query = demo_query(options)
    targets = _goal_targets(options.world, options.maze_size, options.seed, query)
    for robot, entry in per_robot.items():
        entry["localization"] = localization_errors(observation, robot)
        entry["team_link"] = link_summary(observation, robot)
        if robot in observation.maps:
            grid, geometry = msg_to_occupancy(observation.maps[robot])
            truth = rasterize_maze(maze, geometry)
            entry["map"] = {k: round(v, 4) for k, v in map_scores(grid, truth).items()}
            if options.bev != "oracle":
                oracle = oracle_bev_map(observation, robot, geometry)
                entry["map_with_oracle_bev"] = {k: round(v, 4) for k, v in map_scores(oracle, truth).items()}
        answer = dict(observation.answers.get(robot, {"error": "not asked"}))
        if "x" in answer:
            answer["found"] = label_matches(answer["label"], query)
        if "x" in answer and targets:
            answer["distance_to_target_m"] = round(min(math.hypot(answer["x"] - t.x, answer["y"] - t.y)
                                                       for t in targets), 3)
        entry["query_answer"] = answer
