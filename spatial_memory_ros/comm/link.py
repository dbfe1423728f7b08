"""Team communication under a bit budget: codec, partner model, when-to-send policy, baselines, security (no ROS).

Each robot owns a :class:`TeamComm`. Once per step it may emit one :class:`WirePacket` (broadcast to the whole team;
the fields map 1:1 onto msg/TeamPacket.msg: sender, sequence, budget_window, payload, payload_bits, auth_tag) and it
verifies, decodes and applies the packets its teammates sent.

Bit accounting. A token bucket gains ``bits_per_step`` B each step, up to ``bucket_depth`` bits; a packet goes out
only when the bucket holds its whole ``payload_bits``, which count every payload bit, the section headers inside the
payload included. The authentication tag and the envelope (sender, sequence, window, lengths, ROS header) are counted
apart (:func:`envelope_bytes`). Receivers replay each sender's bucket from the budget windows and drop packets that
overdraw it.

Codec (exact: ``decode_message(*encode_message(m)) == m``). The payload is ONE arithmetic-coded stream:
* own pose, either as a delta (in ``pose_quantum`` steps, signed exp-Golomb) against the position the receiver
  predicts from an earlier packet (named by how many packets back), or as grid-code phases (localization/grid_code.py:
  3..M modules, 2..4 bits a phase) that the receiver decodes inside a disc around its prediction (or the whole map on
  first contact), plus heading (16 sectors) and speed (4 levels), the last known motion teammates path-integrate;
* target sightings (class, position on a grid 4x finer than the comm grid);
* map blocks (4x4 comm cells: unknown / free / wall) or, for the broadcast baselines, raw cells (index + state).
The coder is an integer arithmetic coder (32-bit Witten-Neal-Cleary with an optimal one-bit flush, trailing zeros
trimmed because the decoder pads with zeros) driven by context-adaptive models: a block's cells are coded against
counts conditioned on the left and upper neighbour states, reset every block, so each block decodes on its own.
Why arithmetic coding and not run-length + Elias-gamma: packets are short (tens to hundreds of bits) and most cells
are predictable from their neighbours (well under one bit each), which a fractional-bit coder captures and a
prefix code cannot (a prefix code spends at least one bit per run or symbol); adaptive counts need no table in the
packet, and the ideal code length (sum of -log2 p) is known before encoding, within 2 bits, which lets the sender
pack items against the bucket exactly. Fixed-size fields (indices, phases, counts) go through the same stream as
uniform symbols, costing exactly their log2.

Partner model ("social place cells"). For each teammate: what it told me (its pose anchors by sequence number, its
last known motion, packets, a loss-rate estimate from sequence gaps) and what I told it (the probability it holds my
current state of each comm cell and of each sighting, raised by each send by the delivery probability, and by what
it saw itself near its reported track). Its position between packets is a Gaussian path-integrated from its last
known motion (speed decaying with time constant ``motion_tau``) whose variance grows by ``diffusion`` m^2/s.

Policy ("ours"). Candidate items are valued by the expected error they remove in the teammates' predictions, summed
over the teammates that are still heard: a cell a teammate probably lacks is worth 1, a sighting 30 (300 for the
team goal, which is critical news and always goes), the pose ``pose_weight`` x (squared prediction error + variance).
Items are packed greedily by value per bit into what the bucket holds; the packet goes only when its value per bit
reaches ``threshold`` x (1 - bucket fill), so bits are held back until an update is worth its cost and are not
wasted once the bucket is full. Baselines on the same accounting: "none"; "broadcast" (each step's new own cells and
sightings appended to a FIFO, sent raw after an absolute pose, truncated to what the bucket holds); "quota"
(broadcast limited to ``quota_rounds`` = 20 packets, SSM-PC's quota).

Security. Each packet carries sender id, a strictly increasing sequence number and an HMAC-SHA256 tag truncated to
``tag_bytes`` under a per-team key over (sender, sequence, budget_window, payload_bits, payload). Malformed envelopes,
oversized, truncated or padded payloads, unknown senders, bad tags, replayed or reordered sequences, windows out of
range, overdrawn budgets and undecodable payloads are dropped and counted by reason (:data:`DROP_REASONS`), never
applied; cheap checks come before the HMAC so a 10 MB payload is refused without hashing it.
"""
from __future__ import annotations

import array
import hashlib
import hmac
import math
import struct
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from spatial_memory_ros.localization.grid_code import GridCode
from spatial_memory_ros.types import GridGeometry
from spatial_memory_ros.sim.maze import CLASS_NAMES
from spatial_memory_ros.types import Pose2D

MAX_PAYLOAD_BYTES = 4096  # TeamPacket.MAX_PAYLOAD_BYTES
MAX_PAYLOAD_BITS = 8 * MAX_PAYLOAD_BYTES
MIN_BITS_PER_STEP, MAX_BITS_PER_STEP = 1, 1024
UINT32_MAX = (1 << 32) - 1
MAX_SENDER_CHARS = 64
MAX_SIGHTINGS = 1024
SAME_TARGET_M = 0.75
MIN_PACKET_BITS = 12  # framing plus the cheapest item: below this nothing useful fits
GRID_POSE_MIN_BITS = 22  # 3 modules x 2 phases x 2 bits plus heading, speed and the mode symbols
STRATEGIES = ("ours", "broadcast", "quota", "none")
UNKNOWN_CELL, FREE_CELL, WALL_CELL = 0, 1, 2
TARGET_SUFFIX = " target"

DROP_MALFORMED_ENVELOPE = "malformed envelope"
DROP_OVERSIZED = "oversized payload"
DROP_UNKNOWN_SENDER = "unknown sender"
DROP_TRUNCATED = "truncated payload (payload_bits larger than the payload)"
DROP_PADDED = "payload longer than payload_bits"
DROP_BAD_TAG = "bad authentication tag"
DROP_REPLAYED = "replayed or reordered sequence"
DROP_WINDOW = "budget window out of range"
DROP_OVER_BUDGET = "over the bit budget"
DROP_MALFORMED_PAYLOAD = "malformed payload"
DROP_IMPERSONATION = "my own id on a packet I did not send"
DROP_REASONS = (DROP_MALFORMED_ENVELOPE, DROP_OVERSIZED, DROP_UNKNOWN_SENDER, DROP_TRUNCATED, DROP_PADDED,
                DROP_BAD_TAG, DROP_REPLAYED, DROP_WINDOW, DROP_OVER_BUDGET, DROP_MALFORMED_PAYLOAD,
                DROP_IMPERSONATION)

# Canonical patch features (free, wall, object, range fractions) of a shared sighting: the packet carries the label
# and place, not the 388 numbers of a memory value; the receiver rebuilds the value from the label's embedding.
SHARED_SIGHTING_FEATURES = (0.5, 0.0, 0.5, 0.5)


class MalformedPayload(ValueError):
    """A payload that does not decode to a valid message under the team's layout."""


# ------------------------------------------------------------------------------------------- arithmetic coder

_FULL = (1 << 32) - 1
_HALF = 1 << 31
_QUARTER = 1 << 30
_MAX_TOTAL = 1 << 16
_MAX_GAMMA_ZEROS = 31
_UNIFORM_CHUNK = 1 << 16


class ArithmeticEncoder:
    """Integer arithmetic encoder (32-bit, Witten-Neal-Cleary), output MSB first."""

    def __init__(self) -> None:
        self._low, self._high, self._pending = 0, _FULL, 0
        self._bits: list[int] = []

    def encode(self, cum_low: int, cum_high: int, total: int) -> None:
        """Narrow to the symbol whose cumulative counts are [cum_low, cum_high) out of ``total`` (<= 2^16)."""
        span = self._high - self._low + 1
        self._high = self._low + span * cum_high // total - 1
        self._low = self._low + span * cum_low // total
        while True:
            if self._high < _HALF:
                self._emit(0)
            elif self._low >= _HALF:
                self._emit(1)
                self._low -= _HALF
                self._high -= _HALF
            elif self._low >= _QUARTER and self._high < 3 * _QUARTER:
                self._pending += 1
                self._low -= _QUARTER
                self._high -= _QUARTER
            else:
                break
            self._low <<= 1
            self._high = (self._high << 1) | 1

    def _emit(self, bit: int) -> None:
        self._bits.append(bit)
        if self._pending:
            self._bits.extend([1 - bit] * self._pending)
            self._pending = 0

    def finish(self) -> tuple[bytes, int]:
        """The code as (bytes, exact bit count). The decoder pads with zeros, so trailing zeros are dropped and one
        flush bit suffices (after normalisation low < 1/2 <= high, so '1' then zeros lies in the interval)."""
        if self._low != 0 or self._pending:
            self._emit(1)
        bits = self._bits
        while bits and bits[-1] == 0:
            bits.pop()
        return bits_to_bytes(bits), len(bits)


class ArithmeticDecoder:
    """Decoder matching :class:`ArithmeticEncoder`; reads ``num_bits`` bits of ``data`` and zeros past them."""

    def __init__(self, data: bytes, num_bits: int) -> None:
        self._data, self._num_bits, self._position = data, num_bits, 0
        self._low, self._high, self._value = 0, _FULL, 0
        for _ in range(32):
            self._value = (self._value << 1) | self._next_bit()

    def _next_bit(self) -> int:
        position = self._position
        self._position += 1
        if position >= self._num_bits:
            return 0
        return (self._data[position >> 3] >> (7 - (position & 7))) & 1

    def target(self, total: int) -> int:
        """Where the code value falls in [0, total): pick the symbol whose [cum_low, cum_high) holds it."""
        span = self._high - self._low + 1
        return ((self._value - self._low + 1) * total - 1) // span

    def consume(self, cum_low: int, cum_high: int, total: int) -> None:
        """Narrow to the decoded symbol, as the encoder did."""
        span = self._high - self._low + 1
        self._high = self._low + span * cum_high // total - 1
        self._low = self._low + span * cum_low // total
        while True:
            if self._high < _HALF:
                pass
            elif self._low >= _HALF:
                self._low -= _HALF
                self._high -= _HALF
                self._value -= _HALF
            elif self._low >= _QUARTER and self._high < 3 * _QUARTER:
                self._low -= _QUARTER
                self._high -= _QUARTER
                self._value -= _QUARTER
            else:
                break
            self._low <<= 1
            self._high = (self._high << 1) | 1
            self._value = (self._value << 1) | self._next_bit()


def bits_to_bytes(bits: Sequence[int]) -> bytes:
    """Pack bits MSB first, zero-padding the last byte."""
    if not bits:
        return b""
    padded = np.zeros(-(-len(bits) // 8) * 8, np.uint8)
    padded[:len(bits)] = bits
    return np.packbits(padded).tobytes()


class SymbolWriter:
    """Typed symbols into an arithmetic code."""

    def __init__(self) -> None:
        self.coder = ArithmeticEncoder()

    def uniform(self, value: int, count: int) -> None:
        """``value`` in [0, count), equiprobable (log2(count) bits); counts above 2^16 go in 16-bit chunks."""
        if not 0 <= value < count:
            raise ValueError(f"value {value} outside [0, {count})")
        if count > _UNIFORM_CHUNK:
            high, high_count = value // _UNIFORM_CHUNK, -(-count // _UNIFORM_CHUNK)
            self.uniform(high, high_count)
            self.uniform(value % _UNIFORM_CHUNK, _low_chunk_count(high, high_count, count))
            return
        if count > 1:
            self.coder.encode(value, value + 1, count)

    def bit(self, value: int) -> None:
        """One equiprobable bit."""
        self.uniform(int(value), 2)

    def gamma(self, value: int) -> None:
        """Elias gamma of ``value`` >= 1 as equiprobable bits: 2 floor(log2 value) + 1 bits."""
        if value < 1:
            raise ValueError(f"gamma codes integers >= 1, got {value}")
        width = value.bit_length()
        for _ in range(width - 1):
            self.bit(0)
        for shift in range(width - 1, -1, -1):
            self.bit((value >> shift) & 1)

    def signed(self, value: int) -> None:
        """A signed integer by zigzag then gamma (0 costs 1 bit, +-1 3 bits, +-2..3 5 bits ...)."""
        self.gamma(_zigzag(value) + 1)

    def counted(self, symbol: int, counts: Sequence[int]) -> None:
        """A symbol against integer counts (an adaptive model's current state)."""
        cum_low = sum(counts[:symbol])
        self.coder.encode(cum_low, cum_low + counts[symbol], sum(counts))

    def finish(self) -> tuple[bytes, int]:
        """(payload bytes, payload_bits)."""
        return self.coder.finish()


class SymbolReader:
    """Typed symbols out of an arithmetic code; every read is range-checked."""

    def __init__(self, data: bytes, num_bits: int) -> None:
        self.coder = ArithmeticDecoder(data, num_bits)

    def uniform(self, count: int) -> int:
        """Inverse of :meth:`SymbolWriter.uniform`."""
        if count > _UNIFORM_CHUNK:
            high_count = -(-count // _UNIFORM_CHUNK)
            high = self.uniform(high_count)
            return high * _UNIFORM_CHUNK + self.uniform(_low_chunk_count(high, high_count, count))
        if count <= 1:
            return 0
        value = self.coder.target(count)
        if not 0 <= value < count:
            raise MalformedPayload("arithmetic code out of range")
        self.coder.consume(value, value + 1, count)
        return value

    def bit(self) -> int:
        """One equiprobable bit."""
        return self.uniform(2)

    def gamma(self) -> int:
        """Inverse of :meth:`SymbolWriter.gamma`."""
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > _MAX_GAMMA_ZEROS:
                raise MalformedPayload("an integer field is longer than 32 bits")
        value = 1
        for _ in range(zeros):
            value = (value << 1) | self.bit()
        return value

    def signed(self) -> int:
        """Inverse of :meth:`SymbolWriter.signed`."""
        return _unzigzag(self.gamma() - 1)

    def counted(self, counts: Sequence[int]) -> int:
        """Inverse of :meth:`SymbolWriter.counted`."""
        total = sum(counts)
        target = self.coder.target(total)
        cum = 0
        for symbol, count in enumerate(counts):
            if target < cum + count:
                self.coder.consume(cum, cum + count, total)
                return symbol
            cum += count
        raise MalformedPayload("arithmetic code out of range")


def _low_chunk_count(high: int, high_count: int, count: int) -> int:
    """How many values the low 16-bit chunk can take under a given high chunk (the last one is short)."""
    return _UNIFORM_CHUNK if high < high_count - 1 else count - (high_count - 1) * _UNIFORM_CHUNK


def _zigzag(value: int) -> int:
    return 2 * value if value >= 0 else -2 * value - 1


def _unzigzag(value: int) -> int:
    return value // 2 if value % 2 == 0 else -(value + 1) // 2


def gamma_bits(value: int) -> int:
    """Length of the Elias gamma code of ``value`` >= 1."""
    return 2 * (int(value).bit_length() - 1) + 1


def signed_bits(value: int) -> int:
    """Length of :meth:`SymbolWriter.signed`'s code."""
    return gamma_bits(_zigzag(int(value)) + 1)


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


# ----------------------------------------------------------------------------------------- layout and messages


@dataclass(frozen=True)
class CommLayout:
    """What every teammate must agree on to read a payload: the comm grid, blocks, pose and sighting resolution.

    ``geometry`` is the comm grid (map frame, usually 2x coarser than the robots' maps); ``block_size`` comm cells
    a block side; sightings are placed on a grid ``sighting_subdivision`` times finer; ``grid_modules`` the largest
    number of grid-code modules, ``phase_bits`` the allowed bits per phase.
    """

    geometry: GridGeometry
    block_size: int = 4
    sighting_subdivision: int = 4
    class_names: tuple[str, ...] = CLASS_NAMES
    grid_modules: int = 5
    phase_bits: tuple[int, ...] = (2, 3, 4)
    pose_quantum: float = 0.125
    heading_levels: int = 16
    speed_levels: tuple[float, ...] = (0.0, 0.27, 0.53, 0.8)

    def __post_init__(self) -> None:
        if not 1 <= self.block_size <= 16:
            raise ValueError(f"block_size must be 1..16 comm cells, got {self.block_size}")
        if not 1 <= self.sighting_subdivision <= 16:
            raise ValueError(f"sighting_subdivision must be 1..16, got {self.sighting_subdivision}")
        if not 1 <= len(self.class_names) <= 256:
            raise ValueError("class_names must name 1..256 classes")
        if not 3 <= self.grid_modules <= 8 or not self.phase_bits or not all(1 <= b <= 8 for b in self.phase_bits):
            raise ValueError("grid_modules must be 3..8 and phase_bits a non-empty tuple of 1..8")
        if not (math.isfinite(self.pose_quantum) and self.pose_quantum > 0):
            raise ValueError(f"pose_quantum must be > 0 metres, got {self.pose_quantum}")
        if not 2 <= self.heading_levels <= 256 or not 1 <= len(self.speed_levels) <= 16:
            raise ValueError("heading_levels must be 2..256 and speed_levels hold 1..16 speeds")

    @classmethod
    def for_map(cls, map_geometry: GridGeometry, comm_resolution: float = 0.5, **kwargs) -> CommLayout:
        """The comm grid over a robot map: ``comm_resolution`` must be a whole multiple of the map's resolution."""
        return cls(geometry=coarse_geometry(map_geometry, comm_resolution), **kwargs)

    @property
    def num_cells(self) -> int:
        """Cells of the comm grid."""
        return self.geometry.width * self.geometry.height

    @property
    def blocks_across(self) -> tuple[int, int]:
        """(block rows, block cols)."""
        size = self.block_size
        return -(-self.geometry.height // size), -(-self.geometry.width // size)

    @property
    def num_blocks(self) -> int:
        """Blocks covering the comm grid."""
        rows, cols = self.blocks_across
        return rows * cols

    @property
    def num_sighting_cells(self) -> int:
        """Cells of the sighting grid."""
        return self.num_cells * self.sighting_subdivision ** 2

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the comm grid, metres."""
        g = self.geometry
        return g.origin_x, g.origin_y, g.origin_x + g.width * g.resolution, g.origin_y + g.height * g.resolution

    def block_shape(self, block: int) -> tuple[int, int]:
        """(rows, cols) of a block inside the grid (edge blocks are cut)."""
        block_row, block_col = divmod(block, self.blocks_across[1])
        size, g = self.block_size, self.geometry
        return min(size, g.height - block_row * size), min(size, g.width - block_col * size)

    def block_cells(self, block: int) -> np.ndarray:
        """Flat comm-cell indices of a block, row-major."""
        return _block_cell_table(self)[block]

    def grid_code(self, modules: int) -> GridCode:
        """The grid code of the first ``modules`` modules (origin at the grid's corner)."""
        return _grid_code(modules, self.geometry.origin_x, self.geometry.origin_y)

    def sighting_cell(self, x: float, y: float) -> int:
        """Index of the sighting-grid cell holding (x, y) (clamped to the grid)."""
        g, k = self.geometry, self.sighting_subdivision
        res = g.resolution / k
        col = min(max(math.floor((x - g.origin_x) / res), 0), g.width * k - 1)
        row = min(max(math.floor((y - g.origin_y) / res), 0), g.height * k - 1)
        return row * g.width * k + col

    def sighting_centre(self, cell: int) -> tuple[float, float]:
        """Map-frame centre of a sighting-grid cell."""
        g, k = self.geometry, self.sighting_subdivision
        res = g.resolution / k
        row, col = divmod(int(cell), g.width * k)
        return g.origin_x + (col + 0.5) * res, g.origin_y + (row + 0.5) * res

    def heading_index(self, theta: float) -> int:
        """Nearest heading sector of an angle."""
        return int(round(theta / (2 * math.pi) * self.heading_levels)) % self.heading_levels

    def heading(self, index: int) -> float:
        """Angle of a heading sector, radians in [0, 2 pi)."""
        return 2 * math.pi * index / self.heading_levels

    def speed_index(self, speed: float) -> int:
        """Nearest speed level."""
        return int(np.argmin(np.abs(np.asarray(self.speed_levels) - speed)))


@lru_cache(maxsize=16)
def _grid_code(modules: int, origin_x: float, origin_y: float) -> GridCode:
    return GridCode(num_modules=modules, origin=(origin_x, origin_y))


@lru_cache(maxsize=16)
def _block_cell_table(layout: CommLayout) -> tuple[np.ndarray, ...]:
    size, width = layout.block_size, layout.geometry.width
    block_cols = layout.blocks_across[1]
    table = []
    for block in range(layout.num_blocks):
        block_row, block_col = divmod(block, block_cols)
        rows, cols = layout.block_shape(block)
        r = np.arange(rows)[:, None] + block_row * size
        c = np.arange(cols)[None, :] + block_col * size
        table.append((r * width + c).reshape(-1))
    return tuple(table)


def coarse_geometry(map_geometry: GridGeometry, resolution: float) -> GridGeometry:
    """A grid with the map's origin and a resolution that is a whole multiple of the map's."""
    factor = resolution / map_geometry.resolution
    if not (math.isfinite(factor) and factor >= 1 and abs(factor - round(factor)) < 1e-6):
        raise ValueError(f"comm resolution {resolution} m must be a whole multiple of the map's "
                         f"{map_geometry.resolution} m; pick e.g. {2 * map_geometry.resolution}")
    factor = int(round(factor))
    return GridGeometry(resolution, -(-map_geometry.width // factor), -(-map_geometry.height // factor),
                        map_geometry.origin_x, map_geometry.origin_y)


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


# ------------------------------------------------------------------------------------------ bit accounting


class TokenBucket:
    """``bits_per_step`` tokens a step, at most ``depth``; a packet is sent only if the bucket holds all of it."""

    def __init__(self, bits_per_step: int, depth: int | None = None, start_full: bool = False) -> None:
        if isinstance(bits_per_step, bool) or not MIN_BITS_PER_STEP <= int(bits_per_step) <= MAX_BITS_PER_STEP:
            raise ValueError(f"bits_per_step must be an integer in {MIN_BITS_PER_STEP}..{MAX_BITS_PER_STEP}, "
                             f"got {bits_per_step!r}")
        self.bits_per_step = int(bits_per_step)
        self.depth = default_bucket_depth(self.bits_per_step) if depth is None else int(depth)
        if not self.bits_per_step <= self.depth <= MAX_PAYLOAD_BITS:
            raise ValueError(f"bucket depth must lie in {self.bits_per_step}..{MAX_PAYLOAD_BITS} bits, got {depth}")
        self.tokens = float(self.depth if start_full else 0)
        self.window: int | None = None

    def advance(self, window: int) -> None:
        """Add the tokens of the steps since the last call (the first call adds one step's)."""
        elapsed = 1 if self.window is None else window - self.window
        if elapsed < 0:
            raise ValueError(f"budget window went back from {self.window} to {window}")
        self.tokens = min(float(self.depth), self.tokens + elapsed * self.bits_per_step)
        self.window = window

    def can_spend(self, bits: int) -> bool:
        """Whether the bucket holds ``bits``."""
        return bits <= self.tokens

    def spend(self, bits: int) -> None:
        """Take ``bits`` out; ValueError if the bucket does not hold them."""
        if not self.can_spend(bits):
            raise ValueError(f"a {bits}-bit packet does not fit the {self.tokens:.0f} bits in the bucket")
        self.tokens -= bits

    @property
    def fill(self) -> float:
        """Fraction of the depth held."""
        return self.tokens / self.depth


def default_bucket_depth(bits_per_step: int) -> int:
    """16 steps of budget, at least 256 bits, at most the largest payload."""
    return int(min(MAX_PAYLOAD_BITS, max(256, 16 * bits_per_step)))


# ----------------------------------------------------------------------------------------------------- security


@dataclass(frozen=True)
class WirePacket:
    """One packet as on the wire; the fields of msg/TeamPacket.msg (the node adds header.stamp)."""

    sender: str
    sequence: int
    budget_window: int
    payload: bytes
    payload_bits: int
    auth_tag: bytes


def load_team_key(source: str | bytes | Path) -> bytes:
    """A team key from bytes, a hex string ('hex:...'), or a key file (raw bytes, at least 16)."""
    if isinstance(source, bytes):
        key = source
    elif isinstance(source, str) and source.startswith("hex:"):
        try:
            key = bytes.fromhex(source[4:])
        except ValueError:
            raise ValueError("the team key after 'hex:' must be hexadecimal digits") from None
    else:
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"team key file {path} does not exist; create one with e.g. `head -c 32 /dev/urandom`")
        key = path.read_bytes()
    if len(key) < 16:
        raise ValueError(f"the team key has {len(key)} bytes; use at least 16 random bytes")
    return key


class PacketSigner:
    """Truncated HMAC-SHA256 over (sender, sequence, budget_window, payload_bits, payload) under the team key."""

    DOMAIN = b"spatial_memory_ros/team-packet/v1"

    def __init__(self, key: bytes, tag_bytes: int = 8) -> None:
        if not isinstance(key, bytes) or len(key) < 16:
            raise ValueError("the team key must be at least 16 bytes; see load_team_key")
        if not 4 <= tag_bytes <= 32:
            raise ValueError(f"tag_bytes must be 4..32, got {tag_bytes}")
        self._key, self.tag_bytes = key, tag_bytes

    def tag(self, sender: str, sequence: int, window: int, payload_bits: int, payload: bytes) -> bytes:
        """The tag of a packet's fields."""
        name = sender.encode("utf-8")
        header = self.DOMAIN + struct.pack(">B", len(name)) + name + struct.pack(">III", sequence, window, payload_bits)
        return hmac.new(self._key, header + bytes(payload), hashlib.sha256).digest()[:self.tag_bytes]

    def sign(self, sender: str, sequence: int, window: int, payload: bytes, payload_bits: int) -> WirePacket:
        """A complete wire packet."""
        return WirePacket(sender, sequence, window, bytes(payload), payload_bits,
                          self.tag(sender, sequence, window, payload_bits, payload))

    def verify(self, packet: WirePacket) -> bool:
        """Whether the tag matches (constant time)."""
        expected = self.tag(packet.sender, packet.sequence, packet.budget_window, packet.payload_bits, packet.payload)
        return hmac.compare_digest(expected, bytes(packet.auth_tag))


def envelope_bytes(packet: WirePacket) -> int:
    """Approximate CDR size of everything but the payload: header (stamp + empty frame_id), sender, sequence,
    window, payload length, payload_bits, tag; the node measures the real serialized size."""
    return 8 + 5 + (4 + len(packet.sender.encode("utf-8")) + 1) + 4 + 4 + 4 + 4 + (4 + len(packet.auth_tag))


_BYTE_SEQUENCES = (bytes, bytearray, memoryview, array.array, list, tuple, np.ndarray)  # rclpy gives array('B')


def envelope_problem(packet: object) -> str | None:
    """What is wrong with a packet's field types or ranges, or None."""
    fields = ("sender", "sequence", "budget_window", "payload", "payload_bits", "auth_tag")
    if not all(hasattr(packet, name) for name in fields):
        return DROP_MALFORMED_ENVELOPE
    sender = packet.sender
    if not isinstance(sender, str) or not 0 < len(sender) <= MAX_SENDER_CHARS or not sender.isprintable():
        return DROP_MALFORMED_ENVELOPE
    for name in ("sequence", "budget_window", "payload_bits"):
        value = getattr(packet, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= UINT32_MAX:
            return DROP_MALFORMED_ENVELOPE
    if not isinstance(packet.payload, _BYTE_SEQUENCES) or not isinstance(packet.auth_tag, _BYTE_SEQUENCES):
        return DROP_MALFORMED_ENVELOPE
    if len(packet.payload) > MAX_PAYLOAD_BYTES or packet.payload_bits > MAX_PAYLOAD_BITS:
        return DROP_OVERSIZED
    return None


def _as_bytes(values) -> bytes | None:
    try:
        return bytes(values)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------- pose prediction


@dataclass(frozen=True)
class PoseAnchor:
    """A pose as a teammate decoded it from one packet, with the motion to path-integrate from it."""

    x: float
    y: float
    heading: float
    speed: float
    window: int
    sd: float
    sequence: int


@dataclass(frozen=True)
class PredictionModel:
    """Path integration of a teammate's last known motion: speed decays with ``motion_tau`` seconds, variance grows
    by ``diffusion`` m^2/s; ``dt`` seconds per budget window."""

    dt: float = 0.1
    motion_tau: float = 1.5
    diffusion: float = 0.25

    def predict(self, anchor: PoseAnchor, window: int, extent: tuple[float, float, float, float]
                ) -> tuple[float, float, float]:
        """(x, y, sd) expected at ``window``, clamped into the map."""
        elapsed = max(0, window - anchor.window) * self.dt
        travel = anchor.speed * self.motion_tau * (1.0 - math.exp(-elapsed / self.motion_tau))
        x = min(max(anchor.x + travel * math.cos(anchor.heading), extent[0]), extent[2])
        y = min(max(anchor.y + travel * math.sin(anchor.heading), extent[1]), extent[3])
        return x, y, math.sqrt(anchor.sd ** 2 + self.diffusion * elapsed)


def search_radius(sd: float, extent: tuple[float, float, float, float]) -> float:
    """Radius of the disc a receiver searches to decode grid-code phases around its prediction."""
    diagonal = math.hypot(extent[2] - extent[0], extent[3] - extent[1])
    return min(max(3.0 * sd + 0.5, 1.0), diagonal)


def decode_grid_pose(code: PoseCode, layout: CommLayout, prior: tuple[float, float, float] | None
                     ) -> tuple[float, float]:
    """Position of a grid-code pose: searched in a disc around the prior (x, y, sd), or over the whole map."""
    grid = layout.grid_code(code.modules)
    codes = np.asarray(code.phases, np.int64).reshape(code.modules, 2)
    extent = layout.extent
    if prior is None:
        position = grid.decode_position(codes, code.phase_bits, extent=extent)
    else:
        position = grid.decode_position(codes, code.phase_bits, near=(prior[0], prior[1]),
                                        radius=search_radius(prior[2], extent))
    return float(position[0]), float(position[1])


def _phase_sd(layout: CommLayout, modules: int, bits: int) -> float:
    """Rough sd (metres) of a grid-code position at ``bits`` a phase: the finest period / 2^bits / sqrt(12)."""
    return float(layout.grid_code(modules).periods[0]) / (1 << bits) / math.sqrt(12.0) * 1.5


# ------------------------------------------------------------------------------------------ partner model


@dataclass(frozen=True)
class PartnerEstimate:
    """What one robot believes about one teammate (maps onto msg/PartnerState.msg)."""

    robot_id: str
    x: float
    y: float
    theta: float
    sd: float
    age_s: float
    packets_received: int


@dataclass(frozen=True)
class Sighting:
    """A target seen somewhere: label ('red target') and map position."""

    label: str
    x: float
    y: float


class PartnerModel:
    """One teammate as I model it: what it told me and what I told it (social place cells)."""

    def __init__(self, robot_id: str, num_cells: int, bucket: TokenBucket) -> None:
        self.robot_id = robot_id
        self.last_sequence: int | None = None
        self.first_sequence: int | None = None
        self.packets_received = 0
        self.anchors: OrderedDict[int, PoseAnchor] = OrderedDict()
        self.belief: PoseAnchor | None = None
        self.last_heard_step: int | None = None
        self.ledger = bucket
        self.known = np.zeros(num_cells, np.float32)        # P(it holds my current state of each comm cell)
        self.sightings_known: dict[tuple[int, int], float] = {}

    def loss_rate(self) -> float:
        """Estimated packet loss from gaps in its sequence numbers (Beta(1, 9) prior: 10%)."""
        if self.first_sequence is None or self.last_sequence is None:
            return 0.1
        expected = self.last_sequence - self.first_sequence + 1
        return (expected - self.packets_received + 1.0) / (expected + 10.0)

    def remember_anchor(self, anchor: PoseAnchor, keep: int = 64) -> None:
        """Keep an anchor for later deltas (the last ``keep``)."""
        self.anchors[anchor.sequence] = anchor
        while len(self.anchors) > keep:
            self.anchors.popitem(last=False)
        if self.belief is None or anchor.window >= self.belief.window:
            self.belief = anchor


# -------------------------------------------------------------------------------------------- team comm


@dataclass
class CommConfig:
    """One robot's link settings. ``strategy``: 'ours', 'broadcast', 'quota' or 'none'."""

    bits_per_step: int = 16
    bucket_depth: int | None = None
    strategy: str = "ours"
    threshold: float = 0.3
    pose_weight: float = 2.0
    pose_error_cap: float = 25.0
    cell_weight: float = 1.0
    sighting_weight: float = 30.0
    goal_weight: float = 300.0
    seen_radius: float = 1.5
    seen_probability: float = 0.6
    silent_after_s: float = 60.0
    quota_rounds: int = 20
    max_window_skew: int = 600
    tag_bytes: int = 8
    prediction: PredictionModel = field(default_factory=PredictionModel)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        TokenBucket(self.bits_per_step, self.bucket_depth)
        for name in ("threshold", "pose_weight", "cell_weight", "sighting_weight", "goal_weight", "seen_radius"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"CommConfig.{name} must be a non-negative number, got {value}")


@dataclass
class DecodedPacket:
    """A verified, decoded packet: its envelope, the message, and the sender's pose as this receiver resolved it
    (None when absent or when its delta reference never arrived here)."""

    sender: str
    sequence: int
    window: int
    payload_bits: int
    message: Message
    anchor: PoseAnchor | None
    sightings: list[Sighting]
    cells: np.ndarray    # flat comm-cell indices
    states: np.ndarray   # FREE_CELL / WALL_CELL per cell


@dataclass
class CommStats:
    """Link statistics of one robot."""

    payload_bits_sent: int = 0
    packets_sent: int = 0
    envelope_bytes_sent: int = 0
    packets_received: int = 0
    payload_bits_received: int = 0
    own_packets_ignored: int = 0
    drops: Counter = field(default_factory=Counter)

    def drop_counts(self) -> dict[str, int]:
        """Drops by reason, every reason listed."""
        return {reason: int(self.drops.get(reason, 0)) for reason in DROP_REASONS}


@dataclass
class _Item:
    kind: str          # "pose", "sighting", "block", "cell"
    value: float
    bits: float
    payload: object
    critical: bool = False


class TeamComm:
    """One robot's end of the team link: sends under the budget, verifies and applies what teammates send."""

    def __init__(self, robot_id: str, team: Sequence[str], key: bytes, layout: CommLayout,
                 config: CommConfig | None = None) -> None:
        """``team`` lists every robot id (this one included); packets from anyone else are dropped."""
        self.robot_id, self.layout = robot_id, layout
        self.config = config or CommConfig()
        if robot_id not in team or len(set(team)) != len(team):
            raise ValueError(f"team {list(team)} must list distinct ids including this robot's {robot_id!r}")
        self.signer = PacketSigner(key, self.config.tag_bytes)
        self.bucket = TokenBucket(self.config.bits_per_step, self.config.bucket_depth)
        self.partners = {rid: PartnerModel(rid, layout.num_cells, TokenBucket(
            self.config.bits_per_step, self.config.bucket_depth, start_full=True)) for rid in team if rid != robot_id}
        self.stats = CommStats()
        self.sequence = 0
        self.goal_label: str | None = None
        self.team_layer = np.zeros(layout.num_cells, np.int8)      # states heard from teammates
        self.sightings: dict[tuple[int, int], Sighting] = {}        # (class, cell) -> everything known
        self._my_anchors: deque[tuple[PoseAnchor, float]] = deque(maxlen=64)  # (anchor, P(receiver holds it))
        self._state = np.zeros(layout.num_cells, np.int8)          # my current view (own + team)
        self._own_previous = np.zeros(layout.num_cells, np.int8)
        self._fifo: deque[_Item] = deque()
        self._grid_checks: dict[tuple, tuple[PoseCode, tuple[float, float]] | None] = {}

    # ----------------------------------------------------------------------------------------------- send

    def make_packet(self, step: int, pose: Pose2D, speed: float, occupancy: np.ndarray,
                    sightings: Iterable[Sighting] = ()) -> WirePacket | None:
        """The packet to broadcast at ``step`` (the budget window), or None to stay silent.

        ``pose`` and ``speed`` (m/s) are my own estimate; ``occupancy`` my own map (int8 -1/0..100 on a grid that
        refines the comm grid by a whole factor, same origin); ``sightings`` targets my memory holds (new ones are
        enough: the link remembers every sighting offered or received). Call once per step, even when nothing
        should go (the bucket fills meanwhile).
        """
        self.bucket.advance(step)
        self._observe(occupancy, sightings)
        if self.config.strategy == "none":
            return None
        if self.config.strategy == "ours":
            items = self._select_ours(step, pose, speed)
        else:
            items = self._select_broadcast(step, pose, speed)
        if not items:
            return None
        return self._send(step, items)

    def _observe(self, occupancy: np.ndarray, sightings: Iterable[Sighting]) -> None:
        """Update my comm-grid view from my map and my memory's sightings (and the broadcast queue)."""
        own = coarse_states(occupancy, self.layout.geometry)
        view = np.where(own != UNKNOWN_CELL, own, self.team_layer).astype(np.int8)
        changed = view != self._state
        if changed.any():
            for partner in self.partners.values():
                partner.known[changed] = 0.0
        self._state = view
        if self.config.strategy in ("broadcast", "quota"):
            self._queue_new_cells(own)
        for sighting in sightings:
            key = self._sighting_key(sighting)
            if key is not None and key not in self.sightings:
                self.sightings[key] = sighting
                if self.config.strategy in ("broadcast", "quota"):
                    self._fifo.append(_Item("sighting", 0.0, sighting_bits(self.layout), SightingCode(*key)))
        self._own_previous = own

    def _sighting_key(self, sighting: Sighting) -> tuple[int, int] | None:
        label = sighting.label.strip().lower()
        if not label.endswith(TARGET_SUFFIX) or not (math.isfinite(sighting.x) and math.isfinite(sighting.y)):
            return None
        name = label[:-len(TARGET_SUFFIX)].strip()
        if name not in self.layout.class_names:
            return None
        class_index = self.layout.class_names.index(name)
        for key, known in self.sightings.items():  # one target seen from several places is one sighting
            if key[0] == class_index and math.hypot(known.x - sighting.x, known.y - sighting.y) < SAME_TARGET_M:
                return key
        return class_index, self.layout.sighting_cell(sighting.x, sighting.y)

    def _queue_new_cells(self, own: np.ndarray) -> None:
        new = np.flatnonzero((own != self._own_previous) & (own != UNKNOWN_CELL))
        bits = raw_cell_bits(self.layout)
        self._fifo.extend(_Item("cell", 0.0, bits, CellCode(int(c), int(own[c]))) for c in new)

    def _active_partners(self, step: int) -> list[PartnerModel]:
        """Teammates still worth spending on: heard within ``silent_after_s`` (or never heard yet)."""
        limit = self.config.silent_after_s / self.config.prediction.dt
        return [p for p in self.partners.values() if p.last_heard_step is None or step - p.last_heard_step <= limit]

    # ------------------------------------------------------------------------------------------- ours

    def _select_ours(self, step: int, pose: Pose2D, speed: float) -> list[_Item]:
        partners = self._active_partners(step)
        if not partners or self.bucket.tokens < MIN_PACKET_BITS:
            return []
        candidates = self._sighting_items(partners) + self._block_items(partners)
        pose_item = self._pose_item(step, pose, speed, partners)
        if pose_item is not None:
            candidates.append(pose_item)
        candidates.sort(key=lambda item: (not item.critical, -item.value / max(item.bits, 1e-9)))
        chosen = self._pack(candidates)
        if not chosen:
            return []
        if any(item.critical for item in chosen):
            return chosen
        value = sum(item.value for item in chosen)
        bits = self._packet_bits(chosen)
        return chosen if value / bits >= self.config.threshold * (1.0 - self.bucket.fill) else []

    def _pack(self, candidates: list[_Item]) -> list[_Item]:
        """Greedy knapsack: take items in order while the ideal packet length fits the bucket."""
        chosen: list[_Item] = []
        least_ratio = 0.25 * self.config.threshold * (1.0 - self.bucket.fill)
        for item in candidates:
            if item.value <= 0 or (not item.critical and item.value < least_ratio * item.bits):
                continue
            if self._packet_bits(chosen + [item]) <= self.bucket.tokens:
                chosen.append(item)
        return chosen

    def _packet_bits(self, items: Sequence[_Item]) -> float:
        counts = Counter(item.kind for item in items)
        return (framing_bits(counts["sighting"], counts["block"], counts["cell"])
                + sum(item.bits for item in items) + 2.0 + 0.001 * len(items))

    def _sighting_items(self, partners: list[PartnerModel]) -> list[_Item]:
        items = []
        for key, sighting in self.sightings.items():
            lacking = sum(1.0 - p.sightings_known.get(key, 0.0) for p in partners)
            is_goal = self.goal_label is not None and sighting.label.strip().lower() == self.goal_label
            weight = self.config.goal_weight if is_goal else self.config.sighting_weight
            critical = is_goal and any(p.sightings_known.get(key, 0.0) < 0.9 for p in partners)
            if lacking > 1e-3:
                items.append(_Item("sighting", weight * lacking, sighting_bits(self.layout), SightingCode(*key),
                                   critical))
        return items

    def _block_items(self, partners: list[PartnerModel]) -> list[_Item]:
        informative = self._state != UNKNOWN_CELL
        if not informative.any():
            return []
        need = np.zeros(self.layout.num_cells, np.float64)
        for partner in partners:
            need += 1.0 - partner.known
        need *= informative * self.config.cell_weight
        items = []
        for block in np.flatnonzero(_block_sums(need, self.layout) > 0.5):
            cells = self.layout.block_cells(int(block))
            code = BlockCode(int(block), tuple(int(s) for s in self._state[cells]))
            items.append(_Item("block", float(need[cells].sum()), block_bits(code, self.layout), code))
        return items

    def _pose_item(self, step: int, pose: Pose2D, speed: float, partners: list[PartnerModel]) -> _Item | None:
        extent = self.layout.extent
        latest = self._my_anchors[-1] if self._my_anchors else None
        if latest is None:
            prior = None
            error2 = ((extent[2] - extent[0]) ** 2 + (extent[3] - extent[1]) ** 2) / 8.0
            held = 0.0
        else:
            prior = self.config.prediction.predict(latest[0], step, extent)
            error2 = (pose.x - prior[0]) ** 2 + (pose.y - prior[1]) ** 2 + prior[2] ** 2
            held = latest[1]
        gain = self.config.pose_weight * min(error2, self.config.pose_error_cap) * len(partners)
        if gain < 0.05:
            return None
        options = []
        heading, speed_index = self.layout.heading_index(pose.theta), self.layout.speed_index(speed)
        if latest is not None:
            delta = self._delta_code(pose, prior, heading, speed_index)
            if delta is not None:
                options.append(_Item("pose", gain * held, pose_bits(delta, self.layout), delta))
                if held >= 0.5 and options[0].bits <= GRID_POSE_MIN_BITS:
                    return options[0]  # a grid-code pose costs more and gains at most 1 / held
        affordable = self.bucket.tokens >= framing_bits(0, 0, 0) + GRID_POSE_MIN_BITS
        grid = self._grid_pose(pose, prior, heading, speed_index) if affordable else None
        if grid is not None:
            options.append(_Item("pose", gain, pose_bits(grid[0], self.layout), grid[0]))
        if not options:
            return None
        return max(options, key=lambda item: item.value / item.bits)

    def _delta_code(self, pose: Pose2D, prior: tuple[float, float, float], heading: int,
                    speed_index: int) -> PoseCode | None:
        """My position as quanta off the receiver's prediction from my latest anchor."""
        anchor = self._my_anchors[-1][0]
        quantum = self.layout.pose_quantum
        dx, dy = round((pose.x - prior[0]) / quantum), round((pose.y - prior[1]) / quantum)
        back = self.sequence + 1 - anchor.sequence
        if back < 1 or abs(dx) > 4096 or abs(dy) > 4096:
            return None
        return PoseCode(heading, speed_index, delta=(int(dx), int(dy)), reference_back=back)

    def _grid_pose(self, pose: Pose2D, prior: tuple[float, float, float] | None, heading: int, speed_index: int
                   ) -> tuple[PoseCode, tuple[float, float]] | None:
        """The cheapest grid-code pose that the receiver's prior decodes to within a pose quantum of the truth."""
        key = (round(pose.x, 2), round(pose.y, 2), None if prior is None else tuple(round(v, 2) for v in prior),
               heading, speed_index)
        if key in self._grid_checks:
            return self._grid_checks[key]
        layout, found = self.layout, None
        # A receiver that missed my latest anchor searches around an older, wider prior: check a wider disc.
        check_prior = None if prior is None else (prior[0], prior[1], max(2.0 * prior[2], prior[2] + 1.0))
        options = sorted((2 * m * b, m, b) for m in range(3, layout.grid_modules + 1) for b in layout.phase_bits)
        for _, modules, bits in options:
            codes = layout.grid_code(modules).encode_position((pose.x, pose.y), bits)
            code = PoseCode(heading, speed_index, modules=modules, phase_bits=bits,
                            phases=tuple(int(v) for v in codes.reshape(-1)))
            decoded = decode_grid_pose(code, layout, check_prior)
            if math.hypot(decoded[0] - pose.x, decoded[1] - pose.y) <= layout.pose_quantum:
                found = (code, decode_grid_pose(code, layout, prior))
                break
        if len(self._grid_checks) > 4096:
            self._grid_checks.clear()
        self._grid_checks[key] = found
        return found

    # -------------------------------------------------------------------------------------- broadcast

    def _select_broadcast(self, step: int, pose: Pose2D, speed: float) -> list[_Item]:
        if self.config.strategy == "quota" and self.stats.packets_sent >= self.config.quota_rounds:
            self._fifo.clear()
            return []
        modules, bits = self.layout.grid_modules, 3 if 3 in self.layout.phase_bits else self.layout.phase_bits[-1]
        codes = self.layout.grid_code(modules).encode_position((pose.x, pose.y), bits)
        code = PoseCode(self.layout.heading_index(pose.theta), self.layout.speed_index(speed), modules=modules,
                        phase_bits=bits, phases=tuple(int(v) for v in codes.reshape(-1)))
        chosen = [_Item("pose", 0.0, pose_bits(code, self.layout), code)]
        needed = self._packet_bits(chosen + ([self._fifo[0]] if self._fifo else []))
        if needed > self.bucket.tokens:
            return []
        while self._fifo and self._packet_bits(chosen + [self._fifo[0]]) <= self.bucket.tokens:
            chosen.append(self._fifo.popleft())
        return chosen

    # ------------------------------------------------------------------------------------------ seal

    def _send(self, step: int, items: list[_Item]) -> WirePacket | None:
        message = Message(
            pose=next((item.payload for item in items if item.kind == "pose"), None),
            sightings=tuple(item.payload for item in items if item.kind == "sighting"),
            blocks=tuple(item.payload for item in items if item.kind == "block"),
            cells=tuple(item.payload for item in items if item.kind == "cell"))
        payload, bits = encode_message(message, self.layout)
        if bits > self.bucket.tokens:  # the ideal-length bound was off by the coder's rounding: drop the last item
            return self._send(step, items[:-1]) if len(items) > 1 else None
        self.bucket.spend(bits)
        self.sequence += 1
        packet = self.signer.sign(self.robot_id, self.sequence, step, payload, bits)
        self._record_sent(step, message, items)
        self.stats.payload_bits_sent += bits
        self.stats.packets_sent += 1
        self.stats.envelope_bytes_sent += envelope_bytes(packet)
        return packet

    def _record_sent(self, step: int, message: Message, items: list[_Item]) -> None:
        """Update what each teammate is predicted to hold after this packet (delivered with 1 - loss)."""
        for partner in self.partners.values():
            delivered = 1.0 - partner.loss_rate()
            for block in message.blocks:
                cells = self.layout.block_cells(block.block)
                informative = cells[np.asarray(block.states) != UNKNOWN_CELL]
                partner.known[informative] = 1.0 - (1.0 - partner.known[informative]) * (1.0 - delivered)
            for cell in message.cells:
                partner.known[cell.cell] = 1.0 - (1.0 - partner.known[cell.cell]) * (1.0 - delivered)
            for sighting in message.sightings:
                key = (sighting.class_index, sighting.cell)
                old = partner.sightings_known.get(key, 0.0)
                partner.sightings_known[key] = 1.0 - (1.0 - old) * (1.0 - delivered)
        if message.pose is not None:
            self._record_own_anchor(step, message.pose)

    def _record_own_anchor(self, step: int, code: PoseCode) -> None:
        """My pose as the receivers will decode it, and the chance they can (a delta needs its reference)."""
        delivered = 1.0 - float(np.mean([p.loss_rate() for p in self.partners.values()])) if self.partners else 1.0
        extent = self.layout.extent
        if code.delta is not None:
            reference, held = self._my_anchors[-1]
            prior = self.config.prediction.predict(reference, step, extent)
            x = prior[0] + code.delta[0] * self.layout.pose_quantum
            y = prior[1] + code.delta[1] * self.layout.pose_quantum
            sd, held = self.layout.pose_quantum / math.sqrt(12.0), held * delivered
        else:
            prior = (self.config.prediction.predict(self._my_anchors[-1][0], step, extent)
                     if self._my_anchors else None)
            x, y = decode_grid_pose(code, self.layout, prior)
            sd, held = _phase_sd(self.layout, code.modules, code.phase_bits), delivered
        anchor = PoseAnchor(x, y, self.layout.heading(code.heading_index), self.layout.speed_levels[code.speed_index],
                            step, sd, self.sequence)
        self._my_anchors.append((anchor, held))

    # -------------------------------------------------------------------------------------------- receive

    def receive(self, packet: object, step: int) -> DecodedPacket | None:
        """Verify, decode and apply a teammate's packet; None if it was dropped (counted by reason) or my own."""
        decoded = self.verify(packet, step)
        if decoded is not None:
            self.apply(decoded, step)
        return decoded

    def verify(self, packet: object, step: int) -> DecodedPacket | None:
        """Check and decode a packet without applying it; drops are counted in ``stats.drops``."""
        problem = envelope_problem(packet)
        if problem is not None:
            return self._drop(problem)
        partner = self.partners.get(packet.sender)
        if partner is None and packet.sender != self.robot_id:
            return self._drop(DROP_UNKNOWN_SENDER)
        payload, tag = _as_bytes(packet.payload), _as_bytes(packet.auth_tag)
        if payload is None or tag is None:
            return self._drop(DROP_MALFORMED_ENVELOPE)
        if len(payload) * 8 < packet.payload_bits:
            return self._drop(DROP_TRUNCATED)
        if len(payload) > -(-packet.payload_bits // 8):
            return self._drop(DROP_PADDED)
        wire = WirePacket(packet.sender, int(packet.sequence), int(packet.budget_window), payload,
                          int(packet.payload_bits), tag)
        if len(tag) != self.signer.tag_bytes or not self.signer.verify(wire):
            return self._drop(DROP_BAD_TAG)
        if partner is None:  # my own id: the echo of a packet I sent, or someone else using my name
            if wire.sequence <= self.sequence:
                self.stats.own_packets_ignored += 1
                return None
            return self._drop(DROP_IMPERSONATION)
        if partner.last_sequence is not None and wire.sequence <= partner.last_sequence:
            return self._drop(DROP_REPLAYED)
        if not self._window_ok(partner, wire.budget_window, step):
            return self._drop(DROP_WINDOW)
        if not self._budget_ok(partner, wire):
            return self._drop(DROP_OVER_BUDGET)
        try:
            message = decode_message(wire.payload, wire.payload_bits, self.layout)
        except (MalformedPayload, ValueError, IndexError):
            return self._drop(DROP_MALFORMED_PAYLOAD)
        self._accept(partner, wire)
        return self._resolve(partner, wire, message)

    def _drop(self, reason: str) -> None:
        self.stats.drops[reason] += 1
        return None

    def _window_ok(self, partner: PartnerModel, window: int, step: int) -> bool:
        ledger = partner.ledger
        if ledger.window is not None and window < ledger.window:
            return False
        return window <= step + self.config.max_window_skew

    def _budget_ok(self, partner: PartnerModel, wire: WirePacket) -> bool:
        """Replay the sender's bucket (lenient: a packet lost on the way only leaves it fuller)."""
        ledger = partner.ledger
        if ledger.window is None:
            ledger.window = wire.budget_window
        else:
            ledger.advance(wire.budget_window)
        return ledger.can_spend(wire.payload_bits)

    def _accept(self, partner: PartnerModel, wire: WirePacket) -> None:
        partner.ledger.spend(wire.payload_bits)
        if partner.first_sequence is None:
            partner.first_sequence = wire.sequence
        partner.last_sequence = wire.sequence
        partner.packets_received += 1
        self.stats.packets_received += 1
        self.stats.payload_bits_received += wire.payload_bits

    def _resolve(self, partner: PartnerModel, wire: WirePacket, message: Message) -> DecodedPacket:
        """Turn a message into map-frame content (the pose needs this receiver's anchors of the sender)."""
        anchor = self._resolve_pose(partner, wire, message.pose) if message.pose is not None else None
        sightings = []
        for sighting in message.sightings:
            x, y = self.layout.sighting_centre(sighting.cell)
            sightings.append(Sighting(f"{self.layout.class_names[sighting.class_index]}{TARGET_SUFFIX}", x, y))
        cells, states = [], []
        for block in message.blocks:
            block_cells = self.layout.block_cells(block.block)
            block_states = np.asarray(block.states, np.int8)
            keep = block_states != UNKNOWN_CELL
            cells.append(block_cells[keep])
            states.append(block_states[keep])
        if message.cells:
            cells.append(np.array([c.cell for c in message.cells], np.int64))
            states.append(np.array([c.state for c in message.cells], np.int8))
        return DecodedPacket(wire.sender, wire.sequence, wire.budget_window, wire.payload_bits, message, anchor,
                             sightings, np.concatenate(cells) if cells else np.zeros(0, np.int64),
                             np.concatenate(states) if states else np.zeros(0, np.int8))

    def _resolve_pose(self, partner: PartnerModel, wire: WirePacket, code: PoseCode) -> PoseAnchor | None:
        layout, prediction = self.layout, self.config.prediction
        heading, speed = layout.heading(code.heading_index), layout.speed_levels[code.speed_index]
        if code.delta is not None:
            reference = partner.anchors.get(wire.sequence - code.reference_back)
            if reference is None:
                return None
            x, y, _ = prediction.predict(reference, wire.budget_window, layout.extent)
            x, y = x + code.delta[0] * layout.pose_quantum, y + code.delta[1] * layout.pose_quantum
            sd = layout.pose_quantum / math.sqrt(12.0)
        else:
            latest = partner.anchors[next(reversed(partner.anchors))] if partner.anchors else None
            prior = prediction.predict(latest, wire.budget_window, layout.extent) if latest is not None else None
            x, y = decode_grid_pose(code, layout, prior)
            sd = _phase_sd(layout, code.modules, code.phase_bits)
        x0, y0, x1, y1 = layout.extent
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            return None
        return PoseAnchor(x, y, heading, speed, wire.budget_window, sd, wire.sequence)

    def apply(self, decoded: DecodedPacket, step: int) -> list[Sighting]:
        """Apply a verified packet: partner pose and model, team map layer, sightings. Returns the sightings that
        are new to me (to merge into the memory, source robot = the sender)."""
        partner = self.partners[decoded.sender]
        partner.last_heard_step = step
        if decoded.anchor is not None:
            partner.remember_anchor(decoded.anchor)
            self._mark_seen_near(partner, decoded.anchor)
        if len(decoded.cells):
            self.team_layer[decoded.cells] = decoded.states
            self._credit_team(partner, decoded.cells, decoded.states)
        new = []
        for sighting, code in zip(decoded.sightings, decoded.message.sightings):
            key = (code.class_index, code.cell)
            partner.sightings_known[key] = 1.0
            for other in self.partners.values():
                if other is not partner:
                    other.sightings_known[key] = max(other.sightings_known.get(key, 0.0), 1.0 - other.loss_rate())
            if key not in self.sightings:
                self.sightings[key] = sighting
                new.append(sighting)
        return new

    def _credit_team(self, sender: PartnerModel, cells: np.ndarray, states: np.ndarray) -> None:
        """The sender holds what it sent; the others probably heard the same broadcast."""
        unknown_here = self._state[cells] == UNKNOWN_CELL
        self._state[cells[unknown_here]] = states[unknown_here]
        agree = self._state[cells] == states
        sender.known[cells[agree]] = 1.0
        for other in self.partners.values():
            if other is not sender:
                heard = 1.0 - other.loss_rate()
                other.known[cells[agree]] = np.maximum(other.known[cells[agree]], heard)

    def _mark_seen_near(self, partner: PartnerModel, anchor: PoseAnchor) -> None:
        """A teammate has probably seen the cells around where it reports itself."""
        g = self.layout.geometry
        radius = self.config.seen_radius
        cols = np.arange(max(0, math.floor((anchor.x - radius - g.origin_x) / g.resolution)),
                         min(g.width, math.floor((anchor.x + radius - g.origin_x) / g.resolution) + 1))
        rows = np.arange(max(0, math.floor((anchor.y - radius - g.origin_y) / g.resolution)),
                         min(g.height, math.floor((anchor.y + radius - g.origin_y) / g.resolution) + 1))
        if not len(cols) or not len(rows):
            return
        cells = (rows[:, None] * g.width + cols[None, :]).reshape(-1)
        partner.known[cells] = np.maximum(partner.known[cells], self.config.seen_probability)

    # --------------------------------------------------------------------------------------- read out

    def partner_states(self, step: int) -> list[PartnerEstimate]:
        """Every teammate heard from so far: predicted pose, its sd, seconds since its last anchor, packets."""
        states = []
        for partner in self.partners.values():
            if partner.belief is None:
                continue
            x, y, sd = self.config.prediction.predict(partner.belief, step, self.layout.extent)
            age = max(0, step - partner.belief.window) * self.config.prediction.dt
            states.append(PartnerEstimate(partner.robot_id, x, y, partner.belief.heading, sd, age,
                                          partner.packets_received))
        return states

    def team_occupancy(self, own: np.ndarray, map_geometry: GridGeometry) -> np.ndarray:
        """My map with what teammates told me filled in where I have not looked myself (int8 -1/0/100)."""
        layer = self.team_layer.reshape(self.layout.geometry.height, self.layout.geometry.width)
        factor = int(round(self.layout.geometry.resolution / map_geometry.resolution))
        fine = np.repeat(np.repeat(layer, factor, axis=0), factor, axis=1)[:own.shape[0], :own.shape[1]]
        shared = np.where(fine == WALL_CELL, 100, np.where(fine == FREE_CELL, 0, -1)).astype(np.int8)
        return np.where(own != -1, own, shared).astype(np.int8)


def _block_sums(values: np.ndarray, layout: CommLayout) -> np.ndarray:
    """Sum of a per-cell array over each block."""
    g, size = layout.geometry, layout.block_size
    rows, cols = layout.blocks_across
    padded = np.zeros((rows * size, cols * size), values.dtype)
    padded[:g.height, :g.width] = values.reshape(g.height, g.width)
    return padded.reshape(rows, size, cols, size).sum(axis=(1, 3)).reshape(-1)


def coarse_states(occupancy: np.ndarray, geometry: GridGeometry) -> np.ndarray:
    """Comm-grid states (flat) of a finer occupancy grid: WALL_CELL if at least half the seen fine cells are walls
    (p >= 50), FREE_CELL if any fine cell was seen, else UNKNOWN_CELL."""
    occupancy = np.asarray(occupancy)
    factor = -(-occupancy.shape[1] // geometry.width)
    if occupancy.ndim != 2 or -(-occupancy.shape[0] // factor) != geometry.height:
        raise ValueError(f"occupancy {occupancy.shape} does not refine the {geometry.height}x{geometry.width} comm "
                         f"grid by a whole factor; pass the map the layout was made for")
    rows, cols = geometry.height * factor, geometry.width * factor
    padded = np.full((rows, cols), -1, np.int16)
    padded[:occupancy.shape[0], :occupancy.shape[1]] = occupancy
    blocks = padded.reshape(geometry.height, factor, geometry.width, factor)
    seen = (blocks >= 0).sum(axis=(1, 3))
    walls = (blocks >= 50).sum(axis=(1, 3))
    states = np.where(seen == 0, UNKNOWN_CELL, np.where(2 * walls >= seen, WALL_CELL, FREE_CELL))
    return states.astype(np.int8).reshape(-1)


def shared_entry_arrays(sightings: Sequence[Sighting], sender: str, stamp: float, layout: CommLayout
                        ) -> tuple[np.ndarray, np.ndarray, list[str], list[str], np.ndarray, np.ndarray]:
    """Memory entries for sightings a teammate shared: (locations, location_sds, labels, sources, stamps,
    patch features). The value is the label's embedding followed by these canonical features
    (RobotMemory.values does that from an Observations)."""
    n = len(sightings)
    locations = np.array([(s.x, s.y) for s in sightings], np.float32).reshape(n, 2)
    sd = layout.geometry.resolution / layout.sighting_subdivision
    features = np.tile(np.asarray(SHARED_SIGHTING_FEATURES, np.float32), (n, 1))
    return (locations, np.full(n, max(sd, 0.05), np.float32), [s.label for s in sightings], [sender] * n,
            np.full(n, stamp, np.float64), features)
