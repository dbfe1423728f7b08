"""Tests of the simulated world (sim/: maze.py, world.py, camera.py, oracle.py): mazes, motion, collisions,
odometry, camera and oracle BEV."""
import itertools
import math
from collections import deque

import numpy as np
import pytest

from spatial_memory_ros.sim.camera import ceiling_rgb
from spatial_memory_ros.sim.maze import CLASS_NAMES, CLASS_RGB, Maze, generate_maze, top_down_image
from spatial_memory_ros.sim.world import World, WorldConfig
from spatial_memory_ros.types import BevGrid, Pose2D

CORRIDOR = [
    "##########",
    "#........#",
    "##########",
]


def reachable_cells(walls: np.ndarray) -> int:
    """Free cells reachable from the first free cell, by an independent flood fill."""
    free = {tuple(cell) for cell in np.argwhere(~walls)}
    start = next(iter(sorted(free)))
    seen, queue = {start}, deque([start])
    while queue:
        r, c = queue.popleft()
        for neighbour in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
            if neighbour in free and neighbour not in seen:
                seen.add(neighbour)
                queue.append(neighbour)
    return len(seen)


def disc_wall_distance(maze: Maze, x: float, y: float) -> float:
    """Distance from a point to the nearest wall cell (0 inside a wall), by brute force over all wall cells."""
    rows, cols = np.nonzero(maze.walls)
    size = maze.cell_size
    nearest_x = np.clip(x, cols * size, (cols + 1) * size)
    nearest_y = np.clip(y, rows * size, (rows + 1) * size)
    return float(np.hypot(x - nearest_x, y - nearest_y).min())


def robot_frame_to_map(pose: Pose2D, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cos_t, sin_t = math.cos(pose.theta), math.sin(pose.theta)
    return pose.x + cos_t * x - sin_t * y, pose.y + sin_t * x + cos_t * y


def walls_at(maze: Maze, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    row, col = np.floor(y / maze.cell_size).astype(int), np.floor(x / maze.cell_size).astype(int)
    inside = (row >= 0) & (row < maze.rows) & (col >= 0) & (col < maze.cols)
    return ~inside | maze.walls[np.clip(row, 0, maze.rows - 1), np.clip(col, 0, maze.cols - 1)]


def random_free_pose(world: World, rng: np.random.Generator) -> Pose2D:
    free = world.maze.free_cells()
    row, col = free[rng.integers(len(free))]
    size = world.maze.cell_size
    return Pose2D((col + rng.uniform(0.25, 0.75)) * size, (row + rng.uniform(0.25, 0.75)) * size,
                  rng.uniform(-math.pi, math.pi))


# ---------------------------------------------------------------------------------------------- mazes


def test_maze_is_fixed_by_its_seed_and_differs_between_seeds():
    first, again, other = generate_maze(15, seed=3), generate_maze(15, seed=3), generate_maze(15, seed=4)
    assert np.array_equal(first.walls, again.walls)
    assert np.array_equal(first.room_ids, again.room_ids)
    assert first.targets == again.targets
    assert not np.array_equal(first.walls, other.walls)


@pytest.mark.parametrize("size", [8, 16, 0, -3, 100])
def test_maze_sizes_outside_9_to_15_are_rejected(size):
    with pytest.raises(ValueError, match="9..15"):
        generate_maze(size)


@pytest.mark.parametrize("size", range(9, 16))
def test_free_cells_are_connected_and_targets_stand_on_distinct_free_cells(size):
    for seed in range(4):
        maze = generate_maze(size, seed=seed)
        assert maze.walls.shape == (size, size)
        assert maze.walls[0].all() and maze.walls[-1].all() and maze.walls[:, 0].all() and maze.walls[:, -1].all()
        assert reachable_cells(maze.walls) == len(maze.free_cells())
        assert len(maze.free_cells()) > size * size // 4
        assert len(maze.targets) == (size - 3) // 2
        cells = {maze.cell_of(t.x, t.y) for t in maze.targets}
        assert len(cells) == len(maze.targets)
        for target in maze.targets:
            assert not maze.is_wall(target.x, target.y)
            assert (target.x, target.y) == maze.cell_center(*maze.cell_of(target.x, target.y))
            assert target.rgb == CLASS_RGB[target.color]
        assert len({t.color for t in maze.targets}) == len(maze.targets)
        assert np.array_equal(maze.room_ids < 0, maze.walls)


def test_maze_geometry_helpers():
    maze = generate_maze(11, seed=1, num_targets=6, cell_size=0.5)
    assert len(maze.targets) == 6
    assert maze.width_m == pytest.approx(5.5) and maze.height_m == pytest.approx(5.5)
    row, col = maze.free_cells()[0]
    assert not maze.is_wall(*maze.cell_center(row, col))
    assert maze.is_wall(-0.1, 1.0) and maze.is_wall(100.0, 1.0)
    assert top_down_image(maze, 8).shape == (88, 88, 3)
    with pytest.raises(ValueError, match="num_targets"):
        generate_maze(11, num_targets=7)


# ------------------------------------------------------------------------------------- motion, collisions


def test_world_is_deterministic_for_a_seed():
    def run(seed: int) -> tuple[list, list]:
        world = World(generate_maze(11, seed=2), num_robots=3, seed=seed)
        rng = np.random.default_rng(7)
        images = []
        for _ in range(30):
            world.step(rng.uniform(-1.5, 1.5, size=(3, 2)).tolist())
            images.append([world.render(k).tobytes() for k in range(3)])
        poses = [(world.true_pose(k), world.odom_pose(k)) for k in range(3)]
        return images, poses

    assert run(5) == run(5)
    assert run(5)[1] != run(6)[1]


def test_robots_start_at_distinct_free_cells():
    maze = generate_maze(15, seed=0)
    world = World(maze, num_robots=8, seed=1)
    cells = {maze.cell_of(world.true_pose(k).x, world.true_pose(k).y) for k in range(8)}
    assert len(cells) == 8
    assert all(not maze.is_wall(*maze.cell_center(*cell)) for cell in cells)


@pytest.mark.slow
def test_robots_never_pass_through_walls_or_each_other():
    maze = generate_maze(9, seed=0)
    world = World(maze, num_robots=3, seed=0)
    radius = world.config.robot_radius
    rng = np.random.default_rng(0)
    blocked = 0
    for step in range(10_000):
        commands = rng.uniform(-3.0, 3.0, size=(3, 2))
        if step % 50 == 0:
            commands[rng.integers(3)] = (1e9, -1e9)
        world.step(commands.tolist())
        poses = [world.true_pose(k) for k in range(3)]
        for k, pose in enumerate(poses):
            assert disc_wall_distance(maze, pose.x, pose.y) >= radius - 1e-9, f"robot {k} in a wall at step {step}"
            blocked += world.true_twist(k)[0] != pytest.approx(float(np.clip(commands[k, 0], -1.0, 1.0)))
        for a, b in itertools.combinations(poses, 2):
            assert math.hypot(a.x - b.x, a.y - b.y) >= 2 * radius - 1e-9, f"robots overlap at step {step}"
    assert blocked > 0, "the random walk never hit anything, so the test proved nothing"
    assert min(world.distance_travelled(k) for k in range(3)) > 10.0


def test_long_steps_do_not_tunnel_through_walls():
    maze = Maze.from_strings(["#####", "#.#.#", "#####"])
    world = World(maze, num_robots=1, config=WorldConfig(dt=5.0, max_linear_speed=1.0))
    world.set_pose(0, Pose2D(1.5, 1.5, 0.0))
    world.step([(1.0, 0.0)])
    pose = world.true_pose(0)
    assert pose.x == pytest.approx(1.8, abs=1e-3) and pose.y == pytest.approx(1.5)
    assert world.true_twist(0)[0] == pytest.approx(0.3 / 5.0, abs=1e-3)


def test_commands_are_clamped_to_the_speed_limits():
    world = World(Maze.from_strings(CORRIDOR), num_robots=1, config=WorldConfig(odom_linear_noise=0.0))
    world.set_pose(0, Pose2D(1.5, 1.5, 0.0))
    world.step([(50.0, 0.0)])
    assert world.true_pose(0).x == pytest.approx(1.5 + world.config.max_linear_speed * world.config.dt)
    world.step([(0.0, -50.0)])
    assert world.true_twist(0) == (0.0, -world.config.max_angular_speed)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_commands_raise_and_change_nothing(bad):
    maze = generate_maze(9, seed=1)
    world, twin = World(maze, num_robots=2, seed=3), World(maze, num_robots=2, seed=3)
    for w in (world, twin):
        w.step([(0.5, 0.2), (0.5, -0.2)])
    with pytest.raises(ValueError, match="non-finite"):
        world.step([(0.5, 0.1), (bad, 0.0)])
    with pytest.raises(ValueError, match="non-finite"):
        world.step([(0.5, bad), (0.5, 0.0)])
    with pytest.raises(ValueError, match="expected 2 commands"):
        world.step([(0.5, 0.1)])
    assert world.step_count == twin.step_count == 1
    for w in (world, twin):
        w.step([(0.5, 0.3), (0.4, 0.0)])
    for k in range(2):
        assert world.true_pose(k) == twin.true_pose(k)
        assert world.odom_pose(k) == twin.odom_pose(k)


def test_set_pose_refuses_walls_and_other_robots():
    world = World(Maze.from_strings(CORRIDOR), num_robots=2)
    world.set_pose(0, Pose2D(1.5, 1.5, 0.0))
    with pytest.raises(ValueError):
        world.set_pose(1, Pose2D(1.7, 1.5, 0.0))
    with pytest.raises(ValueError):
        world.set_pose(1, Pose2D(5.5, 0.9, 0.0))


def test_config_is_validated():
    with pytest.raises(ValueError, match="dt"):
        WorldConfig(dt=0.0)
    with pytest.raises(ValueError, match="fov_deg"):
        WorldConfig(fov_deg=200.0)
    with pytest.raises(ValueError, match="odom_linear_noise"):
        WorldConfig(odom_linear_noise=-0.1)


# -------------------------------------------------------------------------------------------- odometry


def test_noise_free_odometry_equals_the_true_pose():
    config = WorldConfig(odom_linear_noise=0.0, odom_angular_noise_deg=0.0)
    world = World(generate_maze(9, seed=4), num_robots=3, seed=4, config=config)
    rng = np.random.default_rng(1)
    for _ in range(500):
        world.step(rng.uniform(-1.5, 1.5, size=(3, 2)).tolist())
        for k in range(3):
            true, odom = world.true_pose(k), world.odom_pose(k)
            assert odom.x == pytest.approx(true.x, abs=1e-9) and odom.y == pytest.approx(true.y, abs=1e-9)
            assert math.remainder(odom.theta - true.theta, 2 * math.pi) == pytest.approx(0.0, abs=1e-9)
            assert world.odom_twist(k) == world.true_twist(k)


def test_odometry_noise_has_the_configured_size():
    world = World(generate_maze(15, seed=5), num_robots=3, seed=5)
    rng = np.random.default_rng(2)
    relative_speed_errors, yaw_rate_errors = [], []
    for _ in range(1500):
        world.step(np.column_stack([rng.uniform(0.3, 1.0, 3), rng.uniform(-2.0, 2.0, 3)]).tolist())
        for k in range(3):
            (v, omega), (measured_v, measured_omega) = world.true_twist(k), world.odom_twist(k)
            yaw_rate_errors.append(measured_omega - omega)
            if v > 0.05:
                relative_speed_errors.append((measured_v - v) / v)
    assert len(relative_speed_errors) > 300
    assert np.std(relative_speed_errors) == pytest.approx(0.05, rel=0.15)
    assert abs(np.mean(relative_speed_errors)) < 0.01
    assert np.std(yaw_rate_errors) == pytest.approx(math.radians(2.0), rel=0.1)
    drift = [math.hypot(world.odom_pose(k).x - world.true_pose(k).x, world.odom_pose(k).y - world.true_pose(k).y)
             for k in range(3)]
    assert max(drift) > 0.01


# ---------------------------------------------------------------------------------------------- camera


def wall_rows_in_top_half(image: np.ndarray, column: int) -> int:
    """Rows above the horizon in one column that show something other than the ceiling."""
    half = image.shape[0] // 2
    return int(np.any(image[:half, column] != ceiling_rgb(image.shape[0]), axis=1).sum())


def test_a_near_wall_fills_more_of_the_image_than_a_far_one():
    world = World(Maze.from_strings(CORRIDOR), num_robots=1)
    centre = world.config.image_size // 2
    heights, depths = [], []
    for x in (1.5, 3.5, 5.5, 7.5, 8.5):
        world.set_pose(0, Pose2D(x, 1.5, 0.0))
        heights.append(wall_rows_in_top_half(world.render(0), centre))
        depths.append(world.column_depths(0)[centre])
    assert depths == pytest.approx([7.5, 5.5, 3.5, 1.5, 0.5], abs=0.02)
    assert heights == sorted(heights) and heights[0] < heights[-1]
    assert heights[0] <= 4 and heights[-1] == centre
    world.set_pose(0, Pose2D(1.5, 1.5, math.pi))
    assert wall_rows_in_top_half(world.render(0), centre) == centre


def test_sub_pixel_changes_of_a_far_walls_depth_show_in_its_edge_pixels():
    """Area-sampled edges: 5 cm more depth at 5.5 m moves the wall's top edge by a twentieth of a pixel, which must
    show as a fainter edge pixel (with all-or-nothing pixels the image would not change at all)."""
    world = World(Maze.from_strings(CORRIDOR), num_robots=1)
    centre = world.config.image_size // 2
    ceiling = ceiling_rgb(world.config.image_size).astype(int)
    edge_rows, edge_contrast = [], []
    for x in (3.5, 3.45, 3.4):  # depths 5.5, 5.55, 5.6 m
        world.set_pose(0, Pose2D(x, 1.5, 0.0))
        top_half = world.render(0)[:centre, centre].astype(int)
        differs = np.flatnonzero(np.abs(top_half - ceiling).sum(axis=1))
        edge_rows.append(int(differs[0]))
        edge_contrast.append(int(np.abs(top_half[differs[0]] - ceiling[differs[0]]).sum()))
    assert len(set(edge_rows)) == 1
    assert edge_contrast[0] > edge_contrast[1] > edge_contrast[2] > 0


def test_the_image_changes_with_motion():
    world = World(generate_maze(13, seed=2), num_robots=1, seed=2)
    before = world.render(0)
    world.step([(0.0, 1.0)])
    assert np.abs(world.render(0).astype(int) - before).mean() > 1.0


def test_distinct_places_give_distinct_images():
    maze = generate_maze(15, seed=0)
    world = World(maze, num_robots=1, seed=0)
    rng = np.random.default_rng(3)
    free = maze.free_cells()
    images = []
    for row, col in free[rng.choice(len(free), size=20, replace=False)]:
        world.set_pose(0, Pose2D(col + 0.5, row + 0.5, rng.uniform(-math.pi, math.pi)))
        images.append(world.render(0).astype(float))
    differences = [np.abs(a - b).mean() for a, b in itertools.combinations(images, 2)]
    assert min(differences) > 5.0


def test_images_have_the_configured_size():
    world = World(generate_maze(9), num_robots=2, config=WorldConfig(image_size=33))
    image = world.render(1)
    assert image.shape == (33, 33, 3) and image.dtype == np.uint8


def reddish(image: np.ndarray) -> np.ndarray:
    red, green, blue = (image[..., k].astype(int) for k in range(3))
    return (red > 80) & (red > 2 * green) & (red > 2 * blue)


def test_targets_are_drawn_in_their_colour_and_hidden_behind_walls():
    maze = Maze.from_strings(["##########", "#......r.#", "##########"])
    world = World(maze, num_robots=1, config=WorldConfig(render_teammates=False))
    world.set_pose(0, Pose2D(5.5, 1.5, 0.0))
    red = reddish(world.render(0))
    assert red[:, 26:38].sum() > 15 and red.sum() == red[:, 26:38].sum()
    world.set_pose(0, Pose2D(5.5, 1.5, math.pi))
    assert not reddish(world.render(0)).any()


# ------------------------------------------------------------------------------------------ oracle BEV


def test_oracle_bev_has_the_configured_layout():
    world = World(generate_maze(9), num_robots=1)
    bev = world.oracle_bev(0)
    assert isinstance(bev, BevGrid)
    assert bev.occupancy.shape == (32, 32) and bev.occupancy.dtype == np.int8
    assert bev.object_class.shape == (32, 32) and bev.object_class.dtype == np.uint8
    assert (bev.resolution, bev.origin_x, bev.origin_y) == (0.25, 0.0, -4.0)
    assert bev.class_names == CLASS_NAMES
    assert set(np.unique(bev.occupancy)) <= {-1, 0, 100}


def test_oracle_bev_agrees_with_the_maze():
    maze = generate_maze(15, seed=6)
    world = World(maze, num_robots=1, seed=6)
    config = world.config
    rng = np.random.default_rng(4)
    seen_walls = seen_free = 0
    for _ in range(60):
        world.set_pose(0, random_free_pose(world, rng))
        pose, bev = world.true_pose(0), world.oracle_bev(0)
        cell_x, cell_y = bev.cell_centers()
        seen = bev.occupancy != -1
        assert np.all(np.abs(np.arctan2(cell_y[seen], cell_x[seen])) <= math.radians(config.fov_deg) / 2 + 1e-9)
        assert np.all(np.hypot(cell_x[seen], cell_y[seen]) <= config.view_range)
        map_x, map_y = robot_frame_to_map(pose, cell_x, cell_y)
        wall = walls_at(maze, map_x, map_y)
        assert np.all(wall[bev.occupancy == 100]) and not np.any(wall[bev.occupancy == 0])
        free_x, free_y = map_x[bev.occupancy == 0], map_y[bev.occupancy == 0]
        along = np.linspace(0.0, 1.0, 100)[None, :]
        sight_x, sight_y = pose.x + along * (free_x[:, None] - pose.x), pose.y + along * (free_y[:, None] - pose.y)
        assert not walls_at(maze, sight_x, sight_y).any(), "a free cell is marked seen behind a wall"
        assert np.all(bev.occupancy[bev.object_class > 0] == 0)
        seen_walls += int((bev.occupancy == 100).sum())
        seen_free += int((bev.occupancy == 0).sum())
    assert seen_walls > 60 * 5 and seen_free > 60 * 20


def test_oracle_bev_marks_visible_targets_only():
    maze = Maze.from_strings(["##########", "#......r.#", "##########"])
    world = World(maze, num_robots=1)
    world.set_pose(0, Pose2D(5.5, 1.5, 0.0))
    bev = world.oracle_bev(0)
    marked = np.argwhere(bev.object_class == CLASS_NAMES.index("red") + 1)
    assert len(marked) > 0
    cell_x, cell_y = bev.cell_centers()
    assert np.all(np.hypot(cell_x[tuple(marked.T)] - 2.0, cell_y[tuple(marked.T)]) < 0.5)
    world.set_pose(0, Pose2D(5.5, 1.5, math.pi))
    assert not world.oracle_bev(0).object_class.any()
