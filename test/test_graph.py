"""graph.py: the executables it names are installed, every parameter in config/ is declared by its node,
the ros-args match what ros2 launch passes, and the graph comes up with sensors at their configured rates."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import spin_until
from spatial_memory_ros.graph import (NodeSpec, config_dir, executable_path, real_robot_graph, ros_args,
                                      sim_team_graph)

REPO = Path(__file__).resolve().parent.parent


def test_every_executable_in_the_graph_is_installed():
    executables = {spec.executable for spec in sim_team_graph(8) + real_robot_graph()}
    for executable in executables:
        path = executable_path(executable)
        assert path.exists() and os.access(path, os.X_OK), f"{path} missing: run make setup"
        console = Path(os.sys.prefix) / "bin" / f"spatial-memory-{executable.replace('_', '-')}"
        assert console.exists(), console


@pytest.mark.slow
def test_node_help_lists_its_parameters():
    output = subprocess.run([str(executable_path("sim_world")), "--help"], capture_output=True, text=True,
                            timeout=60, check=True).stdout
    assert "max_sim_time" in output and "odom_linear_noise" in output


def test_ros_args_are_what_ros2_launch_passes(tmp_path):
    spec = NodeSpec("explorer", "explorer", namespace="/robot2", params_file="explorer.yaml",
                    parameters={"seed": 7, "use_sim_time": True}, remappings=(("bev", "ground_truth/bev"),))
    args = ros_args(spec, config=REPO / "config", overrides_dir=tmp_path)
    assert args[:5] == ["--ros-args", "-r", "__node:=explorer", "-r", "__ns:=/robot2"]
    assert args[5:7] == ["--params-file", str(REPO / "config" / "explorer.yaml")]
    overrides = yaml.safe_load(Path(args[8]).read_text())
    assert overrides == {"/**": {"ros__parameters": {"seed": 7, "use_sim_time": True}}}
    assert args[9:] == ["-r", "bev:=ground_truth/bev"]


def test_config_dir_is_the_installed_one_with_every_node_file():
    assert {spec.params_file for spec in sim_team_graph(2)} <= {p.name for p in config_dir().iterdir()}


@pytest.mark.slow
@pytest.mark.ros
@pytest.mark.parametrize("config_file", sorted((REPO / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_parameter_in_config_is_declared_by_its_node(ros, config_file):
    from spatial_memory_ros.nodes import node_class

    given = {"team_key": "hex:" + "ab" * 32} if config_file.stem == "team_comm" else {}  # no default key: refused
    node = node_class(config_file.stem)(context=ros.context_, namespace="/robot1",
                                        cli_args=["--ros-args", "--params-file", str(config_file)]
                                        + [arg for k, v in given.items() for arg in ("-p", f"{k}:={v}")])
    ros.add_node(node)
    listed = yaml.safe_load(config_file.read_text())["/**"]["ros__parameters"]
    undeclared = [name for name in listed if not node.has_parameter(name)]
    assert not undeclared, f"{config_file.name} sets parameters {config_file.stem} does not declare: {undeclared}"
    for name, value in listed.items():
        assert node.get_parameter(name).value == given.get(name, value)
        assert node.describe_parameter(name).description, f"{name} has no description"


@pytest.mark.slow
@pytest.mark.ros
def test_graph_comes_up_with_sensors_at_their_configured_rates(ros, tmp_path):
    """One process per node, as ros2 launch starts them; the sim paced at real time (10 Hz)."""
    from geometry_msgs.msg import PoseWithCovarianceStamped, Twist
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image
    import rclpy

    from spatial_memory_ros.msg import BevMap
    from spatial_memory_ros.ros_common import RELIABLE_QOS, SENSOR_QOS
    from spatial_memory_ros.demo.processes import ProcessGraph

    graph = sim_team_graph(robots=2, maze_size=9, real_time_factor=1.0)
    probe = rclpy.create_node("rate_probe", context=ros.context_)
    ros.add_node(probe)
    topics = {"camera/image_raw": (Image, SENSOR_QOS), "odom": (Odometry, RELIABLE_QOS),
              "ground_truth/pose": (PoseWithCovarianceStamped, RELIABLE_QOS), "ground_truth/bev": (BevMap, RELIABLE_QOS),
              "cmd_vel": (Twist, RELIABLE_QOS)}
    arrivals: dict[str, list[float]] = {}
    for robot in ("robot1", "robot2"):
        for topic, (msg_type, qos) in topics.items():
            times = arrivals.setdefault(f"/{robot}/{topic}", [])
            probe.create_subscription(msg_type, f"/{robot}/{topic}", lambda _m, t=times: t.append(time.monotonic()),
                                      qos)
    processes = ProcessGraph(graph, tmp_path / "logs")
    processes.start()
    try:
        assert spin_until(ros, lambda: all(len(t) >= 3 for t in arrivals.values()), timeout=180.0), \
            {k: len(v) for k, v in arrivals.items()}
        for times in arrivals.values():
            times.clear()
        spin_until(ros, lambda: False, timeout=6.0)  # the window: a 1 s stall of one node costs 15% of it, not 30%
        assert not processes.failed()
    finally:
        processes.stop()
    for topic, times in arrivals.items():
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        assert 7.0 <= rate <= 13.0, f"{topic} arrived at {rate:.1f} Hz, configured 10 Hz"


def test_the_sim_waits_as_long_as_it_is_told_for_its_readers():
    """The demo tells the sim how long to wait for every node to listen (half its wall timeout): on a busy machine
    the memory nodes took longer than sim_world.yaml's 60 s to start, and a run without them has no map."""
    from spatial_memory_ros.demo.options import DemoOptions
    from spatial_memory_ros.demo.run import startup_wait

    def sim(**kwargs) -> NodeSpec:
        (spec,) = [spec for spec in sim_team_graph(robots=2, maze_size=9, **kwargs) if spec.name == "sim_world"]
        return spec

    assert sim(wait_for_readers=120.0).parameters["wait_for_controllers"] == 120.0
    assert "wait_for_controllers" not in sim().parameters  # sim_world.yaml's
    assert startup_wait(DemoOptions(duration=4, wall_timeout=240)) == 120.0
    assert startup_wait(DemoOptions(duration=60)) == 600.0  # 20 wall s per sim s, capped at sim_world's limit
