"""Seed 002's TEM2d belief localizer, grown into a map-matching histogram filter (numpy only, no ROS).

The location belief is a probability grid over the map. Each odometry step moves it by a translation kernel built
from the step (bilinear weights for the sub-cell part, a Gaussian blur for motion noise), as in seed 002; mass in
known walls is removed, the grid is sharpened and normalised. Each BEV corrects it: the BEV's wall and free cells are
scored against the memory's map at every candidate cell and at a few candidate headings (a likelihood field that
tolerates small offsets), and the belief is multiplied by that likelihood. This is what lets revisits pull drift
back, which the seed's affinity blend of memory samples could not do (its conclusion: memory alone cannot localise
without revisits and a map that does not share the error).

The map is an ``OccupancyMap``: int8 values as in nav_msgs/OccupancyGrid (-1 unknown, 0..100 occupancy), a
resolution and the origin of cell (0, 0). Unknown cells are neutral: on a partially-known map the BEV corrects only
where it overlaps known cells, and elsewhere the belief is carried by odometry alone (it widens, never jumps).
``set_map`` can be called at any time (the spatial memory's map grows online); the belief grid grows with it.

A belief that has nowhere to go (every candidate contradicts the BEV, or all mass ended in walls) is re-initialised
around the last good pose and the result carries a message saying so. Bad input (NaN odometry, time going backwards
or jumping, a BEV of the wrong size or values) raises ValueError and leaves the belief unchanged.
"""
from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from spatial_memory_ros.localization.belief import BeliefGrid, apply_translation
from spatial_memory_ros.localization.landmarks import Fix, LandmarkMap, object_sightings
from spatial_memory_ros.localization.map_likelihood import BevPoints, MapLikelihood, OccupancyMap, bev_points
from spatial_memory_ros.localization.place_check import PlaceCheck
from spatial_memory_ros.localization.tem_config import TemConfig
from spatial_memory_ros.localization.wall_directions import RectilinearHeading
from spatial_memory_ros.types import wrap_angle

LOG = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- results


@dataclass
class PoseEstimate:
    """The belief's mean pose and its 3x3 covariance over (x, y, theta)."""

    x: float
    y: float
    theta: float
    covariance: np.ndarray

    def covariance_6x6(self) -> list[float]:
        """Row-major 6x6 covariance over (x, y, z, roll, pitch, yaw), as geometry_msgs/PoseWithCovariance wants.

        z, roll and pitch are fixed (variance 0).
        """
        full = np.zeros((6, 6))
        index = [0, 1, 5]
        full[np.ix_(index, index)] = self.covariance
        return full.reshape(-1).tolist()


@dataclass
class CorrectionResult:
    """What one BEV correction did: seed 002's loss terms, the fit, and a message if the belief was reset."""

    applied: bool
    sensory_loss: float = 0.0
    transition_loss: float = 0.0
    memory_loss: float = 0.0
    fit: float = 0.0
    heading_shift: float = 0.0
    candidates: int = 0
    message: str | None = None
    rejected: str | None = None   # why a BEV was not applied by the plausibility gate (None: not rejected)

    @property
    def loss(self) -> float:
        """Seed 002's total: sensory prediction error + distance to the moved belief + distance to the memory's."""
        return self.sensory_loss + self.transition_loss + self.memory_loss


# ------------------------------------------------------------------------------------------ localizer


class TemLocalizer:
    """A belief grid over the map moved by odometry and corrected by matching BEVs against the map.

    Typical use (one per robot)::

        tem = TemLocalizer(TemConfig(), occupancy=maze_occupancy(maze), initial_pose=(x, y, theta))
        tem.predict(v, omega, dt)          # each odometry message
        result = tem.correct(bev)          # each BEV; result.message says if the belief was re-initialised
        pose = tem.estimate()              # x, y, theta, 3x3 covariance
    """

    def __init__(self, config: TemConfig | None = None, occupancy: OccupancyMap | None = None,
                 initial_pose: tuple[float, float, float] = (0.0, 0.0, 0.0), initial_sigma: float = 0.25,
                 initial_heading_sigma: float = math.radians(2.0),
                 extent: tuple[float, float, float, float] | None = None) -> None:
        """Belief grid over the map's bounds plus ``margin`` (or over ``extent`` = (x0, y0, x1, y1) if no map)."""
        self.config = config or TemConfig()
        self._likelihood: MapLikelihood | None = None
        self._last_stamp: float | None = None
        self._version = 0
        self._cached_estimate: tuple | None = None
        self.events: list[str] = []
        self._plausible: deque[bool] = deque(maxlen=self.config.trust_window)
        self.places = PlaceCheck()  # the source's BEVs must agree with its own earlier ones in the world frame
        self.landmarks = LandmarkMap(self.config)  # objects seen before fix the pose (landmarks.py)
        self.walls = RectilinearHeading(self.config.rectilinear_sd, self.config.rectilinear_min_quality)
        self.bevs_seen = 0
        # While nothing but odometry moves the belief (no map it may trust, no applied BEV), the estimate is the
        # exact odometry integral from where the belief was then: the grid's mean would drift from it by its
        # 0.125 m quantisation (2-3 cm over 50 s), and a localizer following odometry must equal dead reckoning.
        self._odometry_anchor: tuple[float, float] | None = None
        self._odometry_shift = (0.0, 0.0)
        if occupancy is None and extent is None:
            extent = (initial_pose[0] - 10.0, initial_pose[1] - 10.0, initial_pose[0] + 10.0, initial_pose[1] + 10.0)
        bounds = occupancy.bounds if occupancy is not None else extent
        self._make_grid(bounds)
        if occupancy is not None:
            self.set_map(occupancy)
        self.reset(initial_pose, initial_sigma, initial_heading_sigma)

    # -------------------------------------------------------------------------------- grid and map

    def _make_grid(self, bounds: tuple[float, float, float, float]) -> None:
        res, margin = self.config.resolution, self.config.margin
        x0, y0 = math.floor((bounds[0] - margin) / res) * res, math.floor((bounds[1] - margin) / res) * res
        width = int(math.ceil((bounds[2] + margin - x0) / res))
        height = int(math.ceil((bounds[3] + margin - y0) / res))
        self.origin_x, self.origin_y = x0, y0
        self.belief = np.zeros((height, width))
        self._prior = np.ones_like(self.belief)
        self._centres = None

    @property
    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Map-frame (x, y) of every belief cell centre, each shaped like the belief."""
        if self._centres is None:
            iy, ix = np.mgrid[0:self.belief.shape[0], 0:self.belief.shape[1]]
            res = self.config.resolution
            self._centres = (self.origin_x + (ix + 0.5) * res, self.origin_y + (iy + 0.5) * res)
        return self._centres

    def set_map(self, occupancy: OccupancyMap) -> None:
        """Use ``occupancy`` as the memory's map from now on; the belief grid grows to cover it if needed."""
        if not isinstance(occupancy, OccupancyMap):
            raise ValueError(f"set_map needs an OccupancyMap, got {type(occupancy).__name__}")
        self._grow_to(occupancy.bounds)
        self._likelihood = MapLikelihood(occupancy, self.config)
        self._refresh_prior()

    def _grow_to(self, bounds: tuple[float, float, float, float]) -> None:
        res, margin = self.config.resolution, self.config.margin
        height, width = self.belief.shape
        left = max(0, math.ceil((self.origin_x - (bounds[0] - margin)) / res))
        bottom = max(0, math.ceil((self.origin_y - (bounds[1] - margin)) / res))
        right = max(0, math.ceil((bounds[2] + margin - (self.origin_x + width * res)) / res))
        top = max(0, math.ceil((bounds[3] + margin - (self.origin_y + height * res)) / res))
        if left or bottom or right or top:
            self.belief = np.pad(self.belief, ((bottom, top), (left, right)))
            self._version += 1
            self.origin_x -= left * res
            self.origin_y -= bottom * res
            self._centres = None
            self._refresh_prior()

    @property
    def has_map(self) -> bool:
        """Whether a map has been set (corrections do nothing without one)."""
        return self._likelihood is not None

    def _refresh_prior(self) -> None:
        self._prior = self._free_space_prior() if self._likelihood is not None else np.ones_like(self.belief)

    def _free_space_prior(self) -> np.ndarray:
        """1 where the robot's centre may be, ``clearance_weight`` closer than its radius to a wall, 0 in walls."""
        return self._likelihood.prior_at(*self.cell_centres)

    # -------------------------------------------------------------------------------- reset and readout

    def reset(self, pose: tuple[float, float, float], sigma: float | None = None,
              heading_sigma: float | None = None) -> None:
        """A Gaussian belief of ``sigma`` metres around ``pose`` = (x, y, theta), masked to free space."""
        x, y, theta = (float(v) for v in pose)
        if not all(math.isfinite(v) for v in (x, y, theta)):
            raise ValueError(f"reset pose must be finite, got {pose}")
        sigma = self.config.reinit_sigma if sigma is None else float(sigma)
        heading_sigma = self.config.reinit_heading_sigma if heading_sigma is None else float(heading_sigma)
        self._grow_to((x - 3 * sigma, y - 3 * sigma, x + 3 * sigma, y + 3 * sigma))
        centre_x, centre_y = self.cell_centres
        spread = max(sigma, 0.5 * self.config.resolution)
        belief = np.exp(-0.5 * ((centre_x - x) ** 2 + (centre_y - y) ** 2) / spread ** 2) * self._prior
        if belief.sum() <= 0:
            belief = np.exp(-0.5 * ((centre_x - x) ** 2 + (centre_y - y) ** 2) / spread ** 2)
        self._store(belief / belief.sum())
        self.heading, self.heading_var = wrap_angle(theta), max(heading_sigma, self.config.min_heading_sigma) ** 2
        self._last_good = (x, y, self.heading)
        self._odometry_anchor, self._odometry_shift = (x, y), (0.0, 0.0)

    def estimate(self) -> PoseEstimate:
        """Mean pose of the belief and its covariance (position from the grid, heading from its Gaussian)."""
        key = (self._version, self.heading, self.heading_var, self._odometry_anchor, self._odometry_shift)
        if self._cached_estimate is None or self._cached_estimate[0] != key:
            self._cached_estimate = (key, self._compute_estimate())
        estimate = self._cached_estimate[1]
        return PoseEstimate(estimate.x, estimate.y, estimate.theta, estimate.covariance.copy())

    def _compute_estimate(self) -> PoseEstimate:
        window = self._support()
        belief = self.belief[window]
        centre_x, centre_y = (c[window] for c in self.cell_centres)
        mean_x, mean_y = float((belief * centre_x).sum()), float((belief * centre_y).sum())
        dx, dy = centre_x - mean_x, centre_y - mean_y
        if self._odometry_anchor is not None:
            mean_x = self._odometry_anchor[0] + self._odometry_shift[0]
            mean_y = self._odometry_anchor[1] + self._odometry_shift[1]
        cell_variance = self.config.resolution ** 2 / 12.0
        covariance = np.zeros((3, 3))
        covariance[0, 0] = float((belief * dx * dx).sum()) + cell_variance
        covariance[1, 1] = float((belief * dy * dy).sum()) + cell_variance
        covariance[0, 1] = covariance[1, 0] = float((belief * dx * dy).sum())
        covariance[2, 2] = self.heading_var
        return PoseEstimate(mean_x, mean_y, self.heading, covariance)

    def belief_grid(self) -> BeliefGrid:
        """A copy of the belief with its geometry, for publishing as a heat map."""
        return BeliefGrid(self.belief.copy(), self.config.resolution, self.origin_x, self.origin_y)

    # ------------------------------------------------------------------------------------- prediction

    def predict(self, v: float, omega: float, dt: float) -> None:
        """Move the belief by one odometry step: forward speed ``v`` (m/s), yaw rate ``omega`` (rad/s) for ``dt`` s.

        Raises ValueError, changing nothing, for non-finite values, dt <= 0 (time going backwards), dt above
        ``max_dt`` (a jump: reset() instead) or speeds above the configured limits.
        """
        self._check_step(v, omega, dt)
        self.places.move(v, omega, dt)
        odometry_only = not self.map_trusted
        if odometry_only and self._odometry_anchor is None:
            start = self.estimate()
            self._odometry_anchor, self._odometry_shift = (start.x, start.y), (0.0, 0.0)
        elif not odometry_only:
            self._odometry_anchor = None
        config = self.config
        mid_heading = self.heading + 0.5 * omega * dt
        half_turn = 0.5 * omega * dt
        chord = v * dt * (math.sin(half_turn) / half_turn if abs(half_turn) > 1e-9 else 1.0)
        dx, dy = chord * math.cos(mid_heading), chord * math.sin(mid_heading)
        if self._odometry_anchor is not None:
            self._odometry_shift = (self._odometry_shift[0] + dx, self._odometry_shift[1] + dy)
        self.heading = wrap_angle(self.heading + omega * dt)
        self.heading_var += (config.angular_noise * dt) ** 2
        step = math.hypot(dx, dy)
        self.landmarks.moved(step)
        variance = (config.linear_noise * step) ** 2 + step ** 2 * self.heading_var + config.process_noise ** 2 * dt
        shift_x, shift_y, blur = dx / config.resolution, dy / config.resolution, math.sqrt(variance) / config.resolution
        reach = math.ceil(max(abs(shift_x), abs(shift_y)) + 3.0 * blur) + 2
        window = self._support(reach)
        moved_window = apply_translation(self.belief[window], shift_x, shift_y, blur)
        if config.sharpen != 1.0:
            np.power(moved_window, config.sharpen, out=moved_window)
        if self.map_trusted:
            moved_window *= self._prior[window]
        moved = np.zeros_like(self.belief)
        moved[window] = moved_window
        self._set_belief(moved, "after an odometry step all belief mass was in walls or off the map")

    def _support(self, pad: int = 0) -> tuple[slice, slice]:
        """The bounding box of the belief's non-zero cells, grown by ``pad`` cells and clipped to the grid.

        Cells below ``negligible`` x the peak are zeroed after every update, so the box follows the belief and the
        per-step work scales with the belief's spread, not with the map.
        """
        rows = np.flatnonzero(self.belief.any(axis=1))
        cols = np.flatnonzero(self.belief.any(axis=0))
        height, width = self.belief.shape
        if len(rows) == 0:
            return slice(0, height), slice(0, width)
        return (slice(max(0, rows[0] - pad), min(height, rows[-1] + pad + 1)),
                slice(max(0, cols[0] - pad), min(width, cols[-1] + pad + 1)))

    @property
    def last_stamp(self) -> float | None:
        """Stamp (seconds) of the last odometry step taken by ``predict_stamped``; None before the first."""
        return self._last_stamp

    def predict_stamped(self, v: float, omega: float, stamp: float) -> None:
        """``predict`` with dt taken from message time stamps (seconds); the first call only records the stamp."""
        if not math.isfinite(stamp):
            raise ValueError(f"odometry stamp must be finite, got {stamp}; drop this message")
        if self._last_stamp is None:
            self._check_step(v, omega, None)
            self._last_stamp = float(stamp)
            return
        self.predict(v, omega, float(stamp) - self._last_stamp)
        self._last_stamp = float(stamp)

    def _check_step(self, v: float, omega: float, dt: float | None) -> None:
        config = self.config
        values = (v, omega) if dt is None else (v, omega, dt)
        if not all(isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)
                   for value in values):
            raise ValueError(f"odometry step must be finite numbers, got v={v}, omega={omega}, dt={dt}; "
                             "drop this message")
        if dt is not None and dt <= 0:
            raise ValueError(f"odometry time went backwards or stood still (dt={dt:.3f} s); drop this message")
        if dt is not None and dt > config.max_dt:
            raise ValueError(f"odometry gap of {dt:.3f} s exceeds max_dt={config.max_dt} s; the belief cannot "
                             "bridge it: call reset() with a pose, or raise TemConfig.max_dt")
        if abs(v) > config.max_speed or abs(omega) > config.max_angular_speed:
            raise ValueError(f"odometry speed out of range (v={v} m/s, omega={omega} rad/s; limits "
                             f"{config.max_speed}, {config.max_angular_speed}); drop this message")

    def _set_belief(self, belief: np.ndarray, lost_reason: str) -> str | None:
        total = float(belief.sum())
        if not math.isfinite(total) or total <= self.config.lost_mass:
            return self._reinitialise(lost_reason)
        self._store(belief / total)
        return None

    def _store(self, belief: np.ndarray) -> None:
        """Keep a normalised belief, with cells below ``negligible`` x its peak set to zero."""
        belief[belief < self.config.negligible * float(belief.max())] = 0.0
        self.belief = belief / float(belief.sum())
        self._version += 1

    def _reinitialise(self, reason: str) -> str:
        x, y, theta = self._last_good
        message = (f"belief lost ({reason}): re-initialised around the last good pose ({x:.2f}, {y:.2f}) with "
                   f"sigma {self.config.reinit_sigma:.2f} m")
        last_good = self._last_good
        self.reset((x, y, theta), self.config.reinit_sigma,
                   max(self.config.reinit_heading_sigma, math.sqrt(self.heading_var)))
        self._last_good = last_good
        self.events.append(message)
        LOG.warning(message)
        return message

    # ------------------------------------------------------------------------------------- correction

    def correct(self, bev: Any) -> CorrectionResult:
        """Multiply the belief by the likelihood of ``bev`` (a types.BevGrid or alike) against the map.

        The BEV is checked first (shape ``bev_shape``, resolution ``bev_resolution``, values -1/0/100, finite
        origin): ValueError, belief unchanged, if it does not fit. Without a map, nothing happens. The plausibility
        gate (TemConfig.plausible_fit, min_trust) leaves the belief to odometry when the BEV cannot be explained
        anywhere the belief allows, or when its source has lately sent too many such BEVs (``rejected`` says why).
        """
        points = bev_points(bev, self.config)
        self.bevs_seen += 1
        if self.config.place_check:
            self.places.observe(np.asarray(bev.occupancy), float(bev.resolution),
                                (float(bev.origin_x), float(bev.origin_y)))
        if self.config.landmarks:
            self._fix_from_landmarks(bev)
        if self.config.rectilinear_walls:
            self._heading_from_walls(bev)
        if self._likelihood is None:
            return CorrectionResult(applied=False, message="no map yet: belief carried by odometry only")
        if len(points.xy) == 0:
            return CorrectionResult(applied=False, message="BEV shows nothing: belief unchanged")
        if self.config.min_known_fraction > 0.0 and self.known_fraction(points) < self.config.min_known_fraction:
            return CorrectionResult(applied=False)
        if self.config.place_check and not self.places.trusted:
            if not self.places.distrusted:  # not a fault of the input: every source starts so
                return CorrectionResult(applied=False, message=(
                    "BEV source not judged yet: it must first agree with its own earlier BEVs once the robot has "
                    "moved (a few metres of driving); following odometry"))
            return CorrectionResult(applied=False, rejected=(
                f"BEV source untrusted: its BEVs agree with its earlier ones {self.places.world_share:.0%} in the "
                f"world frame and {self.places.ego_share:.0%} in the robot's (a pattern fixed to the camera, not "
                f"places); following odometry"))
        fits = self._fits(points)
        best = float(fits[2].max())
        offset, radius = self._best_offset(fits), self._trust_radius()
        self._plausible.append(best >= self.config.plausible_fit and offset <= radius)
        if not self.source_trusted:
            needed = max(1, self.config.trust_window // 5)
            if len(self._plausible) < needed and self.trust >= self.config.min_trust:  # too early to judge
                return CorrectionResult(applied=False, fit=best, message=(
                    f"BEV source not judged yet: {len(self._plausible)} of the {needed} BEVs it needs to fit the "
                    f"map first; following odometry"))
            return CorrectionResult(applied=False, fit=best, rejected=(
                f"BEV source untrusted: only {self.trust:.0%} of its last {len(self._plausible)} BEVs fit the map "
                f"(needs {self.config.min_trust:.0%}); following odometry"))
        if best < self.config.lost_fit:  # a trusted source that fits nowhere near the belief: we are lost
            message = self._reinitialise(f"best BEV fit {best:.2f} per cell < {self.config.lost_fit}")
            fits = self._fits(points)
            if float(fits[2].max()) < self.config.plausible_fit:
                return CorrectionResult(applied=False, fit=float(fits[2].max()), message=message)
            result = self._correct_with(points, fits)
            result.message = message
            return result
        if best < self.config.plausible_fit:
            return CorrectionResult(applied=False, fit=best, rejected=(
                f"implausible BEV: best fit {best:.2f} per point < {self.config.plausible_fit} anywhere the belief "
                f"allows"))
        if offset > radius:
            return CorrectionResult(applied=False, fit=best, rejected=(
                f"implausible BEV: explained best {offset:.2f} m from the estimate (> {radius:.2f} m)"))
        result = self._correct_with(points, fits)
        if result.fit >= self.config.good_fit:
            estimate = self.estimate()
            self._last_good = (estimate.x, estimate.y, estimate.theta)
        return result

    def _fix_from_landmarks(self, bev: Any) -> None:
        """Objects in the BEV seen before (landmarks.py) fix the position and, after a long trip, the heading."""
        classes = getattr(bev, "object_class", None)
        if classes is None or np.shape(classes) != self.config.bev_shape:
            return
        sightings = object_sightings(classes, float(bev.resolution), (float(bev.origin_x), float(bev.origin_y)),
                                     self.config.landmark_min_cells, self.config.landmark_max_range)
        if not sightings:
            return
        estimate = self.estimate()
        pose = (estimate.x, estimate.y, estimate.theta)
        sd = math.sqrt(max(0.5 * (estimate.covariance[0, 0] + estimate.covariance[1, 1]), 0.0))
        heading_sd = math.sqrt(self.heading_var)
        prior_sd = self.landmarks.position_sd(pose, sd, heading_sd)
        fix = self.landmarks.observe(sightings, pose, sd, heading_sd)
        if fix is not None:
            self.apply_fix(fix, prior_sd)

    def _heading_from_walls(self, bev: Any) -> None:
        """The BEV's wall direction corrects the heading (wall_directions.py), once its source has shown that its
        BEVs are places, not a pattern fixed to the camera (which would hold the heading wherever the robot turns)."""
        if self.walls.reference is not None and self.config.place_check and not self.places.trusted:
            return  # the reference is learnt meanwhile: it changes nothing
        innovation = self.walls.observe(np.asarray(bev.occupancy), float(bev.resolution), self.heading,
                                        self.heading_var)
        if innovation is None:
            return
        gain = self.heading_var / (self.heading_var + innovation.sd ** 2)
        self.heading = wrap_angle(self.heading + gain * innovation.change)
        self.heading_var = max(self.heading_var * (1.0 - gain), self.config.min_heading_sigma ** 2)

    def apply_fix(self, fix: Fix, prior_sd: float) -> None:
        """Fuse a position fix (and heading change, if any) with the estimate as two Gaussians; the belief becomes
        the fused Gaussian (a product with the grid would be cut off by the grid's pruned tails)."""
        estimate = self.estimate()
        if math.isfinite(fix.heading_sd):
            gain = self.heading_var / (self.heading_var + fix.heading_sd ** 2)
            self.heading = wrap_angle(self.heading + gain * fix.heading_change)
            self.heading_var *= 1.0 - gain
        weight = prior_sd ** 2 / (prior_sd ** 2 + fix.sd ** 2)
        x = estimate.x + weight * (fix.x - estimate.x)
        y = estimate.y + weight * (fix.y - estimate.y)
        sigma = math.sqrt(weight) * fix.sd
        self.reset((x, y, self.heading), sigma, math.sqrt(self.heading_var))
        self.landmarks.fixed(x, y)

    def _best_offset(self, fits: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
        """Distance (m) from the estimate to the candidate position that explains the BEV best."""
        candidates, _, fit = fits
        best = candidates[int(np.argmax(fit.max(axis=0)))]
        xs, ys = (c.reshape(-1)[best] for c in self.cell_centres)
        estimate = self.estimate()
        return math.hypot(float(xs) - estimate.x, float(ys) - estimate.y)

    def _trust_radius(self) -> float:
        """How far from the estimate a BEV may be explained best: ``trust_radius``, or two of the belief's position
        standard deviations when it is wider (an uncertain robot must be able to accept a real correction)."""
        covariance = self.estimate().covariance
        sd = math.sqrt(max(0.5 * (covariance[0, 0] + covariance[1, 1]), 0.0))
        return max(self.config.trust_radius, 2.0 * sd)

    @property
    def map_trusted(self) -> bool:
        """Whether the map may shape the belief between BEVs (mass kept out of its walls). A map the robot built
        from a bad BEV source holds that source's phantom walls, which would push the belief off the odometry as
        surely as its BEVs would; so once BEVs come, only while their source is trusted (before any BEV the map is
        a given one, and is used). A map made independently of the BEVs (``map_from_bevs`` False) always is."""
        if self._likelihood is None:
            return False
        if not self.config.map_from_bevs:
            return True
        if self.trust < self.config.min_trust:
            return False
        return not self.config.place_check or self.places.trusted or self.bevs_seen == 0

    @property
    def trust(self) -> float:
        """Share of the recent BEVs that the map could explain (1.0 before any)."""
        return float(np.mean(self._plausible)) if self._plausible else 1.0

    @property
    def source_trusted(self) -> bool:
        """Whether the BEV source has earned trust: a fifth of the trust window seen, and enough of it plausible
        (always, with ``min_trust`` 0: the gate is off)."""
        if self.config.min_trust == 0.0:
            return True
        seen = len(self._plausible)
        return seen >= max(1, self.config.trust_window // 5) and self.trust >= self.config.min_trust

    def known_fraction(self, points: BevPoints) -> float:
        """Fraction of ``points`` that land on known (wall or free) map cells at the current estimate."""
        estimate = self.estimate()
        expected = self._likelihood.expected_occupancy(points, estimate.x, estimate.y, estimate.theta)
        return float(np.mean(expected != 0.5)) if len(expected) else 0.0

    def _candidates(self) -> np.ndarray:
        """Flat indices of the most likely belief cells holding ``candidate_mass`` of it (at most max_candidates)."""
        flat = self.belief.reshape(-1)
        floor = (1.0 - self.config.candidate_mass) * 1e-3 * float(flat.max())
        cells = np.flatnonzero(flat > floor)
        cells = cells[np.argsort(-flat[cells], kind="stable")]
        needed = int(np.searchsorted(np.cumsum(flat[cells]), self.config.candidate_mass)) + 1
        return cells[:max(1, min(needed, self.config.max_candidates, len(cells)))]

    def _heading_offsets(self) -> np.ndarray:
        config = self.config
        step = float(np.clip(math.sqrt(self.heading_var), config.min_heading_step, config.max_heading_step))
        half = config.heading_candidates // 2
        return step * np.arange(-half, half + 1)

    def _log_likelihoods(self, points: BevPoints, candidates: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """(headings, candidates) mean log-likelihood per BEV point of the scan at each candidate pose."""
        centre_x, centre_y = (c.reshape(-1)[candidates] for c in self.cell_centres)
        return self._likelihood.fit(points, centre_x, centre_y, (self.heading + offsets)[:, None])

    def _fits(self, points: BevPoints) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(candidates, heading offsets, their (headings, candidates) fits) of a BEV around the belief."""
        candidates = self._candidates()
        offsets = self._heading_offsets()
        return candidates, offsets, self._log_likelihoods(points, candidates, offsets)

    def _correct_with(self, points: BevPoints, fits: tuple[np.ndarray, np.ndarray, np.ndarray]) -> CorrectionResult:
        config = self.config
        self._odometry_anchor = None  # a BEV moves the belief now: its mean is the estimate again
        candidates, offsets, fit = fits
        log_like = config.observation_weight * len(points.xy) * fit
        heading_prior = -0.5 * offsets ** 2 / self.heading_var
        joint = log_like + heading_prior[:, None]
        joint -= joint.max()
        weights = np.exp(joint)
        prior = self.belief.reshape(-1)[candidates]
        position_like = weights.sum(axis=0) / weights.sum(axis=0).max()
        heading_weights = (weights * prior[None, :]).sum(axis=1)
        heading_weights /= heading_weights.sum()
        window = self._support()
        predicted = self.belief[window].copy()
        posterior = self.belief.reshape(-1) * position_like.min()
        posterior[candidates] = prior * position_like
        self._update_heading(offsets, heading_weights)
        message = self._set_belief(posterior.reshape(self.belief.shape), "the BEV matched nowhere the belief allows")
        if message is not None:
            window, predicted = (slice(None), slice(None)), np.zeros_like(self.belief)
        result = self._result(points, candidates, position_like, predicted, window, float(fit.max()),
                              float(heading_weights @ offsets))
        result.message = message
        return result

    def _update_heading(self, offsets: np.ndarray, weights: np.ndarray) -> None:
        mean = float(weights @ offsets)
        spread = float(weights @ (offsets - mean) ** 2)
        step = offsets[1] - offsets[0] if len(offsets) > 1 else self.config.min_heading_step
        self.heading = wrap_angle(self.heading + mean)
        self.heading_var = max(min(self.heading_var, spread + step ** 2 / 12.0), self.config.min_heading_sigma ** 2)

    def _result(self, points: BevPoints, candidates: np.ndarray, position_like: np.ndarray, predicted: np.ndarray,
                window: tuple[slice, slice], fit: float, heading_shift: float) -> CorrectionResult:
        """Seed 002's loss terms, summed over cells: sensory error at the mean pose, belief vs moved, vs memory.

        Both beliefs are zero outside ``window`` (the predicted belief's support), so the sums run over it only.
        """
        memory_belief = np.zeros(self.belief.size)
        memory_belief[candidates] = position_like / position_like.sum()
        memory_belief = memory_belief.reshape(self.belief.shape)[window]
        posterior = self.belief[window]
        estimate = self.estimate()
        expected = self._likelihood.expected_occupancy(points, estimate.x, estimate.y, estimate.theta)
        observed = points.is_wall.astype(float)
        return CorrectionResult(
            applied=True,
            sensory_loss=float(np.mean((observed - expected) ** 2)),
            transition_loss=float(((posterior - predicted) ** 2).sum()),
            memory_loss=float(((posterior - memory_belief) ** 2).sum()),
            fit=fit, heading_shift=heading_shift, candidates=len(candidates))

