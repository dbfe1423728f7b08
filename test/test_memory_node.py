"""spatial_memory as a real rclpy node: BEVs and poses in, a fused map and entries out, text queries answered,
bad input refused without harm, and the memory saved and loaded."""
from __future__ import annotations

import math

import numpy as np
import pytest
from rclpy.parameter import Parameter

from conftest import messages_carry_publisher_gid, spin_until

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def scene():
    """A world whose robot 1 stands looking at a target: BEV and pose messages of 5 frames, and the target."""
    from spatial_memory_ros.conversions import bev_to_msg, pose_to_msg, seconds_to_time
    from spatial_memory_ros.sim.maze import generate_maze
    from spatial_memory_ros.sim.world import World
    from spatial_memory_ros.types import Pose2D

    world = World(generate_maze(9, seed=2), num_robots=1, seed=2)
    target = world.maze.targets[0]
    for row, col in world.maze.free_cells():
        x, y = world.maze.cell_center(row, col)
        distance = math.hypot(target.x - x, target.y - y)
        if 1.0 < distance < 3.0:
            try:
                world.set_pose(0, Pose2D(x, y, math.atan2(target.y - y, target.x - x)))
            except ValueError:
                continue
            if (world.oracle_bev(0).object_class > 0).any():
                break
    frames = []
    for k in range(5):
        stamp = seconds_to_time(1.0 + 0.1 * k)
        frames.append((bev_to_msg(world.oracle_bev(0), stamp, "robot1/base_link", "robot1"),
                       pose_to_msg(world.true_pose(0), stamp, "map", xy_sd=0.05)))
        world.step([(0.0, 0.05)])
    return world, frames, target


def _memory_node(ros, tmp_path=None, **overrides):
    from spatial_memory_ros.nodes.spatial_memory import SpatialMemoryNode

    params = [Parameter("map_origin_x", value=0.0), Parameter("map_origin_y", value=0.0),
              Parameter("map_width_m", value=9.0), Parameter("map_height_m", value=9.0),
              Parameter("map_period", value=0.2)] + [Parameter(k, value=v) for k, v in overrides.items()]
    if tmp_path is not None:
        params.append(Parameter("snapshot_path", value=str(tmp_path / "memory.npz")))
    node = SpatialMemoryNode(context=ros.context_, namespace="/robot1", parameter_overrides=params)
    ros.add_node(node)
    return node


def _team_link(ros):
    """A stand-in for the robot's own team link: the one node whose memory/merge messages the memory takes."""
    import rclpy

    from spatial_memory_ros.msg import MemoryEntryArray
    from spatial_memory_ros.ros_common import RELIABLE_QOS

    link = rclpy.create_node("team_comm", namespace="/robot1", context=ros.context_)
    ros.add_node(link)
    return link.create_publisher(MemoryEntryArray, "memory/merge", RELIABLE_QOS)


def _feed(ros, node, frames):
    import rclpy
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from nav_msgs.msg import OccupancyGrid

    from spatial_memory_ros.msg import BevMap, MemoryEntryArray
    from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS

    probe = rclpy.create_node("memory_probe", context=ros.context_)
    ros.add_node(probe)
    got = {"map": [], "entries": []}
    probe.create_subscription(OccupancyGrid, "/robot1/map", got["map"].append, LATCHED_QOS)
    probe.create_subscription(MemoryEntryArray, "/robot1/memory/entries", got["entries"].append, RELIABLE_QOS)
    bev_pub = probe.create_publisher(BevMap, "/robot1/bev", RELIABLE_QOS)
    pose_pub = probe.create_publisher(PoseWithCovarianceStamped, "/robot1/pose", RELIABLE_QOS)
    assert spin_until(ros, lambda: bev_pub.get_subscription_count() and pose_pub.get_subscription_count())
    for bev, pose in frames:
        bev_pub.publish(bev)  # BEV first: it waits for its pose
        pose_pub.publish(pose)
    assert spin_until(ros, lambda: node.bevs_observed == len(frames), timeout=20.0)
    return probe, got


def _ask(ros, probe, **fields):
    from spatial_memory_ros.srv import QueryMemory

    from spatial_memory_ros.ros_common import call_with_retries

    client = probe.create_client(QueryMemory, "/robot1/query")
    assert spin_until(ros, client.service_is_ready)
    response = call_with_retries(client, QueryMemory.Request(**fields),
                                 lambda done, s: spin_until(ros, done, timeout=s), 30.0)
    assert response is not None, "no answer from /robot1/query"
    return response


def test_bevs_become_a_map_entries_and_an_answer(ros, scene):
    world, frames, target = scene
    node = _memory_node(ros)
    probe, got = _feed(ros, node, frames)
    assert spin_until(ros, lambda: got["map"] and got["entries"], timeout=10.0)
    grid = np.frombuffer(got["map"][-1].data, np.int8)
    assert got["map"][-1].header.frame_id == "map" and np.count_nonzero(grid != -1) > 50
    labels = {entry.label for array in got["entries"] for entry in array.entries}
    assert f"{target.color} target" in labels and "open floor" in labels
    assert all(e.source_robot == "robot1" and len(e.value) == 388 for a in got["entries"] for e in a.entries)

    answer = _ask(ros, probe, query=f"where is the {target.color} target?", num_samples=20)
    assert answer.success, answer.message
    assert answer.labels[0] == f"{target.color} target"
    assert math.hypot(answer.xs[0] - target.x, answer.ys[0] - target.y) < 1.0
    assert 0.0 <= min(answer.scores) and max(answer.scores) <= 1.0


@pytest.mark.parametrize("fields, expect_success, message", [
    ({"query": "", "num_samples": 5}, False, "empty"),
    ({"query": "x" * 10_000, "num_samples": 5}, False, "characters"),
    ({"query": "red target", "num_samples": 0}, False, "num_samples"),
    ({"query": "red target", "num_samples": 1_000_000}, True, "capped"),
    ({"query": "", "embedding": [0.5] * 7, "num_samples": 5}, False, "384"),
    ({"query": "", "embedding": [math.nan] * 384, "num_samples": 5}, False, "NaN"),
])
@pytest.mark.slow
def test_bad_queries_get_a_clear_answer(ros, scene, fields, expect_success, message):
    _, frames, _ = scene
    node = _memory_node(ros)
    probe, _ = _feed(ros, node, frames[:2])
    answer = _ask(ros, probe, **fields)
    assert answer.success == expect_success and message in answer.message, answer.message
    if expect_success:
        assert len(answer.xs) == 1000


@pytest.mark.slow
def test_bad_inputs_are_dropped_and_memory_is_unchanged(ros, scene):
    import rclpy
    from geometry_msgs.msg import PoseWithCovarianceStamped

    from spatial_memory_ros.msg import BevMap, MemoryEntry, MemoryEntryArray
    from spatial_memory_ros.ros_common import RELIABLE_QOS

    _, frames, _ = scene
    node = _memory_node(ros)
    _feed(ros, node, frames[:1])
    size_before = len(node.memory.memory)
    probe = rclpy.create_node("bad_input_probe", context=ros.context_)
    ros.add_node(probe)
    pose_pub = probe.create_publisher(PoseWithCovarianceStamped, "/robot1/pose", RELIABLE_QOS)
    bev_pub = probe.create_publisher(BevMap, "/robot1/bev", RELIABLE_QOS)
    merge_pub = _team_link(ros)
    assert spin_until(ros, lambda: merge_pub.get_subscription_count() and bev_pub.get_subscription_count())
    nan_pose = PoseWithCovarianceStamped()
    nan_pose.pose.pose.position.x = math.nan
    short_bev = BevMap(width=4, height=4, resolution=0.25, occupancy=[0] * 3)
    wrong_dim = MemoryEntryArray(entries=[MemoryEntry(x=1.0, y=1.0, location_sd=0.5, value=[1.0] * 3,
                                                      source_robot="robot2")])
    own_source = MemoryEntryArray(entries=[MemoryEntry(x=1.0, y=1.0, location_sd=0.5, value=[0.0] * 388,
                                                       source_robot="robot1")])
    for _ in range(3):
        pose_pub.publish(nan_pose)
        bev_pub.publish(short_bev)
        merge_pub.publish(wrong_dim)
        merge_pub.publish(own_source)
    expected = {"invalid pose": 3, "invalid BEV": 3, "invalid merged entries": 6}
    assert spin_until(ros, lambda: all(node.guard.counts.get(k, 0) >= v for k, v in expected.items()), timeout=10)
    assert len(node.memory.memory) == size_before

    good = MemoryEntryArray(entries=[MemoryEntry(x=1.0, y=1.0, location_sd=0.5, value=[0.1] * 388,
                                                 label="red target", source_robot="robot2")])
    merge_pub.publish(good)
    assert spin_until(ros, lambda: len(node.memory.memory) == size_before + 1)
    assert node.memory.memory.snapshot().sources[-1] == "robot2"


def test_memory_is_saved_and_loaded(ros, scene, tmp_path):
    from std_srvs.srv import Trigger

    _, frames, _ = scene
    node = _memory_node(ros, tmp_path)
    probe, _ = _feed(ros, node, frames)
    entries = len(node.memory.memory)
    client = probe.create_client(Trigger, "/robot1/spatial_memory/save")
    assert spin_until(ros, client.service_is_ready)
    future = client.call_async(Trigger.Request())
    assert spin_until(ros, future.done) and future.result().success, future.result().message
    ros.remove_node(node)
    node.close()
    node.destroy_node()
    reloaded = _memory_node(ros, tmp_path)
    assert len(reloaded.memory.memory) == entries > 0


@pytest.mark.slow
def test_query_command_prints_the_answer_of_a_live_robot(ros, scene):
    import os
    import subprocess
    import sys
    from pathlib import Path

    _, frames, target = scene
    node = _memory_node(ros)
    _feed(ros, node, frames)
    cli = Path(sys.prefix) / "bin" / "spatial-memory"
    process = subprocess.Popen([str(cli), "query", f"the {target.color} target", "--robot", "robot1",
                                "--samples", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=os.environ.copy())
    assert spin_until(ros, lambda: process.poll() is not None, timeout=60.0)
    out, err = process.communicate()
    assert process.returncode == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith(f'robot1 on "the {target.color} target"') and len(lines) == 5
    assert lines[2].endswith(f"{target.color} target")


@pytest.mark.slow
def test_query_command_says_when_no_robot_answers():
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.prefix) / "bin" / "spatial-memory"
    result = subprocess.run([str(cli), "query", "red", "--robot", "nobody", "--timeout", "1"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "is the team running" in result.stderr


def test_prune_service_prunes_in_the_background_and_keeps_new_writes(ros, scene):
    from std_srvs.srv import Trigger

    from spatial_memory_ros.msg import MemoryEntry, MemoryEntryArray

    _, frames, _ = scene
    node = _memory_node(ros)
    probe, _ = _feed(ros, node, frames)
    # many near-duplicate shared entries: most of them add nothing to the read and should go
    duplicates = MemoryEntryArray(entries=[MemoryEntry(x=4.0 + 0.01 * k, y=4.0, location_sd=0.5, value=[0.1] * 388,
                                                       label="open floor", source_robot="robot2")
                                           for k in range(200)])
    merge_pub = _team_link(ros)
    assert spin_until(ros, merge_pub.get_subscription_count)
    merge_pub.publish(duplicates)
    assert spin_until(ros, lambda: node.guard.counts == {} and len(node.memory.memory) >= 200)
    before = len(node.memory.memory)
    client = probe.create_client(Trigger, "/robot1/spatial_memory/prune")
    assert spin_until(ros, client.service_is_ready)
    future = client.call_async(Trigger.Request())
    assert spin_until(ros, future.done) and future.result().success
    late = MemoryEntryArray(entries=[MemoryEntry(x=1.0, y=1.0, location_sd=0.5, value=[0.2] * 388,
                                                 label="late write", source_robot="robot3")])
    merge_pub.publish(late)
    node._prune_thread.join(timeout=60.0)
    assert spin_until(ros, lambda: "late write" in node.memory.memory.snapshot().labels)
    assert len(node.memory.memory) < before, "nothing was pruned"


@pytest.mark.slow
def test_absurd_merges_store_nothing_and_are_counted(ros, scene):
    """Issue 15, attack 3: 100 entries with 1 MB labels at x = 3e37 on memory/merge: refused and counted, 0 stored,
    whether an outsider sends them (not the robot's own team link: refused as such) or the team link itself does
    (refused by the bounds); well-formed entries beyond the rate are refused too, so merges grow the memory by at
    most merge_max_entries."""
    import rclpy

    from spatial_memory_ros.msg import MemoryEntry, MemoryEntryArray
    from spatial_memory_ros.ros_common import RELIABLE_QOS

    node = _memory_node(ros)
    size_before = len(node.memory.memory)
    probe = rclpy.create_node("merge_attacker", context=ros.context_)
    ros.add_node(probe)
    outsider = probe.create_publisher(MemoryEntryArray, "/robot1/memory/merge", RELIABLE_QOS)
    assert spin_until(ros, outsider.get_subscription_count)
    absurd = MemoryEntryArray(entries=[MemoryEntry(x=3e37, y=3e37, location_sd=0.5, label="x" * 1_000_000,
                                                   source_robot="robot2") for _ in range(100)])
    plausible = MemoryEntryArray(entries=[MemoryEntry(x=1.0, y=1.0, location_sd=0.5, value=[0.1] * 388,
                                                      label="red target", source_robot="robot2")])
    if messages_carry_publisher_gid():
        for msg in (absurd, plausible, absurd):
            outsider.publish(msg)
        assert spin_until(ros, lambda: node.guard.counts.get("merge from an unauthorised publisher", 0) >= 3,
                          timeout=30)
        assert len(node.memory.memory) == size_before and node.merge_gate.accepted == 0
    else:  # no publisher identity (Jazzy, Humble): an outsider is the team link to the node; the bounds still hold
        for msg in (absurd, absurd):
            outsider.publish(msg)
        assert spin_until(ros, lambda: node.guard.counts.get("merged entries out of bounds", 0) >= 2, timeout=30)
        assert len(node.memory.memory) == size_before and node.merge_gate.accepted == 0
    merge_pub = _team_link(ros)
    assert spin_until(ros, merge_pub.get_subscription_count)
    for _ in range(3):
        merge_pub.publish(absurd)
    bounded = 3 if messages_carry_publisher_gid() else 5
    assert spin_until(ros, lambda: node.guard.counts.get("merged entries out of bounds", 0) >= bounded, timeout=30)
    assert len(node.memory.memory) == size_before
    many = [MemoryEntryArray(entries=[MemoryEntry(x=1.0 + 0.001 * k, y=1.0, location_sd=0.5, value=[0.1] * 388,
                                                  label=f"thing {i}", source_robot="robot2") for k in range(500)])
            for i in range(3)]
    for batch in many:  # 1,500 entries at once: past the burst of 1,000
        merge_pub.publish(batch)
    assert spin_until(ros, lambda: node.guard.counts.get("merged entries over the rate", 0) >= 1, timeout=30)
    assert node.merge_gate.accepted == 1000 and len(node.memory.memory) <= size_before + 1000


def test_a_corrupt_memory_file_gives_one_line_and_exit_65_or_a_fresh_start(ros, tmp_path):
    """Issue 15, item 6: a damaged snapshot: the installed node exits 65 (EX_DATAERR) with one fatal line and no
    traceback, leaving the files; with on_corrupt:=fresh it sets them aside and starts empty."""
    import subprocess

    from spatial_memory_ros.graph import executable_path
    from spatial_memory_ros.nodes.spatial_memory import SpatialMemoryNode

    snapshot = tmp_path / "memory.npz"
    snapshot.write_bytes(b"not a memory snapshot" * 100)
    command = [str(executable_path("spatial_memory")), "--ros-args", "-r", "__ns:=/robot1", "-p",
               f"snapshot_path:={snapshot}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 65, output
    assert "Traceback" not in output and "on_corrupt:=fresh" in output
    assert len([line for line in output.splitlines() if "FATAL" in line]) == 1 and snapshot.exists()
    node = SpatialMemoryNode(context=ros.context_, namespace="/robot1", parameter_overrides=[
        Parameter("snapshot_path", value=str(snapshot)), Parameter("on_corrupt", value="fresh")])
    ros.add_node(node)
    assert len(node.memory.memory) == 0 and not snapshot.exists()
    assert [p.name.split(".corrupt-")[0] for p in tmp_path.glob("*.corrupt-*")] == ["memory.npz"]


def test_far_wall_weight_reaches_the_map(ros):
    from spatial_memory_ros.memory.mapping import FAR_WALL_WEIGHT

    assert _memory_node(ros).memory.map.far_wall_weight == FAR_WALL_WEIGHT
    assert _memory_node(ros, far_wall_weight=0.4).memory.map.far_wall_weight == 0.4
