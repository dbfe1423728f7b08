"""The compact on-air frame of the team link between hosts: what crosses a thin radio link instead of a ROS/DDS
envelope (no ROS).

One frame is one UDP datagram from one sender and carries one or more signed packets (records) of that sender,
several when batching saves headers::

    byte 0      version (high nibble, 1) | record count - 1 (low nibble: 1..16 records)
    byte 1      sender index into the team list (every robot lists the team in the same order)
    per record  varint sequence | uint16 budget window (low 16 bits) | varint payload_bits | tag | payload

The payload of a record is ceil(payload_bits / 8) bytes; the last record takes whatever is left, so a truncated
frame gives a payload shorter than its bits and a padded one a longer payload. The budget window travels as its low
16 bits and the receiver takes the value nearest its own step (receivers refuse windows more than
``max_window_skew`` steps away, far inside the 65,536 steps this resolves); the tag covers the full window, so a
wrong guess is a bad tag.

Why this is its own module: the frame only changes how a :class:`.security.WirePacket` is written; every check
stays in :func:`.security.authenticate` and :class:`.receive.Receiver`. :func:`unpack_frame` never rejects a frame
on its own: it turns whatever arrived into packet-shaped objects and lets those checks drop and count them
(a frame too short for its header becomes an envelope they call malformed, an unknown index a sender they do not
know, a frame over :data:`MAX_FRAME_BYTES` an oversized payload).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

from spatial_memory_ros.comm.codec import MAX_PAYLOAD_BYTES
from spatial_memory_ros.comm.security import WirePacket

FRAME_VERSION = 1
MAX_RECORDS = 16
MAX_FRAME_BYTES = 1400          # one Ethernet/radio MTU less the IP and UDP headers, with room to spare
IPV4_UDP_HEADER_BYTES = 28      # 20 bytes IPv4 (no options) + 8 bytes UDP, on every datagram
WINDOW_MODULUS = 1 << 16
UINT32_MODULUS = 1 << 32


@dataclass(frozen=True)
class MalformedFrame:
    """What a frame too short or too odd to parse becomes: an envelope :func:`.security.envelope_problem` refuses
    (it lacks the packet fields), so the receiver counts it as a malformed envelope."""

    reason: str


def varint(value: int) -> bytes:
    """LEB128 of a non-negative integer."""
    if value < 0:
        raise ValueError(f"varint of a negative number {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, offset: int, max_bytes: int = 5) -> tuple[int, int]:
    value = 0
    for i in range(max_bytes):
        if offset + i >= len(data):
            raise IndexError("varint runs past the frame")
        byte = data[offset + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, offset + i + 1
    raise ValueError("varint longer than 5 bytes")


def record_bytes(packet: WirePacket) -> int:
    """Bytes one packet takes inside a frame."""
    return (len(varint(packet.sequence)) + 2 + len(varint(packet.payload_bits)) + len(packet.auth_tag)
            + len(packet.payload))


def frame_overhead_bytes(tag_bytes: int, sequence: int = 1 << 14, payload_bits: int = 1 << 7) -> int:
    """Bytes of a one-record frame that are not payload (frame header, record header, tag), for sequences below
    2^21 and payloads of 128..16383 bits unless told otherwise; add :data:`IPV4_UDP_HEADER_BYTES` for the air."""
    return 2 + len(varint(sequence)) + 2 + len(varint(payload_bits)) + tag_bytes


def pack_frame(sender_index: int, packets: Sequence[WirePacket]) -> bytes:
    """One frame carrying ``packets`` (1..16, all of one sender, whose index in the team list is given)."""
    if not 1 <= len(packets) <= MAX_RECORDS:
        raise ValueError(f"a frame carries 1..{MAX_RECORDS} packets, got {len(packets)}")
    if not 0 <= sender_index <= 255:
        raise ValueError(f"sender index must be 0..255, got {sender_index}")
    if len({p.sender for p in packets}) != 1:
        raise ValueError("every packet of a frame must come from one sender")
    out = bytearray([(FRAME_VERSION << 4) | (len(packets) - 1), sender_index])
    for packet in packets:
        payload, tag = bytes(packet.payload), bytes(packet.auth_tag)
        if len(payload) != -(-packet.payload_bits // 8):
            raise ValueError(f"payload of {len(payload)} bytes does not hold exactly {packet.payload_bits} bits")
        out += varint(packet.sequence) + struct.pack(">H", packet.budget_window % WINDOW_MODULUS)
        out += varint(packet.payload_bits) + tag + payload
    if len(out) > MAX_FRAME_BYTES:
        raise ValueError(f"a frame of {len(out)} bytes exceeds {MAX_FRAME_BYTES}; send fewer packets per frame")
    return bytes(out)


def nearest_window(low16: int, step: int) -> int:
    """The uint32 window with these low 16 bits nearest ``step``."""
    base = (step - (step % WINDOW_MODULUS)) + low16
    best = min((base - WINDOW_MODULUS, base, base + WINDOW_MODULUS), key=lambda w: abs(w - step))
    return best % UINT32_MODULUS


def unpack_frame(data: bytes, team: Sequence[str], step: int, tag_bytes: int) -> list[object]:
    """The packets of a frame as objects for :meth:`.link.TeamComm.verify` (a :class:`WirePacket` each, or a
    :class:`MalformedFrame` where the frame could not be read). Never raises on bad input; reads at most
    :data:`MAX_FRAME_BYTES` + 1 bytes of it."""
    data = bytes(data[:MAX_FRAME_BYTES + 1])
    if len(data) < 2:
        return [MalformedFrame("frame shorter than its 2-byte header")]
    version, count = data[0] >> 4, (data[0] & 0x0F) + 1
    if version != FRAME_VERSION:
        return [MalformedFrame(f"frame version {version}, expected {FRAME_VERSION}")]
    index = data[1]
    sender = team[index] if index < len(team) else f"#{index}"  # an index nobody holds: an unknown sender
    oversized = len(data) > MAX_FRAME_BYTES
    packets: list[object] = []
    offset = 2
    for record in range(count):
        try:
            sequence, offset = _read_varint(data, offset)
            if offset + 2 > len(data):
                raise IndexError("window runs past the frame")
            (low16,) = struct.unpack_from(">H", data, offset)
            bits, offset = _read_varint(data, offset + 2)
        except (IndexError, ValueError) as error:
            packets.append(MalformedFrame(f"record {record + 1}: {error}"))
            return packets
        tag = data[offset:offset + tag_bytes]
        offset += len(tag)
        last = record == count - 1
        if oversized and last:  # hand the checks more than the largest payload: they call it oversized
            payload = data[offset:] + bytes(max(0, MAX_PAYLOAD_BYTES + 1 - len(data) + offset))
        else:
            payload = data[offset:] if last else data[offset:offset + -(-bits // 8)]
        offset += len(payload)
        packets.append(WirePacket(sender, min(sequence, UINT32_MODULUS), nearest_window(low16, step), payload, bits,
                                  tag))
        if offset >= len(data) and not last:
            packets.append(MalformedFrame(f"frame ends after record {record + 1} of {count}"))
            return packets
    return packets
