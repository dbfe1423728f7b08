"""spatial-memory: the package's command line.

  spatial-memory demo  [--duration S] [--robots N] [--out DIR] [--composed]   run the simulated team
  spatial-memory graph [--robots N]                                            print the node graph
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EPILOG = """examples:
  spatial-memory demo --duration 30 --robots 3          # one process per node, as ros2 launch would start them
  spatial-memory demo --duration 30 --composed          # all nodes in this process
  spatial-memory graph --robots 2                       # the executables, namespaces, parameters, remappings
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``spatial-memory`` and its subcommands."""
    parser = argparse.ArgumentParser(prog="spatial-memory", description=__doc__.split("\n")[0],
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="run the simulated robot team and write a run folder",
                               description="Run the simulated team for --duration sim seconds (faster than real "
                                           "time where the CPU allows) and write <out>/<timestamp>/ with "
                                           "summary.json, trajectories.png and each node's log.")
    demo.add_argument("--duration", type=_positive_float, default=60.0, help="simulated seconds (default 60)")
    demo.add_argument("--robots", type=_robot_count, default=3, help="number of robots, 1..16 (default 3)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the maze, starts and noise (default 0)")
    demo.add_argument("--maze-size", type=int, default=15, choices=range(9, 16), metavar="9..15",
                      help="maze side in cells (default 15): builtin 9..15 with the outer wall, memory_maze 9, 11, "
                           "13 or 15 inside it")
    demo.add_argument("--world", choices=("builtin", "memory_maze"), default="builtin",
                      help="the simulated world: the built-in ray-cast maze (default) or Memory-Maze in MuJoCo "
                           "(2 m cells; its camera's BEVs come from the floor-boundary model, models/bev_boundary.md)")
    demo.add_argument("--out", type=Path, default=Path("runs"), help="parent folder of the run folder (default runs)")
    demo.add_argument("--composed", action="store_true",
                      help="run all nodes in this process on a multi-threaded executor")
    demo.add_argument("--real-time-factor", type=float, default=0.0,
                      help="cap on the speed-up over real time; 0 = as fast as possible (default)")
    demo.add_argument("--wall-timeout", type=_positive_float, default=None,
                      help="give up after this many wall seconds (default max(120, 20 x duration))")
    demo.add_argument("--query", default=None,
                      help="the text goal every explorer asks its memory for and drives to, also asked at the end "
                           "for the summary (default: 'the <colour> target' for the maze's first target)")
    demo.add_argument("--bev", choices=("predicted", "oracle", "scan", "depth"), default="predicted",
                      help="BEV source of the mapping stack: the bev_predictor (default), the sim's oracle, or "
                           "geometric_bev from the sim's laser scan or depth image")
    demo.add_argument("--pose", choices=("estimate", "ground_truth"), default="estimate",
                      help="pose source of the memory: the localizer (default) or the sim's ground truth")
    demo.add_argument("--bits", type=_bit_budget, default=16,
                      help="team link budget in bits per step, 1..1024 (default 16)")
    demo.add_argument("--comm", choices=("ours", "broadcast", "quota", "none"), default="ours",
                      help="what the team link sends: predictive coding (default), full broadcast, broadcast with "
                           "a 20-round quota, or nothing")
    demo.add_argument("--record", action="store_true",
                      help="record the default topics into <run folder>/bag (rosbag2, mcap) and render it "
                           "(snapshot_*.png, render.mp4)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")

    graph = commands.add_parser("graph", help="print the node graph of the simulated team")
    graph.add_argument("--robots", type=_robot_count, default=3)

    for module in command_modules():
        module.add_parser(commands)
    return parser


def command_modules() -> list:
    """The subcommands in spatial_memory_ros/commands/: each module has add_parser(subparsers) and run(args)."""
    import importlib
    import pkgutil

    import spatial_memory_ros.commands as package

    return [importlib.import_module(f"{package.__name__}.{info.name}")
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda info: info.name)
            if not info.name.startswith("_")]   # _name: a helper of another command


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``spatial-memory``."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.command == "demo":
        return _demo(args)
    if args.command == "graph":
        return _graph(args)
    return args.run(args)


def _demo(args: argparse.Namespace) -> int:
    from spatial_memory_ros.demo.options import DemoOptions
    from spatial_memory_ros.demo.run import run_demo

    options = DemoOptions(duration=args.duration, robots=args.robots, seed=args.seed, maze_size=args.maze_size,
                          out=args.out, composed=args.composed, real_time_factor=args.real_time_factor,
                          wall_timeout=args.wall_timeout, progress=not args.no_progress, query=args.query,
                          record=args.record, bev=args.bev, pose=args.pose, bits=args.bits, comm=args.comm,
                          world=args.world)
    try:
        run_dir = run_demo(options)
    except (RuntimeError, TimeoutError) as error:
        print(error, file=sys.stderr)
        return 1
    summary = (run_dir / "summary.json").read_text()
    print(summary)
    print(f"verdict: {json.loads(summary)['verdict']}")
    print(f"run folder: {run_dir}\n  summary:      {run_dir / 'summary.json'}\n"
          f"  trajectories: {run_dir / 'trajectories.png'}\n  node logs:    {run_dir / 'logs'}")
    if (run_dir / "bag").exists():
        print(f"  bag:          {run_dir / 'bag'}  (spatial-memory replay {run_dir / 'bag'})")
        print(f"  video:        {run_dir / 'render.mp4'}  and snapshot_*.png")
    interrupted = json.loads(summary).get("interrupted")
    if interrupted:
        print(f"interrupted {interrupted}: the summary is marked \"complete\": false", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports a Ctrl-C
    return 0


def _graph(args: argparse.Namespace) -> int:
    from spatial_memory_ros.graph import sim_team_graph

    for spec in sim_team_graph(args.robots):
        print(f"{spec.fully_qualified_name:<24} {spec.executable:<14} params={spec.params_file} "
              f"overrides={spec.parameters} remap={dict(spec.remappings)}")
    return 0


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _bit_budget(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"must be in 1..1024, got {text}")
    return value


def _robot_count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 16:
        raise argparse.ArgumentTypeError(f"must be in 1..16, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
