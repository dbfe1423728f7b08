"""The navigator: one (v, omega) per step from a map, a pose and an optional goal, on the parts in planner.py.

:class:`Navigator` ties planner.py's parts: goal if any, else frontier, else a random walk; it replans every
``replan_every`` steps or when the goal moves. A goal the map walls in is still driven to: walls within
``goal_clear_radius`` of it do not count, and when it is still unreachable the path leads to the nearest
reachable cell within ``goal_reach_radius`` and on to the goal (a target the robot saw is worth a try; exploring
elsewhere instead led robots away from targets they had in sight). When forward commands stop moving the robot (a teammate the map
does not show, usually) it backs off and plans around the spot for a while; when it makes no progress for
``stuck_steps`` it random-walks out and gives up that frontier. Asked to doubt walls (``doubt_walls``: a search
that has gone on long without a goal), it explores on a map whose doubtful walls next to the unknown read as
unknown (planner.open_doubtful_walls), so that a doorway its own map closed becomes a frontier again; such a
frontier costs ``doubtful_frontier_cost`` more than the map's own, which come first unless they are far. With
``doubt_when_out_of_frontiers`` it does the same, unasked, when its map has no frontier left, before falling back
on the random walk (a map with every doorway it knows explored but the target not found has, most often, closed a
doorway, and the random walk finds it only by chance: 300 steps of it in 13x13 seed 3,000,007 with the fine-tuned
BEV candidate). Off by default: on the two episodes measured (session 25, README) it scored lower. With
``goal_through_doubtful_walls`` a goal's path may cross doubtful walls at ``doubtful_wall_cost`` per metre (the
map's closed doorways also lengthen the trips between known targets: 13x13 seed 3,000,012 drove 82 steps per target
where the same driver on the true map needs 53); a real wall seen up close on the way turns firm and the next plan
goes round it. Off by default: over 40 paired episodes (session 26, README) it was level, -0.7% of the oracle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spatial_memory_ros.behaviour.planner import (Partner, PathFollower, PlannerConfig, WallCells, cell_of,
                                                  cells_around, choose_frontier, clear_around, cost_grid,
                                                  frontier_mask, open_doubtful_walls, shortest_paths)
from spatial_memory_ros.behaviour.walker import ExplorerConfig, RandomWalker
from spatial_memory_ros.types import BevGrid, GridGeometry, Pose2D


@dataclass
class NavigationStatus:
    """What the navigator is doing: mode ('goal', 'frontier', 'wander', 'escape', 'arrived'), its target, path."""

    mode: str
    target: tuple[float, float] | None
    path: np.ndarray | None
    walls: WallCells | None = None
    doubting: bool = False  # the frontier lies behind a doubtful wall (doubt_walls or doubt_when_out_of_frontiers)


class Navigator:
    """Goal if given, else the best frontier of the (team) map, else a random walk; seeded."""

    def __init__(self, geometry: GridGeometry, config: PlannerConfig | None = None, seed: int = 0) -> None:
        self.geometry = geometry
        self.config = config or PlannerConfig()
        explorer = ExplorerConfig(max_linear_speed=self.config.max_linear_speed,
                                  max_angular_speed=self.config.max_angular_speed,
                                  robot_radius=self.config.robot_radius, safety_margin=self.config.safety_margin,
                                  dt=self.config.dt)
        self.walker = RandomWalker(seed=seed, config=explorer)
        self.follower = PathFollower(self.config, self.walker)
        self.status = NavigationStatus("wander", None, None)
        self._since_plan = self.config.replan_every
        self._goal: tuple[float, float] | None = None
        self._doubt = False
        self._reached_frontiers: list[tuple[float, float]] = []
        self._track: list[tuple[float, float]] = []
        self._escape_left = 0
        self._blocked = 0
        self._reverse_left = 0
        self._last_command = (0.0, 0.0)
        self._steps = 0
        self._bumps: list[tuple[float, float, int]] = []  # (x, y, step it is forgotten)

    def step(self, bev: BevGrid | None, pose: Pose2D, occupancy: np.ndarray,
             goal: tuple[float, float] | None = None, partners: tuple[Partner, ...] = (),
             twist: tuple[float, float] | None = None, doubt_walls: bool = False) -> tuple[float, float]:
        """The next (v m/s, omega rad/s). ``occupancy`` is the map to plan on (int8 on ``geometry``), ``goal`` a
        map point to reach (None: explore), ``partners`` teammates' believed positions, ``twist`` the measured
        motion of the last step (for the random walk's wall memory), ``doubt_walls`` whether exploring may look
        behind doubtful walls. Call once per ``config.dt``."""
        self._steps += 1
        if doubt_walls != self._doubt:
            self._doubt = doubt_walls
            self._since_plan = self.config.replan_every
        command = self._next_command(bev, pose, occupancy, goal, partners, twist)
        self._last_command = command
        return command

    def _next_command(self, bev: BevGrid | None, pose: Pose2D, occupancy: np.ndarray,
                      goal: tuple[float, float] | None, partners: tuple[Partner, ...],
                      twist: tuple[float, float] | None) -> tuple[float, float]:
        if self._bumped(twist):
            self._remember_bump(pose)
            self._reverse_left = self.config.reverse_steps
        if self._reverse_left > 0:  # drove into something: back off the way we came, then plan around it
            self._reverse_left -= 1
            self._since_plan = self.config.replan_every
            return -self.config.reverse_speed, 0.0
        if self._escape_left > 0:
            self._escape_left -= 1
            if self._escape_left == 0:
                self._since_plan = self.config.replan_every
            return self.walker.command(bev, twist) if bev is not None else (0.0, self.config.max_angular_speed)
        if self._stuck(pose):
            return self._start_escape(bev, twist)
        if self._needs_plan(goal, occupancy):
            self._plan(pose, occupancy, goal, partners)
        self._since_plan += 1
        return self._drive(bev, pose, twist)

    def _bumped(self, twist: tuple[float, float] | None) -> bool:
        """Whether forward commands have not moved the robot for ``bump_steps`` steps."""
        if twist is None or not all(math.isfinite(v) for v in twist):
            return False
        pushing = self._last_command[0] > 0.05 and abs(twist[0]) < 0.2 * self._last_command[0]
        self._blocked = self._blocked + 1 if pushing else 0
        if self._blocked >= self.config.bump_steps:
            self._blocked = 0
            return True
        return False

    def _remember_bump(self, pose: Pose2D) -> None:
        """Something the map does not show (a teammate, most likely) stopped us just ahead: avoid it a while."""
        reach = self.config.robot_radius + 0.25
        self._bumps.append((pose.x + reach * math.cos(pose.theta), pose.y + reach * math.sin(pose.theta),
                            self._steps + self.config.bump_memory_steps))

    def _obstacles(self, partners: tuple[Partner, ...]) -> tuple[Partner, ...]:
        self._bumps = [bump for bump in self._bumps if bump[2] > self._steps]
        return tuple(partners) + tuple(Partner(x, y, 0.1) for x, y, _ in self._bumps)

    def _needs_plan(self, goal: tuple[float, float] | None, occupancy: np.ndarray) -> bool:
        moved = (goal is None) != (self._goal is None) or (
            goal is not None and math.hypot(goal[0] - self._goal[0], goal[1] - self._goal[1]) > 0.3)
        seen = goal is None and self.config.replan_when_frontier_seen and self._frontier_seen(occupancy)
        return moved or seen or self._since_plan >= self.config.replan_every

    def _frontier_seen(self, occupancy: np.ndarray) -> bool:
        """Whether the frontier being driven to no longer borders the unknown (the map has filled it in since the
        plan); a frontier behind doubtful walls borders only the opened map's unknown, so it is not judged here."""
        status = self.status
        if status.mode != "frontier" or status.target is None or status.doubting:
            return False
        around = cells_around(occupancy, self.geometry, status.target)
        return around is not None and not (around == -1).any()

    def _plan(self, pose: Pose2D, occupancy: np.ndarray, goal: tuple[float, float] | None,
              partners: tuple[Partner, ...]) -> None:
        self._goal, self._since_plan = goal, 0
        self.follower.reset()
        ordinary = None
        if goal is not None:
            occupancy = clear_around(occupancy, self.geometry, goal, self.config.goal_clear_radius)
        elif self._doubt:
            ordinary = frontier_mask(occupancy)
            occupancy = open_doubtful_walls(occupancy, self.config.doubtful_wall_below)
        through_doubt = goal is not None and self.config.goal_through_doubtful_walls
        field = self._field(pose, occupancy, partners, through_doubt)
        if field is None:
            self.status = NavigationStatus("wander", None, None)
            return
        if goal is not None:
            path = self._path_to_goal(field, goal)
            if path is not None:
                self.status = NavigationStatus("goal", goal, path, WallCells(occupancy, self.geometry))
                return
            if through_doubt:  # the rest (frontiers) plans on the map's own walls
                field = self._field(pose, occupancy, partners)
                if field is None:
                    self.status = NavigationStatus("wander", None, None)
                    return
        keep = self.status.target if self.status.mode == "frontier" else None
        frontier = choose_frontier(occupancy, field, self.config, partners, tuple(self._reached_frontiers), keep,
                                   ordinary)
        doubting = self._doubt
        if frontier is None and not self._doubt and self.config.doubt_when_out_of_frontiers:
            occupancy, field, frontier = self._frontier_behind_doubtful_walls(pose, occupancy, partners, keep)
            doubting = frontier is not None
        if frontier is None:
            self.status = NavigationStatus("wander", None, None)
            return
        self.status = NavigationStatus("frontier", (frontier.x, frontier.y), field.path_to(frontier.cell),
                                       WallCells(occupancy, self.geometry), doubting)

    def _frontier_behind_doubtful_walls(self, pose: Pose2D, occupancy: np.ndarray, partners: tuple[Partner, ...],
                                        keep: tuple[float, float] | None):
        """(map, path field, frontier) on ``occupancy`` with its doubtful walls opened; frontier None if that
        opens none (every wall is held firmly, or none touches the unknown)."""
        opened = open_doubtful_walls(occupancy, self.config.doubtful_wall_below)
        if opened is occupancy:
            return occupancy, None, None
        field = self._field(pose, opened, partners)
        if field is None:
            return occupancy, None, None
        frontier = choose_frontier(opened, field, self.config, partners, tuple(self._reached_frontiers), keep)
        return opened, field, frontier

    def _field(self, pose: Pose2D, occupancy: np.ndarray, partners: tuple[Partner, ...],
               doubtful_passable: bool = False):
        """Shortest paths from the robot over ``occupancy`` (planner.cost_grid), or None off the map."""
        costs = cost_grid(occupancy, self.geometry, self.config, self._obstacles(partners), doubtful_passable)
        return shortest_paths(costs, self.geometry, (pose.x, pose.y))

    def _path_to_goal(self, field, goal: tuple[float, float]) -> np.ndarray | None:
        """The path to ``goal`` ending exactly on it; via the nearest reachable cell when the goal is walled in."""
        cell = cell_of(self.geometry, goal)
        path = field.path_to(cell) if cell is not None else None
        if path is not None:
            return _with_end(path, goal)
        near = field.nearest_reachable(goal, self.config.goal_reach_radius) if cell is not None else None
        path = field.path_to(near) if near is not None else None
        return np.vstack([path, goal]) if path is not None else None

    def _drive(self, bev: BevGrid | None, pose: Pose2D, twist: tuple[float, float] | None) -> tuple[float, float]:
        status = self.status
        if status.path is None or status.target is None:
            return self.walker.command(bev, twist) if bev is not None else (0.0, self.config.max_angular_speed)
        if math.hypot(status.target[0] - pose.x, status.target[1] - pose.y) <= self.config.goal_tolerance:
            return self._arrive(status)
        return self.follower.command(pose, status.path, bev, status.walls)

    def _arrive(self, status: NavigationStatus) -> tuple[float, float]:
        if status.mode == "frontier":
            self._reached_frontiers.append(status.target)
            self._since_plan = self.config.replan_every
            return 0.0, self.config.max_angular_speed  # look around while the next plan is made
        self.status = NavigationStatus("arrived", status.target, status.path)
        return 0.0, 0.0

    def _stuck(self, pose: Pose2D) -> bool:
        """No progress over ``stuck_steps`` while following a path (a teammate or a map error in the way)."""
        self._track.append((pose.x, pose.y))
        if len(self._track) > self.config.stuck_steps:
            self._track.pop(0)
        if self.status.mode not in ("goal", "frontier") or len(self._track) < self.config.stuck_steps:
            return False
        (x0, y0), (x1, y1) = self._track[0], self._track[-1]
        return math.hypot(x1 - x0, y1 - y0) < self.config.stuck_distance

    def _start_escape(self, bev: BevGrid | None, twist: tuple[float, float] | None) -> tuple[float, float]:
        self._escape_left = self.config.escape_steps
        self._track.clear()
        if self.status.mode == "frontier" and self.status.target is not None:
            self._reached_frontiers.append(self.status.target)
        self.status = NavigationStatus("escape", None, None)
        return self.walker.command(bev, twist) if bev is not None else (0.0, self.config.max_angular_speed)


def _with_end(path: np.ndarray, goal: tuple[float, float]) -> np.ndarray:
    """The path with its last cell centre replaced by the exact goal point."""
    path = path.copy()
    path[-1] = goal
    return path
