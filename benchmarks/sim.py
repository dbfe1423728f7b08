"""Benchmark of the simulated world (Foundation issue).

1. Steps per second of sim_world with 1, 3 and 8 robots, rendering and publishing every camera image,
   odometry, ground-truth pose and oracle BEV to a subscriber in another process, with the sim pinned to one
   core; the real-time factor at 10 Hz; and, measured in the same run, the core world alone (no ROS) as the
   baseline, so the ROS share of the cost is a ratio.
2. Time from starting a node's process to its first published message, for sim_world and, as the baseline,
   a minimal rclpy publisher process.

Prints a table and writes benchmarks/results/sim.json.
  .venv/bin/python benchmarks/sim.py [--steps 300] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

RESULTS = Path(__file__).resolve().parent / "results" / "sim.json"
TARGET_RTF_3_ROBOTS = 5.0

SUBSCRIBER = """
import sys, time, rclpy
from rclpy.node import Node
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Image
from spatial_memory_ros.msg import BevMap
from spatial_memory_ros.ros_common import RELIABLE_QOS, SENSOR_QOS
rclpy.init()
node = Node("bench_subscriber")
robots = int(sys.argv[1])
for k in range(1, robots + 1):
    node.create_subscription(Image, f"/robot{k}/camera/image_raw", lambda m: None, SENSOR_QOS)
    node.create_subscription(Odometry, f"/robot{k}/odom", lambda m: None, RELIABLE_QOS)
    node.create_subscription(PoseWithCovarianceStamped, f"/robot{k}/ground_truth/pose", lambda m: None, RELIABLE_QOS)
    node.create_subscription(BevMap, f"/robot{k}/ground_truth/bev", lambda m: None, RELIABLE_QOS)
try:
    rclpy.spin(node)
except BaseException:
    pass
"""

MINIMAL_TALKER = """
import rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node("minimal_talker")
pub = node.create_publisher(String, "/bench/first_message", 10)
node.create_timer(0.01, lambda: pub.publish(String(data="hi")))
try:
    rclpy.spin(node)
except BaseException:
    pass
"""


def core_steps_per_second(robots: int, steps: int) -> float:
    """The baseline: the core world alone (step + render + oracle BEV for every robot), no ROS."""
    from spatial_memory_ros.sim.maze import generate_maze
    from spatial_memory_ros.sim.world import World

    world = World(generate_maze(15, seed=0), num_robots=robots, seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        world.step([(0.5, 0.4)] * robots)
        for robot in range(robots):
            world.render(robot)
            world.oracle_bev(robot)
    return steps / (time.perf_counter() - start)


def ros_steps_per_second(robots: int, steps: int) -> float:
    """sim_world stepping and publishing everything to a subscriber in another process."""
    import rclpy
    from rclpy.parameter import Parameter

    from spatial_memory_ros.nodes.sim_world import SimWorldNode

    subscriber = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(robots)])
    context = rclpy.context.Context()
    rclpy.init(args=[], context=context)
    try:
        node = SimWorldNode(context=context, parameter_overrides=[
            Parameter("robots", value=robots), Parameter("maze_size", value=15),
            Parameter("max_sim_time", value=1e-9)])  # the node's own timer stays idle; we step it here
        deadline = time.monotonic() + 20.0
        while node.count_subscribers(f"/robot{robots}/ground_truth/bev") == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        start = time.perf_counter()
        for _ in range(steps):
            node.world.step([(0.5, 0.4)] * robots)
            node.publish_sensors()
        rate = steps / (time.perf_counter() - start)
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
        subscriber.terminate()
        subscriber.wait()
    return rate


def time_to_first_message(command: list[str], msg_type, topic: str, qos) -> float:
    """Seconds from starting a process to the first message it publishes on ``topic``."""
    import rclpy

    context = rclpy.context.Context()
    rclpy.init(args=[], context=context)
    node = rclpy.create_node("first_message_probe", context=context)
    got: list[float] = []
    node.create_subscription(msg_type, topic, lambda _m: got.append(time.perf_counter()), qos)
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not got and time.perf_counter() - start < 60.0:
            executor.spin_once(timeout_sec=0.01)
    finally:
        process.terminate()
        process.wait()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return got[0] - start if got else float("nan")


def measure_startup(repeats: int) -> dict:
    """Median time to first message: sim_world's installed executable vs a minimal rclpy talker."""
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from spatial_memory_ros.graph import executable_path
    from spatial_memory_ros.ros_common import SENSOR_QOS

    sim_cmd = [str(executable_path("sim_world")), "--ros-args", "-p", "robots:=3", "-p", "max_sim_time:=1.0",
               "-p", "wait_for_controllers:=0.0"]  # no controllers here: publish the first frame at once
    with tempfile.TemporaryDirectory() as tmp:
        talker = Path(tmp) / "talker.py"
        talker.write_text(MINIMAL_TALKER)
        sim = sorted(time_to_first_message(sim_cmd, Image, "/robot1/camera/image_raw", SENSOR_QOS)
                     for _ in range(repeats))
        base = sorted(time_to_first_message([sys.executable, str(talker)], String, "/bench/first_message", 10)
                      for _ in range(repeats))
    return {"sim_world_s": sim[len(sim) // 2], "minimal_rclpy_talker_s": base[len(base) // 2],
            "ratio": sim[len(sim) // 2] / base[len(base) // 2]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--steps", type=int, default=300, help="world steps per measurement (default 300)")
    parser.add_argument("--repeats", type=int, default=3, help="process starts per startup measurement")
    parser.add_argument("--quick", action="store_true", help="a short run (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    args = parser.parse_args()
    steps, repeats = (30, 1) if args.quick else (args.steps, args.repeats)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # the sim on ONE core

    rows = []
    for robots in (1, 3, 8):
        print(f"measuring {robots} robot(s), {steps} steps ...", file=sys.stderr, flush=True)
        core = core_steps_per_second(robots, steps)
        ros = ros_steps_per_second(robots, steps)
        rows.append({"robots": robots, "core_steps_per_s": core, "ros_steps_per_s": ros,
                     "ros_vs_core": ros / core, "real_time_factor_at_10hz": ros / 10.0})
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    print("measuring time to first message ...", file=sys.stderr, flush=True)
    startup = measure_startup(repeats)

    print(f"\n{'robots':>6} | {'core only steps/s':>17} | {'sim_world steps/s':>17} | {'ROS/core':>8} | "
          f"{'real-time factor @10 Hz':>23}")
    print("-" * 84)
    for row in rows:
        print(f"{row['robots']:>6} | {row['core_steps_per_s']:>17.1f} | {row['ros_steps_per_s']:>17.1f} | "
              f"{row['ros_vs_core']:>8.2f} | {row['real_time_factor_at_10hz']:>22.1f}x")
    three = next(r for r in rows if r["robots"] == 3)
    verdict = "meets" if three["real_time_factor_at_10hz"] >= TARGET_RTF_3_ROBOTS else "MISSES"
    print(f"\n3 robots: {three['real_time_factor_at_10hz']:.1f}x real time on one core "
          f"({verdict} the {TARGET_RTF_3_ROBOTS:g}x target)")
    print(f"time to first message: sim_world {startup['sim_world_s']:.2f} s, minimal rclpy talker "
          f"{startup['minimal_rclpy_talker_s']:.2f} s (ratio {startup['ratio']:.2f})")

    result = {"benchmark": "sim", "steps": steps, "quick": args.quick, "machine": platform.platform(),
              "cpu_count": os.cpu_count(), "python": platform.python_version(), "rows": rows,
              "startup": startup, "target_rtf_3_robots": TARGET_RTF_3_ROBOTS, "meets_target": verdict == "meets"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
