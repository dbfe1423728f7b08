"""What every node of this package shares: QoS profiles, declared parameters, and the input guard.

Nodes stay thin by declaring their parameters with :func:`declare_parameters` (a table of
:class:`Param`) and by routing every refused input through :class:`InputGuard`, which logs one
rate-limited warning per reason and publishes the drop counters.
"""
from __future__ import annotations

import math
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

# Camera images: best effort, keep the newest few (a late frame is worth less than a fresh one).
SENSOR_QOS = qos_profile_sensor_data
# Odometry, BEVs, poses, commands: reliable, with a queue of a few seconds at 10 Hz, so a reader that falls
# behind for a moment (a busy CPU, a replay) catches up instead of losing messages the belief and the memory need.
RELIABLE_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE,
                          history=HistoryPolicy.KEEP_LAST)
# Maps and anything RViz or a late joiner must still get: reliable + transient local ("latched").
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)
# A reader that needs every map in turn (the localizer picks the map of a given time): latched and queued.
MAP_SEQUENCE_QOS = QoSProfile(depth=32, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)


@dataclass(frozen=True)
class Param:
    """One declared parameter: its default, what it means, and (for numbers) its allowed range."""

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    read_only: bool = True


def declare_parameters(node: Node, params: list[Param]) -> dict[str, Any]:
    """Declare every parameter on ``node`` with its description and range; return their values."""
    values = {}
    for param in params:
        descriptor = ParameterDescriptor(description=param.description, read_only=param.read_only)
        if param.low is not None and param.high is not None:
            if isinstance(param.default, bool):
                pass
            elif isinstance(param.default, int):
                descriptor.integer_range = [IntegerRange(from_value=int(param.low), to_value=int(param.high), step=1)]
            elif isinstance(param.default, float):
                descriptor.floating_point_range = [FloatingPointRange(from_value=float(param.low),
                                                                      to_value=float(param.high), step=0.0)]
        node.declare_parameter(param.name, param.default, descriptor)
        values[param.name] = node.get_parameter(param.name).value
    return values


def robot_id_of(node: Node, configured: str = "") -> str:
    """A robot's id: the configured one, else the last part of the node's namespace (/robot2 -> robot2)."""
    return configured or node.get_namespace().strip("/").split("/")[-1] or "robot"


def map_geometry(params: dict[str, Any]):
    """The memory map's GridGeometry from the map_* parameters that spatial_memory and team_comm share."""
    from spatial_memory_ros.types import GridGeometry

    resolution = params["map_resolution"]
    return GridGeometry(resolution, int(round(params["map_width_m"] / resolution)),
                        int(round(params["map_height_m"] / resolution)), params["map_origin_x"],
                        params["map_origin_y"])


def call_with_retries(client, request, wait_until: Callable[[Callable[[], bool], float], bool], timeout: float,
                      attempt_s: float = 3.0):
    """Call a read-only service and return its response, or None if no answer came within ``timeout`` seconds.

    The request is sent again whenever ``attempt_s`` passes without an answer, and the first answer to any of the
    copies is taken (earlier copies stay pending, so a slow server is not starved by its own queue). Why: a ROS 2
    service is a pair of DDS topics, and a request can reach a server that has not yet matched the client's reply
    reader; Fast DDS then drops the reply ("failed to send response (timeout): client will not receive response",
    ros2/ros2 issue 1253, rmw_fastrtps issue 842) and a single call waits forever.
    ``wait_until(predicate, seconds)`` spins or sleeps until the predicate holds or the seconds pass, and returns it.
    """
    pending: list = []
    deadline = time.monotonic() + timeout
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            pending.append(client.call_async(request))
            if wait_until(lambda: any(future.done() for future in pending), min(attempt_s, remaining)):
                return next(future for future in pending if future.done()).result()
        return None
    finally:
        remove = getattr(client, "remove_pending_request", None)
        for future in pending:
            if not future.done():
                if remove is not None:
                    remove(future)
                future.cancel()


FAULT_PREFIX = "fault: "  # drop reasons that are failures of the node's own code, not bad input


class InputGuard:
    """Counts refused inputs by reason, warns at most once per ``warn_period`` per reason, publishes counts."""

    def __init__(self, node: Node, warn_period: float = 5.0) -> None:
        from spatial_memory_ros.msg import DropCounters

        self._node = node
        self._warn_period = warn_period
        self._counts: Counter[str] = Counter()
        self._last_warned: dict[str, float] = {}
        self._msg_type = DropCounters
        self._publisher = node.create_publisher(DropCounters, "~/dropped_inputs", LATCHED_QOS)
        self._timer = node.create_timer(1.0, self.publish)

    @property
    def counts(self) -> dict[str, int]:
        """Refused inputs so far, by reason."""
        return dict(self._counts)

    def reject(self, reason: str, detail: str = "") -> None:
        """Record one refused input; warn (rate-limited) with the reason and what was wrong."""
        self._counts[reason] += 1
        now = time.monotonic()
        if now - self._last_warned.get(reason, -1e9) >= self._warn_period:
            self._last_warned[reason] = now
            total = self._counts[reason]
            suffix = f": {detail}" if detail else ""
            self._node.get_logger().warning(f"dropped input ({reason}){suffix} [{total} so far]")
            self.publish()

    def fault(self, reason: str, error: BaseException) -> None:
        """Record one failure of the node's own code on an input (a bug, not bad input): the first of each reason
        is logged as an error with its traceback, later ones are counted and warned about like rejects. Counted
        as ``fault: <reason>``, so a run's summary can tell its own errors from refused input."""
        reason = FAULT_PREFIX + reason
        if reason not in self._counts:
            detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            self._node.get_logger().error(f"{reason}: {type(error).__name__}: {error}\n{detail.rstrip()}")
        self.reject(reason, f"{type(error).__name__}: {error}")

    def publish(self) -> None:
        """Publish the current counters."""
        msg = self._msg_type()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.node = self._node.get_fully_qualified_name()
        msg.reasons = list(self._counts.keys())
        msg.counts = list(self._counts.values())
        self._publisher.publish(msg)


class PublisherAllowlist:
    """The publishers of one topic that a node takes messages from: those of one named node in the node's own
    namespace, told apart by their DDS GIDs (which every message carries on Kilted). When an unknown GID shows
    up the graph is asked again if its number of publishers changed (a publisher restarted or joined), else at most
    once per ``refresh_period`` seconds, so a flood from unknown GIDs costs one count each. Where messages carry
    no publisher GID (Humble, Jazzy) every publisher is taken: say so where it matters."""

    def __init__(self, node: Node, topic: str, node_name: str, refresh_period: float = 1.0) -> None:
        self._node = node
        self._topic = node.resolve_topic_name(topic)
        self._name = node_name
        self._period = refresh_period
        self._allowed: set[bytes] = set()
        self._refreshed = -math.inf
        self._publishers = -1

    def allows(self, info: dict | None) -> bool:
        """Whether the message whose info this is came from an allowed publisher."""
        gid = (info or {}).get("publisher_gid")
        if not gid:  # Humble (no message info) and Jazzy (info without the publisher's GID): cannot tell
            return True
        key = bytes(gid["data"])
        if key not in self._allowed and (self._node.count_publishers(self._topic) != self._publishers
                                         or time.monotonic() - self._refreshed >= self._period):
            self._refresh()
        return key in self._allowed

    def describe(self) -> str:
        """Who is allowed, for messages."""
        return f"{self._node.get_namespace().rstrip('/')}/{self._name} (on {self._topic})"

    def _refresh(self) -> None:
        namespace = self._node.get_namespace()
        endpoints = self._node.get_publishers_info_by_topic(self._topic)
        self._publishers = len(endpoints)
        self._allowed = {bytes(endpoint.endpoint_gid) for endpoint in endpoints
                         if endpoint.node_name == self._name and endpoint.node_namespace == namespace}
        self._refreshed = time.monotonic()

