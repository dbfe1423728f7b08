"""geometric_bev as a real rclpy node: the sim's scan and depth (with camera_info) in, BEVs out with their stamps;
mismatched scans, depth in the wrong encoding, of the wrong size or before any CameraInfo dropped and counted."""
from __future__ import annotations

import array

import numpy as np
import pytest
from rclpy.parameter import Parameter

from conftest import spin_until

pytestmark = pytest.mark.ros


def _node(ros, source, **parameters):
    from spatial_memory_ros.nodes.geometric_bev import GeometricBevNode

    parameters = {"source": source, "robots": ["robot1"], **parameters}
    node = GeometricBevNode(context=ros.context_, parameter_overrides=[
        Parameter(name, value=value) for name, value in parameters.items()])
    ros.add_node(node)
    return node


def _probe(ros, topic, msg_type):
    import rclpy
    from sensor_msgs.msg import CameraInfo

    from spatial_memory_ros.msg import BevMap
    from spatial_memory_ros.ros_common import RELIABLE_QOS, SENSOR_QOS

    probe = rclpy.create_node("geometric_probe", context=ros.context_)
    ros.add_node(probe)
    got = []
    probe.create_subscription(BevMap, "/robot1/bev", got.append, RELIABLE_QOS)
    pub = probe.create_publisher(msg_type, f"/robot1/{topic}", SENSOR_QOS)
    info = probe.create_publisher(CameraInfo, "/robot1/camera/camera_info", SENSOR_QOS)
    assert spin_until(ros, lambda: pub.get_subscription_count() > 0)
    return pub, info, got


def test_scans_become_bevs_and_mismatched_scans_are_counted(ros):
    from sensor_msgs.msg import LaserScan

    from spatial_memory_ros.conversions import seconds_to_time
    from spatial_memory_ros.sensor_conversions import scan_to_msg
    from spatial_memory_ros.sim import range_sensors
    from spatial_memory_ros.sim.interface import make_world

    node = _node(ros, "scan")
    pub, _, got = _probe(ros, "scan", LaserScan)
    world = make_world("builtin", size=11, seed=2, num_robots=1)
    pub.publish(scan_to_msg(range_sensors.scan(world, 0), seconds_to_time(4.5), "robot1/base_link"))
    assert spin_until(ros, lambda: len(got) == 1)
    bev = got[0]
    assert (bev.robot_id, bev.header.frame_id, bev.width, bev.height, bev.header.stamp.sec) == (
        "robot1", "robot1/base_link", 32, 32, 4)
    occupancy = np.frombuffer(bev.occupancy, np.int8)
    truth = world.oracle_bev(0).occupancy.reshape(-1)
    assert np.count_nonzero(occupancy == 0) > 20 and np.mean(occupancy[truth == 0] == 0) > 0.9
    bad = scan_to_msg(range_sensors.scan(world, 0), seconds_to_time(5.0), "robot1/base_link")
    bad.ranges = array.array("f", list(bad.ranges)[:-10])              # ray count does not match the angles
    pub.publish(bad)
    nothing = scan_to_msg(range_sensors.scan(world, 0), seconds_to_time(5.1), "robot1/base_link")
    nothing.ranges = array.array("f", [float("nan")] * len(nothing.ranges))
    pub.publish(nothing)
    assert spin_until(ros, lambda: node.guard.counts == {"invalid scan": 1, "scan without a usable return": 1})
    assert len(got) == 1


def test_depth_needs_camera_info_and_the_right_encoding(ros):
    from sensor_msgs.msg import Image

    from spatial_memory_ros.conversions import seconds_to_time
    from spatial_memory_ros.sensor_conversions import camera_info_to_msg, depth_to_msg
    from spatial_memory_ros.sim import range_sensors
    from spatial_memory_ros.sim.interface import make_world

    node = _node(ros, "depth")
    pub, info, got = _probe(ros, "camera/depth", Image)
    world = make_world("builtin", size=11, seed=2, num_robots=1)
    depth = depth_to_msg(range_sensors.depth_image(world, 0), seconds_to_time(3.0), "robot1/camera")
    pub.publish(depth)     # two before any CameraInfo: the newest waits for it, the older one is refused
    assert spin_until(ros, lambda: node._waiting)  # (taken one at a time: the queue may keep only the newest)
    pub.publish(depth)
    assert spin_until(ros, lambda: node.guard.counts.get("depth without camera_info") == 1)
    info.publish(camera_info_to_msg(world.camera_model(0), seconds_to_time(3.0), "robot1/camera"))
    assert spin_until(ros, lambda: len(got) == 1)
    pub.publish(Image(height=64, width=64, encoding="rgb8", step=192, data=bytes(64 * 64 * 3)))
    pub.publish(Image(height=32, width=32, encoding="32FC1", step=128, data=bytes(32 * 32 * 4)))
    assert spin_until(ros, lambda: node.guard.counts.get("invalid depth") == 2)
    pub.publish(depth)
    assert spin_until(ros, lambda: len(got) == 2)
    occupancy = np.frombuffer(got[1].occupancy, np.int8)
    assert np.count_nonzero(occupancy == 0) > 20 and np.count_nonzero(occupancy == 100) > 0


@pytest.mark.parametrize("source, topic", [("scan", "scan"), ("depth", "camera/depth")])
def test_sim_world_feeds_geometric_bev_whose_bev_matches_the_oracle(ros, source, topic):
    from sensor_msgs.msg import Image, LaserScan

    from spatial_memory_ros.msg import BevMap
    from spatial_memory_ros.graph import sim_geometric_parameters
    from spatial_memory_ros.nodes.sim_world import SimWorldNode
    from spatial_memory_ros.ros_common import RELIABLE_QOS, SENSOR_QOS
    from spatial_memory_ros.sim.range_sensors import DEPTH_WIDTH

    import rclpy

    sim = SimWorldNode(context=ros.context_, parameter_overrides=[
        Parameter(k, value=v) for k, v in {"robots": 1, "maze_size": 9, "seed": 5, "wait_for_controllers": 0.0,
                                           "lockstep": False, "real_time_factor": 5.0}.items()])
    ros.add_node(sim)
    node = _node(ros, **sim_geometric_parameters("builtin", source))  # as the sim graph starts it
    probe = rclpy.create_node("sim_probe", context=ros.context_)
    ros.add_node(probe)
    got, oracle, raw = [], [], []
    probe.create_subscription(BevMap, "/robot1/bev", got.append, RELIABLE_QOS)
    probe.create_subscription(BevMap, "/robot1/ground_truth/bev", oracle.append, RELIABLE_QOS)
    probe.create_subscription(LaserScan if source == "scan" else Image, f"/robot1/{topic}", raw.append, SENSOR_QOS)
    assert spin_until(ros, lambda: len(got) >= 3 and len(raw) >= 3, timeout=20.0), (len(got), len(raw))
    if source == "scan":
        assert (len(raw[-1].ranges), raw[-1].header.frame_id) == (720, "robot1/base_link")
    else:  # the sim's depth camera: its own resolution and CameraInfo (camera/depth/camera_info)
        assert (raw[-1].encoding, raw[-1].width, raw[-1].height) == ("32FC1", DEPTH_WIDTH, DEPTH_WIDTH)
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in oracle}
    pairs = [(m, stamps[(m.header.stamp.sec, m.header.stamp.nanosec)]) for m in got
             if (m.header.stamp.sec, m.header.stamp.nanosec) in stamps]
    assert pairs
    predicted, truth = (np.frombuffer(m.occupancy, np.int8) for m in pairs[-1])
    free = truth == 0
    assert np.mean(predicted[free] == 0) > 0.9 and node.guard.counts == {}
