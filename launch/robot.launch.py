"""One real robot: ros2 launch spatial_memory_ros robot.launch.py camera:=/camera/image_raw odom:=/odom

Runs the robot's stack (spatial_memory_ros.graph.real_robot_graph) under /<namespace>, with the robot's own
camera, camera_info, odometry and velocity command topics remapped in, in a team (team:=robot1,robot7; default:
this robot alone), publishing map -> odom beside the base's own odom -> base_link. bev_source:=scan (scan:=/scan)
or bev_source:=depth (depth:=..., depth_camera_info:=...) makes the BEV geometrically from a laser or a depth
camera instead of the learned camera predictor (geometric_bev; the sensor's mount in config/geometric_bev.yaml).
bev_checkpoint:=... runs a camera model adapted to this robot (spatial-memory train bev --bag); camera_height:=...
(with camera_pitch:=, camera_forward:=) adapts each image from camera_info and the mount to the model's camera.
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

    graph = real_robot_graph(namespace=arg("namespace"), camera=arg("camera"), camera_info=arg("camera_info"),
                             odom=arg("odom"), cmd_vel=arg("cmd_vel"), team=arg("team"),
                             map_frame=arg("map_frame"), odom_frame=arg("odom_frame"),
                             base_frame=arg("base_frame"), use_sim_time=arg("use_sim_time").lower() == "true",
                             link_bind=arg("link_bind"), link_peers=arg("link_peers"),
                             link_bits_per_second=float(arg("link_bits_per_second")),
                             bev_source=arg("bev_source"), scan=arg("scan"), depth=arg("depth"),
                             depth_camera_info=arg("depth_camera_info"), team_key_file=arg("team_key_file"),
                             bev_checkpoint=arg("bev_checkpoint"),
                             camera_mount=(float(arg("camera_height")), float(arg("camera_pitch")),
                                           float(arg("camera_forward"))) if arg("camera_height") else None)
    return node_actions(graph)


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="robot1", description="the robot's namespace"),
        DeclareLaunchArgument("camera", default_value="/camera/image_raw",
                              description="the robot's rgb8 camera topic (sensor_msgs/Image)"),
        DeclareLaunchArgument("camera_info", default_value="",
                              description="the camera's sensor_msgs/CameraInfo topic (empty: camera_info beside "
                                          "the image topic)"),
        DeclareLaunchArgument("odom", default_value="/odom", description="the robot's odometry (nav_msgs/Odometry)"),
        DeclareLaunchArgument("cmd_vel", default_value="/cmd_vel",
                              description="the base's velocity command topic (geometry_msgs/Twist)"),
        DeclareLaunchArgument("team", default_value="",
                              description="the team's robot ids, comma-separated, this one included (empty: this "
                                          "robot alone)"),
        DeclareLaunchArgument("team_key_file", default_value="",
                              description="the team's key file (spatial-memory keygen PATH; the same on every "
                                          "robot): team_comm refuses to start without it"),
        DeclareLaunchArgument("map_frame", default_value="map", description="the shared fixed frame"),
        DeclareLaunchArgument("odom_frame", default_value="odom",
                              description="the base's odometry frame (used when its odometry header names none)"),
        DeclareLaunchArgument("base_frame", default_value="base_link", description="the robot's body frame"),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock"),
        DeclareLaunchArgument("link_bind", default_value="",
                              description="this robot's IPv4:port on the team's radio; set: the team link sends "
                                          "compact UDP frames instead of /team/packets over DDS"),
        DeclareLaunchArgument("link_peers", default_value="",
                              description="teammates' IPv4:port endpoints, comma-separated, or the radio subnet's "
                                          "broadcast address"),
        DeclareLaunchArgument("link_bits_per_second", default_value="400",
                              description="this robot's share of the radio in bit/s, every header counted"),
        DeclareLaunchArgument("bev_source", default_value="camera",
                              description="what makes the BEV: camera (learned bev_predictor), scan (geometric_bev "
                                          "from a LaserScan) or depth (from a depth image); the sensor's mount: "
                                          "config/geometric_bev.yaml"),
        DeclareLaunchArgument("scan", default_value="/scan", description="the LaserScan topic (bev_source:=scan)"),
        DeclareLaunchArgument("depth", default_value="/camera/depth/image_raw",
                              description="the depth image topic, 32FC1 or 16UC1 (bev_source:=depth)"),
        DeclareLaunchArgument("bev_checkpoint", default_value="",
                              description="the camera BEV model (empty: the shipped bev.pt); e.g. one adapted to "
                                          "this robot's camera by spatial-memory train bev --bag"),
        DeclareLaunchArgument("camera_height", default_value="",
                              description="the camera's height above the floor, m; set: bev_predictor adapts "
                                          "each image to the model's camera from camera_info and the mount"),
        DeclareLaunchArgument("camera_pitch", default_value="0.0",
                              description="the camera's pitch, rad, down positive (with camera_height)"),
        DeclareLaunchArgument("camera_forward", default_value="0.0",
                              description="the camera ahead of the robot's centre, m (with camera_height)"),
        DeclareLaunchArgument("depth_camera_info", default_value="",
                              description="the depth image's CameraInfo (empty: camera_info beside the depth "
                                          "topic)"),
        OpaqueFunction(function=_nodes),
    ])
