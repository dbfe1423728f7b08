"""Snapshots and journal: exact round trips, atomic saves, corrupt files refused, and a SIGKILL mid-write."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from spatial_memory_ros.memory.spatial_memory import SpatialMemory
from spatial_memory_ros.memory.persistence import (
    CorruptFileError,
    DurableMemory,
    Journal,
    atomic_write,
    load_memory,
    load_snapshot,
    replay_journal,
    save_snapshot,
)

REPO = Path(__file__).resolve().parents[1]


def make_memory(n=200, max_size=10_000, seed=0) -> SpatialMemory:
    rng = np.random.default_rng(seed)
    memory = SpatialMemory(2, 6, max_size)
    memory.write(rng.normal(0, 20, (n, 2)), rng.uniform(0.5, 2, n), rng.normal(size=(n, 6)),
                 labels=[f"thing {i % 7} é" for i in range(n)], sources=["robot1", "robot2"] * (n // 2), stamps=3.5)
    return memory


def assert_same(a: SpatialMemory, b: SpatialMemory):
    sa, sb = a.snapshot(), b.snapshot()
    assert (sa.location_dim, sa.value_dim, sa.max_size, sa.next_id) == (sb.location_dim, sb.value_dim, sb.max_size,
                                                                        sb.next_id)
    for name in ("ids", "locations", "location_sds", "values", "stamps"):
        np.testing.assert_array_equal(getattr(sa, name), getattr(sb, name))
    assert sa.labels == sb.labels and sa.sources == sb.sources


# ---------------------------------------------------------------------------------------------------------------
# snapshots


def test_snapshot_round_trip(tmp_path):
    memory = make_memory(max_size=150)  # wrapped ring
    memory.write([[1, 2]], 1.0, np.ones((1, 6)))  # stamps unknown (NaN) for this one
    path = tmp_path / "memory.npz"
    save_snapshot(memory, path)
    assert_same(load_memory(path), memory)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary file left behind"


def test_empty_memory_round_trip(tmp_path):
    memory = SpatialMemory(3, 4, 99)
    memory.write(np.zeros((2, 3)), 1.0, np.zeros((2, 4)))
    memory.clear()
    save_snapshot(memory, tmp_path / "m.npz")
    loaded = load_memory(tmp_path / "m.npz")
    assert len(loaded) == 0 and loaded.next_id == 2 and loaded.max_size == 99


def test_a_failed_save_leaves_the_old_file(tmp_path):
    path = tmp_path / "memory.npz"
    save_snapshot(make_memory(seed=1), path)
    before = path.read_bytes()

    def fail_halfway(file):
        file.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(path, fail_halfway)
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def damaged_copies(path: Path):
    data = path.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    yield "truncated", data[: len(data) // 2]
    yield "flipped byte", bytes(flipped)
    yield "empty", b""
    yield "garbage", b"not a snapshot at all" * 10
    yield "zeros", bytes(len(data))


def test_damaged_snapshots_are_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "memory.npz"
    save_snapshot(make_memory(), path)
    for name, content in damaged_copies(path):
        bad = tmp_path / f"{name.replace(' ', '_')}.npz"
        bad.write_bytes(content)
        with pytest.raises(CorruptFileError, match="not loaded|not a|checksum|truncated") as error:
            load_memory(bad)
        assert str(bad) in str(error.value), name


def test_altered_array_fails_the_checksum(tmp_path):
    path = tmp_path / "memory.npz"
    save_snapshot(make_memory(), path)
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["values"][3, 2] += 1.0
    with open(path, "wb") as file:
        np.savez(file, **arrays)
    with pytest.raises(CorruptFileError, match="SHA-256"):
        load_snapshot(path)


# ---------------------------------------------------------------------------------------------------------------
# journal


def journaled_session(tmp_path, max_size=10_000) -> tuple[SpatialMemory, Path]:
    """A memory whose every change since it was empty went into a journal."""
    memory = SpatialMemory(2, 6, max_size)
    journal = Journal(tmp_path / "j.journal", 2, 6)
    memory.subscribe(journal.record)
    rng = np.random.default_rng(0)
    for i in range(12):
        memory.write(rng.normal(0, 20, (30, 2)), 1.0, rng.normal(size=(30, 6)), labels=f"batch {i}", stamps=float(i))
    memory.remove(memory.snapshot().ids[::5])
    snap = memory.snapshot()
    memory.replace(snap.ids[:4], snap.locations[:4] + 1, 2.0, snap.values[:4] * 2)
    memory.write(rng.normal(0, 20, (7, 2)), 0.5, rng.normal(size=(7, 6)), sources="robot3")
    journal.close()
    return memory, tmp_path / "j.journal"


@pytest.mark.parametrize("max_size", [10_000, 100])
def test_journal_replay_reproduces_the_memory(tmp_path, max_size):
    memory, journal_path = journaled_session(tmp_path, max_size)
    replayed = SpatialMemory(2, 6, max_size)
    report = replay_journal(journal_path, replayed)
    assert report.applied == 15 and report.torn_tail_bytes == 0
    assert_same(replayed, memory)


def test_torn_last_record_is_dropped_and_reported(tmp_path):
    memory, journal_path = journaled_session(tmp_path)
    data = journal_path.read_bytes()
    journal_path.write_bytes(data[:-10])
    replayed = SpatialMemory(2, 6)
    report = replay_journal(journal_path, replayed)
    assert report.applied == 14 and report.torn_tail_bytes > 0 and "torn" in str(report)
    assert replayed.next_id == memory.next_id - 7
    with pytest.raises(CorruptFileError, match="incomplete"):
        replay_journal(journal_path, SpatialMemory(2, 6), strict=True)


def test_damaged_record_in_the_middle_is_corruption(tmp_path):
    _, journal_path = journaled_session(tmp_path)
    data = bytearray(journal_path.read_bytes())
    data[len(data) // 3] ^= 0x55
    journal_path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="byte"):
        replay_journal(journal_path, SpatialMemory(2, 6))


def test_journal_for_other_dimensions_or_not_a_journal_is_refused(tmp_path):
    _, journal_path = journaled_session(tmp_path)
    with pytest.raises(CorruptFileError, match="dims"):
        replay_journal(journal_path, SpatialMemory(3, 6))
    other = tmp_path / "other"
    other.write_bytes(b"hello world, not a journal")
    with pytest.raises(CorruptFileError, match="not a memory journal"):
        replay_journal(other, SpatialMemory(2, 6))


def test_journal_that_skips_ids_is_refused(tmp_path):
    _, journal_path = journaled_session(tmp_path)
    ahead = SpatialMemory(2, 6)
    ahead.write(np.zeros((5, 2)), 1.0, np.zeros((5, 6)))
    ahead.remove(ahead.snapshot().ids)
    with pytest.raises(CorruptFileError, match="does not continue"):
        replay_journal(journal_path, SpatialMemory.from_snapshot(_with_next_id(ahead, 3)))


def _with_next_id(memory: SpatialMemory, next_id: int):
    snap = memory.snapshot()
    snap.next_id = next_id
    return snap


# ---------------------------------------------------------------------------------------------------------------
# DurableMemory


def test_durable_memory_checkpoints_and_reopens(tmp_path):
    path = tmp_path / "memory.npz"
    durable = DurableMemory.open(path, 2, 6, max_size=500)
    rng = np.random.default_rng(1)
    durable.memory.write(rng.normal(size=(300, 2)), 1.0, rng.normal(size=(300, 6)), labels="a")
    durable.checkpoint()
    durable.memory.write(rng.normal(size=(300, 2)), 1.0, rng.normal(size=(300, 6)), labels="b")  # evicts
    durable.memory.prune(max_error=10.0, match_threshold=1.0, max_steps=2)
    durable.close()
    reopened = DurableMemory.open(path, 2, 6, max_size=500)
    assert_same(reopened.memory, durable.memory)
    assert [r.applied for r in reopened.replay_reports] == [2]
    reopened.close()
    with pytest.raises(ValueError, match="dims"):
        DurableMemory.open(path, 2, 7)


def test_interrupted_checkpoint_is_recovered(tmp_path):
    """Killed after the journal was rotated: the rotated journal is replayed too, and twice is harmless."""
    path = tmp_path / "memory.npz"
    durable = DurableMemory.open(path, 2, 6)
    rng = np.random.default_rng(2)
    durable.memory.write(rng.normal(size=(50, 2)), 1.0, rng.normal(size=(50, 6)))
    durable.journal.rotate()  # ... and the snapshot save never happened
    durable.memory.write(rng.normal(size=(20, 2)), 1.0, rng.normal(size=(20, 6)))
    durable.journal.rotate()  # a second interrupted checkpoint appends to the rotated journal
    durable.memory.write(rng.normal(size=(5, 2)), 1.0, rng.normal(size=(5, 6)))
    save_snapshot(durable.memory, path)  # saved, but killed before dropping the rotated journal
    durable.memory.write(rng.normal(size=(5, 2)), 1.0, rng.normal(size=(5, 6)))
    durable.close()
    reopened = DurableMemory.open(path, 2, 6)
    assert_same(reopened.memory, durable.memory)
    reopened.close()


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from spatial_memory_ros.memory.persistence import DurableMemory
    durable = DurableMemory.open(sys.argv[1], 2, 16, max_size=20_000, fsync_interval_s=0.2)
    rng = np.random.default_rng(0)
    writes = 0
    while True:
        ids = durable.memory.write(rng.normal(0, 50, (300, 2)), 0.5, rng.normal(size=(300, 16)), labels="cell",
                                   sources="robot1", stamps=time.time())
        writes += 1
        print(int(ids[-1]), repr(time.time()), flush=True)
        if writes % 25 == 0:
            durable.checkpoint()
    """
)


@pytest.mark.slow
def test_sigkill_during_writes_loses_nothing_older_than_one_second(tmp_path):
    path = tmp_path / "memory.npz"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    acknowledged: list[tuple[int, float]] = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # at least 2 s and three checkpoints of writing
            line = child.stdout.readline()
            if not line:
                break
            last_id, stamp = line.split()
            acknowledged.append((int(last_id), float(stamp)))
            if len(acknowledged) >= 80 and acknowledged[-1][1] - acknowledged[0][1] > 2.0:
                break
    finally:
        child.send_signal(signal.SIGKILL)
        killed_at = time.time()
        child.wait()
    assert len(acknowledged) >= 80, "the child did not write long enough"
    recovered = DurableMemory.open(path, 2, 16, max_size=20_000)
    older = [last_id for last_id, stamp in acknowledged if stamp <= killed_at - 1.0]
    assert older, "no write was older than one second at the kill"
    assert recovered.memory.next_id > max(older)
    assert recovered.memory.next_id > acknowledged[-1][0]  # in fact every acknowledged write survived
    ids = recovered.memory.snapshot().ids
    np.testing.assert_array_equal(ids, np.arange(recovered.memory.next_id - 20_000, recovered.memory.next_id))
    recovered.close()
