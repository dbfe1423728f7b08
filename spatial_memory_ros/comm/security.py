"""Packet security of the team link: the wire packet, the team key, signing, and the checks a received packet must
pass before anyone looks at its contents (no ROS).

Each packet carries sender id, a strictly increasing sequence number and an HMAC-SHA256 tag truncated to
``tag_bytes`` under a per-team key over (sender, sequence, budget_window, payload_bits, payload). Malformed envelopes,
oversized, truncated or padded payloads, unknown senders, bad tags, replayed or reordered sequences, windows out of
range, overdrawn budgets and undecodable payloads are dropped and counted by reason (:data:`DROP_REASONS`), never
applied; cheap checks come before the HMAC so a 10 MB payload is refused without hashing it.

Why this is its own module: these checks are the link's attack surface, and any transport (the ROS topic, a radio
bridge) must run the same ones. :func:`authenticate` is the stateless part, in order: envelope, sender, payload
length, tag. What needs per-sender state (replay, budget window, the sender's bucket) follows it in
:meth:`.receive.Receiver.verify`, with the reasons defined here.
"""
from __future__ import annotations

import array
import hashlib
import hmac
import struct
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spatial_memory_ros.comm.codec import MAX_PAYLOAD_BITS, MAX_PAYLOAD_BYTES

UINT32_MAX = (1 << 32) - 1
MAX_SENDER_CHARS = 64

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
DROP_SEQUENCE_JUMP = "sequence number beyond what the sender could have sent"
DROP_RATE_LIMITED = "over the packet rate limit (before the tag)"
DROP_QUEUE_OVERFLOW = "lost in the receive queue"
DROP_REASONS = (DROP_MALFORMED_ENVELOPE, DROP_OVERSIZED, DROP_UNKNOWN_SENDER, DROP_TRUNCATED, DROP_PADDED,
                DROP_BAD_TAG, DROP_REPLAYED, DROP_WINDOW, DROP_OVER_BUDGET, DROP_MALFORMED_PAYLOAD,
                DROP_IMPERSONATION, DROP_SEQUENCE_JUMP, DROP_RATE_LIMITED, DROP_QUEUE_OVERFLOW)
MIN_TAG_BYTES = 8  # a 32-bit tag can be brute-forced over a radio; 64 bits cannot


@dataclass(frozen=True)
class WirePacket:
    """One packet as on the wire; the fields of msg/TeamPacket.msg (the node adds header.stamp)."""

    sender: str
    sequence: int
    budget_window: int
    payload: bytes
    payload_bits: int
    auth_tag: bytes


TEAM_KEY_BYTES = 32
MAKE_KEY_HINT = ("make one with `spatial-memory keygen team.key` (32 random bytes, mode 0600), copy that file to every "
                 "robot of the team and pass its path as team_comm's team_key_file parameter (robot.launch.py "
                 "team_key_file:=<path>)")


def write_team_key(path: str | Path, overwrite: bool = False) -> Path:
    """Write a new random team key (:data:`TEAM_KEY_BYTES` bytes from the OS's CSPRNG) to ``path``, readable and
    writable by its owner only (0600, set when the file is created, so it is never readable by others)."""
    import os
    import secrets

    path = Path(path).expanduser()
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ValueError(f"{path} exists; a new key would lock out every robot still using the old one "
                         f"(pass --force to replace it)") from None
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(secrets.token_bytes(TEAM_KEY_BYTES))
    return path


def key_file_problem(path: str | Path) -> str | None:
    """Why a key file's permissions are unsafe (readable or writable by group or others), or None."""
    import stat

    mode = Path(path).stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return (f"team key file {path} has mode {stat.S_IMODE(mode):04o}: others on this host can read or change "
                f"the team's key; chmod 600 {path}")
    return None


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
            raise ValueError(f"team key file {path} does not exist; {MAKE_KEY_HINT}")
        key = path.read_bytes()
    if len(key) < 16:
        raise ValueError(f"the team key has {len(key)} bytes; use at least 16 random bytes")
    return key


class PacketSigner:
    """Truncated HMAC-SHA256 over (sender, sequence, budget_window, payload_bits, payload) under the team key."""

    DOMAIN = b"spatial_memory_ros/team-packet/v2"  # v2: the sender name's length takes two bytes

    def __init__(self, key: bytes, tag_bytes: int = 8) -> None:
        if not isinstance(key, bytes) or len(key) < 16:
            raise ValueError("the team key must be at least 16 bytes; see load_team_key")
        if not MIN_TAG_BYTES <= tag_bytes <= 32:
            raise ValueError(f"tag_bytes must be {MIN_TAG_BYTES}..32, got {tag_bytes}")
        self._key, self.tag_bytes = key, tag_bytes

    def tag(self, sender: str, sequence: int, window: int, payload_bits: int, payload: bytes) -> bytes:
        """The tag of a packet's fields."""
        name = sender.encode("utf-8")
        header = self.DOMAIN + struct.pack(">H", len(name)) + name + struct.pack(">III", sequence, window, payload_bits)
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
    try:
        sender.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return DROP_MALFORMED_ENVELOPE
    for name in ("sequence", "budget_window", "payload_bits"):
        value = getattr(packet, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= UINT32_MAX:
            return DROP_MALFORMED_ENVELOPE
    if not _is_byte_sequence(packet.payload) or not _is_byte_sequence(packet.auth_tag):
        return DROP_MALFORMED_ENVELOPE
    if len(packet.payload) > MAX_PAYLOAD_BYTES or packet.payload_bits > MAX_PAYLOAD_BITS:
        return DROP_OVERSIZED
    return None


def _is_byte_sequence(values: object) -> bool:
    """A sequence of bytes whose len() counts bytes: bytes() of a wider numpy array, array or memoryview gives its
    raw memory, which would disagree with the length checks."""
    if not isinstance(values, _BYTE_SEQUENCES):
        return False
    if isinstance(values, np.ndarray):
        return values.dtype == np.uint8 and values.ndim == 1
    if isinstance(values, array.array):
        return values.typecode == "B"
    if isinstance(values, memoryview):
        return values.format == "B" and values.ndim == 1
    return True


def _as_bytes(values) -> bytes | None:
    if not _is_byte_sequence(values):
        return None
    try:
        return bytes(values)
    except (TypeError, ValueError):
        return None


def authenticate(packet: object, signer: PacketSigner, senders: Container[str]
                 ) -> tuple[WirePacket | None, str | None]:
    """The checks that need no per-sender state, cheapest first: envelope field types and ranges, a sender among
    ``senders``, a payload exactly as long as ``payload_bits`` needs, and the tag. Returns (the packet as a
    :class:`WirePacket`, None) or (None, the DROP_* reason)."""
    problem = envelope_problem(packet)
    if problem is not None:
        return None, problem
    if packet.sender not in senders:
        return None, DROP_UNKNOWN_SENDER
    payload, tag = _as_bytes(packet.payload), _as_bytes(packet.auth_tag)
    if payload is None or tag is None:
        return None, DROP_MALFORMED_ENVELOPE
    if len(payload) * 8 < packet.payload_bits:
        return None, DROP_TRUNCATED
    if len(payload) > -(-packet.payload_bits // 8):
        return None, DROP_PADDED
    wire = WirePacket(packet.sender, int(packet.sequence), int(packet.budget_window), payload,
                      int(packet.payload_bits), tag)
    if len(tag) != signer.tag_bytes or not signer.verify(wire):
        return None, DROP_BAD_TAG
    return wire, None
