"""Frames of a recorded run for people without RViz (scene.py's Scene, drawn): the true maze and, per robot,
its map, belief, trails, partners, camera and the bits its team link used. ROS-free: it reads decoded messages by
their field names, so rosbags dataclasses and rclpy messages both work.

    scene = Scene(robots=["robot1", "robot2"])
    for topic, msg in decoded_messages:           # in time order
        scene.apply(topic, msg)
    rgb = render_frame(scene, View.around(scene_extent), title="run 42")

A robot is a namespace ``/robotK``; its topics are ``map`` and ``belief`` (nav_msgs/OccupancyGrid), ``pose`` and
``ground_truth/pose`` (geometry_msgs/PoseWithCovarianceStamped), ``partners`` (PartnerStateArray),
``camera/image_raw`` (sensor_msgs/Image) and ``comm/stats`` (CommStats). ``/ground_truth/map`` is the maze. What a
run did not publish is left out of the picture.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from spatial_memory_ros.evaluation.scene import CommStats, Grid, Partner, Pose, RobotState, Scene

MAP_PIXELS = 340            # the longer side of a panel's map area
HEADER, FOOTER, MARGIN, TITLE = 28, 52, 8, 34
FONT = cv2.FONT_HERSHEY_SIMPLEX
INK, PAPER, PANEL = (30, 30, 30), (250, 250, 250), (238, 238, 238)
UNKNOWN_GREY, WALL_DARK = 175, 55
PARTNER_SIGMAS = 2.0        # ellipses show this many standard deviations
CAMERA_INSET = 96
BELIEF_RAMP = (70, 200)     # the stretch of OpenCV's HOT colour map used for belief 0..100: dark red to yellow



# ---------------------------------------------------------------------------------------------- geometry

@dataclass(frozen=True)
class View:
    """A map-frame rectangle drawn at ``scale`` pixels per metre, +y up."""

    x0: float
    y0: float
    x1: float
    y1: float
    scale: float

    @classmethod
    def around(cls, extent: tuple[float, float, float, float], pixels: int = MAP_PIXELS) -> View:
        """The view of ``extent`` (x0, y0, x1, y1) whose longer side is ``pixels`` pixels."""
        x0, y0, x1, y1 = extent
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"an extent needs x1 > x0 and y1 > y0, got {extent}")
        return cls(x0, y0, x1, y1, pixels / max(x1 - x0, y1 - y0))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(round((self.x1 - self.x0) * self.scale)), int(round((self.y1 - self.y0) * self.scale))

    def pixels(self, points) -> np.ndarray:
        """Integer (col, row) pixels of map-frame (x, y) points, shape (N, 2)."""
        xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        cols = (xy[:, 0] - self.x0) * self.scale
        rows = (self.y1 - xy[:, 1]) * self.scale
        return np.round(np.stack([cols, rows], axis=1)).astype(np.int32)

    def sample(self, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
        """(values, inside) of ``grid`` at every pixel centre of the view, each (height, width)."""
        width, height = self.size
        xs = self.x0 + (np.arange(width) + 0.5) / self.scale
        ys = self.y1 - (np.arange(height) + 0.5) / self.scale
        cols = np.floor((xs - grid.origin_x) / grid.resolution).astype(np.int64)
        rows = np.floor((ys - grid.origin_y) / grid.resolution).astype(np.int64)
        inside = (((rows >= 0) & (rows < grid.values.shape[0]))[:, None]
                  & ((cols >= 0) & (cols < grid.values.shape[1]))[None, :])
        values = grid.values[np.clip(rows, 0, grid.values.shape[0] - 1)[:, None],
                             np.clip(cols, 0, grid.values.shape[1] - 1)[None, :]]
        return values, inside


def scene_extent(maze: Grid | None, grids=(), points=(), margin: float = 0.5) -> tuple[float, float, float, float]:
    """The box (x0, y0, x1, y1) to draw: the maze's if there is one, otherwise the union of ``grids`` and of
    ``points`` (x, y) padded by ``margin``; a 10 m box if there is nothing at all."""
    if maze is not None:
        return maze.extent
    boxes = [grid.extent for grid in grids] + [(x - margin, y - margin, x + margin, y + margin) for x, y in points]
    if not boxes:
        return (0.0, 0.0, 10.0, 10.0)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def frame_times(start: float, end: float, every: float) -> list[float]:
    """``start``, ``start + every``, ... up to ``end``, and ``end`` itself if that grid misses it."""
    if every <= 0:
        raise ValueError(f"the time between frames must be > 0 s, got {every}")
    count = int(math.floor((end - start) / every + 1e-6)) + 1 if end >= start else 1
    times = [start + k * every for k in range(count)]
    if end - times[-1] > 1e-6:
        times.append(end)
    return times


def snapshot_times(start: float, end: float, count: int) -> list[float]:
    """``count`` evenly spaced times inside (start, end), then ``end``."""
    return [start + (end - start) * (k + 1) / (count + 1) for k in range(max(count, 0))] + [max(start, end)]


# ---------------------------------------------------------------------------------------------- drawing

def render_frame(scene: Scene, view: View, title: str = "") -> np.ndarray:
    """The whole picture (RGB, even width and height): a title bar, the team panel, then one panel per robot."""
    panels = [team_panel(scene, view)] + [robot_panel(scene, name, view) for name in scene.robots]
    columns = min(len(panels), 4)
    rows = math.ceil(len(panels) / columns)
    panel_h, panel_w = panels[0].shape[:2]
    width = columns * (panel_w + MARGIN) + MARGIN
    height = TITLE + rows * (panel_h + MARGIN)
    frame = np.full((height + height % 2, width + width % 2, 3), PAPER, np.uint8)
    for index, panel in enumerate(panels):
        top = TITLE + (index // columns) * (panel_h + MARGIN)
        left = MARGIN + (index % columns) * (panel_w + MARGIN)
        frame[top:top + panel_h, left:left + panel_w] = panel
    _text(frame, f"{title}   sim t = {scene.time:6.1f} s" if title else f"sim t = {scene.time:6.1f} s",
          (MARGIN, 23), INK, 0.65, 2)
    return frame


def team_panel(scene: Scene, view: View) -> np.ndarray:
    """The true maze with every robot's true (solid) and estimated (dashed) trail and a colour legend."""
    panel, area = _blank_panel(view)
    if scene.maze is not None:
        _draw_grid(area, view, scene.maze, unknown=UNKNOWN_GREY)
    else:
        _text(area, "no /ground_truth/map in the bag", (8, 20), INK)
    for name, robot in scene.robots.items():
        _draw_trails(area, view, robot, scene.colour(name))
    _text(panel, "team: true maze", (8, 19), INK, 0.55, 2)
    x = 8
    for name in scene.robots:
        _text(panel, name, (x, HEADER + area.shape[0] + 20), scene.colour(name), 0.5, 2)
        x += 12 + cv2.getTextSize(name, FONT, 0.5, 2)[0][0]
    _draw_trail_legend(panel, HEADER + area.shape[0] + 42)
    return panel


def robot_panel(scene: Scene, name: str, view: View) -> np.ndarray:
    """One robot: its map, belief heat map, trails, partners (2-sigma ellipses), camera inset and bits used."""
    robot, colour = scene.robots[name], scene.colour(name)
    panel, area = _blank_panel(view)
    if robot.map is not None:
        _draw_grid(area, view, robot.map, unknown=UNKNOWN_GREY)
    else:
        area[:] = UNKNOWN_GREY
    if robot.belief is not None:
        _draw_heat(area, view, robot.belief)
    _draw_trails(area, view, robot, colour)
    for partner in robot.partners:
        _draw_partner(area, view, partner, scene.colour(partner.robot_id))
    if robot.camera is not None:
        _draw_inset(area, robot.camera, _far_corner(area, view, robot))
    _text(panel, name, (8, 19), colour, 0.6, 2)
    layers = [label for label, shown in (("map", robot.map is not None), ("belief", robot.belief is not None),
                                          ("partners", bool(robot.partners)), ("camera", robot.camera is not None))
              if shown]
    _text(panel, ", ".join(layers), (20 + cv2.getTextSize(name, FONT, 0.6, 2)[0][0], 19), INK, 0.45)
    _text(panel, _comm_line(robot.comm), (8, HEADER + area.shape[0] + 20), INK, 0.45)
    _draw_trail_legend(panel, HEADER + area.shape[0] + 42, belief=robot.belief is not None,
                       partners=bool(robot.partners))
    return panel


def _comm_line(comm: CommStats | None) -> str:
    if comm is None:
        return "team link: no comm/stats in the bag"
    return (f"bits/step {comm.bits_per_step:.2f} of {comm.budget_bits_per_step}   "
            f"packets sent {comm.packets_sent}, got {comm.packets_received}")


def _blank_panel(view: View) -> tuple[np.ndarray, np.ndarray]:
    """A panel and the map area inside it (a view into the panel)."""
    width, height = view.size
    panel = np.full((HEADER + height + FOOTER, width, 3), PANEL, np.uint8)
    area = panel[HEADER:HEADER + height]
    area[:] = 255
    return panel, area


def _draw_grid(area: np.ndarray, view: View, grid: Grid, unknown: int) -> None:
    """Occupancy shading: unknown (and outside the grid) grey, free white, walls dark by probability."""
    values, inside = view.sample(grid)
    shade = 255 - (np.clip(values, 0, 100).astype(np.int32) * (255 - WALL_DARK)) // 100
    shade = np.where(inside & (values >= 0), shade, unknown).astype(np.uint8)
    area[:] = shade[:, :, None]


def _draw_heat(area: np.ndarray, view: View, belief: Grid) -> None:
    """The belief (0..100, 100 = most likely) as a hot colour map blended in where it is above 2%."""
    values, inside = view.sample(belief)
    level = np.where(inside, np.clip(values, 0, 100), 0).astype(np.float32) / 100.0
    heat = belief_colours(level)
    alpha = np.where(level > 0.02, 0.45 + 0.5 * level, 0.0)[:, :, None]
    area[:] = (area * (1 - alpha) + heat * alpha).astype(np.uint8)


def belief_colours(level: np.ndarray) -> np.ndarray:
    """RGB colours of belief levels 0..1 (any shape): dark red for unlikely, yellow for the most likely place."""
    low, high = BELIEF_RAMP
    index = (low + (high - low) * np.clip(level, 0.0, 1.0)).astype(np.uint8)
    return cv2.applyColorMap(index.reshape(-1, 1), cv2.COLORMAP_HOT)[:, 0, ::-1].reshape(*np.shape(level), 3)


def _draw_trails(area: np.ndarray, view: View, robot: RobotState, colour) -> None:
    if len(robot.truth) > 1:
        cv2.polylines(area, [view.pixels(robot.truth).reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
    if len(robot.estimate) > 1:
        _dashed_polyline(area, view.pixels(robot.estimate), _darker(colour), 2)
    if robot.truth_pose is not None:
        _draw_pose(area, view, robot.truth_pose, colour, filled=True)
    if robot.estimate_pose is not None:
        _draw_pose(area, view, robot.estimate_pose, _darker(colour), filled=False)


def _draw_pose(area: np.ndarray, view: View, pose: Pose, colour, filled: bool) -> None:
    centre = tuple(int(v) for v in view.pixels([(pose.x, pose.y)])[0])
    tip = (centre[0] + int(round(11 * math.cos(pose.yaw))), centre[1] - int(round(11 * math.sin(pose.yaw))))
    cv2.circle(area, centre, 6, colour, -1 if filled else 2, cv2.LINE_AA)
    cv2.line(area, centre, tip, INK if filled else colour, 2, cv2.LINE_AA)


def _draw_partner(area: np.ndarray, view: View, partner: Partner, colour) -> None:
    """A teammate's believed position: a dot and a PARTNER_SIGMAS ellipse of its x-y covariance, and its name."""
    centre = tuple(int(v) for v in view.pixels([(partner.pose.x, partner.pose.y)])[0])
    eigenvalues, eigenvectors = np.linalg.eigh(0.5 * (partner.pose.covariance + partner.pose.covariance.T))
    axes = [max(2, int(round(PARTNER_SIGMAS * math.sqrt(max(v, 0.0)) * view.scale))) for v in eigenvalues]
    axes = [min(a, 4 * max(view.size)) for a in axes]
    angle = -math.degrees(math.atan2(eigenvectors[1, 0], eigenvectors[0, 0]))   # image rows grow downwards
    cv2.ellipse(area, centre, (axes[0], axes[1]), angle, 0, 360, colour, 2, cv2.LINE_AA)
    cv2.drawMarker(area, centre, colour, cv2.MARKER_CROSS, 10, 2, cv2.LINE_AA)
    _text(area, partner.robot_id, (centre[0] + 8, centre[1] - 8), colour, 0.42, 1)


def _far_corner(area: np.ndarray, view: View, robot: RobotState) -> tuple[bool, bool]:
    """(top, left): the corner of the map area farthest from where the robot is, to keep it out of sight."""
    pose = robot.truth_pose or robot.estimate_pose
    if pose is None:
        return True, False
    col, row = view.pixels([(pose.x, pose.y)])[0]
    return bool(row > area.shape[0] / 2), bool(col > area.shape[1] / 2)


def _draw_inset(area: np.ndarray, rgb: np.ndarray, corner: tuple[bool, bool] = (True, False)) -> None:
    """The camera image, enlarged, in a corner (top, left) of the map area with a frame and a label."""
    size = min(CAMERA_INSET, area.shape[0] // 3, area.shape[1] // 3)
    top_side, left_side = corner
    top = 4 if top_side else area.shape[0] - size - 20
    left = 4 if left_side else area.shape[1] - size - 4
    area[top:top + size, left:left + size] = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_NEAREST)
    cv2.rectangle(area, (left - 1, top - 1), (left + size, top + size), INK, 1)
    _text(area, "camera", (left, top + size + 13), INK, 0.4, 1, background=True)


def _draw_trail_legend(panel: np.ndarray, baseline: int, belief: bool = False, partners: bool = False) -> None:
    """Glyphs that say what the lines, rings and colours mean."""
    x = 8
    cv2.line(panel, (x, baseline - 4), (x + 22, baseline - 4), INK, 2, cv2.LINE_AA)
    x = _legend_label(panel, "true", x + 26, baseline)
    _dashed_polyline(panel, np.array([[x, baseline - 4], [x + 22, baseline - 4]]), INK, 2, dash=5)
    x = _legend_label(panel, "estimate", x + 26, baseline)
    if partners:
        cv2.ellipse(panel, (x + 9, baseline - 4), (9, 5), 0, 0, 360, INK, 1, cv2.LINE_AA)
        x = _legend_label(panel, f"partner {PARTNER_SIGMAS:g} sd", x + 22, baseline)
    if belief:
        panel[baseline - 9:baseline, x:x + 22] = belief_colours(np.linspace(0.0, 1.0, 22))[None, :, :]
        _legend_label(panel, "belief", x + 26, baseline)


def _legend_label(panel: np.ndarray, text: str, x: int, baseline: int) -> int:
    _text(panel, text, (x, baseline), INK, 0.42)
    return x + cv2.getTextSize(text, FONT, 0.42, 1)[0][0] + 12


def _dashed_polyline(image: np.ndarray, points: np.ndarray, colour, thickness: int, dash: float = 7.0) -> None:
    """A polyline drawn as dashes of ``dash`` pixels (OpenCV has no dashed lines)."""
    points = np.asarray(points, np.float64).reshape(-1, 2)
    if len(points) < 2:
        return
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    if arc[-1] <= 0:
        return
    along = np.union1d(np.arange(0.0, arc[-1], dash / 3), arc)      # points along every dash, and every vertex
    dense = np.stack([np.interp(along, arc, points[:, 0]), np.interp(along, arc, points[:, 1])], axis=1)
    dense = np.round(dense).astype(np.int32)
    dash_index = np.floor(along / dash).astype(np.int64)
    breaks = np.flatnonzero(np.diff(dash_index)) + 1
    pieces = [dense[start:stop + 1] for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(dense)])
              if dash_index[start] % 2 == 0]
    pieces = [piece.reshape(-1, 1, 2) for piece in pieces if len(piece) > 1]
    if pieces:
        cv2.polylines(image, pieces, False, colour, thickness, cv2.LINE_AA)


def _darker(colour) -> tuple[int, int, int]:
    return tuple(int(c * 0.6) for c in colour)


def _text(image: np.ndarray, text: str, origin: tuple[int, int], colour, scale: float = 0.45, thickness: int = 1,
          background: bool = False) -> None:
    if background:
        (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
        cv2.rectangle(image, (origin[0] - 2, origin[1] - h - 2), (origin[0] + w + 2, origin[1] + base), PAPER, -1)
    cv2.putText(image, text, origin, FONT, scale, colour, thickness, cv2.LINE_AA)
