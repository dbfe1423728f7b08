"""An outsider without the team's key: floods /team/packets with bad-tag packets in robot1's name at a fixed rate
(with current-looking windows and growing sequence numbers, so only the tag gives them away), then prints how
many it published. Run by test/test_team_comm_flood.py in a process of its own, as an attacker would be.

Protocol on stdout/stdin: ``READY`` once the subscribers are matched; then a slow lead-in (one packet every 0.1 s)
until a line ``GO`` arrives on stdin, so that the receivers know this publisher (a source's first packet seen is
where its numbering starts to count losses) and the test can read their counters before the flood; then
``FLOOD_START``, the flood, and ``FLOOD_SENT n`` (packets published from ``FLOOD_START`` on).

    echo GO | python test/flood_attacker.py --rate 2000 --duration 4 --step-period 0.1
"""
from __future__ import annotations

import argparse
import os
import select
import sys
import time

import rclpy

from spatial_memory_ros.msg import TeamPacket
from spatial_memory_ros.nodes.team_comm import PACKET_QOS


def publish(pub, number: int, window: int) -> None:
    """One bad-tag packet in robot1's name."""
    pub.publish(TeamPacket(sender="robot1", sequence=10_000 + number, budget_window=window,
                           payload=list(os.urandom(6)), payload_bits=44, auth_tag=list(os.urandom(8))))


def lead_in(pub, step_period: float, timeout: float = 60.0) -> int:
    """One packet every 0.1 s until ``GO`` arrives on stdin (or ``timeout`` passes); returns how many were sent."""
    sent, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent += 1
        publish(pub, sent, int(round(time.time() / step_period)) % (1 << 32))
        ready, _, _ = select.select([sys.stdin], [], [], 0.1)
        if ready and sys.stdin.readline().strip() == "GO":
            break
    return sent


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
    print("READY", flush=True)
    number = lead_in(pub, args.step_period)
    print("FLOOD_START", flush=True)
    start, sent = time.monotonic(), 0
    while (now := time.monotonic()) < start + args.duration:
        due = int((now - start) * args.rate)
        window = int(round(time.time() / args.step_period)) % (1 << 32)
        while sent < due:
            sent += 1
            publish(pub, number + sent, window)
        time.sleep(0.0005)
    # A few more, slowly: packets lost at the very end of the flood show as a gap in the publisher's numbering only
    # once a later packet arrives, so the receivers can count every one of them.
    for _ in range(5):
        time.sleep(0.2)
        sent += 1
        publish(pub, number + sent, int(round(time.time() / args.step_period)) % (1 << 32))
    print(f"FLOOD_SENT {sent}", flush=True)
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
