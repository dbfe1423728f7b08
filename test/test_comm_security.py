"""Tests of the team link's packet security (comm/security.py) and of the receiver's per-sender checks
(comm/receive.py): every kind of bad packet is dropped, counted by reason and never applied."""
import numpy as np
import pytest

from comm_samples import KEY, MAP, TEAM, explored_map, make_layout
from spatial_memory_ros.comm.codec import MAX_PAYLOAD_BYTES, Message, SightingCode, encode_message
from spatial_memory_ros.comm.layout import CommLayout
from spatial_memory_ros.comm.link import CommConfig, TeamComm
from spatial_memory_ros.comm.security import (DROP_BAD_TAG, DROP_IMPERSONATION, DROP_MALFORMED_ENVELOPE,
                                              DROP_MALFORMED_PAYLOAD, DROP_OVER_BUDGET, DROP_OVERSIZED, DROP_PADDED,
                                              DROP_REASONS, DROP_REPLAYED, DROP_SEQUENCE_JUMP, DROP_TRUNCATED,
                                              DROP_UNKNOWN_SENDER,
                                              DROP_WINDOW, PacketSigner, WirePacket, authenticate, load_team_key)
from spatial_memory_ros.types import Pose2D


@pytest.fixture(scope="module")
def layout() -> CommLayout:
    return make_layout()


def signed(sender="robot2", sequence=1, window=5, payload=b"", bits=None, key=KEY) -> WirePacket:
    bits = 8 * len(payload) if bits is None else bits
    return PacketSigner(key).sign(sender, sequence, window, payload, bits)


def valid_packet(layout, sequence=1, window=5) -> WirePacket:
    payload, bits = encode_message(Message(sightings=(SightingCode(0, 1234),)), layout)
    return signed(sequence=sequence, window=window, payload=payload, bits=bits)


def snapshot(receiver: TeamComm):
    partner = receiver.partners["robot2"]
    return (receiver.team_layer.copy(), dict(receiver.sightings), partner.last_sequence, partner.packets_received,
            partner.belief)


def assert_untouched(receiver: TeamComm, before) -> None:
    after = snapshot(receiver)
    assert np.array_equal(before[0], after[0]) and before[1:] == after[1:]


def test_each_kind_of_bad_packet_is_dropped_counted_and_never_applied(layout):
    receiver = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=64))
    good = valid_packet(layout, sequence=7)
    payload, bits = good.payload, good.payload_bits
    before = snapshot(receiver)
    cases = {
        DROP_MALFORMED_ENVELOPE: WirePacket("robot2", -1, 5, payload, bits, good.auth_tag),
        DROP_UNKNOWN_SENDER: signed(sender="robot9", payload=payload, bits=bits),
        DROP_TRUNCATED: WirePacket("robot2", 7, 5, payload[:-1], bits, good.auth_tag),
        DROP_PADDED: signed(sequence=7, payload=payload + b"\x00", bits=bits),
        DROP_BAD_TAG: signed(sequence=7, payload=payload, bits=bits, key=b"another-team-key-0000"),
        DROP_OVERSIZED: WirePacket("robot2", 7, 5, bytes(10 * 1024 * 1024), 8 * 10 * 1024 * 1024, b"\0" * 8),
        DROP_WINDOW: signed(sequence=7, window=10 ** 6, payload=payload, bits=bits),
        DROP_MALFORMED_PAYLOAD: signed(sequence=7, payload=b"\xff" * 40),
    }
    for reason, packet in cases.items():
        assert receiver.receive(packet, step=5) is None, reason
        assert receiver.stats.drops[reason] == 1, reason
        assert_untouched(receiver, before)
    wrong_bits = WirePacket("robot2", 7, 5, payload, 8 * len(payload) + 5, good.auth_tag)
    assert receiver.receive(wrong_bits, 5) is None and receiver.stats.drops[DROP_TRUNCATED] == 2
    assert receiver.receive(good, 5) is not None          # the genuine packet still gets through
    assert receiver.receive(good, 6) is None and receiver.stats.drops[DROP_REPLAYED] == 1
    older = valid_packet(layout, sequence=3, window=5)
    assert receiver.receive(older, 6) is None and receiver.stats.drops[DROP_REPLAYED] == 2
    assert set(receiver.stats.drop_counts()) == set(DROP_REASONS)


def test_a_teammate_overdrawing_its_bucket_is_dropped(layout):
    receiver = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=4))
    depth = receiver.partners["robot2"].ledger.depth
    fat = signed(sequence=1, window=0, payload=b"\x80" + bytes(depth // 8), bits=8 * (depth // 8 + 1))
    assert receiver.receive(fat, 0) is None and receiver.stats.drops[DROP_OVER_BUDGET] == 1


def test_own_echoes_are_ignored_and_a_stranger_using_my_id_is_dropped(layout):
    receiver = TeamComm("robot2", TEAM, KEY, layout, CommConfig(bits_per_step=64))
    echo = receiver.make_packet(0, Pose2D(1, 1, 0), 0.0, explored_map(0))
    assert echo is not None and receiver.receive(echo, 1) is None
    assert receiver.stats.own_packets_ignored == 1 and not receiver.stats.drops
    assert receiver.receive(valid_packet(layout, sequence=99), 5) is None
    assert receiver.stats.drops[DROP_IMPERSONATION] == 1


def test_ten_thousand_fuzzed_packets_are_all_dropped_and_counted(layout):
    from spatial_memory_ros.memory.robot_memory import RobotMemory
    from spatial_memory_ros.evaluation.team_task import LabelEmbedder

    rng = np.random.default_rng(5)
    receiver = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=64))
    memory = RobotMemory(MAP, LabelEmbedder.synthetic(), "robot1")
    genuine = [valid_packet(layout, sequence=s, window=s) for s in range(1, 41)]
    assert receiver.receive(genuine[-1], 40) is not None  # later replays of all 40 are stale
    before = snapshot(receiver)
    for index in range(10_000):
        packet = _fuzzed(rng, genuine, index)
        decoded = receiver.receive(packet, 40)
        assert decoded is None, (index, packet)
    assert sum(receiver.stats.drops.values()) == 10_000
    assert len(memory.memory) == 0
    assert_untouched(receiver, before)


def _fuzzed(rng: np.random.Generator, genuine: list[WirePacket], index: int) -> object:
    base = genuine[int(rng.integers(len(genuine)))]
    kind = index % 10
    payload = bytearray(base.payload)
    if kind == 0:
        return WirePacket(str(rng.choice(TEAM + ["robot9", "", "x" * 100])), int(rng.integers(0, 2 ** 32)),
                          int(rng.integers(0, 2 ** 32)), rng.bytes(int(rng.integers(0, 300))),
                          int(rng.integers(0, 3000)), rng.bytes(8))
    if kind == 1 and payload:
        payload[int(rng.integers(len(payload)))] ^= 1 << int(rng.integers(8))
        return WirePacket(base.sender, base.sequence + 100, base.budget_window, bytes(payload), base.payload_bits,
                          base.auth_tag)
    if kind == 2:
        return WirePacket(base.sender, base.sequence, base.budget_window, base.payload, base.payload_bits,
                          base.auth_tag)  # replay
    if kind == 3:
        return WirePacket(base.sender, base.sequence + 100, base.budget_window, base.payload[:-1],
                          base.payload_bits, base.auth_tag)
    if kind == 4:
        return WirePacket(base.sender, base.sequence + 100, base.budget_window, base.payload,
                          base.payload_bits + int(rng.integers(9, 100)), base.auth_tag)
    if kind == 5:
        tag = bytearray(base.auth_tag)
        tag[int(rng.integers(len(tag)))] ^= 0xFF
        return WirePacket(base.sender, base.sequence + 100, base.budget_window, base.payload, base.payload_bits,
                          bytes(tag))
    if kind == 6:
        return WirePacket("robot3", base.sequence + 100, base.budget_window, base.payload, base.payload_bits,
                          base.auth_tag)  # a teammate's name on someone else's tag
    if kind == 7:
        return WirePacket(base.sender, base.sequence + 100, base.budget_window,
                          bytes(MAX_PAYLOAD_BYTES + 1 + int(rng.integers(1000))), 8, base.auth_tag)
    if kind == 8:
        return object() if rng.random() < 0.5 else WirePacket(base.sender, 1.5, 0, b"", 0, b"")
    return WirePacket(base.sender, base.sequence + 100, base.budget_window, base.payload, base.payload_bits,
                      rng.bytes(int(rng.integers(0, 12))))


def test_authenticate_returns_the_packet_or_the_first_reason_to_drop_it(layout):
    good = valid_packet(layout)
    signer = PacketSigner(KEY)
    assert authenticate(good, signer, TEAM) == (good, None)
    as_lists = WirePacket(good.sender, good.sequence, good.budget_window, list(good.payload), good.payload_bits,
                          list(good.auth_tag))  # rclpy hands over sequences, not bytes
    assert authenticate(as_lists, signer, TEAM) == (good, None)
    assert authenticate(good, signer, ["robot1"]) == (None, DROP_UNKNOWN_SENDER)
    assert authenticate(good, PacketSigner(b"another-team-key-0000"), TEAM) == (None, DROP_BAD_TAG)
    assert authenticate(object(), signer, TEAM) == (None, DROP_MALFORMED_ENVELOPE)


def test_team_keys_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="at least 16"):
        load_team_key(b"short")
    with pytest.raises(ValueError, match="does not exist"):
        load_team_key(tmp_path / "missing.key")
    key_file = tmp_path / "team.key"
    key_file.write_bytes(bytes(range(32)))
    assert load_team_key(key_file) == bytes(range(32))
    assert load_team_key("hex:" + "ab" * 16) == b"\xab" * 16


def _forge(key, sender, sequence, window, layout):
    """A packet signed with the team's (stolen) key: a well-formed sighting message."""
    payload, bits = encode_message(Message(sightings=(SightingCode(0, 77),)), layout)
    return PacketSigner(key).sign(sender, sequence, window, payload, bits)


def test_a_stolen_key_cannot_lock_a_teammate_out_and_a_restarted_sender_is_heard_again(layout):
    """Issue 15, attack 1: packets forged with the team's key, claiming robot1 with sequence 4294967295 and a window
    40 steps ahead, are refused and counted; robot1's real packets keep being applied. Forged packets that do pass
    (a window inside the tolerance) shut it out for at most max_window_skew steps, far under 5 s at 10 steps/s."""
    config = CommConfig(bits_per_step=64)
    sender = TeamComm("robot1", TEAM, KEY, layout, config)
    receiver = TeamComm("robot3", TEAM, KEY, layout, config)
    partner = receiver.partners["robot1"]
    sent_at: list[int] = []
    applied_at: list[int] = []

    def run(steps, sender):
        for step in steps:
            packet = sender.make_packet(step, Pose2D(1 + 0.02 * step, 1, 0), 0.5, explored_map(step))
            for forged in attacks.get(step, ()):
                receiver.receive(forged, step)
            if packet is not None:
                sent_at.append(step)
                if receiver.receive(packet, step) is not None:
                    applied_at.append(step)

    u32 = 2 ** 32 - 1
    attacks = {
        20: [_forge(KEY, "robot1", u32, 60, layout)],                  # the attack: refused (window)
        30: [_forge(KEY, "robot1", u32, 30 + config.max_window_skew, layout)],  # inside the window: refused (jump)
        60: [_forge(KEY, "robot1", 1, 60 + config.max_window_skew, layout)],   # accepted (the key is the team's)
        90: [_forge(KEY, "robot1", partner.last_sequence or 0, 89, layout)],   # a replayed window: refused
    }
    run(range(0, 150), sender)
    drops = receiver.stats.drops
    assert drops[DROP_WINDOW] == 1 and drops[DROP_SEQUENCE_JUMP] >= 1 and drops[DROP_REPLAYED] >= 1
    refused = sorted(set(sent_at) - set(applied_at))
    # the forged window shuts robot1 out up to it, then one packet beyond the forged bound waits for a second one
    assert len(applied_at) > 100 and set(refused) <= set(range(60, 60 + config.max_window_skew + 2)), refused
    assert partner.last_sequence == sender.sequence and partner.last_window == 149
    # robot1 restarts: a new TeamComm, sequence numbers from 1 again, later windows: heard again at once
    restarted = TeamComm("robot1", TEAM, KEY, layout, config)
    before = len(applied_at)
    run(range(150, 170), restarted)
    assert applied_at[before] <= 152 and len(applied_at) - before == len(sent_at) - len(refused) - before >= 8
    assert receiver.stats.sequence_restarts >= 1 and partner.last_sequence == restarted.sequence
    # the old boot's packets stay refused: their windows are behind
    replay = PacketSigner(KEY).sign("robot1", 10 ** 6, 140, b"", 0)
    assert receiver.receive(replay, 170) is None and drops[DROP_REPLAYED] >= 2


def test_tags_under_64_bits_and_long_sender_names_are_refused_not_crashed(layout):
    with pytest.raises(ValueError, match="tag_bytes"):
        PacketSigner(KEY, tag_bytes=4)
    name = "\u20ac" * 64  # 192 UTF-8 bytes; 86 of them overflowed the one-byte length field
    assert len(PacketSigner(KEY).tag(name, 1, 1, 0, b"")) == 8
    wide = WirePacket("robot2", 1, 5, np.zeros(2, np.uint16), 8, np.zeros(8, np.uint8))
    assert authenticate(wide, PacketSigner(KEY), TEAM) == (None, DROP_MALFORMED_ENVELOPE)


def test_the_flood_guard_limits_each_source_apart_and_counts_what_never_arrived():
    from spatial_memory_ros.comm.receive import FloodGuard, FloodLimits

    guard = FloodGuard(FloodLimits(source_rate=10.0, source_burst=5.0, link_rate=1000.0, link_burst=1000.0))
    flood = sum(guard.admit("outsider", 1.0 + i * 0.0005) for i in range(2000))  # 2,000/s for 1 s
    assert flood <= 5 + 10 * 1.0 + 1
    assert all(guard.admit("teammate", 1.0 + i * 0.1) for i in range(10))  # its own bucket: never held up
    assert sum(guard.admit("outsider", 2.0 + i * 0.0005) for i in range(2000)) <= 10 + 1
    assert guard.missed("teammate", 1) == 0 and guard.missed("teammate", 2) == 0 and guard.missed("teammate", 7) == 4
    assert guard.missed("teammate", None) == 0
    tight = FloodGuard(FloodLimits(source_rate=100.0, source_burst=100.0, link_rate=10.0, link_burst=10.0,
                                   max_sources=4))
    admitted = sum(tight.admit(("source", i), 5.0) for i in range(1000))  # many sources at once: the link caps
    assert admitted == 10 and len(tight._sources) == 4
