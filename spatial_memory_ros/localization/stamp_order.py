"""Odometry, BEVs and maps released in stamp order, so a localizer's belief does not depend on message timing.

A localizer path-integrates odometry, corrects with each BEV against a map, and gets that map from a memory that
is itself built from the localizer's poses. Live, the three streams interleave however the network and the CPU
deliver them; replayed from a bag, differently again. ``StampOrder`` holds them back just enough that the belief is
the same function of the messages either way:

- an odometry step waits until a BEV stamped at or after it has arrived (so a late BEV still goes in its place),
  at most ``odom_hold`` seconds of odometry;
- a BEV waits until the odometry has reached its stamp, then is matched against the newest map stamped at or
  before ``stamp - map_lag``; that choice is final once a map stamped after that time has arrived (maps come in
  stamp order), or after ``map_wait`` seconds of odometry with no such map (no memory running).

With ``map_lag`` = 0 a BEV goes with the newest map, whatever its stamp (a fixed prior map).
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterator

STAMP_EPS = 1e-6


@dataclass(frozen=True)
class StampOrderConfig:
    """How long each stream may be held back (seconds of stamps) and how much is kept."""

    map_lag: float = 2.0
    map_wait: float = 3.0
    odom_hold: float = 2.0
    max_pending_bevs: int = 50
    max_maps: int = 64
    max_pending_odometry: int = 10_000

    def __post_init__(self) -> None:
        for name in ("map_lag", "map_wait", "odom_hold"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"StampOrderConfig.{name} must be >= 0 seconds, got {getattr(self, name)}")


@dataclass(frozen=True)
class Release:
    """One input whose turn has come: ``kind`` is "odometry" or "bev"; a BEV comes with the map to match it
    against (None: none fits) and ``map_waited_out`` when no map settled the choice in time."""

    kind: str
    stamp: float
    item: Any
    map: Any = None
    map_waited_out: bool = False


class StampOrder:
    """Queues of odometry steps, BEVs and maps; ``releases()`` yields what may be applied now, in stamp order."""

    def __init__(self, config: StampOrderConfig | None = None) -> None:
        self.config = config or StampOrderConfig()
        self._odometry: deque[tuple[float, Any]] = deque()
        self._bevs: list[tuple[float, Any]] = []
        self._maps: deque[tuple[float, Any]] = deque(maxlen=self.config.max_maps)
        self._last_odometry: float | None = None
        self._first_bev: float | None = None
        self._newest_bev: float | None = None
        self._newest_odometry: float | None = None

    def add_odometry(self, stamp: float, item: Any) -> None:
        """Queue an odometry step (beyond max_pending_odometry, the oldest goes out without waiting for BEVs)."""
        self._odometry.append((stamp, item))
        self._newest_odometry = stamp if self._newest_odometry is None else max(stamp, self._newest_odometry)

    def add_bev(self, stamp: float, item: Any) -> bool:
        """Queue a BEV in stamp order; False if the queue was full and its oldest BEV was dropped."""
        if self._first_bev is None:
            self._first_bev = stamp
        self._newest_bev = stamp if self._newest_bev is None else max(stamp, self._newest_bev)
        bisect.insort(self._bevs, (stamp, item), key=lambda entry: entry[0])
        if len(self._bevs) > self.config.max_pending_bevs:
            self._bevs.pop(0)
            return False
        return True

    def add_map(self, stamp: float, item: Any) -> None:
        """Keep a map (the last ``max_maps``) for the BEVs to come."""
        self._maps.append((stamp, item))

    def releases(self) -> Iterator[Release]:
        """Every odometry step and BEV whose turn is certain now, in stamp order."""
        while True:
            odom = self._odometry[0] if self._odometry else None
            bev = self._bevs[0] if self._bevs else None
            if odom is not None and (bev is None or odom[0] <= bev[0] + STAMP_EPS):
                if bev is None and not self._odometry_may_go(odom[0]) \
                        and len(self._odometry) <= self.config.max_pending_odometry:
                    return
                self._odometry.popleft()
                self._last_odometry = odom[0]
                yield Release("odometry", odom[0], odom[1])
            elif bev is not None and self._odometry_reached(bev[0]):
                ready, chosen, waited_out = self._map_for(bev[0])
                if not ready:
                    return
                self._bevs.pop(0)
                yield Release("bev", bev[0], bev[1], chosen, waited_out)
            else:
                return

    def _odometry_may_go(self, stamp: float) -> bool:
        """With no BEV waiting: no BEV stamped before ``stamp`` can still come, or odometry waited odom_hold."""
        if self._newest_bev is not None and self._newest_bev >= stamp - STAMP_EPS:
            return True
        return self._newest_odometry - stamp >= self.config.odom_hold

    def _odometry_reached(self, stamp: float) -> bool:
        if self._last_odometry is not None and self._last_odometry >= stamp - STAMP_EPS:
            return True
        return bool(self._odometry) and self._odometry[0][0] > stamp + STAMP_EPS

    def _map_for(self, stamp: float) -> tuple[bool, Any, bool]:
        """(ready, map, waited out) for a BEV at ``stamp``."""
        lag = self.config.map_lag
        if lag <= 0.0:
            return True, self._maps[-1][1] if self._maps else None, False
        target = stamp - lag
        older = [item for map_stamp, item in self._maps if map_stamp <= target + STAMP_EPS]
        chosen = older[-1] if older else None
        if target < self._first_bev - STAMP_EPS:
            return True, chosen, False  # no map built from these BEVs can be that old: only a prior map
        if self._maps and self._maps[-1][0] > target + STAMP_EPS:
            return True, chosen, False
        if self._newest_odometry is not None and self._newest_odometry - stamp > self.config.map_wait:
            return True, chosen, True
        return False, None, False
