"""A real robot's wiring (robot.launch.py builds it from graph.real_robot_graph): the team contains the robot's own
namespace, the base's topics (camera, camera_info, odom, cmd_vel) are remapped in, and the localizer's map -> odom
joins the base's own odom -> base_link, with nav2's frame names instead of frames made up in code."""
from __future__ import annotations

import pytest

from conftest import spin_until
from spatial_memory_ros.graph import real_robot_graph


def _by_executable(graph):
    return {spec.executable: spec for spec in graph}


def test_team_defaults_to_the_robot_itself_and_must_contain_it():
    comm = _by_executable(real_robot_graph(namespace="robot7"))["team_comm"]
    assert comm.parameters["team"] == ["robot7"]
    comm = _by_executable(real_robot_graph(namespace="robot7", team="robot1, robot7"))["team_comm"]
    assert comm.parameters["team"] == ["robot1", "robot7"]
    comm = _by_executable(real_robot_graph(namespace="robot7", team_key_file="/keys/team.key"))["team_comm"]
    assert comm.parameters["team_key_file"] == "/keys/team.key"
    with pytest.raises(ValueError, match="does not contain this robot's namespace 'robot7'"):
        real_robot_graph(namespace="robot7", team="robot1,robot2")


def test_base_topics_and_frames_are_arguments():
    graph = real_robot_graph(namespace="robot7", camera="/front/image_raw", odom="/base/odom",
                             cmd_vel="/base/cmd_vel", odom_frame="base_odom", base_frame="base_footprint")
    nodes = _by_executable(graph)
    remaps = dict(nodes["explorer"].remappings)
    assert remaps["cmd_vel"] == "/base/cmd_vel" and remaps["odom"] == "/base/odom"
    assert dict(nodes["bev_predictor"].remappings)["camera/image_raw"] == "/front/image_raw"
    assert dict(nodes["bev_predictor"].remappings)["camera/camera_info"] == "/front/camera_info"
    assert {k: nodes["localizer"].parameters[k] for k in ("map_frame", "odom_frame", "base_frame")} == \
        {"map_frame": "map", "odom_frame": "base_odom", "base_frame": "base_footprint"}
    explorer = _by_executable(real_robot_graph(map_frame="world"))["explorer"]
    assert explorer.parameters["map_frame"] == "world"


@pytest.mark.ros
@pytest.mark.parametrize("header_frame", ["odom", ""], ids=["frame-from-odometry-header", "frame-from-parameter"])
def test_map_odom_base_link_is_connected_with_a_base_publishing_its_own_odom(ros, header_frame):
    """A stand-in base publishes odometry and odom -> base_link as a real base does; the localizer's map -> odom
    must name the same odom frame (the odometry header's, else odom_frame), so base_link reaches map."""
    import rclpy
    from geometry_msgs.msg import TransformStamped
    from nav_msgs.msg import Odometry
    from rclpy.parameter import Parameter
    from tf2_msgs.msg import TFMessage

    from spatial_memory_ros.conversions import bev_to_msg, odometry_to_msg, seconds_to_time
    from spatial_memory_ros.msg import BevMap
    from spatial_memory_ros.nodes.localizer import LocalizerNode
    from spatial_memory_ros.ros_common import RELIABLE_QOS
    from spatial_memory_ros.sim.maze import generate_maze
    from spatial_memory_ros.sim.world import World
    from spatial_memory_ros.types import Pose2D

    odom_frame = "unused_odom" if header_frame else "odom"  # the header's frame wins over the parameter
    localizer = LocalizerNode(context=ros.context_, namespace="/robot7", parameter_overrides=[
        Parameter("map_wait", value=0.1), Parameter("odom_hold", value=0.0),
        Parameter("odom_frame", value=odom_frame)])
    ros.add_node(localizer)
    base = rclpy.create_node("stand_in_base", context=ros.context_)
    ros.add_node(base)
    odom_pub = base.create_publisher(Odometry, "/robot7/odom", RELIABLE_QOS)
    bev_pub = base.create_publisher(BevMap, "/robot7/bev", RELIABLE_QOS)
    tf_pub = base.create_publisher(TFMessage, "/tf", RELIABLE_QOS)
    parents: dict[str, str] = {}

    def on_tf(msg: TFMessage) -> None:
        for transform in msg.transforms:
            parents[transform.child_frame_id] = transform.header.frame_id
    base.create_subscription(TFMessage, "/tf", on_tf, RELIABLE_QOS)
    assert spin_until(ros, lambda: odom_pub.get_subscription_count() and bev_pub.get_subscription_count())

    world = World(generate_maze(9, seed=3), num_robots=1, seed=3)
    for step in range(5):
        stamp = seconds_to_time(0.1 * step)
        odometry = odometry_to_msg(Pose2D(0.1 * step, 0.0, 0.0), (1.0, 0.0), stamp, header_frame, "base_link",
                                   0.05, 0.03)
        odom_pub.publish(odometry)
        base_link = TransformStamped()
        base_link.header.stamp, base_link.header.frame_id, base_link.child_frame_id = stamp, "odom", "base_link"
        base_link.transform.translation.x = 0.1 * step
        base_link.transform.rotation.w = 1.0
        tf_pub.publish(TFMessage(transforms=[base_link]))
        spin_until(ros, lambda: False, timeout=0.02)
        bev_pub.publish(bev_to_msg(world.oracle_bev(0), stamp, "base_link", "robot7"))
        spin_until(ros, lambda: False, timeout=0.05)

    def chain() -> list[str]:
        frames = ["base_link"]
        while frames[-1] in parents and len(frames) < 10:
            frames.append(parents[frames[-1]])
        return frames
    assert spin_until(ros, lambda: chain() == ["base_link", "odom", "map"], timeout=10.0), parents
