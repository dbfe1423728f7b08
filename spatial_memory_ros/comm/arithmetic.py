"""Entropy coding for the team link: a 32-bit integer arithmetic coder and typed symbol streams over it (no ROS).

Why this is its own module: nothing here knows about robots, maps or packets. It turns typed symbols (uniform
integers, bits, Elias-gamma and signed integers, symbols against adaptive counts) into the shortest bit string an
arithmetic code gives, and back, range-checking every read. :mod:`.codec` builds the team message format on top.

The coder is Witten-Neal-Cleary with an optimal one-bit flush; trailing zeros are trimmed because the decoder pads
with zeros, so the exact bit count is part of the result. Why arithmetic coding and not run-length + Elias-gamma:
packets are short (tens to hundreds of bits) and most map cells are predictable from their neighbours (well under
one bit each), which a fractional-bit coder captures and a prefix code cannot (a prefix code spends at least one
bit per run or symbol); adaptive counts need no table in the packet, and the ideal code length (sum of -log2 p) is
known before encoding, within 2 bits, which lets the sender pack items against the bucket exactly. Fixed-size
fields (indices, phases, counts) go through the same stream as uniform symbols, costing exactly their log2.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


class MalformedPayload(ValueError):
    """A payload that does not decode to a valid message under the team's layout."""


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
