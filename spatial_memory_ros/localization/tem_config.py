"""Settings of the TEM belief localizer: belief grid, motion noise, BEV likelihood and recovery (numpy-free).

One dataclass read by the belief's motion update (tem.py), by the map likelihood (map_likelihood.py) and by the BEV
check (map_likelihood.bev_points); it has its own module so that both can import it without importing each other.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class TemConfig:
    """Belief grid, motion noise, BEV likelihood and recovery settings (SI units, radians)."""

    resolution: float = 0.125
    margin: float = 1.0
    linear_noise: float = 0.05
    angular_noise: float = math.radians(2.0)
    process_noise: float = 0.02
    sharpen: float = 1.02
    robot_radius: float = 0.2
    clearance_weight: float = 0.05
    heading_candidates: int = 5
    min_heading_step: float = math.radians(0.5)
    max_heading_step: float = math.radians(3.0)
    min_heading_sigma: float = math.radians(0.3)
    field_resolution: float = 0.1
    hit_sigma: float = 0.15
    miss_probability: float = 0.1
    unknown_log_likelihood: float = -0.5
    observation_weight: float = 0.15
    # Correct only when at least this fraction of the BEV's cells lands on known map cells at the estimate. With a
    # map the robot builds itself, a view of mostly unmapped space is matched against a few cells drawn from
    # slightly wrong poses and pulls the belief astray; 0 always corrects (a complete, true map).
    min_known_fraction: float = 0.0
    max_wall_points: int = 64
    max_free_points: int = 64
    candidate_mass: float = 0.999
    max_candidates: int = 600
    # The plausibility gate. A BEV is plausible if it fits the map at least ``plausible_fit`` (mean log-likelihood
    # per point: true and well-predicted BEVs fit at -0.05 or better, random, shifted or "wall ahead" garbage at
    # -0.5 typically) at a pose within ``trust_radius`` metres of the estimate (a consistently shifted BEV fits
    # well, but only far from where odometry says the robot is). The BEV source is trusted once at least
    # ``min_trust`` of its last ``trust_window`` BEVs (and at least a fifth of the window) were plausible; only
    # plausible BEVs of a trusted source are applied. Otherwise the belief is carried by odometry alone, so no BEV
    # source, however bad, can pull the estimate far from dead reckoning. ``min_trust`` is 0.5, not higher: a learned
    # predictor on a world it was not trained on (Memory-Maze, bev_boundary.pt) has 60-75% of its BEVs plausible,
    # and at 0.8 it was never trusted, so long episodes ran on odometry and landmarks alone (1.0 m mean error on
    # 9x9, 3.8 m on 15x15). test_tem's random, shifted and "wall ahead" sources stay untrusted at 0.5 (the place
    # check, or 0-4% plausible); a mirrored one is trusted at times at 0.8 as at 0.5 (symmetric corridors) and stays
    # within 0.1 m of odometry alone. Every BEV of a trusted source still has to pass the fit and radius checks.
    plausible_fit: float = -0.1
    trust_radius: float = 0.3
    trust_window: int = 50
    min_trust: float = 0.5
    # The place check (place_check.py): a source whose BEVs agree with its own earlier ones in the robot's frame
    # rather than the world's is left out, since a map built from it would explain it anyway.
    place_check: bool = True
    # Whether the map comes from the same BEVs (the spatial memory's map, built by the robot): then it shapes the
    # belief between BEVs only while their source is trusted. False for a map made independently of them (a floor
    # plan, a survey): its walls then always keep the belief out of them.
    map_from_bevs: bool = True
    # Landmarks (landmarks.py): objects the BEVs label, placed once and used to fix the pose when seen again.
    landmarks: bool = True
    landmark_min_cells: int = 3
    landmark_max_range: float = 4.0
    landmark_gate: float = 3.0
    landmark_sighting_sd: float = 0.25
    landmark_min_baseline: float = 4.0
    landmark_min_travel: float = 2.0
    landmark_max_sigmas: float = 3.0
    # Rectilinear walls (wall_directions.py): in a world whose walls meet at right angles, every BEV's wall
    # direction is a heading measurement mod 90 deg (off by default: a prior about the world, not a fact of it).
    rectilinear_walls: bool = False
    rectilinear_sd: float = math.radians(3.0)
    rectilinear_min_quality: float = 1.6
    lost_fit: float = -1.2
    good_fit: float = -0.6
    lost_mass: float = 1e-9
    negligible: float = 1e-9
    reinit_sigma: float = 1.0
    reinit_heading_sigma: float = math.radians(10.0)
    bev_shape: tuple[int, int] = (32, 32)
    bev_resolution: float = 0.25
    max_dt: float = 1.0
    max_speed: float = 5.0
    max_angular_speed: float = 10.0

    def __post_init__(self) -> None:
        positive = ("resolution", "field_resolution", "hit_sigma", "observation_weight", "reinit_sigma",
                    "bev_resolution", "max_dt", "max_speed", "max_angular_speed", "sharpen", "rectilinear_sd")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"TemConfig.{name} must be a positive finite number, got {value}")
        if self.heading_candidates < 1 or self.heading_candidates % 2 == 0:
            raise ValueError(f"TemConfig.heading_candidates must be odd and >= 1, got {self.heading_candidates}")
        if not 0.0 < self.miss_probability < 1.0:
            raise ValueError(f"TemConfig.miss_probability must be in (0, 1), got {self.miss_probability}")
        if not 0.0 <= self.min_trust <= 1.0 or self.trust_window < 1:
            raise ValueError(f"TemConfig.min_trust must be in [0, 1] and trust_window >= 1, got {self.min_trust}, "
                             f"{self.trust_window}")
        for name in ("landmark_max_range", "landmark_gate", "landmark_sighting_sd", "landmark_min_baseline",
                     "landmark_min_travel", "landmark_max_sigmas"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"TemConfig.{name} must be a positive finite number, got {getattr(self, name)}")
        if self.landmark_min_cells < 1:
            raise ValueError(f"TemConfig.landmark_min_cells must be at least 1, got {self.landmark_min_cells}")
        if not 0.0 <= self.min_known_fraction <= 1.0:
            raise ValueError(f"TemConfig.min_known_fraction must be in [0, 1], got {self.min_known_fraction}")
        self.bev_shape = tuple(int(v) for v in self.bev_shape)
