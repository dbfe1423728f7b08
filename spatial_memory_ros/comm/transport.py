"""The team link between hosts: compact frames (:mod:`.frame`) over plain UDP to configured peers, paced by a bit
budget on the air (no ROS).

``link_bits_per_second`` is this robot's share of the radio: every byte that leaves the host for the link counts,
the frame and the 28 bytes of IPv4 + UDP headers of each datagram (one datagram per configured peer; a subnet
broadcast address as the only peer puts one on the air for the whole team). There are no keep-alives,
acknowledgements or retransmissions: silence is the keep-alive, and a lost frame is news the policy offers again
(its partner model discounts what it sent by the measured loss).

Batching: headers cost 28 + ~16 bytes a datagram, more than a few steps of payload at 16 bits per step, so a frame
goes out only when the air budget holds its headers plus everything the payload bucket could fill it with; until then
the payload bucket keeps filling, and one packet then carries the news of all the steps since the last frame.
Under a generous link that is a frame every step; at 400 bit/s and 16 bits per step about one every 1.5 s.

Why this is its own module: the node (nodes/team_comm.py, ``transport:=udp``), the multi-host test and the link
benchmark run the same :class:`FrameLink`; every received packet goes through :meth:`.link.TeamComm.verify` (the
checks of :mod:`.security` and :mod:`.receive`), none is checked here.

Zenoh was measured as the alternative engine (benchmarks/link.py, benchmarks/results/link.json): in peer mode
with configured endpoints and multicast and gossip scouting off, the same 24-byte frame every 1.5 s took 408-425
bit/s per host over UDP (76-80 bytes a frame with its session, keep-alives and framing) where plain UDP took 303
(57), over a 400 bit/s share on its own, and 952 over TCP; hence plain UDP.
"""
from __future__ import annotations

import errno
import math
import socket
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from spatial_memory_ros.comm.frame import (IPV4_UDP_HEADER_BYTES, MAX_FRAME_BYTES, frame_overhead_bytes,
                                           pack_frame, unpack_frame)
from spatial_memory_ros.comm.link import TeamComm
from spatial_memory_ros.comm.partners import Sighting
from spatial_memory_ros.comm.receive import DecodedPacket, FloodGuard
from spatial_memory_ros.comm.security import DROP_RATE_LIMITED
from spatial_memory_ros.types import Pose2D

DEFAULT_PORT = 7447
MAX_DATAGRAMS_PER_POLL = 256


def parse_endpoint(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """'10.0.0.2:7447' or '10.0.0.2' -> (host, port); ValueError that says what is wrong."""
    host, _, port = str(text).strip().rpartition(":") if ":" in str(text) else (str(text).strip(), "", "")
    try:
        socket.inet_aton(host)
        number = int(port) if port else default_port
    except (OSError, ValueError):
        raise ValueError(f"endpoint {text!r} is not 'IPv4:port' (e.g. 10.77.0.2:{default_port})") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} of endpoint {text!r} is out of range")
    return host, number


class LinkBudget:
    """A token bucket of bits on the air: ``bits_per_second`` a second, at most ``depth_bits``, empty at the start
    (so what was sent never exceeds the rate times the time since). 0 or less: no limit (always full)."""

    def __init__(self, bits_per_second: float, depth_bits: float | None = None) -> None:
        if not math.isfinite(bits_per_second):
            raise ValueError(f"link_bits_per_second must be finite, got {bits_per_second}")
        self.bits_per_second = max(0.0, float(bits_per_second))
        self.limited = self.bits_per_second > 0
        self.depth_bits = float(depth_bits if depth_bits is not None else 4.0 * self.bits_per_second)
        self.tokens = 0.0 if self.limited else math.inf  # empty at start: never above the rate since start
        self._last: float | None = None

    def advance(self, now: float) -> None:
        """Add the bits of the seconds since the last call (time going back adds none)."""
        if self.limited and self._last is not None and now > self._last:
            self.tokens = min(self.depth_bits, self.tokens + (now - self._last) * self.bits_per_second)
        if self._last is None or now > self._last:
            self._last = now

    def can_send(self, bits: float) -> bool:
        return bits <= self.tokens

    def spend(self, bits: float) -> None:
        if self.limited:
            self.tokens -= bits


class UdpTransport:
    """A non-blocking UDP socket bound to ``bind`` that sends each frame to every peer endpoint (unicast, or one
    subnet broadcast address) and reads frames, at most :data:`MAX_DATAGRAMS_PER_POLL` per poll."""

    def __init__(self, bind: str, peers: Sequence[str]) -> None:
        self.bind = parse_endpoint(bind)
        self.peers = [parse_endpoint(peer, self.bind[1]) for peer in peers]
        if not self.peers:
            raise ValueError("the UDP transport needs at least one peer endpoint (or the subnet broadcast address)")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        # Bound to the wildcard so subnet broadcasts arrive too; own broadcasts come back and are skipped by source.
        self.sock.bind(("0.0.0.0" if any(h.endswith(".255") for h, _ in self.peers) else self.bind[0], self.bind[1]))
        self.sock.setblocking(False)
        self.local = (self.bind[0], self.sock.getsockname()[1])
        self.send_errors = 0

    @property
    def datagrams_per_frame(self) -> int:
        return len(self.peers)

    def send(self, frame: bytes) -> int:
        """Send to every peer; the number of datagrams that left (a down interface is counted, not raised)."""
        sent = 0
        for peer in self.peers:
            try:
                self.sock.sendto(frame, peer)
                sent += 1
            except OSError as error:
                if error.errno not in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EPERM, errno.ENOBUFS,
                                       errno.EAGAIN, errno.ECONNREFUSED, errno.ENETDOWN, errno.EADDRNOTAVAIL):
                    raise
                self.send_errors += 1
        return sent

    def receive(self, limit: int = MAX_DATAGRAMS_PER_POLL) -> list[tuple[bytes, object]]:
        """(datagram, source address) waiting (not my own), at most ``limit``; a longer one is cut to
        MAX_FRAME_BYTES + 1 bytes."""
        frames = []
        for _ in range(limit):
            try:
                data, source = self.sock.recvfrom(MAX_FRAME_BYTES + 1)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # e.g. ECONNREFUSED from an earlier send to a closed port
                continue
            if source == self.local:
                continue
            frames.append((data, source))
        return frames

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


class LoopbackHub:
    """An in-process stand-in for the radio (the in-process team task): a frame one member sends reaches every
    other member's inbox unless lost, independently per receiver with probability ``loss``; one datagram on the air
    per frame, as a subnet broadcast. Inboxes hold at most ``depth`` frames (the oldest go first)."""

    def __init__(self, loss: float = 0.0, rng=None, depth: int = 256) -> None:
        self.loss, self.rng, self.depth = loss, rng if rng is not None else np.random.default_rng(0), depth
        self.inboxes: dict[str, list[bytes]] = {}

    def endpoint(self, name: str) -> _HubEndpoint:
        self.inboxes[name] = []
        return _HubEndpoint(self, name)


class _HubEndpoint:
    datagrams_per_frame = 1
    send_errors = 0

    def __init__(self, hub: LoopbackHub, name: str) -> None:
        self.hub, self.name = hub, name

    def send(self, frame: bytes) -> int:
        for name, inbox in self.hub.inboxes.items():
            if name != self.name and not (self.hub.loss and self.hub.rng.random() < self.hub.loss):
                inbox.append((bytes(frame), self.name))
                del inbox[:-self.hub.depth]
        return 1

    def receive(self, limit: int = MAX_DATAGRAMS_PER_POLL) -> list[tuple[bytes, object]]:
        inbox = self.hub.inboxes[self.name]
        frames, inbox[:] = inbox[:limit], inbox[limit:]
        return frames


@dataclass
class LinkStats:
    """What the link put on and took off the air."""

    frames_sent: int = 0
    datagrams_sent: int = 0
    air_bytes_sent: int = 0          # frames + IPv4/UDP headers of every datagram that left
    frame_bytes_sent: int = 0
    payload_bits_sent: int = 0
    steps_deferred: int = 0          # steps whose news waited for the air budget
    frames_received: int = 0
    air_bytes_received: int = 0
    packets_accepted: int = 0
    last_heard: dict[str, float] = field(default_factory=dict)  # partner -> time of its last accepted packet


class FrameLink:
    """A :class:`.link.TeamComm` on a host link: paces :meth:`~.link.TeamComm.make_packet` against the air
    budget, sends frames through a transport, and passes every received packet to
    :meth:`~.link.TeamComm.verify` and :meth:`~.link.TeamComm.apply`."""

    def __init__(self, comm: TeamComm, team: Sequence[str], transport, link_bits_per_second: float = 0.0,
                 silent_after_s: float = 5.0, flood: FloodGuard | None = None) -> None:
        self.comm, self.team, self.transport = comm, list(team), transport
        self.flood = flood or FloodGuard()  # per source address and for the link, before any tag is checked
        if len(set(team)) != len(team) or set(team) != set(comm.team_ids):
            raise ValueError(f"team {list(team)} must list exactly the link's robots")
        self.index = self.team.index(comm.robot_id)
        self.budget = LinkBudget(link_bits_per_second)
        self.silent_after_s = silent_after_s
        self.stats = LinkStats()
        self._sightings: list[Sighting] = []
        tag = comm.config.tag_bytes
        self._overhead_bits = 8 * (frame_overhead_bytes(tag) + IPV4_UDP_HEADER_BYTES)
        bucket = comm.bucket
        needed = self._overhead_bits + bucket.depth + 8
        if self.budget.limited and self.budget.depth_bits < needed * transport.datagrams_per_frame:
            self.budget.depth_bits = needed * transport.datagrams_per_frame

    def air_bits_needed(self, step: int) -> int:
        """Air bits a frame at ``step`` may take: headers plus whatever the payload bucket will hold by then (it
        gains the steps since make_packet last ran)."""
        bucket = self.comm.bucket
        elapsed = 1 if bucket.window is None else max(1, step - bucket.window)
        payload = min(bucket.depth, bucket.tokens + elapsed * bucket.bits_per_step)
        return (self._overhead_bits + 8 * math.ceil(payload / 8)) * self.transport.datagrams_per_frame

    def step(self, step: int, now: float, pose: Pose2D, speed: float, occupancy: np.ndarray,
             sightings: Iterable[Sighting] = ()) -> bool:
        """Offer this step's state; True if a frame went out."""
        self._sightings.extend(sightings)
        self.budget.advance(now)
        if not self.budget.can_send(self.air_bits_needed(step)):
            self.stats.steps_deferred += 1
            return False
        packet = self.comm.make_packet(step, pose, speed, occupancy, self._sightings)
        self._sightings = []
        if packet is None:
            return False
        frame = pack_frame(self.index, [packet])
        sent = self.transport.send(frame)
        air = sent * (len(frame) + IPV4_UDP_HEADER_BYTES)
        self.budget.spend(8 * air)
        self.stats.frames_sent += 1
        self.stats.datagrams_sent += sent
        self.stats.air_bytes_sent += air
        self.stats.frame_bytes_sent += len(frame) * sent
        self.stats.payload_bits_sent += packet.payload_bits
        return sent > 0

    def poll(self, step: int, now: float, limit: int = MAX_DATAGRAMS_PER_POLL
             ) -> list[tuple[DecodedPacket, list[Sighting]]]:
        """Read waiting frames; verify and apply every packet in them. Returns (packet, its new sightings) for
        each accepted one; dropped ones are counted in ``comm.stats.drops``."""
        accepted = []
        for data, source in self.transport.receive(limit):
            self.stats.frames_received += 1
            self.stats.air_bytes_received += len(data) + IPV4_UDP_HEADER_BYTES
            if not self.flood.admit(source, now):
                self.comm.stats.drops[DROP_RATE_LIMITED] += 1
                continue
            for packet in unpack_frame(data, self.team, step, self.comm.config.tag_bytes):
                decoded = self.comm.verify(packet, step)
                if decoded is None:
                    continue
                new = self.comm.apply(decoded, step)
                self.stats.packets_accepted += 1
                self.stats.last_heard[decoded.sender] = now
                accepted.append((decoded, list(new or [])))
        return accepted

    def partners_heard(self, now: float) -> list[str]:
        """Teammates heard from within ``silent_after_s``."""
        return sorted(r for r, t in self.stats.last_heard.items() if now - t <= self.silent_after_s)

    def link_up(self, now: float) -> bool:
        """Whether any teammate was heard within ``silent_after_s`` (False: this robot is working alone)."""
        return bool(self.partners_heard(now))

    def summary(self, elapsed_s: float) -> dict:
        """The link's figures as plain JSON."""
        s = self.stats
        return {"frames_sent": s.frames_sent, "datagrams_sent": s.datagrams_sent, "air_bytes_sent": s.air_bytes_sent,
                "air_bits_per_second": 8 * s.air_bytes_sent / elapsed_s if elapsed_s > 0 else 0.0,
                "payload_bits_sent": s.payload_bits_sent, "steps_deferred": s.steps_deferred,
                "frames_received": s.frames_received, "packets_accepted": s.packets_accepted,
                "send_errors": getattr(self.transport, "send_errors", 0),
                "drops": {k: v for k, v in self.comm.stats.drop_counts().items() if v},
                "own_packets_ignored": self.comm.stats.own_packets_ignored}
