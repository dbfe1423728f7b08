"""explorer: moves one robot without collisions (random walk with wall avoidance, core/explorer.py).

Subscribes  bev      spatial_memory_ros/BevMap (graph.py remaps it to the oracle or predicted BEV)
            odom     nav_msgs/Odometry (its twist tells the walker whether the last command moved the robot:
                     teammates do not show in the BEV, so a bump is noticed only this way)
Publishes   cmd_vel  geometry_msgs/Twist, one command per BEV received (so it keeps pace with the sim)
"""
from __future__ import annotations

import sys

import math

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.node import Node

from spatial_memory_ros.conversions import InvalidMessage, command_to_twist, msg_to_bev
from spatial_memory_ros.core.explorer import ExplorerConfig, RandomWalker
from spatial_memory_ros.msg import BevMap
from spatial_memory_ros.ros_common import RELIABLE_QOS, InputGuard, Param, declare_parameters

PARAMETERS = [
    Param("seed", 0, "seed of the random walk", 0, 2**31 - 1),
    Param("max_linear_speed", 0.6, "forward speed limit of the commands (m/s)", 0.01, 10.0),
    Param("max_angular_speed", 1.5, "yaw rate limit of the commands (rad/s)", 0.01, 20.0),
    Param("control_period", 0.1, "seconds between BEVs (the walker's step; the sim's 1/rate_hz)", 0.01, 10.0),
]


class ExplorerNode(Node):
    """Turns each BEV into a velocity command."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("explorer", **node_kwargs)
        self.params = declare_parameters(self, PARAMETERS)
        p = self.params
        self.walker = RandomWalker(seed=p["seed"], config=ExplorerConfig(
            max_linear_speed=p["max_linear_speed"], max_angular_speed=p["max_angular_speed"], dt=p["control_period"]))
        self.guard = InputGuard(self)
        self._twist: tuple[float, float] | None = None
        self.cmd_pub = self.create_publisher(Twist, "cmd_vel", RELIABLE_QOS)
        self.create_subscription(Odometry, "odom", self._on_odom, RELIABLE_QOS)
        self.create_subscription(BevMap, "bev", self._on_bev, RELIABLE_QOS)
        self.get_logger().info(f"random walk (seed {self.params['seed']}) on {self.resolve_topic_name('bev')}")

    def _on_bev(self, msg: BevMap) -> None:
        try:
            bev = msg_to_bev(msg)
        except InvalidMessage as error:
            self.guard.reject("invalid BEV", str(error))
            return
        linear, angular = self.walker.command(bev, twist=self._twist)
        self.cmd_pub.publish(command_to_twist(linear, angular))

    def _on_odom(self, msg: Odometry) -> None:
        twist = (msg.twist.twist.linear.x, msg.twist.twist.angular.z)
        if not all(math.isfinite(v) for v in twist):
            self.guard.reject("invalid odometry", f"twist {twist} is not finite")
            return
        self._twist = twist


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down (Ctrl-C)."""
    from spatial_memory_ros.nodes import spin_node

    return spin_node(ExplorerNode, sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())
