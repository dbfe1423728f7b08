"""The driving ceiling (evaluation/memory_maze_ceiling.py): the score robot's navigator on the true pose, map and
target, the diagnostic that splits the robot's distance to the published oracle into driving and the rest."""
from __future__ import annotations

import pytest

from spatial_memory_ros.evaluation.memory_maze_env import steps_per_target


def test_steps_per_target_split_the_search_for_the_first_target_from_the_rest():
    assert steps_per_target([30, 50, 90], 1000) == {"first_reward_step": 30, "steps_per_target_after_first": 30.0}
    assert steps_per_target([400], 1000) == {"first_reward_step": 400, "steps_per_target_after_first": None}
    assert steps_per_target([], 1000) == {"first_reward_step": 1000, "steps_per_target_after_first": None}


@pytest.mark.slow
def test_the_navigator_given_the_truth_reaches_targets_at_once():
    pytest.importorskip("memory_maze", reason="memory-maze is not installed")
    from spatial_memory_ros.evaluation.memory_maze_ceiling import drive_with_truth

    row = drive_with_truth(9, 3_000_000, steps=80)
    # the first red target of this maze is 6 cells of path away: a navigator that knows it drives there at once,
    # where the score robot first explores (its first reward on this seed came after 100 steps)
    assert row["steps"] == 80 and row["total_reward"] >= 2 and row["first_reward_step"] < 40
    assert row["goals_started"] == row["total_reward"] + 1 and sum(row["actions"]) == 80


def test_the_score_robot_drives_with_the_turn_threshold_its_config_names():
    from spatial_memory_ros.behaviour.planner import PlannerConfig
    from spatial_memory_ros.evaluation.memory_maze_agent import AgentConfig, planner_config

    assert planner_config(AgentConfig()).turn_in_place_deg == PlannerConfig.turn_in_place_deg
    assert planner_config(AgentConfig(turn_in_place_deg=70.0)).turn_in_place_deg == 70.0
