"""Every message and service type of the package goes through real rclpy publishers/subscribers and
clients/servers over DDS, in one process and across two processes, and arrives field for field."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import spin_until
from interface_samples import answer_query, sample_messages, sample_query

pytestmark = pytest.mark.ros
PEER = Path(__file__).with_name("interface_peer.py")


def _subscribe_all(node, received: dict) -> None:
    for name, msg in sample_messages().items():
        node.create_subscription(type(msg), f"/interop/{name}", lambda m, n=name: received.setdefault(n, m), 10)


def test_every_message_type_in_one_process(ros):
    import rclpy

    node = rclpy.create_node("interop_one_process", context=ros.context_)
    ros.add_node(node)
    samples = sample_messages()
    publishers = {name: node.create_publisher(type(msg), f"/interop/{name}", 10) for name, msg in samples.items()}
    received: dict = {}
    _subscribe_all(node, received)
    node.create_timer(0.05, lambda: [publishers[n].publish(m) for n, m in samples.items()])
    assert spin_until(ros, lambda: len(received) == len(samples), timeout=15.0), sorted(set(samples) - set(received))
    for name, msg in samples.items():
        assert received[name] == msg, name


def test_every_message_type_across_processes(ros):
    import rclpy

    peer = subprocess.Popen([sys.executable, str(PEER), "publish", "30"])
    try:
        node = rclpy.create_node("interop_subscriber", context=ros.context_)
        ros.add_node(node)
        received: dict = {}
        _subscribe_all(node, received)
        samples = sample_messages()
        assert spin_until(ros, lambda: len(received) == len(samples), timeout=25.0), \
            sorted(set(samples) - set(received))
        for name, msg in samples.items():
            assert received[name] == msg, name
    finally:
        peer.kill()
        peer.wait()


def _call(ros, client, request, timeout: float = 20.0):
    from spatial_memory_ros.ros_common import call_with_retries

    assert spin_until(ros, lambda: client.service_is_ready(), timeout=timeout), "service never appeared"
    response = call_with_retries(client, request, lambda done, s: spin_until(ros, done, timeout=s), timeout)
    assert response is not None, "no answer"
    return response


def test_query_service_in_one_process(ros):
    import rclpy
    from spatial_memory_ros.srv import QueryMemory

    node = rclpy.create_node("interop_service", context=ros.context_)
    ros.add_node(node)
    node.create_service(QueryMemory, "/interop/query", answer_query)
    client = node.create_client(QueryMemory, "/interop/query")
    request = sample_query()
    assert _call(ros, client, request) == answer_query(request, QueryMemory.Response())


def test_query_service_across_processes(ros):
    import rclpy
    from spatial_memory_ros.srv import QueryMemory

    peer = subprocess.Popen([sys.executable, str(PEER), "serve", "30"])
    try:
        node = rclpy.create_node("interop_client", context=ros.context_)
        ros.add_node(node)
        client = node.create_client(QueryMemory, "/interop/query")
        request = sample_query()
        assert _call(ros, client, request) == answer_query(request, QueryMemory.Response())
    finally:
        peer.kill()
        peer.wait()
