"""The partner model ("social place cells"): what one robot knows about each teammate and what it told it (no ROS).

For each teammate: what it told me (its pose anchors by sequence number, its last known motion, packets, a
loss-rate estimate from sequence gaps) and what I told it (the probability it holds my current state of each comm
cell and of each sighting, raised by each send by the delivery probability, and by what it saw itself near its
reported track). Its position between packets is a Gaussian path-integrated from its last known motion (speed
decaying with time constant ``motion_tau``) whose variance grows by ``diffusion`` m^2/s.

Why this is its own module: the sender's policy and the receiver both read and update these models, and the pose
prediction here is what makes a delta or grid-code pose decodable at all.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from spatial_memory_ros.comm.budget import TokenBucket
from spatial_memory_ros.comm.codec import PoseCode
from spatial_memory_ros.comm.layout import CommLayout


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


def grid_pose_sd(layout: CommLayout, modules: int, bits: int) -> float:
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
        self.first_sequence: int | None = None     # of the current sequence space (since its last restart)
        self.last_window: int | None = None        # of the last packet accepted: windows only go forward
        self.sequence_bound: int | None = None     # highest (sequence - window) accepted in this sequence space
        self.pending_jump: tuple[int, int] | None = None  # (sequence, window) of the last packet refused as a jump
        self.packets_received = 0
        self.packets_in_space = 0
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
        return (expected - self.packets_in_space + 1.0) / (expected + 10.0)

    def restart_sequence_space(self) -> None:
        """The teammate restarted (or resynchronised): its sequence numbers start over, so the anchors its deltas
        refer to and the loss estimate start over too."""
        self.first_sequence = self.last_sequence = self.sequence_bound = self.pending_jump = None
        self.packets_in_space = 0
        self.anchors.clear()

    def remember_anchor(self, anchor: PoseAnchor, keep: int = 64) -> None:
        """Keep an anchor for later deltas (the last ``keep``)."""
        self.anchors[anchor.sequence] = anchor
        while len(self.anchors) > keep:
            self.anchors.popitem(last=False)
        if self.belief is None or anchor.window >= self.belief.window:
            self.belief = anchor

