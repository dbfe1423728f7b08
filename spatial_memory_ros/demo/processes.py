"""Run a node graph (graph.py) without ros2 launch: one process per node with the ``--ros-args`` ros2 launch
would pass (:class:`ProcessGraph`), or every node composed in this process (:class:`ComposedGraph`); and the
recorder thread of a demo."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from spatial_memory_ros.graph import NodeSpec, executable_path, ros_args


def node_command(spec: NodeSpec, overrides_dir: Path) -> list[str]:
    """The command line of one node process: the installed executable, else ``python -m``."""
    executable = executable_path(spec.executable)
    program = [str(executable)] if executable.exists() else [
        sys.executable, "-m", f"spatial_memory_ros.nodes.{spec.executable}"]
    return program + ros_args(spec, overrides_dir=overrides_dir)


class ProcessGraph:
    """Runs each node of a graph as its own process; stops them as ros2 launch does (SIGINT, then harder)."""

    def __init__(self, graph: list[NodeSpec], log_dir: Path) -> None:
        self.graph = graph
        self.log_dir = log_dir
        self.processes: list[tuple[NodeSpec, subprocess.Popen]] = []

    def start(self) -> None:
        """Start every node; their output goes to log_dir/<namespace>__<name>.log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.graph:
            log_name = spec.fully_qualified_name.strip("/").replace("/", "__")
            log = open(self.log_dir / f"{log_name}.log", "w")
            command = node_command(spec, self.log_dir / "params")
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
            self.processes.append((spec, process))

    def failed(self) -> list[str]:
        """Nodes whose process has exited with an error."""
        return [f"{spec.fully_qualified_name} (exit {proc.returncode})" for spec, proc in self.processes
                if proc.poll() not in (None, 0)]

    def stop(self, grace: float = 5.0) -> None:
        """SIGINT every process, SIGTERM after ``grace`` seconds, SIGKILL after twice that."""
        for _, proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for escalation in (signal.SIGTERM, signal.SIGKILL):
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(p.poll() is None for _, p in self.processes):
                time.sleep(0.05)
            for _, proc in self.processes:
                if proc.poll() is None:
                    proc.send_signal(escalation)
        for _, proc in self.processes:
            proc.wait()


class ComposedGraph:
    """Runs every node of a graph in this process on one multi-threaded executor."""

    def __init__(self, graph: list[NodeSpec], overrides_dir: Path) -> None:
        self.graph = graph
        self.overrides_dir = overrides_dir
        self.nodes: list = []

    def start(self, executor) -> None:
        """Create the nodes (each with its own --ros-args, in the executor's context) and add them to it."""
        from spatial_memory_ros.nodes import node_class

        for spec in self.graph:
            node = node_class(spec.executable)(cli_args=ros_args(spec, overrides_dir=self.overrides_dir),
                                               context=executor.context)
            self.nodes.append(node)
            executor.add_node(node)

    def failed(self) -> list[str]:
        return []

    def stop(self) -> None:
        """Destroy the nodes."""
        for node in self.nodes:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()


class BagRecorderThread:
    """``spatial-memory record`` of the default topics in a thread of the demo (its own rclpy context)."""

    def __init__(self, bag_dir: Path, robots: int) -> None:
        from spatial_memory_ros.commands.record import default_topics

        self.bag_dir = bag_dir
        self.topics = default_topics(robots)
        self.stop_event = threading.Event()
        self.result = None
        self._thread = threading.Thread(target=self._record, name="recorder", daemon=True)

    def _record(self) -> None:
        from spatial_memory_ros.commands.record import record

        self.result = record(self.topics, self.bag_dir, self.stop_event)

    def start(self) -> None:
        """Start recording (topics that do not exist yet are picked up when they appear)."""
        self._thread.start()
        deadline = time.monotonic() + 30.0
        while not self.bag_dir.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop and close the bag."""
        self.stop_event.set()
        self._thread.join(timeout=60.0)
