"""team_comm as a real rclpy node: packets between two robots over DDS carry sightings into the memory, and
forged, replayed, truncated, oversized or unknown-sender packets are dropped, counted and never applied."""
from __future__ import annotations

import os

import pytest
from rclpy.parameter import Parameter

from conftest import spin_until

pytestmark = pytest.mark.ros
TEAM = ["robot1", "robot2"]
TEAM_KEY = "hex:" + os.urandom(32).hex()  # a key per test run, as the simulator makes one per run


def _link(ros, robot: str, **overrides):
    from spatial_memory_ros.nodes.team_comm import TeamCommNode

    params = {"team": TEAM, "map_origin_x": 0.0, "map_origin_y": 0.0, "map_width_m": 9.0, "map_height_m": 9.0,
              "bits_per_step": 64, "publish_period": 0.2, "team_key": TEAM_KEY, **overrides}
    node = TeamCommNode(context=ros.context_, namespace=f"/{robot}",
                        parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    ros.add_node(node)
    return node


def _feed_pose(ros, probe, robot: str, x: float, y: float):
    from geometry_msgs.msg import PoseWithCovarianceStamped

    from spatial_memory_ros.conversions import pose_to_msg, seconds_to_time
    from spatial_memory_ros.types import Pose2D
    from spatial_memory_ros.ros_common import RELIABLE_QOS

    pub = probe.create_publisher(PoseWithCovarianceStamped, f"/{robot}/pose", RELIABLE_QOS)
    assert spin_until(ros, pub.get_subscription_count)
    pub.publish(pose_to_msg(Pose2D(x, y, 0.0), seconds_to_time(0.0), "map", xy_sd=0.1))
    return pub


def test_a_sighting_reaches_the_teammate_memory_merge(ros):
    import rclpy

    from spatial_memory_ros.msg import MemoryEntry, MemoryEntryArray, PartnerStateArray
    from spatial_memory_ros.ros_common import RELIABLE_QOS

    sender, receiver = _link(ros, "robot1"), _link(ros, "robot2")
    probe = rclpy.create_node("link_probe", context=ros.context_)
    ros.add_node(probe)
    merged, partners = [], []
    probe.create_subscription(MemoryEntryArray, "/robot2/memory/merge", merged.append, RELIABLE_QOS)
    probe.create_subscription(PartnerStateArray, "/robot2/partners", partners.append, RELIABLE_QOS)
    _feed_pose(ros, probe, "robot1", 2.5, 3.5)
    _feed_pose(ros, probe, "robot2", 6.5, 6.5)
    entries = probe.create_publisher(MemoryEntryArray, "/robot1/memory/entries", RELIABLE_QOS)
    assert spin_until(ros, entries.get_subscription_count)
    entries.publish(MemoryEntryArray(entries=[MemoryEntry(x=4.2, y=1.7, location_sd=0.3, label="red target",
                                                          source_robot="robot1")]))
    assert spin_until(ros, lambda: merged, timeout=20.0), "no sighting arrived"
    entry = merged[0].entries[0]
    assert (entry.label, entry.source_robot) == ("red target", "robot1") and len(entry.value) == 0
    assert abs(entry.x - 4.2) < 0.3 and abs(entry.y - 1.7) < 0.3
    assert spin_until(ros, lambda: partners and partners[-1].partners, timeout=10.0)
    estimate = partners[-1].partners[0]
    assert estimate.robot_id == "robot1" and abs(estimate.pose.pose.position.x - 2.5) < 1.0
    assert sender.comm.stats.packets_sent > 0 and receiver.comm.stats.packets_received > 0


def test_bad_packets_are_dropped_counted_and_never_applied(ros):
    import rclpy

    from spatial_memory_ros.comm.security import WirePacket
    from spatial_memory_ros.msg import TeamPacket
    from spatial_memory_ros.nodes.team_comm import PACKET_QOS

    receiver = _link(ros, "robot2")
    honest = _link(ros, "robot1")
    probe = rclpy.create_node("attacker", context=ros.context_)
    ros.add_node(probe)
    _feed_pose(ros, probe, "robot1", 2.5, 3.5)
    _feed_pose(ros, probe, "robot2", 6.5, 6.5)
    assert spin_until(ros, lambda: receiver.comm.stats.packets_received >= 2, timeout=20.0)
    pub = probe.create_publisher(TeamPacket, "/team/packets", PACKET_QOS)
    assert spin_until(ros, lambda: pub.get_subscription_count() >= 2)
    step = receiver._step()
    genuine = honest.comm.signer.sign("robot1", honest.comm.sequence + 1000, step, b"\x01\x02", 12)

    def msg(wire: WirePacket, **fields) -> TeamPacket:
        packet = TeamPacket(sender=wire.sender, sequence=wire.sequence, budget_window=wire.budget_window,
                            payload=list(wire.payload), payload_bits=wire.payload_bits, auth_tag=list(wire.auth_tag))
        for name, value in fields.items():
            setattr(packet, name, value)
        return packet

    attacks = [
        msg(genuine, auth_tag=[0] * 8),                                       # forged tag
        msg(genuine, sender="robot9"),                                        # unknown sender
        msg(genuine, payload_bits=4000),                                      # more bits than the payload holds
        msg(genuine, payload=list(os.urandom(1))),                            # truncated
        msg(genuine, payload=list(os.urandom(64))),                           # random bytes, tag mismatch
        msg(genuine, sequence=0),                                             # replayed (old) sequence number
        msg(genuine, payload=bytes(10 * 1024 * 1024), payload_bits=8 * 10 * 1024 * 1024),   # 10 MB
    ]
    received_before = receiver.comm.stats.packets_received
    partners_before = {k: v.packets_received for k, v in receiver.comm.partners.items()}
    drops_before = sum(receiver.comm.stats.drop_counts().values())
    for attack in attacks:
        pub.publish(attack)
    assert spin_until(ros, lambda: sum(receiver.comm.stats.drop_counts().values()) - drops_before >= len(attacks),
                      timeout=30.0), receiver.comm.stats.drop_counts()
    assert "robot9" not in receiver.comm.partners
    honest_packets = receiver.comm.stats.packets_received - received_before
    assert receiver.comm.partners["robot1"].packets_received - partners_before["robot1"] == honest_packets
    steps_then = receiver.steps_taken
    assert spin_until(ros, lambda: receiver.steps_taken > steps_then + 3), "the node stopped"


def test_without_a_team_key_the_node_refuses_to_start_and_says_how_to_make_one(tmp_path):
    """Issue 15c: no default key. The installed executable exits 78 (EX_CONFIG) with one line naming keygen, no
    traceback; with a key file made by keygen (mode 0600) the node starts."""
    import subprocess

    from spatial_memory_ros.cli import main as cli
    from spatial_memory_ros.graph import executable_path

    command = [str(executable_path("team_comm")), "--ros-args", "-r", "__ns:=/robot1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 78, (done.returncode, done.stderr)
    assert "spatial-memory keygen" in done.stderr and "Traceback" not in done.stderr + done.stdout
    key_file = tmp_path / "team.key"
    assert cli(["keygen", str(key_file)]) == 0
    assert oct(key_file.stat().st_mode & 0o777) == "0o600" and len(key_file.read_bytes()) == 32
    assert cli(["keygen", str(key_file)]) == 1  # never overwrites a team's key by accident


def test_a_node_loads_its_key_file(ros, tmp_path):
    from spatial_memory_ros.comm.security import key_file_problem, load_team_key, write_team_key

    key_file = write_team_key(tmp_path / "team.key")
    node = _link(ros, "robot1", team_key="", team_key_file=str(key_file))
    assert node.comm.signer.verify(node.comm.signer.sign("robot1", 1, 1, b"", 0))
    assert key_file_problem(key_file) is None
    key_file.chmod(0o644)
    assert "chmod 600" in key_file_problem(key_file)
    assert load_team_key(key_file) == key_file.read_bytes()
