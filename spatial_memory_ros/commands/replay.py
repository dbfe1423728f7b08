"""spatial-memory replay BAG: publish a recorded bag again, with its original timing (scaled) and /clock.

The whole bag is checked first (CRCs, every message read and decoded, counts against the metadata): a
truncated or corrupt bag is refused with a clear error before anything is published. Each topic is
published with the QoS its recorded publishers offered (``offered_qos_profiles``): latched topics
(transient local) stay latched, so a subscriber that joins late (RViz, a node started afterwards) still
gets the last map. /clock is published from the bag time unless the bag's own /clock is being replayed.

Lockstep (``--lockstep INPUT=OUTPUT``): before the next message on INPUT, wait until the nodes' answer to the last
one has come out on OUTPUT (a message stamped at or after it), as sim_world waits for every controller's cmd_vel.
Best-effort camera frames are then never dropped by a busy consumer, and a replay gives the same results however
loaded the machine is (each wait gives up after ``--lockstep-timeout`` seconds, with a warning).
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from spatial_memory_ros.commands.record import StatusLine, init_context, message_class
from spatial_memory_ros.recording.bags import BagError, BagMessage, BagReader, BagTopic

CLOCK_TOPIC = "/clock"
CLOCK_RATE = 40.0          # Hz of bag time, as ros2 bag play --clock


def add_parser(subparsers) -> None:
    """Add ``replay`` to the CLI."""
    parser = subparsers.add_parser(
        "replay", help="publish a recorded bag with its original timing and /clock; latched topics stay latched",
        description="Check the whole bag, then publish its messages with the recorded timing scaled by --rate "
                    "(0: as fast as possible), with each topic's recorded QoS, and /clock from the bag time "
                    "(unless the bag's own /clock is replayed).",
        epilog="examples:\n  spatial-memory replay runs/bag1\n"
               "  spatial-memory replay runs/bag1 --rate 0 --topics /robot1/camera/image_raw /robot1/odom\n"
               "  spatial-memory replay runs/bag1 --rate 2 --loop\n"
               "  spatial-memory replay runs/bag1 --rate 0 --topics /robot1/camera/image_raw /robot1/odom "
               "/robot1/initialpose --lockstep /robot1/camera/image_raw=/robot1/pose",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bag", type=Path, help="the bag directory (holding metadata.yaml) or its .mcap file")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="speed-up over the recorded timing; 0 = as fast as possible (default 1)")
    parser.add_argument("--topics", nargs="+", default=None, metavar="TOPIC", help="replay only these topics")
    parser.add_argument("--loop", action="store_true", help="start again at the end, until Ctrl-C")
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock from the bag time")
    parser.add_argument("--delay", type=float, default=0.5,
                        help="seconds to wait after creating the publishers, for discovery (default 0.5)")
    parser.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SECONDS",
                        help="before starting, wait up to SECONDS until every replayed topic has a subscriber "
                             "(default 0: do not wait)")
    parser.add_argument("--linger", type=float, default=0.5,
                        help="seconds to keep publishing latched topics after the end (default 0.5)")
    parser.add_argument("--lockstep", nargs="+", default=(), metavar="INPUT=OUTPUT",
                        help="before the next message on INPUT, wait until a message stamped at or after the last "
                             "one came out on OUTPUT, e.g. /robot1/camera/image_raw=/robot1/bev "
                             "/robot1/camera/image_raw=/robot1/pose (the consumers took it)")
    parser.add_argument("--lockstep-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="give up one lockstep wait after SECONDS, with a warning (default 10)")
    parser.add_argument("--quiet", action="store_true", help="no status line")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Replay the bag; exit 1 (having published nothing) if it is unreadable, corrupt or its types are unknown."""
    if args.rate < 0:
        print(f"--rate must be >= 0 (0 = as fast as possible), got {args.rate}", file=sys.stderr)
        return 1
    status = None if args.quiet else StatusLine()
    try:
        result = replay(args.bag, rate=args.rate, topics=args.topics, loop=args.loop, clock=not args.no_clock,
                        delay=args.delay, linger=args.linger, wait_for_subscribers=args.wait_for_subscribers,
                        lockstep=args.lockstep, lockstep_timeout=args.lockstep_timeout, on_status=status,
                        handle_signals=True)
    except (BagError, ValueError) as error:
        print(f"replay refused: {error}", file=sys.stderr)
        return 1
    if status:
        status.finish()
    print(result.report())
    return 0


@dataclass
class ReplayResult:
    """What a replay published."""

    bag: Path
    counts: dict[str, int] = field(default_factory=dict)   # topic -> messages published (over all loops)
    clock_messages: int = 0                                 # /clock messages generated from the bag time
    loops: int = 0
    seconds: float = 0.0
    lockstep_timeouts: int = 0                              # lockstep waits that gave up

    def report(self) -> str:
        """A table of what was published."""
        lines = [f"replayed {self.bag}: {sum(self.counts.values())} messages in {self.seconds:.1f} s "
                 f"({self.loops} pass{'es' if self.loops != 1 else ''}), {self.clock_messages} generated /clock"
                 + (f", {self.lockstep_timeouts} lockstep waits timed out" if self.lockstep_timeouts else "")]
        lines += [f"  {count:8d}  {topic}" for topic, count in sorted(self.counts.items())]
        return "\n".join(lines)


def replay(bag: Path | str, *, rate: float = 1.0, topics: Sequence[str] | None = None, loop: bool = False,
           clock: bool = True, delay: float = 0.5, linger: float = 0.5, wait_for_subscribers: float = 0.0,
           lockstep: Sequence[str] = (), lockstep_timeout: float = 10.0,
           stop_event: threading.Event | None = None, context=None,
           on_status: Callable[[str], None] | None = None, handle_signals: bool = False) -> ReplayResult:
    """Validate ``bag`` whole, then publish it; return what was published. Raises BagError, having published
    nothing, if the bag is bad, a topic is not in it or a type is not importable. Blocks until the end
    (every pass with ``loop``) or ``stop_event``. Uses ``context`` or creates and shuts down its own.

    ``wait_for_subscribers``: wait up to this many seconds for every replayed topic to have a subscriber
    (then ``delay`` more), so that nothing is lost to slow discovery; ``linger``: seconds to keep the
    publishers (and so the latched messages) alive after the end; ``lockstep``: 'INPUT=OUTPUT' pairs (see the
    module docstring), each wait at most ``lockstep_timeout`` seconds. Raises ValueError for a malformed pair."""
    pairs = parse_lockstep(lockstep)
    reader = BagReader(bag)
    try:
        reader.validate()
        selected = _select_topics(reader, topics)
        classes = _message_classes(selected)
        unknown = sorted({source for source, _ in pairs} - set(selected))
        if unknown:
            raise ValueError(f"--lockstep inputs {unknown} are not among the replayed topics {sorted(selected)}")
        return _publish_bag(reader, selected, classes, rate=rate, loop=loop, clock=clock, delay=delay,
                            linger=linger, wait_for_subscribers=wait_for_subscribers,
                            lockstep=(pairs, lockstep_timeout),
                            stop_event=stop_event or threading.Event(), context=context, on_status=on_status,
                            handle_signals=handle_signals)
    finally:
        reader.close()


def parse_lockstep(pairs: Sequence[str]) -> list[tuple[str, str]]:
    """'INPUT=OUTPUT' strings -> (input, output) topic pairs (absolute names)."""
    parsed = []
    for pair in pairs:
        source, _, output = pair.partition("=")
        if not source.strip() or not output.strip():
            raise ValueError(f"--lockstep takes INPUT=OUTPUT topic pairs, got {pair!r}")
        parsed.append(tuple(t if t.startswith("/") else f"/{t}" for t in (source.strip(), output.strip())))
    return parsed


def _select_topics(reader: BagReader, topics: Sequence[str] | None) -> dict[str, BagTopic]:
    available = reader.topics
    if topics is None:
        return available
    wanted = [t if t.startswith("/") else f"/{t}" for t in topics]
    missing = [t for t in wanted if t not in available]
    if missing:
        raise BagError(f"not in {reader.path}: {missing}; it has {sorted(available)}")
    return {t: available[t] for t in wanted}


def _message_classes(selected: dict[str, BagTopic]) -> dict[str, type]:
    classes, unknown = {}, []
    for topic in selected.values():
        try:
            classes[topic.name] = message_class(topic.msgtype)
        except ImportError as error:
            unknown.append(f"{topic.name}: {error}")
    if unknown:
        raise BagError("cannot publish these topics (leave them out with --topics): " + "; ".join(unknown))
    return classes


def publisher_qos(topic: BagTopic):
    """The QoS to replay a topic with: from its recorded offers (latched -> transient local, depth 1)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    depth = max([q.depth for q in topic.qos if q.depth > 0], default=1 if topic.latched else 10)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if topic.reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if topic.latched else DurabilityPolicy.VOLATILE)


def _publish_bag(reader: BagReader, selected: dict[str, BagTopic], classes: dict[str, type], *, rate, loop,
                 clock, delay, linger, wait_for_subscribers, lockstep, stop_event, context, on_status,
                 handle_signals) -> ReplayResult:
    import rclpy
    from rclpy.executors import ExternalShutdownException

    own_context = context is None
    if own_context:
        context = init_context(handle_signals)
    node = rclpy.create_node("spatial_memory_replay", context=context)
    result = ReplayResult(reader.path, {name: 0 for name in selected})
    start = time.monotonic()
    gate = None
    try:
        publishers = {name: node.create_publisher(classes[name], name, publisher_qos(topic))
                      for name, topic in selected.items()}
        clock_pub = _clock_publisher(node) if clock and CLOCK_TOPIC not in selected else None
        pairs, lockstep_timeout = lockstep
        gate = _Lockstep(node, reader, classes, pairs, lockstep_timeout, stop_event, result) if pairs else None
        player = _Player(reader, publishers, clock_pub, rate, stop_event, context, result, on_status, gate)
        _wait_for_subscribers(node, publishers, wait_for_subscribers, stop_event, context)
        if gate is not None:
            gate.wait_for_publishers(max(wait_for_subscribers, lockstep_timeout))
        _sleep_while_running(delay, stop_event, context)
        while not stop_event.is_set() and context.ok():
            player.play_once(list(selected))
            result.loops += 1
            if not loop:
                break
        _sleep_while_running(linger, stop_event, context)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        result.seconds = time.monotonic() - start
        if gate is not None:
            gate.executor.shutdown()
        node.destroy_node()
        if own_context:
            rclpy.try_shutdown(context=context)
    return result


def _clock_publisher(node):
    from rosgraph_msgs.msg import Clock

    return node.create_publisher(Clock, CLOCK_TOPIC, 10)


def _wait_for_subscribers(node, publishers: dict, timeout: float, stop_event: threading.Event, context) -> None:
    """Wait up to ``timeout`` s until every publisher has a matched subscriber; warn about those without."""
    if timeout <= 0:
        return
    deadline = time.monotonic() + timeout
    lonely = list(publishers)
    while lonely and time.monotonic() < deadline and not stop_event.is_set() and context.ok():
        time.sleep(0.05)
        lonely = [topic for topic, publisher in publishers.items() if publisher.get_subscription_count() == 0]
    if lonely:
        node.get_logger().warning(f"no subscriber after {timeout:g} s on {lonely}; replaying anyway")


def _sleep_while_running(seconds: float, stop_event: threading.Event, context) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stop_event.is_set() and context.ok():
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


class _Player:
    """Publishes one pass of the bag, paced by the recorded timestamps, with /clock ticks in between."""

    def __init__(self, reader, publishers, clock_pub, rate, stop_event, context, result, on_status,
                 gate: _Lockstep | None = None) -> None:
        self.reader, self.publishers, self.clock_pub, self.gate = reader, publishers, clock_pub, gate
        self.rate, self.stop_event, self.context = rate, stop_event, context
        self.result, self.on_status = result, on_status
        self._tick_ns = int(1e9 / CLOCK_RATE)
        self._last_clock: int | None = None
        self._last_status = 0.0

    def play_once(self, topics: list[str]) -> None:
        """Publish every message of ``topics`` once, in time order."""
        bag_start, wall_start = self.reader.start_time, time.monotonic()
        self._last_clock = None
        stream = _Lookahead(self.reader.messages(topics))
        for message in stream:
            if self.stop_event.is_set() or not self.context.ok():
                return
            if self.gate is not None:
                self.gate.before(message, stream, self._publish)
            if self.rate > 0:
                self._wait_for(message.timestamp, bag_start, wall_start)
            self._publish(message)
            if self.gate is not None:
                self.gate.after(message)
        if self.gate is not None:
            self.gate.wait_all()

    def _wait_for(self, stamp: int, bag_start: int, wall_start: float) -> None:
        """Sleep until the wall time of ``stamp``, publishing /clock at CLOCK_RATE of bag time meanwhile."""
        target = wall_start + (stamp - bag_start) / 1e9 / self.rate
        while (remaining := target - time.monotonic()) > 0 and not self.stop_event.is_set():
            time.sleep(min(remaining, 1.0 / CLOCK_RATE / self.rate, 0.05))
            now_bag = bag_start + int((time.monotonic() - wall_start) * self.rate * 1e9)
            self._maybe_clock(min(now_bag, stamp))

    def _publish(self, message: BagMessage) -> None:
        self._maybe_clock(message.timestamp)
        self.publishers[message.topic].publish(message.data)
        self.result.counts[message.topic] += 1
        if self.on_status and time.monotonic() - self._last_status >= 1.0:
            self._last_status = time.monotonic()
            done = (message.timestamp - self.reader.start_time) / 1e9
            self.on_status(f"replaying {done:7.1f} / {self.reader.duration / 1e9:.1f} s of bag time  "
                           f"pass {self.result.loops + 1}  messages {sum(self.result.counts.values()):7d}")

    def _maybe_clock(self, stamp: int) -> None:
        if self.clock_pub is None or (self._last_clock is not None and stamp - self._last_clock < self._tick_ns):
            return
        from rosgraph_msgs.msg import Clock

        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(stamp, 1_000_000_000)
        self.clock_pub.publish(msg)
        self._last_clock = stamp
        self.result.clock_messages += 1


class _Lookahead:
    """The bag's messages in order, from which later messages can be taken out ahead of their turn."""

    LIMIT = 10_000  # messages scanned ahead at most (a bound on memory)

    def __init__(self, messages: Iterable[BagMessage]) -> None:
        self._source: Iterator[BagMessage] = iter(messages)
        self._buffer: deque[BagMessage] = deque()

    def __iter__(self) -> _Lookahead:
        return self

    def __next__(self) -> BagMessage:
        return self._buffer.popleft() if self._buffer else next(self._source)

    def take(self, stop: Callable[[BagMessage], bool], wanted: Callable[[BagMessage], bool]) -> list[BagMessage]:
        """Remove and return the upcoming messages for which ``wanted`` holds, scanning up to the first one for
        which ``stop`` holds; the others stay, in order."""
        taken: list[BagMessage] = []
        kept: deque[BagMessage] = deque()
        while len(kept) + len(taken) < self.LIMIT:
            message = self._buffer.popleft() if self._buffer else next(self._source, None)
            if message is None:
                break
            if stop(message):
                kept.append(message)
                break
            (taken if wanted(message) else kept).append(message)
        kept.extend(self._buffer)
        self._buffer = kept
        return taken


class _Lockstep:
    """Holds each lockstep input's next message until the consumers have answered its last one: a message stamped
    at or after it on every paired output (header stamps; the outputs' types come from the bag or the graph)."""

    def __init__(self, node, reader: BagReader, classes: dict[str, type], pairs: list[tuple[str, str]],
                 timeout: float, stop_event: threading.Event, result: ReplayResult) -> None:
        from rclpy.executors import SingleThreadedExecutor

        self.node, self.classes, self.timeout, self.stop_event, self.result = node, classes, timeout, stop_event, result
        self.outputs: dict[str, list[str]] = {}
        for source, output in pairs:
            self.outputs.setdefault(source, []).append(output)
        self.latest: dict[str, int] = {}       # output -> newest header stamp seen (ns)
        self.pending: dict[str, int] = {}      # input -> header stamp of its last message, still unanswered
        self.matched: dict[str, int] | None = {}  # output -> publishers our subscription is connected to
        self.executor = SingleThreadedExecutor(context=node.context)
        self.executor.add_node(node)
        for output in sorted({o for outputs in self.outputs.values() for o in outputs}):
            msg_class, qos = self._output_type(reader, output)
            self._subscribe(msg_class, output, qos)

    def _subscribe(self, msg_class: type, output: str, qos) -> None:
        """Subscribe to ``output``, counting the publishers it is connected to (where the middleware tells)."""
        from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError

        def on_message(msg, topic=output):
            self._on_output(topic, msg)

        if self.matched is not None:
            def on_matched(info, topic=output):
                self.matched[topic] = info.current_count
            try:
                self.node.create_subscription(msg_class, output, on_message, qos,
                                              event_callbacks=SubscriptionEventCallbacks(matched=on_matched))
                return
            except UnsupportedEventTypeError:  # a middleware without matched events: fall back to the graph
                self.matched = None
        self.node.create_subscription(msg_class, output, on_message, qos)

    def _output_type(self, reader: BagReader, topic: str):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        recorded = reader.topics.get(topic)
        if recorded is not None:
            reliable = recorded.reliable
            return message_class(recorded.msgtype), QoSProfile(
                depth=100, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            types = dict(self.node.get_topic_names_and_types())
            if topic in types:
                return message_class(types[topic][0]), QoSProfile(depth=100,
                                                                  reliability=ReliabilityPolicy.BEST_EFFORT)
            time.sleep(0.1)
        raise BagError(f"--lockstep output {topic} is neither in the bag nor published by any node: its type is "
                       f"unknown")

    def wait_for_publishers(self, timeout: float) -> None:
        """Wait until every output's subscription is connected to a publisher, so that the first answers are not
        missed to discovery (seeing a publisher in the graph is not enough: our reader may not be matched to it
        yet, and a volatile answer published before that is lost, which stalls the lockstep for its timeout)."""
        deadline = time.monotonic() + timeout
        outputs = sorted({o for outputs in self.outputs.values() for o in outputs})
        while time.monotonic() < deadline and not self.stop_event.is_set() and self.node.context.ok():
            if all(self._connected(output) for output in outputs):
                return
            self.executor.spin_once(timeout_sec=0.05)
        lonely = [output for output in outputs if not self._connected(output)]
        if lonely:
            self.node.get_logger().warning(f"lockstep: no publisher on {lonely} after {timeout:g} s; going on")

    def _connected(self, output: str) -> bool:
        if self.matched is None:
            return self.node.count_publishers(output) > 0
        return self.matched.get(output, 0) > 0

    def _on_output(self, topic: str, msg) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.latest[topic] = max(stamp, self.latest.get(topic, stamp))

    def before(self, message: BagMessage, upcoming: _Lookahead, publish: Callable[[BagMessage], None]) -> None:
        """Wait until the last message on ``message``'s topic (if a lockstep input) has been answered.

        The answer may need messages that the recorder wrote after ``message``: on a busy machine the odometry of
        step k can reach the bag after the image of step k + 1, and the pose of step k needs it. Those messages
        (stamped at or before the unanswered one, up to the next lockstep input) are published first, so the
        wait does not stall for its whole timeout."""
        if message.topic not in self.pending:
            return
        stamp = self.pending[message.topic]

        def late(candidate: BagMessage) -> bool:
            candidate_stamp = self._header_stamp(candidate)
            return candidate_stamp is not None and candidate_stamp <= stamp

        for late_message in upcoming.take(stop=lambda m: m.topic in self.outputs, wanted=late):
            publish(late_message)
        self._wait(message.topic)

    def _header_stamp(self, message: BagMessage) -> int | None:
        """``message``'s header stamp (ns), or None for a message without a header."""
        from rclpy.serialization import deserialize_message

        header = getattr(deserialize_message(message.data, self.classes[message.topic]), "header", None)
        return None if header is None else header.stamp.sec * 1_000_000_000 + header.stamp.nanosec

    def after(self, message: BagMessage) -> None:
        """Remember the stamp of a lockstep input just published."""
        if message.topic in self.outputs:
            self.pending[message.topic] = self._header_stamp(message)

    def wait_all(self) -> None:
        """Wait for the answers to every input's last message (the end of a pass)."""
        for source in list(self.pending):
            self._wait(source)

    def _answered(self, source: str) -> bool:
        stamp = self.pending[source]
        return all(self.latest.get(output, -1) >= stamp for output in self.outputs[source])

    def _wait(self, source: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not self._answered(source) and time.monotonic() < deadline and not self.stop_event.is_set() \
                and self.node.context.ok():
            self.executor.spin_once(timeout_sec=0.01)
        if not self._answered(source) and not self.stop_event.is_set():
            missing = [o for o in self.outputs[source] if self.latest.get(o, -1) < self.pending[source]]
            self.result.lockstep_timeouts += 1
            self.node.get_logger().warning(
                f"lockstep: no answer on {missing} to {source} stamped {self.pending[source] / 1e9:.3f} s after "
                f"{self.timeout:g} s; going on [{self.result.lockstep_timeouts} so far]")
        del self.pending[source]
