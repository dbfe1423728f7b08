"""Replay determinism of the mapping stack (BEV predictor, localizer, memory): run on a replayed bag of camera
images, odometry and the start pose, it gives the live run's poses and memory: the same entries and poses within
float tolerance, the same maps.

This holds because no result depends on message timing: the memory publishes map(T) right after the BEV stamped T,
and the localizer applies odometry and BEVs in stamp order, matching the BEV stamped T against map(T - map_lag)."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import spin_until

pytestmark = pytest.mark.ros
INPUTS = ["/robot1/camera/image_raw", "/robot1/odom", "/robot1/initialpose", "/clock"]
LOCKSTEP = ["/robot1/camera/image_raw=/robot1/bev", "/robot1/camera/image_raw=/robot1/pose"]


def _live_run(out: Path) -> Path:
    cli = Path(sys.prefix) / "bin" / "spatial-memory"
    result = subprocess.run([str(cli), "demo", "--duration", "6", "--robots", "1", "--maze-size", "9", "--record",
                             "--no-progress", "--out", str(out), "--wall-timeout", "240"], capture_output=True,
                            text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = out.iterdir()
    return run_dir / "bag"


def _recorded(bag: Path, topic: str) -> list:
    from spatial_memory_ros.recording.bags import BagReader

    with BagReader(bag) as reader:
        return [reader.deserialize(m) for m in reader.messages([topic])]


def _poses(messages) -> np.ndarray:
    return np.array([(m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec, m.pose.pose.position.x,
                      m.pose.pose.position.y) for m in messages])


def _entries(arrays) -> list[tuple]:
    return sorted((e.label, round(float(e.x), 3), round(float(e.y), 3), round(float(e.location_sd), 3))
                  for array in arrays for e in array.entries)


@pytest.mark.slow
def test_replayed_images_and_odometry_give_the_live_poses_and_memory(ros, tmp_path):
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from nav_msgs.msg import OccupancyGrid

    from spatial_memory_ros.commands.replay import replay
    from spatial_memory_ros.graph import Sources, robot_stack
    from spatial_memory_ros.shared_parameters import SharedParameters
    from spatial_memory_ros.msg import MemoryEntryArray
    from spatial_memory_ros.ros_common import MAP_SEQUENCE_QOS, RELIABLE_QOS
    from spatial_memory_ros.demo.processes import ComposedGraph

    bag = _live_run(tmp_path / "live")
    live_entries = _entries(_recorded(bag, "/robot1/memory/entries"))
    live_maps = _recorded(bag, "/robot1/map")
    live_poses = _poses(_recorded(bag, "/robot1/pose"))
    assert len(live_entries) > 20 and live_maps and len(live_poses) > 50

    shared = SharedParameters.for_maze(9, ["robot1"])
    stack = [spec for spec in robot_stack("robot1", use_sim_time=True,
                                          sources=Sources(bev="bev", pose="pose"), shared=shared)
             if spec.executable in ("bev_predictor", "localizer", "spatial_memory")]
    assert len(stack) == 3
    graph = ComposedGraph(stack, tmp_path / "params")
    graph.start(ros)
    probe = graph.nodes[0]
    replayed, maps, poses = [], {}, []
    probe.create_subscription(MemoryEntryArray, "/robot1/memory/entries", replayed.append, RELIABLE_QOS)
    probe.create_subscription(PoseWithCovarianceStamped, "/robot1/pose", poses.append, RELIABLE_QOS)
    probe.create_subscription(OccupancyGrid, "/robot1/map",
                              lambda m: maps.__setitem__((m.header.stamp.sec, m.header.stamp.nanosec), m),
                              MAP_SEQUENCE_QOS)
    done = threading.Event()
    # Lockstep: camera frames are best effort, so a busy CPU would drop some if nothing waited for the consumers;
    # each frame waits until the previous one came out as a BEV and a pose (its odometry follows it in the bag).
    results = []
    thread = threading.Thread(target=lambda: (results.append(replay(
        bag, rate=0.0, topics=INPUTS, wait_for_subscribers=60.0, lockstep=LOCKSTEP, lockstep_timeout=30.0)),
        done.set()), daemon=True)
    thread.start()
    assert spin_until(ros, done.is_set, timeout=240.0), "the replay did not finish"
    assert results and results[0].lockstep_timeouts == 0, results and results[0].report()
    spin_until(ros, lambda: False, timeout=2.0)
    memory = next(n for n in graph.nodes if n.get_name() == "spatial_memory")
    graph.stop()

    replay_poses = _poses(poses)
    assert memory.bevs_observed == memory.bevs_received > 50
    assert replay_poses.shape == live_poses.shape
    np.testing.assert_allclose(replay_poses, live_poses, atol=1e-3)
    replay_entries = _entries(replayed)
    assert len(replay_entries) == len(live_entries)
    for live, again in zip(live_entries, replay_entries):
        assert live[0] == again[0] and np.allclose(live[1:], again[1:], atol=0.02), (live, again)
    ious = []
    for live_map in live_maps:
        key = (live_map.header.stamp.sec, live_map.header.stamp.nanosec)
        assert key in maps, f"no replayed map at the live map's stamp {key}"
        ious.append(_map_iou(_grid(live_map), _grid(maps[key])))
    pose_error = float(np.abs(replay_poses[:, 1:] - live_poses[:, 1:]).max())
    entry_error = max((float(np.abs(np.subtract(a[1:], b[1:])).max()) for a, b in zip(live_entries, replay_entries)),
                      default=0.0)
    print(f"\nreplay determinism: {len(live_poses)} poses (max diff {pose_error:.2e} m), {len(live_entries)} "
          f"entries (max diff {entry_error:.2e}), {len(ious)} maps (min IoU {min(ious):.4f})")
    assert min(ious) >= 0.99


def _grid(msg) -> np.ndarray:
    return np.frombuffer(bytes(msg.data), np.int8).reshape(msg.info.height, msg.info.width)


def _map_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over free and wall cells of the IoU of the two maps' cells of that class."""
    scores = []
    for cells_a, cells_b in (((a >= 0) & (a < 50), (b >= 0) & (b < 50)), (a >= 50, b >= 50)):
        union = np.count_nonzero(cells_a | cells_b)
        scores.append(np.count_nonzero(cells_a & cells_b) / union if union else 1.0)
    return float(np.mean(scores))
