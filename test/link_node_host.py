"""One robot's real team_comm node on its own host (run inside a network namespace by test/test_link_hosts.py):
the node with transport:=udp, and in the same process a stand-in for the rest of the robot that publishes its pose
and, for robot1, one sighting. DDS stays on the host's loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST); only the
team link's frames may cross. Writes a JSON report: the link's figures, the last comm/stats link_state and the
sightings merged from teammates.

    python test/link_node_host.py --robot robot1 --team robot1,robot2,robot3 --bind 10.77.1.1:7447 \
        --peers 10.77.1.255 --key hex:... --duration 15 --out r1.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOCALHOST_ONLY"] = "1"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--robot", "--team", "--bind", "--peers", "--key", "--out"):
        parser.add_argument(name, required=True)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--link-bps", type=float, default=400.0)
    args = parser.parse_args(argv)

    import rclpy
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from spatial_memory_ros.conversions import pose_to_msg, seconds_to_time
    from spatial_memory_ros.msg import CommStats, MemoryEntry, MemoryEntryArray
    from spatial_memory_ros.nodes.team_comm import TeamCommNode
    from spatial_memory_ros.ros_common import RELIABLE_QOS
    from spatial_memory_ros.types import Pose2D

    team = args.team.split(",")
    k = team.index(args.robot)
    rclpy.init(args=[])
    params = {"team": team, "map_origin_x": 0.0, "map_origin_y": 0.0, "map_width_m": 9.0, "map_height_m": 9.0,
              "bits_per_step": 16, "publish_period": 0.5, "team_key": args.key, "transport": "udp",
              "link_bind": args.bind, "link_peers": args.peers.split(","), "link_bits_per_second": args.link_bps}
    node = TeamCommNode(namespace=f"/{args.robot}",
                        parameter_overrides=[Parameter(name, value=value) for name, value in params.items()])
    robot = rclpy.create_node("robot_stand_in", namespace=f"/{args.robot}")
    merged, stats = [], []
    robot.create_subscription(MemoryEntryArray, "memory/merge", merged.append, RELIABLE_QOS)
    robot.create_subscription(CommStats, "comm/stats", stats.append, RELIABLE_QOS)
    pose_pub = robot.create_publisher(PoseWithCovarianceStamped, "pose", RELIABLE_QOS)
    entries_pub = robot.create_publisher(MemoryEntryArray, "memory/entries", RELIABLE_QOS)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    executor.add_node(robot)
    start, told = time.monotonic(), False
    for tick in range(int(args.duration / 0.1) + 1):  # one pose per 0.1 s tick, bounded in count and in time
        now = time.monotonic()
        if now - start >= args.duration:
            break
        deadline = start + 0.1 * (tick + 1)
        x = 1.0 + 2.0 * k + 0.2 * ((now - start) % 5.0)
        pose_pub.publish(pose_to_msg(Pose2D(x, 1.5 + 2.0 * k, 0.0), seconds_to_time(0.0), "map", xy_sd=0.1))
        if args.robot == team[0] and not told and now - start > 2.0:
            entries_pub.publish(MemoryEntryArray(entries=[MemoryEntry(x=4.2, y=1.7, location_sd=0.3,
                                                                      label="red target", source_robot=args.robot)]))
            told = True
        for _ in range(1000):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            executor.spin_once(timeout_sec=left)
    elapsed = time.monotonic() - start
    report = {"robot": args.robot, "elapsed_s": elapsed, "link": node.link.summary(elapsed),
              "link_state": stats[-1].link_state if stats else None,
              "wire_bytes_sent": stats[-1].wire_bytes_sent if stats else None,
              "merged": [(e.label, e.source_robot) for m in merged for e in m.entries]}
    Path(args.out).write_text(json.dumps(report))
    node.link.transport.close()
    executor.shutdown()
    node.destroy_node()
    robot.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
