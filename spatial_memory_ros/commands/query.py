"""spatial-memory query TEXT --robot robot1: ask a live robot's spatial memory where to find something."""
from __future__ import annotations

import argparse
import sys
import time


def add_parser(subparsers) -> None:
    """Add ``query`` to the CLI."""
    parser = subparsers.add_parser(
        "query", help="ask a live robot's memory where something is (QueryMemory service)",
        description="Call /<robot>/query with a text query and print the sampled locations, best match first.",
        epilog='example: spatial-memory query "the red target" --robot robot2 --near 3 4 --samples 5')
    parser.add_argument("text", help='what to look for, e.g. "the red target" or "something blue"')
    parser.add_argument("--robot", default="robot1", help="the robot's namespace (default robot1)")
    parser.add_argument("--samples", type=int, default=5, help="number of sampled locations (default 5)")
    parser.add_argument("--near", type=float, nargs=2, metavar=("X", "Y"), default=None,
                        help="bias the samples toward this map location (metres)")
    parser.add_argument("--near-sd", type=float, default=3.0, help="spread of that bias in metres (default 3)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the service (default 20)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Call the service and print the answer; exit 1 if it cannot be reached or says no."""
    import rclpy

    from spatial_memory_ros.ros_common import call_with_retries
    from spatial_memory_ros.srv import QueryMemory

    rclpy.init(args=[])
    node = rclpy.create_node("spatial_memory_query")
    try:
        client = node.create_client(QueryMemory, f"/{args.robot.strip('/')}/query")
        if not client.wait_for_service(timeout_sec=args.timeout):
            print(f"no /{args.robot}/query service within {args.timeout:g} s: is the team running "
                  f"(spatial-memory demo, or ros2 launch spatial_memory_ros sim_team.launch.py)?", file=sys.stderr)
            return 1
        request = QueryMemory.Request(query=args.text, num_samples=max(args.samples, 0))
        if args.near is not None:
            request.x, request.y, request.location_sd = args.near[0], args.near[1], args.near_sd

        def spin_until_done(done, seconds: float) -> bool:
            deadline = time.monotonic() + seconds
            while not done() and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.1)
            return done()

        response = call_with_retries(client, request, spin_until_done, args.timeout)
        if response is None:
            print(f"/{args.robot}/query did not answer within {args.timeout:g} s", file=sys.stderr)
            return 1
        return _print_answer(args, response)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def _print_answer(args: argparse.Namespace, response) -> int:
    if not response.success:
        print(f"{args.robot}: {response.message}", file=sys.stderr)
        return 1
    print(f'{args.robot} on "{args.text}" ({response.message}):')
    print(f"  {'x (m)':>8} {'y (m)':>8} {'score':>6}  label")
    for x, y, score, label in zip(response.xs, response.ys, response.scores, response.labels):
        print(f"  {x:8.2f} {y:8.2f} {score:6.2f}  {label}")
    return 0
