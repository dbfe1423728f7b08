"""The place check: a BEV source that sees places is trusted; one that draws the same pattern wherever the robot
goes is not, and the localizer then follows odometry even on a map that the pattern itself built."""
from __future__ import annotations

import math

import numpy as np

from spatial_memory_ros.localization.map_likelihood import OccupancyMap
from spatial_memory_ros.localization.place_check import PlaceCheck
from spatial_memory_ros.localization.tem import TemLocalizer
from spatial_memory_ros.localization.tem_config import TemConfig
from spatial_memory_ros.types import BevGrid

RES, SIZE, ORIGIN = 0.25, 32, (0.0, -4.0)  # the project's BEV: 8 m ahead, 4 m to each side


def _world(seed: int = 0) -> np.ndarray:
    """A 20 x 20 m world at 0.25 m: a border and scattered wall blocks (True = wall), none on the drive's path."""
    rng = np.random.default_rng(seed)
    walls = np.zeros((80, 80), bool)
    walls[[0, -1], :] = walls[:, [0, -1]] = True
    path = np.array([pose[:2] for pose in _drive()[1]]) / RES
    for _ in range(150):
        r, c = rng.integers(4, 76, size=2)
        if np.min(np.hypot(path[:, 1] - (r + 1.5), path[:, 0] - (c + 1.5))) > 4:
            walls[r:r + 3, c:c + 3] = True
    return walls


def _view(walls: np.ndarray, x: float, y: float, theta: float) -> BevGrid:
    """The true BEV at a pose: every cell of the 32 x 32 ego grid looked up in the world (nothing unseen)."""
    iy, ix = np.mgrid[0:SIZE, 0:SIZE]
    ex, ey = ORIGIN[0] + (ix + 0.5) * RES, ORIGIN[1] + (iy + 0.5) * RES
    wx = x + ex * math.cos(theta) - ey * math.sin(theta)
    wy = y + ex * math.sin(theta) + ey * math.cos(theta)
    rows = np.clip((wy / RES).astype(int), 0, walls.shape[0] - 1)
    cols = np.clip((wx / RES).astype(int), 0, walls.shape[1] - 1)
    occupancy = np.where(walls[rows, cols], 100, 0).astype(np.int8)
    return BevGrid(occupancy, np.zeros_like(occupancy, np.uint8), RES, *ORIGIN, ())


def _drive(steps: int = 120, dt: float = 0.1):
    """A loop through the world: (v, omega) per step and the true poses after each."""
    pose, poses, twists = (4.0, 10.0, 0.0), [], []
    for step in range(steps):
        v, omega = 1.0, (0.6 if (step // 30) % 2 else -0.3)
        x, y, theta = pose
        pose = (x + v * dt * math.cos(theta), y + v * dt * math.sin(theta), theta + omega * dt)
        poses.append(pose)
        twists.append((v, omega))
    return twists, poses, dt


def _check(bevs, twists, dt) -> PlaceCheck:
    check = PlaceCheck()
    for (v, omega), bev in zip(twists, bevs):
        check.move(v, omega, dt)
        check.observe(bev.occupancy, bev.resolution, (bev.origin_x, bev.origin_y))
    return check


def test_a_source_that_sees_places_is_trusted():
    walls = _world()
    twists, poses, dt = _drive()
    check = _check([_view(walls, *pose) for pose in poses], twists, dt)
    assert len(check.world_agreement) >= 20
    assert check.trusted and check.world_share > 0.9 and check.world_share > check.ego_share


def test_a_pattern_fixed_to_the_camera_is_not_trusted():
    twists, poses, dt = _drive()
    stuck = _view(_world(), *poses[0])  # the same picture wherever the robot is
    check = _check([stuck] * len(poses), twists, dt)
    assert not check.trusted and check.ego_share > check.world_share


def test_a_mirrored_source_is_not_trusted():
    walls = _world()
    twists, poses, dt = _drive()
    mirrored = []
    for pose in poses:
        bev = _view(walls, *pose)
        mirrored.append(BevGrid(bev.occupancy[::-1].copy(), bev.object_class, RES, *ORIGIN, ()))
    assert not _check(mirrored, twists, dt).trusted


def test_the_localizer_follows_odometry_when_the_source_draws_one_pattern():
    """The map holds the pattern's walls where the robot first saw it (as a map built from it would): the pattern
    fits there, so without the check every correction drags the robot back; with it, the estimate is odometry's."""
    twists, poses, dt = _drive()
    world = _world()
    stuck = _view(world, *poses[0])
    pattern_map = OccupancyMap(np.where(world, 100, 0).astype(np.int8), RES, 0.0, 0.0)
    start = (4.0, 10.0, 0.0)
    odometry_only = TemLocalizer(TemConfig(), None, initial_pose=start, initial_sigma=0.05,
                                 extent=(0.0, 0.0, 20.0, 20.0))
    checked = TemLocalizer(TemConfig(), pattern_map, initial_pose=start, initial_sigma=0.05)
    unchecked = TemLocalizer(TemConfig(place_check=False, min_trust=0.0), pattern_map, initial_pose=start,
                             initial_sigma=0.05)
    rejected = []
    for v, omega in twists:
        for tem in (odometry_only, checked, unchecked):
            tem.predict(v, omega, dt)
        rejected.append(checked.correct(stuck).rejected or "")
        unchecked.correct(stuck)
    assert all("robot's" in reason for reason in rejected[-60:])

    def apart(a, b) -> float:
        return math.hypot(a.estimate().x - b.estimate().x, a.estimate().y - b.estimate().y)

    assert apart(checked, odometry_only) < 0.1, apart(checked, odometry_only)
    assert apart(unchecked, odometry_only) > 0.4  # the drag the check prevents
