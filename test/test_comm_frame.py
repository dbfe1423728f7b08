"""Tests of the compact on-air frame (comm/frame.py) and the UDP frame link (comm/transport.py): round trips, bad
frames dropped and counted by the team link's own checks, and the air budget counting every IPv4 + UDP header."""
import socket
import time

import numpy as np
import pytest

from comm_samples import KEY, TEAM, explored_map, make_layout
from spatial_memory_ros.comm.codec import Message, SightingCode, encode_message
from spatial_memory_ros.comm.frame import (IPV4_UDP_HEADER_BYTES, MAX_FRAME_BYTES, MalformedFrame, nearest_window,
                                           pack_frame, record_bytes, unpack_frame, varint)
from spatial_memory_ros.comm.link import CommConfig, TeamComm
from spatial_memory_ros.comm.security import (DROP_BAD_TAG, DROP_MALFORMED_ENVELOPE, DROP_OVERSIZED, DROP_PADDED,
                                              DROP_REPLAYED, DROP_TRUNCATED, DROP_UNKNOWN_SENDER, PacketSigner)
from spatial_memory_ros.comm.transport import FrameLink, LinkBudget, UdpTransport, parse_endpoint
from spatial_memory_ros.types import Pose2D


@pytest.fixture(scope="module")
def layout():
    return make_layout()


def packet(layout, sequence=1, window=70_005, sender="robot2"):
    payload, bits = encode_message(Message(sightings=(SightingCode(0, 1234),)), layout)
    return PacketSigner(KEY).sign(sender, sequence, window, payload, bits)


def receiver(layout):
    return TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=64))


def test_a_frame_round_trips_and_is_accepted(layout):
    sent = [packet(layout, sequence=s, window=70_000 + s) for s in (1, 2, 3)]
    frame = pack_frame(1, sent)
    assert len(frame) == 2 + sum(record_bytes(p) for p in sent)
    got = unpack_frame(frame, TEAM, step=70_010, tag_bytes=8)
    assert got == sent
    comm = receiver(layout)
    assert all(comm.verify(p, 70_010) is not None for p in got)
    assert comm.stats.packets_received == 3


def test_the_window_is_the_one_nearest_the_receivers_step():
    assert nearest_window(70_005 % 65536, 70_000) == 70_005
    assert nearest_window(65_530, 65_540) == 65_530           # across a 16-bit wrap
    assert nearest_window(3, (1 << 32) - 2) == 3              # across the uint32 wrap
    assert varint(0) == b"\x00" and varint(300) == b"\xac\x02"


def test_bad_frames_are_dropped_and_counted_by_the_links_checks(layout):
    comm = receiver(layout)
    good = pack_frame(1, [packet(layout, sequence=7)])
    forged = bytearray(good)
    forged[-1] ^= 0x01                                        # a payload bit flipped: the tag no longer matches
    cases = {
        DROP_TRUNCATED: good[:-1],
        DROP_MALFORMED_ENVELOPE: good[:4],                    # cut inside the record header
        DROP_PADDED: good + b"\x00",
        DROP_OVERSIZED: good + bytes(MAX_FRAME_BYTES),
        DROP_UNKNOWN_SENDER: bytes([good[0], 9]) + good[2:],  # an index nobody in the team holds
        DROP_BAD_TAG: bytes(forged),
    }
    for reason, frame in cases.items():
        for item in unpack_frame(frame, TEAM, step=70_005, tag_bytes=8):
            assert comm.verify(item, 70_005) is None, reason
        assert comm.stats.drops[reason] >= 1, reason
    assert comm.stats.packets_received == 0
    assert [comm.verify(p, 70_005) is not None for p in unpack_frame(good, TEAM, 70_005, 8)] == [True]
    for p in unpack_frame(good, TEAM, 70_005, 8):              # the same frame again: a replay
        assert comm.verify(p, 70_005) is None
    assert comm.stats.drops[DROP_REPLAYED] == 1


def test_random_bytes_never_raise_and_only_untouched_genuine_records_pass(layout):
    comm = receiver(layout)
    rng = np.random.default_rng(3)
    genuine = [packet(layout, sequence=s) for s in (1, 2)]
    good = pack_frame(1, genuine)
    for i in range(2000):
        if i % 2:
            data = rng.integers(0, 256, int(rng.integers(0, 80))).astype(np.uint8).tobytes()
        else:
            data = bytearray(good)
            data[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))
            data = bytes(data[:int(rng.integers(len(data) + 1))])
        items = unpack_frame(data, TEAM, 70_005, 8)
        assert 1 <= len(items) <= 17
        assert all(isinstance(item, MalformedFrame) or item.sender in TEAM or item.sender.startswith("#")
                   for item in items)
        for item in items:
            if comm.verify(item, 70_005) is not None:
                assert item in genuine  # a mutation later in the frame leaves an earlier record intact
    assert comm.stats.packets_received <= 2


def test_pack_refuses_what_is_not_one_senders_well_formed_packets(layout):
    with pytest.raises(ValueError):
        pack_frame(0, [])
    with pytest.raises(ValueError):
        pack_frame(0, [packet(layout), packet(layout, sender="robot3")])
    with pytest.raises(ValueError):
        parse_endpoint("robot2:7447")


def test_the_air_budget_refills_and_counts_bits():
    budget = LinkBudget(400.0, depth_bits=800)
    budget.advance(0.0)
    assert not budget.can_send(1)                              # empty at the start
    budget.advance(5.0)
    assert budget.can_send(800) and not budget.can_send(801)   # full at its depth
    budget.spend(800)
    budget.advance(6.0)
    assert budget.can_send(400) and not budget.can_send(401)
    assert LinkBudget(0).can_send(10 ** 9)


def free_ports(n):
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_three_robots_over_udp_on_loopback_stay_within_their_air_share(layout):
    """Three FrameLinks on loopback at 400 bit/s each for 30 simulated seconds (robots standing still, maps
    growing): every partner heard, and the air bytes (frames + 28 bytes per datagram) within 400 bit/s plus the
    bucket's depth."""
    ports = free_ports(3)
    links = []
    for k, robot in enumerate(TEAM):
        transport = UdpTransport(f"127.0.0.1:{ports[k]}", [f"127.0.0.1:{p}" for j, p in enumerate(ports) if j != k])
        comm = TeamComm(robot, TEAM, KEY, layout, CommConfig(bits_per_step=16))
        links.append(FrameLink(comm, TEAM, transport, link_bits_per_second=400.0))
    try:
        steps, dt = 300, 0.1
        for step in range(1, steps + 1):
            for k, link in enumerate(links):
                pose = Pose2D(-5.0 + 2 * k, -4.0 + k, 0.0)
                link.step(step, step * dt, pose, 0.0, explored_map(step + 30 * k))
            time.sleep(0.0005)
            for link in links:
                link.poll(step, step * dt)
        time.sleep(0.05)
        for link in links:
            link.poll(steps, steps * dt)
        for link in links:
            s = link.stats
            assert s.frames_sent >= 6
            per_datagram = [(s.air_bytes_sent - s.frame_bytes_sent) / s.datagrams_sent]
            assert per_datagram == [IPV4_UDP_HEADER_BYTES]
            assert 8 * s.air_bytes_sent <= 400 * steps * dt
            assert link.budget.tokens >= 0                     # never sent what the air budget did not hold
            assert set(link.stats.last_heard) == set(TEAM) - {link.comm.robot_id}
            assert sum(link.comm.stats.drops.values()) == 0
        received = sum(link.comm.stats.packets_received for link in links)
        assert received >= 0.9 * 2 * sum(link.stats.frames_sent for link in links)
    finally:
        for link in links:
            link.transport.close()


def test_the_team_task_over_a_paced_frame_link_stays_within_its_air_share():
    from spatial_memory_ros.evaluation.team_task import LabelEmbedder, TeamEpisode, TeamTaskConfig

    config = TeamTaskConfig(maze_size=9, max_steps=150, seed=3, link_bits_per_second=400.0, packet_loss=0.2)
    episode = TeamEpisode(config, LabelEmbedder.synthetic())
    result = episode.run()
    assert result.air_bits_per_s is not None and 0 < result.air_bits_per_s <= 400.0
    for robot in episode.robots:
        assert robot.link.stats.frames_sent > 0 and robot.comm.stats.packets_received > 0
        assert 8 * robot.link.stats.air_bytes_sent <= 400.0 * result.steps * 0.1 and robot.link.budget.tokens >= 0
    assert result.drops == 0


def test_a_rebooted_sender_is_accepted_again_and_its_old_frames_stay_refused(layout):
    """Frames of a sender that restarts (a new TeamComm: sequence from 1 again, later windows) are accepted once
    their tag proves the key; a frame recorded before the reboot, replayed after it, is still dropped."""
    receiver = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=64))

    def frames_of(sender, first_step, count):
        out = []
        for step in range(first_step, first_step + count):
            packet = sender.make_packet(step, Pose2D(1.0 + 0.01 * step, 2.0, 0.0), 0.3, explored_map(step))
            if packet is not None:
                out.append((step, pack_frame(1, [packet])))
        return out

    def deliver(frame, step):
        return [receiver.verify(p, step) for p in unpack_frame(frame, TEAM, step, 8)]

    before = frames_of(TeamComm("robot2", TEAM, KEY, layout, CommConfig(bits_per_step=64)), 100, 20)
    assert before and all(all(d is not None for d in deliver(f, s)) for s, f in before)
    after = frames_of(TeamComm("robot2", TEAM, KEY, layout, CommConfig(bits_per_step=64)), 140, 20)
    assert after and all(all(d is not None for d in deliver(f, s)) for s, f in after)
    assert receiver.stats.sequence_restarts == 1                        # seen as a restart, once
    assert deliver(before[-1][1], after[-1][0]) == [None]                  # replayed after the reboot: refused
    assert sum(receiver.stats.drops.values()) == 1


def test_a_frame_flood_is_rate_limited_per_source_before_any_tag_is_checked(layout):
    """Issue 15's flood guard on the UDP link too: 2,000 bad frames a second from an outsider's address are cut
    by its own packet bucket before the HMAC (counted as rate limited), while a teammate's frames still arrive."""
    from spatial_memory_ros.comm.security import DROP_RATE_LIMITED
    from spatial_memory_ros.comm.transport import LoopbackHub

    hub = LoopbackHub(depth=100_000)
    outsider, teammate = hub.endpoint("outsider"), hub.endpoint("robot2")
    link = FrameLink(receiver(layout), TEAM, hub.endpoint("robot1"))
    forged = bytearray(pack_frame(1, [packet(layout, sequence=1)]))
    forged[-1] ^= 0x01
    accepted = 0
    for second in range(3):
        for k in range(10):
            for _ in range(200):
                outsider.send(bytes(forged))
            step = 70_000 + 10 * second + k
            teammate.send(pack_frame(1, [packet(layout, sequence=step - 69_999, window=step)]))
            accepted += len(link.poll(step, now=second + 0.1 * k, limit=10_000))
    drops = link.comm.stats.drops
    assert accepted == 30
    assert drops[DROP_BAD_TAG] <= 20 + 30 * 3  # its burst and rate: the rest never reach the HMAC
    assert drops[DROP_RATE_LIMITED] + drops[DROP_BAD_TAG] == 6_000
