"""Benchmark of recording (issue 7): what `spatial-memory record` costs the running team, and how big bags are.

1. Recording overhead: wall time of `spatial-memory demo --duration D --robots N --no-progress` alone (the
   baseline, measured in the same run) and with `spatial-memory record` running beside it in another
   process, recording the default topics; runs alternate baseline / recorded.
2. Bag size per robot-minute of simulated time, and per topic kind.

Each run gets a DDS domain of its own. Prints a table and writes benchmarks/results/record.json.
  .venv/bin/python benchmarks/record.py [--duration 30] [--robots 3] [--repeats 1] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "record.json"
CLI = [sys.executable, "-m", "spatial_memory_ros.cli"]
sys.path.insert(0, str(ROOT))


def _env(domain: int) -> dict[str, str]:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_LOCALHOST_ONLY="1", HF_HUB_OFFLINE="1")
    return env


def run_demo(duration: float, robots: int, out: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (its node processes included) of one demo run: start, sim, shutdown."""
    command = CLI + ["demo", "--duration", str(duration), "--robots", str(robots), "--no-progress", "--out", str(out)]
    cpu_before, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"demo failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return seconds, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    """CPU seconds a running process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_recorded_demo(duration: float, robots: int, work: Path,
                      env: dict[str, str]) -> tuple[float, float, float, Path]:
    """Wall and CPU seconds of a demo run with a recorder beside it, the recorder's CPU seconds, and the bag.
    The recorder starts first and stops after."""
    bag = work / "bag"
    recorder = subprocess.Popen(CLI + ["record", "--out", str(bag), "--robots", str(robots), "--quiet"], env=env,
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(3.0)  # let the recorder start and join the domain before the team does
        seconds, cpu = run_demo(duration, robots, work / "runs", env)
        recorder_cpu = _process_cpu(recorder.pid)
    finally:
        recorder.send_signal(signal.SIGINT)
        try:
            output = recorder.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            recorder.kill()
            output = recorder.communicate()[0]
    if recorder.returncode != 0:
        raise RuntimeError(f"record failed (exit {recorder.returncode}): {output[-2000:]}")
    return seconds, cpu, recorder_cpu, bag


def bag_stats(bag: Path, robots: int, duration: float) -> dict:
    """Size of the bag, per robot-minute of sim time, and by topic kind."""
    from spatial_memory_ros.recording.bags import BagReader

    size = sum(f.stat().st_size for f in bag.iterdir())
    by_kind: dict[str, int] = {}
    with BagReader(bag) as reader:
        counts = reader.validate()
        for message in reader.messages():
            kind = message.topic.split("/", 2)[-1] if message.topic.startswith("/robot") else message.topic
            by_kind[kind] = by_kind.get(kind, 0) + len(message.data)
    robot_minutes = robots * duration / 60.0
    return {"bytes": size, "messages": sum(counts.values()), "topics": len(counts),
            "mb_per_robot_minute": size / 1e6 / robot_minutes, "payload_bytes_by_topic_kind": by_kind}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--duration", type=float, default=30.0, help="simulated seconds per demo (default 30)")
    parser.add_argument("--robots", type=int, default=3, help="robots (default 3)")
    parser.add_argument("--repeats", type=int, default=1, help="baseline/recorded pairs (default 1)")
    parser.add_argument("--quick", action="store_true", help="a short run (10 sim s, one pair)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    args = parser.parse_args()
    duration, repeats = (10.0, 1) if args.quick else (args.duration, args.repeats)

    baseline, recorded, stats, cpu = [], [], [], {"alone": [], "recorded": [], "recorder": []}
    domain = 201 + os.getpid() % 30    # two domains (alone, recorded), clear of the tests' 100..199
    with tempfile.TemporaryDirectory(prefix="bench_record_") as tmp:
        for index in range(repeats):
            for mode in (("alone", "recorded") if index % 2 == 0 else ("recorded", "alone")):  # alternate order
                print(f"pair {index + 1}/{repeats}: demo {mode} ...", file=sys.stderr, flush=True)
                if mode == "alone":
                    seconds, demo_cpu = run_demo(duration, args.robots, Path(tmp) / f"base{index}", _env(domain))
                    baseline.append(seconds)
                    cpu["alone"].append(demo_cpu)
                    continue
                work = Path(tmp) / f"rec{index}"
                seconds, demo_cpu, recorder_cpu, bag = run_recorded_demo(duration, args.robots, work,
                                                                         _env(domain + 1))
                recorded.append(seconds)
                cpu["recorded"].append(demo_cpu)
                cpu["recorder"].append(recorder_cpu)
                stats.append(bag_stats(bag, args.robots, duration))

    base, rec = min(baseline), min(recorded)
    overhead = (rec - base) / base
    size = stats[-1]
    print(f"\n{'demo (' + str(args.robots) + ' robots, ' + f'{duration:g} sim s)':<32} | {'wall s':>7}")
    print("-" * 43)
    print(f"{'alone (baseline)':<32} | {base:>7.1f}")
    print(f"{'with spatial-memory record':<32} | {rec:>7.1f}")
    print(f"{'recording overhead (wall)':<32} | {overhead * 100:>6.1f}%")
    recorder_share = min(cpu["recorder"]) / min(cpu["alone"])
    print(f"\nCPU: demo alone {min(cpu['alone']):.1f} s, demo beside the recorder {min(cpu['recorded']):.1f} s, "
          f"recorder {min(cpu['recorder']):.1f} s = {recorder_share * 100:.1f}% of the demo's CPU")
    print(f"\nbag: {size['bytes'] / 1e6:.2f} MB, {size['messages']} messages on {size['topics']} topics = "
          f"{size['mb_per_robot_minute']:.2f} MB per robot-minute of sim time")
    for kind, payload in sorted(size["payload_bytes_by_topic_kind"].items(), key=lambda kv: -kv[1]):
        print(f"  {payload / 1e6:8.2f} MB  {kind}")

    result = {"benchmark": "record", "quick": args.quick, "duration_sim_s": duration, "robots": args.robots,
              "repeats": repeats, "machine": platform.platform(), "cpu_count": os.cpu_count(),
              "load_average_at_end": os.getloadavg(), "python": platform.python_version(),
              "demo_wall_s_alone": baseline, "demo_wall_s_recorded": recorded,
              "overhead_fraction_best_of": overhead, "cpu_s": cpu, "recorder_cpu_fraction": recorder_share,
              "bag": size}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
