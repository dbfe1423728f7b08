"""SSM-PC's team task on Memory-Maze layouts (issue 17, item 2): the team task of evaluation/team_task.py, on the
shipped robot loop, in the maze Memory-Maze itself draws for a seed.

Two ways to play a seed's maze:

- :class:`LayoutWorld`, no physics and no rendering: Memory-Maze's layout (its own generator, ``memory_maze``'s
  task with global observables, built without a camera: :func:`memory_maze_layout`), its geometry (2 m cells,
  walls 1.5 m, six coloured spheres of radius 0.6 m as targets, the walker's 80 deg camera cone for the BEV
  oracle, its 1.25 rad/s top yaw rate) and its world's start poses (sim/memory_maze.py's draw for the seed), with
  the built-in world's kinematic drive. Robots do not collide with each other, as in Memory-Maze, where each robot
  has its own physics. The robots get true BEVs and true poses (the sweep's setting).
- sim/memory_maze.py's ``MemoryMazeWorld`` (MuJoCo, rendered): the same maze and starts; with the full stack
  (evaluation/memory_maze_full_stack.py) each robot sees only its rendered image and odometry.

Both give the same maze, targets, starts and goal colour for a seed, so their episodes pair seed by seed.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from spatial_memory_ros.sim.maze import Maze, Target
from spatial_memory_ros.sim.memory_maze import (CAMERA_FOVY_DEG, CELL_SIZE, CLASS_NAMES, MAX_ANGULAR_SPEED,
                                                MAX_LINEAR_SPEED, TARGET_RADIUS, MemoryMazeWorld, _load_tasks,
                                                _target_rgb, check_size)
from spatial_memory_ros.sim.oracle import BevOracle
from spatial_memory_ros.sim.world import World, WorldConfig

START_SEED_TAG = 0x3A3E
"""The tag of MemoryMazeWorld's random stream (start poses first): LayoutWorld draws the same starts."""


def layout_config(dt: float = 0.1) -> WorldConfig:
    """The world settings of a Memory-Maze robot: the walker's camera cone (80 deg) and size, its speed limits, no
    teammates drawn (each robot has its own physics there), and the step ``dt``."""
    return WorldConfig(dt=dt, fov_deg=CAMERA_FOVY_DEG, robot_radius=0.2, render_teammates=False,
                       max_linear_speed=min(WorldConfig.max_linear_speed, MAX_LINEAR_SPEED),
                       max_angular_speed=MAX_ANGULAR_SPEED)


def memory_maze_layout(size: int, seed: int) -> Maze:
    """The maze Memory-Maze draws for ``size`` and ``seed`` as a wall grid in the map frame (outer walls included,
    2 m cells) with its targets, exactly as MemoryMazeWorld(size, seed) builds it, but without rendering (the
    walker's camera is switched off; about 2 s). Cached per process."""
    return _layout(check_size(size), int(seed))


@functools.lru_cache(maxsize=256)
def _layout(size: int, seed: int) -> Maze:
    import warnings

    tasks = _load_tasks()
    factory = getattr(tasks, f"memory_maze_{size}x{size}")
    env = factory(global_observables=True, target_color_in_image=False, discrete_actions=False, seed=seed)
    composer_env = env
    while not hasattr(composer_env, "task"):
        composer_env = composer_env.env if hasattr(composer_env, "env") else composer_env._env
    composer_env.task._walker.observables.egocentric_camera.enabled = False
    env.mapping.pop("image", None)  # the outer RemapObservationWrapper would ask for the camera
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        observation = env.reset().observation
    try:
        return layout_from_observation(observation, seed)
    finally:
        env.close()


def layout_from_observation(observation: dict, seed: int) -> Maze:
    """A Maze from Memory-Maze's ``maze_layout`` (1 = free, outer walls removed) and ``targets_pos`` (layout units):
    the conversion MemoryMazeWorld makes (map xy = (layout xy + 1) * 2 m)."""
    free = np.asarray(observation["maze_layout"], dtype=np.uint8) == 1
    walls = np.pad(~free, 1, constant_values=True)
    targets = []
    for index, (col, row) in enumerate(np.asarray(observation["targets_pos"], dtype=np.float64)):
        rgb = tuple(int(round(v)) for v in np.clip(_target_rgb(index) * 255.0, 0, 255))
        targets.append(Target(CLASS_NAMES[index], rgb, float((col + 1.0) * CELL_SIZE), float((row + 1.0) * CELL_SIZE)))
    return Maze(walls=walls, cell_size=CELL_SIZE, targets=targets, seed=seed)


class LayoutWorld(World):
    """A Memory-Maze layout with kinematic robots: true BEVs (Memory-Maze's classes, its 0.6 m spheres, its 80 deg
    cone) and true poses, no rendering needed. Starts are MemoryMazeWorld's for the same seed; robots pass through
    each other (one physics each in Memory-Maze)."""

    def __init__(self, maze: Maze, num_robots: int = 3, seed: int = 0, config: WorldConfig | None = None) -> None:
        self._layout_seed = int(seed)
        config = config or layout_config()
        super().__init__(maze, num_robots=num_robots, seed=seed, config=config)
        self._oracle = BevOracle(maze, self.config, CLASS_NAMES, TARGET_RADIUS)
        self._ray_angles = np.concatenate([self._camera.column_angles, self._oracle.ray_angles])

    @property
    def class_names(self) -> tuple[str, ...]:
        """Memory-Maze's target colours."""
        return CLASS_NAMES

    def reset(self, seed: int, size: int) -> None:
        """Memory-Maze's maze of ``size`` for ``seed``, with its starts."""
        self.__init__(memory_maze_layout(size, seed), num_robots=self.num_robots, seed=seed, config=self.config)

    def _start_poses(self) -> list:
        """MemoryMazeWorld's starts: its first draws from its random stream for the seed (distinct free cells that
        hold no target, uniform headings)."""
        drive_rng = self._rng
        self._rng = np.random.default_rng([self._layout_seed, START_SEED_TAG])
        try:
            return MemoryMazeWorld._start_poses(self)  # the same rule on the same layout and stream
        finally:
            self._rng = drive_rng

    def _collides(self, robot: int, x: float, y: float) -> bool:
        return self.maze.disc_collides(x, y, self.config.robot_radius)


def shortest_path_m(maze: Maze, start: tuple[float, float], goal: tuple[float, float]) -> float:
    """Length in metres of the shortest 4-connected path of cell centres from ``start``'s cell to ``goal``'s
    (a diagnostic of how far a start is from the target; inf if unreachable)."""
    from collections import deque

    begin, end = maze.cell_of(*start), maze.cell_of(*goal)
    seen = {begin: 0}
    queue = deque([begin])
    while queue:
        cell = queue.popleft()
        if cell == end:
            return seen[cell] * maze.cell_size
        r, c = cell
        for nxt in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if nxt not in seen and 0 <= nxt[0] < maze.rows and 0 <= nxt[1] < maze.cols and not maze.walls[nxt]:
                seen[nxt] = seen[cell] + 1
                queue.append(nxt)
    return math.inf


STEP_S = 0.25
"""The team's step: Memory-Maze's own control period (4 Hz, memory_maze.tasks.DEFAULT_CONTROL_FREQ), the only step
rate Memory-Maze defines; SSM-PC's is not published. Bits per step are per 0.25 s step."""
REACH_RADIUS = TARGET_RADIUS + 0.2
"""A robot reaches the target when it touches the sphere (Memory-Maze rewards touching it): centre distance at most
the sphere's radius plus the walker's (0.6 + 0.2 m)."""
RETRY_FALSE_ARRIVALS = True
"""Memory-Maze tells a robot when it touches the target (its reward), so a robot that counts itself arrived by its
pose without that word looks again (TeamTaskConfig.retry_false_arrivals), as the score task's robot does; without
it such a robot parked at the wrong place for the rest of the episode."""


def run_layout_episode(config, embedder, step_s: float = STEP_S, maze: Maze | None = None) -> dict:
    """One team-task episode (a TeamTaskConfig) on Memory-Maze's maze for ``config.seed`` with true BEVs and true
    poses, as a JSON-ready dict with a diagnostic: each start's shortest-path distance to the target."""
    from spatial_memory_ros.evaluation.team_task import TeamEpisode

    maze = maze if maze is not None else memory_maze_layout(config.maze_size, config.seed)
    world = LayoutWorld(maze, config.num_robots, config.seed, layout_config(step_s))
    episode = TeamEpisode(config, embedder, world)
    starts = [world.true_pose(k) for k in range(config.num_robots)]
    result = episode.run().to_dict()
    result["start_path_m"] = [shortest_path_m(maze, (p.x, p.y), (episode.target.x, episode.target.y)) for p in starts]
    result["step_s"] = step_s
    return result
