"""``spatial-memory demo``: start the simulated team's graph, watch it to the end, ask every robot's memory the
text goal, and write the run folder.

Ctrl-C ends a run cleanly: the first one stops the run where it is (the robots are not asked), closes the bag and
writes summary.json with ``"complete": false`` and ``"interrupted"`` saying when, then the pictures; the render of
the bag is skipped. A Ctrl-C during the write-up only stops the render (summary.json is written first, atomically,
so it is never left half written). No traceback either way; ``spatial-memory demo`` then exits 130.
"""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

from spatial_memory_ros.demo.observer import RunObservation, make_observer
from spatial_memory_ros.demo.options import DemoOptions, demo_query
from spatial_memory_ros.demo.processes import BagRecorderThread, ComposedGraph, ProcessGraph
from spatial_memory_ros.demo.report import write_run_folder, write_summary
from spatial_memory_ros.demo.scoring import goal_results
from spatial_memory_ros.graph import robot_ids, sim_team_graph


def extra_bev_readers(options: DemoOptions) -> int:
    """Readers of the BEV topics the sim waits for that are not in the graph: the recorder, and the observer
    (it reads the oracle BEV, which is the stack's own BEV in --bev oracle runs). Without counting them, the sim
    could start before a memory node that was still loading its language model."""
    return int(options.record) + int(options.bev == "oracle")


class Interrupts:
    """SIGINT (Ctrl-C) and SIGTERM counted instead of raised, so every stage can end on its own terms; while
    ``raising`` is set, a signal raises KeyboardInterrupt (for a stage that may simply be abandoned)."""

    def __init__(self) -> None:
        self.count, self.stage, self.raising = 0, "", False
        self._previous = {}

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if self.count == 1:
            self.stage = self.stage or "during the run"
        if self.raising:
            raise KeyboardInterrupt

    @property
    def interrupted(self) -> bool:
        return self.count > 0


def run_demo(options: DemoOptions, interrupts: Interrupts | None = None) -> Path:
    """Run the simulated team for ``options.duration`` sim seconds; return the run folder. Ctrl-C (counted in
    ``interrupts``) ends the run early with a summary marked incomplete."""
    if interrupts is None:
        with Interrupts() as interrupts:
            return run_demo(options, interrupts)
    import rclpy
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

    run_dir = options.out / time.strftime("%Y%m%d-%H%M%S")
    suffix = 1
    while run_dir.exists():
        run_dir = options.out / f"{time.strftime('%Y%m%d-%H%M%S')}-{suffix}"
        suffix += 1
    run_dir.mkdir(parents=True)
    graph = sim_team_graph(options.robots, seed=options.seed, maze_size=options.maze_size,
                           max_sim_time=options.duration, real_time_factor=options.real_time_factor,
                           extra_bev_readers=extra_bev_readers(options), sources=options.sources(),
                           bits_per_step=options.bits, strategy=options.comm, goal_query=demo_query(options),
                           world=options.world, wait_for_readers=startup_wait(options))
    robots = robot_ids(options.robots)
    observation = RunObservation()

    from rclpy.signals import SignalHandlerOptions

    rclpy.init(args=[], signal_handler_options=SignalHandlerOptions.NO)  # Ctrl-C is Interrupts', not rclpy's
    executor = MultiThreadedExecutor(num_threads=2) if options.composed else SingleThreadedExecutor()
    observer = make_observer(robots, observation, [spec.fully_qualified_name for spec in graph])
    executor.add_node(observer)
    runner = ComposedGraph(graph, run_dir / "logs" / "params") if options.composed else ProcessGraph(
        graph, run_dir / "logs")
    spinner = threading.Thread(target=_spin, args=(executor,), daemon=True)
    recorder = BagRecorderThread(run_dir / "bag", options.robots) if options.record else None
    wall_start = time.monotonic()
    try:
        if recorder is not None:
            recorder.start()
        if options.composed:
            runner.start(executor)
        else:
            runner.start()
        spinner.start()
        _wait_for_end(options, observation, runner, wall_start, interrupts)
        if not interrupts.interrupted:
            ask_robots(observer, robots, demo_query(options), observation, interrupts=interrupts)
    finally:
        if recorder is not None:
            recorder.stop()
        runner.stop()
        executor.shutdown(timeout_sec=2.0)
        observer.destroy_node()
        rclpy.try_shutdown()
    wall_seconds = time.monotonic() - wall_start
    interrupted = interrupts.stage if interrupts.interrupted else None
    write_run_folder(run_dir, options, observation, wall_seconds, interrupted=interrupted)
    if recorder is not None and not interrupts.interrupted:
        from spatial_memory_ros.commands.render import RenderOptions, render_bag

        interrupts.stage, interrupts.raising = "during the render (render.mp4 and the snapshots incomplete)", True
        try:
            render_bag(run_dir / "bag", run_dir, RenderOptions(progress=options.progress))
        except KeyboardInterrupt:
            write_summary(run_dir, options, observation, wall_seconds, interrupted=interrupts.stage)
        finally:
            interrupts.raising = False
    return run_dir


def _spin(executor) -> None:
    """The executor's spin, ended quietly when the context shuts down under it."""
    from rclpy.executors import ExternalShutdownException

    try:
        executor.spin()
    except ExternalShutdownException:
        pass


def wall_timeout(options: DemoOptions) -> float:
    """The run's wall-clock limit: ``--wall-timeout``, else 20 wall seconds per sim second (at least 2 minutes)."""
    return options.wall_timeout or max(120.0, 20.0 * options.duration)


def startup_wait(options: DemoOptions) -> float:
    """Wall seconds the sim waits for every node to listen before its first step: half the run's wall timeout (at
    most sim_world's limit of 600). On a busy machine the memory nodes (torch and the sentence model) took over
    the sim_world default of 60 s to start, and a run that starts without them ends with no map and no answer."""
    return min(600.0, 0.5 * wall_timeout(options))


def _wait_for_end(options: DemoOptions, observation: RunObservation, runner, wall_start: float,
                  interrupts: Interrupts | None = None) -> None:
    """Block until the sim reports ``duration`` sim seconds, a node dies, the wall timeout passes or Ctrl-C."""
    from tqdm import tqdm

    timeout = wall_timeout(options)
    bar = tqdm(total=options.duration, unit="sim s", disable=not options.progress, desc="demo",
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} sim s [{elapsed}<{remaining}]")
    try:
        while True:
            status = observation.status
            sim_time = float(status.sim_time) if status is not None else 0.0
            bar.n = min(sim_time, options.duration)
            bar.refresh()
            if sim_time >= options.duration - 1e-6:
                return
            if interrupts is not None and interrupts.interrupted:
                interrupts.stage = f"during the run, at {sim_time:.1f} of {options.duration:g} sim seconds"
                return
            if options.stop_at_goal and goal_results(options, observation)["team_success"]:
                return
            failed = runner.failed()
            if failed and interrupts is not None and interrupts.interrupted:
                return  # the nodes got the terminal's Ctrl-C too
            if failed:
                raise RuntimeError(f"demo: node(s) exited with an error: {', '.join(failed)}; see the logs/ folder")
            if time.monotonic() - wall_start > timeout:
                raise TimeoutError(f"demo: the sim reached {sim_time:.1f} of {options.duration:g} sim seconds "
                                   f"within {timeout:.0f} wall seconds; is the machine overloaded?")
            time.sleep(0.1)
    finally:
        bar.close()


def _sleep_until_done(done, seconds: float) -> bool:
    """Wait until ``done()`` holds (futures that an executor spinning in another thread completes)."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    return done()


def ask_robots(node, robots: list[str], query: str, observation: RunObservation, timeout: float = 30.0,
               interrupts: Interrupts | None = None) -> None:
    """Call every robot's QueryMemory service with ``query`` and keep the best answer (executor spins elsewhere);
    stop asking at Ctrl-C."""
    from spatial_memory_ros.ros_common import call_with_retries
    from spatial_memory_ros.srv import QueryMemory

    for robot in robots:
        if interrupts is not None and interrupts.interrupted:
            interrupts.stage = "while asking the robots' memories"
            return
        client = node.create_client(QueryMemory, f"/{robot}/query")
        deadline = time.monotonic() + timeout
        while not client.service_is_ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        request = QueryMemory.Request(query=query, num_samples=20)
        response = call_with_retries(client, request, _sleep_until_done, deadline - time.monotonic())
        if response is None:
            observation.answers[robot] = {"query": query, "error": "no answer within the timeout"}
        elif not response.success or not response.xs:
            observation.answers[robot] = {"query": query, "error": response.message}
        else:
            observation.answers[robot] = {"query": query, "x": float(response.xs[0]), "y": float(response.ys[0]),
                                          "label": response.labels[0], "score": float(response.scores[0])}
        node.destroy_client(client)
