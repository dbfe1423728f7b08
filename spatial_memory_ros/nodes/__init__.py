"""The ROS 2 nodes: thin rclpy wrappers around the ROS-free domain packages, one file per node, one job per node.

Every node module has a ``PARAMETERS`` table, a node class that accepts ``rclpy.node.Node`` keyword
arguments (so nodes can be composed in one process), and ``main()`` for its executable.
"""
from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from typing import Callable

NODE_MODULES = ("sim_world", "explorer", "spatial_memory", "localizer", "bev_predictor", "geometric_bev",
                "team_comm")
STOP_CHECK_PERIOD = 0.1  # s: how soon a node notices SIGINT/SIGTERM while nothing arrives
# s: how long a node stuck in a C call (DDS start-up, destroying a participant) may take to honour a signal before
# it leaves anyway; below ros2 launch's default SIGTERM timeout (5 s), so launch never has to escalate.
STUCK_EXIT_GRACE = 3.0


def node_class(executable: str) -> type:
    """The node class of an executable name (e.g. ``sim_world`` -> SimWorldNode)."""
    if executable not in NODE_MODULES:
        raise ValueError(f"unknown node executable '{executable}'; known: {', '.join(NODE_MODULES)}")
    module = importlib.import_module(f"spatial_memory_ros.nodes.{executable}")
    return getattr(module, "".join(part.title() for part in executable.split("_")) + "Node")


def print_help(node_module_name: str) -> None:
    """Print a node's docstring and its parameter table (for ``<node> --help``)."""
    module = importlib.import_module(node_module_name)
    print((module.__doc__ or "").strip())
    print("\nParameters (set with --ros-args -p name:=value or a --params-file):")
    for param in getattr(module, "PARAMETERS", []):
        bounds = f" [{param.low:g}, {param.high:g}]" if param.low is not None else ""
        print(f"  {param.name:<24} {param.default!r:<10} {param.description}{bounds}")


class _StopWhileStarting(BaseException):
    """SIGINT or SIGTERM before the node spins: abandon its construction."""


class _StopWatchdog:
    """Makes a signal count even while the main thread is stuck inside a C call.

    Python runs signal handlers only between bytecodes of the main thread, so a node blocked in C (a DDS
    participant waiting on a shared-memory port lock another process left held, a slow library load) ignores
    SIGINT and SIGTERM until ros2 launch SIGKILLs it. The C-level handler still writes each signal to the wakeup
    fd; this thread reads it and, if the main thread is still starting or destroying (phases with nothing left to
    save) ``STUCK_EXIT_GRACE`` seconds later, leaves the process with exit code 0. It never cuts ``closing`` (a
    bag or memory file being written) or a running callback short.
    """

    ABANDONABLE = ("starting", "destroying")

    def __init__(self, grace: float = STUCK_EXIT_GRACE) -> None:
        import signal

        self.phase = "starting"
        self._phase_since = time.monotonic()
        self._grace = grace
        self._read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd)
        threading.Thread(target=self._watch, name="stop-watchdog", daemon=True).start()

    def enter(self, phase: str) -> None:
        """The main thread moves on to ``phase`` (one of starting, spinning, closing, destroying)."""
        self.phase, self._phase_since = phase, time.monotonic()

    def _watch(self) -> None:
        os.read(self._read_fd, 1)  # blocks until the first signal
        signalled = time.monotonic()
        while True:
            time.sleep(0.05)
            stuck_for = time.monotonic() - max(signalled, self._phase_since)
            if self.phase in self.ABANDONABLE and stuck_for > self._grace:
                import faulthandler

                sys.stderr.write(f"[spin_node] still {self.phase} {self._grace:g} s after a stop signal "
                                 "(stuck in a C call); exiting now. Where each thread was:\n")
                faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
                sys.stderr.flush()
                os._exit(0)


def spin_node(make_node: Callable, args: list[str]) -> int:
    """Init rclpy with ``args`` (``--ros-args`` included), spin one node until Ctrl-C, SIGTERM or shutdown; 0 then.

    A terminal's Ctrl-C sends SIGINT to every node and to ``ros2 launch``, which then sends each node a second
    SIGINT (and SIGTERM after its timeout). rclpy's own handlers would shut the context down under a running
    callback (its next publish raises RCLError 'publisher's context is invalid') and the second signal would raise
    KeyboardInterrupt inside destroy_node. So rclpy installs no handlers here; SIGINT and SIGTERM only ask the spin
    loop to stop (however many arrive), and the node is closed and destroyed while its context is still valid;
    once stopped by a signal, the process ignores further ones until it has exited. A signal that comes while the
    node is still being made (loading models under load can outlast the launch's SIGTERM and SIGKILL timeouts)
    abandons it at once.
    """
    import signal

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    user_args = args[1: args.index("--ros-args")] if "--ros-args" in args else args[1:]
    if "-h" in user_args or "--help" in user_args:
        print_help(make_node.__module__)
        return 0
    stop = threading.Event()
    spinning = threading.Event()

    def on_signal(_signum, _frame) -> None:
        first = not stop.is_set()
        stop.set()
        if first and not spinning.is_set():
            for ignored in (signal.SIGINT, signal.SIGTERM):
                signal.signal(ignored, signal.SIG_IGN)
            raise _StopWhileStarting()  # a node still loading (models, memory) stops at once, not after it loaded

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    watchdog = _StopWatchdog()
    node = executor = None
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        spinning.set()
        watchdog.enter("spinning")
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=STOP_CHECK_PERIOD)  # Python runs the signal handlers in between
    except (ExternalShutdownException, _StopWhileStarting):
        pass
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                watchdog.enter("closing")
                close()
            watchdog.enter("destroying")
            node.destroy_node()
        watchdog.enter("destroying")
        rclpy.try_shutdown()
        if stop.is_set():
            # Stopped by a signal, with everything closed: leave now. The interpreter's own exit would reset the
            # signal handlers (a second Ctrl-C then kills it, exit code -2) and garbage-collects models and memory
            # for seconds under load, past ros2 launch's SIGTERM and SIGKILL timeouts (seen on Jazzy).
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_IGN)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit("run a node module, e.g. python -m spatial_memory_ros.nodes.sim_world")
