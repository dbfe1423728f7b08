"""One robot's end of the team link under a bit budget: :class:`TeamComm` (no ROS).

Each robot owns a :class:`TeamComm`. Once per step it may emit one :class:`.security.WirePacket` (broadcast to the
whole team; the fields map 1:1 onto msg/TeamPacket.msg: sender, sequence, budget_window, payload, payload_bits,
auth_tag) and it verifies, decodes and applies the packets its teammates sent.

The link in modules, each one concern (this one ties them together):
* :mod:`.arithmetic` the arithmetic coder and symbol streams; :mod:`.codec` the message format and its bit costs;
* :mod:`.layout` what teammates agree on to read a payload (comm grid, object classes);
* :mod:`.budget` the token bucket; :mod:`.security` the wire packet, key, tag and stateless packet checks;
* :mod:`.partners` the partner model and pose prediction;
* :mod:`.policy` which items a packet carries (the strategies); :mod:`.receive` checking and applying packets.

TeamComm keeps one robot's link state (its view of the comm grid, the sightings it knows, its partner models, its
bucket and sequence number) and does what every strategy shares: observing the robot's map and memory, sealing the
chosen items into a signed packet, and recording what each teammate now probably holds. Choosing the items is
:class:`.policy.SendPolicy`'s and receiving is :class:`.receive.Receiver`'s; TeamComm inherits both halves, which
work on its state, so callers see one object.
"""
from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from spatial_memory_ros.comm.budget import TokenBucket
from spatial_memory_ros.comm.codec import (FREE_CELL, UNKNOWN_CELL, WALL_CELL, CellCode, Message, PoseCode,
                                           SightingCode, encode_message, raw_cell_bits, sighting_bits)
from spatial_memory_ros.comm.layout import CommLayout
from spatial_memory_ros.comm.partners import (PartnerEstimate, PartnerModel, PoseAnchor, PredictionModel, Sighting,
                                              decode_grid_pose, grid_pose_sd)
from spatial_memory_ros.comm.policy import PacketItem, SendPolicy
from spatial_memory_ros.comm.receive import Receiver
from spatial_memory_ros.comm.security import DROP_REASONS, PacketSigner, WirePacket, envelope_bytes
from spatial_memory_ros.types import GridGeometry, Pose2D, is_target_label, target_class

SAME_TARGET_M = 0.75
STRATEGIES = ("ours", "broadcast", "quota", "none")

# Canonical patch features (free, wall, object, range fractions) of a shared sighting: the packet carries the label
# and place, not the 388 numbers of a memory value; the receiver rebuilds the value from the label's embedding.
SHARED_SIGHTING_FEATURES = (0.5, 0.0, 0.5, 0.5)


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
    max_window_skew: int = 10     # steps a packet's window may lead my clock (clock error + latency)
    max_packet_age: int = 100     # steps it may lag it (older packets are stale: replays after my restart)
    sequence_slack: int = 2       # extra sequence numbers over the windows elapsed (one packet per window)
    tag_bytes: int = 8
    # A comm cell goes out as a wall when at least this share of its seen map cells are walls. At 0.5 a tie is a
    # wall, which keeps a thin wall that fills half a comm cell; above 0.5 a tie is free floor, which keeps a
    # predicted wall face that bleeds one map cell into a corridor from narrowing teammates' corridors by a whole
    # comm cell (on Memory-Maze at 128 bits, see the README's team section).
    wall_share: float = 0.5
    prediction: PredictionModel = field(default_factory=PredictionModel)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        TokenBucket(self.bits_per_step, self.bucket_depth)
        for name in ("max_window_skew", "max_packet_age", "sequence_slack"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100_000:
                raise ValueError(f"CommConfig.{name} must be a whole number of steps in 0..100000, got {value!r}")
        for name in ("threshold", "pose_weight", "cell_weight", "sighting_weight", "goal_weight", "seen_radius"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"CommConfig.{name} must be a non-negative number, got {value}")
        if not (math.isfinite(self.wall_share) and 0.0 < self.wall_share <= 1.0):
            raise ValueError(f"CommConfig.wall_share must be in (0, 1], got {self.wall_share}")


@dataclass
class CommStats:
    """Link statistics of one robot."""

    payload_bits_sent: int = 0
    packets_sent: int = 0
    envelope_bytes_sent: int = 0
    packets_received: int = 0
    payload_bits_received: int = 0
    own_packets_ignored: int = 0
    sequence_restarts: int = 0    # teammates heard again with a new sequence space (a restart)
    drops: Counter = field(default_factory=Counter)

    def drop_counts(self) -> dict[str, int]:
        """Drops by reason, every reason listed."""
        return {reason: int(self.drops.get(reason, 0)) for reason in DROP_REASONS}


class TeamComm(SendPolicy, Receiver):
    """One robot's end of the team link: sends under the budget, verifies and applies what teammates send."""

    def __init__(self, robot_id: str, team: Sequence[str], key: bytes, layout: CommLayout,
                 config: CommConfig | None = None) -> None:
        """``team`` lists every robot id (this one included); packets from anyone else are dropped."""
        self.robot_id, self.layout = robot_id, layout
        self.team_ids = frozenset(team)
        self.config = config or CommConfig()
        if robot_id not in team or len(set(team)) != len(team):
            raise ValueError(f"team {list(team)} must list distinct ids including this robot's {robot_id!r}")
        self.signer = PacketSigner(key, self.config.tag_bytes)
        self.bucket = TokenBucket(self.config.bits_per_step, self.config.bucket_depth)
        self.partners = {rid: PartnerModel(rid, layout.num_cells, TokenBucket(
            self.config.bits_per_step, self.config.bucket_depth, start_full=True)) for rid in team if rid != robot_id}
        self.stats = CommStats()
        self.sequence = 0
        self.last_sent_window: int | None = None
        self.first_window: int | None = None  # of the first make_packet call: the budget's steps count from it
        self.goal_label: str | None = None
        self.team_layer = np.zeros(layout.num_cells, np.int8)      # states heard from teammates
        self.sightings: dict[tuple[int, int], Sighting] = {}        # (class, cell) -> everything known
        self._my_anchors: deque[tuple[PoseAnchor, float]] = deque(maxlen=64)  # (anchor, P(receiver holds it))
        self._state = np.zeros(layout.num_cells, np.int8)          # my current view (own + team)
        self._own_previous = np.zeros(layout.num_cells, np.int8)
        self._fifo: deque[PacketItem] = deque()
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
        if self.first_window is None:
            self.first_window = step
        self._observe(occupancy, sightings)
        if self.last_sent_window is not None and step <= self.last_sent_window:
            return None  # at most one packet a window: receivers refuse a second one as a replay
        items = self._choose_items(step, pose, speed)
        if not items:
            return None
        return self._send(step, items)

    def _observe(self, occupancy: np.ndarray, sightings: Iterable[Sighting]) -> None:
        """Update my comm-grid view from my map and my memory's sightings (and the broadcast queue)."""
        own = coarse_states(occupancy, self.layout.geometry, self.config.wall_share)
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
                    self._fifo.append(PacketItem("sighting", 0.0, sighting_bits(self.layout), SightingCode(*key)))
        self._own_previous = own

    def _sighting_key(self, sighting: Sighting) -> tuple[int, int] | None:
        label = sighting.label.strip().lower()
        if not is_target_label(label) or not (math.isfinite(sighting.x) and math.isfinite(sighting.y)):
            return None
        name = target_class(label).strip()
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
        self._fifo.extend(PacketItem("cell", 0.0, bits, CellCode(int(c), int(own[c]))) for c in new)

    # ------------------------------------------------------------------------------------------ seal

    def _send(self, step: int, items: list[PacketItem]) -> WirePacket | None:
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
        self.last_sent_window = step
        packet = self.signer.sign(self.robot_id, self.sequence, step, payload, bits)
        self._record_sent(step, message, items)
        self.stats.payload_bits_sent += bits
        self.stats.packets_sent += 1
        self.stats.envelope_bytes_sent += envelope_bytes(packet)
        return packet

    def _record_sent(self, step: int, message: Message, items: list[PacketItem]) -> None:
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
            sd, held = grid_pose_sd(self.layout, code.modules, code.phase_bits), delivered
        anchor = PoseAnchor(x, y, self.layout.heading(code.heading_index), self.layout.speed_levels[code.speed_index],
                            step, sd, self.sequence)
        self._my_anchors.append((anchor, held))

    # --------------------------------------------------------------------------------------- read out

    @property
    def budget_steps(self) -> int:
        """Budget windows since the first make_packet call, both ends counted: the bucket has gained
        ``bits_per_step`` for each, so ``stats.payload_bits_sent <= bits_per_step * budget_steps`` always. (A node
        whose step timer runs late calls make_packet less often than the windows pass; dividing by its calls would
        overstate the bits per step.)"""
        if self.first_window is None or self.bucket.window is None:
            return 0
        return self.bucket.window - self.first_window + 1

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


def coarse_states(occupancy: np.ndarray, geometry: GridGeometry, wall_share: float = 0.5) -> np.ndarray:
    """Comm-grid states (flat) of a finer occupancy grid: WALL_CELL if at least ``wall_share`` of the seen fine cells
    are walls (p >= 50), FREE_CELL if any fine cell was seen, else UNKNOWN_CELL."""
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
    states = np.where(seen == 0, UNKNOWN_CELL, np.where(walls >= wall_share * seen, WALL_CELL, FREE_CELL))
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
