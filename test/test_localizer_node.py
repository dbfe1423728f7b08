"""localizer as a real rclpy node: odometry and BEVs in, pose / grid code / belief / path out; bad odometry
and BEVs dropped with the belief unchanged."""
from __future__ import annotations

import math

import numpy as np
import pytest
from rclpy.parameter import Parameter

from conftest import spin_until

pytestmark = pytest.mark.ros


def _localizer(ros):
    from spatial_memory_ros.nodes.localizer import LocalizerNode

    node = LocalizerNode(context=ros.context_, namespace="/robot1",
                         parameter_overrides=[Parameter("belief_period", value=0.2)])
    ros.add_node(node)
    return node


def _publishers(ros):
    import rclpy
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from nav_msgs.msg import OccupancyGrid, Odometry

    from spatial_memory_ros.msg import BevMap
    from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS

    probe = rclpy.create_node("localizer_probe", context=ros.context_)
    ros.add_node(probe)
    pubs = {"odom": probe.create_publisher(Odometry, "/robot1/odom", RELIABLE_QOS),
            "bev": probe.create_publisher(BevMap, "/robot1/bev", RELIABLE_QOS),
            "map": probe.create_publisher(OccupancyGrid, "/robot1/map", LATCHED_QOS),
            "start": probe.create_publisher(PoseWithCovarianceStamped, "/robot1/initialpose", LATCHED_QOS)}
    assert spin_until(ros, lambda: all(p.get_subscription_count() for p in pubs.values()))
    return probe, pubs


def _odom(stamp: float, v: float, omega: float):
    from spatial_memory_ros.conversions import odometry_to_msg, seconds_to_time
    from spatial_memory_ros.core.world import Pose2D

    return odometry_to_msg(Pose2D(0, 0, 0), (v, omega), seconds_to_time(stamp), "robot1/odom", "robot1/base_link",
                           0.05, 0.03)


def test_localizer_tracks_a_robot_and_publishes_everything(ros):
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from nav_msgs.msg import OccupancyGrid, Path

    from spatial_memory_ros.conversions import bev_to_msg, maze_to_occupancy_grid, pose_to_msg, seconds_to_time
    from spatial_memory_ros.core.explorer import RandomWalker
    from spatial_memory_ros.core.mapping import GridGeometry, rasterize_maze
    from spatial_memory_ros.core.world import World, generate_maze
    from spatial_memory_ros.msg import GridCode
    from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS

    world = World(generate_maze(9, seed=5), num_robots=1, seed=5)
    node = _localizer(ros)
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

    node = _localizer(ros)
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
