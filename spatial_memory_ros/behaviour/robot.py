"""The robot loop: everything one robot decides each control step, in one ROS-free class.

The explorer node and every benchmark (the in-process team task, the team benchmark through the nodes) run this
class, so a benchmark measures the robot that ships. Per step (:meth:`Robot.step`) the robot:

1. takes what it has (:class:`Senses`): its BEV, its pose estimate, the team map to plan on, its teammates'
   believed positions and its measured motion. Without a pose or a map yet it random-walks ("waiting").
2. drives with the :class:`~spatial_memory_ros.behaviour.planner.Navigator`: to the goal if it has one, else to
   the best frontier of the map ("exploring"), else a random walk. The goal is where its current view shows the
   query's object (``sight``: two BEVs in a row within ``sight_range``), else the memory's answer.
3. arrives when its own pose is within ``goal_tolerance`` of the goal, or when the world says it has reached the
   target (:meth:`Robot.reached`, as Memory-Maze's reward does); at the memory's goal it first turns once on the
   spot ("looking around"), and a sighting during the turn becomes the goal. Once arrived it parks in the most
   open place 2.5 to 8 m (path cost) from the goal, out of its teammates' way, and stops asking. If the caller
   learns that the target is not where the robot arrived (:meth:`Robot.not_found_here`: no reward came), the robot
   remembers the place as empty for this query, ignores the memory's samples and the view's sightings near it from
   then on (0.75 m; 1.5 m once a second place found empty lies within 1.5 m of an earlier one: an object that
   looks like the target but is not, :func:`goals.found_empty`), and looks again.
4. tries look-alikes when searching has gone on too long (``look_alike_after`` steps without a goal; off by
   default, for callers whose world says when the target is reached): it asks the memory for any object
   (:data:`LOOK_ALIKE_QUERY`) instead of the query's, and drives to the best one not yet found empty. A target
   the perception names wrongly (Memory-Maze's salmon seen as yellow or red) is otherwise searched for all
   episode, and each wrong object costs one visit.
5. doubts its map's walls when searching has gone on too long (``doubt_walls_after`` steps without a goal; off by
   default: measured without a gain in session 20): it explores on a map whose doubtful walls next to the unknown
   read as unknown (Navigator ``doubt_walls``), so a doorway the map closed with a wall seen only from afar becomes
   a frontier again.

Asking the memory for the text goal is the caller's to carry out (a service call in the node, a direct call in
process) because only the caller knows how; *when* to ask is decided here: :meth:`Robot.should_ask` holds every
``ask_every`` steps and at once when :meth:`Robot.notice` saw news that answers the query; the answer comes
back through :meth:`Robot.take_answer`. Which news answers the query is :func:`goals.label_matches`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from spatial_memory_ros.behaviour.goals import (EmptyPlace, empty_places, found_empty, goal_from_answer, label_matches,
                                                query_words, sighting_in_view)
from spatial_memory_ros.behaviour.planner import Partner, PlannerConfig, park_spot
from spatial_memory_ros.behaviour.navigator import Navigator
from spatial_memory_ros.behaviour.walker import ExplorerConfig, RandomWalker
from spatial_memory_ros.comm.partners import Sighting
from spatial_memory_ros.types import BevGrid, GridGeometry, Pose2D, is_target_label

MODES = ("walk", "navigate")
MAX_NOT_HERE = 16  # places found empty that a robot remembers per query (the oldest are forgotten)
LOOK_ALIKE_QUERY = "target"  # any object sighting's label ('red target', ...) answers it
STATUSES = ("walking", "waiting", "exploring", "going to goal", "looking around", "arrived")


@dataclass(frozen=True)
class RobotConfig:
    """How a robot behaves: ``mode`` 'navigate' (frontiers, then the text goal, on the map) or 'walk' (random walk
    only); ``ask_every`` control steps between memory queries until the goal is reached; ``park`` out of the way
    after arriving (else stay where it arrived); ``seed`` of everything random it does. ``sight_range``: when the
    current view shows the query's object within this many metres in ``sight_frames`` views in a row, the robot
    drives to where the view puts it instead of to the memory's goal (0: never). ``look_around``: on reaching the
    memory's goal with no word that the target is reached, turn once on the spot before counting itself arrived,
    so that a target beside or behind the goal comes into view (and into ``sight``) first. ``look_alike_after``:
    after this many steps with a query but no goal, take any object the memory holds as the goal, best first, and
    rule each out in turn (0: never; only for a caller that calls :meth:`Robot.unconfirmed_arrival`, since
    arriving at a look-alike is no arrival at the target). ``doubt_walls_after``: after this many steps with a
    query but no goal, explore behind doubtful walls too (0: never)."""

    planner: PlannerConfig = field(default_factory=PlannerConfig)
    mode: str = "navigate"
    ask_every: int = 10
    park: bool = True
    seed: int = 0
    sight_range: float = 3.0  # m: a choice, not tuned: far objects cover few cells of a 64x64 image and flicker
    sight_frames: int = 2
    look_around: bool = True
    look_alike_after: int = 0
    doubt_walls_after: int = 0  # off: at 300 it did not help on the seeds measured (session 20, README)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode '{self.mode}' is not one of {', '.join(MODES)}")
        if self.ask_every < 1:
            raise ValueError(f"ask_every must be at least 1 step, got {self.ask_every}")
        for name in ("look_alike_after", "doubt_walls_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 (never) or a number of steps, got {getattr(self, name)}")
        if not (self.sight_range >= 0 and math.isfinite(self.sight_range)) or self.sight_frames < 1:
            raise ValueError(f"sight_range must be a finite distance >= 0 and sight_frames at least 1, got "
                             f"{self.sight_range} and {self.sight_frames}")


@dataclass
class Senses:
    """What the robot has at one control step; any part may be missing (None)."""

    bev: BevGrid | None
    pose: Pose2D | None = None
    plan_map: np.ndarray | None = None          # occupancy (int8) on the robot's map geometry
    partners: tuple[Partner, ...] = ()
    twist: tuple[float, float] | None = None    # measured (v, omega) of the last step


def sightings_in(labels: Iterable[str], locations: Iterable) -> list[Sighting]:
    """The object sightings among memory entries (labels with map-frame (x, y)), which the robot offers its team;
    entries with a non-finite location are not sightings."""
    return [Sighting(label, float(x), float(y)) for label, (x, y) in zip(labels, locations)
            if is_target_label(label) and math.isfinite(x) and math.isfinite(y)]


class Robot:
    """One robot's decisions, step by step; seeded, so the same senses give the same commands."""

    def __init__(self, query: str = "", config: RobotConfig | None = None,
                 geometry: GridGeometry | None = None, not_here: Iterable[Sequence[float]] = (),
                 other_objects: Iterable[Sequence[float]] = ()) -> None:
        self.config = config or RobotConfig()
        planner = self.config.planner
        self.query = query.strip() if query_words(query) else ""
        self.walker = RandomWalker(seed=self.config.seed, config=ExplorerConfig(
            max_linear_speed=planner.max_linear_speed, max_angular_speed=planner.max_angular_speed, dt=planner.dt))
        self.navigator: Navigator | None = None
        self.geometry: GridGeometry | None = None
        if geometry is not None:
            self.use_geometry(geometry)
        self.goal: tuple[float, float] | None = None
        self.sight: tuple[float, float] | None = None  # where the view showed the query's object lately
        self._sightings_in_a_row = 0
        self._looking_left = 0
        self.not_here: list[EmptyPlace] = empty_places(not_here)  # places found without the target of the query
        # where objects known to be something else stand (other targets already reached): no look-alike there
        self.other_objects: list[EmptyPlace] = empty_places(other_objects)
        self.park: tuple[float, float] | None = None
        self.arrived = False
        self.confirmed = False  # the world said the target is reached (reached()), not just the pose
        self.steps = 0
        self.steps_without_goal = 0
        self.status = "walking" if self.config.mode == "walk" else "waiting"
        self._ask_now = True

    @property
    def asks(self) -> bool:
        """Whether this robot has a text goal to ask its memory for."""
        return bool(self.query) and self.config.mode == "navigate"

    @property
    def trying_look_alikes(self) -> bool:
        """Whether the search has gone on ``look_alike_after`` steps without a goal: any object is worth a visit."""
        return self._searched_without_goal(self.config.look_alike_after)

    @property
    def doubting_walls(self) -> bool:
        """Whether the search has gone on ``doubt_walls_after`` steps without a goal: walls seen only from afar may
        hide the target, so exploring looks behind them too."""
        return self._searched_without_goal(self.config.doubt_walls_after)

    def _searched_without_goal(self, steps: int) -> bool:
        """Whether a query has gone ``steps`` steps without a goal (never for ``steps`` 0: the rule is off)."""
        return steps > 0 and bool(self.asks) and self.steps_without_goal >= steps

    @property
    def ask_text(self) -> str:
        """What to ask the memory: the query, or any object (:data:`LOOK_ALIKE_QUERY`) once trying look-alikes."""
        return LOOK_ALIKE_QUERY if self.trying_look_alikes else self.query

    def use_geometry(self, geometry: GridGeometry) -> bool:
        """Plan on maps of ``geometry`` from now on; a changed geometry starts planning afresh. True if changed."""
        if geometry == self.geometry:
            return False
        self.geometry = geometry
        self.navigator = Navigator(geometry, self.config.planner, seed=self.config.seed)
        return True

    # -- the memory ----------------------------------------------------------------------------------------------

    def notice(self, labels: Iterable[str]) -> None:
        """News reached the memory (own sightings or teammates'): ask again at once if any label answers the query."""
        if self.asks and not self.arrived and any(label_matches(label, self.query) for label in labels):
            self._ask_now = True

    def should_ask(self) -> bool:
        """Whether to ask the memory for the goal before this step's command (call once per step, before step())."""
        if not self.asks or self.arrived:
            return False
        return self._ask_now or self.steps % self.config.ask_every == 0

    def asked(self) -> None:
        """The caller sent the query it was told to send."""
        self._ask_now = False

    def take_answer(self, locations: np.ndarray, labels: list[str]) -> None:
        """The memory's samples for the query (best first): the goal is their densest matching cluster away from
        places found empty (:func:`goals.goal_from_answer`), or none. A look-alike is also kept away from
        ``other_objects``."""
        if not self.arrived:
            excluded = self.not_here + self.other_objects if self.trying_look_alikes else self.not_here
            self.goal = goal_from_answer(locations, labels, self.ask_text, excluded) if len(labels) else None

    def reached(self) -> None:
        """The world says this robot has reached the target (a reward signal): it has arrived."""
        self.arrived = self.confirmed = True

    def unconfirmed_arrival(self) -> bool:
        """For a caller whose world says when the target is reached (Memory-Maze's reward, a touch): call it before
        each step. True when the robot counted itself arrived by its pose, yet no word of reaching came in the
        step since: the target is not here, and :meth:`not_found_here` has been applied (the robot looks again)."""
        if not self.arrived or self.confirmed:
            return False
        self.not_found_here()
        return True

    def not_found_here(self) -> None:
        """The robot arrived but the target is not here (no reward came): remember the goal as an empty place,
        drop the goal and go on looking (the next answer leaves the samples near it out)."""
        # Once, only the place itself (goals.NOT_HERE_RADIUS), even after a full turn there: a false arrival is as
        # often the robot's pose being off as the memory's goal (a 9x9 trace: 3.5 m of pose error at a goal the
        # memory had right), and ruling out 1.5 m around it then threw away a true target. Twice near one place:
        # an object that looks like the target (goals.found_empty).
        place = self.current_goal
        if place is not None:
            self.not_here.append(found_empty(place, self.not_here))
            del self.not_here[:-MAX_NOT_HERE]
        self.goal, self.sight, self.arrived, self.park = None, None, False, None
        self._sightings_in_a_row = self._looking_left = 0
        self._ask_now = True

    # -- the step ------------------------------------------------------------------------------------------------

    def step(self, senses: Senses) -> tuple[float, float]:
        """The (v m/s, omega rad/s) command for this step."""
        self.steps += 1
        if self.config.mode == "walk":
            return self._walk(senses)
        pose, plan_map = senses.pose, senses.plan_map
        if pose is None or plan_map is None or self.navigator is None:
            self.status = "waiting"
            return self._walk(senses)
        if self.arrived and self.park is None:
            self.park = self._park_spot(plan_map, pose)
        if not self.arrived:
            self._look(senses.bev, pose)
        if self._looking_left > 0:
            return self._look_around_step()
        target = self.park if self.arrived else self.current_goal
        command = self.navigator.step(senses.bev, pose, plan_map, target, senses.partners, senses.twist,
                                      doubt_walls=self.doubting_walls)
        if not self.arrived and target is not None and self.navigator.status.mode == "arrived":
            if self.sight is None and self.config.look_around and self.asks:
                self._looking_left = self.look_around_steps
                return self._look_around_step()
            self.arrived = True
        if self.arrived:
            self.status = "arrived"
        else:
            self.status = "going to goal" if self.navigator.status.mode == "goal" else "exploring"
        # searched-for steps: those without a goal, and those spent on look-alikes (which keeps them being tried)
        if self.current_goal is None or self.trying_look_alikes:
            self.steps_without_goal += 1
        return command

    def _look(self, bev: BevGrid | None, pose: Pose2D) -> None:
        """Take the view's sighting of the query's object as the goal once it held ``sight_frames`` views in a row
        (one frame's flicker is not a target); it then stays the goal, following newer sightings, until arrival."""
        if not self.asks or self.config.sight_range <= 0 or bev is None:
            return
        seen = sighting_in_view(bev, pose, self.query, self.config.sight_range, not_here=self.not_here)
        self._sightings_in_a_row = self._sightings_in_a_row + 1 if seen is not None else 0
        if seen is not None and self._sightings_in_a_row >= self.config.sight_frames:
            self.sight = seen

    @property
    def look_around_steps(self) -> int:
        """Control steps of the full turn on the spot at a goal (at the planner's top yaw rate)."""
        planner = self.config.planner
        return max(1, math.ceil(2.0 * math.pi / (planner.max_angular_speed * planner.dt)))

    def _look_around_step(self) -> tuple[float, float]:
        """One step of the turn on the spot at the goal; a sighting ends it (the next step drives to it), and so
        does a full turn without one: the robot has arrived. A glimpse (fewer views in a row than ``sight_frames``)
        stops the turn until the next views confirm it or not: turning, an object stays in view for only a few
        frames, and a learned predictor misses it in some of them."""
        if self.sight is not None:
            self._looking_left = 0
            return 0.0, 0.0
        if 0 < self._sightings_in_a_row < self.config.sight_frames:
            return 0.0, 0.0
        self._looking_left -= 1
        if self._looking_left == 0:
            self.arrived, self.status = True, "arrived"
            return 0.0, 0.0
        self.status = "looking around"
        return 0.0, self.config.planner.max_angular_speed

    def _walk(self, senses: Senses) -> tuple[float, float]:
        return self.walker.command(senses.bev, twist=senses.twist) if senses.bev is not None else (0.0, 0.0)

    def _park_spot(self, plan_map: np.ndarray, pose: Pose2D) -> tuple[float, float]:
        if not self.config.park:
            return pose.x, pose.y
        spot = park_spot(plan_map, self.geometry, self.current_goal or (pose.x, pose.y), self.config.planner)
        return spot or (pose.x, pose.y)

    @property
    def current_goal(self) -> tuple[float, float] | None:
        """The goal driven to now: where the view showed the target, else the memory's goal, else none."""
        return self.sight or self.goal

    @property
    def plan(self) -> np.ndarray | None:
        """The path the robot follows now (map frame, (n, 2)), if any."""
        return self.navigator.status.path if self.navigator is not None else None
