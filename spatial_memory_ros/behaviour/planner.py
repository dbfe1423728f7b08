"""Where to go and how to get there on an occupancy grid: frontiers, shortest paths, a path follower (no ROS).

* :func:`cost_grid` turns an occupancy grid (int8: -1 unknown, 0..100 wall probability, on a GridGeometry) into
  step costs: walls impassable, cells near walls dear (inflation by the robot's radius plus a margin), unknown
  cells passable but dearer than known free ones (optimistic planning through what nobody has seen).
* :func:`shortest_paths` runs Dijkstra (scipy's C implementation, 8-connected) from the robot over that grid once
  per replan; frontier choice and path extraction both read its distances and predecessors.
* :func:`choose_frontier` picks the frontier (known free cells next to unknown ones, in clusters) that is near,
  large and away from where teammates are believed to be.
* :class:`PathFollower` gives (v, omega) by pure pursuit along the path and keeps the BEV-based wall avoidance of
  behaviour/walker.py as a safety layer: it never drives forward into less clearance than ``stop_distance``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import scipy.sparse
import scipy.sparse.csgraph

from spatial_memory_ros.behaviour.walker import RandomWalker
from spatial_memory_ros.localization.wall_directions import wall_direction
from spatial_memory_ros.types import BevGrid, GridGeometry, Pose2D, wrap_angle

_NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))  # each undirected 8-neighbour edge once


@dataclass
class PlannerConfig:
    """Costs (per metre), distances (metres) and speeds (SI units) of planning and path following."""

    robot_radius: float = 0.2
    inflation: float = 0.1
    safety_margin: float = 0.02
    inflated_cost: float = 30.0
    near_wall_cost: float = 3.0
    near_wall_distance: float = 0.5
    unknown_cost: float = 1.5
    partner_cost: float = 20.0
    partner_radius: float = 0.5
    partner_max_sd: float = 1.0
    frontier_min_cells: int = 3
    frontier_min_distance: float = 0.6
    frontier_size_weight: float = 0.05
    frontier_partner_weight: float = 6.0
    frontier_partner_scale: float = 2.5
    frontier_keep_bonus: float = 2.0
    frontier_min_unknown_m2: float = 0.0  # a frontier with less unknown behind it is a hole, not a way on (0: off;
    # session 29's traces: a quarter of a long search's frontiers were holes of under 1 m2 in explored rooms)
    arena_size_m: float = 0.0  # the side of the rectangular, rectilinear arena the robot is in (0: unknown); a
    # frontier that cannot lie in it beside the free space seen is skipped (off: session 29's candidate)
    arena_margin_m: float = 1.0  # slack for a map bent by pose error
    replan_every: int = 10
    replan_when_frontier_seen: bool = False  # replan at once when the frontier driven to stops bordering the
    # unknown (off: session 29's candidate; in its traces a fifth to a third of a search's frontier steps drove on
    # to a frontier already seen, for up to replan_every steps)
    lookahead: float = 0.6
    goal_tolerance: float = 0.2
    goal_clear_radius: float = 0.3
    goal_reach_radius: float = 1.0
    doubtful_wall_below: int = 85  # percent: walls below it are doubtful (Navigator.step's doubt_walls)
    doubtful_frontier_cost: float = 20.0  # m of path cost added to a frontier that only a doubted wall opened
    doubt_when_out_of_frontiers: bool = False  # no frontier left: look behind doubtful walls first (off: session 25)
    goal_through_doubtful_walls: bool = False  # a goal's path may cross doubtful walls (off: session 26, README)
    doubtful_wall_cost: float = 40.0  # per metre of doubtful wall a goal's path crosses, on top of unknown_cost
    max_linear_speed: float = 0.8
    max_angular_speed: float = 1.5
    turn_gain: float = 2.0
    turn_in_place_deg: float = 50.0
    stop_distance: float = 0.3
    slow_down_distance: float = 0.8
    stuck_steps: int = 40
    stuck_distance: float = 0.15
    escape_steps: int = 15
    bump_steps: int = 3
    reverse_steps: int = 4
    reverse_speed: float = 0.2
    bump_memory_steps: int = 150
    dt: float = 0.1

    def __post_init__(self) -> None:
        for name in ("robot_radius", "lookahead", "max_linear_speed", "max_angular_speed", "dt", "unknown_cost"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"PlannerConfig.{name} must be a positive finite number, got {value}")
        if not (0.0 <= self.goal_clear_radius <= 5.0 and 0.0 <= self.goal_reach_radius <= 5.0):
            raise ValueError("PlannerConfig.goal_clear_radius and goal_reach_radius must lie in [0, 5] m")
        for name in ("doubtful_frontier_cost", "doubtful_wall_cost", "frontier_min_unknown_m2", "arena_size_m",
                     "arena_margin_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"PlannerConfig.{name} must be a finite cost >= 0, got {value}")
        if not 50 <= self.doubtful_wall_below <= 101:
            raise ValueError("PlannerConfig.doubtful_wall_below must be a wall probability in percent in [50, 101], "
                             f"got {self.doubtful_wall_below}")
        if self.replan_every < 1 or self.stuck_steps < 2:
            raise ValueError("PlannerConfig.replan_every must be >= 1 and stuck_steps >= 2")


@dataclass(frozen=True)
class Partner:
    """A teammate as the planner sees it: believed position and its sd (metres)."""

    x: float
    y: float
    sd: float


# ------------------------------------------------------------------------------------------------ costs


def cost_grid(occupancy: np.ndarray, geometry: GridGeometry, config: PlannerConfig,
              partners: tuple[Partner, ...] = (), doubtful_passable: bool = False) -> np.ndarray:
    """Per-cell cost of entering a cell (float, inf for walls), shaped like ``occupancy``.

    With ``doubtful_passable``, wall cells under ``config.doubtful_wall_below`` percent are not walls but unknown
    cells that cost ``doubtful_wall_cost`` more per metre, and they inflate nothing: a path may cross them where
    that saves more than the surcharge (see Navigator: a goal's path)."""
    occupancy = _checked_occupancy(occupancy, geometry)
    walls = occupancy >= 50
    doubtful = walls & (occupancy < config.doubtful_wall_below) if doubtful_passable else np.zeros_like(walls)
    walls &= ~doubtful
    if walls.any():  # clearance from a cell's centre to the nearest wall cell's edge
        distance = (scipy.ndimage.distance_transform_edt(~walls) - 0.5) * geometry.resolution
    else:
        distance = np.full(occupancy.shape, np.inf)
    costs = np.where((occupancy == -1) | doubtful, config.unknown_cost, 1.0)
    costs = costs + config.near_wall_cost * np.clip(1.0 - distance / config.near_wall_distance, 0.0, 1.0)
    costs[distance <= config.robot_radius + config.inflation] += config.inflated_cost
    costs[doubtful] += config.doubtful_wall_cost
    for partner in partners:
        if partner.sd <= config.partner_max_sd:
            costs += config.partner_cost * _disc(geometry, partner.x, partner.y, config.partner_radius + partner.sd)
    costs[walls] = np.inf
    return costs


def clear_around(occupancy: np.ndarray, geometry: GridGeometry, point: tuple[float, float],
                 radius: float) -> np.ndarray:
    """A copy of ``occupancy`` whose wall cells within ``radius`` of ``point`` read as unknown.

    A goal is where a target was seen: walls mapped that close to it are, most often, the target itself seen as a
    wall, or the goal estimate sitting a little inside a real wall; planning through them lets the robot reach it
    (a real wall still stops it, and the stuck handling takes over)."""
    occupancy = _checked_occupancy(occupancy, geometry)
    if radius <= 0:
        return occupancy
    near = _disc(geometry, point[0], point[1], radius) > 0
    walls = near & (occupancy >= 50)
    if not walls.any():
        return occupancy
    cleared = occupancy.copy()
    cleared[walls] = -1
    return cleared


def open_doubtful_walls(occupancy: np.ndarray, below: int) -> np.ndarray:
    """A copy of ``occupancy`` whose doubtful wall cells (wall probability 50 to ``below`` percent) that touch the
    unknown, directly or through other doubtful wall cells (4-connected), read as unknown.

    A wall seen only from afar or at a slant is where the map goes wrong most: the BEV runs a wall on across a
    doorway beside it, and the map then closes the doorway with wall cells that no frontier crosses (Memory-Maze
    15x15 seed 3,000,002: a 6 x 6 m pocket closed off for 900 steps of search). Reading such cells as unknown
    makes the free cells before them frontiers again; driving there, the robot sees them up close, and a real wall
    then becomes certain while a false one gives way."""
    occupancy = np.asarray(occupancy)
    doubtful = (occupancy >= 50) & (occupancy < below)
    if not doubtful.any():
        return occupancy
    unknown = occupancy == -1
    reached = scipy.ndimage.binary_propagation(unknown, mask=unknown | doubtful) & doubtful
    if not reached.any():
        return occupancy
    opened = occupancy.copy()
    opened[reached] = -1
    return opened


def _checked_occupancy(occupancy: np.ndarray, geometry: GridGeometry) -> np.ndarray:
    occupancy = np.asarray(occupancy)
    if occupancy.shape != (geometry.height, geometry.width):
        raise ValueError(f"occupancy shape {occupancy.shape} does not match the grid's "
                         f"{(geometry.height, geometry.width)}; pass the map the geometry describes")
    return occupancy


def _disc(geometry: GridGeometry, x: float, y: float, radius: float) -> np.ndarray:
    xs, ys = geometry.cell_centres()
    return ((xs - x) ** 2 + (ys - y) ** 2 <= radius * radius).astype(np.float64)


# -------------------------------------------------------------------------------------------- shortest paths


@dataclass
class PathField:
    """Dijkstra from one cell: distance (metres of cost) to every cell and the predecessor of each."""

    geometry: GridGeometry
    start: int
    distances: np.ndarray      # (height, width), inf where unreachable
    predecessors: np.ndarray   # flat, -9999 where none

    def nearest_reachable(self, point: tuple[float, float], radius: float) -> int | None:
        """The reachable cell (flat index) nearest to ``point`` within ``radius`` metres of it, or None."""
        xs, ys = self.geometry.cell_centres()
        distance = np.hypot(xs - point[0], ys - point[1])
        candidates = np.isfinite(self.distances) & (distance <= radius)
        if not candidates.any():
            return None
        return int(np.argmin(np.where(candidates, distance, np.inf)))

    def path_to(self, cell: int) -> np.ndarray | None:
        """Map-frame cell centres from the start to ``cell`` (flat index), or None if unreachable."""
        if not np.isfinite(self.distances.reshape(-1)[cell]):
            return None
        cells = [cell]
        while cells[-1] != self.start:
            previous = int(self.predecessors[cells[-1]])
            if previous < 0:
                return None
            cells.append(previous)
        rows, cols = np.divmod(np.asarray(cells[::-1]), self.geometry.width)
        g = self.geometry
        return np.column_stack([g.origin_x + (cols + 0.5) * g.resolution, g.origin_y + (rows + 0.5) * g.resolution])


def shortest_paths(costs: np.ndarray, geometry: GridGeometry, start_xy: tuple[float, float]) -> PathField | None:
    """Dijkstra over 8-connected cells from the cell holding ``start_xy``; None if it lies outside the grid.

    The cost of an edge is its length times the mean of its two cells' costs; the start cell is always left,
    even when it is itself inside a wall or an inflated zone (the robot may stand close to a wall).
    """
    rows, cols, inside = geometry.cell_indices(np.array([start_xy[0]]), np.array([start_xy[1]]))
    if not inside[0]:
        return None
    height, width = costs.shape
    start = int(rows[0] * width + cols[0])
    costs = costs.copy()
    if not np.isfinite(costs.reshape(-1)[start]):
        costs.reshape(-1)[start] = np.nanmax(np.where(np.isfinite(costs), costs, np.nan))
    graph = _graph(costs, geometry.resolution)
    distances, predecessors = scipy.sparse.csgraph.dijkstra(graph, directed=False, indices=start,
                                                            return_predecessors=True)
    return PathField(geometry, start, distances.reshape(height, width), predecessors)


def _graph(costs: np.ndarray, resolution: float) -> scipy.sparse.csr_matrix:
    height, width = costs.shape
    index = np.arange(height * width).reshape(height, width)
    sources, targets, weights = [], [], []
    for dr, dc in _NEIGHBOURS:
        r0, r1 = max(0, -dr), height - max(0, dr)
        c0, c1 = max(0, -dc), width - max(0, dc)
        a = costs[r0:r1, c0:c1]
        b = costs[r0 + dr:r1 + dr, c0 + dc:c1 + dc]
        ok = np.isfinite(a) & np.isfinite(b)
        length = resolution * math.hypot(dr, dc)
        sources.append(index[r0:r1, c0:c1][ok])
        targets.append(index[r0 + dr:r1 + dr, c0 + dc:c1 + dc][ok])
        weights.append(length * 0.5 * (a[ok] + b[ok]))
    return scipy.sparse.csr_matrix((np.concatenate(weights), (np.concatenate(sources), np.concatenate(targets))),
                                   shape=(height * width, height * width))


def plan_path(occupancy: np.ndarray, geometry: GridGeometry, start_xy: tuple[float, float],
              goal_xy: tuple[float, float], config: PlannerConfig | None = None,
              partners: tuple[Partner, ...] = ()) -> np.ndarray | None:
    """Cell-centre waypoints (n, 2) from start to goal on the inflated map, or None when unreachable."""
    config = config or PlannerConfig()
    field = shortest_paths(cost_grid(occupancy, geometry, config, partners), geometry, start_xy)
    goal = cell_of(geometry, goal_xy)
    if field is None or goal is None:
        return None
    return field.path_to(goal)


def cell_of(geometry: GridGeometry, xy: tuple[float, float]) -> int | None:
    rows, cols, inside = geometry.cell_indices(np.array([xy[0]]), np.array([xy[1]]))
    return int(rows[0] * geometry.width + cols[0]) if inside[0] else None


# ----------------------------------------------------------------------------------------------- frontiers


def frontier_mask(occupancy: np.ndarray) -> np.ndarray:
    """Known free cells (0 <= p < 50) with an unknown 4-neighbour."""
    free = (occupancy >= 0) & (occupancy < 50)
    unknown = np.pad(occupancy == -1, 1)
    near_unknown = unknown[:-2, 1:-1] | unknown[2:, 1:-1] | unknown[1:-1, :-2] | unknown[1:-1, 2:]
    return free & near_unknown


def unknown_region_area(occupancy: np.ndarray, resolution: float) -> np.ndarray:
    """Per cell: the area (m^2) of the unknown region (4-connected unknown cells) it belongs to; 0 on known cells."""
    regions, _ = scipy.ndimage.label(occupancy == -1)
    area = np.bincount(regions.reshape(-1)).astype(np.float64) * resolution ** 2
    area[0] = 0.0  # label 0: the known cells
    return area[regions]


def cells_around(grid: np.ndarray, geometry: GridGeometry, xy: tuple[float, float]) -> np.ndarray | None:
    """The 3x3 block of ``grid`` (on ``geometry``) centred on the cell of ``xy``, cut at the map's edge; None off
    the map."""
    cell = cell_of(geometry, xy)
    if cell is None:
        return None
    row, col = divmod(cell, geometry.width)
    return grid[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2]


def unknown_area_behind(occupancy: np.ndarray, geometry: GridGeometry, xy: tuple[float, float]) -> float:
    """The area (m^2) of the largest unknown region (4-connected unknown cells) that touches the 3x3 cells round
    ``xy``: what a frontier there can still show. A few cells mean a hole in known space (the inside of a pillar
    whose wall ring has a gap), which no view fills and no target hides in; 0 when ``xy`` is off the map or touches
    no unknown cell."""
    around = cells_around(unknown_region_area(occupancy, geometry.resolution), geometry, xy)
    return 0.0 if around is None else float(around.max())


def arena_cells(occupancy: np.ndarray, geometry: GridGeometry, size_m: float, margin_m: float) -> np.ndarray | None:
    """The map cells that can lie inside a rectangular arena of side ``size_m`` whose walls run along the map's
    dominant wall direction, given the free cells seen (nearly all inside it): along each wall axis, no farther
    than ``size_m`` + ``margin_m`` from the far side of the free space seen (its 1% and 99% quantiles, so that a
    strip of floor the BEV put beyond a wall does not narrow the other side). None (no bound) without a clear wall
    direction or free cells.

    Why: Memory-Maze's BEV leaves gaps in the outer walls, and beyond them lies the map's unknown round the maze;
    in the traced searches a fifth of the frontier steps drove there, and the robot never ran out of frontiers."""
    free = (occupancy >= 0) & (occupancy < 50)
    walls = np.where(occupancy >= 50, 100, 0)
    direction = wall_direction(walls, geometry.resolution, min_cells=50)
    if not free.any() or direction is None or direction.quality < 1.6:
        return None
    xs, ys = geometry.cell_centres()
    cos, sin = math.cos(direction.angle), math.sin(direction.angle)
    inside = np.ones(occupancy.shape, bool)
    for along in (xs * cos + ys * sin, -xs * sin + ys * cos):
        low, high = np.quantile(along[free], [0.01, 0.99])
        inside &= (along >= high - size_m - margin_m) & (along <= low + size_m + margin_m)
    return inside


@dataclass(frozen=True)
class Frontier:
    """A frontier cluster: the cell to drive to (flat index, nearest by path), its centre, size and score."""

    cell: int
    x: float
    y: float
    size: int
    score: float


def choose_frontier(occupancy: np.ndarray, field: PathField, config: PlannerConfig,
                    partners: tuple[Partner, ...] = (), excluded: tuple[tuple[float, float], ...] = (),
                    keep: tuple[float, float] | None = None, ordinary: np.ndarray | None = None) -> Frontier | None:
    """The frontier with the lowest path cost minus a bonus for its size plus a penalty for teammates near it.

    The cluster holding a cell within 0.75 m of ``keep`` (the frontier being driven to) gets
    ``frontier_keep_bonus`` off its score, so the robot does not swing between two similar frontiers.

    Clusters smaller than ``frontier_min_cells``, clusters with less than ``frontier_min_unknown_m2`` of unknown
    behind them (see :func:`unknown_area_behind`), cells nearer than ``frontier_min_distance`` to the robot, cells
    within a metre of ``excluded`` points (frontiers already reached that stayed frontiers) and, with an
    ``arena_size_m``, cells outside the arena (:func:`arena_cells`) are skipped.
    With ``ordinary`` (the frontier cells of the map before doubtful walls were opened), a cluster holding none
    of them costs ``doubtful_frontier_cost`` more: the map's own frontiers come first unless they are far.
    """
    geometry = field.geometry
    mask = frontier_mask(occupancy) & np.isfinite(field.distances)
    labels, count = scipy.ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return None
    xs, ys = geometry.cell_centres()
    start_row, start_col = divmod(field.start, geometry.width)
    start_x, start_y = xs[start_row, start_col], ys[start_row, start_col]
    usable = np.hypot(xs - start_x, ys - start_y) >= config.frontier_min_distance
    for ex, ey in excluded:
        usable &= np.hypot(xs - ex, ys - ey) > 1.0
    if config.arena_size_m > 0:
        arena = arena_cells(occupancy, geometry, config.arena_size_m, config.arena_margin_m)
        if arena is not None:
            usable &= arena
    best: Frontier | None = None
    sizes = np.bincount(labels.reshape(-1), minlength=count + 1)
    # clusters holding no frontier cell of the map before its doubtful walls were opened
    doubtful = set() if ordinary is None else set(range(1, count + 1)) - set(np.unique(labels[ordinary]).tolist())
    behind = (_unknown_behind_clusters(occupancy, labels, count, geometry.resolution)
              if config.frontier_min_unknown_m2 > 0 else None)  # off: no labelling of the unknown per plan
    for label in range(1, count + 1):
        if sizes[label] < config.frontier_min_cells:
            continue
        if behind is not None and behind[label] < config.frontier_min_unknown_m2:
            continue
        members = np.flatnonzero(((labels == label) & usable).reshape(-1))
        if not len(members):
            continue
        cell = int(members[np.argmin(field.distances.reshape(-1)[members])])
        x, y = float(xs.reshape(-1)[cell]), float(ys.reshape(-1)[cell])
        score = float(field.distances.reshape(-1)[cell]) - config.frontier_size_weight * sizes[label]
        if label in doubtful:
            score += config.doubtful_frontier_cost
        if keep is not None and np.hypot(xs.reshape(-1)[members] - keep[0],
                                         ys.reshape(-1)[members] - keep[1]).min() < 0.75:
            score -= config.frontier_keep_bonus
        score += sum(_partner_penalty(x, y, p, config) for p in partners)
        if best is None or score < best.score:
            best = Frontier(cell, x, y, int(sizes[label]), score)
    return best


def _unknown_behind_clusters(occupancy: np.ndarray, clusters: np.ndarray, count: int,
                             resolution: float) -> np.ndarray:
    """Per frontier cluster label (index 0 unused): the area (m^2) of the largest unknown region (4-connected)
    next to one of its cells."""
    padded = np.pad(unknown_region_area(occupancy, resolution), 1)
    beside = np.maximum.reduce([padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]])
    behind = np.zeros(count + 1)
    behind[1:] = scipy.ndimage.maximum(beside, clusters, np.arange(1, count + 1))
    return behind


def _partner_penalty(x: float, y: float, partner: Partner, config: PlannerConfig) -> float:
    """Penalty of a frontier at (x, y) for a teammate believed near it (Gaussian, widened by its sd)."""
    spread = config.frontier_partner_scale ** 2 + partner.sd ** 2
    return config.frontier_partner_weight * math.exp(-((x - partner.x) ** 2 + (y - partner.y) ** 2) / (2 * spread))


def park_spot(occupancy: np.ndarray, geometry: GridGeometry, place: tuple[float, float],
              config: PlannerConfig | None = None, near: float = 2.5, far: float = 8.0) -> tuple[float, float] | None:
    """Where a robot that has reached ``place`` should wait so that it blocks nobody else's way there: the most
    open known free cell (largest clearance from walls) whose path cost from ``place`` lies in [near, far]."""
    config = config or PlannerConfig()
    field = shortest_paths(cost_grid(occupancy, geometry, config), geometry, place)
    if field is None:
        return None
    free = (occupancy >= 0) & (occupancy < 50)
    candidates = free & (field.distances >= near) & (field.distances <= far)
    if not candidates.any():
        return None
    walls = occupancy >= 50
    clearance = scipy.ndimage.distance_transform_edt(~walls) if walls.any() else np.ones(occupancy.shape)
    score = np.where(candidates, clearance + 0.01 * field.distances, -np.inf)
    row, col = np.unravel_index(int(np.argmax(score)), score.shape)
    return (geometry.origin_x + (col + 0.5) * geometry.resolution,
            geometry.origin_y + (row + 0.5) * geometry.resolution)


# --------------------------------------------------------------------------------------------- following


def clearance_ahead(bev: BevGrid, half_width: float, limit: float = 3.0) -> float:
    """Free distance straight ahead (metres, at most ``limit``) in a corridor of ``half_width`` either side of the
    robot's heading, to the near edge of the first wall cell of the BEV; a wall only beside the robot (a robot
    touching a wall and driving along it) does not count."""
    xs, ys = bev.cell_centers()
    half = 0.5 * bev.resolution
    in_path = (bev.occupancy == 100) & (np.abs(ys) < half_width + half) & (xs > half)
    if not in_path.any():
        return limit
    return float(min(limit, max(0.0, xs[in_path].min() - half)))


class WallCells:
    """The wall cells of an occupancy grid, for straight-line clearance checks."""

    def __init__(self, occupancy: np.ndarray, geometry: GridGeometry) -> None:
        xs, ys = geometry.cell_centres()
        walls = np.asarray(occupancy) >= 50
        self.x, self.y = xs[walls], ys[walls]
        self.half = 0.5 * geometry.resolution

    def segment_clearance(self, start: tuple[float, float], end: tuple[float, float], skip: float = 0.05,
                          spacing: float = 0.05) -> float:
        """Smallest distance from points along start->end (from ``skip`` metres on) to any wall cell's square."""
        length = math.hypot(end[0] - start[0], end[1] - start[1])
        if length <= skip:
            return math.inf
        t = np.arange(skip, length + 1e-9, spacing) / length
        px = start[0] + t * (end[0] - start[0])
        py = start[1] + t * (end[1] - start[1])
        near = ((self.x > min(px.min(), px.max()) - 1.0) & (self.x < px.max() + 1.0)
                & (self.y > py.min() - 1.0) & (self.y < py.max() + 1.0))
        if not near.any():
            return math.inf
        dx = np.maximum(np.abs(px[:, None] - self.x[near][None, :]) - self.half, 0.0)
        dy = np.maximum(np.abs(py[:, None] - self.y[near][None, :]) - self.half, 0.0)
        return float(np.sqrt(dx * dx + dy * dy).min())


class PathFollower:
    """Pure pursuit along waypoints, with the BEV wall check of the random walker as a safety layer."""

    def __init__(self, config: PlannerConfig, walker: RandomWalker) -> None:
        self.config = config
        self.walker = walker
        self._index = 0

    def reset(self) -> None:
        """Start again from the path's first waypoint."""
        self._index = 0

    def command(self, pose: Pose2D, path: np.ndarray, bev: BevGrid | None,
                walls: WallCells | None = None) -> tuple[float, float]:
        """(v, omega) towards the lookahead point of ``path``; turns in place when it points far off.

        With ``walls`` (the known walls of the map) the lookahead point is the farthest one within ``lookahead``
        that the robot can drive to in a straight line without touching a wall, so corners are not cut."""
        config = self.config
        target = self._lookahead_point(pose, path, walls)
        bearing = math.atan2(target[1] - pose.y, target[0] - pose.x)
        error = wrap_angle(bearing - pose.theta)
        omega = float(np.clip(config.turn_gain * error, -config.max_angular_speed, config.max_angular_speed))
        if abs(error) > math.radians(config.turn_in_place_deg):
            return 0.0, omega
        remaining = math.hypot(path[-1][0] - pose.x, path[-1][1] - pose.y)
        v = config.max_linear_speed * math.cos(error) * min(1.0, remaining / config.lookahead + 0.3)
        return min(v, self._safe_speed(bev)), omega

    def _lookahead_point(self, pose: Pose2D, path: np.ndarray, walls: WallCells | None) -> np.ndarray:
        window = path[self._index:]
        distances = np.hypot(window[:, 0] - pose.x, window[:, 1] - pose.y)
        self._index += int(np.argmin(distances))
        distances = np.hypot(path[self._index:, 0] - pose.x, path[self._index:, 1] - pose.y)
        beyond = np.flatnonzero(distances >= self.config.lookahead)
        last = self._index + (int(beyond[0]) if len(beyond) else len(distances) - 1)
        if walls is None:
            return path[last]
        start = (pose.x, pose.y)
        needed = self.config.robot_radius + 0.01  # the simulator stops a disc at first contact
        for index in range(last, self._index, -1):
            if walls.segment_clearance(start, path[index]) >= needed:
                return path[index]
        return path[min(self._index + 1, len(path) - 1)]

    def _safe_speed(self, bev: BevGrid | None) -> float:
        """The speed the BEV allows straight ahead: zero below ``stop_distance``, full beyond ``slow_down``."""
        if bev is None:
            return self.config.max_linear_speed
        ahead = clearance_ahead(bev, self.config.robot_radius - self.config.safety_margin)
        config = self.config
        room = (ahead - config.stop_distance) / max(config.slow_down_distance - config.stop_distance, 1e-6)
        return config.max_linear_speed * float(np.clip(room, 0.0, 1.0))
