"""``spatial-memory record --adaptation`` on live topics: a robot's camera, camera_info, scan and depth published by
real rclpy publishers (the messages sim_world sends) are recorded by ``record()`` and read back as labelled camera
pairs by ``train bev --bag``'s reader, every frame paired by stamp."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from conftest import spin_until

pytestmark = [pytest.mark.ros, pytest.mark.slow]
FRAMES = 12


def test_record_adaptation_topics_make_a_bag_that_pairs(ros, tmp_path):
    import rclpy
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import CameraInfo, Image, LaserScan

    from spatial_memory_ros.commands.record import adaptation_topics, record
    from spatial_memory_ros.conversions import image_to_msg, odometry_to_msg, seconds_to_time
    from spatial_memory_ros.perception.scan_bev import DEFAULT_BEV
    from spatial_memory_ros.recording.sensor_bags import LabelSensor, read_pairs
    from spatial_memory_ros.ros_common import RELIABLE_QOS, SENSOR_QOS
    from spatial_memory_ros.sensor_conversions import camera_info_to_msg, depth_to_msg, scan_to_msg
    from spatial_memory_ros.sim import range_sensors
    from spatial_memory_ros.sim.interface import make_world

    topics = adaptation_topics("robot1")
    assert topics == ["/robot1/camera/image_raw", "/robot1/camera/camera_info", "/robot1/scan",
                      "/robot1/camera/depth", "/robot1/odom"]
    node = rclpy.create_node("adaptation_robot", context=ros.context_)
    ros.add_node(node)
    types = (Image, CameraInfo, LaserScan, Image, Odometry)
    publishers = [node.create_publisher(kind, topic, RELIABLE_QOS if kind is Odometry else SENSOR_QOS)
                  for kind, topic in zip(types, topics)]
    bag, stop, outcome = tmp_path / "bag", threading.Event(), {}
    thread = threading.Thread(target=lambda: outcome.setdefault("result", record(topics, bag, stop)))
    thread.start()
    world = make_world("builtin", size=9, seed=4, num_robots=1)
    try:
        assert spin_until(ros, lambda: all(p.get_subscription_count() for p in publishers), 20.0)
        for k in range(FRAMES):
            stamp = seconds_to_time(10.0 + 0.1 * k)
            messages = (image_to_msg(world.render(0), stamp, "robot1/camera"),
                        camera_info_to_msg(world.camera_model(0), stamp, "robot1/camera"),
                        scan_to_msg(range_sensors.scan(world, 0), stamp, "robot1/base_link"),
                        depth_to_msg(range_sensors.depth_image(world, 0), stamp, "robot1/camera"),
                        odometry_to_msg(world.odom_pose(0), world.odom_twist(0), stamp, "robot1/odom",
                                        "robot1/base_link", 0.05, 0.03))
            for publisher, msg in zip(publishers, messages):
                publisher.publish(msg)
            world.step([(0.3, 0.2)])
            spin_until(ros, lambda: False, timeout=0.1)     # sensor QoS keeps 10: do not outrun the recorder
        spin_until(ros, lambda: False, timeout=1.0)
    finally:
        stop.set()
        thread.join(timeout=20)
        world.close()
    counts = outcome["result"].counts
    assert counts == {topic: FRAMES for topic in topics}
    for labels in ("scan", "depth"):
        pairs = read_pairs(bag, LabelSensor(labels), DEFAULT_BEV)
        assert len(pairs.pairs) == FRAMES and pairs.pairing.unpaired == 0
        assert np.allclose(pairs.pairs.stamps, 10.0 + 0.1 * np.arange(FRAMES))
        assert pairs.pairs.mask.any(axis=(1, 2)).all()
