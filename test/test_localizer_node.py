"""localizer as a real rclpy node: odometry and BEVs in, pose / grid code / belief / path out; bad odometry
and BEVs dropped with the belief unchanged."""
from __future__ import annotations

import math

import numpy as np
import pytest
from rclpy.parameter import Parameter

from conftest import spin_until

pytestmark = pytest.mark.ros


def _localizer(ros, namespace: str = "/robot1", **parameters):
    from spatial_memory_ros.nodes.localizer import LocalizerNode

    overrides = [Parameter("belief_period", value=0.2)] + [Parameter(k, value=v) for k, v in parameters.items()]
    node = LocalizerNode(context=ros.context_, namespace=namespace, parameter_overrides=overrides)
    ros.add_node(node)
    return node


def _publishers(ros, namespace: str = "/robot1"):
    import rclpy
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from nav_msgs.msg import OccupancyGrid, Odometry

    from spatial_memory_ros.msg import BevMap
    from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS

    probe = rclpy.create_node(f"localizer_probe_{namespace.strip('/')}", context=ros.context_)
    ros.add_node(probe)
    pubs = {"odom": probe.create_publisher(Odometry, f"{namespace}/odom", RELIABLE_QOS),
            "bev": probe.create_publisher(BevMap, f"{namespace}/bev", RELIABLE_QOS),
            "map": probe.create_publisher(OccupancyGrid, f"{namespace}/map", LATCHED_QOS),
            "start": probe.create_publisher(PoseWithCovarianceStamped, f"{namespace}/initialpose", LATCHED_QOS)}
    assert spin_until(ros, lambda: all(p.get_subscription_count() for p in pubs.values()))
    return probe, pubs


def _odom(stamp: float, v: float, omega: float):
    from spatial_memory_ros.conversions import odometry_to_msg, seconds_to_time
    from spatial_memory_ros.types import Pose2D

    return odometry_to_msg(Pose2D(0, 0, 0), (v, omega), seconds_to_time(stamp), "robot1/odom", "robot1/base_link",
                           0.05, 0.03)


@pytest.mark.slow
def test_localizer_tracks_a_robot_and_publishes_everything(ros):
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from nav_msgs.msg import OccupancyGrid, Path

    from spatial_memory_ros.conversions import bev_to_msg, maze_to_occupancy_grid, pose_to_msg, seconds_to_time
    from spatial_memory_ros.behaviour.walker import RandomWalker
    from spatial_memory_ros.evaluation.map_scores import rasterize_maze
    from spatial_memory_ros.types import GridGeometry
    from spatial_memory_ros.sim.maze import generate_maze
    from spatial_memory_ros.sim.world import World
    from spatial_memory_ros.msg import GridCode
    from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS

    world = World(generate_maze(9, seed=5), num_robots=1, seed=5)
    node = _localizer(ros, map_lag=0.0)  # a fixed, true map: used as soon as it arrives
    probe, pubs = _publishers(ros)
    got = {"pose": [], "grid": [], "belief": [], "path": []}
    probe.create_subscription(PoseWithCovarianceStamped, "/robot1/pose", got["pose"].append, RELIABLE_QOS)
    probe.create_subscription(GridCode, "/robot1/grid_code", got["grid"].append, RELIABLE_QOS)
    probe.create_subscription(OccupancyGrid, "/robot1/belief", got["belief"].append, LATCHED_QOS)
    probe.create_subscription(Path, "/robot1/path", got["path"].append, LATCHED_QOS)
    geometry = GridGeometry.covering(world.maze, 0.25)
    truth_map = maze_to_occupancy_grid(world.maze, seconds_to_time(0.0))
    truth_map.info.resolution, truth_map.info.width, truth_map.info.height = 0.25, geometry.width, geometry.height
    truth_map.data = rasterize_maze(world.maze, geometry).tobytes()
    pubs["map"].publish(truth_map)
    pubs["start"].publish(pose_to_msg(world.true_pose(0), seconds_to_time(0.0), "map", xy_sd=0.05))
    assert spin_until(ros, lambda: node.tem.has_map)
    walker = RandomWalker(seed=5)
    for step in range(40):
        stamp = seconds_to_time(world.time)
        pubs["odom"].publish(_odom(world.time, *world.odom_twist(0)))
        spin_until(ros, lambda: False, timeout=0.01)
        pubs["bev"].publish(bev_to_msg(world.oracle_bev(0), stamp, "robot1/base_link", "robot1"))
        assert spin_until(ros, lambda: len(got["pose"]) == step + 1, timeout=10.0)
        world.step([walker.command(world.oracle_bev(0), twist=world.odom_twist(0))])
    last = got["pose"][-1].pose.pose.position
    truth = world.true_pose(0)
    assert math.hypot(last.x - truth.x, last.y - truth.y) < 0.5
    assert len(got["grid"][-1].phases) == 2 * len(got["grid"][-1].periods) >= 6
    assert spin_until(ros, lambda: got["belief"] and got["path"] and len(got["path"][-1].poses) > 5)
    assert got["belief"][-1].header.frame_id == "map" and max(got["belief"][-1].data) == 100


@pytest.mark.parametrize("case", ["nan", "backwards", "jump", "bev_wrong_size"])
def test_bad_odometry_and_bevs_are_dropped_and_belief_is_unchanged(ros, case):
    from spatial_memory_ros.msg import BevMap

    node = _localizer(ros, odom_hold=0.0)  # no BEV stream here: odometry goes in as it comes
    probe, pubs = _publishers(ros)
    pubs["odom"].publish(_odom(10.0, 0.5, 0.0))
    pubs["odom"].publish(_odom(10.1, 0.5, 0.0))
    assert spin_until(ros, lambda: node.tem._last_stamp is not None and abs(node.tem._last_stamp - 10.1) < 1e-6)
    before = node.tem.belief.copy()
    bad = {"nan": lambda: pubs["odom"].publish(_odom(10.2, math.nan, 0.0)),
           "backwards": lambda: pubs["odom"].publish(_odom(9.0, 0.5, 0.0)),
           "jump": lambda: pubs["odom"].publish(_odom(500.0, 0.5, 0.0)),
           "bev_wrong_size": lambda: pubs["bev"].publish(BevMap(width=5, height=5, resolution=0.25,
                                                                occupancy=[0] * 25))}
    reason = "invalid BEV" if case == "bev_wrong_size" else "invalid odometry"
    bad[case]()
    assert spin_until(ros, lambda: node.guard.counts.get(reason, 0) == 1)
    np.testing.assert_array_equal(node.tem.belief, before)


def _recorded_drive(steps: int):
    """(stamp, twist, oracle BEV) of a short random walk, and the world it ran in."""
    from spatial_memory_ros.behaviour.walker import RandomWalker
    from spatial_memory_ros.sim.maze import generate_maze
    from spatial_memory_ros.sim.world import World

    world = World(generate_maze(9, seed=7), num_robots=1, seed=7)
    walker = RandomWalker(seed=7)
    frames = []
    for _ in range(steps):
        frames.append((world.time, world.odom_twist(0), world.oracle_bev(0)))
        world.step([walker.command(world.oracle_bev(0), twist=world.odom_twist(0))])
    return world, frames


def _growing_maps(world, frames, period: float):
    """Emulates the memory: after the first BEV of each `period`, a map stamped with it that reveals more of the
    maze (so which map a BEV is matched against changes the belief)."""
    from spatial_memory_ros.conversions import occupancy_to_msg, seconds_to_time
    from spatial_memory_ros.evaluation.map_scores import rasterize_maze
    from spatial_memory_ros.types import GridGeometry

    geometry = GridGeometry.covering(world.maze, 0.25)
    truth = rasterize_maze(world.maze, geometry)
    maps, slot = {}, None
    for index, (stamp, _, _) in enumerate(frames):
        if slot is None or math.floor(stamp / period) > slot:
            slot = math.floor(stamp / period)
            grid = np.full_like(truth, -1)
            revealed = 6 + 4 * len(maps)
            grid[:, :revealed] = truth[:, :revealed]
            maps[index] = occupancy_to_msg(grid, geometry, seconds_to_time(stamp))
    return maps


@pytest.mark.slow
def test_poses_do_not_depend_on_how_odometry_bevs_and_maps_interleave(ros):
    """The same messages in the live order (odometry, BEV, then the memory's map) and in a replay-like order
    (odometry half a second ahead, BEVs late, maps later still) give identical poses."""
    from geometry_msgs.msg import PoseWithCovarianceStamped

    from spatial_memory_ros.conversions import bev_to_msg, pose_to_msg, seconds_to_time
    from spatial_memory_ros.sim.maze import generate_maze
    from spatial_memory_ros.sim.world import World
    from spatial_memory_ros.ros_common import RELIABLE_QOS

    world, frames = _recorded_drive(41)
    maps = _growing_maps(world, frames, period=0.3)
    poses = {}
    feeds = {}
    for namespace in ("/live", "/replay"):
        _localizer(ros, namespace=namespace, map_lag=0.5)
        probe, pubs = _publishers(ros, namespace)
        poses[namespace] = []
        probe.create_subscription(PoseWithCovarianceStamped, f"{namespace}/pose", poses[namespace].append,
                                  RELIABLE_QOS)
        feeds[namespace] = pubs
    first = World(generate_maze(9, seed=7), num_robots=1, seed=7).true_pose(0)
    for pubs in feeds.values():
        pubs["start"].publish(pose_to_msg(first, seconds_to_time(0.0), "map", xy_sd=0.05))
    spin_until(ros, lambda: False, timeout=0.3)

    def send(pubs, kind: str, index: int) -> None:
        stamp, twist, bev = frames[index]
        if kind == "odom":
            pubs["odom"].publish(_odom(stamp, *twist))
        elif kind == "bev":
            pubs["bev"].publish(bev_to_msg(bev, seconds_to_time(stamp), "base_link", "robot1"))
        elif index in maps:
            pubs["map"].publish(maps[index])

    live = [(kind, i) for i in range(len(frames)) for kind in ("odom", "bev", "map")]
    replay = sorted(live, key=lambda item: item[1] + {"odom": -5, "bev": 0, "map": 12}[item[0]])
    for (kind_a, a), (kind_b, b) in zip(live, replay):
        send(feeds["/live"], kind_a, a)
        send(feeds["/replay"], kind_b, b)
        spin_until(ros, lambda: False, timeout=0.005)
    assert spin_until(ros, lambda: all(len(p) == len(frames) for p in poses.values()), timeout=20.0), \
        {k: len(v) for k, v in poses.items()}

    def track(msgs):
        return np.array([(m.header.stamp.sec, m.header.stamp.nanosec, m.pose.pose.position.x,
                          m.pose.pose.position.y) for m in msgs])

    np.testing.assert_array_equal(track(poses["/live"]), track(poses["/replay"]))
