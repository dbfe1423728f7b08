"""The team message format: what one payload says and its exact arithmetic code (no ROS).

Exact: ``decode_message(*encode_message(m)) == m``. The payload is ONE arithmetic-coded stream (:mod:`.arithmetic`):
* own pose, either as a delta (in ``pose_quantum`` steps, signed exp-Golomb) against the position the receiver
  predicts from an earlier packet (named by how many packets back), or as grid-code phases (localization/grid_code.py:
  3..M modules, 2..4 bits a phase) that the receiver decodes inside a disc around its prediction (or the whole map on
  first contact), plus heading (16 sectors) and speed (4 levels), the last known motion teammates path-integrate;
* target sightings (class, position on a grid 4x finer than the comm grid);
* map blocks (4x4 comm cells: unknown / free / wall) or, for the broadcast baselines, raw cells (index + state).
A block's cells are coded against counts conditioned on the left and upper neighbour states, reset every block, so
each block decodes on its own.

Why this is its own module: it is the one place that fixes the bits on the wire. The ``*_bits`` functions give
each item's ideal code length, which the policy (:mod:`.policy`) packs against the bucket before encoding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from spatial_memory_ros.comm.arithmetic import MalformedPayload, SymbolReader, SymbolWriter, gamma_bits, signed_bits
from spatial_memory_ros.comm.layout import CommLayout

MAX_PAYLOAD_BYTES = 4096  # TeamPacket.MAX_PAYLOAD_BYTES
MAX_PAYLOAD_BITS = 8 * MAX_PAYLOAD_BYTES
MAX_SIGHTINGS = 1024
UNKNOWN_CELL, FREE_CELL, WALL_CELL = 0, 1, 2


# ------------------------------------------------------------------------ block model (context-adaptive, ternary)

_BLOCK_INCREMENT = 6
_BLOCK_BASE_COUNTS = (2, 3, 2)   # unknown, free, wall: free is the commonest state of a block worth sending
_BLOCK_NEIGHBOUR_BONUS = 6       # a state seen next door is likelier
_EDGE = 3                        # no neighbour inside the block


def _initial_block_counts() -> list[list[int]]:
    """Counts per context (left state or edge, up state or edge), 16 contexts."""
    return [[base + _BLOCK_NEIGHBOUR_BONUS * ((state == left) + (state == up))
             for state, base in enumerate(_BLOCK_BASE_COUNTS)] for left in range(4) for up in range(4)]


def _block_contexts(rows: int, cols: int) -> list[tuple[int, int]]:
    """For each cell of a rows x cols block (row-major): index of its left and upper neighbours, -1 outside."""
    return [(k - 1 if k % cols else -1, k - cols if k >= cols else -1) for k in range(rows * cols)]


def _context(states: Sequence[int], left: int, up: int) -> int:
    return 4 * (states[left] if left >= 0 else _EDGE) + (states[up] if up >= 0 else _EDGE)


@lru_cache(maxsize=65536)
def block_cost_bits(states: tuple[int, ...], rows: int, cols: int) -> float:
    """Ideal code length (sum of -log2 p) of a block's states under the adaptive context model."""
    counts = _initial_block_counts()
    bits = 0.0
    for state, (left, up) in zip(states, _block_contexts(rows, cols)):
        model = counts[_context(states, left, up)]
        bits -= math.log2(model[state] / sum(model))
        model[state] += _BLOCK_INCREMENT
    return bits


def _write_block(writer: SymbolWriter, states: Sequence[int], rows: int, cols: int) -> None:
    counts = _initial_block_counts()
    for state, (left, up) in zip(states, _block_contexts(rows, cols)):
        model = counts[_context(states, left, up)]
        writer.counted(state, model)
        model[state] += _BLOCK_INCREMENT


def _read_block(reader: SymbolReader, rows: int, cols: int) -> tuple[int, ...]:
    counts = _initial_block_counts()
    states: list[int] = []
    for left, up in _block_contexts(rows, cols):
        model = counts[_context(states, left, up)]
        state = reader.counted(model)
        model[state] += _BLOCK_INCREMENT
        states.append(state)
    return tuple(states)


# -------------------------------------------------------------------------------------------------- messages


@dataclass(frozen=True)
class PoseCode:
    """A coded pose: heading sector and speed level, plus either a delta or grid-code phases.

    Delta: ``delta`` (dx, dy) in pose quanta against the receiver's prediction from the packet
    ``reference_back`` packets earlier. Grid code: ``modules`` modules, ``phase_bits`` bits a phase, ``phases`` the
    2 x modules quantised phases (module-major).
    """

    heading_index: int
    speed_index: int
    delta: tuple[int, int] | None = None
    reference_back: int = 0
    modules: int = 0
    phase_bits: int = 0
    phases: tuple[int, ...] = ()


@dataclass(frozen=True)
class SightingCode:
    """A target seen: class index and sighting-grid cell."""

    class_index: int
    cell: int


@dataclass(frozen=True)
class BlockCode:
    """A map block: its index and the state (UNKNOWN_CELL/FREE_CELL/WALL_CELL) of each of its cells, row-major."""

    block: int
    states: tuple[int, ...]


@dataclass(frozen=True)
class CellCode:
    """One raw comm cell (broadcast baselines): flat index and FREE_CELL or WALL_CELL."""

    cell: int
    state: int


@dataclass(frozen=True)
class Message:
    """Everything one payload says."""

    pose: PoseCode | None = None
    sightings: tuple[SightingCode, ...] = ()
    blocks: tuple[BlockCode, ...] = ()
    cells: tuple[CellCode, ...] = ()


def encode_message(message: Message, layout: CommLayout) -> tuple[bytes, int]:
    """The payload of a message: (bytes, payload_bits). Raises ValueError for content the layout cannot hold."""
    writer = SymbolWriter()
    writer.bit(message.pose is not None)
    if message.pose is not None:
        _write_pose(writer, message.pose, layout)
    writer.gamma(len(message.sightings) + 1)
    for sighting in message.sightings:
        writer.uniform(sighting.class_index, len(layout.class_names))
        writer.uniform(sighting.cell, layout.num_sighting_cells)
    writer.gamma(len(message.blocks) + 1)
    for block in message.blocks:
        writer.uniform(block.block, layout.num_blocks)
        rows, cols = layout.block_shape(block.block)
        if len(block.states) != rows * cols or not all(s in (0, 1, 2) for s in block.states):
            raise ValueError(f"block {block.block} needs {rows * cols} states in 0..2")
        _write_block(writer, block.states, rows, cols)
    writer.gamma(len(message.cells) + 1)
    for cell in message.cells:
        writer.uniform(cell.cell, layout.num_cells)
        if cell.state not in (FREE_CELL, WALL_CELL):
            raise ValueError(f"a raw cell is FREE_CELL or WALL_CELL, got {cell.state}")
        writer.bit(cell.state - 1)
    return writer.finish()


def decode_message(payload: bytes, payload_bits: int, layout: CommLayout) -> Message:
    """Inverse of :func:`encode_message`; raises MalformedPayload for anything the layout cannot hold.

    An arithmetic decoder turns any bit string into some symbols, so a payload is accepted only if it is the
    canonical code of what it decodes to (re-encoding gives the same bits): garbage, even authenticated garbage
    from a faulty teammate, is refused.
    """
    message = _decode_symbols(payload, payload_bits, layout)
    try:
        canonical = encode_message(message, layout)
    except ValueError:
        raise MalformedPayload("the payload decodes to content the layout cannot hold") from None
    if canonical != (bytes(payload), payload_bits):
        raise MalformedPayload("the payload is not the canonical code of its content")
    return message


def _decode_symbols(payload: bytes, payload_bits: int, layout: CommLayout) -> Message:
    if payload_bits > 8 * len(payload):
        raise MalformedPayload(f"payload_bits {payload_bits} exceed the {len(payload)}-byte payload")
    if payload_bits % 8 and payload[-1] & (0xFF >> (payload_bits % 8)):
        raise MalformedPayload("padding bits after payload_bits are not zero")
    reader = SymbolReader(payload, payload_bits)
    pose = _read_pose(reader, layout) if reader.bit() else None
    sightings = tuple(SightingCode(reader.uniform(len(layout.class_names)), reader.uniform(layout.num_sighting_cells))
                      for _ in range(_read_count(reader, MAX_SIGHTINGS)))
    blocks = []
    for _ in range(_read_count(reader, layout.num_blocks)):
        block = reader.uniform(layout.num_blocks)
        blocks.append(BlockCode(block, _read_block(reader, *layout.block_shape(block))))
    cells = tuple(CellCode(reader.uniform(layout.num_cells), reader.bit() + 1)
                  for _ in range(_read_count(reader, layout.num_cells)))
    return Message(pose, sightings, tuple(blocks), cells)


def _read_count(reader: SymbolReader, limit: int) -> int:
    count = reader.gamma() - 1
    if count > limit:
        raise MalformedPayload(f"a count of {count} items exceeds the layout's {limit}")
    return count


def _write_pose(writer: SymbolWriter, pose: PoseCode, layout: CommLayout) -> None:
    writer.uniform(pose.heading_index, layout.heading_levels)
    writer.uniform(pose.speed_index, len(layout.speed_levels))
    writer.bit(pose.delta is None)
    if pose.delta is not None:
        writer.gamma(pose.reference_back)
        writer.signed(pose.delta[0])
        writer.signed(pose.delta[1])
        return
    if not 3 <= pose.modules <= layout.grid_modules or pose.phase_bits not in layout.phase_bits:
        raise ValueError(f"grid-code pose needs 3..{layout.grid_modules} modules and phase bits in "
                         f"{layout.phase_bits}, got {pose.modules}, {pose.phase_bits}")
    if len(pose.phases) != 2 * pose.modules:
        raise ValueError(f"grid-code pose needs {2 * pose.modules} phases, got {len(pose.phases)}")
    writer.uniform(pose.modules - 3, layout.grid_modules - 2)
    writer.uniform(layout.phase_bits.index(pose.phase_bits), len(layout.phase_bits))
    for phase in pose.phases:
        writer.uniform(phase, 1 << pose.phase_bits)


def _read_pose(reader: SymbolReader, layout: CommLayout) -> PoseCode:
    heading, speed = reader.uniform(layout.heading_levels), reader.uniform(len(layout.speed_levels))
    if not reader.bit():
        back = reader.gamma()
        return PoseCode(heading, speed, delta=(reader.signed(), reader.signed()), reference_back=back)
    modules = reader.uniform(layout.grid_modules - 2) + 3
    bits = layout.phase_bits[reader.uniform(len(layout.phase_bits))]
    phases = tuple(reader.uniform(1 << bits) for _ in range(2 * modules))
    return PoseCode(heading, speed, modules=modules, phase_bits=bits, phases=phases)


def pose_bits(pose: PoseCode, layout: CommLayout) -> float:
    """Ideal code length of a pose section (without the 1-bit presence flag)."""
    bits = math.log2(layout.heading_levels) + math.log2(len(layout.speed_levels)) + 1
    if pose.delta is not None:
        return bits + gamma_bits(pose.reference_back) + signed_bits(pose.delta[0]) + signed_bits(pose.delta[1])
    return (bits + math.log2(layout.grid_modules - 2) + math.log2(len(layout.phase_bits))
            + 2 * pose.modules * pose.phase_bits)


def sighting_bits(layout: CommLayout) -> float:
    """Code length of one sighting."""
    return math.log2(len(layout.class_names)) + math.log2(layout.num_sighting_cells)


def block_bits(block: BlockCode, layout: CommLayout) -> float:
    """Ideal code length of one block, index included."""
    return math.log2(layout.num_blocks) + block_cost_bits(block.states, *layout.block_shape(block.block))


def raw_cell_bits(layout: CommLayout) -> float:
    """Code length of one raw cell."""
    return math.log2(layout.num_cells) + 1


def framing_bits(num_sightings: int, num_blocks: int, num_cells: int) -> int:
    """Bits of the section headers: pose flag and three counts."""
    return 1 + gamma_bits(num_sightings + 1) + gamma_bits(num_blocks + 1) + gamma_bits(num_cells + 1)
