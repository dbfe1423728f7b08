"""The team task on Memory-Maze with the full stack (issue 17, item 2): each robot sees only what a robot would.

Memory-Maze in MuJoCo (sim/memory_maze.py's MemoryMazeWorld, one physics per robot, the same maze and starts as
evaluation/memory_maze_team.py's LayoutWorld for the seed). Per step each robot, as the nodes do:

1. renders its 64x64 camera image and predicts its BEV with the BEV predictor (the shipped checkpoint or another)
   through the camera adapter for Memory-Maze's camera (perception/camera_adapter.py), less the walls it sees more
   edge-on than the shipped MIN_WALL_INCIDENCE (perception/wall_incidence.py; the bev_predictor node's default);
2. localizes with the TEM localizer (localizer node defaults for a map the robot builds itself: observation weight
   0.05, correct only views >= 80% mapped): odometry of the last step (the walker's motion with 5% / 2 deg/s noise),
   then the BEV against its own memory's map of 2 s before (the memory publishes a map every 1 s);
3. hands the predicted BEV, the estimate and its sd, and its odometry to the team task (memory, link, Robot).

Only the start pose is given (the simulator's initialpose, sd 0.05 m); success is judged on the true poses.
"""
from __future__ import annotations

import math
from collections import deque
from pathlib import Path

from spatial_memory_ros.evaluation.memory_maze_team import STEP_S
from spatial_memory_ros.evaluation.team_task import Perceived, TeamEpisode, TeamTaskConfig
from spatial_memory_ros.localization.map_likelihood import OccupancyMap
from spatial_memory_ros.localization.tem import TemLocalizer
from spatial_memory_ros.localization.tem_config import TemConfig
from spatial_memory_ros.perception.wall_incidence import MIN_WALL_INCIDENCE, without_grazing_walls
from spatial_memory_ros.types import Pose2D

MAP_PERIOD_S = 1.0
MAP_LAG_S = 2.0
INITIAL_SD = 0.05


def make_adapter(checkpoint: str | Path | None = None):
    """The BEV predictor (the shipped checkpoint, or ``checkpoint``) adapted to Memory-Maze's camera and classes."""
    from spatial_memory_ros.perception.predictor import checkpoint_for_world, load_predictor
    from spatial_memory_ros.sim.memory_maze import CLASS_NAMES, camera_model

    predictor = load_predictor(checkpoint or checkpoint_for_world("memory_maze"), num_threads=1)
    return predictor.for_camera(camera_model(), CLASS_NAMES)


class FullStackEpisode(TeamEpisode):
    """A team-task episode whose robots act on predicted BEVs and estimated poses (see the module docstring)."""

    def __init__(self, config: TeamTaskConfig, embedder, world, adapter) -> None:
        super().__init__(config, embedder, world)
        self.adapter = adapter
        extent = (0.0, 0.0, self.maze.width_m, self.maze.height_m)
        self.localizers = []
        for index in range(config.num_robots):
            start = world.true_pose(index)
            self.localizers.append(TemLocalizer(TemConfig(observation_weight=0.05, min_known_fraction=0.8,
                                                          rectilinear_walls=True),
                                                initial_pose=(start.x, start.y, start.theta),
                                                initial_sigma=INITIAL_SD, extent=extent))
        self._maps: list[deque] = [deque() for _ in range(config.num_robots)]
        self._map_in_use: list[OccupancyMap | None] = [None] * config.num_robots
        self.pose_errors: list[float] = []

    def perceive(self, index: int, t: int) -> Perceived:
        """Rendered image -> predicted BEV; odometry + BEV vs the memory's map of 2 s ago -> pose estimate."""
        dt = self.world.config.dt
        bev = without_grazing_walls(self.adapter.predict(self.world.render(index))[0], MIN_WALL_INCIDENCE)
        twist = self.world.odom_twist(index)
        localizer = self.localizers[index]
        if t > 0:
            localizer.predict(twist[0], twist[1], dt)
        self._keep_map(index, t * dt)
        occupancy = self._map_before(index, t * dt - MAP_LAG_S)
        if occupancy is not None:
            if occupancy is not self._map_in_use[index]:
                localizer.set_map(occupancy)
                self._map_in_use[index] = occupancy
            localizer.correct(bev)
        estimate = localizer.estimate()
        pose = Pose2D(estimate.x, estimate.y, estimate.theta)
        sd = math.sqrt(max(0.5 * (estimate.covariance[0, 0] + estimate.covariance[1, 1]), 0.0))
        truth = self.world.true_pose(index)
        self.pose_errors.append(math.hypot(pose.x - truth.x, pose.y - truth.y))
        return Perceived(bev, pose, max(sd, INITIAL_SD), twist)

    def _keep_map(self, index: int, stamp: float) -> None:
        """The robot's memory map, kept once per MAP_PERIOD_S (as the memory node publishes it)."""
        maps = self._maps[index]
        if maps and stamp - maps[-1][0] < MAP_PERIOD_S - 1e-9:
            return
        grid = self.robots[index].memory.occupancy()
        geometry = self.geometry
        maps.append((stamp, OccupancyMap(grid.copy(), geometry.resolution, geometry.origin_x, geometry.origin_y)))

    def _map_before(self, index: int, wanted: float) -> OccupancyMap | None:
        maps = self._maps[index]
        while len(maps) > 1 and maps[1][0] <= wanted:
            maps.popleft()
        return maps[0][1] if maps and maps[0][0] <= wanted else None


_ADAPTERS: dict = {}


def run_full_stack_episode(config: TeamTaskConfig, embedder, step_s: float = STEP_S,
                           checkpoint: str | Path | None = None) -> dict:
    """One full-stack episode on Memory-Maze for ``config.seed``, as a JSON-ready dict (with the mean error of the
    robots' pose estimates)."""
    from spatial_memory_ros.evaluation.memory_maze_team import layout_config
    from spatial_memory_ros.sim.memory_maze import MemoryMazeWorld

    key = str(checkpoint or "")
    if key not in _ADAPTERS:
        _ADAPTERS[key] = make_adapter(checkpoint)
    world = MemoryMazeWorld(size=config.maze_size, seed=config.seed, num_robots=config.num_robots,
                            config=layout_config(step_s))
    try:
        episode = FullStackEpisode(config, embedder, world, _ADAPTERS[key])
        result = episode.run().to_dict()
    finally:
        world.close()
    errors = episode.pose_errors
    result["pose_error_m"] = float(sum(errors) / len(errors)) if errors else float("nan")
    result["step_s"] = step_s
    result["checkpoint"] = key or "shipped"
    return result
