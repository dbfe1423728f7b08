"""The team task in one process, faster than real time (no ROS): find a named target together over a thin link.

Mirrors SSM-PC's Memory-Maze task: ``num_robots`` robots start in different rooms of a ``maze_size`` maze with
coloured targets; every robot is told the same text goal ("the red target"); none knows where it is. The episode
succeeds when every robot has come within ``reach_radius`` of that target (each at some step, not all at once)
within ``max_steps`` steps of ``dt`` = 0.1 s. A robot that drops out is excused if it had not arrived.

Each robot has the oracle BEV and its TRUE pose (oracle localisation, sd ``pose_sd``): the question here is what
the link carries, not how well a robot localises; the localizer is benchmarked on its own. Per step each robot
writes its BEV into its own RobotMemory, offers a packet to the link (comm/link.py, one strategy for the team),
takes in its teammates' packets (lost independently per receiver with probability ``packet_loss``; sightings are
merged into its memory with the sender as source; cells fill its team map where it has not looked), asks its
memory for the goal every ``ask_every`` steps (and whenever a sighting arrives), and drives with the Navigator of
behaviour/planner.py on the team map, steering away from where it believes its teammates are. A robot that has arrived
drives off to wait in the most open place 2.5 to 8 m (path cost) from the target (planner.park_spot), so that it
does not block the way of the others when the target stands in a corridor or a dead end (the simulator tells a
robot when it has reached the target, as Memory-Maze's reward does).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np

from spatial_memory_ros.comm.layout import CommLayout
from spatial_memory_ros.comm.link import CommConfig, TeamComm, shared_entry_arrays
from spatial_memory_ros.comm.partners import Sighting
from spatial_memory_ros.comm.transport import FrameLink, LoopbackHub
from spatial_memory_ros.evaluation.map_scores import map_scores, rasterize_maze
from spatial_memory_ros.memory.mapping import FLOOR_LABEL, WALL_LABEL, Observations
from spatial_memory_ros.types import BevGrid, GridGeometry, Pose2D
from spatial_memory_ros.behaviour.goals import ask_memory
from spatial_memory_ros.behaviour.planner import Partner, PlannerConfig
from spatial_memory_ros.behaviour.robot import Robot, RobotConfig, Senses, sightings_in
from spatial_memory_ros.memory.robot_memory import EMBEDDING_DIM, RobotMemory
from spatial_memory_ros.sim.maze import CLASS_NAMES, generate_maze
from spatial_memory_ros.sim.world import World

if TYPE_CHECKING:
    from spatial_memory_ros.sim.interface import SimWorld

TEAM_KEY = b"spatial_memory_ros team benchmark key"


@dataclass
class TeamTaskConfig:
    """One episode's settings; everything random follows ``seed``."""

    maze_size: int = 15
    num_robots: int = 3
    num_targets: int | None = None
    max_steps: int = 1500
    reach_radius: float = 0.6
    strategy: str = "ours"
    bits_per_step: int = 16
    packet_loss: float = 0.0
    link_bits_per_second: float = 0.0  # > 0: packets go as frames paced to this air share (comm/transport.py)
    dropout_step: int | None = None
    map_resolution: float = 0.25
    comm_resolution: float = 0.5
    ask_every: int = 10
    pose_sd: float = 0.05
    partner_error_every: int = 10
    seed: int = 0
    comm: dict = field(default_factory=dict)
    # A robot that counts itself arrived by its pose, yet did not reach the target, looks again (Robot.
    # unconfirmed_arrival, the Memory-Maze score task's rule) instead of parking there for the rest of the episode.
    retry_false_arrivals: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.packet_loss < 1.0:
            raise ValueError(f"packet_loss must be in [0, 1), got {self.packet_loss}")
        if self.num_robots < 1 or self.max_steps < 1:
            raise ValueError("num_robots and max_steps must be at least 1")
        if self.dropout_step is not None and (self.num_robots < 2 or self.dropout_step < 0):
            raise ValueError("a dropout needs at least 2 robots and a step >= 0")


@dataclass
class EpisodeResult:
    """What one episode measured."""

    seed: int
    strategy: str
    bits_per_step: int
    packet_loss: float
    dropout_step: int | None
    goal: str
    success: bool
    steps: int
    time_to_success_s: float | None
    reached_step: list[int | None]
    map_iou: float
    coverage: float
    partner_error_m: float
    bits_used_per_step: float
    packets_sent: int
    envelope_bytes_per_s: float
    drops: int
    wall_s: float
    air_bits_per_s: float | None = None  # per robot, frames + IP/UDP headers (link_bits_per_second > 0 only)
    false_arrivals: int = 0  # arrivals by pose without reaching the target, over the team (retry_false_arrivals)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict."""
        return asdict(self)


class LabelEmbedder:
    """Embeddings of a fixed set of texts (labels and queries), precomputed once and shared between robots.

    Duck-types ``semantics.Embedder.embed``; a text outside the table raises ValueError naming the known ones.
    """

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self._table = {text: np.asarray(vector, np.float32) for text, vector in table.items()}

    @classmethod
    def from_embedder(cls, embedder, texts: list[str] | None = None) -> LabelEmbedder:
        """Embed ``texts`` (default: every BEV label and every 'the <colour> target' query) with a real Embedder."""
        texts = texts or task_texts()
        return cls(dict(zip(texts, embedder.embed(texts))))

    @classmethod
    def synthetic(cls, seed: int = 0, class_names: Sequence[str] = CLASS_NAMES) -> LabelEmbedder:
        """Random unit vectors per label, each query equal to its label's (tests without the language model);
        ``class_names``: the world's target colours (default the built-in world's)."""
        rng = np.random.default_rng([seed, 0x1AB])
        table = {}
        for label in [FLOOR_LABEL, WALL_LABEL] + [f"{name} target" for name in class_names]:
            vector = rng.normal(size=EMBEDDING_DIM)
            table[label] = vector / np.linalg.norm(vector)
        for name in class_names:
            table[f"the {name} target"] = table[f"{name} target"]
        return cls(table)

    def embed(self, texts) -> np.ndarray:
        """(n, dim) rows for the texts."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        missing = [text for text in texts if text.strip() not in self._table]
        if missing:
            raise ValueError(f"no precomputed embedding for {missing[:3]}; known texts: {sorted(self._table)}")
        return np.stack([self._table[text.strip()] for text in texts])

    def table(self) -> dict[str, list[float]]:
        """The table as plain lists (to hand to worker processes)."""
        return {text: vector.tolist() for text, vector in self._table.items()}


def task_texts(class_names: Sequence[str] = CLASS_NAMES) -> list[str]:
    """Every text the team task embeds: the BEV labels and one query per colour (of ``class_names``, default the
    built-in world's)."""
    labels = [FLOOR_LABEL, WALL_LABEL] + [f"{name} target" for name in class_names]
    return labels + [f"the {name} target" for name in class_names]


def draw_goal_target(maze, seed: int):
    """The target an episode of ``seed`` sends the team to (every benchmark of the team task draws it so)."""
    rng = np.random.default_rng([seed, 0x7EA])
    return maze.targets[int(rng.integers(len(maze.targets)))]


@dataclass
class Perceived:
    """What one robot has to act on at a step: its BEV, its pose with the pose's sd (metres) and its measured
    motion (v, omega). The team task's default is the oracle's: true BEV, true pose, true twist."""

    bev: BevGrid
    pose: Pose2D
    pose_sd: float
    twist: tuple[float, float]


@dataclass
class _Member:
    """One team member in the episode: the shipped robot loop with its memory and link, and what the episode
    knows of it."""

    index: int
    robot_id: str
    memory: RobotMemory
    comm: TeamComm
    robot: Robot
    link: FrameLink | None = None
    new_sightings: list[Sighting] = field(default_factory=list)  # not yet offered to the link
    active: bool = True
    reached_step: int | None = None
    false_arrivals: int = 0


class TeamEpisode:
    """One episode of the team task, stepped by :meth:`step` or run to the end by :meth:`run`.

    ``world``: the world to play in (any sim/interface.py SimWorld with ``config.num_robots`` robots: its maze,
    start poses, object classes and dt); default the built-in world on ``generate_maze(config.maze_size, seed)``.
    What each robot acts on comes from :meth:`perceive` (the oracle's by default; a subclass may perceive
    otherwise).
    """

    def __init__(self, config: TeamTaskConfig, embedder, world: SimWorld | None = None) -> None:
        self.config = config
        seed = config.seed
        if world is None:
            world = World(generate_maze(config.maze_size, seed=seed, num_targets=config.num_targets),
                          config.num_robots, seed=seed)
        elif world.num_robots != config.num_robots:
            raise ValueError(f"the world has {world.num_robots} robots, the config {config.num_robots}")
        self.world = world
        self.maze = world.maze
        self.class_names = tuple(world.class_names)
        self.target = draw_goal_target(self.maze, seed)
        self.query = f"the {self.target.color} target"
        self.geometry = GridGeometry.covering(self.maze, config.map_resolution)
        self.truth = rasterize_maze(self.maze, self.geometry)
        self.layout = CommLayout.for_map(self.geometry, self.class_names, config.comm_resolution)
        self._loss_rng = np.random.default_rng([seed, 0x1055])
        ids = [f"robot{k + 1}" for k in range(config.num_robots)]
        comm_config = CommConfig(bits_per_step=config.bits_per_step, strategy=config.strategy, **config.comm)
        self.robots = [self._make_robot(k, ids, embedder, comm_config) for k in range(config.num_robots)]
        if config.link_bits_per_second > 0:  # a thin radio: each robot's share counts frames and IP/UDP headers
            hub = LoopbackHub(config.packet_loss, self._loss_rng)
            for robot in self.robots:
                robot.link = FrameLink(robot.comm, ids, hub.endpoint(robot.robot_id), config.link_bits_per_second)
        self.step_count = 0
        self._partner_errors: list[float] = []
        self._active_robot_steps = 0

    def _make_robot(self, index: int, ids: list[str], embedder, comm_config: CommConfig) -> _Member:
        robot_id = ids[index]
        memory = RobotMemory(self.geometry, embedder, robot_id, class_names=self.class_names)
        comm = TeamComm(robot_id, ids, TEAM_KEY, self.layout, _copy_config(comm_config))
        comm.goal_label = f"{self.target.color} target"
        planner = PlannerConfig(dt=self.world.config.dt, goal_clear_radius=self.world.target_radius)
        robot = Robot(self.query, RobotConfig(planner, ask_every=self.config.ask_every,
                                              seed=self.config.seed * 31 + index), self.geometry)
        return _Member(index, robot_id, memory, comm, robot)

    # --------------------------------------------------------------------------------------------- stepping

    @property
    def done(self) -> bool:
        """Success reached or out of time."""
        return self.success or self.step_count >= self.config.max_steps

    @property
    def success(self) -> bool:
        """Every robot that is still in the team (or arrived before dropping out) has reached the target."""
        return all(r.reached_step is not None for r in self.robots if r.active or r.reached_step is not None) \
            and any(r.reached_step is not None for r in self.robots)

    def step(self) -> None:
        """One 0.1 s step of the whole team."""
        t = self.step_count
        self._maybe_drop_out(t)
        active = [r for r in self.robots if r.active]
        senses = {r.index: self.perceive(r.index, t) for r in active}
        for robot in active:
            self._observe(robot, senses[robot.index], t)
        maps = {r.index: r.memory.occupancy() for r in active}
        self._exchange(active, senses, maps, t)
        commands = [(0.0, 0.0)] * self.config.num_robots
        for robot in active:
            commands[robot.index] = self._command(robot, senses[robot.index], maps[robot.index], t)
        self.world.step(commands)
        self.step_count += 1
        self._active_robot_steps += len(active)
        self._check_reached()
        if t % self.config.partner_error_every == 0:
            self._measure_partner_error(active, t)

    def perceive(self, index: int, t: int) -> Perceived:
        """What robot ``index`` acts on at step ``t``: here the oracle BEV, the true pose (sd ``pose_sd``) and the
        true twist."""
        return Perceived(self.world.oracle_bev(index), self.world.true_pose(index), self.config.pose_sd,
                         self.world.true_twist(index))

    def _maybe_drop_out(self, t: int) -> None:
        if self.config.dropout_step is not None and t == self.config.dropout_step:
            self.robots[-1].active = False

    def _observe(self, robot: _Member, sensed: Perceived, t: int) -> None:
        entries = robot.memory.observe(sensed.bev, sensed.pose, sensed.pose_sd, t * self.world.config.dt)
        robot.new_sightings.extend(sightings_in(entries.labels, entries.locations))
        robot.robot.notice(entries.labels)

    def _exchange(self, active: list[_Member], senses: dict[int, Perceived], maps: dict, t: int) -> None:
        """Every active robot offers a packet; each other active robot gets it unless the link loses it."""
        if self.config.link_bits_per_second > 0:
            self._exchange_frames(active, senses, maps, t)
            return
        packets = []
        for robot in active:
            sensed = senses[robot.index]
            packet = robot.comm.make_packet(t, sensed.pose, abs(sensed.twist[0]), maps[robot.index],
                                            robot.new_sightings)
            robot.new_sightings.clear()  # the link remembers every sighting it was offered
            if packet is not None:
                packets.append(packet)
        for packet in packets:
            for receiver in active:
                if receiver.robot_id == packet.sender or self._loss_rng.random() < self.config.packet_loss:
                    continue
                decoded = receiver.comm.verify(packet, t)
                if decoded is not None:
                    self._merge(receiver, receiver.comm.apply(decoded, t), packet.sender, t)

    def _exchange_frames(self, active: list[_Member], senses: dict[int, Perceived], maps: dict, t: int) -> None:
        """The same over a paced frame link: a robot sends when its air share allows (FrameLink), the hub loses
        frames per receiver with ``packet_loss``."""
        dt = self.world.config.dt
        for robot in active:
            sensed = senses[robot.index]
            robot.link.step(t, t * dt, sensed.pose, abs(sensed.twist[0]), maps[robot.index], robot.new_sightings)
            robot.new_sightings.clear()
        for robot in active:
            for decoded, sightings in robot.link.poll(t, t * dt):
                self._merge(robot, sightings, decoded.sender, t)

    def _merge(self, robot: _Member, sightings: list[Sighting], sender: str, t: int) -> None:
        if not sightings:
            return
        locations, sds, labels, sources, stamps, features = shared_entry_arrays(
            sightings, sender, t * self.world.config.dt, self.layout)
        values = robot.memory.values(Observations(locations, labels, features))
        robot.memory.merge(locations, sds, values, labels, sources, stamps)
        robot.robot.notice(labels)

    def _command(self, robot: _Member, sensed: Perceived, own_map: np.ndarray, t: int) -> tuple[float, float]:
        if self.config.retry_false_arrivals and robot.robot.unconfirmed_arrival():
            robot.false_arrivals += 1
        if robot.robot.should_ask():
            answer = ask_memory(robot.memory, robot.robot.ask_text, seed=self.config.seed * 7919 + t)
            robot.robot.asked()
            robot.robot.take_answer(*answer)
        team_map = robot.comm.team_occupancy(own_map, self.geometry)
        # A robot cannot tell that a teammate dropped out: its last believed place stays a soft obstacle.
        partners = tuple(Partner(p.x, p.y, p.sd) for p in robot.comm.partner_states(t))
        return robot.robot.step(Senses(sensed.bev, sensed.pose, team_map, partners, sensed.twist))

    def _check_reached(self) -> None:
        for robot in self.robots:
            if robot.active and robot.reached_step is None:
                pose = self.world.true_pose(robot.index)
                if math.hypot(pose.x - self.target.x, pose.y - self.target.y) <= self.config.reach_radius:
                    robot.reached_step = self.step_count
                    robot.robot.reached()  # the simulator tells the robot, as Memory-Maze's reward does

    def _measure_partner_error(self, active: list[_Member], t: int) -> None:
        """Error of each robot's belief about each active teammate; no belief yet = the map centre."""
        centre = (0.5 * self.maze.width_m, 0.5 * self.maze.height_m)
        for robot in active:
            beliefs = {p.robot_id: (p.x, p.y) for p in robot.comm.partner_states(t)}
            for other in active:
                if other is robot:
                    continue
                truth = self.world.true_pose(other.index)
                x, y = beliefs.get(other.robot_id, centre)
                self._partner_errors.append(math.hypot(x - truth.x, y - truth.y))

    # ---------------------------------------------------------------------------------------------- result

    def run(self) -> EpisodeResult:
        """Step to the end and report."""
        start = time.perf_counter()
        while not self.done:
            self.step()
        return self.result(time.perf_counter() - start)

    def result(self, wall_s: float) -> EpisodeResult:
        """The episode's measurements so far."""
        scores = [map_scores(r.comm.team_occupancy(r.memory.occupancy(), self.geometry), self.truth)
                  for r in self.robots if r.active] or [{"map_iou": float("nan"), "coverage": float("nan")}]
        bits = sum(r.comm.stats.payload_bits_sent for r in self.robots)
        envelope = sum(r.comm.stats.envelope_bytes_sent for r in self.robots)
        steps = self.step_count
        success = self.success
        arrivals = [r.reached_step for r in self.robots if r.reached_step is not None]
        return EpisodeResult(
            seed=self.config.seed, strategy=self.config.strategy, bits_per_step=self.config.bits_per_step,
            packet_loss=self.config.packet_loss, dropout_step=self.config.dropout_step, goal=self.query,
            success=success, steps=steps,
            time_to_success_s=max(arrivals) * self.world.config.dt if success else None,
            reached_step=[r.reached_step for r in self.robots],
            map_iou=float(np.mean([s["map_iou"] for s in scores])),
            coverage=float(np.mean([s["coverage"] for s in scores])),
            partner_error_m=float(np.mean(self._partner_errors)) if self._partner_errors else float("nan"),
            bits_used_per_step=bits / max(self._active_robot_steps, 1),
            packets_sent=sum(r.comm.stats.packets_sent for r in self.robots),
            envelope_bytes_per_s=envelope / max(self._active_robot_steps, 1) / self.world.config.dt,
            drops=sum(sum(r.comm.stats.drops.values()) for r in self.robots),
            wall_s=wall_s, air_bits_per_s=self._air_bits_per_s(),
            false_arrivals=sum(r.false_arrivals for r in self.robots))

    def _air_bits_per_s(self) -> float | None:
        links = [r.link for r in self.robots if r.link is not None]
        if not links or not self.step_count:
            return None
        return 8 * sum(link.stats.air_bytes_sent for link in links) / len(links) / (
            self.step_count * self.world.config.dt)


def _copy_config(config: CommConfig) -> CommConfig:
    return CommConfig(**{name: getattr(config, name) for name in config.__dataclass_fields__})


def run_episode(config: TeamTaskConfig, embedder, world: SimWorld | None = None) -> EpisodeResult:
    """Run one episode of the team task (``embedder``: a LabelEmbedder or a semantics.Embedder; ``world``: see
    TeamEpisode)."""
    return TeamEpisode(config, embedder, world).run()
