"""rosbag2 bags without rosbag2: `record` writes bags that two independent readers (rosbags, and mcap with
mcap-ros2-support) read back whole and field for field; `replay` keeps the timing, publishes /clock, keeps
latched topics latched, and refuses a truncated or corrupt bag before publishing anything."""
from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from conftest import spin_until
from interface_samples import sample_messages

pytestmark = pytest.mark.ros
REPEATS = 5                      # messages published per topic
ABSENT = "/bagtest/never_published"


def _standard_messages() -> dict[str, object]:
    """Standard types beside ours: odometry (reliable), a camera image (best effort), a latched map."""
    from nav_msgs.msg import OccupancyGrid, Odometry
    from sensor_msgs.msg import Image

    odom = Odometry(child_frame_id="robot1/base_link")
    odom.header.frame_id, odom.pose.pose.position.x, odom.twist.twist.angular.z = "map", 1.5, -0.25
    image = Image(height=2, width=3, encoding="rgb8", step=9, data=list(range(18)))
    grid = OccupancyGrid(data=[-1, 0, 100, 50])
    grid.header.frame_id, grid.info.width, grid.info.height, grid.info.resolution = "map", 2, 2, 0.5
    return {"Odometry": odom, "Image": image, "Map": grid}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Publish every custom sample type, odometry, an image and a latched map (published once, before the
    recorder starts) while ``record()`` runs in a thread; return the bag, what was published and the result."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from spatial_memory_ros.commands.record import record
    from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS

    messages = {**sample_messages(), **_standard_messages()}
    qos = {name: RELIABLE_QOS for name in messages} | {"Image": SENSOR_QOS, "Map": LATCHED_QOS}
    bag = tmp_path_factory.mktemp("bags") / "recorded"
    context = rclpy.context.Context()
    rclpy.init(args=[], context=context)
    node = rclpy.create_node("bag_test_publisher", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    publishers = {name: node.create_publisher(type(msg), f"/bagtest/{name}", qos[name])
                  for name, msg in messages.items()}
    publishers["Map"].publish(messages["Map"])
    stop, outcome = threading.Event(), {}
    topics = [f"/bagtest/{name}" for name in messages] + [ABSENT]
    thread = threading.Thread(target=lambda: outcome.setdefault("result", record(topics, bag, stop)))
    thread.start()
    try:
        assert spin_until(executor, lambda: all(p.get_subscription_count() for p in publishers.values()), 20.0), \
            "the recorder did not subscribe to every topic"
        for _ in range(REPEATS):
            for name, msg in messages.items():
                if name != "Map":
                    publishers[name].publish(msg)
            spin_until(executor, lambda: False, timeout=0.05)
        hashes = {n: getattr(node.get_publishers_info_by_topic(f"/bagtest/{n}")[0], "topic_type_hash", None)
                  for n in messages}
        spin_until(executor, lambda: False, timeout=1.0)
    finally:
        stop.set()
        thread.join(timeout=20)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    expected = {f"/bagtest/{name}": (1 if name == "Map" else REPEATS) for name in messages}
    return {"bag": bag, "messages": messages, "expected": expected, "result": outcome["result"], "hashes": hashes}


def _assert_same(expected, actual, where: str) -> None:
    """Field for field: ``expected`` is an rclpy message; ``actual`` any decoded object with the same fields."""
    if hasattr(expected, "get_fields_and_field_types"):
        for name in expected.get_fields_and_field_types():
            _assert_same(getattr(expected, name), getattr(actual, name), f"{where}.{name}")
    elif isinstance(expected, (str, bool, int, float)):
        assert expected == actual, f"{where}: {actual!r} != {expected!r}"
    else:  # sequences: array.array, list, bytes, numpy
        expected, actual = list(expected), list(actual)
        assert len(expected) == len(actual), f"{where}: {len(actual)} items != {len(expected)}"
        for index, (want, got) in enumerate(zip(expected, actual)):
            _assert_same(want, got, f"{where}[{index}]")


@pytest.mark.slow
def test_recorder_writes_every_published_message_and_reports_the_absent_topic(recorded):
    result = recorded["result"]
    assert result.counts == recorded["expected"]
    assert result.waiting == [ABSENT]
    metadata = yaml.safe_load((recorded["bag"] / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert (metadata["version"], metadata["storage_identifier"]) == (8, "mcap")  # 8: what Humble reads


def test_rosbags_reads_the_bag_from_its_embedded_definitions_field_for_field(recorded):
    from rosbags.highlevel import AnyReader
    from rosbags.interfaces import QosDurability, QosReliability

    counts: dict[str, int] = {}
    with AnyReader([recorded["bag"]]) as reader:  # no typestore given: only the bag's own definitions
        qos = {c.topic: c.ext.offered_qos_profiles[0] for c in reader.connections}
        digests = {c.topic: c.digest for c in reader.connections}
        for connection, _stamp, raw in reader.messages():
            name = connection.topic.rsplit("/", 1)[1]
            _assert_same(recorded["messages"][name], reader.deserialize(raw, connection.msgtype), name)
            counts[connection.topic] = counts.get(connection.topic, 0) + 1
    assert counts == recorded["expected"]
    assert qos["/bagtest/Map"].durability == QosDurability.TRANSIENT_LOCAL
    assert qos["/bagtest/Image"].reliability == QosReliability.BEST_EFFORT
    assert qos["/bagtest/Odometry"].durability == QosDurability.VOLATILE
    for name, live_hash in recorded["hashes"].items():  # the type hashes rclpy announces on the wire
        if live_hash:
            assert digests[f"/bagtest/{name}"] == str(live_hash), name


def test_mcap_reads_the_bag_independently_with_crcs_checked(recorded):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    counts: dict[str, int] = {}
    latched = {}
    mcap_file = next(recorded["bag"].glob("*.mcap"))
    with mcap_file.open("rb") as stream:
        reader = make_reader(stream, validate_crcs=True, decoder_factories=[DecoderFactory()])
        for schema, channel, _message, decoded in reader.iter_decoded_messages():
            assert schema.encoding == "ros2msg" and channel.message_encoding == "cdr"
            name = channel.topic.rsplit("/", 1)[1]
            _assert_same(recorded["messages"][name], decoded, name)
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            latched[channel.topic] = yaml.safe_load(channel.metadata["offered_qos_profiles"])[0]["durability"] == 1
    assert counts == recorded["expected"]
    assert latched["/bagtest/Map"] and not latched["/bagtest/Odometry"]
    with mcap_file.open("rb") as stream:  # the stream reader checks the data-section CRC too
        from mcap.stream_reader import StreamReader
        assert sum(1 for _ in StreamReader(stream, validate_crcs=True).records) > 0


def _timing_bag(path: Path, count: int = 31, period: float = 0.1) -> Path:
    from std_msgs.msg import Int32
    from rclpy.serialization import serialize_message

    from spatial_memory_ros.recording.bags import BagWriter

    start = 1_700_000_000_000_000_000
    with BagWriter(path) as writer:
        writer.add_topic("/timing/tick", "std_msgs/msg/Int32")
        for index in range(count):
            writer.write("/timing/tick", start + int(index * period * 1e9), serialize_message(Int32(data=index)))
    return path


@pytest.mark.slow
def test_replay_keeps_the_timing_at_rate_1_and_publishes_clock(ros, tmp_path):
    import rclpy
    from rosgraph_msgs.msg import Clock
    from std_msgs.msg import Int32

    bag = _timing_bag(tmp_path / "timing")
    node = rclpy.create_node("timing_probe", context=ros.context_)
    ros.add_node(node)
    arrivals: dict[int, float] = {}
    clocks: list[int] = []
    node.create_subscription(Int32, "/timing/tick", lambda m: arrivals.setdefault(m.data, time.monotonic()), 50)
    node.create_subscription(Clock, "/clock", lambda m: clocks.append(m.clock.sec * 10**9 + m.clock.nanosec), 50)
    player = subprocess.Popen([sys.executable, "-m", "spatial_memory_ros.cli", "replay", str(bag), "--rate", "1",
                               "--wait-for-subscribers", "30", "--quiet"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert spin_until(ros, lambda: len(arrivals) == 31 or player.poll() is not None, timeout=30.0)
        spin_until(ros, lambda: player.poll() is not None, timeout=10.0)
    finally:
        player.kill()
        output = player.communicate()[0]
    assert sorted(arrivals) == list(range(31)), (sorted(arrivals), output)
    span = arrivals[30] - arrivals[0]
    assert span == pytest.approx(3.0, rel=0.10), span
    worst = max(abs((arrivals[k] - arrivals[0]) - 0.1 * k) for k in arrivals)
    assert worst <= 0.3, f"a message arrived {worst:.3f} s off its recorded time (10% of the 3 s span allowed)"
    start = 1_700_000_000_000_000_000
    assert len(clocks) >= 40, f"only {len(clocks)} /clock messages over 3 s"
    assert clocks == sorted(clocks) and start <= clocks[0] and clocks[-1] <= start + 3 * 10**9


@pytest.mark.slow
def test_replayed_latched_map_reaches_a_subscriber_that_joins_late(ros, recorded):
    import rclpy
    from nav_msgs.msg import OccupancyGrid

    from spatial_memory_ros.commands.replay import replay
    from spatial_memory_ros.ros_common import LATCHED_QOS

    stop, outcome = threading.Event(), {}
    topics = ["/bagtest/Map", "/bagtest/Odometry"]
    thread = threading.Thread(target=lambda: outcome.setdefault(
        "result", replay(recorded["bag"], rate=0, topics=topics, delay=0.3, linger=20.0, stop_event=stop)))
    thread.start()
    try:
        time.sleep(1.5)  # everything has been published by now; the replay lingers with its publishers
        node = rclpy.create_node("late_joiner", context=ros.context_)
        ros.add_node(node)
        maps: list = []
        node.create_subscription(OccupancyGrid, "/bagtest/Map", maps.append, LATCHED_QOS)
        assert spin_until(ros, lambda: bool(maps), timeout=10.0), "the late subscriber never got the latched map"
    finally:
        stop.set()
        thread.join(timeout=10)
    assert maps[0] == recorded["messages"]["Map"] and len(maps) == 1
    assert outcome["result"].counts == {"/bagtest/Map": 1, "/bagtest/Odometry": REPEATS}


def _damage(bag: Path, how: str) -> None:
    mcap_file = next(bag.glob("*.mcap"))
    data = bytearray(mcap_file.read_bytes())
    if how == "truncated":
        data = data[: len(data) * 2 // 3]
    else:
        data[len(data) // 2] ^= 0x20
    mcap_file.write_bytes(bytes(data))


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated", "one flipped bit"])
def test_damaged_bag_is_refused_before_anything_is_published(ros, recorded, tmp_path, capsys, how):
    import rclpy
    from nav_msgs.msg import OccupancyGrid, Odometry

    from spatial_memory_ros.cli import main
    from spatial_memory_ros.commands.replay import replay
    from spatial_memory_ros.recording.bags import BagError
    from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS

    bag = tmp_path / "damaged"
    shutil.copytree(recorded["bag"], bag)
    _damage(bag, how)
    node = rclpy.create_node("damage_probe", context=ros.context_)
    ros.add_node(node)
    got: list = []
    node.create_subscription(OccupancyGrid, "/bagtest/Map", got.append, LATCHED_QOS)
    node.create_subscription(Odometry, "/bagtest/Odometry", got.append, RELIABLE_QOS)
    with pytest.raises(BagError, match="truncated|corrupt") as error:
        replay(bag, rate=0, delay=0.0, linger=0.0)
    assert "record it again" in str(error.value)
    assert main(["replay", str(bag), "--rate", "0", "--quiet"]) == 1
    assert "replay refused" in capsys.readouterr().err
    spin_until(ros, lambda: bool(got), timeout=1.0)
    assert got == [], "a damaged bag published messages"
    assert "spatial_memory_replay" not in node.get_node_names(), "a replay node was started for a damaged bag"


@pytest.mark.slow
def test_record_command_records_the_sim_and_closes_the_bag_on_ctrl_c(ros, tmp_path):
    import signal

    from rclpy.parameter import Parameter

    from spatial_memory_ros.recording.bags import validate_bag
    from spatial_memory_ros.nodes.sim_world import SimWorldNode

    params = {"robots": 2, "maze_size": 9, "seed": 3, "wait_for_controllers": 0.0, "lockstep": False,
              "real_time_factor": 1.0}
    sim = SimWorldNode(context=ros.context_, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    ros.add_node(sim)
    bag = tmp_path / "sim_bag"
    recorder = subprocess.Popen([sys.executable, "-m", "spatial_memory_ros.cli", "record", "--out", str(bag),
                                 "--robots", "2", "--quiet"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        watched = ["/robot2/camera/image_raw", "/robot1/odom", "/ground_truth/map", "/clock"]
        assert spin_until(ros, lambda: all(sim.count_subscribers(t) for t in watched), timeout=30.0), \
            "the recorder never subscribed to the sim's topics"
        spin_until(ros, lambda: False, timeout=2.0)
        recorder.send_signal(signal.SIGINT)
        assert spin_until(ros, lambda: recorder.poll() is not None, timeout=20.0), "record ignored Ctrl-C"
    finally:
        recorder.kill()
        output = recorder.communicate()[0]
    assert recorder.returncode == 0, output
    counts = validate_bag(bag)
    for robot in ("robot1", "robot2"):
        for name in ("camera/image_raw", "odom", "ground_truth/pose", "ground_truth/bev"):
            assert counts[f"/{robot}/{name}"] >= 10, (robot, name, counts)
    assert counts["/ground_truth/map"] == 1 and counts["/clock"] >= 10, counts
    assert "(never appeared) /team/packets" in output
