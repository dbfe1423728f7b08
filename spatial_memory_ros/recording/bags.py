"""rosbag2 bags without rosbag2: write and read them with ``rosbags`` (pure Python, no rclpy).

A bag is a rosbag2 directory: ``metadata.yaml`` plus one ``<name>.mcap`` file. What the bags do so that a
ROS 2 system (Humble included) accepts them:

- metadata version 8 (``Writer(path, version=8)``): Humble's rosbag2 reads version 8, not version 9;
- mcap storage with the ``ros2`` profile; every channel carries its message definition (``ros2msg`` schema,
  dependencies concatenated), so ``ros2 bag play``, Foxglove and ``mcap-ros2-support`` decode our own
  types (BevMap, TeamPacket, ...) without this package installed;
- ``offered_qos_profiles`` on every topic in the v8 form (integers, durations as sec/nsec; durations we
  do not know are stored as 0 = "default", never the rmw "infinite" sentinel older readers choke on).
  Latched topics (``/robotK/map``) are stored transient local, so ``ros2 bag play`` and
  ``spatial-memory replay`` publish them latched again;
- CRC-32s on every chunk, on the data section and on the summary (rosbags leaves them 0): the writer adds
  them when it closes the bag, and :class:`BagReader` checks them, so a flipped byte anywhere is caught.

The typestore knows the standard types of ROS 2 Kilted (the wire format of the wheels this package runs
on; the types the package uses are the same in Humble) plus this package's ``msg/*.msg``, read from their text.
"""
from __future__ import annotations

import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "spatial_memory_ros"
BAG_VERSION = 8            # Humble's rosbag2 reads metadata version 8; version 9 it refuses
MCAP_MAGIC = b"\x89MCAP0\r\n"
_FOOTER_SIZE = 37          # opcode 1, length 8, summary_start 8, summary_offset_start 8, summary_crc 4, magic 8
_DATA_END_SIZE = 13        # opcode 1, length 8, data_section_crc 4
_OP_CHUNK, _OP_CHUNK_INDEX, _OP_DATA_END, _OP_FOOTER = 0x06, 0x08, 0x0F, 0x02


class BagError(Exception):
    """A bag cannot be written or read: the message says what is wrong and what to do."""


@dataclass(frozen=True)
class BagTopic:
    """One topic of a bag."""

    name: str
    msgtype: str                 # "pkg/msg/Type"
    count: int
    qos: tuple[Qos, ...]         # offered QoS profiles, as recorded

    @property
    def latched(self) -> bool:
        """True if every recorded publisher offered transient local durability."""
        return bool(self.qos) and all(q.durability == QosDurability.TRANSIENT_LOCAL for q in self.qos)

    @property
    def reliable(self) -> bool:
        """True unless a recorded publisher was best effort (no QoS recorded: reliable, as rosbag2 does)."""
        return all(q.reliability != QosReliability.BEST_EFFORT for q in self.qos)


@dataclass(frozen=True)
class BagMessage:
    """One message: topic, type, receive time (ns since the epoch) and its CDR bytes."""

    topic: str
    msgtype: str
    timestamp: int
    data: bytes


# ---------------------------------------------------------------------------------------------- types

def find_msg_dir() -> Path:
    """This package's ``msg/`` folder: beside the source tree, in an install prefix, or on AMENT_PREFIX_PATH."""
    here = Path(__file__).resolve()
    candidates = []
    for parent in list(here.parents)[:6]:
        candidates += [parent / "msg", parent / "share" / PACKAGE / "msg"]
    prefixes = [sys.prefix] + [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    candidates += [Path(prefix) / "share" / PACKAGE / "msg" for prefix in prefixes]
    for candidate in candidates:
        if (candidate / "BevMap.msg").is_file():
            return candidate
    raise BagError(f"cannot find {PACKAGE}'s msg/ folder (looked beside {here.parent} and in share/{PACKAGE}/msg "
                   f"of {prefixes}); build and install the package (make setup, or colcon build) and source it")


def bag_typestore() -> Typestore:
    """A fresh typestore: standard ROS 2 types (Kilted) plus this package's msg/*.msg, registered from their text."""
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(find_msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store


def ensure_type(store: Typestore, msgtype: str) -> None:
    """Make ``msgtype`` known to ``store``, loading it and its dependencies from ``share/<pkg>/msg/`` if needed.

    Raises BagError if a definition cannot be found."""
    pending = [msgtype]
    while pending:
        name = pending.pop()
        if name in store.fielddefs:
            continue
        text = _msg_text(name)
        types = get_types_from_msg(text, name)
        store.register(types)
        pending += [dep for dep in _referenced_types(types[name]) if dep not in store.fielddefs]


def _msg_text(msgtype: str) -> str:
    package, _, name = msgtype.partition("/msg/")
    prefixes = [sys.prefix] + [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in prefixes:
        path = Path(prefix) / "share" / package / "msg" / f"{name}.msg"
        if path.is_file():
            return path.read_text()
    raise BagError(f"no definition of {msgtype}: not a standard ROS 2 type and no share/{package}/msg/{name}.msg "
                   f"in {prefixes}; source the workspace that provides {package}")


def _referenced_types(node) -> Iterator[str]:
    if isinstance(node, str):
        if "/msg/" in node:
            yield node
    elif isinstance(node, (tuple, list)):
        for item in node:
            yield from _referenced_types(item)


# ---------------------------------------------------------------------------------------------- QoS

def make_qos(reliable: bool = True, latched: bool = False, depth: int | None = None) -> Qos:
    """A QoS profile as rosbag2 stores it; ``latched`` means transient local (depth 1 by default)."""
    zero = QosTime(0, 0)
    return Qos(history=QosHistory.KEEP_LAST, depth=depth if depth is not None else (1 if latched else 10),
               reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
               deadline=zero, lifespan=zero, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=zero, avoid_ros_namespace_conventions=False)


# ---------------------------------------------------------------------------------------------- writing

class BagWriter:
    """Writes a rosbag2 bag (mcap, metadata v8, definitions embedded, QoS stored, CRCs filled in).

    ``path`` is the bag directory; it must not exist yet. Use as a context manager or call :meth:`close`:
    an unclosed bag has no summary and readers refuse it.
    """

    def __init__(self, path: Path | str, typestore: Typestore | None = None) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f"{self.path} already exists: choose another --out or remove it")
        self.typestore = typestore or bag_typestore()
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}
        self.bytes_written = 0

    @property
    def mcap_path(self) -> Path:
        """The bag's data file."""
        return self.path / f"{self.path.name}.mcap"

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = (), latched: bool = False) -> None:
        """Declare a topic; ``qos`` are the publishers' offered profiles (default: one reliable, or latched)."""
        if topic in self._connections:
            raise BagError(f"topic {topic} was already added to {self.path}")
        ensure_type(self.typestore, msgtype)
        profiles = list(qos) or [make_qos(latched=latched)]
        self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=self.typestore,
                                                               offered_qos_profiles=profiles)
        self.counts[topic] = 0

    def has_topic(self, topic: str) -> bool:
        """True once ``topic`` was added."""
        return topic in self._connections

    def write(self, topic: str, timestamp: int, data: bytes) -> None:
        """Append one serialized (CDR) message received at ``timestamp`` ns."""
        self._writer.write(self._connections[topic], timestamp, data)
        self.counts[topic] += 1
        self.bytes_written += len(data)

    def close(self) -> None:
        """Write the summary and metadata.yaml, then the CRCs. Safe to call twice."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        writer.close()
        add_mcap_crcs(self.mcap_path)

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def add_mcap_crcs(path: Path) -> None:
    """Fill in the chunk, data-section and summary CRC-32s of an uncompressed mcap file written by rosbags."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        summary_start, _, _ = _footer(data, path)
        for chunk_start in _chunk_offsets(data, summary_start):
            _add_chunk_crc(data, chunk_start)
        data_end = summary_start - _DATA_END_SIZE
        if data[data_end] != _OP_DATA_END:
            raise BagError(f"{path}: no DataEnd record before the summary; not a bag written by rosbags")
        struct.pack_into("<I", data, data_end + 9, zlib.crc32(data[:data_end]))
        footer = len(data) - _FOOTER_SIZE
        struct.pack_into("<I", data, footer + 25, zlib.crc32(data[summary_start:footer + 25]))
        f.seek(0)
        f.write(data)


def _footer(data: bytes | bytearray, path: Path) -> tuple[int, int, int]:
    """(summary_start, summary_offset_start, summary_crc) of an mcap file; BagError if it has no valid end."""
    if len(data) < 8 + _FOOTER_SIZE or data[:8] != MCAP_MAGIC or data[-8:] != MCAP_MAGIC:
        raise BagError(f"{path} is truncated or not an mcap file (no MCAP magic at its start and end): "
                       f"the recorder was probably killed before it closed the bag; record it again")
    footer = len(data) - _FOOTER_SIZE
    if data[footer] != _OP_FOOTER:
        raise BagError(f"{path} has a corrupt footer; record it again")
    return struct.unpack_from("<QQI", data, footer + 9)


def _chunk_offsets(data: bytes | bytearray, summary_start: int) -> Iterator[int]:
    """Start offsets of the chunks, from the ChunkIndex records of the summary."""
    pos, end = summary_start, len(data) - _FOOTER_SIZE
    while pos < end:
        opcode, length = data[pos], struct.unpack_from("<Q", data, pos + 1)[0]
        if opcode == _OP_CHUNK_INDEX:
            yield struct.unpack_from("<Q", data, pos + 9 + 16)[0]
        pos += 9 + length


def _chunk_payload(data: bytes | bytearray, chunk_start: int) -> tuple[int, str, memoryview]:
    """(stored crc, compression, records) of the chunk record at ``chunk_start``."""
    crc = struct.unpack_from("<I", data, chunk_start + 33)[0]
    name_length = struct.unpack_from("<I", data, chunk_start + 37)[0]
    compression = bytes(data[chunk_start + 41:chunk_start + 41 + name_length]).decode()
    size_at = chunk_start + 41 + name_length
    size = struct.unpack_from("<Q", data, size_at)[0]
    return crc, compression, memoryview(data)[size_at + 8:size_at + 8 + size]


def _add_chunk_crc(data: bytearray, chunk_start: int) -> None:
    _, compression, records = _chunk_payload(data, chunk_start)
    if compression == "":
        struct.pack_into("<I", data, chunk_start + 33, zlib.crc32(records))


def check_mcap_crcs(path: Path) -> None:
    """Read the whole file once and check its data-section and summary CRCs (where stored: 0 means none).

    Raises BagError naming what does not match."""
    data = path.read_bytes()
    summary_start, _, summary_crc = _footer(data, path)
    if summary_start:
        if not 8 <= summary_start <= len(data) - _FOOTER_SIZE:
            raise BagError(f"{path} has a corrupt footer (summary offset {summary_start} outside the file)")
        footer = len(data) - _FOOTER_SIZE
        if summary_crc and zlib.crc32(data[summary_start:footer + 25]) != summary_crc:
            raise BagError(f"{path} is corrupt: its summary fails its CRC check; record it again")
        data_end = summary_start - _DATA_END_SIZE
        if data_end >= 8 and data[data_end] == _OP_DATA_END:
            stored = struct.unpack_from("<I", data, data_end + 9)[0]
            if stored and zlib.crc32(memoryview(data)[:data_end]) != stored:
                raise BagError(f"{path} is corrupt: its data section fails its CRC check; record it again")


# ---------------------------------------------------------------------------------------------- reading

class BagReader:
    """Reads a rosbag2 bag (a directory with metadata.yaml, or a lone .mcap / .db3 file).

    Call :meth:`validate` before acting on the messages: it reads the whole bag once (CRCs, every message,
    counts against the metadata, every message decoded) and raises :class:`BagError` if anything is wrong,
    so that a truncated or corrupt bag is refused before a single message is used.
    """

    def __init__(self, path: Path | str, typestore: Typestore | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise BagError(f"no bag at {self.path}: give the bag directory (the one holding metadata.yaml)")
        self.typestore = typestore or bag_typestore()
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as error:  # rosbags raises ReaderError, yaml and OS errors alike
            raise BagError(f"cannot open the bag {self.path}: {error} — it is truncated, corrupt or not a "
                           f"rosbag2 bag; record it again") from error
        self._register_bag_types()

    def _register_bag_types(self) -> None:
        """Types the typestore lacks are taken from the definitions embedded in the bag."""
        for connection in self._reader.connections:
            if connection.msgtype in self.typestore.fielddefs or connection.msgdef.format.name != "MSG":
                continue
            try:
                types = _types_from_embedded(connection.msgdef.data, connection.msgtype)
                self.typestore.register({k: v for k, v in types.items() if k not in self.typestore.fielddefs})
            except Exception as error:
                raise BagError(f"{self.path}: the embedded definition of {connection.msgtype} does not parse "
                               f"({error}); the bag is corrupt") from error

    @property
    def topics(self) -> dict[str, BagTopic]:
        """Topic name -> what the bag holds of it."""
        topics: dict[str, BagTopic] = {}
        for connection in self._reader.connections:
            qos = tuple(getattr(connection.ext, "offered_qos_profiles", ()) or ())
            known = topics.get(connection.topic)
            count = connection.msgcount + (known.count if known else 0)
            topics[connection.topic] = BagTopic(connection.topic, connection.msgtype, count, qos)
        return topics

    @property
    def start_time(self) -> int:
        """Timestamp of the first message (ns)."""
        return self._reader.start_time

    @property
    def duration(self) -> int:
        """Nanoseconds from the first message to the last."""
        return max(0, self._reader.end_time - 1 - self._reader.start_time) if self.message_count else 0

    @property
    def message_count(self) -> int:
        """Messages in the bag, as its metadata says."""
        return self._reader.message_count

    def validate(self) -> dict[str, int]:
        """Check the whole bag; return the message count per topic. Raises BagError if anything is wrong."""
        mcap_files = [self.path] if self.path.suffix == ".mcap" else sorted(self.path.glob("*.mcap"))
        for mcap_file in mcap_files:
            check_mcap_crcs(mcap_file)
        counts = {topic: 0 for topic in self.topics}
        try:
            for message in self._raw_messages(None):
                self.typestore.deserialize_cdr(message.data, message.msgtype)
                counts[message.topic] += 1
        except BagError:
            raise
        except Exception as error:
            raise BagError(f"{self.path} is corrupt: {error} after {sum(counts.values())} good messages; "
                           f"record it again") from error
        expected = {name: topic.count for name, topic in self.topics.items()}
        if counts != expected:
            wrong = {t: (expected[t], counts[t]) for t in counts if counts[t] != expected[t]}
            raise BagError(f"{self.path} is inconsistent: (metadata, found) messages per topic {wrong}; "
                           f"it was probably truncated; record it again")
        return counts

    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """The messages of ``topics`` (all if None) in time order, as raw CDR bytes."""
        try:
            yield from self._raw_messages(None if topics is None else set(topics))
        except BagError:
            raise
        except Exception as error:
            raise BagError(f"reading {self.path} failed: {error}; run validate() first to refuse bad bags "
                           f"before using them") from error

    def _raw_messages(self, topics: set[str] | None) -> Iterator[BagMessage]:
        connections = [c for c in self._reader.connections if topics is None or c.topic in topics]
        if not connections:
            return
        for connection, timestamp, data in self._reader.messages(connections=connections):
            yield BagMessage(connection.topic, connection.msgtype, timestamp, bytes(data))

    def deserialize(self, message: BagMessage) -> object:
        """Decode a message into a rosbags dataclass (fields as in the .msg; arrays as numpy)."""
        return self.typestore.deserialize_cdr(message.data, message.msgtype)

    def close(self) -> None:
        """Close the bag."""
        self._reader.close()

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _types_from_embedded(text: str, msgtype: str) -> dict:
    """Parse a concatenated ros2msg definition (the type, then ``MSG: pkg/msg/Dep`` sections)."""
    separator = "=" * 80 + "\n"
    sections = text.split(separator)
    types = dict(get_types_from_msg(sections[0], msgtype))
    for section in sections[1:]:
        header, _, body = section.partition("\n")
        name = header.removeprefix("MSG: ").strip()
        if "/msg/" not in name:
            name = name.replace("/", "/msg/", 1)
        types.update(get_types_from_msg(body, name))
    return types


def validate_bag(path: Path | str) -> dict[str, int]:
    """Check a whole bag (see :meth:`BagReader.validate`); return its message count per topic."""
    with BagReader(path) as reader:
        return reader.validate()
