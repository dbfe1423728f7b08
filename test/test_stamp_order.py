"""localization/stamp_order.py: odometry, BEVs and maps released in stamp order, whatever order they arrive in."""
from __future__ import annotations

import random

import pytest

from spatial_memory_ros.localization.stamp_order import StampOrder, StampOrderConfig

DT = 0.1


def _stream(steps: int, map_period: float = 1.0) -> list[tuple[str, float]]:
    """The live order of a lockstep robot: odometry and BEV of each step, then the memory's map after the first
    BEV of each map period (map(T) is stamped with that BEV's stamp)."""
    messages, slot = [], None
    for k in range(steps):
        stamp = round(k * DT, 6)
        messages += [("odometry", stamp), ("bev", stamp)]
        if slot is None or int(stamp // map_period) > slot:
            slot = int(stamp // map_period)
            messages.append(("map", stamp))
    return messages


def _feed(order: StampOrder, messages: list[tuple[str, float]]) -> list[tuple]:
    released = []
    for kind, stamp in messages:
        if kind == "odometry":
            order.add_odometry(stamp, f"odom@{stamp}")
        elif kind == "bev":
            order.add_bev(stamp, f"bev@{stamp}")
        else:
            order.add_map(stamp, f"map@{stamp}")
        released += [(r.kind, r.stamp, r.item, r.map) for r in order.releases()]
    return released


def _shuffled_by_stream(messages: list, rng: random.Random) -> list:
    """Each stream keeps its own order (as one DDS publisher does), the streams interleave at random."""
    streams = {kind: [m for m in messages if m[0] == kind] for kind in ("odometry", "bev", "map")}
    out = []
    while any(streams.values()):
        kind = rng.choice([k for k, v in streams.items() if v])
        out.append(streams[kind].pop(0))
    return out


def test_the_live_order_releases_everything_with_the_lagged_map():
    released = _feed(StampOrder(StampOrderConfig(map_lag=2.0)), _stream(60))
    bevs = [r for r in released if r[0] == "bev"]
    assert [r[0] for r in released].count("odometry") == 60 and len(bevs) >= 55
    assert all(r[3] is None for r in bevs if r[1] < 2.0 - 1e-9)        # no map of these BEVs is that old
    assert dict((r[1], r[3]) for r in bevs)[3.5] == "map@1.0"            # 3.5 - 2 s -> the map of 1.0 s
    kinds_by_time = [(r[1], r[0] == "bev") for r in released]
    assert kinds_by_time == sorted(kinds_by_time)                       # odometry of T before the BEV of T


@pytest.mark.parametrize("seed", range(20))
def test_any_interleaving_of_the_streams_gives_the_same_releases(seed):
    """Random interleavings run one stream up to the whole episode ahead: waits long enough for that (the
    defaults give up after 2-3 s, which only a stream missing for that long triggers)."""
    live = _stream(60)
    config = StampOrderConfig(map_wait=100.0, odom_hold=100.0)
    expected = _feed(StampOrder(config), live)
    again = _feed(StampOrder(config), _shuffled_by_stream(live, random.Random(seed)))
    assert len(expected) == 120 and again == expected


def test_odometry_waits_for_a_bev_at_or_after_it_but_not_forever():
    order = StampOrder(StampOrderConfig(odom_hold=0.5))
    order.add_odometry(0.0, "a")
    assert list(order.releases()) == []
    order.add_odometry(0.3, "b")
    assert list(order.releases()) == []
    order.add_odometry(0.6, "c")                                        # 0.6 s after the first: it goes
    assert [r.item for r in order.releases()] == ["a"]
    order.add_bev(0.3, "bev")
    assert [(r.kind, r.item) for r in order.releases()] == [("odometry", "b"), ("bev", "bev")]


def test_a_bev_waits_for_its_map_then_gives_up_after_map_wait():
    order = StampOrder(StampOrderConfig(map_lag=1.0, map_wait=0.5))
    order.add_bev(0.0, "first")
    order.add_odometry(0.0, "o0")
    assert [r.kind for r in order.releases()] == ["odometry", "bev"]     # too early for any map of ours
    order.add_map(0.0, "m0")
    order.add_bev(2.0, "late")
    order.add_odometry(2.0, "o2")
    assert [r.kind for r in order.releases()] == ["odometry"]            # map of 1.0 s not settled yet
    order.add_odometry(2.6, "o3")
    (release,) = [r for r in order.releases() if r.kind == "bev"]
    assert release.map == "m0" and release.map_waited_out


def test_map_lag_zero_takes_the_newest_map():
    order = StampOrder(StampOrderConfig(map_lag=0.0))
    order.add_map(5.0, "prior")
    order.add_odometry(1.0, "o")
    order.add_bev(1.0, "b")
    bev = [r for r in order.releases() if r.kind == "bev"][0]
    assert bev.map == "prior" and not bev.map_waited_out


def test_a_full_bev_queue_drops_the_oldest_and_says_so():
    order = StampOrder(StampOrderConfig(max_pending_bevs=2))
    assert order.add_bev(0.0, "a") and order.add_bev(0.1, "b")
    assert not order.add_bev(0.2, "c")


def test_negative_settings_are_refused():
    with pytest.raises(ValueError, match="map_lag"):
        StampOrderConfig(map_lag=-1.0)
