"""Shared by the launch files: turn graph.py's NodeSpecs into launch_ros Node actions.

Kept apart from graph.py because launch_ros exists only on a ROS system.
"""
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare
from launch.substitutions import PathJoinSubstitution


def node_actions(graph, output="screen"):
    """launch_ros Node actions for a list of graph.NodeSpec."""
    actions = []
    for spec in graph:
        parameters = []
        if spec.params_file:
            parameters.append(PathJoinSubstitution([FindPackageShare("spatial_memory_ros"), "config",
                                                    spec.params_file]))
        if spec.parameters:
            parameters.append(dict(spec.parameters))
        actions.append(Node(package="spatial_memory_ros", executable=spec.executable, name=spec.name,
                            namespace=spec.namespace or None, parameters=parameters,
                            remappings=list(spec.remappings), output=output))
    return actions
