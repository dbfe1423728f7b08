"""Tests of the team link (comm/link.py): codec round trips, bit accounting, partner model, policies, security."""
import math

import numpy as np
import pytest

from spatial_memory_ros.comm import link as comm
from spatial_memory_ros.comm.link import (
    DROP_BAD_TAG, DROP_MALFORMED_ENVELOPE, DROP_MALFORMED_PAYLOAD, DROP_OVER_BUDGET, DROP_OVERSIZED, DROP_PADDED,
    DROP_REASONS, DROP_REPLAYED, DROP_TRUNCATED, DROP_UNKNOWN_SENDER, DROP_WINDOW, MAX_PAYLOAD_BYTES, BlockCode,
    CellCode, CommConfig, CommLayout, MalformedPayload, Message, PacketSigner, PoseCode, PredictionModel, PoseAnchor,
    Sighting, SightingCode, SymbolReader, SymbolWriter, TeamComm, TokenBucket, WirePacket, block_bits,
    coarse_states, decode_message, encode_message, framing_bits, load_team_key, pose_bits, raw_cell_bits,
    sighting_bits)
from spatial_memory_ros.types import GridGeometry
from spatial_memory_ros.types import Pose2D

KEY = b"0123456789abcdef-team-key"
TEAM = ["robot1", "robot2", "robot3"]
MAP = GridGeometry(0.25, 60, 60)


@pytest.fixture(scope="module")
def layout() -> CommLayout:
    return CommLayout.for_map(MAP, 0.5)


def random_message(rng: np.random.Generator, layout: CommLayout) -> Message:
    pose = None
    kind = rng.integers(3)
    if kind == 1:
        pose = PoseCode(int(rng.integers(16)), int(rng.integers(4)),
                        delta=(int(rng.integers(-3000, 3000)), int(rng.integers(-5, 6))),
                        reference_back=int(rng.integers(1, 1000)))
    elif kind == 2:
        modules, bits = int(rng.integers(3, layout.grid_modules + 1)), int(rng.choice(layout.phase_bits))
        pose = PoseCode(int(rng.integers(16)), int(rng.integers(4)), modules=modules, phase_bits=bits,
                        phases=tuple(int(v) for v in rng.integers(0, 1 << bits, 2 * modules)))
    blocks = []
    for block in rng.choice(layout.num_blocks, int(rng.integers(0, 8)), replace=False):
        rows, cols = layout.block_shape(int(block))
        states = rng.integers(0, 3, rows * cols) if rng.random() < 0.5 else np.full(rows * cols, rng.integers(3))
        blocks.append(BlockCode(int(block), tuple(int(s) for s in states)))
    sightings = tuple(SightingCode(int(rng.integers(len(layout.class_names))),
                                   int(rng.integers(layout.num_sighting_cells))) for _ in range(rng.integers(0, 4)))
    cells = tuple(CellCode(int(rng.integers(layout.num_cells)), int(rng.integers(1, 3)))
                  for _ in range(rng.integers(0, 6)))
    return Message(pose, sightings, tuple(blocks), cells)


def ideal_bits(message: Message, layout: CommLayout) -> float:
    return (framing_bits(len(message.sightings), len(message.blocks), len(message.cells))
            + (pose_bits(message.pose, layout) if message.pose else 0.0)
            + len(message.sightings) * sighting_bits(layout) + sum(block_bits(b, layout) for b in message.blocks)
            + len(message.cells) * raw_cell_bits(layout))


# ---------------------------------------------------------------------------------------------------- codec


def test_symbol_streams_round_trip_including_extreme_models():
    rng = np.random.default_rng(1)
    for _ in range(200):
        ops = []
        for _ in range(rng.integers(0, 60)):
            kind = rng.integers(5)
            if kind == 0:
                count = int(rng.choice([1, 2, 3, 1000, 65536, 65537, 10 ** 6]))
                ops.append(("uniform", int(rng.integers(count)), count))
            elif kind == 1:
                ops.append(("gamma", int(rng.integers(1, 2 ** 31)), None))
            elif kind == 2:
                ops.append(("signed", int(rng.integers(-10 ** 6, 10 ** 6)), None))
            else:  # a very skewed model: one symbol of weight 1 against 65000
                counts = [1, 65000] if kind == 3 else [30000, 1, 30000]
                ops.append(("counted", int(rng.integers(len(counts))), counts))
        writer = SymbolWriter()
        for op, value, extra in ops:
            getattr(writer, op)(value, extra) if extra is not None else getattr(writer, op)(value)
        data, bits = writer.finish()
        assert len(data) == -(-bits // 8)
        reader = SymbolReader(data, bits)
        for op, value, extra in ops:
            assert (getattr(reader, op)(extra) if extra is not None else getattr(reader, op)()) == value


def test_messages_round_trip_and_cost_at_most_two_bits_over_the_ideal(layout):
    rng = np.random.default_rng(2)
    for _ in range(300):
        message = random_message(rng, layout)
        payload, bits = encode_message(message, layout)
        assert bits <= ideal_bits(message, layout) + 2.0
        assert decode_message(payload, bits, layout) == message


def test_adversarial_contents_round_trip(layout):
    last_cell, last_sight = layout.num_cells - 1, layout.num_sighting_cells - 1
    rows, cols = layout.block_shape(layout.num_blocks - 1)
    checker = tuple((r + c) % 2 + 1 for r in range(rows) for c in range(cols))
    messages = [
        Message(),
        Message(pose=PoseCode(15, 3, delta=(0, 0), reference_back=1)),
        Message(pose=PoseCode(0, 0, delta=(-4096, 4096), reference_back=2 ** 31 - 1)),
        Message(sightings=(SightingCode(len(layout.class_names) - 1, last_sight), SightingCode(0, 0))),
        Message(blocks=tuple(BlockCode(b, (2,) * int(np.prod(layout.block_shape(b))))
                             for b in range(layout.num_blocks))),
        Message(blocks=(BlockCode(layout.num_blocks - 1, checker),)),
        Message(cells=tuple(CellCode(c, 1 + c % 2) for c in range(last_cell - 50, last_cell + 1))),
    ]
    for message in messages:
        assert decode_message(*encode_message(message, layout), layout) == message


def test_empty_message_is_four_bits_and_well_predicted_blocks_cost_under_a_bit_a_cell(layout):
    assert encode_message(Message(), layout)[1] <= 4
    rows, cols = layout.block_shape(0)
    uniform = BlockCode(0, (1,) * (rows * cols))
    assert block_bits(uniform, layout) - math.log2(layout.num_blocks) < 0.5 * rows * cols


def test_content_the_layout_cannot_hold_is_refused(layout):
    with pytest.raises(ValueError):
        encode_message(Message(cells=(CellCode(layout.num_cells, 1),)), layout)
    with pytest.raises(ValueError):
        encode_message(Message(blocks=(BlockCode(0, (1, 2)),)), layout)
    with pytest.raises(ValueError):
        encode_message(Message(pose=PoseCode(0, 0, modules=2, phase_bits=2, phases=(0,) * 4)), layout)


def test_random_payloads_decode_or_raise_malformed_only(layout):
    rng = np.random.default_rng(3)
    for _ in range(500):
        payload = rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes()
        bits = 8 * len(payload)
        try:
            decode_message(payload, bits, layout)
        except MalformedPayload:
            pass


def test_coarse_states_of_a_finer_map(layout):
    occupancy = np.full((60, 60), -1, np.int8)
    occupancy[0:2, 0:2] = 0
    occupancy[0:2, 2:4] = 100
    occupancy[2, 0] = 0
    states = coarse_states(occupancy, layout.geometry).reshape(30, 30)
    assert states[0, 0] == comm.FREE_CELL and states[0, 1] == comm.WALL_CELL and states[1, 0] == comm.FREE_CELL
    assert states[5, 5] == comm.UNKNOWN_CELL
    with pytest.raises(ValueError):
        coarse_states(np.zeros((61, 59), np.int8), layout.geometry)


# ------------------------------------------------------------------------------------------- bit accounting


def test_token_bucket_gains_b_per_step_up_to_its_depth():
    bucket = TokenBucket(4, depth=256)
    bucket.advance(0)
    assert bucket.tokens == 4
    bucket.advance(10)
    assert bucket.tokens == 44 and not bucket.can_spend(45)
    with pytest.raises(ValueError):
        bucket.spend(45)
    bucket.advance(10_000)
    assert bucket.tokens == 256
    with pytest.raises(ValueError):
        TokenBucket(0)
    with pytest.raises(ValueError):
        TokenBucket(2000)


def explored_map(step: int) -> np.ndarray:
    """A map that grows by a few cells per step, with walls, as a robot's would."""
    occupancy = np.full((60, 60), -1, np.int8)
    cells = min(3600, 40 + 12 * step)
    flat = occupancy.reshape(-1)
    flat[:cells] = 0
    flat[:cells][np.arange(cells) % 7 == 0] = 100
    return occupancy


@pytest.mark.parametrize("strategy", ["ours", "broadcast", "quota"])
@pytest.mark.parametrize("bits_per_step", [4, 64])
def test_senders_never_overdraw_the_budget_and_payload_bits_are_exact(layout, strategy, bits_per_step):
    sender = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=bits_per_step, strategy=strategy))
    receiver = TeamComm("robot2", TEAM, KEY, layout, CommConfig(bits_per_step=bits_per_step, strategy=strategy))
    spent, steps = 0, 200
    for step in range(steps):
        tokens_before = min(sender.bucket.depth, sender.bucket.tokens + bits_per_step)
        pose = Pose2D(2.0 + 0.04 * step, 3.0 + 0.02 * step, 0.3)
        sightings = [Sighting("red target", 5.5, 6.5)] if step > 30 else []
        packet = sender.make_packet(step, pose, 0.5, explored_map(step), sightings)
        if packet is None:
            continue
        assert packet.payload_bits <= tokens_before
        assert len(packet.payload) == -(-packet.payload_bits // 8)
        message = decode_message(packet.payload, packet.payload_bits, layout)
        assert encode_message(message, layout) == (packet.payload, packet.payload_bits)
        spent += packet.payload_bits
        assert receiver.receive(packet, step) is not None
    assert spent <= bits_per_step * steps
    assert sender.stats.payload_bits_sent == spent
    assert receiver.stats.payload_bits_received == spent and not receiver.stats.drops
    if strategy == "quota":
        assert sender.stats.packets_sent <= 20


def test_no_communication_sends_nothing(layout):
    silent = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=128, strategy="none"))
    assert all(silent.make_packet(s, Pose2D(1, 1, 0), 0.5, explored_map(s)) is None for s in range(50))


# ------------------------------------------------------------------------------------ partner model, policy


def test_prediction_path_integrates_the_last_motion_and_widens_with_time():
    model = PredictionModel(dt=0.1, motion_tau=1.5, diffusion=0.25)
    anchor = PoseAnchor(2.0, 2.0, 0.0, 0.5, window=10, sd=0.05, sequence=1)
    extent = (0.0, 0.0, 15.0, 15.0)
    x1, y1, sd1 = model.predict(anchor, 20, extent)
    x2, y2, sd2 = model.predict(anchor, 60, extent)
    assert 2.0 < x1 < x2 < 2.0 + 0.5 * 1.5 and y1 == y2 == 2.0
    assert 0.05 < sd1 < sd2
    assert model.predict(anchor, 10, extent)[:2] == (2.0, 2.0)


def test_receiver_tracks_the_sender_and_decodes_exactly_what_the_sender_predicted(layout):
    sender = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=16))
    receiver = TeamComm("robot2", TEAM, KEY, layout, CommConfig(bits_per_step=16))
    rng = np.random.default_rng(4)
    x, y, theta, errors = 3.0, 3.0, 0.0, []
    for step in range(400):
        theta += rng.normal(0, 0.1)
        x = float(np.clip(x + 0.05 * math.cos(theta), 0.5, 14.5))
        y = float(np.clip(y + 0.05 * math.sin(theta), 0.5, 14.5))
        packet = sender.make_packet(step, Pose2D(x, y, theta), 0.5, explored_map(0))
        if packet is not None:
            decoded = receiver.receive(packet, step)
            if decoded.anchor is not None:
                mine = sender._my_anchors[-1][0]
                assert (decoded.anchor.x, decoded.anchor.y) == pytest.approx((mine.x, mine.y), abs=1e-9)
        if step > 50:
            state = receiver.partner_states(step)[0]
            errors.append(math.hypot(state.x - x, state.y - y))
    assert np.mean(errors) < 0.6
    assert sender.stats.payload_bits_sent <= 16 * 400


def test_a_lost_delta_reference_leaves_the_pose_unresolved_until_a_grid_code_arrives(layout):
    sender = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=64))
    receiver = TeamComm("robot2", TEAM, KEY, layout, CommConfig(bits_per_step=64))
    outcomes = []
    for step in range(300):
        packet = sender.make_packet(step, Pose2D(2 + 0.03 * step, 4.0, 0.0), 0.3, explored_map(0))
        if packet is None or (10 <= step < 60):  # everything in between is lost
            continue
        decoded = receiver.receive(packet, step)
        if decoded.message.pose is not None:
            outcomes.append((decoded.message.pose.delta is None, decoded.anchor is not None))
    assert any(not resolved for _, resolved in outcomes)           # a delta whose reference was lost
    assert outcomes[-1][1]                                          # tracking recovered
    assert any(is_grid and resolved for is_grid, resolved in outcomes[1:])


def test_critical_news_goes_out_even_when_the_threshold_holds_everything_else_back(layout):
    config = CommConfig(bits_per_step=4, threshold=1e9)
    sender = TeamComm("robot1", TEAM, KEY, layout, config)
    sender.goal_label = "red target"
    packets = [sender.make_packet(s, Pose2D(3, 3, 0), 0.0, explored_map(s)) for s in range(60)]
    assert all(p is None for p in packets) and sender.bucket.tokens == 240  # held back, not yet full
    receiver = TeamComm("robot2", TEAM, KEY, layout, config)
    for step in range(60, 64):
        packet = sender.make_packet(step, Pose2D(3, 3, 0), 0.0, explored_map(step),
                                    [Sighting("red target", 7.3, 8.1)])
        if packet is not None:
            decoded = receiver.receive(packet, step)
            assert [s.label for s in decoded.sightings] == ["red target"]
            assert decoded.sightings[0].x == pytest.approx(7.3, abs=0.07)
            break
    else:
        pytest.fail("the target sighting was never sent")


def test_full_broadcast_at_a_low_budget_falls_behind_in_arrival_order(layout):
    sender = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=4, strategy="broadcast"))
    receiver = TeamComm("robot2", TEAM, KEY, layout, CommConfig(bits_per_step=4, strategy="broadcast"))
    for step in range(150):
        sightings = [Sighting("red target", 7.3, 8.1)] if step >= 20 else []
        packet = sender.make_packet(step, Pose2D(3, 3, 0), 0.0, explored_map(step), sightings)
        if packet is not None:
            receiver.receive(packet, step)
    assert not receiver.sightings           # the sighting waits behind hundreds of queued cells
    assert len(sender._fifo) > 100


def test_team_map_fills_unknown_cells_only(layout):
    sender = TeamComm("robot1", TEAM, KEY, layout, CommConfig(bits_per_step=256))
    receiver = TeamComm("robot2", TEAM, KEY, layout, CommConfig(bits_per_step=256))
    theirs = np.full((60, 60), -1, np.int8)
    theirs[:8, :8] = 0
    theirs[0, :8] = 100
    for step in range(20):
        packet = sender.make_packet(step, Pose2D(1, 1, 0), 0.0, theirs)
        if packet is not None:
            receiver.receive(packet, step)
    mine = np.full((60, 60), -1, np.int8)
    mine[4, 4] = 100  # my own view wins where I have looked
    team = receiver.team_occupancy(mine, MAP)
    assert team[0, 3] == 100 and team[5, 5] == 0 and team[4, 4] == 100 and team[30, 30] == -1


# ----------------------------------------------------------------------------------------------- security


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
    assert receiver.stats.drops[comm.DROP_IMPERSONATION] == 1


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


def test_team_keys_and_configs_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="at least 16"):
        load_team_key(b"short")
    with pytest.raises(ValueError, match="does not exist"):
        load_team_key(tmp_path / "missing.key")
    key_file = tmp_path / "team.key"
    key_file.write_bytes(bytes(range(32)))
    assert load_team_key(key_file) == bytes(range(32))
    assert load_team_key("hex:" + "ab" * 16) == b"\xab" * 16
    with pytest.raises(ValueError, match="strategy"):
        CommConfig(strategy="shout")
    with pytest.raises(ValueError, match="bits_per_step"):
        CommConfig(bits_per_step=0)
    with pytest.raises(ValueError, match="whole multiple"):
        CommLayout.for_map(MAP, 0.3)
    with pytest.raises(ValueError, match="including this robot"):
        TeamComm("robot7", TEAM, KEY, CommLayout.for_map(MAP))
