"""team_comm with transport:=udp (issue 14): two robots' nodes exchange compact frames over UDP on loopback
instead of /team/packets; a sighting reaches the teammate's memory/merge, comm/stats counts the bytes on the air
(frames + IPv4/UDP headers), and nothing is published on /team/packets."""
from __future__ import annotations

import os
import socket

import pytest
from rclpy.parameter import Parameter

from conftest import spin_until

pytestmark = pytest.mark.ros
TEAM = ["robot1", "robot2"]
TEAM_KEY = "hex:" + os.urandom(32).hex()


def _ports(n):
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def _link(ros, robot: str, bind: str, peer: str):
    from spatial_memory_ros.nodes.team_comm import TeamCommNode

    params = {"team": TEAM, "map_origin_x": 0.0, "map_origin_y": 0.0, "map_width_m": 9.0, "map_height_m": 9.0,
              "bits_per_step": 64, "publish_period": 0.2, "team_key": TEAM_KEY, "transport": "udp",
              "link_bind": bind, "link_peers": [peer], "link_bits_per_second": 2000.0}
    node = TeamCommNode(context=ros.context_, namespace=f"/{robot}",
                        parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    ros.add_node(node)
    return node


def test_a_sighting_crosses_the_udp_link_and_stats_count_the_air(ros):
    import rclpy
    from geometry_msgs.msg import PoseWithCovarianceStamped

    from spatial_memory_ros.conversions import pose_to_msg, seconds_to_time
    from spatial_memory_ros.msg import CommStats, MemoryEntry, MemoryEntryArray, TeamPacket
    from spatial_memory_ros.nodes.team_comm import PACKET_QOS
    from spatial_memory_ros.ros_common import RELIABLE_QOS
    from spatial_memory_ros.types import Pose2D

    a, b = _ports(2)
    sender = _link(ros, "robot1", f"127.0.0.1:{a}", f"127.0.0.1:{b}")
    receiver = _link(ros, "robot2", f"127.0.0.1:{b}", f"127.0.0.1:{a}")
    probe = rclpy.create_node("udp_link_probe", context=ros.context_)
    ros.add_node(probe)
    merged, stats, dds = [], [], []
    probe.create_subscription(MemoryEntryArray, "/robot2/memory/merge", merged.append, RELIABLE_QOS)
    probe.create_subscription(CommStats, "/robot1/comm/stats", stats.append, RELIABLE_QOS)
    probe.create_subscription(TeamPacket, "/team/packets", dds.append, PACKET_QOS)
    for robot, (x, y) in (("robot1", (2.5, 3.5)), ("robot2", (6.5, 6.5))):
        pub = probe.create_publisher(PoseWithCovarianceStamped, f"/{robot}/pose", RELIABLE_QOS)
        assert spin_until(ros, pub.get_subscription_count)
        pub.publish(pose_to_msg(Pose2D(x, y, 0.0), seconds_to_time(0.0), "map", xy_sd=0.1))
    entries = probe.create_publisher(MemoryEntryArray, "/robot1/memory/entries", RELIABLE_QOS)
    assert spin_until(ros, entries.get_subscription_count)
    entries.publish(MemoryEntryArray(entries=[MemoryEntry(x=4.2, y=1.7, location_sd=0.3, label="red target",
                                                          source_robot="robot1")]))
    assert spin_until(ros, lambda: merged, timeout=20.0), "no sighting arrived over UDP"
    entry = merged[0].entries[0]
    assert (entry.label, entry.source_robot) == ("red target", "robot1")
    assert spin_until(ros, lambda: stats and stats[-1].packets_sent > 0, timeout=10.0)
    link = sender.link.stats
    assert link.air_bytes_sent == link.frame_bytes_sent + 28 * link.datagrams_sent
    assert stats[-1].wire_bytes_sent <= link.air_bytes_sent and stats[-1].wire_bytes_sent > 28
    assert receiver.comm.stats.packets_received > 0 and not dds
    receiver_stats = []
    probe.create_subscription(CommStats, "/robot2/comm/stats", receiver_stats.append, RELIABLE_QOS)
    assert spin_until(ros, lambda: receiver_stats, timeout=5.0)
    assert receiver_stats[-1].link_state == "udp: hearing robot1"


def test_the_robot_graph_puts_team_comm_on_the_udp_link_when_asked():
    from spatial_memory_ros.graph import real_robot_graph

    def team_comm(graph):
        return next(spec for spec in graph if spec.executable == "team_comm").parameters

    assert "transport" not in team_comm(real_robot_graph("robot1", team="robot1,robot2"))
    params = team_comm(real_robot_graph("robot1", team="robot1,robot2", link_bind="10.0.0.1:7447",
                                        link_peers="10.0.0.2:7447, 10.0.0.3:7447", link_bits_per_second=300))
    assert params["transport"] == "udp" and params["link_bind"] == "10.0.0.1:7447"
    assert params["link_peers"] == ["10.0.0.2:7447", "10.0.0.3:7447"] and params["link_bits_per_second"] == 300.0


@pytest.mark.parametrize("bad", [{"link_peers": [""]}, {"link_bind": "robot1:7447"}, {"transport": "zenoh"},
                                 {"link_bind": "10.255.255.1:7447"}])  # the last: an address this host lacks
def test_a_link_that_cannot_open_stops_the_node_with_ex_config(ros, bad):
    from spatial_memory_ros.nodes.team_comm import TeamCommNode

    params = {"team": TEAM, "team_key": TEAM_KEY, "transport": "udp", "link_bind": "127.0.0.1:0",
              "link_peers": ["127.0.0.1:9"], **bad}
    with pytest.raises(SystemExit) as stopped:
        TeamCommNode(context=ros.context_, namespace="/robot1",
                     parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    assert stopped.value.code == 78

