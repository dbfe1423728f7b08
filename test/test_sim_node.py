"""sim_world as a real rclpy node: it publishes every robot's sensors, moves robots on cmd_vel, and
drops NaN, inf or absurd commands with a warning while the simulation keeps running."""
from __future__ import annotations

import math

import pytest
from rclpy.parameter import Parameter

from conftest import spin_until

pytestmark = pytest.mark.ros


def _sim(ros, **overrides):
    from spatial_memory_ros.nodes.sim_world import SimWorldNode

    params = {"robots": 2, "maze_size": 9, "seed": 3, "wait_for_controllers": 0.0, "lockstep": False,
              **overrides}
    node = SimWorldNode(context=ros.context_, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    ros.add_node(node)
    return node


def _probe(ros, name="probe"):
    import rclpy

    node = rclpy.create_node(name, context=ros.context_)
    ros.add_node(node)
    return node


def test_publishes_sensors_and_follows_cmd_vel(ros):
    from geometry_msgs.msg import PoseWithCovarianceStamped, Twist
    from nav_msgs.msg import Odometry
    from sensor_msgs.msg import Image

    from spatial_memory_ros.msg import BevMap
    from spatial_memory_ros.ros_common import RELIABLE_QOS, SENSOR_QOS

    sim = _sim(ros)
    probe = _probe(ros)
    got = {"image": [], "odom": [], "pose": [], "bev": []}
    probe.create_subscription(Image, "/robot2/camera/image_raw", got["image"].append, SENSOR_QOS)
    probe.create_subscription(Odometry, "/robot2/odom", got["odom"].append, RELIABLE_QOS)
    probe.create_subscription(PoseWithCovarianceStamped, "/robot2/ground_truth/pose", got["pose"].append, RELIABLE_QOS)
    probe.create_subscription(BevMap, "/robot2/ground_truth/bev", got["bev"].append, RELIABLE_QOS)
    cmd = probe.create_publisher(Twist, "/robot2/cmd_vel", RELIABLE_QOS)
    turn = Twist()
    turn.angular.z = 1.0
    start_yaw = sim.world.true_pose(1).theta
    probe.create_timer(0.02, lambda: cmd.publish(turn))

    assert spin_until(ros, lambda: all(len(v) >= 5 for v in got.values()), timeout=15.0), \
        {k: len(v) for k, v in got.items()}
    image = got["image"][-1]
    assert (image.encoding, image.width, image.height, len(image.data)) == ("rgb8", 64, 64, 64 * 64 * 3)
    assert got["bev"][-1].robot_id == "robot2" and len(got["bev"][-1].occupancy) == 32 * 32
    assert got["pose"][-1].header.frame_id == "map"
    assert got["odom"][-1].child_frame_id == "robot2/base_link"
    assert spin_until(ros, lambda: abs(math.remainder(sim.world.true_pose(1).theta - start_yaw, math.tau)) > 0.3)


@pytest.mark.parametrize("bad", [(math.nan, 0.0), (0.0, math.inf), (1e12, 0.0), (0.0, -1e9)])
def test_bad_cmd_vel_is_dropped_with_a_warning_and_the_sim_keeps_running(ros, bad):
    from geometry_msgs.msg import Twist

    from spatial_memory_ros.msg import DropCounters
    from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS

    sim = _sim(ros)
    probe = _probe(ros)
    drops = []
    probe.create_subscription(DropCounters, "/sim_world/dropped_inputs", drops.append, LATCHED_QOS)
    cmd = probe.create_publisher(Twist, "/robot1/cmd_vel", RELIABLE_QOS)
    message = Twist()
    message.linear.x, message.angular.z = bad
    probe.create_timer(0.05, lambda: cmd.publish(message))

    assert spin_until(ros, lambda: sim.guard.counts.get("invalid cmd_vel", 0) >= 3, timeout=15.0)
    steps_then = sim.world.step_count
    assert spin_until(ros, lambda: sim.world.step_count > steps_then + 10, timeout=10.0), "the sim stopped"
    assert spin_until(ros, lambda: any("invalid cmd_vel" in d.reasons for d in drops), timeout=5.0)
    pose = sim.world.true_pose(0)
    assert math.isfinite(pose.x) and math.isfinite(pose.y) and math.isfinite(pose.theta)


def test_stops_at_max_sim_time_and_reports_status(ros):
    from spatial_memory_ros.msg import SimStatus
    from spatial_memory_ros.ros_common import LATCHED_QOS

    sim = _sim(ros, max_sim_time=2.0)
    probe = _probe(ros)
    status = []
    probe.create_subscription(SimStatus, "/sim/status", status.append, LATCHED_QOS)
    assert spin_until(ros, lambda: status and status[-1].sim_time >= 2.0 - 1e-9, timeout=20.0)
    assert sim.world.step_count == 20
    assert list(status[-1].frames_published) == [21, 21]  # the initial frame plus one per step


@pytest.mark.slow
def test_lockstep_waits_for_each_controller_answer(ros):
    from geometry_msgs.msg import Twist

    from spatial_memory_ros.ros_common import RELIABLE_QOS

    probe = _probe(ros)
    commands = [probe.create_publisher(Twist, f"/robot{k}/cmd_vel", RELIABLE_QOS) for k in (1, 2)]
    probe.create_subscription(Twist, "/unused", lambda _m: None, RELIABLE_QOS)
    sim = _sim(ros, lockstep=True, lockstep_timeout=30.0, wait_for_controllers=0.5)
    spin_until(ros, lambda: False, timeout=1.5)
    assert sim.world.step_count == 0, "stepped without the controllers' answers"
    commands[0].publish(Twist())
    spin_until(ros, lambda: False, timeout=0.5)
    assert sim.world.step_count == 0, "stepped with one of two answers"
    commands[1].publish(Twist())
    assert spin_until(ros, lambda: sim.world.step_count == 1, timeout=5.0)
    spin_until(ros, lambda: False, timeout=0.5)
    assert sim.world.step_count == 1


def test_ready_topics_parse_counts_and_named_readers():
    from spatial_memory_ros.nodes.sim_world import parse_ready_topics

    assert parse_ready_topics(["", "/r1/bev=2", "/r1/bev=3@/r1/localizer,/r1/explorer"]) == [
        ("/r1/bev", 2, ()), ("/r1/bev", 3, ("/r1/localizer", "/r1/explorer"))]
    for bad in ("/r1/bev", "/r1/bev=x", "/r1/bev=1@localizer"):
        with pytest.raises(ValueError, match="TOPIC=COUNT"):
            parse_ready_topics([bad])


@pytest.mark.slow
def test_sim_waits_for_the_named_reader_not_just_any_reader(ros):
    """A recorder already listening must not let the sim start before the memory node it stands beside."""
    from spatial_memory_ros.msg import BevMap
    from spatial_memory_ros.ros_common import RELIABLE_QOS

    sim = _sim(ros, robots=1, wait_for_controllers=30.0,
               ready_topics=["/robot1/ground_truth/bev=1@/robot1/spatial_memory"])
    recorder = _probe(ros, "recorder")
    recorder.create_subscription(BevMap, "/robot1/ground_truth/bev", lambda _: None, RELIABLE_QOS)
    from geometry_msgs.msg import Twist

    recorder.create_publisher(Twist, "/robot1/cmd_vel", RELIABLE_QOS)  # the controller is up
    spin_until(ros, lambda: False, timeout=2.0)
    assert sim.world.time == 0.0 and sim._wall_start is None
    import rclpy

    memory = rclpy.create_node("spatial_memory", namespace="/robot1", context=ros.context_)
    ros.add_node(memory)
    memory.create_subscription(BevMap, "/robot1/ground_truth/bev", lambda _: None, RELIABLE_QOS)
    assert spin_until(ros, lambda: sim.world.time > 0.0, timeout=15.0)
