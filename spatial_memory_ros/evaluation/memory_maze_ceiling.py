"""The driving ceiling of a Memory-Maze score episode: the shipped navigator given the truth.

The score robot loses reward to four things: exploring before it knows where a target is, seeing (a target missed
or named wrong), knowing where it is, and driving (the path it plans and how the 6 discrete actions follow it).
This episode keeps only the last: the same Navigator, PlannerConfig and action mapping as the score robot
(memory_maze_agent.py), but its pose is the walker's true pose, its map the true maze and its goal the true
position of the requested target from the first step. Its score is what the robot's driving allows with perfect
perception, localization and memory; the published "oracle" (mean maximum score) is what the task allows. The
gap between them is the driving's share of the robot's loss; the gap between the ceiling and the robot's own score
is what exploration, perception and localization cost.

A diagnostic: it reads the truth for decisions, so it is never a score of the robot.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from spatial_memory_ros.behaviour.navigator import Navigator
from spatial_memory_ros.evaluation.map_scores import rasterize_maze
from spatial_memory_ros.evaluation.memory_maze_agent import AgentConfig, planner_config
from spatial_memory_ros.evaluation.memory_maze_env import (MemoryMazeEpisode, colour_name, nearest_action,
                                                           steps_per_target)
from spatial_memory_ros.sim.memory_maze import CELL_SIZE, layout_maze
from spatial_memory_ros.types import GridGeometry


def drive_with_truth(size: int, seed: int, steps: int | None = None,
                     progress: Callable[[int], None] | None = None, config: AgentConfig | None = None) -> dict:
    """One episode driven by the score robot's navigator on the true pose, map and target (see the module)."""
    config = config or AgentConfig()
    planner = planner_config(config)
    started = time.perf_counter()
    episode = MemoryMazeEpisode(size, seed, diagnostics=True, steps=steps)
    actions: list[int] = []
    try:
        inp, truth = episode.reset()
        maze = layout_maze(truth.maze_layout, truth.targets_pos, seed)
        cells = int(round(maze.walls.shape[0] * CELL_SIZE / config.map_resolution))
        geometry = GridGeometry(config.map_resolution, cells, cells)
        occupancy = rasterize_maze(maze, geometry)
        targets = {target.color: (target.x, target.y) for target in maze.targets}
        colour, navigator, goals = None, None, 0
        while not episode.done:
            wanted = colour_name(inp.target_color)
            if wanted != colour:  # a new colour: a fresh navigator, as the score robot starts a fresh Robot
                colour, goals = wanted, goals + 1
                navigator = Navigator(geometry, planner, seed=seed * 131 + goals)
            v, omega = navigator.step(None, truth.pose, occupancy, targets[colour], twist=inp.odometry)
            actions.append(nearest_action(v, omega))
            inp, truth, _ = episode.step(actions[-1])
            if progress is not None:
                progress(episode.step_count)
    finally:
        episode.close()
    return {"size": size, "seed": seed, "steps": episode.step_count, "total_reward": episode.total_reward,
            "reward_steps": episode.reward_steps, "distance_m": episode.distance, "goals_started": goals,
            "actions": np.bincount(actions, minlength=6).tolist(), "wall_s": time.perf_counter() - started,
            **steps_per_target(episode.reward_steps, episode.step_count)}
