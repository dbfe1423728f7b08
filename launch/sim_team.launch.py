"""The simulated robot team: ros2 launch spatial_memory_ros sim_team.launch.py robots:=3 seed:=0

Builds the same node graph as `spatial-memory demo` (spatial_memory_ros.graph.sim_team_graph). bev_source:=scan or
bev_source:=depth makes each robot's BEV from the sim's laser scan or depth image (geometric_bev) instead of the
learned camera predictor (camera, the default). With host:=sim or
host:=robotK only that host's part runs (spatial_memory_ros.hosts.split_team_graph: the simulator alone, or one
robot's whole stack with team_comm on the UDP team link), one launch per host, every host with the same arguments:
  ros2 launch spatial_memory_ros sim_team.launch.py robots:=2 host:=robot1 team_key_file:=team.key \
      link_endpoints:=10.0.0.1:7447,10.0.0.2:7447 link_peers:=10.0.0.255
"""
import os
import sys

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _graph_actions import node_actions  # noqa: E402

from spatial_memory_ros.graph import Sources, sim_team_graph  # noqa: E402
from spatial_memory_ros.hosts import host_graph  # noqa: E402


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    sources = Sources(bev="bev", bev_source=arg("bev_source"))
    graph = sim_team_graph(robots=int(arg("robots")), seed=int(arg("seed")), maze_size=int(arg("maze_size")),
                           real_time_factor=float(arg("real_time_factor")), goal_query=arg("goal_query"),
                           bits_per_step=int(arg("bits")), world=arg("world"), sources=sources)
    graph = host_graph(graph, arg("host"), link_endpoints=arg("link_endpoints"), link_peers=arg("link_peers"),
                       link_bits_per_second=float(arg("link_bits_per_second")), team_key_file=arg("team_key_file"),
                       sources=sources)
    return node_actions(graph)


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("robots", default_value="3", description="number of robots (1..16)"),
        DeclareLaunchArgument("seed", default_value="0", description="seed of the maze, starts and noise"),
        DeclareLaunchArgument("maze_size", default_value="15",
                              description="maze side in cells: builtin 9..15, memory_maze 9, 11, 13 or 15"),
        DeclareLaunchArgument("world", default_value="builtin",
                              description="simulated world: builtin (ray-cast maze) or memory_maze (MuJoCo)"),
        DeclareLaunchArgument("real_time_factor", default_value="1.0",
                              description="cap on sim speed over real time (0 = as fast as possible)"),
        DeclareLaunchArgument("goal_query", default_value="",
                              description="text goal every explorer asks its memory for, e.g. 'the red target' "
                                          "(empty: explore only)"),
        DeclareLaunchArgument("bits", default_value="16", description="team link budget, bits per step (1..1024)"),
        DeclareLaunchArgument("bev_source", default_value="camera",
                              description="what makes each robot's BEV: camera (learned bev_predictor), scan "
                                          "(geometric_bev from the sim's LaserScan) or depth (from its depth image)"),
        DeclareLaunchArgument("host", default_value="",
                              description="run only this host's part: sim, or a robot id (robot1 ..); empty: the "
                                          "whole team here, its link on /team/packets over DDS"),
        DeclareLaunchArgument("link_endpoints", default_value="",
                              description="with host: every robot's IPv4:port on the team's radio, comma separated, "
                                          "in the team's order"),
        DeclareLaunchArgument("link_peers", default_value="",
                              description="with host: where frames go, the radio's broadcast address or the "
                                          "endpoints (default: the endpoints)"),
        DeclareLaunchArgument("link_bits_per_second", default_value="400",
                              description="with host: each robot's share of the air, IP and UDP headers counted"),
        DeclareLaunchArgument("team_key_file", default_value="",
                              description="with host: the team's key file (spatial-memory keygen PATH), the same on "
                                          "every host"),
        OpaqueFunction(function=_nodes),
    ])
