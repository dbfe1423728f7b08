"""The simulated robot team: ros2 launch spatial_memory_ros sim_team.launch.py robots:=3 seed:=0

Builds the same node graph as `spatial-memory demo` (spatial_memory_ros.graph.sim_team_graph). bev_source:=scan or
bev_source:=depth makes each robot's BEV from the sim's laser scan or depth image (geometric_bev) instead of the
learned camera predictor (camera, the default).
"""
import os
import sys

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _graph_actions import node_actions  # noqa: E402

from spatial_memory_ros.graph import Sources, sim_team_graph  # noqa: E402


def _nodes(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    graph = sim_team_graph(robots=int(arg("robots")), seed=int(arg("seed")), maze_size=int(arg("maze_size")),
                           real_time_factor=float(arg("real_time_factor")), goal_query=arg("goal_query"),
                           bits_per_step=int(arg("bits")), world=arg("world"),
                           sources=Sources(bev="bev", bev_source=arg("bev_source")))
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
        OpaqueFunction(function=_nodes),
    ])
