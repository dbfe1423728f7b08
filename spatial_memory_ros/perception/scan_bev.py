"""A LaserScan -> an egocentric BEV grid, geometrically (numpy only, no ROS).

The grid is the one the memory and the localizer consume (types.BevGrid: robot frame, x forward, y left; -1 unseen,
0 free, 100 wall); by default the simulator's (``DEFAULT_BEV``: 0.25 m cells, 32 x 32, from the robot forwards and
centred sideways).

Each cell is judged by its centre, seen from the sensor: its bearing falls between two rays, whose returns give
its ranges (interpolated between them when both see one surface, else the nearer ray's); its distance is compared
with them. A cell in front of the return is free; a cell just behind it (within ``wall_depth``), separated from a
free neighbour by the observed surface (the returns and the segments that join neighbouring returns on one
surface; this finds walls seen at a grazing angle and leaves shadows behind edges unseen), or holding a point of
that surface is wall; a cell farther is unseen
(occluded), as is any cell outside the scan's angles or beyond range_max. Judging by the centre puts a wall
surface that cuts a cell where the layout puts it: the cell is wall when its centre lies behind the surface,
free when in front, as the simulator's BEV oracle decides.

Returns follow REP-117: a finite return in [range_min, range_max] is a hit; +inf means nothing within range (free
up to range_max, no wall); NaN, -inf, a return below range_min or a finite one above range_max carry no
information (that ray's cells stay unseen). :func:`scan_to_bev` also reports how many returns of each kind it
discarded, so a node can count them.

The same polar core (:func:`polar_to_bev`) turns a depth image's per-bearing first obstacle into a BEV
(perception/depth_bev.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spatial_memory_ros.types import BevGrid, GridGeometry, Pose2D

DEFAULT_BEV = GridGeometry(0.25, 32, 32, 0.0, -4.0)
"""The simulator's BEV geometry (sim/world.py WorldConfig: bev_resolution, bev_width, bev_height, bev_origin)."""
FREE, WALL, UNSEEN = 0, 100, -1
SURFACE_GAP = 3
"""Neighbouring returns at most this many cells apart are joined into one surface."""


@dataclass(frozen=True)
class LaserScan:
    """What sensor_msgs/LaserScan carries that a BEV needs: ``ranges`` (metres) of rays at
    ``angle_min + k * angle_increment`` (radians, counter-clockwise in the scan's frame), valid in
    [``range_min``, ``range_max``]."""

    ranges: np.ndarray
    angle_min: float
    angle_increment: float
    range_min: float
    range_max: float

    @property
    def angles(self) -> np.ndarray:
        """Each ray's angle in the scan's frame."""
        return self.angle_min + self.angle_increment * np.arange(len(self.ranges))


@dataclass
class ScanReport:
    """How many returns of each REP-117 kind a scan had."""

    hits: int = 0
    no_return: int = 0      # +inf: nothing within range_max
    invalid: int = 0        # NaN or -inf
    below_min: int = 0
    above_max: int = 0      # finite but beyond range_max

    @property
    def discarded(self) -> int:
        """Returns that carried no information."""
        return self.invalid + self.below_min + self.above_max


def check_scan(scan: LaserScan) -> None:
    """ValueError if the scan's description cannot be used (not the individual returns: those are judged one by
    one): a non-finite or non-positive angle increment, non-finite angle_min, range limits that are not
    0 <= range_min < range_max < inf, no rays, or rays covering more than a full turn."""
    ranges = np.asarray(scan.ranges)
    if ranges.ndim != 1 or ranges.size == 0:
        raise ValueError(f"the scan has no rays (ranges of shape {ranges.shape})")
    if not (math.isfinite(scan.angle_min) and math.isfinite(scan.angle_increment)) or scan.angle_increment == 0:
        raise ValueError(f"angle_min {scan.angle_min} and angle_increment {scan.angle_increment} must be finite and "
                         f"the increment non-zero")
    if abs(scan.angle_increment) * (ranges.size - 1) > 2 * math.pi + 1e-6:
        raise ValueError(f"{ranges.size} rays of {scan.angle_increment} rad cover more than a full turn")
    if not (math.isfinite(scan.range_min) and math.isfinite(scan.range_max)
            and 0.0 <= scan.range_min < scan.range_max):
        raise ValueError(f"range_min {scan.range_min} and range_max {scan.range_max} must be finite with "
                         f"0 <= range_min < range_max")


def classify_returns(scan: LaserScan) -> tuple[np.ndarray, np.ndarray, ScanReport]:
    """Per ray: (free_range, wall_range, report). free_range is how far the ray shows free space (NaN: no
    information), wall_range where it met something (NaN: nothing)."""
    ranges = np.asarray(scan.ranges, dtype=np.float64)
    hit = np.isfinite(ranges) & (ranges >= scan.range_min) & (ranges <= scan.range_max)
    no_return = np.isposinf(ranges)
    report = ScanReport(hits=int(hit.sum()), no_return=int(no_return.sum()),
                        invalid=int((np.isnan(ranges) | np.isneginf(ranges)).sum()),
                        below_min=int((np.isfinite(ranges) & (ranges < scan.range_min)).sum()),
                        above_max=int((np.isfinite(ranges) & (ranges > scan.range_max)).sum()))
    free_range = np.where(hit, ranges, np.where(no_return, scan.range_max, np.nan))
    wall_range = np.where(hit, ranges, np.nan)
    return free_range, wall_range, report


def scan_to_bev(scan: LaserScan, mount: Pose2D = Pose2D(0.0, 0.0, 0.0), geometry: GridGeometry = DEFAULT_BEV,
                wall_depth: float | None = None) -> tuple[BevGrid, ScanReport]:
    """The BEV a scan shows, and how many of its returns were hits, no-returns or discarded.

    ``mount``: the scan frame's pose on the robot (x forward, y left, yaw, as TF's base_link -> laser);
    ``wall_depth``: how far behind a return cells count as wall (default 0.75 cells, as the oracle).
    ValueError (check_scan) if the scan's description is unusable.
    """
    check_scan(scan)
    free_range, wall_range, report = classify_returns(scan)
    bev = polar_to_bev(geometry, mount, scan.angle_min, scan.angle_increment, free_range, wall_range,
                       scan.range_max, wall_depth)
    return bev, report


def polar_to_bev(geometry: GridGeometry, sensor: Pose2D, angle_min: float, angle_increment: float,
                 free_range: np.ndarray, wall_range: np.ndarray, max_range: float,
                 wall_depth: float | None = None, wrap: bool | None = None) -> BevGrid:
    """A BEV from ranges along evenly spaced bearings seen from ``sensor`` (its pose on the robot): bearing k is
    ``angle_min + k * angle_increment`` in the sensor's frame; ``free_range[k]`` how far it shows free space,
    ``wall_range[k]`` where it meets an obstacle (NaN for neither). ``wrap``: whether the bearings close a full
    turn (default: when they span at least 2 pi). See :func:`bearings_to_bev`."""
    count = np.asarray(free_range).size
    if wrap is None:
        wrap = abs(angle_increment) * count >= 2 * math.pi - 1e-6
    bearings = angle_min + angle_increment * np.arange(count)
    return bearings_to_bev(geometry, sensor, bearings, free_range, wall_range, max_range, wall_depth, wrap)


def bearings_to_bev(geometry: GridGeometry, sensor: Pose2D, bearings: np.ndarray, free_range: np.ndarray,
                    wall_range: np.ndarray, max_range: float, wall_depth: float | None = None,
                    wrap: bool = False, max_spacing: float | None = None,
                    also_free: np.ndarray | None = None) -> BevGrid:
    """A BEV from ranges along ``bearings`` (radians in the sensor's frame, any order, spanning less than a turn
    unless ``wrap``) seen from ``sensor``: ``free_range`` how far each shows free space, ``wall_range`` where it
    meets an obstacle (NaN for neither).

    A cell's centre falls between two neighbouring bearings. Where both show the same surface (their end points
    less than SURFACE_GAP cells apart) its ranges are interpolated between them (linearly in 1 / range, exact
    for a flat wall in the limit), otherwise the nearer bearing's are taken. The centre is free in front of the
    free range; wall just behind the wall range (``wall_depth``, default 0.75 cells), or when the observed
    surface (the returns joined into segments) separates it from a free neighbour (a wall seen at a grazing
    angle), or when it holds a point of that surface; unseen otherwise, and beyond ``max_range`` or outside the bearings (half a spacing
    beyond the outermost; with ``max_spacing``, also more than half of it from both neighbouring bearings).
    ``also_free``: cells other evidence shows free (a depth camera's rays), unless the rules above make them
    wall."""
    bearings = np.asarray(bearings, dtype=np.float64)
    order = np.argsort(bearings)
    b = bearings[order]
    free_r = np.asarray(free_range, dtype=np.float64)[order]
    wall_r = np.asarray(wall_range, dtype=np.float64)[order]
    depth = 0.75 * geometry.resolution if wall_depth is None else float(wall_depth)
    if wrap:
        b = np.concatenate([b[-1:] - 2 * math.pi, b, b[:1] + 2 * math.pi])
        free_r = np.concatenate([free_r[-1:], free_r, free_r[:1]])
        wall_r = np.concatenate([wall_r[-1:], wall_r, wall_r[:1]])
    xs, ys = geometry.cell_centres()
    dx, dy = xs - sensor.x, ys - sensor.y
    distance = np.hypot(dx, dy)
    shape = distance.shape
    if b.size == 1:
        spacing_low = spacing_high = 1e-3
    else:
        spacing_low, spacing_high = b[1] - b[0], b[-1] - b[-2]
    first = b[0] - 0.5 * spacing_low
    theta = first + np.mod(np.arctan2(dy, dx) - sensor.theta - first, 2 * math.pi)
    inside = (theta <= b[-1] + 0.5 * spacing_high) & (distance <= max_range)
    upper = np.clip(np.searchsorted(b, theta), 0, b.size - 1)
    lower = np.clip(upper - 1, 0, b.size - 1)
    span = b[upper] - b[lower]
    t = np.where(span > 0, np.clip((theta - b[lower]) / np.where(span > 0, span, 1.0), 0.0, 1.0), 0.0)
    nearest = np.where(t < 0.5, lower, upper)
    if max_spacing is not None:
        inside &= np.abs(theta - b[nearest]) <= 0.5 * max_spacing
    cell_free = _interpolated(free_r, b, lower, upper, t, nearest, sensor, geometry)
    cell_wall = _interpolated(wall_r, b, lower, upper, t, nearest, sensor, geometry)
    occupancy = np.full(shape, UNSEEN, dtype=np.int8)
    with np.errstate(invalid="ignore"):
        free = inside & (distance <= cell_free)
        seen_free = free if also_free is None else free | (also_free & (distance <= max_range))
        behind = inside & ~free & (distance > cell_wall)
        wall = behind & (distance <= cell_wall + depth)
        segments = _surface_segments(geometry, sensor, b, wall_r, max_range)
        wall |= behind & _across_surface(geometry, segments, behind & _next_to(seen_free), seen_free)
        wall |= inside & ~free & _hit_cells(geometry, sensor, b, wall_r, max_range, segments)
    occupancy[seen_free] = FREE
    occupancy[wall] = WALL
    return BevGrid(occupancy, np.zeros(shape, dtype=np.uint8), geometry.resolution, geometry.origin_x,
                   geometry.origin_y, ())


def _interpolated(ranges: np.ndarray, bearings: np.ndarray, lower: np.ndarray, upper: np.ndarray, t: np.ndarray,
                  nearest: np.ndarray, sensor: Pose2D, geometry: GridGeometry) -> np.ndarray:
    """Each cell's range between its two neighbouring bearings: interpolated in 1 / range where both see one
    surface, else the nearest bearing's."""
    r0, r1 = ranges[lower], ranges[upper]
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.sqrt(r0 ** 2 + r1 ** 2 - 2 * r0 * r1 * np.cos(bearings[upper] - bearings[lower]))
        joined = np.isfinite(r0) & np.isfinite(r1) & (r0 > 0) & (r1 > 0) & (gap <= SURFACE_GAP * geometry.resolution)
        between = 1.0 / ((1 - t) / r0 + t / r1)
    return np.where(joined, between, ranges[nearest])


def _surface_segments(geometry: GridGeometry, sensor: Pose2D, bearings: np.ndarray, wall_range: np.ndarray,
                      max_range: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The observed surface as line segments (x0, y0, x1, y1) in the robot frame: between neighbouring returns less
    than SURFACE_GAP cells apart (one surface; a wider gap is a jump at an edge, left open)."""
    hit = np.isfinite(wall_range) & (wall_range <= max_range + geometry.resolution)
    angle = sensor.theta + bearings
    reach = np.where(hit, wall_range, np.nan)
    x, y = sensor.x + reach * np.cos(angle), sensor.y + reach * np.sin(angle)
    with np.errstate(invalid="ignore"):
        join = np.flatnonzero(hit[:-1] & hit[1:] & (np.hypot(np.diff(x), np.diff(y)) <= SURFACE_GAP
                                                     * geometry.resolution))
    return x[join], y[join], x[join + 1], y[join + 1]


def _across_surface(geometry: GridGeometry, segments: tuple, candidates: np.ndarray,
                    free: np.ndarray) -> np.ndarray:
    """The candidate cells that the observed surface separates from a free 4-neighbour (the segment between the
    two centres crosses it): the wall along the free space, however grazing the rays that saw it. A cell in a
    shadow borders free space across a ray past an edge, not across a surface, and stays unseen."""
    ax, ay, bx, by = (v[None, :] for v in segments)
    result = np.zeros_like(candidates)
    if ax.size == 0 or not candidates.any():
        return result
    xs, ys = geometry.cell_centres()
    rows, cols = np.nonzero(candidates)

    def side(ox, oy, ux, uy, vx, vy):
        return (ux - ox) * (vy - oy) - (uy - oy) * (vx - ox)

    for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        nr, nc = rows + dr, cols + dc
        ok = (nr >= 0) & (nr < geometry.height) & (nc >= 0) & (nc < geometry.width)
        ok[ok] &= free[nr[ok], nc[ok]]
        if not ok.any():
            continue
        r, c = rows[ok], cols[ok]
        px, py = xs[r, c][:, None], ys[r, c][:, None]
        qx, qy = px + dc * geometry.resolution, py + dr * geometry.resolution
        crosses = ((side(ax, ay, bx, by, px, py) * side(ax, ay, bx, by, qx, qy) <= 0)
                   & (side(px, py, qx, qy, ax, ay) * side(px, py, qx, qy, bx, by) <= 0)).any(axis=1)
        result[r[crosses], c[crosses]] = True
    return result


def _hit_cells(geometry: GridGeometry, sensor: Pose2D, bearings: np.ndarray, wall_range: np.ndarray,
               max_range: float, segments: tuple) -> np.ndarray:
    """Cells that hold a point of the observed surface: each return (just behind it) and the points along the
    surface's segments."""
    hit = np.isfinite(wall_range) & (wall_range <= max_range)
    angle = sensor.theta + bearings[hit]
    reach = wall_range[hit] + 1e-3
    x0, y0, x1, y1 = segments
    fractions = np.linspace(0.0, 1.0, 2 * SURFACE_GAP + 1)[1:-1, None]
    x = np.concatenate([sensor.x + reach * np.cos(angle), (x0 + fractions * (x1 - x0)).reshape(-1)])
    y = np.concatenate([sensor.y + reach * np.sin(angle), (y0 + fractions * (y1 - y0)).reshape(-1)])
    rows, cols, inside = geometry.cell_indices(x, y)
    marked = np.zeros((geometry.height, geometry.width), dtype=bool)
    marked[rows[inside], cols[inside]] = True
    return marked


def _next_to(mask: np.ndarray) -> np.ndarray:
    """Cells 4-adjacent to a cell set in ``mask``."""
    near = np.zeros_like(mask)
    near[1:] |= mask[:-1]
    near[:-1] |= mask[1:]
    near[:, 1:] |= mask[:, :-1]
    near[:, :-1] |= mask[:, 1:]
    return near


def field_of_view(geometry: GridGeometry, sensor: Pose2D, angle_min: float, angle_max: float,
                  max_range: float) -> np.ndarray:
    """(height, width) bool: the cells whose centres a sensor at ``sensor`` covers (bearings from angle_min to
    angle_max in its frame, up to max_range): where a BEV from it can say anything."""
    xs, ys = geometry.cell_centres()
    dx, dy = xs - sensor.x, ys - sensor.y
    span = angle_max - angle_min
    offset = np.mod(np.arctan2(dy, dx) - sensor.theta - angle_min, 2 * math.pi)
    return ((offset <= span) | (span >= 2 * math.pi - 1e-9)) & (np.hypot(dx, dy) <= max_range)
