"""Recognisable objects as landmarks: pose fixes from seeing again an object the robot placed earlier (no ROS).

Odometry drifts, mostly in heading, and a map the robot draws from its own predicted BEVs is often too rough to
hold the pose (Memory-Maze: predicted walls with IoU about 0.4 leave the BEV source untrusted, and dead reckoning
ends 3-5 m off in a 500 s episode). The objects a BEV labels (coloured targets) are sparse but distinctive and
stay put, so they serve as landmarks, as in landmark SLAM:

* the first time an object of a class is seen (nearer than ``landmark_max_range``, at least
  ``landmark_min_cells`` cells), its map position is stored with the uncertainty of the pose it was seen from;
* seen again within ``landmark_gate`` of where it is stored, and stored more precisely than the robot now knows
  its own position, the sighting says where the robot must be: a position fix (:class:`Fix`) for the belief;
* two fixes some metres apart also give the heading: the way dead reckoning says the robot went between them,
  against the way the fixes say it went, rotated by the heading error (``landmark_min_baseline`` metres apart at
  least, so the angle is well defined);
* a sighting from a pose better known than the landmark refines the landmark (inverse-variance average), so a
  landmark first seen late, from a poor pose, gets better once the robot passes with a good one.

A class seen farther than the gate from every stored landmark of that class is a new landmark (a second object of
the same colour, or a misclassified one: it fixes nothing until seen there again).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.ndimage

from spatial_memory_ros.localization.tem_config import TemConfig

MAX_LANDMARKS = 256  # a robot's store; each new one is compared with those of its class on every sighting


@dataclass(frozen=True)
class Sighting:
    """An object in a BEV: its class (1-based, as BevGrid.object_class) and centre in the robot frame (m)."""

    class_id: int
    x: float
    y: float


@dataclass
class Landmark:
    """An object's stored map position and its standard deviation (m)."""

    class_id: int
    x: float
    y: float
    sd: float
    sightings: int = 1
    used_at: float = 0.0  # the odometer (m) when it was placed or last gave a fix


@dataclass(frozen=True)
class Fix:
    """Where a sighting of a stored landmark puts the robot: position (m) with its standard deviation, and a
    heading correction (rad, added to the heading) with its standard deviation (inf: none)."""

    x: float
    y: float
    sd: float
    heading_change: float = 0.0
    heading_sd: float = math.inf


def object_sightings(object_class: np.ndarray, resolution: float, origin: tuple[float, float],
                     min_cells: int, max_range: float) -> list[Sighting]:
    """The objects of a BEV's ``object_class`` grid (robot frame): one per connected blob of a class with at least
    ``min_cells`` cells whose centre lies within ``max_range`` metres."""
    classes = np.asarray(object_class)
    found: list[Sighting] = []
    for class_id in np.unique(classes[classes > 0]):
        blobs, count = scipy.ndimage.label(classes == class_id, structure=np.ones((3, 3)))
        for blob in range(1, count + 1):
            rows, cols = np.nonzero(blobs == blob)
            if len(rows) < min_cells:
                continue
            x = origin[0] + (float(cols.mean()) + 0.5) * resolution
            y = origin[1] + (float(rows.mean()) + 0.5) * resolution
            if math.hypot(x, y) <= max_range:
                found.append(Sighting(int(class_id), x, y))
    return found


class LandmarkMap:
    """The landmarks one robot has placed, and the fixes its sightings give (see the module docstring)."""

    def __init__(self, config: TemConfig) -> None:
        self.config = config
        self.landmarks: list[Landmark] = []
        self.fixes = 0
        self.heading_fixes = 0
        self._last_fix: tuple[float, float] | None = None  # the estimate just after the last position fix
        self._path = 0.0  # metres driven since then (or since the start)
        self.odometer = 0.0  # metres driven in all
        self.rejected = 0

    def moved(self, distance: float) -> None:
        """The robot drove ``distance`` metres (the localizer's motion update)."""
        self._path += abs(distance)
        self.odometer += abs(distance)

    def observe(self, sightings: list[Sighting], pose: tuple[float, float, float], pose_sd: float,
                heading_sd: float = 0.0) -> Fix | None:
        """Store or refine landmarks from ``sightings`` seen at ``pose`` (x, y, theta; position sd ``pose_sd``,
        heading sd ``heading_sd``); the fix they give (the most precise one), or None."""
        x, y, theta = pose
        pose_sd = self.position_sd(pose, pose_sd, heading_sd)
        cos_t, sin_t = math.cos(theta), math.sin(theta)
        best: Fix | None = None
        for sighting in sightings:
            seen_sd = self.config.landmark_sighting_sd * (1.0 + math.hypot(sighting.x, sighting.y) / 4.0)
            mx = x + cos_t * sighting.x - sin_t * sighting.y
            my = y + sin_t * sighting.x + cos_t * sighting.y
            landmark = self._nearest(sighting.class_id, mx, my)
            if landmark is None:
                self._add(Landmark(sighting.class_id, mx, my, math.hypot(pose_sd, seen_sd), used_at=self.odometer))
                continue
            landmark.sightings += 1
            fix = Fix(x + landmark.x - mx, y + landmark.y - my, math.hypot(landmark.sd, seen_sd))
            if not self._usable(landmark, fix, (x, y), pose_sd):
                continue
            landmark.used_at = self.odometer
            if landmark.sd < pose_sd:
                if best is None or fix.sd < best.sd:
                    best = fix
            else:
                _refine(landmark, mx, my, math.hypot(pose_sd, seen_sd))
        if best is not None:
            best = self._with_heading(best, (x, y))
            self.fixes += 1
        return best

    def position_sd(self, pose: tuple[float, float, float], pose_sd: float, heading_sd: float) -> float:
        """The position sd with the heading's share: a belief's position spread grows step by step, but a heading
        error turns everything driven since the last fix (or the start), which that spread leaves out; the path
        length bounds that share."""
        if self._last_fix is None:
            self._last_fix = (pose[0], pose[1])
        return math.hypot(pose_sd, self._path * heading_sd)

    def fixed(self, x: float, y: float) -> None:
        """The localizer applied a fix: its estimate is now (x, y); the next trip is measured from here."""
        self._last_fix = (x, y)
        self._path = 0.0

    def _usable(self, landmark: Landmark, fix: Fix, estimate: tuple[float, float], pose_sd: float) -> bool:
        """Whether a sighting may fix the pose or refine the landmark: the robot drove ``landmark_min_travel``
        since the landmark was placed or last used (successive views of one object are not independent), and the
        two disagree by less than ``landmark_max_sigmas`` of their combined uncertainty. An "object" drawn at a
        fixed place in the view (a pattern of the camera, not of the world) would ask for a correction as large
        as the distance driven since, which the second condition refuses, so it cannot hold the robot back."""
        if self.odometer - landmark.used_at < self.config.landmark_min_travel:
            return False
        innovation = math.hypot(fix.x - estimate[0], fix.y - estimate[1])
        if innovation > self.config.landmark_max_sigmas * math.hypot(pose_sd, fix.sd):
            self.rejected += 1
            return False
        return True

    def _add(self, landmark: Landmark) -> None:
        """Store a new landmark; past MAX_LANDMARKS, the oldest one seen only once (a misclassified object, most
        likely) makes room, or else the oldest."""
        if len(self.landmarks) >= MAX_LANDMARKS:
            once = [index for index, m in enumerate(self.landmarks) if m.sightings == 1]
            del self.landmarks[once[0] if once else 0]
        self.landmarks.append(landmark)

    def _nearest(self, class_id: int, x: float, y: float) -> Landmark | None:
        candidates = [(math.hypot(m.x - x, m.y - y), index) for index, m in enumerate(self.landmarks)
                      if m.class_id == class_id]
        if not candidates:
            return None
        distance, index = min(candidates)
        return self.landmarks[index] if distance <= self.config.landmark_gate else None

    def _with_heading(self, fix: Fix, estimate: tuple[float, float]) -> Fix:
        """Add the heading correction of the trip since the last fix, when it was long enough."""
        if self._last_fix is None:
            return fix
        ax, ay = self._last_fix
        reckoned = (estimate[0] - ax, estimate[1] - ay)  # the trip as the estimate (odometry, mostly) has it
        fixed = (fix.x - ax, fix.y - ay)
        length = math.hypot(*fixed)
        if length < self.config.landmark_min_baseline or math.hypot(*reckoned) < 0.5 * length:
            return fix
        change = math.atan2(reckoned[0] * fixed[1] - reckoned[1] * fixed[0],
                            reckoned[0] * fixed[0] + reckoned[1] * fixed[1])
        self.heading_fixes += 1
        return Fix(fix.x, fix.y, fix.sd, change, math.sqrt(2.0) * fix.sd / length)


def _refine(landmark: Landmark, x: float, y: float, sd: float) -> None:
    """Inverse-variance average of the landmark and a new sighting of it."""
    w_old, w_new = 1.0 / landmark.sd ** 2, 1.0 / sd ** 2
    landmark.x = (w_old * landmark.x + w_new * x) / (w_old + w_new)
    landmark.y = (w_old * landmark.y + w_new * y) / (w_old + w_new)
    landmark.sd = math.sqrt(1.0 / (w_old + w_new))
