"""Tests of the TEM belief localizer (localization/tem.py): prediction, BEV correction, recovery and bad input."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from spatial_memory_ros.behaviour.walker import RandomWalker
from spatial_memory_ros.evaluation.metrics import ate_rmse
from spatial_memory_ros.localization.map_likelihood import OccupancyMap, maze_occupancy
from spatial_memory_ros.localization.tem import TemLocalizer
from spatial_memory_ros.localization.tem_config import TemConfig
from spatial_memory_ros.sim.maze import Maze, generate_maze
from spatial_memory_ros.sim.world import World, WorldConfig
from spatial_memory_ros.types import BevGrid, Pose2D

# The correction's mechanics without the plausibility gate (tested on its own below): every BEV applied at once.
UNGATED = TemConfig(min_trust=0.0, plausible_fit=-math.inf, trust_radius=math.inf, place_check=False)
ROOM = ["#" * 14] + ["#" + "." * 12 + "#"] * 12 + ["#" * 14]


def open_room_map() -> OccupancyMap:
    return maze_occupancy(Maze.from_strings(ROOM), resolution=0.25)


def test_prediction_without_a_map_follows_odometry():
    tem = TemLocalizer(initial_pose=(0.0, 0.0, 0.0), initial_sigma=0.2)
    for _ in range(20):
        tem.predict(1.0, 0.0, 0.1)
    estimate = tem.estimate()
    assert estimate.x == pytest.approx(2.0, abs=0.03)
    assert estimate.y == pytest.approx(0.0, abs=0.03)
    assert estimate.covariance[0, 0] > 0.2 ** 2 * 0.5


def test_heading_follows_the_yaw_rate_and_its_variance_grows():
    tem = TemLocalizer(initial_pose=(0.0, 0.0, 0.0))
    variance = tem.heading_var
    tem.predict(0.0, 1.0, 0.5)
    assert tem.heading == pytest.approx(0.5)
    assert tem.heading_var > variance


def test_correction_pulls_a_displaced_belief_back_to_the_true_pose():
    maze = generate_maze(15, seed=3)
    world = World(maze, num_robots=1, seed=3)
    truth = world.true_pose(0)
    tem = TemLocalizer(UNGATED, maze_occupancy(maze), initial_pose=(truth.x + 0.4, truth.y - 0.3, truth.theta),
                       initial_sigma=0.5)
    for _ in range(5):
        result = tem.correct(world.oracle_bev(0))
    estimate = tem.estimate()
    assert math.hypot(estimate.x - truth.x, estimate.y - truth.y) < 0.15
    assert result.applied and result.fit > -0.3
    for term in (result.sensory_loss, result.transition_loss, result.memory_loss, result.loss):
        assert math.isfinite(term) and term >= 0


def test_tem_beats_dead_reckoning_on_a_short_noisy_drive():
    maze = generate_maze(15, seed=1)
    world = World(maze, num_robots=1, seed=1, config=WorldConfig(odom_linear_noise=0.1, odom_angular_noise_deg=4.0))
    walker = RandomWalker(seed=1)
    start = world.true_pose(0)
    tem = TemLocalizer(TemConfig(linear_noise=0.1, angular_noise=math.radians(4.0)), maze_occupancy(maze),
                       initial_pose=(start.x, start.y, start.theta))
    truth, odometry, estimates = [], [], []
    bev = world.oracle_bev(0)
    for _ in range(400):
        world.step([walker.command(bev)])
        bev = world.oracle_bev(0)
        tem.predict(*world.odom_twist(0), 0.1)
        tem.correct(bev)
        pose, odom, estimate = world.true_pose(0), world.odom_pose(0), tem.estimate()
        truth.append((pose.x, pose.y))
        odometry.append((odom.x, odom.y))
        estimates.append((estimate.x, estimate.y))
    assert ate_rmse(np.array(estimates), np.array(truth)) < 0.2
    assert ate_rmse(np.array(estimates), np.array(truth)) < ate_rmse(np.array(odometry), np.array(truth))


def test_unknown_map_cells_are_neutral():
    unknown = OccupancyMap(np.full((40, 40), -1, dtype=np.int8), 0.25)
    tem = TemLocalizer(UNGATED, occupancy=unknown, initial_pose=(5.0, 5.0, 0.0), initial_sigma=0.5)
    before = tem.belief.copy()
    bev = World(generate_maze(9, seed=0), num_robots=1, seed=0).oracle_bev(0)
    result = tem.correct(bev)
    assert result.applied
    np.testing.assert_allclose(tem.belief, before, atol=1e-12)


def test_views_of_mostly_unmapped_space_are_skipped_when_asked():
    """min_known_fraction: a BEV that falls mostly outside the mapped part is not matched; inside, it is."""
    maze = generate_maze(15, seed=3)
    world = World(maze, num_robots=1, seed=3)
    truth = world.true_pose(0)
    full = maze_occupancy(maze)
    unmapped = full.data.copy()
    unmapped[:] = -1
    config = TemConfig(min_known_fraction=0.8, min_trust=0.0, plausible_fit=-math.inf, trust_radius=math.inf,
                       place_check=False)
    start = (truth.x + 0.4, truth.y - 0.3, truth.theta)
    blind = TemLocalizer(config, OccupancyMap(unmapped, full.resolution), initial_pose=start, initial_sigma=0.5)
    before = blind.belief.copy()
    assert not blind.correct(world.oracle_bev(0)).applied
    np.testing.assert_array_equal(blind.belief, before)
    seeing = TemLocalizer(config, full, initial_pose=start, initial_sigma=0.5)
    assert seeing.correct(world.oracle_bev(0)).applied
    with pytest.raises(ValueError, match="min_known_fraction"):
        TemConfig(min_known_fraction=1.5)


def test_a_growing_map_grows_the_belief_grid_and_keeps_the_estimate():
    small = OccupancyMap(np.zeros((20, 20), dtype=np.int8), 0.25)
    tem = TemLocalizer(occupancy=small, initial_pose=(2.5, 2.5, 0.0), initial_sigma=0.3)
    before = tem.estimate()
    tem.set_map(OccupancyMap(np.zeros((80, 80), dtype=np.int8), 0.25, origin_x=-5.0, origin_y=-5.0))
    after = tem.estimate()
    assert tem.belief.shape[0] >= 80
    assert (after.x, after.y) == pytest.approx((before.x, before.y), abs=1e-9)


def test_a_bev_that_fits_nowhere_reinitialises_around_the_last_good_pose():
    tem = TemLocalizer(UNGATED, occupancy=open_room_map(), initial_pose=(3.0, 7.0, 0.0), initial_sigma=0.3)
    walls_everywhere = SimpleNamespace(occupancy=np.full((32, 32), 100, dtype=np.int8), resolution=0.25,
                                       origin_x=0.0, origin_y=-4.0)
    result = tem.correct(walls_everywhere)
    assert result.message is not None and "re-initialised" in result.message
    assert tem.events and tem.belief.sum() == pytest.approx(1.0)
    estimate = tem.estimate()
    assert math.hypot(estimate.x - 3.0, estimate.y - 7.0) < 1.0


def test_belief_that_ends_in_walls_is_reinitialised_with_a_message():
    walls = np.full((80, 80), 100, dtype=np.int8)
    walls[20:60, 20:60] = 0
    tem = TemLocalizer(occupancy=OccupancyMap(walls, 0.25), initial_pose=(5.5, 10.0, math.pi), initial_sigma=0.1)
    tem.predict(4.0, 0.0, 1.0)
    assert any("re-initialised" in event for event in tem.events)
    assert tem.belief.sum() == pytest.approx(1.0)
    estimate = tem.estimate()
    assert math.hypot(estimate.x - 5.5, estimate.y - 10.0) < 1.0


def test_pose_readout_gives_a_ros_shaped_covariance():
    tem = TemLocalizer(occupancy=open_room_map(), initial_pose=(7.0, 7.0, 0.3), initial_sigma=0.4)
    estimate = tem.estimate()
    assert np.all(np.linalg.eigvalsh(estimate.covariance) > 0)
    covariance = estimate.covariance_6x6()
    assert len(covariance) == 36 and covariance[35] == pytest.approx(estimate.covariance[2, 2])
    heat = tem.belief_grid().as_occupancy_values()
    assert heat.dtype == np.int8 and heat.max() == 100


@pytest.mark.parametrize("v, omega, dt, words", [
    (float("nan"), 0.0, 0.1, "finite"),
    (0.5, float("inf"), 0.1, "finite"),
    (0.5, 0.0, -0.1, "backwards"),
    (0.5, 0.0, 0.0, "backwards"),
    (0.5, 0.0, 30.0, "exceeds max_dt"),
    (500.0, 0.0, 0.1, "out of range"),
])
def test_bad_odometry_is_a_value_error_and_leaves_the_belief_unchanged(v, omega, dt, words):
    tem = TemLocalizer(occupancy=open_room_map(), initial_pose=(7.0, 7.0, 0.0))
    belief, heading, variance = tem.belief.copy(), tem.heading, tem.heading_var
    with pytest.raises(ValueError, match=words):
        tem.predict(v, omega, dt)
    assert np.array_equal(tem.belief, belief)
    assert (tem.heading, tem.heading_var) == (heading, variance)


def test_stamped_odometry_rejects_time_going_backwards_and_huge_jumps():
    tem = TemLocalizer(occupancy=open_room_map(), initial_pose=(7.0, 7.0, 0.0))
    tem.predict_stamped(0.5, 0.0, 10.0)
    tem.predict_stamped(0.5, 0.0, 10.1)
    belief = tem.belief.copy()
    with pytest.raises(ValueError, match="backwards"):
        tem.predict_stamped(0.5, 0.0, 9.0)
    with pytest.raises(ValueError, match="max_dt"):
        tem.predict_stamped(0.5, 0.0, 1000.0)
    assert np.array_equal(tem.belief, belief)


@pytest.mark.parametrize("bev, words", [
    (SimpleNamespace(occupancy=np.zeros((16, 16), np.int8), resolution=0.25, origin_x=0.0, origin_y=-4.0), "32x32"),
    (SimpleNamespace(occupancy=np.zeros((32, 32), np.int8), resolution=0.1, origin_x=0.0, origin_y=-4.0),
     "resolution"),
    (SimpleNamespace(occupancy=np.full((32, 32), 7, np.int8), resolution=0.25, origin_x=0.0, origin_y=-4.0),
     "-1 \\(unseen\\)"),
    (SimpleNamespace(occupancy=np.zeros((32, 32), np.int8), resolution=0.25, origin_x=float("nan"), origin_y=0.0),
     "origin"),
    (object(), "32x32"),
])
def test_bad_bev_is_a_value_error_and_leaves_the_belief_unchanged(bev, words):
    tem = TemLocalizer(occupancy=open_room_map(), initial_pose=(7.0, 7.0, 0.0))
    belief, heading = tem.belief.copy(), tem.heading
    with pytest.raises(ValueError, match=words):
        tem.correct(bev)
    assert np.array_equal(tem.belief, belief) and tem.heading == heading


def test_bad_maps_are_clear_value_errors():
    with pytest.raises(ValueError, match="2-D grid"):
        OccupancyMap(np.zeros(10, dtype=np.int8), 0.25)
    with pytest.raises(ValueError, match="-1..100"):
        OccupancyMap(np.full((4, 4), 120), 0.25)
    with pytest.raises(ValueError, match="resolution"):
        OccupancyMap(np.zeros((4, 4), dtype=np.int8), 0.0)


def test_correct_without_a_map_only_says_so():
    tem = TemLocalizer(initial_pose=(0.0, 0.0, 0.0))
    bev = World(generate_maze(9, seed=0), num_robots=1, seed=0).oracle_bev(0)
    before = tem.belief.copy()
    result = tem.correct(bev)
    assert not result.applied and "no map" in result.message
    assert np.array_equal(tem.belief, before)


def test_reset_places_the_belief_at_a_new_pose():
    tem = TemLocalizer(occupancy=open_room_map(), initial_pose=(7.0, 7.0, 0.0))
    tem.reset((3.0, 4.0, 1.0), sigma=0.2)
    estimate = tem.estimate()
    assert (estimate.x, estimate.y, estimate.theta) == pytest.approx((3.0, 4.0, 1.0), abs=0.05)
    with pytest.raises(ValueError, match="finite"):
        tem.reset((float("nan"), 0.0, 0.0))


def test_world_pose_type_is_compatible_with_the_initial_pose_tuple():
    pose = Pose2D(1.5, 2.5, 0.1)
    tem = TemLocalizer(occupancy=open_room_map(), initial_pose=(pose.x, pose.y, pose.theta), initial_sigma=0.1)
    assert tem.estimate().x == pytest.approx(1.5, abs=0.05)


def _corrupted(bev: BevGrid, kind: str, rng: np.random.Generator) -> BevGrid:
    """A BEV no map can explain where the robot is: random cells, mirrored left-right, 1 m shifted ahead, or the
    wrong prediction seen on a foreign camera (a wall right in front, free space elsewhere)."""
    occupancy = bev.occupancy.copy()
    if kind == "random":
        occupancy = rng.choice(np.array([-1, 0, 100], np.int8), size=occupancy.shape)
    elif kind == "mirrored":
        occupancy = occupancy[::-1, :].copy()
    elif kind == "shifted":
        occupancy = np.roll(occupancy, 4, axis=1)
    elif kind == "wall ahead":
        occupancy = np.where(occupancy >= 0, 0, -1).astype(np.int8)
        occupancy[:, :3] = 100
    return BevGrid(occupancy, bev.object_class, bev.resolution, bev.origin_x, bev.origin_y, bev.class_names)


def _drive(seed: int, kind: str | None, steps: int = 400) -> tuple[float, float, TemLocalizer]:
    """ATE of the TEM fed ``kind`` of BEVs (None: none at all) and of dead reckoning, on one noisy drive."""
    maze = generate_maze(15, seed=seed)
    world = World(maze, num_robots=1, seed=seed)
    walker, rng, start = RandomWalker(seed=seed), np.random.default_rng(seed), world.true_pose(0)
    tem = TemLocalizer(TemConfig(map_from_bevs=False), maze_occupancy(maze),  # the true maze
                       initial_pose=(start.x, start.y, start.theta))
    truth, odometry, estimates = [], [], []
    bev = world.oracle_bev(0)
    for _ in range(steps):
        world.step([walker.command(bev)])
        bev = world.oracle_bev(0)
        tem.predict(*world.odom_twist(0), 0.1)
        if kind is not None:
            tem.correct(_corrupted(bev, kind, rng))
        pose, odom, estimate = world.true_pose(0), world.odom_pose(0), tem.estimate()
        truth.append((pose.x, pose.y))
        odometry.append((odom.x, odom.y))
        estimates.append((estimate.x, estimate.y))
    truth = np.array(truth)
    return ate_rmse(np.array(estimates), truth), ate_rmse(np.array(odometry), truth), tem


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["random", "mirrored", "shifted", "wall ahead"])
def test_no_bev_source_however_bad_pulls_the_estimate_away_from_odometry(kind):
    """The plausibility gate: fed garbage BEVs, the TEM stays with its odometry (within 0.1 m of the TEM fed no BEV
    at all, which is dead reckoning kept out of walls) and, except for mirrored views (often right in a symmetric
    corridor), never worse than dead reckoning. Before the gate it ended 0.6-6.5 m off where dead reckoning was
    0.05-0.31 m off."""
    for seed in range(3):
        ate, dead_reckoning, tem = _drive(seed, kind)
        alone, _, _ = _drive(seed, None)
        assert ate <= alone + 0.1, (seed, ate, alone, dead_reckoning)
        if kind != "mirrored":
            assert ate <= dead_reckoning + 0.02, (seed, ate, dead_reckoning)
            assert not tem.source_trusted


def test_a_trusted_source_is_applied_and_an_untrusted_one_is_said_so():
    maze = generate_maze(9, seed=2)
    world = World(maze, num_robots=1, seed=2)
    start = world.true_pose(0)
    tem = TemLocalizer(TemConfig(trust_window=10, place_check=False), maze_occupancy(maze),  # the fit gate alone
                       initial_pose=(start.x, start.y, start.theta))
    results = [tem.correct(world.oracle_bev(0)) for _ in range(3)]
    # the first BEV that fits is not a fault of the source, only too early to judge it (trust_window // 5 = 2)
    assert not results[0].applied and results[0].rejected is None and "not judged yet" in results[0].message
    assert tem.source_trusted and results[-1].applied and results[-1].rejected is None
    garbage = _corrupted(world.oracle_bev(0), "random", np.random.default_rng(0))
    results = [tem.correct(garbage) for _ in range(10)]
    assert not any(r.applied for r in results) and not tem.source_trusted
    assert "untrusted" in results[-1].rejected and "fit the map" in results[-1].rejected


def test_a_source_with_a_third_of_its_bevs_wrong_is_trusted_and_only_its_good_bevs_are_applied():
    """A learned predictor on a world it was not trained on: on Memory-Maze 60-75% of bev_boundary.pt's BEVs are
    plausible. The default gate (min_trust 0.5) must trust such a source, apply its BEVs that fit and reject the
    rest one by one; at 0.8 it was never trusted and long episodes ran on odometry alone."""
    maze = generate_maze(9, seed=2)
    world = World(maze, num_robots=1, seed=2)
    start = world.true_pose(0)
    tem = TemLocalizer(TemConfig(place_check=False), maze_occupancy(maze),  # the fit gate alone
                       initial_pose=(start.x, start.y, start.theta))
    rng = np.random.default_rng(0)
    good = world.oracle_bev(0)
    results = [tem.correct(_corrupted(good, "random", rng) if step % 3 == 0 else good) for step in range(30)]
    assert tem.source_trusted and 0.5 <= tem.trust < 0.8
    judged = results[15:]  # past the fifth of the window needed to judge the source
    assert all(r.applied for step, r in enumerate(judged, 15) if step % 3)
    assert all(not r.applied and "implausible" in r.rejected for step, r in enumerate(judged, 15) if step % 3 == 0)
