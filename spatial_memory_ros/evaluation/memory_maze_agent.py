"""The shipped robot on published Memory-Maze episodes, and what each episode measured (no ROS).

:class:`MemoryMazeAgent` is one robot's whole stack in process, as the nodes wire it: the BEV predictor through
the camera adapter (perception/camera_adapter.py, Memory-Maze's 80 deg camera 0.9 m up, pitched 5.71 deg down),
the TEM localizer (odometry each step, then the BEV matched against the memory's map of ``map_lag`` seconds
earlier, with the localizer node's settings), the robot's memory (RobotMemory: BEVs into the map and entries)
and THE robot loop (behaviour/robot.py ``Robot``) asked for the text goal "the <colour> target" of the colour it is
shown. Its (v, omega) command becomes the nearest of the 6 discrete actions. It sees :class:`RobotInput` only.

The robot knows neither where it starts nor the maze: it starts at (0, 0) heading 0 of its own map frame, on a
map that covers the maze from any start (twice the maze's outer size), and knows only the maze's size. When the
colour it is shown changes (the task moved the goal after a reward), it starts a fresh ``Robot`` with the new
query; its memory, map and pose stay. If the robot believes it has arrived but no new colour came (its goal or
pose is off: a "false arrival"), the Robot is told the target is not there (``Robot.not_found_here``): it keeps
that place as empty for the colour (Memory-Maze's targets do not move) and asks again, leaving out the memory's
samples near it (wider round a place found empty twice: goals.found_empty); with nothing else in memory it
explores. When the colour's target is reached, its places found empty beside where it was reached are forgotten
(goals.still_empty): the target was there after all, and the next false arrival there must not rule it out.

``memory=False`` is the baseline: the same robot with its memory switched off: every step starts from an empty
memory, so the map, the plan and any goal come from the current view alone (a goal is kept only until the next
query, ``ask_every`` steps), and the localizer has no map (odometry only).
"""
from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from spatial_memory_ros.behaviour.goals import WRONG_OBJECT_RADIUS, EmptyPlace, ask_memory, still_empty
from spatial_memory_ros.behaviour.planner import PlannerConfig
from spatial_memory_ros.behaviour.robot import Robot, RobotConfig, Senses
from spatial_memory_ros.evaluation.memory_maze_env import (ACTION_TWISTS, CONTROL_DT, MemoryMazeEpisode,
                                                           RobotInput, Truth, colour_name, nearest_action)
from spatial_memory_ros.localization.map_likelihood import OccupancyMap
from spatial_memory_ros.localization.tem import TemLocalizer
from spatial_memory_ros.localization.tem_config import TemConfig
from spatial_memory_ros.memory.mapping import FAR_WALL_WEIGHT
from spatial_memory_ros.memory.robot_memory import RobotMemory
from spatial_memory_ros.perception.wall_incidence import MIN_WALL_INCIDENCE, without_grazing_walls
from spatial_memory_ros.sim.memory_maze import CELL_SIZE, CLASS_NAMES, TARGET_RADIUS, default_config, layout_maze
from spatial_memory_ros.types import BevGrid, GridGeometry, Pose2D

VARIANTS = ("memory", "no_memory")


@dataclass(frozen=True)
class AgentConfig:
    """The stack's settings: the localizer node's defaults (observation weight 0.05 and 80% of a view mapped for a
    self-built map; map of 2 s before the BEV, published every 1 s), the team task's map resolution and query
    rate, and the planner driven at Memory-Maze's speeds and 4 Hz."""

    memory: bool = True
    map_resolution: float = 0.25
    map_period: float = 1.0
    map_lag: float = 2.0
    ask_every: int = 4
    observation_weight: float = 0.05
    min_known_fraction: float = 0.8
    lookahead: float = 1.0
    goal_tolerance: float = 0.4  # a 4 Hz step moves 0.44 m: 0.2 m is hit only by chance (the dome's radius: 0.6 m)
    rectilinear_walls: bool = True  # Memory-Maze's walls meet at right angles: the localizer's rectilinear_walls
    look_alike_after: int = 0  # RobotConfig.look_alike_after: off; at 600 it cost 3.4 points per episode where it
    # fired (session 19, README; benchmarks/memory_maze_score.py --look-alike-after to measure another version)
    doubt_walls_after: int = RobotConfig.doubt_walls_after  # the shipped robot's: off (session 20 measured it at
    # 300 on three 15x15 seeds and the team task, README; benchmarks/memory_maze_score.py --doubt-walls-after)
    turn_in_place_deg: float = PlannerConfig.turn_in_place_deg  # the planner's: 50 deg (session 24 measured 70 on
    # 9x9 as a trial, README; benchmarks/memory_maze_score.py --turn-in-place-deg to measure another value)
    doubt_when_out_of_frontiers: bool = PlannerConfig.doubt_when_out_of_frontiers  # the planner's (session 25
    # measured it, README; benchmarks/memory_maze_score.py --doubt-when-out-of-frontiers)
    goal_through_doubtful_walls: bool = PlannerConfig.goal_through_doubtful_walls  # the planner's (session 26's
    # trial, README; benchmarks/memory_maze_score.py --goal-through-doubtful-walls)
    min_wall_incidence: float = MIN_WALL_INCIDENCE  # predicted walls seen more edge-on are dropped from the BEV
    # before the localizer and the memory (session 27's trial of 0.2, README; memory_maze_score.py --min-wall-incidence)
    far_wall_weight: float = FAR_WALL_WEIGHT  # the memory map's weight of a wall seen 7 m off or more against one
    # within 3 m (mapping.LogOddsMap; memory_maze_score.py --far-wall-weight)
    frontier_min_unknown_m2: float = PlannerConfig.frontier_min_unknown_m2  # the planner's: off (frontiers with
    # less unknown behind them are holes; memory_maze_score.py --frontier-min-unknown-m2)
    replan_when_frontier_seen: bool = PlannerConfig.replan_when_frontier_seen  # the planner's: off (replan at once
    # when the frontier driven to has been seen; memory_maze_score.py --replan-when-frontier-seen)
    arena_bound: bool = False  # frontiers that cannot lie in the maze (its size is known: size x 2 m a side) are
    # skipped (PlannerConfig.arena_size_m; off: session 29's candidate; memory_maze_score.py --arena-bound)
    seed: int = 0


RECORDED_SETTINGS = ("look_alike_after", "doubt_walls_after", "turn_in_place_deg", "doubt_when_out_of_frontiers",
                     "goal_through_doubtful_walls", "min_wall_incidence", "far_wall_weight",
                     "frontier_min_unknown_m2", "replan_when_frontier_seen", "arena_bound")
"""The AgentConfig fields a trial may change; every score row records them, so rows of other settings stay apart."""
UNRECORDED_SETTINGS = {"min_wall_incidence": 0.0, "far_wall_weight": 1.0, "frontier_min_unknown_m2": 0.0,
                       "replan_when_frontier_seen": False, "arena_bound": False}
"""What a score row that predates a setting was run with (the robot before the setting existed), so that rows stay
correctly read when a shipped default changes; a setting not named here reads as the shipped value."""


def recorded_settings(config: AgentConfig) -> dict[str, object]:
    """``config``'s RECORDED_SETTINGS by name, as a score row records them."""
    return {name: getattr(config, name) for name in RECORDED_SETTINGS}


def planner_config(config: AgentConfig, size: int | None = None) -> PlannerConfig:
    """The planner as the score robot drives it in a ``size`` maze: Memory-Maze's action speeds at 4 Hz,
    ``config``'s lookahead and goal tolerance, walls within a target's radius of a goal not counted, and with
    ``config.arena_bound`` the maze's inner side (``size`` cells of CELL_SIZE) as the arena's size."""
    arena = size * CELL_SIZE if config.arena_bound and size is not None else 0.0
    return PlannerConfig(arena_size_m=arena, dt=CONTROL_DT, max_linear_speed=float(ACTION_TWISTS[1, 0]),
                         max_angular_speed=float(ACTION_TWISTS[2, 1]), lookahead=config.lookahead,
                         goal_tolerance=config.goal_tolerance, goal_clear_radius=TARGET_RADIUS,
                         turn_in_place_deg=config.turn_in_place_deg,
                         doubt_when_out_of_frontiers=config.doubt_when_out_of_frontiers,
                         goal_through_doubtful_walls=config.goal_through_doubtful_walls,
                         frontier_min_unknown_m2=config.frontier_min_unknown_m2,
                         replan_when_frontier_seen=config.replan_when_frontier_seen)


class MemoryMazeAgent:
    """One robot: predicted BEV -> localizer -> memory -> Robot -> discrete action, from RobotInput alone."""

    def __init__(self, size: int, adapter, embedder, config: AgentConfig | None = None) -> None:
        self.config = config or AgentConfig()
        self.adapter = adapter
        self.embedder = embedder
        reach = (size + 2) * CELL_SIZE  # the maze's outer size: it lies within this of the start in every direction
        cells = int(round(2 * reach / self.config.map_resolution))
        self.geometry = GridGeometry(self.config.map_resolution, cells, cells, -reach, -reach)
        self.planner = planner_config(self.config, size)
        self.localizer = TemLocalizer(TemConfig(observation_weight=self.config.observation_weight,
                                                min_known_fraction=self.config.min_known_fraction,
                                                landmarks=self.config.memory,
                                                rectilinear_walls=self.config.rectilinear_walls),
                                      initial_pose=(0.0, 0.0, 0.0), initial_sigma=0.05,
                                      extent=(-reach, -reach, reach, reach))
        self.memory = self._new_memory()
        self._maps: deque[tuple[float, OccupancyMap]] = deque()
        self._map_in_use: OccupancyMap | None = None
        self._next_map_stamp = 0.0
        self.colour: str | None = None
        self.robot: Robot | None = None
        self.robots_started = 0
        self.false_arrivals = 0
        self.empty_places_cleared = 0  # places found empty, forgotten when their colour's target was reached by them
        self.look_alike_steps = 0  # steps spent trying look-alikes (RobotConfig.look_alike_after)
        self.doubt_steps = 0  # steps spent exploring behind doubtful walls (RobotConfig.doubt_walls_after)
        self.out_of_frontier_steps = 0  # steps searching with no frontier left on the map (random walk or doubt)
        self.last_resort_doubt_steps = 0  # of those, steps driving to a frontier behind a doubtful wall
        self._not_here: dict[str, list[EmptyPlace]] = {}  # colour -> places found without its target
        self._reached_at: dict[str, tuple[float, float]] = {}  # colour -> where the robot was when it was reached
        self.pose = Pose2D(0.0, 0.0, 0.0)
        self.bev: BevGrid | None = None
        self.status = "waiting"
        self.seconds: dict[str, float] = {"bev": 0.0, "localize": 0.0, "memory": 0.0, "decide": 0.0}

    def _new_memory(self) -> RobotMemory:
        # without memory every step starts afresh: one view is all there is, so its objects count at once
        single_view = {} if self.config.memory else {"min_object_views": 1, "min_object_share": 0.0}
        return RobotMemory(self.geometry, self.embedder, "robot1", class_names=CLASS_NAMES,
                           far_wall_weight=self.config.far_wall_weight, **single_view)

    @property
    def query(self) -> str:
        """The text goal now ('the red target'), or '' before the first input."""
        return f"the {self.colour} target" if self.colour else ""

    def act(self, inp: RobotInput) -> int:
        """The discrete action for this step, from the robot's input alone."""
        if not isinstance(inp, RobotInput):
            raise TypeError(f"the robot decides from a RobotInput only, got {type(inp).__name__}")
        clock = time.perf_counter()
        self.bev = without_grazing_walls(self.adapter.predict(inp.image)[0], self.config.min_wall_incidence)
        clock = self._lap("bev", clock)
        self._localize(inp)
        clock = self._lap("localize", clock)
        estimate = self.localizer.estimate()
        self.pose = Pose2D(estimate.x, estimate.y, estimate.theta)
        sd = math.sqrt(max(0.5 * (estimate.covariance[0, 0] + estimate.covariance[1, 1]), 0.0))
        if not self.config.memory:
            self.memory = self._new_memory()
        entries = self.memory.observe(self.bev, self.pose, sd, inp.stamp)
        plan_map = self.memory.occupancy()
        self._keep_map(inp.stamp, plan_map)
        clock = self._lap("memory", clock)
        robot = self._robot_for(colour_name(inp.target_color))
        robot.notice(entries.labels)
        if robot.should_ask():
            answer = ask_memory(self.memory, robot.ask_text, seed=self.config.seed * 7919 + robot.steps)
            robot.asked()
            robot.take_answer(*answer)
        v, omega = robot.step(Senses(self.bev, self.pose, plan_map, (), inp.odometry))
        self.status = robot.status
        self.look_alike_steps += robot.trying_look_alikes
        self.doubt_steps += robot.doubting_walls and robot.current_goal is None
        self._count_out_of_frontiers(robot)
        self._lap("decide", clock)
        return nearest_action(v, omega)

    def _count_out_of_frontiers(self, robot: Robot) -> None:
        """Count a searching step the map left without a frontier of its own (PlannerConfig
        doubt_when_out_of_frontiers says what the navigator does then)."""
        status = robot.navigator.status if robot.navigator is not None else None
        if status is None or robot.status != "exploring" or robot.doubting_walls:
            return
        last_resort = status.mode == "frontier" and status.doubting
        self.last_resort_doubt_steps += last_resort
        self.out_of_frontier_steps += last_resort or status.mode == "wander"

    def _lap(self, part: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[part] += now - since
        return now

    def _robot_for(self, colour: str) -> Robot:
        """The Robot for ``colour``'s goal: a fresh one when the colour changed (with the places already found
        without that colour's target); after a false arrival the same one, told the target is not there."""
        if self.robot is not None and colour == self.colour:
            if self.robot.unconfirmed_arrival():  # arrived, yet the colour did not change: no reward came
                self.false_arrivals += 1
                self._not_here[colour] = list(self.robot.not_here)
            return self.robot
        if self.colour is not None:  # a new colour: the reward for the last one came at this pose
            here = (self.pose.x, self.pose.y)
            self._reached_at[self.colour] = here
            empty = self._not_here.get(self.colour, [])
            # WRONG_OBJECT_RADIUS as for other colours' targets below: touched from up to 0.8 m, pose error on top
            self._not_here[self.colour] = still_empty(empty, here, WRONG_OBJECT_RADIUS)
            self.empty_places_cleared += len(empty) - len(self._not_here[self.colour])
        self.colour = colour
        self.robots_started += 1
        # targets of other colours are known objects, not look-alikes (WRONG_OBJECT_RADIUS: the robot touched it
        # from up to 0.8 m away, with its pose error on top)
        others = [(x, y, WRONG_OBJECT_RADIUS) for other, (x, y) in self._reached_at.items() if other != colour]
        config = RobotConfig(self.planner, ask_every=self.config.ask_every, park=False,
                             look_alike_after=self.config.look_alike_after,
                             doubt_walls_after=self.config.doubt_walls_after,
                             seed=self.config.seed * 131 + self.robots_started)
        self.robot = Robot(f"the {colour} target", config, self.geometry, not_here=self._not_here.get(colour, ()),
                           other_objects=others)
        return self.robot

    def _localize(self, inp: RobotInput) -> None:
        """Odometry of the last step, then this step's BEV against the map of ``map_lag`` seconds ago (if any)."""
        v, omega = inp.odometry
        if inp.stamp > 0:
            self.localizer.predict(v, omega, CONTROL_DT)
        wanted = inp.stamp - self.config.map_lag
        while len(self._maps) > 1 and self._maps[1][0] <= wanted:
            self._maps.popleft()
        if not self._maps or self._maps[0][0] > wanted:
            return
        occupancy = self._maps[0][1]
        if occupancy is not self._map_in_use:
            self.localizer.set_map(occupancy)
            self._map_in_use = occupancy
        self.localizer.correct(self.bev)

    def _keep_map(self, stamp: float, plan_map: np.ndarray) -> None:
        """The memory's map, kept once per ``map_period`` (as the memory node publishes it) for the localizer."""
        if not self.config.memory or stamp + 1e-9 < self._next_map_stamp:
            return
        self._next_map_stamp = (math.floor(stamp / self.config.map_period + 1e-9) + 1) * self.config.map_period
        geometry = self.geometry
        self._maps.append((stamp, OccupancyMap(plan_map.copy(), geometry.resolution, geometry.origin_x,
                                               geometry.origin_y)))


@dataclass
class Diagnostics:
    """What the report says about an episode beside its score (read from Truth, never given to the robot)."""

    every: int = 10
    position_errors: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    _start: Pose2D | None = None
    _oracle: object = None
    _caster: object = None
    _metrics: object = None

    def first(self, truth: Truth | None, size: int, seed: int, class_names: tuple[str, ...]) -> None:
        """Set up from the first truth (None: no diagnostics)."""
        if truth is None:
            return
        from spatial_memory_ros.perception.metrics import BevMetrics
        from spatial_memory_ros.sim.camera import RayCaster
        from spatial_memory_ros.sim.oracle import BevOracle

        self._start = truth.pose
        maze = layout_maze(truth.maze_layout, truth.targets_pos, seed)
        self._maze = maze
        self._oracle = BevOracle(maze, default_config(), CLASS_NAMES, TARGET_RADIUS)
        self._caster = RayCaster(maze)
        self._metrics = BevMetrics(class_names)

    def record(self, step: int, agent: MemoryMazeAgent, truth: Truth | None) -> None:
        """Count the robot's status; every ``every`` steps its position error and its BEV against the oracle."""
        self.statuses[agent.status] = self.statuses.get(agent.status, 0) + 1
        if truth is None or self._start is None or step % self.every:
            return
        start, pose = self._start, agent.pose  # the robot's frame: the start at (0, 0) heading 0
        cos_s, sin_s = math.cos(start.theta), math.sin(start.theta)
        x = start.x + cos_s * pose.x - sin_s * pose.y
        y = start.y + sin_s * pose.x + cos_s * pose.y
        self.position_errors.append(math.hypot(x - truth.pose.x, y - truth.pose.y))
        if agent.bev is not None:
            hits = self._caster.cast(truth.pose.x, truth.pose.y, truth.pose.theta + self._oracle.ray_angles)
            oracle = self._oracle.compute(truth.pose, hits.distance, self._maze.targets)
            self._metrics.update(agent.bev.occupancy, agent.bev.object_class, oracle.occupancy, oracle.object_class)

    def summary(self) -> dict:
        """Localization error (mean, per quarter of the episode, final), BEV scores and the share of steps in each
        robot status. The quarters tell drift that grows from an error made once and kept."""
        total = max(sum(self.statuses.values()), 1)
        out: dict = {"status_share": {k: v / total for k, v in sorted(self.statuses.items())}}
        if self.position_errors:
            out["position_error_mean_m"] = float(np.mean(self.position_errors))
            out["position_error_final_m"] = float(self.position_errors[-1])
            if len(self.position_errors) >= 4:
                out["position_error_by_quarter_m"] = [
                    float(np.mean(part)) for part in np.array_split(np.asarray(self.position_errors), 4)]
        if self._metrics is not None and self._metrics.frames:
            scores = self._metrics.summary()
            out["bev"] = {k: scores[k] for k in ("free_iou", "wall_iou", "object_precision", "object_recall",
                                                 "object_f1", "frames")}
        return out


def run_episode(size: int, seed: int, variant: str, adapter, embedder, steps: int | None = None,
                diagnostics: bool = True, progress=None, observer=None,
                settings: Mapping[str, object] | None = None) -> dict:
    """One episode of the agent (``variant`` 'memory' or 'no_memory'); its score, actions and diagnostics.

    ``progress`` (optional) is called with the number of steps done after each step; ``settings`` (optional)
    overrides AgentConfig's RECORDED_SETTINGS by name (a trial: the score script's --turn-in-place-deg and the
    like); ``observer`` (optional, for traces) is called after each decision with (step, agent, truth), truth None
    without diagnostics.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    unknown = set(settings or {}) - set(RECORDED_SETTINGS)
    if unknown:
        raise ValueError(f"settings may only hold {RECORDED_SETTINGS}, got {sorted(unknown)}")
    start = time.perf_counter()
    episode = MemoryMazeEpisode(size, seed, diagnostics=diagnostics, steps=steps)
    config = replace(AgentConfig(memory=variant == "memory", seed=seed), **(settings or {}))
    agent = MemoryMazeAgent(size, adapter, embedder, config)
    notes = Diagnostics()
    actions: list[int] = []
    try:
        inp, truth = episode.reset()
        notes.first(truth, size, seed, adapter.class_names)
        sim_seconds = 0.0
        while not episode.done:
            action = agent.act(inp)
            notes.record(episode.step_count, agent, truth)
            if observer is not None:
                observer(episode.step_count, agent, truth)
            actions.append(action)
            clock = time.perf_counter()
            inp, truth, _ = episode.step(action)
            sim_seconds += time.perf_counter() - clock
            if progress is not None:
                progress(episode.step_count)
    finally:
        episode.close()
    wall = time.perf_counter() - start
    return {"size": size, "seed": seed, "variant": variant, "steps": episode.step_count,
            "total_reward": episode.total_reward, "reward_steps": episode.reward_steps,
            "distance_m": episode.distance, "false_arrivals": agent.false_arrivals,
            "empty_places_cleared": agent.empty_places_cleared,
            "goals_started": agent.robots_started, "look_alike_steps": agent.look_alike_steps,
            "doubt_steps": agent.doubt_steps, "out_of_frontier_steps": agent.out_of_frontier_steps,
            "last_resort_doubt_steps": agent.last_resort_doubt_steps,
            "actions": np.bincount(actions, minlength=6).tolist(),
            "wall_s": wall, "sim_s": sim_seconds, "robot_s": dict(agent.seconds), **notes.summary(),
            "action_sequence": actions}
