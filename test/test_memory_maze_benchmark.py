"""The Memory-Maze benchmark (issue 17.1): the robot decides from the image, the target colour and odometry only,
its commands become the published discrete actions, and a short run of benchmarks/memory_maze_score.py is resumable."""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from spatial_memory_ros.evaluation.memory_maze_env import (ACTION_NAMES, PRIVILEGED_KEYS, ROBOT_KEYS, RobotInput,
                                                           nearest_action, robot_input, truth_of)

REPO = Path(__file__).resolve().parents[1]


def _observation() -> dict:
    """An observation as memory_maze's task gives it with global observables."""
    return {"image": np.full((64, 64, 3), 7, np.uint8), "target_color": np.array([0.77, 0.17, 0.14]),
            "agent_pos": np.array([1.5, 6.5]), "agent_dir": np.array([0.0, 1.0]),
            "maze_layout": np.ones((9, 9), np.uint8), "targets_pos": np.array([[3.5, 8.5], [5.5, 4.5], [8.5, 6.5]]),
            "targets_vec": np.zeros((3, 2)), "target_pos": np.array([3.5, 8.5]), "target_vec": np.zeros(2)}


def test_the_robot_input_holds_image_colour_and_odometry_only():
    fields = {field.name for field in dataclasses.fields(RobotInput)}
    assert fields == {"image", "target_color", "odometry", "stamp"}
    assert not fields & set(PRIVILEGED_KEYS) and set(ROBOT_KEYS) <= fields
    observation = _observation()
    inp = robot_input(observation, (0.5, -0.1), 1.25)
    assert inp.image.shape == (64, 64, 3) and inp.odometry == (0.5, -0.1) and inp.stamp == 1.25
    observation["image"][:] = 0  # a copy: nothing the task later changes reaches the robot
    assert inp.image.max() == 7


def test_truth_is_read_for_the_report_only_when_the_task_has_it():
    truth = truth_of(_observation())
    assert truth is not None and truth.pose.x == pytest.approx(5.0) and truth.pose.y == pytest.approx(15.0)
    assert truth.pose.theta == pytest.approx(np.pi / 2)
    assert truth_of({key: _observation()[key] for key in ROBOT_KEYS}) is None


@pytest.mark.parametrize("command, action", [((0.0, 0.0), "noop"), ((1.75, 0.0), "forward"), ((0.0, 1.2), "left"),
                                             ((0.0, -1.5), "right"), ((1.0, 0.9), "forward_left"),
                                             ((1.2, -0.8), "forward_right"), ((-0.2, 0.0), "noop"),
                                             ((0.0, 0.05), "noop")])
def test_a_command_becomes_the_nearest_discrete_action(command, action):
    assert ACTION_NAMES[nearest_action(*command)] == action


def test_target_colours_are_named_as_the_world_names_them():
    maze = pytest.importorskip("memory_maze.maze", reason="memory-maze is not installed")
    from spatial_memory_ros.evaluation.memory_maze_env import colour_name
    from spatial_memory_ros.sim.memory_maze import CLASS_NAMES

    assert [colour_name(colour) for colour in maze.TARGET_COLORS] == list(CLASS_NAMES)


@pytest.fixture(scope="module")
def stack():
    """The shipped BEV predictor through Memory-Maze's camera, and the sentence embedder."""
    from spatial_memory_ros.sim.interface import WorldUnavailable
    from spatial_memory_ros.evaluation.memory_maze_env import MemoryMazeEpisode

    try:
        MemoryMazeEpisode(9, 0, steps=1).close()
    except WorldUnavailable as error:
        pytest.skip(f"Memory-Maze cannot start on this machine: {error}")
    from spatial_memory_ros.memory.semantics import Embedder
    from spatial_memory_ros.perception.predictor import BevPredictor
    from spatial_memory_ros.sim.memory_maze import CLASS_NAMES, camera_model

    return BevPredictor.load(num_threads=1).for_camera(camera_model(), CLASS_NAMES), Embedder()


@pytest.mark.slow
def test_decisions_are_the_same_without_any_privileged_observation(stack):
    """The task built without global observables (no agent_pos, maze_layout, targets_pos anywhere) gives the
    robot the same inputs, so it takes the same actions: nothing privileged reaches a decision."""
    from spatial_memory_ros.evaluation.memory_maze_agent import MemoryMazeAgent, run_episode
    from spatial_memory_ros.evaluation.memory_maze_env import MemoryMazeEpisode

    adapter, embedder = stack
    bare = MemoryMazeEpisode(9, 3, diagnostics=False, steps=5)
    try:
        inp, truth = bare.reset()
        raw = bare.env.step(0).observation
    finally:
        bare.close()
    assert truth is None and set(raw) == set(ROBOT_KEYS)
    with_truth = run_episode(9, 3, "memory", adapter, embedder, steps=40, diagnostics=True)
    without = run_episode(9, 3, "memory", adapter, embedder, steps=40, diagnostics=False)
    assert with_truth["action_sequence"] == without["action_sequence"]
    assert with_truth["total_reward"] == without["total_reward"]
    assert "position_error_mean_m" in with_truth and "position_error_mean_m" not in without
    with pytest.raises(TypeError, match="RobotInput"):
        MemoryMazeAgent(9, adapter, embedder).act(_observation())


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("memory_maze_benchmark", REPO / "benchmarks" / "memory_maze_score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_benchmark_smoke_run_writes_results_and_resumes(stack, tmp_path, capsys):
    benchmark = _benchmark_module()
    results = tmp_path / "memory_maze.json"
    arguments = ["--sizes", "9", "--episodes", "1", "--steps", "25", "--results", str(results)]
    assert benchmark.main(arguments) == 0
    data = json.loads(results.read_text())
    seed = benchmark.FIRST_SEED
    from spatial_memory_ros.perception.predictor import checkpoint_for_world

    name = checkpoint_for_world("memory_maze").name  # Memory-Maze's shipped model, as the robot runs it
    assert sorted(data["episodes"]) == [f"9/{seed}/memory/{name}", f"9/{seed}/no_memory/{name}"]
    row = data["episodes"][f"9/{seed}/memory/{name}"]
    assert row["steps"] == 25 and row["total_reward"] >= 0 and sum(row["actions"]) == 25
    assert "bev" in row and "position_error_mean_m" in row and "status_share" in row
    assert data["summary"] == []  # 25-step episodes are not scored beside the published full episodes
    first = capsys.readouterr().out
    assert "2 episodes to run" in first
    assert benchmark.main(arguments) == 0  # a rerun skips what is done
    assert "0 episodes to run" in capsys.readouterr().out
    assert json.loads(results.read_text())["episodes"][f"9/{seed}/memory/{name}"]["wall_s"] == row["wall_s"]
    assert benchmark.main(arguments + ["--supersede", "the loop changed"]) == 0  # a new loop runs them again
    out = capsys.readouterr().out
    assert "moved 2 episodes aside" in out and "2 episodes to run" in out
    data = json.loads(results.read_text())
    assert data["superseded"][0]["note"] == "the loop changed"
    assert data["superseded"][0]["episodes"][f"9/{seed}/memory/{name}"]["wall_s"] == row["wall_s"]
    assert data["episodes"][f"9/{seed}/memory/{name}"]["wall_s"] != row["wall_s"]


def test_superseded_episodes_move_aside_newest_first_and_a_note_is_needed():
    benchmark = _benchmark_module()
    data = {"episodes": {"9/1/memory/a.pt": {"steps": 1000}}, "summary": [{"size": 9}], "commands": ["run 2"],
            "superseded": {"note": "older", "episodes": {"9/1/memory/a.pt": {"steps": 999}}}}
    assert benchmark.supersede(data, "newer") == 1
    assert [generation["note"] for generation in data["superseded"]] == ["newer", "older"]
    assert data["superseded"][0]["commands"] == ["run 2"] and data["superseded"][0]["summary"] == [{"size": 9}]
    assert data["episodes"] == {} and data["summary"] == [] and data["commands"] == []
    assert benchmark.supersede(data, "nothing to move") == 0 and len(data["superseded"]) == 2
    with pytest.raises(SystemExit):
        benchmark.main(["--supersede", "  "])


def test_supersede_moves_aside_only_what_the_command_covers(tmp_path, capsys):
    """Re-measuring one checkpoint's memory-on rows keeps the memory-off baseline and the other checkpoints."""
    benchmark = _benchmark_module()

    def row(size, seed, variant, checkpoint):
        return {"size": size, "seed": seed, "variant": variant, "checkpoint": checkpoint, "total_reward": seed,
                "steps": benchmark.EPISODE_STEPS[size], "status_share": {}, "wall_s": 1.0}

    rows = [row(9, 1, "memory", "a.pt"), row(9, 1, "no_memory", "a.pt"), row(9, 1, "memory", "b.pt"),
            row(11, 1, "memory", "a.pt"), row(9, 2, "memory", "a.pt")]
    results = tmp_path / "memory_maze.json"
    results.write_text(json.dumps({"episodes": {benchmark.episode_key(r["size"], r["seed"], r["variant"],
                                                                      r["checkpoint"]): r for r in rows},
                                   "commands": ["old run"]}))
    arguments = ["--results", str(results), "--sizes", "9", "--variants", "memory", "--checkpoint",
                 str(tmp_path / "a.pt"), "--summary-only", "--supersede", "new loop"]
    assert benchmark.main(arguments) == 0
    assert "moved 2 episodes aside" in capsys.readouterr().out
    data = json.loads(results.read_text())
    assert sorted(data["superseded"][0]["episodes"]) == ["9/1/memory/a.pt", "9/2/memory/a.pt"]
    assert sorted(data["episodes"]) == ["11/1/memory/a.pt", "9/1/memory/b.pt", "9/1/no_memory/a.pt"]
    assert data["commands"] == ["old run"]  # the rows that stay keep the commands that measured them


def test_two_runs_sharing_the_results_keep_each_others_episodes_and_commands(tmp_path, monkeypatch):
    """One run per core may share the file: each write keeps what the other wrote meanwhile, commands included."""
    benchmark = _benchmark_module()
    results, checkpoint = tmp_path / "memory_maze.json", tmp_path / "m.pt"
    checkpoint.write_bytes(b"weights")
    args = argparse.Namespace(results=results, summary_only=False)
    runs = {}
    for size in (9, 15):
        row = {"size": size, "seed": 1, "variant": "memory", "checkpoint": "m.pt", "steps": 10,
               "total_reward": 1.0, "status_share": {}, "wall_s": 1.0}
        runs[size] = {"episodes": {benchmark.episode_key(size, 1, "memory", "m.pt"): row}}
    for size in (9, 15):  # both loaded the file before either wrote: the second knows nothing of the first
        monkeypatch.setattr(sys, "argv", ["memory_maze_score.py", "--sizes", str(size)])
        benchmark._write(args, runs[size], checkpoint)
    data = json.loads(results.read_text())
    assert sorted(data["episodes"]) == ["15/1/memory/m.pt", "9/1/memory/m.pt"]
    assert data["commands"] == ["memory_maze_score.py --sizes 9", "memory_maze_score.py --sizes 15"]


def test_scores_are_summarised_with_a_t_interval():
    benchmark = _benchmark_module()
    mean, low, high = benchmark.mean_interval([20.0, 22.0, 24.0, 26.0])
    assert mean == pytest.approx(23.0) and low < 20.0 < 26.0 < high
    assert benchmark.mean_interval([5.0]) == (5.0, 5.0, 5.0)
    episodes = {benchmark.episode_key(9, seed, "memory", "bev.pt"): {
        "size": 9, "seed": seed, "variant": "memory", "checkpoint": "bev.pt", "steps": 1000,
        "total_reward": float(seed), "status_share": {"exploring": 0.5}, "wall_s": 60.0} for seed in range(3)}
    episodes["9/3/memory/bev.pt"] = dict(episodes["9/0/memory/bev.pt"], seed=3, steps=10, total_reward=99.0)
    rows = benchmark.summarise(episodes)
    assert len(rows) == 1 and rows[0]["episodes"] == 3 and rows[0]["mean_reward"] == pytest.approx(1.0)
    assert rows[0]["published_human"] == 26.4 and rows[0]["published_oracle"] == 34.8


def _episode(benchmark, size: int, seed: int, variant: str, reward: float, steps: int | None = None) -> tuple:
    row = {"size": size, "seed": seed, "variant": variant, "checkpoint": "bev.pt", "total_reward": reward,
           "steps": steps or benchmark.EPISODE_STEPS[size], "status_share": {}, "wall_s": 1.0}
    return benchmark.episode_key(size, seed, variant, "bev.pt"), row


def test_memory_on_and_off_are_compared_on_the_seeds_both_finished():
    """The gain is paired by seed: a seed only one variant finished, or a short episode, does not enter it."""
    benchmark = _benchmark_module()
    episodes = dict([_episode(benchmark, 9, 0, "memory", 20.0), _episode(benchmark, 9, 0, "no_memory", 4.0),
                     _episode(benchmark, 9, 1, "memory", 30.0), _episode(benchmark, 9, 1, "no_memory", 10.0),
                     _episode(benchmark, 9, 2, "memory", 90.0),
                     _episode(benchmark, 9, 3, "memory", 5.0), _episode(benchmark, 9, 3, "no_memory", 50.0, steps=10)])
    (row,) = benchmark.paired_gains(episodes, episodes, "memory", "no_memory")
    assert row["pairs"] == 2 and row["seeds"] == [0, 1] and row["mean_difference"] == pytest.approx(18.0)
    assert row["ci95"][0] < 16.0 and row["ci95"][1] > 20.0
    assert benchmark.paired_gains(episodes, {}, "memory", "memory") == []


def test_summary_only_rewrites_table_and_comparisons_without_running_an_episode(tmp_path, capsys):
    benchmark = _benchmark_module()
    results = tmp_path / "memory_maze.json"
    current = dict([_episode(benchmark, 11, seed, "memory", 30.0 + seed) for seed in range(3)]
                   + [_episode(benchmark, 11, seed, "no_memory", 5.0) for seed in range(3)])
    previous = dict([_episode(benchmark, 11, seed, "memory", 20.0 + seed) for seed in range(3)])
    results.write_text(json.dumps({"episodes": current, "commands": ["run"],
                                   "superseded": [{"note": "older loop", "episodes": previous}]}))
    assert benchmark.main(["--summary-only", "--results", str(results)]) == 0
    data = json.loads(results.read_text())
    assert data["commands"] == ["run"] and len(data["episodes"]) == 6
    assert [r["variant"] for r in data["summary"]] == ["memory", "no_memory"]
    (gain,) = data["comparisons"]["memory_minus_memory_off"]
    (change,) = data["comparisons"]["memory_minus_previous_loop"]
    assert gain["mean_difference"] == pytest.approx(26.0) and change["mean_difference"] == pytest.approx(10.0)
    assert "memory minus memory off: 11x11 bev.pt: +26.0" in capsys.readouterr().out
    assert results.with_suffix(".png").is_file()
    session_10_file = {"episodes": current, "superseded": {"note": "older loop", "episodes": previous}}
    (change,) = benchmark.comparisons(session_10_file)["memory_minus_previous_loop"]  # one generation, as a dict
    assert change["mean_difference"] == pytest.approx(10.0)


def test_the_report_gives_the_position_error_per_quarter_of_the_episode():
    """Drift that grows shows in the quarters, which a mean over the episode hides."""
    from spatial_memory_ros.evaluation.memory_maze_agent import Diagnostics

    notes = Diagnostics(position_errors=[0.5] * 10 + [1.0] * 10 + [2.0] * 10 + [4.0] * 10)
    summary = notes.summary()
    assert summary["position_error_by_quarter_m"] == [0.5, 1.0, 2.0, 4.0]
    assert summary["position_error_final_m"] == 4.0 and "position_error_by_quarter_m" not in Diagnostics().summary()
    benchmark = _benchmark_module()
    episodes = dict([_episode(benchmark, 9, seed, "memory", 10.0) for seed in range(2)])
    for row, quarters in zip(episodes.values(), ([1.0, 1.0, 2.0, 2.0], [1.0, 3.0, 4.0, 6.0])):
        row["position_error_by_quarter_m"] = quarters
    (row,) = benchmark.summarise(episodes)
    assert row["position_error_by_quarter_m"] == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.slow
def test_a_trace_prints_rows_and_draws_the_map_on_the_true_maze(stack, tmp_path, capsys):
    script = REPO / "benchmarks" / "diagnostics" / "memory_maze_trace.py"
    spec = importlib.util.spec_from_file_location("memory_maze_trace", script)
    trace = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trace)
    assert trace.main(["--size", "9", "--seed", "3", "--steps", "12", "--every", "5", "--snapshots", "10",
                       "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "trace_9_3.json").read_text())
    assert [row["step"] for row in data["rows"]] == [0, 5, 10]
    assert data["rows"][0]["colour"] in ("red", "green", "blue") and data["rows"][0]["distance_to_target_m"] > 0
    assert data["rows"][0]["pose_error_m"] < 0.01   # the robot starts where it believes it is
    assert all(isinstance(row["in_sight"], bool) for row in data["rows"])
    for row in data["rows"]:  # a frontier's unknown area and whether it is inside the maze, only at a frontier
        at_frontier = row["navigator"] == "frontier"
        assert (row["frontier_unknown_m2"] is not None) == at_frontier
        assert (row["frontier_in_maze"] is not None) == at_frontier
        assert not at_frontier or (row["frontier_outside_m"] > 0) == (not row["frontier_in_maze"])
    assert data["episode"]["steps"] == 12
    picture = tmp_path / "trace_9_3_step10.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and data["pictures"] == [str(picture)]
    assert "step    10" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        trace.main(["--size", "9", "--every", "0"])


def test_a_candidate_checkpoint_is_compared_with_the_shipped_one_on_shared_seeds():
    """A candidate model's gain is paired by seed against the shipped model's episodes of the same file."""
    benchmark = _benchmark_module()
    shipped = benchmark.SHIPPED_CHECKPOINT

    def episode(seed: int, checkpoint: str, reward: float) -> tuple[str, dict]:
        _, row = _episode(benchmark, 15, seed, "memory", reward)
        return benchmark.episode_key(15, seed, "memory", checkpoint), {**row, "checkpoint": checkpoint}

    episodes = dict([episode(0, shipped, 17.0), episode(1, shipped, 70.0), episode(2, shipped, 40.0),
                     episode(0, "tuned.pt", 50.0), episode(1, "tuned.pt", 74.0), episode(3, "tuned.pt", 90.0)])
    (row,) = benchmark.comparisons({"episodes": episodes})["checkpoint_minus_shipped"]
    assert row["checkpoint"] == "tuned.pt" and row["baseline_checkpoint"] == shipped
    assert row["seeds"] == [0, 1] and row["mean_difference"] == pytest.approx(18.5)
    assert benchmark.checkpoint_gains({k: v for k, v in episodes.items() if v["checkpoint"] == shipped}, shipped) == []


@pytest.mark.parametrize("degrees", ["0", "-10", "200"])
def test_a_turn_threshold_outside_a_half_turn_is_refused(degrees, capsys):
    with pytest.raises(SystemExit):
        _benchmark_module().main(["--turn-in-place-deg", degrees, "--summary-only"])
    assert "--turn-in-place-deg must be in (0, 180]" in capsys.readouterr().err


@pytest.mark.parametrize("cos", ["-0.1", "1.5"])
def test_a_wall_incidence_that_is_not_a_cosine_is_refused(cos, capsys):
    with pytest.raises(SystemExit):
        _benchmark_module().main(["--min-wall-incidence", cos, "--summary-only"])
    assert "--min-wall-incidence is a |cos| in [0, 1]" in capsys.readouterr().err


@pytest.mark.parametrize("weight", ["0", "1.5", "nan"])
def test_a_far_wall_weight_outside_zero_one_is_refused(weight, capsys):
    with pytest.raises(SystemExit):
        _benchmark_module().main(["--far-wall-weight", weight, "--summary-only"])
    assert "--far-wall-weight is a weight in (0, 1]" in capsys.readouterr().err


@pytest.mark.parametrize("area", ["-1", "nan", "inf"])
def test_a_frontier_min_unknown_that_is_not_an_area_is_refused(area, capsys):
    with pytest.raises(SystemExit):
        _benchmark_module().main(["--frontier-min-unknown-m2", area, "--summary-only"])
    assert "--frontier-min-unknown-m2 is an area in m^2 >= 0" in capsys.readouterr().err


def test_the_score_robots_planner_takes_the_frontier_settings_asked():
    from spatial_memory_ros.evaluation.memory_maze_agent import AgentConfig, planner_config
    assert planner_config(AgentConfig()).frontier_min_unknown_m2 == 0.0  # shipped: off
    assert planner_config(AgentConfig(frontier_min_unknown_m2=1.0)).frontier_min_unknown_m2 == 1.0
    assert not planner_config(AgentConfig()).replan_when_frontier_seen
    assert planner_config(AgentConfig(replan_when_frontier_seen=True)).replan_when_frontier_seen
    assert planner_config(AgentConfig(), 15).arena_size_m == 0.0
    assert planner_config(AgentConfig(arena_bound=True), 15).arena_size_m == 30.0  # 15 cells of 2 m


@pytest.mark.parametrize("trial", [["--turn-in-place-deg", "70"], ["--doubt-when-out-of-frontiers", "on"],
                                   ["--doubt-walls-after", "300"], ["--min-wall-incidence", "0.2"],
                                   ["--far-wall-weight", "0.4"], ["--frontier-min-unknown-m2", "1"],
                                   ["--replan-when-frontier-seen", "on"], ["--arena-bound", "on"]])
def test_a_trial_setting_is_refused_into_the_tables_file(trial, capsys):
    with pytest.raises(SystemExit):
        _benchmark_module().main([*trial, "--summary-only"])
    error = capsys.readouterr().err
    assert trial[0] in error and "--results file of their own" in error
