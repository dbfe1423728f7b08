"""Tests of ros_common's service-call helper (the DDS reply race cannot be provoked on demand, so a stand-in client
drops replies the way Fast DDS does when the server has not matched the client's reply reader yet)."""
from __future__ import annotations

import time

from rclpy.task import Future

from spatial_memory_ros.ros_common import call_with_retries


class LossyClient:
    """Answers request n after ``delays[n]`` seconds, or never if that delay is None (a dropped reply)."""

    def __init__(self, delays: list[float | None]) -> None:
        self.delays = delays
        self.sent: list[tuple[Future, float | None, float]] = []
        self.removed: list[Future] = []

    def call_async(self, request) -> Future:
        future = Future()
        delay = self.delays[min(len(self.sent), len(self.delays) - 1)]
        self.sent.append((future, delay, time.monotonic()))
        return future

    def remove_pending_request(self, future: Future) -> None:
        self.removed.append(future)

    def tick(self) -> None:
        for index, (future, delay, sent) in enumerate(self.sent):
            if delay is not None and not future.done() and time.monotonic() - sent >= delay:
                future.set_result(f"answer {index}")


def waiter(client: LossyClient):
    def wait_until(done, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            client.tick()
            time.sleep(0.005)
        return done()
    return wait_until


def test_a_dropped_reply_is_recovered_by_sending_again():
    client = LossyClient([None, 0.0])
    assert call_with_retries(client, "q", waiter(client), timeout=2.0, attempt_s=0.1) == "answer 1"
    assert len(client.sent) == 2 and client.sent[0][0] in client.removed and client.sent[0][0].cancelled()


def test_a_slow_server_answers_the_first_copy_instead_of_starving():
    client = LossyClient([0.35])  # every copy takes 0.35 s, longer than one attempt
    started = time.monotonic()
    assert call_with_retries(client, "q", waiter(client), timeout=2.0, attempt_s=0.1) == "answer 0"
    assert time.monotonic() - started < 1.0 and 3 <= len(client.sent) <= 5


def test_no_answer_gives_none_after_the_timeout_and_cancels_every_copy():
    client = LossyClient([None])
    started = time.monotonic()
    assert call_with_retries(client, "q", waiter(client), timeout=0.35, attempt_s=0.1) is None
    assert 0.3 <= time.monotonic() - started < 1.0
    assert all(future.cancelled() for future, _, _ in client.sent) and len(client.removed) == len(client.sent)
