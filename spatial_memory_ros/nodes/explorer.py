"""explorer: moves one robot without collisions (random walk with wall avoidance, core/explorer.py).

Subscribes  bev      spatial_memory_ros/BevMap (graph.py remaps it to the oracle or predicted BEV)
Publishes   cmd_vel  geometry_msgs/Twist, one command per BEV received (so it keeps pace with the sim)
"""
from __future__ import annotations

import sys

from geometry_msgs.msg import Twist
from rclpy.node import Node

from spatial_memory_ros.conversions import InvalidMessage, command_to_twist, msg_to_bev
from spatial_memory_ros.core.explorer import RandomWalker
from spatial_memory_ros.msg import BevMap
from spatial_memory_ros.ros_common import RELIABLE_QOS, InputGuard, Param, declare_parameters

PARAMETERS = [
    Param("seed", 0, "seed of the random walk", 0, 2**31 - 1),
    Param("max_linear_speed", 0.6, "forward speed limit of the commands (m/s)", 0.0, 10.0),
    Param("max_angular_speed", 1.5, "yaw rate limit of the commands (rad/s)", 0.0, 20.0),
]


class ExplorerNode(Node):
    """Turns each BEV into a velocity command."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("explorer", **node_kwargs)
        self.params = declare_parameters(self, PARAMETERS)
        self.walker = RandomWalker(seed=self.params["seed"])
        self.guard = InputGuard(self)
        self.cmd_pub = self.create_publisher(Twist, "cmd_vel", RELIABLE_QOS)
        self.create_subscription(BevMap, "bev", self._on_bev, RELIABLE_QOS)
        self.get_logger().info(f"random walk (seed {self.params['seed']}) on {self.resolve_topic_name('bev')}")

    def _on_bev(self, msg: BevMap) -> None:
        try:
            bev = msg_to_bev(msg)
        except InvalidMessage as error:
            self.guard.reject("invalid BEV", str(error))
            return
        linear, angular = self.walker.command(bev)
        linear = max(-self.params["max_linear_speed"], min(self.params["max_linear_speed"], linear))
        angular = max(-self.params["max_angular_speed"], min(self.params["max_angular_speed"], angular))
        self.cmd_pub.publish(command_to_twist(linear, angular))


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down (Ctrl-C)."""
    from spatial_memory_ros.nodes import spin_node

    return spin_node(ExplorerNode, sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())
