"""The whole simulated team on separate hosts (issue 14): the simulator on a host of its own, each robot's full stack
(memory, explorer, team_comm with transport:=udp, localizer or the oracle's pose, its own BEV maker) on its own
host, DDS on each host reaching the sim alone over a control channel (test/netns.py ``control=True``: a veth per
robot, not counted), the team link's frames alone on the radio bridge (tbf share, iptables loss; ``radio_port``
keeps everything else off the radio). Used by test/test_team_hosts.py and benchmarks/link.py.

    result = run_team_on_hosts(out_dir, robots=2, seed=0, maze_size=9, duration=20.0, loss=0.2)

Inside the sim host (``--observe SPEC.json``) this file starts the sim's part of the graph and the demo's observer,
waits (bounded) for the sim to reach the duration (or the goal), and writes the demo's summary plus every robot's
last comm/stats to the spec's ``out``.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))

PORT = 7447


def run_team_on_hosts(out_dir: Path, robots: int = 2, seed: int = 0, maze_size: int = 9, duration: float = 20.0,
                      rate_bits: int = 400, loss: float = 0.2, bev: str = "oracle", bits_per_step: int = 16,
                      stop_at_goal: bool = False, wall_timeout: float = 300.0, hosts: bool = True) -> dict:
    """Run the team for ``duration`` sim s; returns the observer's summary with, per robot, its last CommStats
    and the bytes and packets its host put on the radio bridge and on its control channel. ``hosts=False``: the
    same team in one host (the demo's graph, DDS link), for comparison, still started here."""
    import netns
    from spatial_memory_ros.demo.options import DemoOptions, demo_query
    from spatial_memory_ros.demo.processes import node_command
    from spatial_memory_ros.demo.run import extra_bev_readers
    from spatial_memory_ros.graph import robot_ids, sim_team_graph
    from spatial_memory_ros.hosts import CONTROL_DDS_PROFILE, control_dds_environment, split_team_graph

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    options = DemoOptions(duration=duration, robots=robots, seed=seed, maze_size=maze_size, bev=bev,
                          bits=bits_per_step, stop_at_goal=stop_at_goal, progress=False, out=out_dir)
    extra = extra_bev_readers(options)
    graph = sim_team_graph(robots, seed=seed, maze_size=maze_size, max_sim_time=duration, sources=options.sources(),
                           extra_bev_readers=extra, bits_per_step=bits_per_step, goal_query=demo_query(options))
    ids = robot_ids(robots)
    profile = out_dir / "dds_udp_only.xml"
    profile.write_text(CONTROL_DDS_PROFILE)
    env = {**os.environ, **control_dds_environment(profile, domain_id=os.getpid() % 100 + 100)}
    spec_path, result_path = out_dir / "observe.json", out_dir / "summary.json"
    wall_start = time.monotonic()
    with netns.Hosts(robots, rate_bits=rate_bits if hosts else None, loss=loss if hosts else 0.0, control=True,
                     radio_port=PORT) as net:
        if hosts:
            parts = split_team_graph(graph, [f"{net.address(k)}:{PORT}" for k in range(robots)], net.broadcast,
                                     link_bits_per_second=rate_bits, sources=options.sources(),
                                     extra_bev_readers=extra)
        else:
            parts = {"sim": graph}
        logs = out_dir / "logs"
        logs.mkdir(exist_ok=True)
        for k, robot in enumerate(ids):
            for spec in parts.get(robot, []):
                log = open(logs / f"{spec.fully_qualified_name.strip('/').replace('/', '__')}.log", "w")
                net.popen(k, node_command(spec, logs / "params"), env=env, stdout=log, stderr=subprocess.STDOUT)
        (out_dir / "sim_graph.pickle").write_bytes(pickle.dumps(parts["sim"]))
        spec_path.write_text(json.dumps({
            "graph": str(out_dir / "sim_graph.pickle"), "out": str(result_path), "logs": str(logs),
            "robots": robots, "seed": seed, "maze_size": maze_size, "duration": duration, "bev": bev,
            "bits": bits_per_step, "stop_at_goal": stop_at_goal, "wall_timeout": wall_timeout,
            "nodes": [spec.fully_qualified_name for part in parts.values() for spec in part]}))
        observer_log = open(out_dir / "observer.log", "w")
        observer = net.popen("sim", [sys.executable, __file__, "--observe", str(spec_path)], env=env,
                             stdout=observer_log, stderr=subprocess.STDOUT)
        try:
            code = observer.wait(timeout=wall_timeout + 60)
        except subprocess.TimeoutExpired:
            code = None
        time.sleep(0.5)
        radio = [net.bridge_counters(k) for k in range(robots)]
        control = [net.control_counters(k) for k in range(robots)]
        guard = [net.radio_guard_drops(k) for k in range(robots)]
    wall = time.monotonic() - wall_start
    if code != 0 or not result_path.exists():
        raise RuntimeError(f"the sim host's observer ended with {code}; see {out_dir / 'observer.log'} and "
                           f"{out_dir / 'logs'}")
    result = json.loads(result_path.read_text())
    result["hosts"] = hosts
    result["total_wall_seconds"] = round(wall, 3)
    for k, robot in enumerate(ids):
        result["per_robot"].setdefault(robot, {}).update(radio=radio[k], control=control[k],
                                                        radio_guard_drops=guard[k])
    return result


def observe(spec_path: str) -> None:
    """Inside the sim host: run the sim's part and the observer until the end; write the summary."""
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from spatial_memory_ros.demo.observer import RunObservation, make_observer
    from spatial_memory_ros.demo.options import DemoOptions
    from spatial_memory_ros.demo.processes import ProcessGraph
    from spatial_memory_ros.demo.report import build_summary
    from spatial_memory_ros.demo.run import _wait_for_end
    from spatial_memory_ros.graph import robot_ids

    spec = json.loads(Path(spec_path).read_text())
    graph = pickle.loads(Path(spec["graph"]).read_bytes())
    options = DemoOptions(duration=spec["duration"], robots=spec["robots"], seed=spec["seed"],
                          maze_size=spec["maze_size"], bev=spec["bev"], bits=spec["bits"], progress=False,
                          stop_at_goal=spec["stop_at_goal"], wall_timeout=spec["wall_timeout"])
    robots = robot_ids(options.robots)
    observation = RunObservation()
    rclpy.init(args=[])
    executor = SingleThreadedExecutor()
    observer = make_observer(robots, observation, spec["nodes"])
    executor.add_node(observer)
    runner = ProcessGraph(graph, Path(spec["logs"]))
    spinner = threading.Thread(target=_spin_quietly, args=(executor,), daemon=True)
    wall_start = time.monotonic()
    error = None
    try:
        runner.start()
        spinner.start()
        _wait_for_end(options, observation, runner, wall_start)
        time.sleep(1.5)  # the robots' last comm/stats (1 Hz) on their way over the control channel
    except (RuntimeError, TimeoutError) as exc:
        error = str(exc)
    finally:
        runner.stop()
        wall = time.monotonic() - wall_start
        summary = build_summary(options, observation, wall)
        summary["error"] = error
        for robot in robots:
            stats = observation.comm_stats.get(robot)
            summary["per_robot"].setdefault(robot, {})["comm_stats"] = None if stats is None else {
                "packets_sent": stats.packets_sent, "packets_received": stats.packets_received,
                "wire_bytes_sent": stats.wire_bytes_sent, "link_state": stats.link_state,
                "link_states": observation.link_states.get(robot, []),
                "steps": stats.steps,
                "drops": {r: int(c) for r, c in zip(stats.drop_reasons, stats.drop_counts) if c}}
            summary["per_robot"][robot]["partner_estimates"] = len(observation.partner_errors.get(robot, []))
        Path(spec["out"]).write_text(json.dumps(summary, indent=1, default=str))
    sys.stdout.flush()
    os._exit(0 if error is None else 1)  # rclpy's teardown under a spinning thread can abort; the summary is written


def _spin_quietly(executor) -> None:
    try:
        executor.spin()
    except Exception:  # the context shut down under the spin at the end
        pass


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--observe":
        observe(sys.argv[2])
    result = run_team_on_hosts(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/team_hosts"))
    print(json.dumps(result, indent=1))
