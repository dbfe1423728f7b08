"""An outsider without the team's key: floods /team/packets with bad-tag packets in robot1's name at a fixed rate
(with current-looking windows and growing sequence numbers, so only the tag gives them away), then prints how
many it published. Run by test/test_team_comm_flood.py in a process of its own, as an attacker would be.

    python test/flood_attacker.py --rate 2000 --duration 4 --step-period 0.1
"""
from __future__ import annotations

import argparse
import os
import time

import rclpy

from spatial_memory_ros.msg import TeamPacket
from spatial_memory_ros.nodes.team_comm import PACKET_QOS


def publish(pub, number: int, window: int) -> None:
    """One bad-tag packet in robot1's name."""
    pub.publish(TeamPacket(sender="robot1", sequence=10_000 + number, budget_window=window,
                           payload=list(os.urandom(6)), payload_bits=44, auth_tag=list(os.urandom(8))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=2000.0, help="packets per second")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of flood")
    parser.add_argument("--step-period", type=float, default=0.1)
    parser.add_argument("--wait-for", type=int, default=2, help="subscribers to wait for before flooding")
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("outsider")
    pub = node.create_publisher(TeamPacket, "/team/packets", PACKET_QOS)
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() < args.wait_for and time.monotonic() < deadline:
        time.sleep(0.05)
    print("FLOOD_START", flush=True)
    start, sent = time.monotonic(), 0
    while (now := time.monotonic()) < start + args.duration:
        due = int((now - start) * args.rate)
        window = int(round(time.time() / args.step_period)) % (1 << 32)
        while sent < due:
            sent += 1
            publish(pub, sent, window)
        time.sleep(0.0005)
    # A few more, slowly: packets lost at the very end of the flood show as a gap in the publisher's numbering only
    # once a later packet arrives, so the receivers can count every one of them.
    for _ in range(5):
        time.sleep(0.2)
        sent += 1
        publish(pub, sent, int(round(time.time() / args.step_period)) % (1 << 32))
    print(f"FLOOD_SENT {sent}", flush=True)
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
