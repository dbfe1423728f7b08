"""The team task on Memory-Maze (issue 17, item 2): layouts from Memory-Maze's own generator, the true-BEV world on
them, tiny episodes of the benchmark (resumable), and the full stack's episode."""
import argparse
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from spatial_memory_ros.evaluation.memory_maze_team import (REACH_RADIUS, LayoutWorld, layout_config,
                                                            memory_maze_layout, run_layout_episode, shortest_path_m)
from spatial_memory_ros.evaluation.team_task import LabelEmbedder, TeamTaskConfig
from spatial_memory_ros.sim.interface import WorldUnavailable

ROOT = Path(__file__).resolve().parent.parent
CLASS_NAMES = ("red", "green", "blue", "purple", "yellow", "salmon")


@pytest.fixture(scope="module")
def layout():
    try:
        return memory_maze_layout(15, 1000)
    except WorldUnavailable as error:
        pytest.skip(str(error))


def _embedder() -> LabelEmbedder:
    return LabelEmbedder.synthetic(class_names=CLASS_NAMES)


def test_layout_is_memory_mazes_15x15_with_its_six_targets(layout):
    assert layout.walls.shape == (17, 17) and layout.cell_size == 2.0
    assert layout.walls[0].all() and layout.walls[-1].all() and layout.walls[:, 0].all() and layout.walls[:, -1].all()
    assert [t.color for t in layout.targets] == list(CLASS_NAMES)
    for target in layout.targets:
        assert not layout.is_wall(target.x, target.y)
        assert math.isfinite(shortest_path_m(layout, (layout.targets[0].x, layout.targets[0].y), (target.x, target.y)))


def test_layout_world_sees_memory_maze_classes_and_robots_pass_each_other(layout):
    world = LayoutWorld(layout, 3, 1000, layout_config(0.25))
    assert world.class_names == CLASS_NAMES and world.config.dt == 0.25 and world.config.fov_deg == 80.0
    starts = [world.true_pose(k) for k in range(3)]
    assert len({layout.cell_of(p.x, p.y) for p in starts}) == 3
    bev = world.oracle_bev(0)
    assert bev.class_names == CLASS_NAMES
    assert not world._collides(1, starts[0].x, starts[0].y)  # another robot's place is no obstacle


def test_tiny_episodes_run_for_every_policy(layout):
    for strategy in ("ours", "broadcast", "quota", "none"):
        config = TeamTaskConfig(maze_size=15, max_steps=12, strategy=strategy, bits_per_step=4, seed=1000,
                                reach_radius=REACH_RADIUS)
        result = run_layout_episode(config, _embedder(), maze=layout)
        assert result["steps"] == 12 and result["step_s"] == 0.25 and len(result["start_path_m"]) == 3
        assert result["goal"] in {f"the {name} target" for name in CLASS_NAMES}
        assert result["bits_used_per_step"] <= 4.0 + 1e-9
        if strategy == "none":
            assert result["bits_used_per_step"] == 0.0 and result["packets_sent"] == 0


@pytest.mark.slow
def test_layout_and_starts_are_memory_maze_worlds():
    """The true-BEV world and the rendered MemoryMazeWorld play the same maze from the same starts."""
    from spatial_memory_ros.sim.memory_maze import MemoryMazeWorld

    try:
        rendered = MemoryMazeWorld(size=15, seed=1001, num_robots=3, config=layout_config(0.25))
    except WorldUnavailable as error:
        pytest.skip(str(error))
    try:
        maze = memory_maze_layout(15, 1001)
        assert (maze.walls == rendered.maze.walls).all() and maze.targets == rendered.maze.targets
        kinematic = LayoutWorld(maze, 3, 1001, layout_config(0.25))
        for k in range(3):
            a, b = kinematic.true_pose(k), rendered.true_pose(k)
            assert math.hypot(a.x - b.x, a.y - b.y) < 0.05 and abs(math.remainder(a.theta - b.theta, 2 * math.pi)) < 0.05
    finally:
        rendered.close()


@pytest.mark.slow
def test_benchmark_runs_and_a_rerun_skips_what_is_done(tmp_path):
    spec = importlib.util.spec_from_file_location("memory_maze_team_benchmark",
                                                  ROOT / "benchmarks" / "memory_maze_team.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)  # by path: benchmarks/ on sys.path would shadow the memory_maze package

    args = argparse.Namespace(seeds=1, first_seed=1000, bits=[4], policies=["ours", "none"], full_stack=False,
                              max_steps=8, step_s=0.25, jobs=1, checkpoint=None)
    path = tmp_path / "mm_team.json"
    bench.run(args, path)
    report = json.loads(path.read_text())
    assert len(report["episodes"]) == 2 and report["runs"][-1]["episodes_run"] == 2
    assert (tmp_path / "mm_team.png").exists()
    bench.run(args, path)
    report = json.loads(path.read_text())
    assert len(report["episodes"]) == 2 and report["runs"][-1]["episodes_run"] == 0
    args.supersede = "the loop changed"  # a new loop: the old episodes move aside and run again
    bench.run(args, path)
    report = json.loads(path.read_text())
    assert len(report["episodes"]) == 2 and report["runs"][-1]["episodes_run"] == 2
    assert report["superseded"][0]["note"] == "the loop changed" and len(report["superseded"][0]["episodes"]) == 2
    assert len(report["superseded"][0]["runs"]) == 2 and report["superseded"][0]["summaries"]
    args.supersede, args.wall_share = None, 0.6  # another link setting: its own episodes and summary
    bench.run(args, path)
    report = json.loads(path.read_text())
    assert len(report["episodes"]) == 4 and report["runs"][-1]["episodes_run"] == 2
    assert sorted(e.get("wall_share", 0.5) for e in report["episodes"]) == [0.5, 0.5, 0.6, 0.6]
    assert any(key.endswith("_wall_share0.6") for key in report["summaries"])
    with pytest.raises(SystemExit):
        bench.main(["--supersede", "  "])


@pytest.mark.slow
def test_full_stack_episode_acts_on_predicted_bevs_and_estimated_poses():
    from spatial_memory_ros.evaluation.memory_maze_full_stack import run_full_stack_episode

    config = TeamTaskConfig(maze_size=15, max_steps=6, strategy="ours", bits_per_step=4, seed=1000,
                            reach_radius=REACH_RADIUS)
    try:
        result = run_full_stack_episode(config, _embedder())
    except WorldUnavailable as error:
        pytest.skip(str(error))
    assert result["steps"] == 6 and np.isfinite(result["pose_error_m"]) and result["pose_error_m"] < 1.0
