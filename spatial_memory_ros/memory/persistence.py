"""Keeping a memory across crashes: atomic snapshot files and an append-only journal of changes since.

Snapshot: one ``.npz`` file (no pickles) with the entries, the id counter and a SHA-256 of every array. It is
written to a temporary file in the same folder, fsynced, renamed over the old one and the folder fsynced, so a
reader sees the old file or the new one, never a mix. ``load_snapshot`` checks format, checksum and consistency and
raises ``CorruptFileError`` (a ValueError) rather than return part of a file.

Journal: a file of records (write, remove, replace), each with its own CRC-32 and a CRC-32 of its header. Records
go to the kernel with one ``os.write`` each, so a process killed with SIGKILL loses at most the record being
written; ``fsync`` runs at most every ``fsync_interval_s`` (power-loss durability) and on ``sync()``. On replay, a
torn last record (what a kill leaves) is reported and skipped; a bad record followed by more data is corruption.

``DurableMemory`` ties both together: open (load + replay), journal every change, ``checkpoint()`` (rotate the
journal under the memory's lock, save the snapshot outside it, then drop the rotated journal).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from spatial_memory_ros.memory.results import MemoryChange, MemorySnapshot
from spatial_memory_ros.memory.spatial_memory import SpatialMemory

SNAPSHOT_FORMAT = "spatial_memory_ros.snapshot"
SNAPSHOT_VERSION = 1
_SNAPSHOT_ARRAYS = (
    "ids", "locations", "location_sds", "values", "stamps", "label_table", "label_index", "source_table",
    "source_index",
)

_JOURNAL_MAGIC = b"SMJOURN1"
_JOURNAL_HEADER = struct.Struct("<8sII")  # magic, location_dim, value_dim
_RECORD_MAGIC = b"SMR1"
_RECORD_HEADER = struct.Struct("<4sIBI")  # magic, payload length, kind, payload CRC-32; then the header's CRC-32
_CRC = struct.Struct("<I")
_RECORD_HEADER_SIZE = _RECORD_HEADER.size + _CRC.size
_KINDS = {"write": 1, "remove": 2, "replace": 3}
_KIND_NAMES = {number: name for name, number in _KINDS.items()}


class CorruptFileError(ValueError):
    """A snapshot or journal that is truncated, altered or not ours; nothing from it was loaded."""


# ----------------------------------------------------------------------------------------------------------------
# Files


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported here (e.g. some network file systems); the rename itself is still atomic
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write a file through ``write(file)`` so that ``path`` holds the old or the new content, never a mix."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


# ----------------------------------------------------------------------------------------------------------------
# Snapshots


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in _SNAPSHOT_ARRAYS:
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _string_table(strings: list[str]) -> tuple[np.ndarray, np.ndarray]:
    table, index = np.unique(np.array(strings, dtype=str), return_inverse=True)
    return table.astype(str), index.astype(np.int32)


def save_snapshot(memory: SpatialMemory | MemorySnapshot, path: str | os.PathLike) -> None:
    """Save a memory (or a snapshot of one) to ``path`` atomically."""
    snapshot = memory.snapshot() if isinstance(memory, SpatialMemory) else memory
    label_table, label_index = _string_table(snapshot.labels)
    source_table, source_index = _string_table(snapshot.sources)
    arrays = {
        "ids": np.asarray(snapshot.ids, np.int64),
        "locations": np.asarray(snapshot.locations, np.float32),
        "location_sds": np.asarray(snapshot.location_sds, np.float32),
        "values": np.asarray(snapshot.values, np.float32),
        "stamps": np.asarray(snapshot.stamps, np.float64),
        "label_table": label_table,
        "label_index": label_index,
        "source_table": source_table,
        "source_index": source_index,
    }
    meta = {
        "format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "location_dim": snapshot.location_dim,
        "value_dim": snapshot.value_dim, "max_size": snapshot.max_size, "next_id": snapshot.next_id,
        "count": len(snapshot), "sha256": _checksum(arrays),
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    atomic_write(path, lambda file: np.savez(file, **arrays))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise CorruptFileError(f"{path} is a single array, not a memory snapshot")
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise
    except CorruptFileError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, zlib.error) as error:
        raise CorruptFileError(
            f"{path} is not a readable memory snapshot (truncated or corrupt: {error}); nothing was loaded. "
            "Restore it from a backup or move it away to start with an empty memory."
        ) from error


def load_snapshot(path: str | os.PathLike) -> MemorySnapshot:
    """Read and verify a snapshot file; raises CorruptFileError if anything about it is wrong."""
    path = Path(path)
    arrays = _read_npz(path)
    try:
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptFileError(f"{path} has no valid metadata ({error}); it is not a memory snapshot") from error
    if meta.get("format") != SNAPSHOT_FORMAT or meta.get("version") != SNAPSHOT_VERSION:
        raise CorruptFileError(f"{path} is format {meta.get('format')!r} v{meta.get('version')}, "
                               f"not {SNAPSHOT_FORMAT} v{SNAPSHOT_VERSION}")
    missing = [name for name in _SNAPSHOT_ARRAYS if name not in arrays]
    if missing:
        raise CorruptFileError(f"{path} lacks arrays {missing}; it is incomplete")
    if _checksum(arrays) != meta.get("sha256"):
        raise CorruptFileError(f"{path} fails its SHA-256 checksum: the file was altered or damaged; not loaded")
    try:
        labels = arrays["label_table"][arrays["label_index"]].tolist()
        sources = arrays["source_table"][arrays["source_index"]].tolist()
        snapshot = MemorySnapshot(
            int(meta["location_dim"]), int(meta["value_dim"]), int(meta["max_size"]), int(meta["next_id"]),
            arrays["ids"], arrays["locations"], arrays["location_sds"], arrays["values"], labels, sources,
            arrays["stamps"],
        )
        if len(snapshot) != meta["count"]:
            raise ValueError(f"{len(snapshot)} entries but the metadata says {meta['count']}")
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise CorruptFileError(f"{path} is inconsistent ({error}); not loaded") from error
    return snapshot


def load_memory(path: str | os.PathLike) -> SpatialMemory:
    """Load a snapshot file into a new memory; raises CorruptFileError if the file is bad."""
    snapshot = load_snapshot(path)
    try:
        return SpatialMemory.from_snapshot(snapshot)
    except ValueError as error:
        raise CorruptFileError(f"{path} holds an invalid memory ({error}); not loaded") from error


# ----------------------------------------------------------------------------------------------------------------
# Journal


def _write_payload(change: MemoryChange) -> bytes:
    n = len(change.ids)
    if change.kind == "write":
        strings = json.dumps([change.labels, change.sources]).encode()
        return b"".join([
            struct.pack("<qI", int(change.ids[0]), n), change.locations.tobytes(), change.location_sds.tobytes(),
            change.values.tobytes(), np.asarray(change.stamps, np.float64).tobytes(), strings,
        ])
    if change.kind == "remove":
        return struct.pack("<I", n) + np.asarray(change.ids, np.int64).tobytes()
    return b"".join([
        struct.pack("<I", n), np.asarray(change.ids, np.int64).tobytes(), change.locations.tobytes(),
        change.location_sds.tobytes(), change.values.tobytes(),
    ])


def _encode_record(change: MemoryChange) -> bytes:
    payload = _write_payload(change)
    header = _RECORD_HEADER.pack(_RECORD_MAGIC, len(payload), _KINDS[change.kind], zlib.crc32(payload))
    return header + _CRC.pack(zlib.crc32(header)) + payload


@dataclass
class ReplayReport:
    """What a journal replay did: records applied, records already in the snapshot, and a torn tail's size."""

    applied: int = 0
    skipped: int = 0
    torn_tail_bytes: int = 0

    def __str__(self) -> str:
        torn = f", dropped a torn last record of {self.torn_tail_bytes} bytes" if self.torn_tail_bytes else ""
        return f"replayed {self.applied} journal records (skipped {self.skipped} already saved){torn}"


class Journal:
    """An append-only file of memory changes; subscribe it to a memory with ``memory.subscribe(journal.record)``."""

    def __init__(self, path: str | os.PathLike, location_dim: int, value_dim: int, *, fsync_interval_s: float = 1.0):
        """Open ``path`` for appending (created with a header if missing; a header for other dims is refused)."""
        self.path = Path(path)
        self._dims = (int(location_dim), int(value_dim))
        self._fsync_interval_s = float(fsync_interval_s)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._last_sync = time.monotonic()
        self._open()

    def _open(self) -> None:
        if not self.path.exists() or self.path.stat().st_size == 0:
            header = _JOURNAL_HEADER.pack(_JOURNAL_MAGIC, *self._dims)
            atomic_write(self.path, lambda file: file.write(header))
        else:
            _check_journal_header(self.path, self._dims)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def record(self, change: MemoryChange) -> None:
        """Append one change (evictions are not recorded: replaying the writes reproduces them)."""
        if change.kind == "evict":
            return
        data = _encode_record(change)
        with self._lock:
            if self._fd is None:
                raise RuntimeError(f"journal {self.path} is closed")
            written = os.write(self._fd, data)
            while written < len(data):  # only for very large records on some file systems
                written += os.write(self._fd, data[written:])
            if time.monotonic() - self._last_sync >= self._fsync_interval_s:
                self._sync_locked()

    def _sync_locked(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
        self._last_sync = time.monotonic()

    def sync(self) -> None:
        """fsync now (call at 1 Hz for power-loss durability when writes may stop for a while)."""
        with self._lock:
            self._sync_locked()

    @property
    def rotated_path(self) -> Path:
        """Where ``rotate`` moves the journal until the snapshot that covers it is saved."""
        return self.path.with_name(self.path.name + ".old")

    def rotate(self) -> None:
        """Move the records so far to ``rotated_path`` (appending if one is left from an interrupted checkpoint)
        and start an empty journal."""
        with self._lock:
            self._sync_locked()
            os.close(self._fd)
            self._fd = None
            rotated = self.rotated_path
            if rotated.exists():
                with open(self.path, "rb") as current, open(rotated, "ab") as old:
                    current.seek(_JOURNAL_HEADER.size)
                    while chunk := current.read(1 << 24):
                        old.write(chunk)
                    old.flush()
                    os.fsync(old.fileno())
                self.path.unlink()
            else:
                os.replace(self.path, rotated)
            _fsync_directory(self.path.parent)
            self._open()

    def drop_rotated(self) -> None:
        """Delete the rotated journal (once a snapshot covering it is saved)."""
        self.rotated_path.unlink(missing_ok=True)
        _fsync_directory(self.path.parent)

    def close(self) -> None:
        """fsync and close."""
        with self._lock:
            if self._fd is not None:
                self._sync_locked()
                os.close(self._fd)
                self._fd = None


def _check_journal_header(path: Path, dims: tuple[int, int] | None) -> tuple[int, int]:
    with open(path, "rb") as file:
        header = file.read(_JOURNAL_HEADER.size)
    if len(header) < _JOURNAL_HEADER.size or header[:8] != _JOURNAL_MAGIC:
        raise CorruptFileError(f"{path} is not a memory journal (bad or short header); move it away")
    _, location_dim, value_dim = _JOURNAL_HEADER.unpack(header)
    if dims is not None and (location_dim, value_dim) != dims:
        raise CorruptFileError(
            f"{path} journals a memory with dims {(location_dim, value_dim)}, not {dims}; it belongs elsewhere"
        )
    return location_dim, value_dim


def _apply_write(memory: SpatialMemory, payload: bytes, report: ReplayReport) -> None:
    d, v = memory.location_dim, memory.value_dim
    first_id, n = struct.unpack_from("<qI", payload)
    offset = struct.calcsize("<qI")
    arrays = []
    for dtype, width in ((np.float32, d), (np.float32, d), (np.float32, v), (np.float64, 1)):
        size = n * width * np.dtype(dtype).itemsize
        arrays.append(np.frombuffer(payload, dtype, n * width, offset).reshape(n, width))
        offset += size
    labels, sources = json.loads(payload[offset:].decode())
    if first_id + n <= memory.next_id:
        report.skipped += 1
        return
    if first_id != memory.next_id:
        raise CorruptFileError(
            f"journal writes ids from {first_id} but the memory's next id is {memory.next_id}: the journal does not "
            "continue this snapshot (entries are missing); not loaded"
        )
    stamps = arrays[3][:, 0]
    memory.write(arrays[0], arrays[1], arrays[2], labels, sources, None if np.isnan(stamps).any() else stamps)
    report.applied += 1


def _apply_edit(memory: SpatialMemory, kind: str, payload: bytes, report: ReplayReport) -> None:
    (n,) = struct.unpack_from("<I", payload)
    ids = np.frombuffer(payload, np.int64, n, 4)
    if kind == "remove":
        memory.remove(ids)
    else:
        d, v = memory.location_dim, memory.value_dim
        offset = 4 + 8 * n
        locations = np.frombuffer(payload, np.float32, n * d, offset).reshape(n, d)
        sds = np.frombuffer(payload, np.float32, n * d, offset + 4 * n * d).reshape(n, d)
        values = np.frombuffer(payload, np.float32, n * v, offset + 8 * n * d).reshape(n, v)
        memory.replace(ids, locations, sds, values)
    report.applied += 1


def _rest_is_zeros(file: BinaryIO) -> bool:
    while chunk := file.read(1 << 20):
        if chunk.strip(b"\0"):
            return False
    return True


def _read_records(path: Path, report: ReplayReport, strict: bool):
    """Yield (kind, payload) of each intact record; stop at a torn tail; raise on corruption in the middle."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        file.seek(_JOURNAL_HEADER.size)
        while True:
            position = file.tell()
            head = file.read(_RECORD_HEADER_SIZE)
            if not head:
                return
            torn = len(head) < _RECORD_HEADER_SIZE
            if not torn:
                magic, length, kind, payload_crc = _RECORD_HEADER.unpack_from(head)
                (header_crc,) = _CRC.unpack_from(head, _RECORD_HEADER.size)
                if magic != _RECORD_MAGIC or header_crc != zlib.crc32(head[: _RECORD_HEADER.size]):
                    file.seek(position)
                    if not _rest_is_zeros(file):
                        raise CorruptFileError(f"{path}: record header at byte {position} is damaged; not loaded")
                    torn = True
                else:
                    torn = position + _RECORD_HEADER_SIZE + length > size
            if torn:
                report.torn_tail_bytes = size - position
                if strict:
                    raise CorruptFileError(f"{path}: last record (byte {position}) is incomplete")
                return
            payload = file.read(length)
            if zlib.crc32(payload) != payload_crc or kind not in _KIND_NAMES:
                if file.read(1):
                    raise CorruptFileError(f"{path}: record at byte {position} fails its CRC-32; not loaded")
                report.torn_tail_bytes = size - position
                if strict:
                    raise CorruptFileError(f"{path}: last record (byte {position}) fails its CRC-32")
                return
            yield _KIND_NAMES[kind], payload


def replay_journal(path: str | os.PathLike, memory: SpatialMemory, *, strict: bool = False) -> ReplayReport:
    """Apply a journal's records to ``memory`` (which holds the snapshot the journal continues).

    Writes already in the memory (ids below its next id) are skipped, so replaying after an interrupted
    checkpoint is safe. A torn last record is dropped and counted (``strict`` raises instead). A damaged record
    with data after it, or a gap in ids, raises CorruptFileError; validate before trusting ``memory`` then, as
    records before the damage were applied (load into a fresh memory to keep all-or-nothing).
    """
    path = Path(path)
    report = ReplayReport()
    _check_journal_header(path, (memory.location_dim, memory.value_dim))
    for kind, payload in _read_records(path, report, strict):
        try:
            if kind == "write":
                _apply_write(memory, payload, report)
            else:
                _apply_edit(memory, kind, payload, report)
        except (struct.error, ValueError, UnicodeDecodeError) as error:
            if isinstance(error, CorruptFileError):
                raise
            raise CorruptFileError(f"{path}: a {kind} record does not decode ({error}); not loaded") from error
    return report


# ----------------------------------------------------------------------------------------------------------------
# A memory that survives crashes


class DurableMemory:
    """A SpatialMemory with a snapshot file and a journal: every change is journaled as it happens.

    Use ``durable.memory`` for writes, reads and samples as usual; call ``checkpoint()`` now and then (it keeps
    the journal short) and ``close()`` at the end.
    """

    def __init__(self, memory: SpatialMemory, snapshot_path: str | os.PathLike,
                 journal_path: str | os.PathLike | None = None, *, fsync_interval_s: float = 1.0):
        """Journal ``memory``'s changes from now on (see ``open`` to load what a previous run left)."""
        self.memory = memory
        self.snapshot_path = Path(snapshot_path)
        journal_path = Path(journal_path) if journal_path else self.snapshot_path.with_name(
            self.snapshot_path.name + ".journal")
        self.journal = Journal(journal_path, memory.location_dim, memory.value_dim, fsync_interval_s=fsync_interval_s)
        self.replay_reports: list[ReplayReport] = []
        memory.subscribe(self.journal.record)

    @classmethod
    def open(cls, snapshot_path: str | os.PathLike, location_dim: int, value_dim: int, max_size: int = 1_000_000,
             *, journal_path: str | os.PathLike | None = None, fsync_interval_s: float = 1.0,
             strict: bool = False) -> DurableMemory:
        """Load the snapshot (if any), replay the rotated and the current journal (if any), and keep journaling.

        Raises CorruptFileError for a bad snapshot or journal, ValueError when the files hold other dimensions.
        """
        snapshot_path = Path(snapshot_path)
        journal_path = Path(journal_path) if journal_path else snapshot_path.with_name(snapshot_path.name + ".journal")
        if snapshot_path.exists():
            memory = load_memory(snapshot_path)
            if (memory.location_dim, memory.value_dim) != (location_dim, value_dim):
                raise ValueError(f"{snapshot_path} holds dims {(memory.location_dim, memory.value_dim)}, "
                                 f"not {(location_dim, value_dim)}")
        else:
            memory = SpatialMemory(location_dim, value_dim, max_size)
        reports = []
        for path in (journal_path.with_name(journal_path.name + ".old"), journal_path):
            if path.exists() and path.stat().st_size > 0:
                reports.append(replay_journal(path, memory, strict=strict))
        durable = cls(memory, snapshot_path, journal_path, fsync_interval_s=fsync_interval_s)
        durable.replay_reports = reports
        return durable

    def checkpoint(self) -> None:
        """Save a snapshot and start a fresh journal; writes may go on while the file is written."""
        with self.memory.lock:
            snapshot = self.memory.snapshot()
            self.journal.rotate()
        save_snapshot(snapshot, self.snapshot_path)
        self.journal.drop_rotated()

    def sync(self) -> None:
        """fsync the journal now."""
        self.journal.sync()

    def close(self) -> None:
        """Stop journaling and close the journal (no snapshot is written; call ``checkpoint`` first for one)."""
        self.memory.unsubscribe(self.journal.record)
        self.journal.close()
