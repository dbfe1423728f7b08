"""Tests of the team link's payloads: arithmetic coder and symbol streams (comm/arithmetic.py), message format and
bit costs (comm/codec.py), and the layout teammates agree on (comm/layout.py)."""
import math

import numpy as np
import pytest

from comm_samples import MAP, make_layout
from spatial_memory_ros.comm.arithmetic import MalformedPayload, SymbolReader, SymbolWriter
from spatial_memory_ros.comm.codec import (BlockCode, CellCode, Message, PoseCode, SightingCode, block_bits,
                                           decode_message, encode_message, framing_bits, pose_bits, raw_cell_bits,
                                           sighting_bits)
from spatial_memory_ros.comm.layout import CommLayout


@pytest.fixture(scope="module")
def layout() -> CommLayout:
    return make_layout()


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


def test_the_layout_codes_the_classes_its_caller_names():
    two = CommLayout.for_map(MAP, ["chair", "door"], 0.5)
    assert two.class_names == ("chair", "door")
    assert sighting_bits(two) == pytest.approx(1 + math.log2(two.num_sighting_cells))
    message = Message(sightings=(SightingCode(1, 77),))
    assert decode_message(*encode_message(message, two), two) == message
    with pytest.raises(ValueError):
        encode_message(Message(sightings=(SightingCode(2, 77),)), two)
    for names in ([], ["red", "red"], ["Red"], [""], "red"):
        with pytest.raises(ValueError, match="class_names"):
            CommLayout.for_map(MAP, names, 0.5)
    with pytest.raises(ValueError, match="whole multiple"):
        CommLayout.for_map(MAP, ["red"], 0.3)
