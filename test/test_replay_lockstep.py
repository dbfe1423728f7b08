"""Replay lockstep when the recorder wrote a step's messages out of order: on a busy machine the odometry of step k
can reach the bag after the image of step k + 1, and the answer to image k (its pose) needs that odometry. The
replay publishes such late messages before it waits, so the lockstep does not stall for its timeout."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from conftest import spin_until

IN, AUX, OUT = "/lockstep_test/in", "/lockstep_test/aux", "/lockstep_test/out"
# (topic, step) in the order the recorder wrote them: the aux of steps 1 and 3 came after the next input.
RECORDED_ORDER = [(IN, 0), (AUX, 0), (IN, 1), (IN, 2), (AUX, 1), (AUX, 2), (IN, 3), (IN, 4), (AUX, 3), (AUX, 4)]


class _Message:
    def __init__(self, topic: str, step: int) -> None:
        self.topic, self.step = topic, step


def test_lookahead_takes_wanted_messages_up_to_the_stop_and_keeps_the_rest_in_order():
    from spatial_memory_ros.commands.replay import _Lookahead

    stream = _Lookahead(_Message(topic, step) for topic, step in RECORDED_ORDER)
    assert (next(stream).step, next(stream).step, next(stream).step, next(stream).step) == (0, 0, 1, 2)
    taken = stream.take(stop=lambda m: m.topic == IN, wanted=lambda m: m.step <= 1)
    assert [(m.topic, m.step) for m in taken] == [(AUX, 1)]
    assert [(m.topic, m.step) for m in stream] == [(AUX, 2), (IN, 3), (IN, 4), (AUX, 3), (AUX, 4)]


def test_lookahead_at_the_end_of_the_bag_takes_what_is_left():
    from spatial_memory_ros.commands.replay import _Lookahead

    stream = _Lookahead(_Message(AUX, step) for step in range(3))
    assert [m.step for m in stream.take(stop=lambda m: False, wanted=lambda m: m.step != 1)] == [0, 2]
    assert [m.step for m in stream] == [1]


def _out_of_order_bag(path: Path) -> Path:
    from geometry_msgs.msg import PointStamped
    from rclpy.serialization import serialize_message

    from spatial_memory_ros.recording.bags import BagWriter

    start = 1_700_000_000_000_000_000
    with BagWriter(path) as writer:
        for topic in (IN, AUX):
            writer.add_topic(topic, "geometry_msgs/msg/PointStamped")
        for index, (topic, step) in enumerate(RECORDED_ORDER):
            message = PointStamped()
            message.header.stamp.sec, message.point.x = step, float(step)
            writer.write(topic, start + index * 10_000_000, serialize_message(message))
    return path


def _answering_node(context):
    """Answers each input on OUT once an aux message stamped at or after it has come (as the localizer answers
    an image with a pose once the odometry reached its stamp)."""
    import rclpy
    from geometry_msgs.msg import PointStamped

    node = rclpy.create_node("lockstep_answerer", context=context)
    publisher = node.create_publisher(PointStamped, OUT, 10)
    state = {"aux": -1, "waiting": [], "inputs": []}

    def answer() -> None:
        for message in [m for m in state["waiting"] if m.header.stamp.sec <= state["aux"]]:
            state["waiting"].remove(message)
            publisher.publish(message)

    def on_input(message) -> None:
        state["inputs"].append(message.header.stamp.sec)
        state["waiting"].append(message)
        answer()

    def on_aux(message) -> None:
        state["aux"] = max(state["aux"], message.header.stamp.sec)
        answer()

    node.create_subscription(PointStamped, IN, on_input, 10)
    node.create_subscription(PointStamped, AUX, on_aux, 10)
    return node, state


@pytest.mark.ros
def test_lockstep_publishes_late_messages_first_instead_of_waiting_for_its_timeout(ros, tmp_path):
    from spatial_memory_ros.commands.replay import replay

    bag = _out_of_order_bag(tmp_path / "bag")
    node, state = _answering_node(ros.context_)
    ros.add_node(node)
    results, done = [], threading.Event()
    thread = threading.Thread(target=lambda: (results.append(replay(
        bag, rate=0.0, wait_for_subscribers=30.0, delay=0.2, linger=0.0, lockstep=[f"{IN}={OUT}"],
        lockstep_timeout=20.0)), done.set()), daemon=True)
    thread.start()
    try:
        # Waiting out even one timeout (20 s) would take longer than this.
        assert spin_until(ros, done.is_set, timeout=15.0), "the replay stalled on its lockstep"
    finally:
        spin_until(ros, done.is_set, timeout=60.0)
        ros.remove_node(node)
        node.destroy_node()
    assert results[0].lockstep_timeouts == 0, results[0].report()
    assert state["inputs"] == [0, 1, 2, 3, 4] and not state["waiting"]
