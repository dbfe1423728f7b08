"""The demo's observer: a node that records what the evaluation needs from a running team (ground-truth and
estimated poses, odometry, oracle BEVs, maps, link statistics, partner beliefs, every node's drop counters)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunObservation:
    """What the observer has seen of a run."""

    trajectories: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)  # robot -> (t, x, y)
    status: object | None = None
    estimates: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)   # localizer's pose
    odometry: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)    # dead reckoning
    estimate_headings: dict[str, dict[float, float]] = field(default_factory=dict)       # robot -> stamp -> yaw
    oracle_bevs: dict[str, dict[float, object]] = field(default_factory=dict)          # robot -> stamp -> BevMap
    maps: dict[str, object] = field(default_factory=dict)       # robot -> latest nav_msgs/OccupancyGrid
    comm_stats: dict[str, object] = field(default_factory=dict)  # robot -> latest CommStats
    link_states: dict[str, list[str]] = field(default_factory=dict)  # robot -> its link states, each once, in order
    partner_errors: dict[str, list[float]] = field(default_factory=dict)  # robot -> |partner estimate - truth|
    answers: dict[str, dict] = field(default_factory=dict)      # robot -> the answer to the demo's text query
    drops: dict[str, dict[str, int]] = field(default_factory=dict)  # node -> refused inputs and faults by reason

    def record_comm_stats(self, robot: str, msg) -> None:
        """Keep a robot's latest CommStats and note its link state when it changes (the latest alone can miss
        a link that was up: a slow sim stretches the wall-clock gaps between a teammate's frames)."""
        self.comm_stats[robot] = msg
        states = self.link_states.setdefault(robot, [])
        if not states or states[-1] != msg.link_state:
            states.append(msg.link_state)


def make_observer(robots: list[str], observation: RunObservation, nodes: list[str] = ()):
    """A node that records each robot's ground-truth pose and map, the latest /sim/status, and the drop counters
    (``~/dropped_inputs``) of the graph's ``nodes`` (fully qualified names)."""
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from nav_msgs.msg import OccupancyGrid, Odometry
    from rclpy.node import Node

    from spatial_memory_ros.conversions import quaternion_to_yaw, time_to_seconds
    from spatial_memory_ros.msg import BevMap, CommStats, DropCounters, PartnerStateArray, SimStatus
    from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS

    node = Node("demo_observer")
    for robot in robots:
        track = observation.trajectories.setdefault(robot, [])

        def on_pose(msg: PoseWithCovarianceStamped, track=track) -> None:
            track.append((time_to_seconds(msg.header.stamp), msg.pose.pose.position.x, msg.pose.pose.position.y))

        node.create_subscription(PoseWithCovarianceStamped, f"/{robot}/ground_truth/pose", on_pose, RELIABLE_QOS)
        estimates, odometry = observation.estimates.setdefault(robot, []), observation.odometry.setdefault(robot, [])
        node.create_subscription(PoseWithCovarianceStamped, f"/{robot}/pose",
                                 lambda msg, track=estimates: on_pose(msg, track), RELIABLE_QOS)
        headings = observation.estimate_headings.setdefault(robot, {})
        node.create_subscription(PoseWithCovarianceStamped, f"/{robot}/pose",
                                 lambda msg, h=headings: h.__setitem__(time_to_seconds(msg.header.stamp),
                                                                       quaternion_to_yaw(msg.pose.pose.orientation)),
                                 RELIABLE_QOS)
        oracle = observation.oracle_bevs.setdefault(robot, {})
        node.create_subscription(BevMap, f"/{robot}/ground_truth/bev",
                                 lambda msg, o=oracle: o.__setitem__(time_to_seconds(msg.header.stamp), msg),
                                 RELIABLE_QOS)

        def on_odom(msg: Odometry, track=odometry) -> None:
            track.append((time_to_seconds(msg.header.stamp), msg.pose.pose.position.x, msg.pose.pose.position.y))

        node.create_subscription(Odometry, f"/{robot}/odom", on_odom, RELIABLE_QOS)

        def on_map(msg: OccupancyGrid, robot=robot) -> None:
            observation.maps[robot] = msg

        node.create_subscription(OccupancyGrid, f"/{robot}/map", on_map, LATCHED_QOS)
        node.create_subscription(CommStats, f"/{robot}/comm/stats",
                                 lambda msg, r=robot: observation.record_comm_stats(r, msg), RELIABLE_QOS)
        errors = observation.partner_errors.setdefault(robot, [])
        node.create_subscription(PartnerStateArray, f"/{robot}/partners",
                                 lambda msg, e=errors: e.extend(partner_errors(msg, observation)), RELIABLE_QOS)

    def on_status(msg: SimStatus) -> None:
        observation.status = msg

    node.create_subscription(SimStatus, "/sim/status", on_status, LATCHED_QOS)
    for name in nodes:
        node.create_subscription(DropCounters, f"{name}/dropped_inputs",
                                 lambda msg, n=name: observation.drops.__setitem__(n, dict(zip(msg.reasons, msg.counts))),
                                 LATCHED_QOS)
    return node


def partner_errors(msg, observation: RunObservation) -> list[float]:
    """Distance between each partner's estimated position and its latest true position."""
    import math

    errors = []
    for partner in msg.partners:
        track = observation.trajectories.get(partner.robot_id)
        if track:
            _, x, y = track[-1]
            errors.append(math.hypot(partner.pose.pose.position.x - x, partner.pose.pose.position.y - y))
    return errors
