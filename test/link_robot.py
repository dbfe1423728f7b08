"""One robot's team link on its own host, without ROS: a TeamComm behind the UDP FrameLink (comm/transport.py),
fed by a stand-in robot that wanders a generated maze at 0.5 m/s and maps a 1.5 m disk around itself (its map is
the true maze there; its pose the true one). Run by test/test_link_hosts.py and benchmarks/link.py inside a
network namespace each (test/netns.py); writes a JSON report at the end (or on SIGTERM).

    python test/link_robot.py --robot robot1 --team robot1,robot2,robot3 --bind 10.77.1.1:7447 \
        --peers 10.77.1.255 --link-bps 400 --duration 30 --out r1.json

Steps follow the wall clock (step = time / dt), as the team_comm node's windows follow its clock, so robots
started at different times (a reboot) agree on the windows.
"""
from __future__ import annotations

import argparse
import json
import math
import select
import signal
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spatial_memory_ros.comm.layout import CommLayout  # noqa: E402
from spatial_memory_ros.comm.link import CommConfig, TeamComm  # noqa: E402
from spatial_memory_ros.comm.partners import Sighting  # noqa: E402
from spatial_memory_ros.comm.transport import FrameLink, UdpTransport  # noqa: E402
from spatial_memory_ros.evaluation.map_scores import rasterize_maze  # noqa: E402
from spatial_memory_ros.sim.maze import CLASS_NAMES, generate_maze  # noqa: E402
from spatial_memory_ros.types import GridGeometry, Pose2D  # noqa: E402

KEY = b"spatial_memory_ros multi-host test key"


class Wanderer:
    """A robot that drives at ``speed`` from free cell to free cell of the maze and maps what is near it."""

    def __init__(self, maze, geometry: GridGeometry, seed: int, speed: float = 0.5, radius: float = 1.5) -> None:
        self.maze, self.geometry, self.speed, self.radius = maze, geometry, speed, radius
        self.truth = rasterize_maze(maze, geometry)
        self.rng = np.random.default_rng(seed)
        self.free = maze.free_cells()
        self.x, self.y = self._random_point()
        self.goal = self._random_point()
        self.heading = 0.0
        self.occupancy = np.full(self.truth.shape, -1, np.int8)
        xs, ys = geometry.cell_centres()
        self._xs, self._ys = xs, ys

    def _random_point(self) -> tuple[float, float]:
        row, col = self.free[int(self.rng.integers(len(self.free)))]
        return self.maze.cell_center(int(row), int(col))

    def step(self, dt: float) -> None:
        dx, dy = self.goal[0] - self.x, self.goal[1] - self.y
        distance = math.hypot(dx, dy)
        if distance < self.speed * dt:
            self.goal = self._random_point()
            return
        self.heading = math.atan2(dy, dx)
        self.x += self.speed * dt * dx / distance
        self.y += self.speed * dt * dy / distance
        near = (self._xs - self.x) ** 2 + (self._ys - self.y) ** 2 <= self.radius ** 2
        self.occupancy[near] = np.where(self.truth[near] != 0, 100, 0)

    def sightings(self) -> list[Sighting]:
        return [Sighting(f"{t.color} target", t.x, t.y) for t in self.maze.targets
                if math.hypot(t.x - self.x, t.y - self.y) <= self.radius + 0.5]


def robot_command(net, k: int, duration: float, out: str, link_bps: float = 400.0, bits: int = 16, seed: int = 0,
                  robots: int | None = None) -> list[str]:
    """The command line that runs robot ``k`` of a :class:`netns.Hosts` team (frames broadcast on its subnet)."""
    team = ",".join(f"robot{j + 1}" for j in range(robots or net.n))
    return [sys.executable, str(Path(__file__).resolve()), "--robot", f"robot{k + 1}", "--team", team,
            "--bind", f"{net.address(k)}:7447", "--peers", net.broadcast, "--link-bps", str(link_bps),
            "--bits", str(bits), "--duration", str(duration), "--seed", str(seed), "--out", out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robot", required=True)
    parser.add_argument("--team", required=True, help="comma-separated robot ids, the same order on every robot")
    parser.add_argument("--bind", required=True, help="this host's address:port")
    parser.add_argument("--peers", required=True, help="comma-separated peer endpoints or the broadcast address")
    parser.add_argument("--link-bps", type=float, default=400.0, help="this robot's air share, bit/s (0: none)")
    parser.add_argument("--bits", type=int, default=16, help="payload bits per step")
    parser.add_argument("--dt", type=float, default=0.1)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0, help="maze seed (the same on every robot)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    team = args.team.split(",")
    maze = generate_maze(15, seed=args.seed)
    geometry = GridGeometry.covering(maze, 0.25)
    layout = CommLayout.for_map(geometry, CLASS_NAMES, 0.5)
    comm = TeamComm(args.robot, team, KEY, layout, CommConfig(bits_per_step=args.bits))
    transport = UdpTransport(args.bind, args.peers.split(","))
    link = FrameLink(comm, team, transport, link_bits_per_second=args.link_bps, silent_after_s=3.0)
    robot = Wanderer(maze, geometry, seed=1000 * args.seed + team.index(args.robot))
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    accepted, samples, alone_since, was_up = [], [], None, False
    # Stamps are CLOCK_MONOTONIC, shared by every process on the host and namespace: this VM's wall clock jumps (a
    # 50 s run once spanned 81 s of time.time()), which moved samples across the test's partition window.
    start = time.monotonic()
    next_sample = start
    max_steps = int(args.duration / args.dt) + 10
    for _ in range(max_steps):  # bounded in count and in time
        now = time.monotonic()
        if stopping or now - start >= args.duration:
            break
        step = int(time.time() / args.dt) % (1 << 32)
        robot.step(args.dt)
        link.step(step, now, Pose2D(robot.x, robot.y, robot.heading), robot.speed, robot.occupancy,
                  robot.sightings())
        deadline = start + (int((now - start) / args.dt) + 1) * args.dt
        while (wait := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([transport.fileno()], [], [], wait)
            if ready:
                for decoded, _new in link.poll(int(time.time() / args.dt) % (1 << 32), time.monotonic()):
                    accepted.append((round(time.monotonic(), 3), decoded.sender, decoded.sequence))
        now = time.monotonic()
        if now >= next_sample:
            up = link.link_up(now)
            if was_up and not up:
                print(f"{args.robot}: team link silent for {link.silent_after_s:.0f} s: working alone", flush=True)
            was_up = up
            samples.append((round(now, 3), link.partners_heard(now)))
            next_sample += 0.5
    elapsed = time.monotonic() - start
    report = {"robot": args.robot, "start": start, "elapsed_s": elapsed, "link": link.summary(elapsed),
              "accepted": accepted, "samples": samples, "packets_received": comm.stats.packets_received,
              "cells_known_from_team": int(np.count_nonzero(comm.team_layer))}
    Path(args.out).write_text(json.dumps(report))
    transport.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
