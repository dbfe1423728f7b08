"""One real robot: ros2 launch spatial_memory_ros robot.launch.py camera:=/camera/image_raw odom:=/odom

Runs the robot's stack (spatial_memory_ros.graph.real_robot_graph) under /<namespace>, with the robot's own
camera and odometry topics remapped in.
"""
import os
import sys

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _graph_actions import node_actions  # noqa: E402

from spatial_memory_ros.graph import real_robot_graph  # noqa: E402


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    graph = real_robot_graph(namespace=arg("namespace"), camera=arg("camera"), odom=arg("odom"),
                             use_sim_time=arg("use_sim_time").lower() == "true")
    return node_actions(graph)


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="robot1", description="the robot's namespace"),
        DeclareLaunchArgument("camera", default_value="/camera/image_raw",
                              description="the robot's rgb8 camera topic (sensor_msgs/Image)"),
        DeclareLaunchArgument("odom", default_value="/odom", description="the robot's odometry (nav_msgs/Odometry)"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock"),
        OpaqueFunction(function=_nodes),
    ])
