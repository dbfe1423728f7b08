"""The receiving half of the team link: check, decode and apply what teammates send (no ROS).

A packet first passes :func:`.security.authenticate` (envelope, sender, payload length, tag); then the checks that
need what this robot knows of the sender: its own echo or impersonation, a budget window inside what my own clock
allows (at most ``max_window_skew`` steps ahead, ``max_packet_age`` behind), a window later than the sender's last
accepted one (replay protection: a sender sends at most one packet a window), a plausible sequence number, the
sender's replayed token bucket, and a canonical payload.

Replay protection that cannot be turned into a lockout, even by someone holding the team key: replays are refused by
their window, which only goes forward and which nobody can push more than ``max_window_skew`` steps past my clock,
so a forged packet can shut a teammate out for at most that many steps. Sequence numbers only order a sender's pose
references: one may grow by at most the windows elapsed (+ ``sequence_slack``) since the sender's packets began
(``sequence - window`` never grows for a real sender), so 4294967295 out of nowhere is refused; a smaller sequence
number in a newer window is a restarted sender, whose new sequence space starts afresh (its old packets stay
refused: their windows are old); and two consistent packets beyond the bound in a row resynchronise, so a forged
packet that lowered the bound cannot shut the real sender out either. Only then is it resolved into map-frame content (the pose needs my anchors of
the sender) and applied to the partner model, the team map layer and the shared sightings.

Why this is its own module: receiving shares no code path with choosing what to send (:mod:`.policy`); the two meet
only in the partner model (:mod:`.partners`). :class:`Receiver` is the receiving half of :class:`.link.TeamComm`
and works on the state TeamComm keeps (listed on the class).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spatial_memory_ros.comm.arithmetic import MalformedPayload
from spatial_memory_ros.comm.codec import UNKNOWN_CELL, Message, PoseCode, decode_message
from spatial_memory_ros.comm.layout import CommLayout
from spatial_memory_ros.comm.partners import PartnerModel, PoseAnchor, Sighting, decode_grid_pose, grid_pose_sd
from spatial_memory_ros.comm.security import (DROP_IMPERSONATION, DROP_MALFORMED_PAYLOAD, DROP_OVER_BUDGET,
                                              DROP_REPLAYED, DROP_SEQUENCE_JUMP, DROP_WINDOW, PacketSigner,
                                              WirePacket, authenticate)
from spatial_memory_ros.types import target_label

if TYPE_CHECKING:
    from spatial_memory_ros.comm.link import CommConfig, CommStats


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


@dataclass(frozen=True)
class FloodLimits:
    """How many packets a second the receiver checks at all, before any tag is computed. A teammate sends at most
    one packet a budget step (10 a second at the default 0.1 s), so ``source_rate`` leaves it three times that;
    ``link_rate`` caps every source together (an outsider with many sources). ``max_sources`` bounds the state."""

    source_rate: float = 30.0
    source_burst: float = 20.0
    link_rate: float = 300.0
    link_burst: float = 100.0
    max_sources: int = 256

    def __post_init__(self) -> None:
        for name in ("source_rate", "source_burst", "link_rate", "link_burst"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"FloodLimits.{name} must be a positive number, got {value}")
        if not 1 <= self.max_sources <= 65536:
            raise ValueError(f"FloodLimits.max_sources must be in 1..65536, got {self.max_sources}")


class FloodGuard:
    """Cheap checks before the HMAC, for any transport: a token bucket of packets per source and one for the whole
    link, and the packets a source's own numbering shows were lost on the way (a receive queue that overflowed).

    A *source* is what the transport knows of where a packet came from, not what the packet claims: the DDS
    publisher's GID, a UDP address. Limiting by the claimed sender would let an outsider's flood in a teammate's
    name shut that teammate out; limiting by source leaves every real teammate its own bucket. Sources beyond
    ``max_sources`` are forgotten oldest first (a forgotten source starts with a full bucket again, so an outsider
    cycling through many sources is held by the link bucket)."""

    def __init__(self, limits: FloodLimits | None = None) -> None:
        self.limits = limits or FloodLimits()
        self._sources: OrderedDict[Hashable, list[float]] = OrderedDict()  # source -> [tokens, time]
        self._numbers: OrderedDict[Hashable, int] = OrderedDict()          # source -> last publication number
        self._link = [self.limits.link_burst, None]

    def admit(self, source: Hashable, now: float) -> bool:
        """Whether to check a packet from ``source`` arriving at ``now`` (seconds, monotonic); False: drop it
        (count it as :data:`.security.DROP_RATE_LIMITED`)."""
        limits = self.limits
        bucket = self._sources.get(source)
        if bucket is None:
            bucket = self._sources[source] = [limits.source_burst, now]
            if len(self._sources) > limits.max_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(source)
            bucket[0] = min(limits.source_burst, bucket[0] + max(0.0, now - bucket[1]) * limits.source_rate)
            bucket[1] = max(now, bucket[1])
        link = self._link
        if link[1] is not None:
            link[0] = min(limits.link_burst, link[0] + max(0.0, now - link[1]) * limits.link_rate)
        link[1] = now if link[1] is None else max(now, link[1])
        if bucket[0] < 1.0 or link[0] < 1.0:
            return False
        bucket[0] -= 1.0
        link[0] -= 1.0
        return True

    def missed(self, source: Hashable, number: int | None) -> int:
        """Packets of ``source`` that never reached me, from the gap before its publication ``number`` (DDS numbers
        each publisher's samples 1, 2, ...); 0 the first time a source is seen (what it sent before is not mine)."""
        if number is None or number <= 0:
            return 0
        last = self._numbers.get(source)
        self._numbers[source] = max(number, last or 0)
        self._numbers.move_to_end(source)
        if len(self._numbers) > self.limits.max_sources:
            self._numbers.popitem(last=False)
        return max(0, number - last - 1) if last is not None else 0


class Receiver:
    """The receiving half of :class:`.link.TeamComm`: verifies, decodes and applies teammates' packets."""

    robot_id: str
    team_ids: frozenset[str]                             # every robot id, mine included
    layout: CommLayout
    config: CommConfig
    signer: PacketSigner
    partners: dict[str, PartnerModel]
    stats: CommStats
    sequence: int                                        # the last sequence number I sent
    sightings: dict[tuple[int, int], Sighting]
    team_layer: np.ndarray                               # comm-cell states heard from teammates
    _state: np.ndarray                                   # my comm-grid view (own + team)

    def receive(self, packet: object, step: int) -> DecodedPacket | None:
        """Verify, decode and apply a teammate's packet; None if it was dropped (counted by reason) or my own."""
        decoded = self.verify(packet, step)
        if decoded is not None:
            self.apply(decoded, step)
        return decoded

    def verify(self, packet: object, step: int) -> DecodedPacket | None:
        """Check and decode a packet without applying it; drops are counted in ``stats.drops``."""
        wire, problem = authenticate(packet, self.signer, self.team_ids)
        if problem is not None:
            return self._drop(problem)
        partner = self.partners.get(wire.sender)
        if partner is None:  # my own id: the echo of a packet I sent, or someone else using my name
            if wire.sequence <= self.sequence:
                self.stats.own_packets_ignored += 1
                return None
            return self._drop(DROP_IMPERSONATION)
        if not self._window_ok(wire.budget_window, step):
            return self._drop(DROP_WINDOW)
        if partner.last_window is not None and wire.budget_window <= partner.last_window:
            return self._drop(DROP_REPLAYED)
        space = self._sequence_space(partner, wire)
        if space is None:
            return self._drop(DROP_SEQUENCE_JUMP)
        if not self._budget_ok(partner, wire):
            return self._drop(DROP_OVER_BUDGET)
        try:
            message = decode_message(wire.payload, wire.payload_bits, self.layout)
        except (MalformedPayload, ValueError, IndexError):
            return self._drop(DROP_MALFORMED_PAYLOAD)
        self._accept(partner, wire, restart=space == "restart")
        return self._resolve(partner, wire, message)

    def _drop(self, reason: str) -> None:
        self.stats.drops[reason] += 1
        return None

    def _window_ok(self, window: int, step: int) -> bool:
        """Inside what my clock allows: a window far ahead would shut the sender out until my clock reached it."""
        return step - self.config.max_packet_age <= window <= step + self.config.max_window_skew

    def _sequence_space(self, partner: PartnerModel, wire: WirePacket) -> str | None:
        """'same' (continues the sender's sequence), 'restart' (a new sequence space: the sender restarted, or two
        consistent packets in a row resynchronise) or None (a jump beyond what it could have sent). The window is
        already known to be newer than the sender's last."""
        if partner.last_sequence is None:
            return "restart"
        sequence, window = wire.sequence, wire.budget_window
        if sequence <= partner.last_sequence:
            return "restart"
        if sequence - window <= partner.sequence_bound + self.config.sequence_slack:
            return "same"
        pending, partner.pending_jump = partner.pending_jump, (sequence, window)
        if pending is not None and 0 < sequence - pending[0] <= window - pending[1] + self.config.sequence_slack:
            return "restart"
        return None

    def _budget_ok(self, partner: PartnerModel, wire: WirePacket) -> bool:
        """Replay the sender's bucket (lenient: a packet lost on the way only leaves it fuller)."""
        ledger = partner.ledger
        if ledger.window is None:
            ledger.window = wire.budget_window
        elif wire.budget_window > ledger.window:  # a refused packet may have advanced it already
            ledger.advance(wire.budget_window)
        return ledger.can_spend(wire.payload_bits)

    def _accept(self, partner: PartnerModel, wire: WirePacket, restart: bool = False) -> None:
        partner.ledger.spend(wire.payload_bits)
        if restart:
            if partner.last_sequence is not None:
                self.stats.sequence_restarts += 1
            partner.restart_sequence_space()
        if partner.first_sequence is None:
            partner.first_sequence = wire.sequence
        offset = wire.sequence - wire.budget_window
        partner.sequence_bound = offset if partner.sequence_bound is None else max(partner.sequence_bound, offset)
        partner.pending_jump = None
        partner.last_sequence = wire.sequence
        partner.last_window = wire.budget_window
        partner.packets_received += 1
        partner.packets_in_space += 1
        self.stats.packets_received += 1
        self.stats.payload_bits_received += wire.payload_bits

    def _resolve(self, partner: PartnerModel, wire: WirePacket, message: Message) -> DecodedPacket:
        """Turn a message into map-frame content (the pose needs this receiver's anchors of the sender)."""
        anchor = self._resolve_pose(partner, wire, message.pose) if message.pose is not None else None
        sightings = []
        for sighting in message.sightings:
            x, y = self.layout.sighting_centre(sighting.cell)
            sightings.append(Sighting(target_label(self.layout.class_names[sighting.class_index]), x, y))
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
            sd = grid_pose_sd(layout, code.modules, code.phase_bits)
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
