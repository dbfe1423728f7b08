"""What to send: the choice of items for one robot's next packet under its bit budget (no ROS).

Policy ("ours"). Candidate items are valued by the expected error they remove in the teammates' predictions, summed
over the teammates that are still heard: a cell a teammate probably lacks is worth 1, a sighting 30 (300 for the
team goal, which is critical news and goes first: while it does not fit the bucket nothing else is sent, so the
bucket saves up for it), the pose ``pose_weight`` x (squared prediction error + variance).
Items are packed greedily by value per bit into what the bucket holds; the packet goes only when its value per bit
reaches ``threshold`` x (1 - bucket fill), so bits are held back until an update is worth its cost and are not
wasted once the bucket is full. Baselines on the same accounting: "none"; "broadcast" (each step's new own cells and
sightings appended to a FIFO, sent raw after an absolute pose, truncated to what the bucket holds); "quota"
(broadcast limited to ``quota_rounds`` = 20 packets, SSM-PC's quota).

Why this is its own module: choosing what to send is the link's research question (the strategies are what the
benchmarks compare), while observing, sealing and bookkeeping (:mod:`.link`) and receiving (:mod:`.receive`) are
plumbing that every strategy shares. :class:`SendPolicy` is the sending half of :class:`.link.TeamComm`; it reads
the state TeamComm keeps (listed on the class) and returns :class:`PacketItem` lists that TeamComm seals.
"""
from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from spatial_memory_ros.comm.budget import TokenBucket
from spatial_memory_ros.comm.codec import (UNKNOWN_CELL, BlockCode, PoseCode, SightingCode, block_bits, framing_bits,
                                           pose_bits, sighting_bits)
from spatial_memory_ros.comm.layout import CommLayout
from spatial_memory_ros.comm.partners import PartnerModel, PoseAnchor, Sighting, decode_grid_pose
from spatial_memory_ros.types import Pose2D

if TYPE_CHECKING:
    from spatial_memory_ros.comm.link import CommConfig, CommStats

MIN_PACKET_BITS = 12  # framing plus the cheapest item: below this nothing useful fits
GRID_POSE_MIN_BITS = 22  # 3 modules x 2 phases x 2 bits plus heading, speed and the mode symbols


@dataclass
class PacketItem:
    """One thing a packet may carry, with its value to the team and its ideal code length."""

    kind: str          # "pose", "sighting", "block", "cell"
    value: float
    bits: float
    payload: object    # PoseCode, SightingCode, BlockCode or CellCode
    critical: bool = False


class SendPolicy:
    """The sending half of :class:`.link.TeamComm`: which items its next packet carries ('ours', 'broadcast',
    'quota'); an empty list keeps the robot silent this step."""

    layout: CommLayout
    config: CommConfig
    bucket: TokenBucket
    partners: dict[str, PartnerModel]
    stats: CommStats
    sequence: int
    goal_label: str | None
    sightings: dict[tuple[int, int], Sighting]
    _state: np.ndarray                                   # my comm-grid view (own + team)
    _my_anchors: deque[tuple[PoseAnchor, float]]         # my poses as sent, and P(receivers hold them)
    _fifo: deque[PacketItem]                             # broadcast baselines' queue
    _grid_checks: dict[tuple, tuple[PoseCode, tuple[float, float]] | None]

    def _choose_items(self, step: int, pose: Pose2D, speed: float) -> list[PacketItem]:
        """The items of the packet to send at ``step`` under the configured strategy; [] to stay silent."""
        if self.config.strategy == "none":
            return []
        if self.config.strategy == "ours":
            return self._select_ours(step, pose, speed)
        return self._select_broadcast(step, pose, speed)

    def _active_partners(self, step: int) -> list[PartnerModel]:
        """Teammates still worth spending on: heard within ``silent_after_s`` (or never heard yet)."""
        limit = self.config.silent_after_s / self.config.prediction.dt
        return [p for p in self.partners.values() if p.last_heard_step is None or step - p.last_heard_step <= limit]

    # ------------------------------------------------------------------------------------------- ours

    def _select_ours(self, step: int, pose: Pose2D, speed: float) -> list[PacketItem]:
        partners = self._active_partners(step)
        if not partners or self.bucket.tokens < MIN_PACKET_BITS:
            return []
        candidates = self._sighting_items(partners) + self._block_items(partners)
        pose_item = self._pose_item(step, pose, speed, partners)
        if pose_item is not None:
            candidates.append(pose_item)
        candidates.sort(key=lambda item: (not item.critical, -item.value / max(item.bits, 1e-9)))
        chosen = self._pack(candidates)
        waiting = [item for item in candidates if item.critical and self._packet_bits([item]) <= self.bucket.depth]
        if waiting and not any(item.critical for item in chosen):
            return []  # critical news first: save up for it rather than spend the bucket on anything else
        if not chosen:
            return []
        if any(item.critical for item in chosen):
            return chosen
        value = sum(item.value for item in chosen)
        bits = self._packet_bits(chosen)
        return chosen if value / bits >= self.config.threshold * (1.0 - self.bucket.fill) else []

    def _pack(self, candidates: list[PacketItem]) -> list[PacketItem]:
        """Greedy knapsack: take items in order while the ideal packet length fits the bucket."""
        chosen: list[PacketItem] = []
        least_ratio = 0.25 * self.config.threshold * (1.0 - self.bucket.fill)
        for item in candidates:
            if item.value <= 0 or (not item.critical and item.value < least_ratio * item.bits):
                continue
            if self._packet_bits(chosen + [item]) <= self.bucket.tokens:
                chosen.append(item)
        return chosen

    def _packet_bits(self, items: Sequence[PacketItem]) -> float:
        counts = Counter(item.kind for item in items)
        return (framing_bits(counts["sighting"], counts["block"], counts["cell"])
                + sum(item.bits for item in items) + 2.0 + 0.001 * len(items))

    def _sighting_items(self, partners: list[PartnerModel]) -> list[PacketItem]:
        items = []
        for key, sighting in self.sightings.items():
            lacking = sum(1.0 - p.sightings_known.get(key, 0.0) for p in partners)
            is_goal = self.goal_label is not None and sighting.label.strip().lower() == self.goal_label
            weight = self.config.goal_weight if is_goal else self.config.sighting_weight
            critical = is_goal and any(p.sightings_known.get(key, 0.0) < 0.9 for p in partners)
            if lacking > 1e-3:
                items.append(PacketItem("sighting", weight * lacking, sighting_bits(self.layout), SightingCode(*key),
                                   critical))
        return items

    def _block_items(self, partners: list[PartnerModel]) -> list[PacketItem]:
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
            items.append(PacketItem("block", float(need[cells].sum()), block_bits(code, self.layout), code))
        return items

    def _pose_item(self, step: int, pose: Pose2D, speed: float, partners: list[PartnerModel]) -> PacketItem | None:
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
                options.append(PacketItem("pose", gain * held, pose_bits(delta, self.layout), delta))
                if held >= 0.5 and options[0].bits <= GRID_POSE_MIN_BITS:
                    return options[0]  # a grid-code pose costs more and gains at most 1 / held
        affordable = self.bucket.tokens >= framing_bits(0, 0, 0) + GRID_POSE_MIN_BITS
        grid = self._grid_pose(pose, prior, heading, speed_index) if affordable else None
        if grid is not None:
            options.append(PacketItem("pose", gain, pose_bits(grid[0], self.layout), grid[0]))
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

    def _select_broadcast(self, step: int, pose: Pose2D, speed: float) -> list[PacketItem]:
        if self.config.strategy == "quota" and self.stats.packets_sent >= self.config.quota_rounds:
            self._fifo.clear()
            return []
        modules, bits = self.layout.grid_modules, 3 if 3 in self.layout.phase_bits else self.layout.phase_bits[-1]
        codes = self.layout.grid_code(modules).encode_position((pose.x, pose.y), bits)
        code = PoseCode(self.layout.heading_index(pose.theta), self.layout.speed_index(speed), modules=modules,
                        phase_bits=bits, phases=tuple(int(v) for v in codes.reshape(-1)))
        chosen = [PacketItem("pose", 0.0, pose_bits(code, self.layout), code)]
        needed = self._packet_bits(chosen + ([self._fifo[0]] if self._fifo else []))
        if needed > self.bucket.tokens:
            return []
        while self._fifo and self._packet_bits(chosen + [self._fifo[0]]) <= self.bucket.tokens:
            chosen.append(self._fifo.popleft())
        return chosen


def _block_sums(values: np.ndarray, layout: CommLayout) -> np.ndarray:
    """Sum of a per-cell array over each block."""
    g, size = layout.geometry, layout.block_size
    rows, cols = layout.blocks_across
    padded = np.zeros((rows * size, cols * size), values.dtype)
    padded[:g.height, :g.width] = values.reshape(g.height, g.width)
    return padded.reshape(rows, size, cols, size).sum(axis=(1, 3)).reshape(-1)
