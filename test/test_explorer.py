"""Tests of the random-walk explorer (behaviour/walker.py) on its own and driving the simulated world."""
import math

import numpy as np
import pytest

from spatial_memory_ros.behaviour.walker import ExplorerConfig, RandomWalker
from spatial_memory_ros.sim.maze import CLASS_NAMES, generate_maze
from spatial_memory_ros.sim.world import World
from spatial_memory_ros.types import BevGrid


def blank_bev(fill: int) -> BevGrid:
    occupancy = np.full((32, 32), fill, dtype=np.int8)
    return BevGrid(occupancy, np.zeros((32, 32), np.uint8), 0.25, 0.0, -4.0, CLASS_NAMES)


def drive(world: World, walkers: list[RandomWalker], steps: int, use_odometry: bool = True):
    """Run the walkers in the world; return the cells each robot visited and the steps blocked by walls."""
    maze = world.maze
    visited = [set() for _ in walkers]
    wall_blocked = other_blocked = 0
    for step in range(steps):
        commands = [walker.command(world.oracle_bev(k), world.odom_twist(k) if use_odometry and step else None)
                    for k, walker in enumerate(walkers)]
        world.step(commands)
        for k, (v, _) in enumerate(commands):
            pose = world.true_pose(k)
            visited[k].add(maze.cell_of(pose.x, pose.y))
            if world.true_twist(k)[0] < min(v, world.config.max_linear_speed) - 1e-9:
                ahead_x, ahead_y = pose.x + 0.01 * math.cos(pose.theta), pose.y + 0.01 * math.sin(pose.theta)
                if maze.disc_collides(ahead_x, ahead_y, world.config.robot_radius):
                    wall_blocked += 1
                else:
                    other_blocked += 1
    return visited, wall_blocked, other_blocked


def test_all_unseen_bev_turns_in_place():
    walker = RandomWalker(seed=1)
    for _ in range(5):
        v, omega = walker.command(blank_bev(-1))
        assert v == 0.0 and omega != 0.0 and math.isfinite(omega)


def test_open_space_drives_forward_and_a_wall_ahead_stops_it():
    v, omega = RandomWalker(seed=2).command(blank_bev(0))
    assert v > 0.3 and abs(omega) <= ExplorerConfig().max_angular_speed
    walled = blank_bev(0)
    walled.occupancy[:, 1:] = 100
    assert RandomWalker(seed=2).command(walled)[0] == 0.0


def test_the_blind_zone_below_a_raised_camera_does_not_block_the_way():
    """A camera 0.9 m up pitched down (Memory-Maze's) sees no ground in its first ~0.9 m: that band is unseen in
    every heading. The walker drives on what lies beyond it; unseen cells farther out than something seen still
    block, and so do walls."""
    walker = RandomWalker(seed=2)
    raised = blank_bev(0)
    raised.occupancy[:, :4] = -1  # x < 1 m: the ground at the robot's feet
    assert walker.clearances(raised).max() > 2.5
    assert RandomWalker(seed=2).command(raised)[0] > 0.3
    walled = raised.occupancy.copy()
    walled[:, 8:] = 100  # a wall 2 m ahead, beyond the blind band
    assert walker.clearances(BevGrid(walled, raised.object_class, 0.25, 0.0, -4.0, CLASS_NAMES)).max() <= 2.0
    unseen_far = raised.occupancy.copy()
    unseen_far[:, 8:] = -1  # seen free from 1 to 2 m, unseen beyond
    assert walker.clearances(BevGrid(unseen_far, raised.object_class, 0.25, 0.0, -4.0, CLASS_NAMES)).max() <= 2.0


def test_commands_respect_the_configured_limits():
    config = ExplorerConfig(max_linear_speed=0.3, max_angular_speed=0.7)
    walker = RandomWalker(seed=3, config=config)
    rng = np.random.default_rng(0)
    for _ in range(50):
        bev = blank_bev(0)
        bev.occupancy[rng.random((32, 32)) < 0.03] = 100
        v, omega = walker.command(bev)
        assert 0.0 <= v <= 0.3 and abs(omega) <= 0.7


def test_walker_is_deterministic_for_a_seed():
    def commands(seed: int) -> list:
        world = World(generate_maze(11, seed=1), num_robots=1, seed=1)
        walker = RandomWalker(seed)
        out = []
        for _ in range(100):
            out.append(walker.command(world.oracle_bev(0), world.odom_twist(0)))
            world.step([out[-1]])
        return out

    assert commands(4) == commands(4)
    assert commands(4) != commands(5)


@pytest.mark.slow
def test_explorer_drives_a_team_without_collisions_and_covers_the_maze():
    maze = generate_maze(15, seed=3)
    world = World(maze, num_robots=3, seed=3)
    visited, wall_blocked, other_blocked = drive(world, [RandomWalker(seed=k) for k in range(3)], 2000)
    assert wall_blocked == 0
    assert other_blocked <= 0.02 * 3 * 2000, "teammates are not in the BEV, so a few bumps between robots are expected"
    assert all(len(cells) >= 20 for cells in visited)
    assert len(set().union(*visited)) >= 0.5 * len(maze.free_cells())
    assert all(world.distance_travelled(k) > 30.0 for k in range(3))


def test_explorer_avoids_walls_without_odometry_feedback():
    world = World(generate_maze(13, seed=8), num_robots=1, seed=8)
    visited, wall_blocked, _ = drive(world, [RandomWalker(seed=8)], 1000, use_odometry=False)
    assert wall_blocked == 0
    assert len(visited[0]) >= 15


def test_non_finite_odometry_is_ignored():
    walker = RandomWalker(seed=6)
    for twist in [(math.nan, 0.0), (0.5, math.inf), (0.2, 0.1)]:
        v, omega = walker.command(blank_bev(0), twist)
        assert math.isfinite(v) and math.isfinite(omega)
