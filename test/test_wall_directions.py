"""Tests of the heading from wall directions (localization/wall_directions.py) and its use by the TEM localizer."""
import math

import numpy as np
import pytest

from spatial_memory_ros.localization.tem import TemLocalizer
from spatial_memory_ros.localization.tem_config import TemConfig
from spatial_memory_ros.localization.wall_directions import RectilinearHeading, wall_direction, wrap_quarter
from spatial_memory_ros.types import BevGrid

RESOLUTION = 0.25
ROOM = 6.0  # m: a square room with walls on x = 0, x = ROOM, y = 0, y = ROOM (world frame)


def room_bev(x: float, y: float, theta: float, size: int = 32) -> BevGrid:
    """The true 32x32 BEV (robot frame, x forward, y left) of the room from pose (x, y, theta)."""
    iy, ix = np.mgrid[0:size, 0:size]
    origin_x, origin_y = 0.0, -0.5 * size * RESOLUTION
    local_x, local_y = origin_x + (ix + 0.5) * RESOLUTION, origin_y + (iy + 0.5) * RESOLUTION
    world_x = x + math.cos(theta) * local_x - math.sin(theta) * local_y
    world_y = y + math.sin(theta) * local_x + math.cos(theta) * local_y
    distance = np.minimum.reduce([np.abs(world_x), np.abs(world_x - ROOM), np.abs(world_y), np.abs(world_y - ROOM)])
    inside = (world_x > 0) & (world_x < ROOM) & (world_y > 0) & (world_y < ROOM)
    occupancy = np.where(distance < 0.2, 100, np.where(inside, 0, -1)).astype(np.int8)
    return BevGrid(occupancy, np.zeros_like(occupancy, dtype=np.uint8), RESOLUTION, origin_x, origin_y)


@pytest.mark.parametrize("theta_deg", [0.0, 17.0, 38.0, 61.0, -23.0])
def test_the_wall_direction_of_a_room_view_is_found_modulo_90_degrees(theta_deg):
    bev = room_bev(1.5, 1.5, math.radians(theta_deg + 45.0))  # looking into the corner behind the robot's left
    found = wall_direction(bev.occupancy, RESOLUTION)
    assert found is not None and found.quality > 1.6
    # walls run at 0 deg in the world, so at -theta in the robot frame
    expected = -math.radians(theta_deg + 45.0)
    assert abs(math.degrees(wrap_quarter(found.angle - expected))) < 2.0


def test_too_few_or_scattered_wall_cells_give_no_clear_direction():
    empty = np.zeros((32, 32), np.int8)
    empty[5, 5] = 100
    assert wall_direction(empty, RESOLUTION) is None
    rng = np.random.default_rng(0)
    scattered = np.where(rng.random((32, 32)) < 0.1, 100, 0).astype(np.int8)
    found = wall_direction(scattered, RESOLUTION)
    assert found is not None and found.quality < 1.6


def test_the_reference_is_learnt_first_then_views_measure_the_heading_error():
    walls = RectilinearHeading(reference_views=3)
    true_heading = math.radians(30.0)
    bev = room_bev(2.0, 2.0, true_heading)
    for _ in range(3):  # learning: the robot's heading is right
        assert walls.observe(bev.occupancy, RESOLUTION, true_heading, math.radians(2.0) ** 2) is None
    assert walls.reference is not None
    believed = true_heading + math.radians(6.0)
    innovation = walls.observe(bev.occupancy, RESOLUTION, believed, math.radians(5.0) ** 2)
    assert innovation is not None and math.degrees(innovation.change) == pytest.approx(-6.0, abs=1.5)
    # 20 deg off with a confident heading is outside the gate: dropped and counted
    assert walls.observe(bev.occupancy, RESOLUTION, true_heading + math.radians(20.0), math.radians(1.0) ** 2) is None
    assert walls.counts["gated"] == 1 and walls.counts["used"] == 1


def drive(rectilinear: bool, place_check: bool = False, fixed_view: BevGrid | None = None) -> float:
    """Heading error (deg) after circling the room 300 steps on a yaw-rate sensor that reads 1 deg/s too high."""
    config = TemConfig(rectilinear_walls=rectilinear, place_check=place_check, landmarks=False)
    tem = TemLocalizer(config, initial_pose=(3.0, 1.5, 0.0), initial_sigma=0.05, extent=(0.0, 0.0, ROOM, ROOM))
    x, y, theta, dt = 3.0, 1.5, 0.0, 0.25
    for _ in range(300):
        v, omega = 0.45, 0.3
        theta += omega * dt
        x = 3.0 + 1.5 * math.cos(theta - 0.5 * math.pi)  # stay on the circle the commands describe
        y = 3.0 + 1.5 * math.sin(theta - 0.5 * math.pi)
        tem.predict(v, omega + math.radians(1.0), dt)
        tem.correct(fixed_view if fixed_view is not None else room_bev(x, y, theta))
    return abs(math.degrees(math.remainder(tem.estimate().theta - theta, 2.0 * math.pi)))


def test_rectilinear_walls_hold_the_heading_that_odometry_lets_drift():
    drifted = drive(rectilinear=False)
    held = drive(rectilinear=True)
    assert drifted > 60.0  # 1 deg/s for 75 s
    assert held < 4.0  # the filter lags a steady bias by a few degrees; odometry alone lost 75


def test_a_pattern_fixed_to_the_camera_never_turns_the_heading():
    # the same view wherever the robot is: the place check never trusts it, so only odometry moves the heading
    fixed = room_bev(1.5, 1.5, math.radians(45.0))
    assert drive(rectilinear=True, place_check=True, fixed_view=fixed) == pytest.approx(
        drive(rectilinear=False, place_check=True, fixed_view=fixed), abs=1e-9)


def test_the_setting_is_off_by_default_and_its_noise_must_be_positive():
    assert TemConfig().rectilinear_walls is False
    with pytest.raises(ValueError, match="rectilinear_sd"):
        TemConfig(rectilinear_sd=0.0)
