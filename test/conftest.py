"""Shared fixtures: an isolated DDS domain per test session, an rclpy context, and waiting helpers."""
from __future__ import annotations

import os
import time
from typing import Callable

import pytest

# A DDS domain of our own, so parallel runs (a demo, another test session) cannot cross-talk, and discovery
# kept on this machine. Set before rclpy is imported anywhere in this process and inherited by children.
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_sessionstart(session) -> None:
    """Start from a clean /dev/shm: Fast DDS files left by killed participants (tests kill processes on purpose)
    have made later participants hang at start-up or crash; see spatial_memory_ros/dds_shm.py."""
    from spatial_memory_ros.dds_shm import remove_stale_fastdds_files

    remove_stale_fastdds_files()


@pytest.fixture
def ros():
    """rclpy initialised for one test; yields an executor to add nodes to; everything torn down after."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.context.Context()
    rclpy.init(args=[], context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.context_ = context
    try:
        yield executor
    finally:
        for node in list(executor.get_nodes()):
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown(context=context)


def spin_until(executor, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Spin ``executor`` until ``predicate()`` holds or ``timeout`` seconds pass; return the predicate."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def messages_carry_publisher_gid() -> bool:
    """Kilted's rclpy (9) hands each message's publisher GID to the callback; Jazzy's (7) and Humble's do not, so
    there a subscriber cannot tell one publisher from another (an outsider from the robot's own team link)."""
    from importlib.metadata import version

    return int(version("rclpy").split(".")[0]) >= 9
