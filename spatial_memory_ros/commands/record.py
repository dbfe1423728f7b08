"""spatial-memory record --out DIR: record live topics into a rosbag2 bag (mcap, readable by Humble and later).

Topics that do not exist yet are waited for and recorded from the moment a publisher appears; each is
subscribed with its publishers' QoS (transient local for latched topics such as /robotK/map, so the bag
gets their last message even if it was published before the recorder started). Messages are stored as
received (raw CDR, never deserialized), stamped with the recorder's receive time like ``ros2 bag record``.

In-process use (the demo's ``RECORD=1``)::

    stop = threading.Event()
    thread = threading.Thread(target=record, args=(default_topics(3), Path("runs/x/bag"), stop))
    thread.start(); ...; stop.set(); thread.join()      # the bag is closed and complete after join()
"""
from __future__ import annotations

import argparse
import importlib
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from spatial_memory_ros.recording.bags import BagError, BagWriter, make_qos

ROBOT_TOPICS = ("camera/image_raw", "odom", "initialpose", "ground_truth/pose", "ground_truth/bev", "bev", "pose",
                "map", "belief", "memory/entries", "partners", "comm/stats")
SHARED_TOPICS = ("/team/packets", "/clock", "/ground_truth/map")
ADAPTATION_TOPICS = ("camera/image_raw", "camera/camera_info", "scan", "camera/depth", "odom")
"""What ``spatial-memory train bev --bag`` reads (a camera and the scan or depth image that labels it), plus odometry:
the topic names of sim_world and of robot.launch.py's remappings, under the robot's namespace."""
SUBSCRIPTION_DEPTH = 100     # deep enough that a burst (a fast sim, a busy CPU) is not dropped


def default_topics(robots: int) -> list[str]:
    """What ``record`` takes by default: every robot's sensors, ground truth, BEV, pose and map; the team link."""
    return [f"/robot{k}/{name}" for k in range(1, robots + 1) for name in ROBOT_TOPICS] + list(SHARED_TOPICS)


def adaptation_topics(namespace: str = "") -> list[str]:
    """The topics ``--adaptation`` records, under ``namespace`` ('' for a robot whose drivers publish at the root:
    /camera/image_raw, /camera/camera_info, /scan, /camera/depth, /odom)."""
    prefix = f"/{namespace.strip('/')}/" if namespace.strip("/") else "/"
    return [prefix + name for name in ADAPTATION_TOPICS]


def add_parser(subparsers) -> None:
    """Add ``record`` to the CLI."""
    parser = subparsers.add_parser(
        "record", help="record topics into a rosbag2 bag (mcap; ros2 bag, Foxglove and replay read it)",
        description="Subscribe to the chosen topics (waiting for any that do not exist yet) and write a rosbag2 "
                    "bag: mcap storage, metadata version 8 (Humble reads it), message definitions embedded, "
                    "latched topics' QoS stored. Stop with Ctrl-C or --duration; the bag is closed cleanly.",
        epilog="examples:\n  spatial-memory record --out runs/bag1 --duration 60\n"
               "  spatial-memory record --out runs/maps --topics /robot1/map /robot2/map /ground_truth/map\n"
               "  spatial-memory record --adaptation --out runs/robot-bag --duration 300   # a robot's camera + "
               "scan/depth for train bev --bag\n"
               "  spatial-memory record --adaptation --namespace robot1 --out runs/sim-bag --duration 300\n"
               "  spatial-memory record --out runs/robot-bag --topics /camera/color/image_raw "
               "/camera/color/camera_info /camera/depth/image_raw /scan /odom   # other driver names",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the bag directory to create (must not exist)")
    parser.add_argument("--topics", nargs="+", default=None, metavar="TOPIC",
                        help="topics to record (default: camera/image_raw, odom, ground_truth/pose, "
                             "ground_truth/bev, bev, initialpose, pose, map, belief, memory/entries, partners, comm/stats of every "
                             "robot, "
                             "/team/packets, /clock, /ground_truth/map)")
    parser.add_argument("--robots", type=int, default=3, help="robots for the default topics (default 3)")
    parser.add_argument("--adaptation", action="store_true",
                        help="record what `spatial-memory train bev --bag` adapts the camera model from: "
                             "camera/image_raw, camera/camera_info, scan, camera/depth, odom under --namespace "
                             "(whichever of them the robot has; a bag needs the camera and a scan or a depth image)")
    parser.add_argument("--namespace", default="",
                        help="the robot's namespace for --adaptation (default none: /camera/image_raw, /scan, ...)")
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many wall seconds (default: until Ctrl-C)")
    parser.add_argument("--quiet", action="store_true", help="no status line")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Record until Ctrl-C or --duration; print what was recorded; exit 1 if the bag cannot be written."""
    if args.adaptation and args.topics:
        print("--adaptation chooses the topics itself; give --topics instead to name them", file=sys.stderr)
        return 1
    topics = args.topics or (adaptation_topics(args.namespace) if args.adaptation else default_topics(args.robots))
    if args.duration is not None and args.duration <= 0:
        print(f"--duration must be > 0, got {args.duration}", file=sys.stderr)
        return 1
    status = None if args.quiet else StatusLine()
    print(f"recording {len(topics)} topics to {args.out} (Ctrl-C stops and closes the bag)", file=sys.stderr)
    try:
        result = record(topics, args.out, duration=args.duration, on_status=status, handle_signals=True)
    except BagError as error:
        print(error, file=sys.stderr)
        return 1
    if status:
        status.finish()
    print(result.report())
    return 0


@dataclass
class RecordResult:
    """What a recording wrote."""

    path: Path
    counts: dict[str, int] = field(default_factory=dict)       # topic -> messages written
    waiting: list[str] = field(default_factory=list)            # wanted topics that never appeared
    skipped: dict[str, str] = field(default_factory=dict)       # topic -> why it could not be recorded
    seconds: float = 0.0
    bytes: int = 0

    def report(self) -> str:
        """A table of what was recorded, and what was not."""
        lines = [f"bag {self.path}: {sum(self.counts.values())} messages, {self.bytes / 1e6:.2f} MB of payload "
                 f"in {self.seconds:.1f} s"]
        lines += [f"  {count:8d}  {topic}" for topic, count in sorted(self.counts.items())]
        lines += [f"  (never appeared) {topic}" for topic in self.waiting]
        lines += [f"  (skipped) {topic}: {why}" for topic, why in self.skipped.items()]
        return "\n".join(lines)


def record(topics: Sequence[str], out_dir: Path | str, stop_event: threading.Event | None = None, *,
           duration: float | None = None, context=None, on_status: Callable[[str], None] | None = None,
           handle_signals: bool = False) -> RecordResult:
    """Record ``topics`` into the bag directory ``out_dir`` until ``stop_event`` is set or ``duration`` wall
    seconds pass; close the bag and return what was written. Blocks; call it from a thread to record beside
    other work. Uses ``context`` (an initialised rclpy Context) or creates and shuts down its own.
    ``handle_signals``: let rclpy turn Ctrl-C / SIGTERM into a clean stop (main thread only)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    stop_event = stop_event or threading.Event()
    writer = BagWriter(out_dir)
    own_context = context is None
    if own_context:
        context = init_context(handle_signals)
    node = rclpy.create_node("spatial_memory_recorder", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    recorder = TopicRecorder(node, writer, topics)
    start = time.monotonic()
    try:
        _spin_until_stopped(executor, context, stop_event, start, duration, recorder, on_status)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        writer.close()
        _tear_down(executor, node, context, own_context)
    return recorder.result(time.monotonic() - start)


def init_context(handle_signals: bool = False):
    """A fresh, initialised rclpy Context; rclpy's Ctrl-C / SIGTERM handling only if asked and in the main thread."""
    import rclpy

    context = rclpy.context.Context()
    try:
        from rclpy.signals import SignalHandlerOptions
    except ImportError:  # an rclpy without the option installs its handlers itself
        rclpy.init(args=[], context=context)
        return context
    in_main = threading.current_thread() is threading.main_thread()
    options = SignalHandlerOptions.ALL if handle_signals and in_main else SignalHandlerOptions.NO
    rclpy.init(args=[], context=context, signal_handler_options=options)
    return context


def _spin_until_stopped(executor, context, stop_event, start, duration, recorder, on_status) -> None:
    last_status = 0.0
    while context.ok() and not stop_event.is_set():
        now = time.monotonic()
        if duration is not None and now - start >= duration:
            break
        executor.spin_once(timeout_sec=0.1)
        if on_status and now - last_status >= 1.0:
            on_status(recorder.status_text(now - start))
            last_status = now


def _tear_down(executor, node, context, own_context: bool) -> None:
    import rclpy

    executor.remove_node(node)
    node.destroy_node()
    executor.shutdown(timeout_sec=1.0)
    if own_context:
        rclpy.try_shutdown(context=context)


class TopicRecorder:
    """Subscribes ``node`` to each wanted topic once it has a publisher and writes what arrives to ``writer``.

    Works on any rclpy node spun by the caller's executor (the discovery timer runs on it)."""

    def __init__(self, node, writer: BagWriter, topics: Sequence[str], discovery_period: float = 0.5) -> None:
        self.node = node
        self.writer = writer
        self.wanted = list(dict.fromkeys(_absolute(topic) for topic in topics))
        self.subscriptions: dict[str, object] = {}
        self.skipped: dict[str, str] = {}
        self._timer = node.create_timer(discovery_period, self.discover)
        self.discover()

    def discover(self) -> None:
        """Subscribe to every wanted topic that has appeared since the last look."""
        types = dict(self.node.get_topic_names_and_types())
        for topic in self.wanted:
            if topic in self.subscriptions or topic in self.skipped or topic not in types:
                continue
            publishers = self.node.get_publishers_info_by_topic(topic)
            if publishers:
                self._subscribe(topic, types[topic][0], publishers)

    def _subscribe(self, topic: str, msgtype: str, publishers) -> None:
        try:
            message_type = message_class(msgtype)
            self.writer.add_topic(topic, msgtype, qos=[offered_qos(p.qos_profile) for p in publishers])
        except (BagError, ImportError) as error:
            self.skipped[topic] = str(error)
            self.node.get_logger().warning(f"cannot record {topic} ({msgtype}): {error}")
            return
        self.subscriptions[topic] = self.node.create_subscription(
            message_type, topic, partial(self._on_message, topic), subscription_qos(publishers), raw=True)

    def _on_message(self, topic: str, data: bytes) -> None:
        self.writer.write(topic, self.node.get_clock().now().nanoseconds, data)

    @property
    def waiting(self) -> list[str]:
        """Wanted topics not subscribed yet."""
        return [t for t in self.wanted if t not in self.subscriptions and t not in self.skipped]

    def status_text(self, elapsed: float) -> str:
        """One status line: time, topics, messages, megabytes."""
        return (f"recording {elapsed:6.1f} s  topics {len(self.subscriptions)}/{len(self.wanted)}  "
                f"messages {sum(self.writer.counts.values()):7d}  {self.writer.bytes_written / 1e6:7.2f} MB")

    def result(self, seconds: float) -> RecordResult:
        """What was written so far."""
        return RecordResult(self.writer.path, dict(self.writer.counts), self.waiting, dict(self.skipped),
                            seconds, self.writer.bytes_written)


def message_class(msgtype: str):
    """The Python class of a ROS type string ``pkg/msg/Type`` (ImportError naming the package if missing)."""
    parts = msgtype.split("/")
    if len(parts) != 3:
        raise ImportError(f"not a ROS message type string: {msgtype!r} (expected pkg/msg/Type)")
    package, kind, name = parts
    try:
        return getattr(importlib.import_module(f"{package}.{kind}"), name)
    except (ImportError, AttributeError) as error:
        raise ImportError(f"{msgtype} is not importable here ({error}); install or source {package}") from error


def offered_qos(profile):
    """rclpy's QoSProfile of a publisher -> the rosbags Qos stored in the bag (unknown depth -> rosbag2 default)."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    latched = profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
    reliable = profile.reliability != ReliabilityPolicy.BEST_EFFORT
    return make_qos(reliable=reliable, latched=latched)


def subscription_qos(publishers):
    """A subscription QoS every publisher of a topic can serve: reliable / transient local only if all offer it."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    profiles = [p.qos_profile for p in publishers]
    reliable = all(p.reliability == ReliabilityPolicy.RELIABLE for p in profiles)
    latched = all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in profiles)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=SUBSCRIPTION_DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else f"/{topic}"


class StatusLine:
    """A status line on stderr: rewritten in place on a terminal, one line every 10 s otherwise."""

    def __init__(self, period_if_not_tty: float = 10.0) -> None:
        self._tty = sys.stderr.isatty()
        self._period = period_if_not_tty
        self._last = 0.0

    def __call__(self, text: str) -> None:
        if self._tty:
            sys.stderr.write("\r" + text)
            sys.stderr.flush()
        elif time.monotonic() - self._last >= self._period:
            self._last = time.monotonic()
            print(text, file=sys.stderr, flush=True)

    def finish(self) -> None:
        """End the line."""
        if self._tty:
            sys.stderr.write("\n")
