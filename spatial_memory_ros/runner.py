"""Starts a node graph (graph.py) on a machine without ros2 launch, and runs the demo.

Two modes: one process per node with the ``--ros-args`` ros2 launch would pass (default), or all nodes
composed in this process on a multi-threaded executor. The demo watches the run through an observer
node, then writes the run folder (summary.json, trajectories.png, logs/).
"""
from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from spatial_memory_ros.graph import NodeSpec, Sources, executable_path, robot_ids, ros_args, sim_team_graph


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


@dataclass
class RunObservation:
    """What the observer has seen of a run."""

    trajectories: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)  # robot -> (t, x, y)
    status: object | None = None
    estimates: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)   # localizer's pose
    odometry: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)    # dead reckoning
    estimate_headings: dict[str, dict[float, float]] = field(default_factory=dict)       # robot -> stamp -> yaw
    oracle_bevs: dict[str, dict[float, object]] = field(default_factory=dict)          # robot -> stamp -> BevMap
    maps: dict[str, object] = field(default_factory=dict)       # robot -> latest nav_msgs/OccupancyGrid
    comm_stats: dict[str, object] = field(default_factory=dict)  # robot -> latest CommStats
    partner_errors: dict[str, list[float]] = field(default_factory=dict)  # robot -> |partner estimate - truth|
    answers: dict[str, dict] = field(default_factory=dict)      # robot -> the answer to the demo's text query


def make_observer(robots: list[str], observation: RunObservation):
    """A node that records each robot's ground-truth pose and map, and the latest /sim/status."""
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from nav_msgs.msg import OccupancyGrid, Odometry
    from rclpy.node import Node

    from spatial_memory_ros.conversions import quaternion_to_yaw, time_to_seconds
    from spatial_memory_ros.msg import BevMap, CommStats, PartnerStateArray, SimStatus
    from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS

    node = Node("demo_observer")
    for robot in robots:
        track = observation.trajectories.setdefault(robot, [])

        def on_pose(msg: PoseWithCovarianceStamped, track=track) -> None:
            track.append((time_to_seconds(msg.header.stamp), msg.pose.pose.position.x, msg.pose.pose.position.y))

        node.create_subscription(PoseWithCovarianceStamped, f"/{robot}/ground_truth/pose", on_pose, RELIABLE_QOS)
        estimates, odometry = observation.estimates.setdefault(robot, []), observation.odometry.setdefault(robot, [])
        node.create_subscription(PoseWithCovarianceStamped, f"/{robot}/pose",
                                 lambda msg, track=estimates: on_pose(msg, track), RELIABLE_QOS)
        headings = observation.estimate_headings.setdefault(robot, {})
        node.create_subscription(PoseWithCovarianceStamped, f"/{robot}/pose",
                                 lambda msg, h=headings: h.__setitem__(time_to_seconds(msg.header.stamp),
                                                                       quaternion_to_yaw(msg.pose.pose.orientation)),
                                 RELIABLE_QOS)
        oracle = observation.oracle_bevs.setdefault(robot, {})
        node.create_subscription(BevMap, f"/{robot}/ground_truth/bev",
                                 lambda msg, o=oracle: o.__setitem__(time_to_seconds(msg.header.stamp), msg),
                                 RELIABLE_QOS)

        def on_odom(msg: Odometry, track=odometry) -> None:
            track.append((time_to_seconds(msg.header.stamp), msg.pose.pose.position.x, msg.pose.pose.position.y))

        node.create_subscription(Odometry, f"/{robot}/odom", on_odom, RELIABLE_QOS)

        def on_map(msg: OccupancyGrid, robot=robot) -> None:
            observation.maps[robot] = msg

        node.create_subscription(OccupancyGrid, f"/{robot}/map", on_map, LATCHED_QOS)
        node.create_subscription(CommStats, f"/{robot}/comm/stats",
                                 lambda msg, r=robot: observation.comm_stats.__setitem__(r, msg), RELIABLE_QOS)
        errors = observation.partner_errors.setdefault(robot, [])
        node.create_subscription(PartnerStateArray, f"/{robot}/partners",
                                 lambda msg, e=errors: e.extend(partner_errors(msg, observation)), RELIABLE_QOS)

    def on_status(msg: SimStatus) -> None:
        observation.status = msg

    node.create_subscription(SimStatus, "/sim/status", on_status, LATCHED_QOS)
    return node


def partner_errors(msg, observation: RunObservation) -> list[float]:
    """Distance between each partner's estimated position and its latest true position."""
    import math

    errors = []
    for partner in msg.partners:
        track = observation.trajectories.get(partner.robot_id)
        if track:
            _, x, y = track[-1]
            errors.append(math.hypot(partner.pose.pose.position.x - x, partner.pose.pose.position.y - y))
    return errors


@dataclass
class DemoOptions:
    """What ``spatial-memory demo`` was asked to do."""

    duration: float = 60.0
    robots: int = 3
    seed: int = 0
    maze_size: int = 15
    out: Path = Path("runs")
    composed: bool = False
    real_time_factor: float = 0.0
    wall_timeout: float | None = None
    progress: bool = True
    query: str | None = None
    record: bool = False
    bev: str = "predicted"          # or "oracle"
    bits: int = 16                  # team link budget, bits per step
    comm: str = "ours"              # ours | broadcast | quota | none
    pose: str = "estimate"          # or "ground_truth"
    reach_radius: float = 0.6       # a robot has reached the goal within this distance of the true target (m)
    stop_at_goal: bool = False      # end the run once every robot has reached the goal (benchmarks)


def _sources(self) -> Sources:
    """The graph's BEV and pose sources for these options."""
    return Sources(bev="bev" if self.bev == "predicted" else "ground_truth/bev",
                   pose="pose" if self.pose == "estimate" else "ground_truth/pose")


DemoOptions.sources = _sources


def extra_bev_readers(options: DemoOptions) -> int:
    """Readers of the BEV topics the sim waits for that are not in the graph: the recorder, and the observer
    (it reads the oracle BEV, which is the stack's own BEV in --bev oracle runs). Without counting them, the sim
    could start before a memory node that was still loading its language model."""
    return int(options.record) + int(options.bev == "oracle")


def run_demo(options: DemoOptions) -> Path:
    """Run the simulated team for ``options.duration`` sim seconds; return the run folder."""
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
                           bits_per_step=options.bits, strategy=options.comm, goal_query=demo_query(options))
    robots = robot_ids(options.robots)
    observation = RunObservation()

    rclpy.init(args=[])
    executor = MultiThreadedExecutor(num_threads=2) if options.composed else SingleThreadedExecutor()
    observer = make_observer(robots, observation)
    executor.add_node(observer)
    runner = ComposedGraph(graph, run_dir / "logs" / "params") if options.composed else ProcessGraph(
        graph, run_dir / "logs")
    spinner = threading.Thread(target=executor.spin, daemon=True)
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
        _wait_for_end(options, observation, runner, wall_start)
        ask_robots(observer, robots, demo_query(options), observation)
    finally:
        if recorder is not None:
            recorder.stop()
        runner.stop()
        executor.shutdown(timeout_sec=2.0)
        observer.destroy_node()
        rclpy.try_shutdown()
    wall_seconds = time.monotonic() - wall_start
    write_run_folder(run_dir, options, observation, wall_seconds)
    if recorder is not None:
        from spatial_memory_ros.commands.render import RenderOptions, render_bag

        render_bag(run_dir / "bag", run_dir, RenderOptions(progress=options.progress))
    return run_dir


def _wait_for_end(options: DemoOptions, observation: RunObservation, runner, wall_start: float) -> None:
    """Block until the sim reports ``duration`` sim seconds, a node dies, or the wall timeout passes."""
    from tqdm import tqdm

    timeout = options.wall_timeout or max(120.0, 20.0 * options.duration)
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
            if options.stop_at_goal and goal_results(options, observation)["team_success"]:
                return
            failed = runner.failed()
            if failed:
                raise RuntimeError(f"demo: node(s) exited with an error: {', '.join(failed)}; see the logs/ folder")
            if time.monotonic() - wall_start > timeout:
                raise TimeoutError(f"demo: the sim reached {sim_time:.1f} of {options.duration:g} sim seconds "
                                   f"within {timeout:.0f} wall seconds; is the machine overloaded?")
            time.sleep(0.1)
    finally:
        bar.close()


def demo_query(options: DemoOptions) -> str:
    """The demo's text query: the target colour given, else the colour of the maze's first target."""
    if options.query:
        return options.query
    from spatial_memory_ros.sim.maze import generate_maze

    return f"the {generate_maze(size=options.maze_size, seed=options.seed).targets[0].color} target"


def _sleep_until_done(done, seconds: float) -> bool:
    """Wait until ``done()`` holds (futures that an executor spinning in another thread completes)."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)
    return done()


def ask_robots(node, robots: list[str], query: str, observation: RunObservation, timeout: float = 30.0) -> None:
    """Call every robot's QueryMemory service with ``query`` and keep the best answer (executor spins elsewhere)."""
    from spatial_memory_ros.ros_common import call_with_retries
    from spatial_memory_ros.srv import QueryMemory

    for robot in robots:
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


def write_run_folder(run_dir: Path, options: DemoOptions, observation: RunObservation, wall_seconds: float) -> None:
    """summary.json and trajectories.png."""
    from spatial_memory_ros.conversions import msg_to_occupancy
    from spatial_memory_ros.evaluation.plots import draw_occupancy, draw_trajectories, save_png
    from spatial_memory_ros.sim.maze import generate_maze

    summary = build_summary(options, observation, wall_seconds)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    maze = generate_maze(size=options.maze_size, seed=options.seed)
    paths = {robot: [(x, y) for _, x, y in track] for robot, track in observation.trajectories.items()}
    save_png(run_dir / "trajectories.png", draw_trajectories(maze, paths))
    for robot, grid in observation.maps.items():
        save_png(run_dir / f"map_{robot}.png", draw_occupancy(*msg_to_occupancy(grid)))


def build_summary(options: DemoOptions, observation: RunObservation, wall_seconds: float) -> dict:
    """The demo's summary: per robot distance, speed, frames, map scores, localization against dead reckoning,
    link use and the goal; overall sim and wall seconds; and a one-line verdict."""
    status = observation.status
    sim_seconds = float(status.sim_time) if status is not None else 0.0
    per_robot = {}
    if status is not None:
        for robot, frames, distance in zip(status.robot_ids, status.frames_published, status.distance_travelled):
            per_robot[robot] = {
                "distance_travelled_m": round(float(distance), 3),
                "mean_speed_m_s": round(float(distance) / sim_seconds, 4) if sim_seconds > 0 else 0.0,
                "frames_published": int(frames),
                "poses_received": len(observation.trajectories.get(robot, [])),
            }
    _add_memory_results(per_robot, options, observation)
    goal = goal_results(options, observation)
    for robot, entry in per_robot.items():
        entry.update(goal["per_robot"].get(robot, {"goal_reached": False, "time_to_goal_s": None}))
    summary = {
        "mode": "composed" if options.composed else "processes",
        "robots": options.robots,
        "seed": options.seed,
        "maze_size": options.maze_size,
        "sim_seconds": round(sim_seconds, 3),
        "wall_seconds": round(wall_seconds, 3),
        "real_time_factor": round(sim_seconds / wall_seconds, 3) if wall_seconds > 0 else None,
        "query": demo_query(options),
        "bev_source": options.bev,
        "team_link": {"bits_per_step": options.bits, "strategy": options.comm},
        "pose_source": options.pose,
        "goal": {k: v for k, v in goal.items() if k != "per_robot"},
        "per_robot": per_robot,
    }
    summary["verdict"] = verdict(summary)
    return summary


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def verdict(summary: dict) -> str:
    """One line that says how the run went: speed, mapping, localization against dead reckoning, link, goal."""
    robots = list(summary.get("per_robot", {}).values())
    parts = [f"{summary['robots']} robot(s), {summary['sim_seconds']:.0f} s simulated at "
             f"{summary['real_time_factor'] or 0:.2f}x real time"]
    coverage = _mean([r.get("map", {}).get("coverage") for r in robots])
    iou = _mean([r.get("map", {}).get("map_iou") for r in robots])
    if coverage is not None:
        parts.append(f"mapped {100 * coverage:.0f}% of the maze" + (f" (map IoU {iou:.2f})" if iou is not None else ""))
    ate = _mean([r.get("localization", {}).get("ate_m") for r in robots])
    dead = _mean([r.get("localization", {}).get("dead_reckoning_ate_m") for r in robots])
    if ate is not None and dead is not None:
        parts.append(f"localized to {ate:.2f} m ATE vs {dead:.2f} m dead reckoning "
                     f"({'better' if ate < dead else 'WORSE'})")
    bits = _mean([r.get("team_link", {}).get("payload_bits_per_step") for r in robots])
    if bits is not None:
        parts.append(f"{bits:.1f} of {summary['team_link']['bits_per_step']} bits/step used")
    goal = summary.get("goal", {})
    if goal.get("targets_xy"):
        reached = goal.get("robots_reached", 0)
        when = f" in {goal['time_to_success_s']:.0f} s" if goal.get("team_success") else ""
        parts.append(f"'{goal['query']}' reached by {reached}/{summary['robots']}{when}")
    return "; ".join(parts)


def goal_results(options: DemoOptions, observation: RunObservation) -> dict:
    """Whether and when (sim seconds) each robot came within ``reach_radius`` of the true target the query names,
    judged from the ground-truth poses (not from what the explorers claim); the team succeeds when all have."""
    import math

    query = demo_query(options)
    targets = _goal_targets(options.maze_size, options.seed, query)
    per_robot = {}
    for robot in robot_ids(options.robots):
        reached = next((t for t, x, y in list(observation.trajectories.get(robot, []))
                        if any(math.hypot(x - g.x, y - g.y) <= options.reach_radius for g in targets)), None)
        per_robot[robot] = {"goal_reached": reached is not None,
                            "time_to_goal_s": round(reached, 3) if reached is not None else None}
    times = [entry["time_to_goal_s"] for entry in per_robot.values()]
    success = bool(targets) and all(t is not None for t in times)
    return {"query": query, "targets_xy": [[round(t.x, 3), round(t.y, 3)] for t in targets],
            "reach_radius_m": options.reach_radius, "team_success": success,
            "time_to_success_s": max(times) if success else None,
            "robots_reached": sum(t is not None for t in times), "per_robot": per_robot}


@functools.lru_cache(maxsize=8)
def _goal_targets(maze_size: int, seed: int, query: str) -> tuple:
    """The maze's targets whose colour the query names."""
    from spatial_memory_ros.sim.maze import generate_maze

    return tuple(t for t in generate_maze(size=maze_size, seed=seed).targets if t.color in query.lower().split())


def localization_errors(observation: RunObservation, robot: str) -> dict:
    """ATE of the localizer's estimate and of dead reckoning against the ground truth, on the same run."""
    from spatial_memory_ros.evaluation.metrics import ate_rmse, pair_by_stamp

    truth = observation.trajectories.get(robot, [])
    result = {}
    for name, track in (("ate_m", observation.estimates.get(robot, [])),
                        ("dead_reckoning_ate_m", observation.odometry.get(robot, []))):
        estimate, true = pair_by_stamp(track, truth)
        result[name] = round(ate_rmse(estimate, true), 4) if len(estimate) else None
        result[name.replace("ate_m", "poses")] = len(estimate)
    return result


def link_summary(observation: RunObservation, robot: str) -> dict:
    """Bits used per step, packets, wire bytes, drops by reason and partner localisation error of one robot."""
    stats = observation.comm_stats.get(robot)
    errors = observation.partner_errors.get(robot, [])
    summary = {"partner_error_m": round(sum(errors) / len(errors), 3) if errors else None}
    if stats is not None:
        summary.update({"budget_bits_per_step": int(stats.budget_bits_per_step),
                        "payload_bits_per_step": round(float(stats.payload_bits_per_step), 2),
                        "packets_sent": int(stats.packets_sent), "packets_received": int(stats.packets_received),
                        "wire_bytes_per_s": round(float(stats.wire_bytes_per_second), 1),
                        "drops": {r: int(c) for r, c in zip(stats.drop_reasons, stats.drop_counts) if c}})
    return summary


def oracle_bev_map(observation: RunObservation, robot: str, geometry):
    """The map the robot would have fused from the oracle BEVs, with the same poses its memory used."""
    from spatial_memory_ros.conversions import msg_to_bev
    from spatial_memory_ros.memory.mapping import LogOddsMap, bev_to_map
    from spatial_memory_ros.types import Pose2D

    fused = LogOddsMap(geometry)
    headings = observation.estimate_headings.get(robot, {})
    bevs = observation.oracle_bevs.get(robot, {})
    for stamp, x, y in observation.estimates.get(robot, []):
        if stamp in bevs and stamp in headings:
            fused.integrate(bev_to_map(msg_to_bev(bevs[stamp]), Pose2D(x, y, headings[stamp])))
    return fused.occupancy()


def _add_memory_results(per_robot: dict, options: DemoOptions, observation: RunObservation) -> None:
    """Each robot's map coverage and IoU against the true maze, and its answer to the text query."""
    import math

    from spatial_memory_ros.conversions import msg_to_occupancy
    from spatial_memory_ros.memory.mapping import map_scores, rasterize_maze
    from spatial_memory_ros.sim.maze import generate_maze

    maze = generate_maze(size=options.maze_size, seed=options.seed)
    query = demo_query(options)
    targets = [t for t in maze.targets if t.color in query.split()]
    for robot, entry in per_robot.items():
        entry["localization"] = localization_errors(observation, robot)
        entry["team_link"] = link_summary(observation, robot)
        if robot in observation.maps:
            grid, geometry = msg_to_occupancy(observation.maps[robot])
            truth = rasterize_maze(maze, geometry)
            entry["map"] = {k: round(v, 4) for k, v in map_scores(grid, truth).items()}
            if options.bev == "predicted":
                oracle = oracle_bev_map(observation, robot, geometry)
                entry["map_with_oracle_bev"] = {k: round(v, 4) for k, v in map_scores(oracle, truth).items()}
        answer = dict(observation.answers.get(robot, {"error": "not asked"}))
        if "x" in answer:
            answer["found"] = answer["label"] in query or any(t.color in answer["label"] for t in targets)
        if "x" in answer and targets:
            answer["distance_to_target_m"] = round(min(math.hypot(answer["x"] - t.x, answer["y"] - t.y)
                                                       for t in targets), 3)
        entry["query_answer"] = answer
