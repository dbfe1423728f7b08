#!/usr/bin/env python3
"""Trace one Memory-Maze score episode, to see why it scored what it did (issue 17's failure diagnoses).

Runs the shipped score robot (the same run_episode as memory_maze_score.py) and prints, every ``--every`` steps,
what it was doing: the target colour, its status, the navigator's mode, its true distance to the target, and how
many object entries its memory holds per label. At each ``--snapshots`` step it draws the robot's own map laid on
the true maze (the walls it believes, the floor it has seen, its true track, the targets, and the point it drives
to), the picture that shows a doorway its map has closed or a target it never went near. The truth (pose, layout,
targets) is read for this report only, never given to the robot, as in memory_maze_score.py.

  .venv/bin/python benchmarks/diagnostics/memory_maze_trace.py --size 15 --seed 3000002 --steps 1410 --snapshots 1400

A diagnostic, not a figure: benchmarks/diagnostics/ is outside what ``make bench`` runs.

Writes ``<out>/trace_<size>_<seed>.json`` (the printed rows) and ``trace_<size>_<seed>_step<N>.png``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402

from spatial_memory_ros.behaviour.planner import unknown_area_behind  # noqa: E402
from spatial_memory_ros.evaluation.memory_maze_agent import AgentConfig, run_episode  # noqa: E402
from spatial_memory_ros.evaluation.memory_maze_env import EPISODE_STEPS  # noqa: E402
from spatial_memory_ros.sim.memory_maze import layout_maze  # noqa: E402
from spatial_memory_ros.types import is_target_label  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "traces"
COLOURS = {"salmon": "salmon", "yellow": "gold"}  # matplotlib names where Memory-Maze's differ


class Tracer:
    """The observer run_episode calls each step: rows every ``every`` steps, pictures at ``snapshots``."""

    def __init__(self, size: int, seed: int, every: int, snapshots: set[int], out: Path) -> None:
        self.size, self.seed, self.every, self.snapshots, self.out = size, seed, every, snapshots, out
        self.rows: list[dict] = []
        self.pictures: list[Path] = []
        self.track: list[tuple[float, float]] = []
        self._start = None
        self._maze = None

    def __call__(self, step: int, agent, truth) -> None:
        if truth is None:
            raise SystemExit("the trace needs the task's diagnostics (global observables)")
        if self._start is None:
            self._start = truth.pose
            self._maze = layout_maze(truth.maze_layout, truth.targets_pos, self.seed)
        self.track.append((truth.pose.x, truth.pose.y))
        if step % self.every == 0:
            self.rows.append(self._row(step, agent, truth))
            print(_line(self.rows[-1]), flush=True)
        if step in self.snapshots:
            self.pictures.append(self._draw(step, agent))

    def _row(self, step: int, agent, truth) -> dict:
        target = next((t for t in self._maze.targets if t.color == agent.colour), None)
        distance = math.hypot(target.x - truth.pose.x, target.y - truth.pose.y) if target else None
        labels = Counter(label for label in agent.memory.memory.snapshot().labels if is_target_label(label))
        robot = agent.robot
        mode = robot.navigator.status.mode if robot is not None and robot.navigator is not None else None
        px, py = self._to_truth(np.asarray(agent.pose.x), np.asarray(agent.pose.y))
        goal = robot.current_goal if robot is not None else None
        goal_off = None
        if goal is not None and target is not None:
            gx, gy = self._to_truth(np.asarray(goal[0]), np.asarray(goal[1]))
            goal_off = math.hypot(float(gx) - target.x, float(gy) - target.y)
        return {"step": step, "colour": agent.colour, "status": agent.status, "navigator": mode,
                "distance_to_target_m": distance, "object_entries": dict(sorted(labels.items())),
                "places_found_empty": len(robot.not_here) if robot is not None else 0,
                "trying_look_alikes": bool(robot is not None and robot.trying_look_alikes),
                "doubting_walls": bool(robot is not None and (robot.doubting_walls or (
                    robot.navigator is not None and robot.navigator.status.doubting))),
                "pose_error_m": math.hypot(float(px) - truth.pose.x, float(py) - truth.pose.y),
                "goal_from_target_m": goal_off,  # where it drives to, from the true target
                "in_sight": bool(robot is not None and robot.sight is not None),
                **self._frontier(agent, mode)}

    def _frontier(self, agent, mode: str | None) -> dict:
        """When driving to a frontier: the unknown area behind it (m^2; a hole in known space is a few cells) and
        whether it lies within the maze's outer walls (through the pose estimate, so off by its error)."""
        target = agent.robot.navigator.status.target if mode == "frontier" else None
        if target is None:
            return {"frontier_unknown_m2": None, "frontier_in_maze": None, "frontier_outside_m": None}
        area = unknown_area_behind(agent.memory.occupancy(), agent.geometry, target)
        tx, ty = self._to_truth(np.asarray(target[0]), np.asarray(target[1]))
        rows, cols = np.asarray(self._maze.walls).shape
        ring = self._maze.cell_size  # the outer walls: one ring of wall cells
        outside = max(ring - float(tx), float(tx) - (cols - 1) * ring, ring - float(ty), float(ty) - (rows - 1) * ring)
        return {"frontier_unknown_m2": area, "frontier_in_maze": bool(outside <= 0.0),
                "frontier_outside_m": max(outside, 0.0)}  # how far past the outer walls' inner face

    def _to_truth(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Robot-frame points (start at the origin, heading 0) in the maze's frame."""
        s = self._start
        return (s.x + math.cos(s.theta) * x - math.sin(s.theta) * y,
                s.y + math.sin(s.theta) * x + math.cos(s.theta) * y)

    def _draw(self, step: int, agent) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        maze = self._maze
        walls = np.asarray(maze.walls, bool)
        extent = (0, walls.shape[1] * maze.cell_size, 0, walls.shape[0] * maze.cell_size)
        fig, ax = plt.subplots(figsize=(8, 8))
        ax.imshow(np.where(walls, 0.55, 1.0), origin="lower", extent=extent, cmap="gray", vmin=0, vmax=1)
        occupancy = agent.memory.occupancy()
        geometry = agent.geometry
        xs, ys = geometry.cell_centres()
        mx, my = self._to_truth(xs, ys)
        seen_free = (occupancy >= 0) & (occupancy < 50)
        ax.scatter(mx[seen_free], my[seen_free], s=1, c="limegreen", alpha=0.3, label="floor it has seen")
        ax.scatter(mx[occupancy >= 50], my[occupancy >= 50], s=2, c="red", label="walls it believes")
        track = np.asarray(self.track)
        ax.plot(track[:, 0], track[:, 1], "b-", lw=0.5, label="its true track")
        for target in maze.targets:
            ax.plot(target.x, target.y, "o", ms=12, mfc=COLOURS.get(target.color, target.color), mec="k")
            ax.annotate(target.color, (target.x, target.y), xytext=(6, 6), textcoords="offset points")
        status = agent.robot.navigator.status if agent.robot is not None and agent.robot.navigator else None
        if status is not None and status.target is not None:
            tx, ty = self._to_truth(np.asarray(status.target[0]), np.asarray(status.target[1]))
            ax.plot(tx, ty, "kx", ms=14, mew=3, label=f"driving to ({status.mode})")
        ax.set_xlim(extent[0] - 1, extent[1] + 1)
        ax.set_ylim(extent[2] - 1, extent[3] + 1)
        ax.set_aspect("equal")
        ax.set_title(f"{self.size}x{self.size} seed {self.seed}, step {step}: looking for {agent.colour}")
        ax.legend(loc="upper right", fontsize=7)
        path = self.out / f"trace_{self.size}_{self.seed}_step{step}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return path


def _line(row: dict) -> str:
    distance = row["distance_to_target_m"]
    where = f"{distance:5.1f} m" if distance is not None else "    -  "
    doubting = "  doubting walls" if row["doubting_walls"] else ""
    goal = row["goal_from_target_m"]
    goal_text = f"goal {goal:4.1f} m off" if goal is not None else "no goal      "
    sight = " in sight" if row["in_sight"] else ""
    if row.get("frontier_unknown_m2") is not None:
        outside = "" if row["frontier_in_maze"] else f", {row['frontier_outside_m']:.1f} m outside the maze"
        sight += f"  frontier: {row['frontier_unknown_m2']:.1f} m2 unknown behind{outside}"
    return (f"step {row['step']:5d}  {row['colour'] or '-':7s} {row['status']:15s} {row['navigator'] or '-':9s} "
            f"target {where}  pose {row['pose_error_m']:3.1f} m off  {goal_text}{sight}  "
            f"empty places {row['places_found_empty']}{doubting}  objects {row['object_entries']}")


def _add_switch(parser: argparse.ArgumentParser, field: str, what: str) -> None:
    """An on|off option for the AgentConfig switch ``field``, defaulting to the shipped agent's."""
    default = "on" if getattr(AgentConfig, field) else "off"
    parser.add_argument("--" + field.replace("_", "-"), choices=("on", "off"), default=default,
                        help=f"{what} (AgentConfig.{field}; default {default}, the shipped agent's)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=15, choices=sorted(EPISODE_STEPS))
    parser.add_argument("--seed", type=int, default=3_000_000, help="episode seed (the score's: 3,000,000 up)")
    parser.add_argument("--steps", type=int, default=None, help="stop after this many steps (default: all)")
    parser.add_argument("--every", type=int, default=100, help="steps between printed rows")
    parser.add_argument("--snapshots", type=int, nargs="*", default=[], help="steps to draw the map at")
    parser.add_argument("--checkpoint", type=Path, default=None, help="BEV checkpoint (default: the shipped one)")
    parser.add_argument("--look-alike-after", type=int, default=AgentConfig.look_alike_after, metavar="STEPS",
                        help=f"RobotConfig.look_alike_after (default {AgentConfig.look_alike_after}, the shipped "
                             "agent's)")
    parser.add_argument("--doubt-walls-after", type=int, default=AgentConfig.doubt_walls_after, metavar="STEPS",
                        help=f"RobotConfig.doubt_walls_after (default {AgentConfig.doubt_walls_after}, the shipped "
                             "agent's)")
    _add_switch(parser, "doubt_when_out_of_frontiers", "with no frontier left, explore behind doubtful walls")
    _add_switch(parser, "goal_through_doubtful_walls", "a goal's path may cross doubtful walls")
    parser.add_argument("--min-wall-incidence", type=float, default=AgentConfig.min_wall_incidence, metavar="COS",
                        help="AgentConfig.min_wall_incidence: drop BEV walls seen more edge-on (default "
                             f"{AgentConfig.min_wall_incidence:g}, the shipped agent's)")
    parser.add_argument("--far-wall-weight", type=float, default=AgentConfig.far_wall_weight, metavar="W",
                        help="AgentConfig.far_wall_weight: the map's weight of a wall seen 7 m off (default "
                             f"{AgentConfig.far_wall_weight:g}, the shipped agent's)")
    parser.add_argument("--frontier-min-unknown-m2", type=float, default=AgentConfig.frontier_min_unknown_m2,
                        metavar="M2",
                        help="PlannerConfig.frontier_min_unknown_m2: skip frontiers with less unknown behind them "
                             f"(default {AgentConfig.frontier_min_unknown_m2:g}, the shipped agent's: off)")
    _add_switch(parser, "replan_when_frontier_seen", "replan at once when the frontier driven to has been seen")
    _add_switch(parser, "arena_bound", "skip frontiers that cannot lie in the maze")
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder for the JSON and pictures (default {OUT})")
    args = parser.parse_args(argv)
    if args.every < 1:
        parser.error(f"--every must be at least 1, got {args.every}")
    if args.steps is not None and not 1 <= args.steps <= EPISODE_STEPS[args.size]:
        parser.error(f"--steps must be in 1..{EPISODE_STEPS[args.size]} for {args.size}x{args.size}")
    from memory_maze_score import make_adapter

    from spatial_memory_ros.memory.semantics import Embedder

    args.out.mkdir(parents=True, exist_ok=True)
    adapter, checkpoint = make_adapter(args.checkpoint)
    tracer = Tracer(args.size, args.seed, args.every, set(args.snapshots), args.out)
    settings = {"look_alike_after": args.look_alike_after, "doubt_walls_after": args.doubt_walls_after,
                "doubt_when_out_of_frontiers": args.doubt_when_out_of_frontiers == "on",
                "goal_through_doubtful_walls": args.goal_through_doubtful_walls == "on",
                "min_wall_incidence": args.min_wall_incidence, "far_wall_weight": args.far_wall_weight,
                "frontier_min_unknown_m2": args.frontier_min_unknown_m2,
                "replan_when_frontier_seen": args.replan_when_frontier_seen == "on",
                "arena_bound": args.arena_bound == "on"}
    row = run_episode(args.size, args.seed, "memory", adapter, Embedder(), steps=args.steps, observer=tracer,
                      settings=settings)
    row.pop("action_sequence")
    path = args.out / f"trace_{args.size}_{args.seed}.json"
    path.write_text(json.dumps({"command": sys.argv, "checkpoint": checkpoint.name, "episode": row,
                                "rows": tracer.rows, "pictures": [str(p) for p in tracer.pictures]},
                               indent=1, default=float))
    print(f"reward {row['total_reward']:.0f} at steps {row['reward_steps']}; wrote {path}"
          + "".join(f", {p}" for p in tracer.pictures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
