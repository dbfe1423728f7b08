"""The demo end to end, in both modes: it runs the team for a few sim seconds and writes its run folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros
CLI = Path(sys.prefix) / "bin" / "spatial-memory"


@pytest.mark.slow
@pytest.mark.parametrize("mode, bev", [("processes", "predicted"), ("composed", "oracle")])
def test_demo_writes_its_run_folder(tmp_path, mode, bev):
    command = [str(CLI), "demo", "--duration", "4", "--robots", "2", "--maze-size", "9", "--out", str(tmp_path),
               "--no-progress", "--wall-timeout", "240", "--bev", bev] + (["--composed"] if mode == "composed" else [])
    result = subprocess.run(command, capture_output=True, text=True, timeout=400, env=os.environ.copy())
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = list(tmp_path.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["mode"] == mode and summary["bev_source"] == bev
    assert summary["verdict"].startswith("2 robot(s),") and "dead reckoning" in summary["verdict"]
    assert summary["sim_seconds"] >= 4.0 - 1e-6
    assert summary["control_errors"] == 0, summary["dropped_inputs"]  # a broken planner must fail the demo
    assert set(summary["per_robot"]) == {"robot1", "robot2"}
    for robot in summary["per_robot"].values():
        assert robot["frames_published"] >= 41
        assert robot["distance_travelled_m"] > 0.2, "the explorer did not move the robot"
        assert robot["mean_speed_m_s"] > 0.0
        assert robot["map"]["coverage"] > 0.05, "the memory saw (almost) nothing: did the sim start too early?"
        assert robot["localization"]["poses"] >= 35 and robot["localization"]["ate_m"] is not None
        assert isinstance(robot["goal_reached"], bool)
        assert robot["goal_reached"] == (robot["time_to_goal_s"] is not None)
        assert robot["time_to_goal_s"] is None or 0.0 <= robot["time_to_goal_s"] <= summary["sim_seconds"]
    goal = summary["goal"]
    assert goal["query"] == summary["query"] and len(goal["targets_xy"]) == 1 and goal["reach_radius_m"] == 0.6
    assert goal["team_success"] == all(r["goal_reached"] for r in summary["per_robot"].values())
    assert (run_dir / "trajectories.png").stat().st_size > 1000
    assert str(run_dir) in result.stdout


def test_demo_refuses_bad_arguments_with_a_message():
    result = subprocess.run([str(CLI), "demo", "--robots", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "must be in 1..16" in result.stderr


def test_goal_is_judged_from_the_true_poses_and_the_true_target():
    from spatial_memory_ros.sim.maze import generate_maze
    from spatial_memory_ros.demo.observer import RunObservation
    from spatial_memory_ros.demo.options import DemoOptions
    from spatial_memory_ros.demo.scoring import goal_results

    target = generate_maze(size=9, seed=3).targets[0]
    options = DemoOptions(robots=2, seed=3, maze_size=9, query=f"the {target.color} target")
    observation = RunObservation()
    far = (target.x + 3.0, target.y)
    observation.trajectories["robot1"] = [(0.1, *far), (2.0, target.x + 0.7, target.y), (2.1, target.x + 0.5, target.y)]
    observation.trajectories["robot2"] = [(0.1, *far), (5.0, target.x + 0.8, target.y + 0.1)]
    result = goal_results(options, observation)
    assert result["per_robot"]["robot1"] == {"goal_reached": True, "time_to_goal_s": 2.1}
    assert result["per_robot"]["robot2"] == {"goal_reached": False, "time_to_goal_s": None}
    assert not result["team_success"] and result["robots_reached"] == 1 and result["time_to_success_s"] is None
    observation.trajectories["robot2"].append((7.5, target.x, target.y - 0.3))
    result = goal_results(options, observation)
    assert result["team_success"] and result["time_to_success_s"] == 7.5
    shouted = goal_results(DemoOptions(robots=2, seed=3, maze_size=9, query=f"The {target.color.upper()} Target"),
                           observation)
    assert shouted["team_success"] and shouted["targets_xy"] == result["targets_xy"]  # one case-blind match
    other = next(t for t in generate_maze(size=9, seed=3).targets if t.color != target.color)
    assert not goal_results(DemoOptions(robots=2, seed=3, maze_size=9, query=f"the {other.color} target"),
                            observation)["team_success"]


def test_summary_counts_control_errors_apart_from_refused_input():
    from spatial_memory_ros.demo.observer import RunObservation
    from spatial_memory_ros.demo.report import control_errors

    observation = RunObservation()
    observation.drops = {"/robot1/explorer": {"invalid BEV": 3, "fault: planning error": 2},
                         "/robot2/localizer": {"invalid odometry": 1}}
    assert control_errors(observation) == 2


@pytest.mark.slow
def test_ctrl_c_ends_the_demo_with_a_summary_marked_incomplete_and_no_traceback(tmp_path):
    """Issue 15, item 5: Ctrl-C (SIGINT to the whole process group, as a terminal sends it) during the run: exit 130,
    no traceback, summary.json with "complete": false, the pictures, and the bag closed (its metadata written)."""
    import re
    import signal
    import threading
    import time

    command = [str(CLI), "demo", "--duration", "60", "--robots", "2", "--maze-size", "9", "--out", str(tmp_path),
               "--wall-timeout", "300", "--bev", "oracle", "--record"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    err = bytearray()
    reader = threading.Thread(target=lambda: [err.extend(chunk) for chunk in iter(lambda: process.stderr.read1(4096),
                                                                                     b"")], daemon=True)
    reader.start()
    started = re.compile(rb"demo:.*\| ([1-9][0-9]*\.[0-9])/60 sim s")
    deadline = time.monotonic() + 240
    try:
        while not started.search(bytes(err)) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the progress bar: the condition is that the sim is running
        assert started.search(bytes(err)), bytes(err)[-3000:].decode(errors="replace")
        os.killpg(process.pid, signal.SIGINT)
        out = process.stdout.read()
        process.wait(timeout=180)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    reader.join(timeout=10)
    text = (out + bytes(err)).decode(errors="replace")
    assert process.returncode == 130, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    run_dir = next(tmp_path.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] is False and summary["interrupted"].startswith("during the run")
    assert (run_dir / "trajectories.png").exists() and (run_dir / "bag" / "metadata.yaml").exists()
