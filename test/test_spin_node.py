"""spin_node's stop handling: a node honours Ctrl-C/SIGTERM with exit code 0 even while stuck in a C call."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from spatial_memory_ros.nodes import STUCK_EXIT_GRACE

pytestmark = pytest.mark.ros

# A C call that never returns and never lets the main thread run Python's signal handlers (a DDS participant
# waiting on a lock a killed process left held looks like this from Python): a second lock of a plain pthread mutex.
DEADLOCK = textwrap.dedent("""
    import ctypes, sys, threading, time
    def report_when_stuck():
        # "stuck" only once the main thread has sat in a futex wait for a while: printed any earlier, the signal
        # could land while it still runs Python, and the test would not test the stuck path
        wchan, seen = f"/proc/self/task/{threading.main_thread().native_id}/wchan", 0
        while seen < 3:
            time.sleep(0.1)
            seen = seen + 1 if open(wchan).read().startswith("futex") else 0
        print("stuck", flush=True)
    def deadlock():
        libc = ctypes.CDLL(None)
        mutex = ctypes.create_string_buffer(64)  # zeroed = PTHREAD_MUTEX_INITIALIZER
        libc.pthread_mutex_lock(mutex)
        threading.Thread(target=report_when_stuck, daemon=True).start()
        libc.pthread_mutex_lock(mutex)
""")


def _run_until(script: str, report: str = "stuck") -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", DEADLOCK + textwrap.dedent(script)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    line = process.stdout.readline()  # blocks until the child reports (or dies)
    assert line.strip() == report, process.communicate(timeout=30)
    return process


def _stop(process: subprocess.Popen, signum: int) -> tuple[int, str, float]:
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=STUCK_EXIT_GRACE + 20)
    finally:
        process.kill()
    return process.returncode, err, time.monotonic() - sent


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_node_stuck_in_c_while_starting_still_exits_0_on_a_signal(signum):
    process = _run_until("""
        from spatial_memory_ros.nodes import spin_node
        def make_node():
            deadlock()
        sys.exit(spin_node(make_node, ["stuck_node"]))
    """)
    code, err, took = _stop(process, signum)
    assert code == 0, err
    assert "[spin_node] still starting" in err and "deadlock" in err, err  # says why, and where it was stuck
    assert took >= STUCK_EXIT_GRACE - 0.5  # it gave the main thread its chance first


def test_a_node_stuck_in_c_while_being_destroyed_still_exits_0_on_ctrl_c():
    process = _run_until("""
        import rclpy.node
        from spatial_memory_ros.nodes import spin_node
        class StuckOnDestroy(rclpy.node.Node):
            def __init__(self):
                super().__init__("stuck_on_destroy")
                self.create_timer(0.05, self.tick)
                self.ticked = False
            def tick(self):
                if not self.ticked:
                    self.ticked = True
                    print("spinning", flush=True)
            def destroy_node(self):
                deadlock()
        sys.exit(spin_node(StuckOnDestroy, ["stuck_on_destroy"]))
    """, report="spinning")
    code, err, _ = _stop(process, signal.SIGINT)
    assert code == 0 and "[spin_node] still destroying" in err, err


def test_a_node_stopped_by_a_signal_while_loading_in_python_exits_at_once():
    """The control: no C call in the way, so the signal handler abandons the construction without the grace."""
    process = _run_until("""
        import time
        from spatial_memory_ros.nodes import spin_node
        def make_node():
            print("loading", flush=True)
            while True:
                time.sleep(0.01)
        sys.exit(spin_node(make_node, ["slow_node"]))
    """, report="loading")
    code, err, took = _stop(process, signal.SIGINT)
    assert code == 0 and "[spin_node]" not in err, err
    assert took < STUCK_EXIT_GRACE, took
