"""The memory/merge path's bounds (memory/validation.py MergeGate, issue 15e): absurd entries are refused before
anything is built from them, and a stream of well-formed ones is held to a rate and a total."""
import pytest

from spatial_memory_ros.memory.validation import MergeGate, MergeLimits

EXTENT = (0.0, 0.0, 9.0, 9.0)


def _fields(n, label="red target", source="robot2", x=1.0, y=1.0, sd=0.5, value=()):
    return [label] * n, [source] * n, [x] * n, [y] * n, [sd] * n, [value] * n


@pytest.mark.parametrize("fields, says", [
    (_fields(100, label="x" * 1_000_000, x=3e37), "characters"),
    (_fields(1, x=3e37), "outside the map"),
    (_fields(1, y=float("nan")), "outside the map"),
    (_fields(1, source="robot2\n"), "printable"),
    (_fields(1, sd=1e9), "location_sd"),
    (_fields(1, value=[1e30] * 388), "values beyond"),
    (_fields(1001), "in one message"),
])
def test_absurd_entries_are_refused_with_a_reason(fields, says):
    gate = MergeGate(EXTENT)
    reason, detail = gate.check_fields(*fields)
    assert reason == "merged entries out of bounds" and says in detail
    assert gate.accepted == 0


def test_a_stream_of_well_formed_entries_is_held_to_the_rate_and_the_total():
    gate = MergeGate(EXTENT, MergeLimits(max_entries=500, rate=10.0, burst=100.0))
    assert gate.check_fields(*_fields(50)) is None
    assert gate.admit(50, now=0.0) is None and gate.admit(50, now=0.0) is None
    assert gate.admit(1, now=0.0)[0] == "merged entries over the rate"
    assert gate.admit(10, now=1.0) is None  # 10 a second come back
    taken = sum(gate.admit(10, now=2.0 + t) is None for t in range(100))
    assert gate.accepted == 500 and taken == 39  # the total caps however long the stream
    assert gate.admit(1, now=1e6)[0] == "merged entries over the total"
