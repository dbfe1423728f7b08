"""A second process for the cross-process interface tests.

  python interface_peer.py publish SECONDS   publishes every sample message on /interop/<Type> at 20 Hz
  python interface_peer.py serve SECONDS     serves /interop/query (QueryMemory) with answer_query
"""
import sys
import time
from pathlib import Path

import rclpy

sys.path.insert(0, str(Path(__file__).parent))
from interface_samples import answer_query, sample_messages  # noqa: E402

from spatial_memory_ros.srv import QueryMemory  # noqa: E402


def main() -> None:
    mode, seconds = sys.argv[1], float(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("interface_peer")
    if mode == "publish":
        samples = sample_messages()
        publishers = {name: node.create_publisher(type(msg), f"/interop/{name}", 10) for name, msg in samples.items()}
        node.create_timer(0.05, lambda: [publishers[n].publish(m) for n, m in samples.items()])
    else:
        node.create_service(QueryMemory, "/interop/query", answer_query)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
