"""The world interface (sim/interface.py): the built-in world and Memory-Maze (sim/memory_maze.py) pass the same
checks: shapes and dtypes, camera model, the oracle BEV against the layout around the true pose, odometry noise
within bounds, driving by (v, omega), reset by seed reproducible. Memory-Maze renders with MuJoCo (slow)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from spatial_memory_ros.sim.interface import SimWorld, WorldUnavailable, make_world, world_class_names, world_extent
from spatial_memory_ros.types import CameraModel
from spatial_memory_ros.types import BevGrid, Pose2D

SIZES = {"builtin": 11, "memory_maze": 9}


def _memory_maze_or_skip(**kwargs):
    try:
        return make_world("memory_maze", **kwargs)
    except WorldUnavailable as error:
        pytest.skip(f"Memory-Maze cannot start on this machine: {error}")


@pytest.fixture(scope="module", params=["builtin", pytest.param("memory_maze", marks=pytest.mark.slow)])
def world(request):
    """One world of each kind, 2 robots (building Memory-Maze takes seconds: shared by the module's tests)."""
    name = request.param
    kwargs = {"size": SIZES[name], "seed": 5, "num_robots": 2}
    built = _memory_maze_or_skip(**kwargs) if name == "memory_maze" else make_world(name, **kwargs)
    built.world_name = name
    yield built
    built.close()


def _fresh(world, seed=5):
    world.reset(seed, SIZES[world.world_name])
    return world


def test_satisfies_the_interface_with_its_shapes_and_dtypes(world):
    world = _fresh(world)
    assert isinstance(world, SimWorld)
    assert world.num_robots == 2 and world.step_count == 0 and world.time == 0.0
    cells, cell_size = world_extent(world.world_name, SIZES[world.world_name])
    assert world.maze.walls.shape == (cells, cells) and world.maze.cell_size == cell_size
    assert world.maze.walls[0].all() and world.maze.walls[-1].all() and world.maze.walls[:, 0].all()
    assert world.class_names == world_class_names(world.world_name) and len(set(world.class_names)) == 6
    assert world.targets and all(t.color in world.class_names for t in world.targets)
    assert all(not world.maze.is_wall(t.x, t.y) for t in world.targets)
    for robot in range(world.num_robots):
        image = world.render(robot)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8 and image.std() > 5
        camera = world.camera_model(robot)
        assert isinstance(camera, CameraModel) and (camera.width, camera.height) == image.shape[1::-1]
        assert camera.fx > 0 and camera.fy > 0 and camera.cx == camera.cy == 31.5 and camera.mount_height > 0
        assert math.isclose(camera.horizontal_fov_deg, world.config.fov_deg, abs_tol=1e-6)
        pose = world.true_pose(robot)
        assert not world.maze.is_wall(pose.x, pose.y)
        assert world.odom_pose(robot) == pose
        bev = world.oracle_bev(robot)
        assert isinstance(bev, BevGrid) and bev.class_names == world.class_names
        assert bev.occupancy.shape == (32, 32) and bev.occupancy.dtype == np.int8
        assert bev.object_class.shape == (32, 32) and bev.object_class.dtype == np.uint8
        assert set(np.unique(bev.occupancy)) <= {-1, 0, 100} and (bev.occupancy == 0).any()
    with pytest.raises(IndexError):
        world.render(2)
    with pytest.raises(ValueError):
        world.step([(0.0, 0.0)])
    with pytest.raises(ValueError):
        world.step([(math.nan, 0.0), (0.0, 0.0)])
    assert world.step_count == 0


def _bev_against_layout(world, robot: int) -> tuple[int, int]:
    """(cells that agree with the layout, seen cells) of the robot's oracle BEV, placed by its true pose."""
    bev, pose = world.oracle_bev(robot), world.true_pose(robot)
    x, y = bev.cell_centers()
    cos_t, sin_t = math.cos(pose.theta), math.sin(pose.theta)
    map_x, map_y = pose.x + cos_t * x - sin_t * y, pose.y + sin_t * x + cos_t * y
    seen = bev.occupancy >= 0
    agree = 0
    for wall, mx, my in zip(bev.occupancy[seen] == 100, map_x[seen], map_y[seen]):
        agree += wall == world.maze.is_wall(mx, my)
    return agree, int(seen.sum())


def test_oracle_bev_agrees_with_the_layout_around_the_true_pose(world):
    world = _fresh(world)
    rng = np.random.default_rng(0)
    agree = seen = 0
    for _ in range(12):
        world.step([(float(rng.uniform(0.2, 0.8)), float(rng.uniform(-0.8, 0.8)))] * world.num_robots)
        for robot in range(world.num_robots):
            a, s = _bev_against_layout(world, robot)
            agree, seen = agree + a, seen + s
    assert seen > 500 and agree / seen > 0.97, (agree, seen)


def test_a_target_in_view_is_marked_with_its_class(world):
    world = _fresh(world)
    target = world.targets[0]
    cell_row, cell_col = world.maze.cell_of(target.x, target.y)
    for d_row, d_col in ((0, 1), (0, -1), (1, 0), (-1, 0)):  # stand one cell away, facing the target
        row, col = cell_row + d_row, cell_col + d_col
        if not world.maze.walls[row, col]:
            x, y = world.maze.cell_center(row, col)
            world.set_pose(0, Pose2D(x, y, math.atan2(target.y - y, target.x - x)))
            break
    else:
        pytest.skip("the first target has no free neighbour")
    bev = world.oracle_bev(0)
    assert (bev.object_class == world.class_names.index(target.color) + 1).any()


def test_drives_by_velocity_and_odometry_noise_stays_within_bounds(world):
    world = _fresh(world)
    robot = 0
    other_row = world.maze.cell_of(world.true_pose(1).x, world.true_pose(1).y)[0]
    free = [rc for rc in world.maze.free_cells() if rc[0] != other_row]  # the built-in world's robots collide
    # a cell with the most free cells straight ahead along +x, to drive 1.5 s without a wall
    best = max(free, key=lambda rc: next(k for k in range(1, 40) if world.maze.walls[rc[0], rc[1] + k]))
    x, y = world.maze.cell_center(int(best[0]), int(best[1]))
    world.set_pose(robot, Pose2D(x - 0.25 * world.maze.cell_size, y, 0.0))
    start = world.true_pose(robot)
    twists, odom_twists = [], []
    for _ in range(15):
        world.step([(0.6, 0.2), (0.0, 0.0)])
        twists.append(world.true_twist(robot))
        odom_twists.append(world.odom_twist(robot))
    twists, odom_twists = np.array(twists), np.array(odom_twists)
    assert np.allclose(twists[5:, 0], 0.6, atol=0.05) and np.allclose(twists[5:, 1], 0.2, atol=0.05), twists
    turned = math.remainder(world.true_pose(robot).theta - start.theta, math.tau)
    assert 0.2 < turned < 0.35 and world.distance_travelled(robot) > 0.6
    assert world.distance_travelled(1) < 0.05  # a robot told to stand still stands still
    linear = odom_twists[5:, 0] / twists[5:, 0] - 1.0
    angular = odom_twists[:, 1] - twists[:, 1]
    assert np.abs(linear).max() < 4 * world.config.odom_linear_noise and linear.std() > 0.0
    assert np.abs(angular).max() < 4 * math.radians(world.config.odom_angular_noise_deg)
    drift = world.odom_pose(robot)
    assert math.hypot(drift.x - world.true_pose(robot).x, drift.y - world.true_pose(robot).y) < 0.2


def _trace(world, seed: int) -> tuple:
    world.reset(seed, SIZES[world.world_name])
    poses = [world.true_pose(k) for k in range(world.num_robots)]
    for _ in range(3):
        world.step([(0.5, 0.3), (0.3, -0.4)])
    return (world.maze.walls.copy(), [(t.color, t.x, t.y) for t in world.targets], poses,
            [world.true_pose(k) for k in range(world.num_robots)], [world.odom_pose(k) for k in range(2)],
            world.render(1).copy())


def test_reset_by_seed_is_reproducible(world):
    first, again, other = _trace(world, 7), _trace(world, 7), _trace(world, 8)
    assert np.array_equal(first[0], again[0]) and first[1:5] == again[1:5] and np.array_equal(first[5], again[5])
    assert not (np.array_equal(first[0], other[0]) and first[2] == other[2])
    assert world.step_count == 3


def test_unknown_world_and_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="unknown world"):
        make_world("gazebo")
    with pytest.raises(ValueError, match="9, 11, 13, 15"):
        world_extent("memory_maze", 10)
    assert world_extent("memory_maze", 15) == (17, 2.0) and world_extent("builtin", 15) == (15, 1.0)
    camera = CameraModel.pinhole(64, 64, 80.0, 0.9, 0.15, math.radians(5.71))
    assert math.isclose(camera.fx, 32 / math.tan(math.radians(40))) and camera.projection_matrix()[2] == 31.5


def test_memory_maze_says_what_to_do_without_gl_or_with_the_wrong_mujoco(monkeypatch):
    import os
    import subprocess
    import sys

    script = ("from spatial_memory_ros.sim.interface import WorldUnavailable, make_world\n"
              "try:\n    make_world('memory_maze', size=9, num_robots=1)\n"
              "except WorldUnavailable as error:\n    print('UNAVAILABLE', error)\n")
    env = {**os.environ, "MUJOCO_GL": "no-such-backend"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert "UNAVAILABLE Memory-Maze cannot render with MUJOCO_GL=no-such-backend" in done.stdout, done.stderr[-2000:]
    assert "MUJOCO_GL=osmesa" in done.stdout and "Traceback" not in done.stderr

    mujoco = pytest.importorskip("mujoco", reason="the wrong-version check needs mujoco installed")
    from spatial_memory_ros.sim.memory_maze import _load_tasks

    monkeypatch.setattr(mujoco, "__version__", "4.0.0")
    with pytest.raises(WorldUnavailable, match=r"mujoco==3\.17\.0"):
        _load_tasks()
