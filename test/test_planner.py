"""Tests of planning on an occupancy grid (behaviour/planner.py): costs, paths, frontiers, goals from queries, driving."""
import math

import numpy as np
import pytest

from spatial_memory_ros.evaluation.map_scores import rasterize_maze
from spatial_memory_ros.types import GridGeometry
from spatial_memory_ros.behaviour.planner import (Partner, PlannerConfig, WallCells, choose_frontier, clear_around,
                                                  clearance_ahead,
                                                  cost_grid, frontier_mask, park_spot, plan_path, shortest_paths,
                                                  unknown_area_behind, arena_cells)
from spatial_memory_ros.behaviour.navigator import Navigator
from spatial_memory_ros.behaviour.goals import (EmptyPlace, found_empty, goal_from_answer, goal_from_memory,
                                                label_matches, still_empty)
from spatial_memory_ros.memory.mapping import Observations
from spatial_memory_ros.memory.robot_memory import RobotMemory
from spatial_memory_ros.evaluation.team_task import LabelEmbedder
from spatial_memory_ros.sim.maze import CLASS_NAMES, Maze
from spatial_memory_ros.sim.world import World
from spatial_memory_ros.types import BevGrid, Pose2D

LAYOUT = [
    "#########",
    "#...#...#",
    "#.#.#.#.#",
    "#.#...#.#",
    "#.#####.#",
    "#.......#",
    "#########",
]


@pytest.fixture(scope="module")
def maze() -> Maze:
    return Maze.from_strings(LAYOUT)


@pytest.fixture(scope="module")
def known(maze):
    geometry = GridGeometry.covering(maze, 0.25)
    return rasterize_maze(maze, geometry), geometry


def test_costs_block_walls_and_prefer_known_free_over_unknown(known):
    occupancy, geometry = known
    costs = cost_grid(occupancy, geometry, PlannerConfig())
    assert np.isinf(costs[occupancy == 100]).all()
    centre = costs[geometry.cell_indices(np.array([1.5]), np.array([1.5]))[0][0],
                   geometry.cell_indices(np.array([1.5]), np.array([1.5]))[1][0]]
    unknown = occupancy.copy()
    unknown[occupancy == 0] = -1
    assert cost_grid(unknown, geometry, PlannerConfig()).min() > costs[np.isfinite(costs)].min()
    assert centre < costs[5, 4 + 1]  # the corridor's middle is cheaper than next to the wall
    with pytest.raises(ValueError, match="does not match"):
        cost_grid(occupancy[:-1], geometry, PlannerConfig())


def test_plan_reaches_the_goal_through_free_cells_only(known):
    occupancy, geometry = known
    path = plan_path(occupancy, geometry, (1.5, 1.5), (5.5, 1.5))
    assert path is not None
    assert math.hypot(*(path[0] - (1.5, 1.5))) < 0.2 and math.hypot(*(path[-1] - (5.5, 1.5))) < 0.2
    rows, cols, _ = geometry.cell_indices(path[:, 0], path[:, 1])
    assert (occupancy[rows, cols] == 0).all()
    length = np.linalg.norm(np.diff(path, axis=0), axis=1).sum()
    assert 6.0 < length < 14.0  # around the wall through the middle, not through it


def test_no_path_into_an_enclosed_room(known):
    occupancy, geometry = known
    closed = occupancy.copy()
    closed[geometry.cell_indices(np.array([3.5]), np.array([3.5]))[0][0] - 1:, :] = 100  # seal the lower half
    assert plan_path(closed, geometry, (1.5, 1.5), (5.5, 5.5)) is None


def test_frontiers_border_the_unknown_and_teammates_push_the_choice_away(known):
    occupancy, geometry = known
    partial = occupancy.copy()
    near = (slice(8, 12), slice(4, 8))      # maze cell (2, 1): just below the start
    far = (slice(12, 16), slice(16, 20))    # maze cell (3, 4): round the corner
    partial[near] = -1
    partial[far] = -1
    mask = frontier_mask(partial)
    assert mask.any() and not mask[:4].any()
    config = PlannerConfig()
    field = shortest_paths(cost_grid(partial, geometry, config), geometry, (1.5, 1.5))
    alone = choose_frontier(partial, field, config)
    assert alone is not None and math.hypot(alone.x - 1.5, alone.y - 2.5) < 1.0
    shy = PlannerConfig(frontier_partner_weight=20.0)
    crowded = choose_frontier(partial, field, shy, partners=(Partner(1.5, 2.5, 0.2),))
    assert crowded is not None and math.hypot(crowded.x - 4.5, crowded.y - 3.5) < 1.0


def test_the_unknown_behind_a_frontier_tells_a_hole_from_an_unseen_region():
    geometry = GridGeometry(0.25, 40, 40)
    occupancy = np.zeros((40, 40), np.int8)
    occupancy[:, 30:] = -1                  # an unseen region: 10 x 40 cells
    occupancy[10:12, 10:12] = -1            # a hole of 2 x 2 cells in known floor
    assert unknown_area_behind(occupancy, geometry, (7.4, 5.0)) == pytest.approx(10 * 40 * 0.0625)
    assert unknown_area_behind(occupancy, geometry, (2.4, 2.6)) == pytest.approx(4 * 0.0625)
    assert unknown_area_behind(occupancy, geometry, (5.0, 5.0)) == 0.0   # no unknown cell beside it
    assert unknown_area_behind(occupancy, geometry, (-3.0, 5.0)) == 0.0  # off the map


def test_a_hole_in_known_floor_is_no_frontier_once_holes_are_skipped():
    geometry = GridGeometry(0.25, 40, 40)
    occupancy = np.zeros((40, 40), np.int8)
    occupancy[:, 34:] = -1                  # an unseen region 8.5 m from the robot
    occupancy[8:10, 12:14] = -1             # a hole of 0.25 m2, 1.3 m from it
    config = PlannerConfig()
    field = shortest_paths(cost_grid(occupancy, geometry, config), geometry, (2.0, 2.0))
    nearest = choose_frontier(occupancy, field, config)
    assert nearest is not None and math.hypot(nearest.x - 3.25, nearest.y - 2.25) < 1.0  # the hole, by default
    skipping = PlannerConfig(frontier_min_unknown_m2=1.0)
    beyond = choose_frontier(occupancy, field, skipping)
    assert beyond is not None and beyond.x > 8.0
    occupancy[:, 34:] = 0                   # only the hole left: no frontier at all
    assert choose_frontier(occupancy, field, skipping) is None
    with pytest.raises(ValueError, match="frontier_min_unknown_m2"):
        PlannerConfig(frontier_min_unknown_m2=-1.0)


def test_a_frontier_seen_meanwhile_is_replanned_at_once_when_asked():
    geometry = GridGeometry(0.25, 40, 40)
    grid = np.zeros((40, 40), np.int8)
    grid[18:22, 30:] = -1                   # a near unknown pocket east, 7.5 m on
    grid[:, :2] = -1                        # and a strip west, farther
    start = Pose2D(5.0, 5.0, 0.0)

    def navigator(**options) -> Navigator:
        nav = Navigator(geometry, PlannerConfig(replan_every=10, **options))
        nav.step(None, start, grid)
        assert nav.status.mode == "frontier" and nav.status.target[0] > 7.0  # the pocket east
        return nav

    seen = grid.copy()
    seen[18:22, 30:] = 0                    # the next view fills the pocket in
    eager, lazy = navigator(replan_when_frontier_seen=True), navigator()
    eager.step(None, start, seen)
    lazy.step(None, start, seen)
    assert eager.status.target[0] < 1.0, "replanned at once: the strip west"
    assert lazy.status.target[0] > 7.0, "the default drives on until replan_every"
    assert not PlannerConfig().replan_when_frontier_seen


def _room_with_a_leak() -> tuple[np.ndarray, GridGeometry]:
    """A 17.5 m square room (x, y in 2..19.5 m) walled by the faces the BEV saw, in a 25 m unknown map: a 1.25 m
    unknown corner inside it (north-west), and floor the BEV saw through a 0.75 m gap in its east wall, between the
    gap's jambs out to x = 21.5 m (Memory-Maze's walls are 2 m thick)."""
    geometry = GridGeometry(0.25, 100, 100)
    grid = np.full((100, 100), -1, np.int8)
    grid[7:79, 7:79] = 100
    grid[8:78, 8:78] = 0
    grid[73:78, 8:13] = -1                 # the unseen corner: x 2-3.25, y 18.25-19.5
    grid[19:24, 78:86] = 100               # the gap's jambs
    grid[20:23, 77:86] = 0                 # the leak: y 5-5.75, x 19.5-21.5
    return grid, geometry


def test_a_frontier_beyond_the_arenas_known_size_is_skipped_when_the_size_is_given():
    grid, geometry = _room_with_a_leak()
    inside = arena_cells(grid, geometry, 17.5, 1.0)
    xs, _ = geometry.cell_centres()
    assert inside is not None and inside[21, 85] == False and inside[74, 13] == True  # noqa: E712
    assert 0.9 < xs[21][inside[21]].min() < 1.6 and 20.0 < xs[21][inside[21]].max() < 20.8  # 2 -/+ 17.5 + 1
    field = shortest_paths(cost_grid(grid, geometry, PlannerConfig()), geometry, (19.0, 5.4))
    unbounded = choose_frontier(grid, field, PlannerConfig())
    assert unbounded is not None and unbounded.x > 21.0, "without a size: the leak's end, the nearest frontier"
    bounded = choose_frontier(grid, field, PlannerConfig(arena_size_m=17.5))
    assert bounded is not None and bounded.x < 3.5 and bounded.y > 18.0, "with it: the unseen corner"
    assert arena_cells(np.full((60, 60), -1, np.int8), GridGeometry(0.25, 60, 60), 5.0, 1.0) is None  # nothing seen
    with pytest.raises(ValueError, match="arena_size_m"):
        PlannerConfig(arena_size_m=-5.0)


def test_a_robot_that_arrived_parks_out_of_the_way(known):
    occupancy, geometry = known
    spot = park_spot(occupancy, geometry, (7.5, 1.5))   # the target at the end of the right-hand corridor
    assert spot is not None
    rows, cols, _ = geometry.cell_indices(np.array([spot[0]]), np.array([spot[1]]))
    assert occupancy[rows[0], cols[0]] == 0
    path = plan_path(occupancy, geometry, (7.5, 1.5), spot)
    assert path is not None and np.linalg.norm(np.diff(path, axis=0), axis=1).sum() >= 1.5


def test_goal_from_query_answers():
    assert label_matches("red target", "the red target")
    assert not label_matches("blue target", "the red target") and not label_matches("wall", "the red target")
    locations = np.array([[2.0, 3.0], [2.2, 3.2], [9.0, 9.0]])
    assert goal_from_answer(locations, ["red target", "red target", "wall"], "the red target") == \
        pytest.approx((2.1, 3.1))
    assert goal_from_answer(locations, ["wall", "red target", "red target"], "the red target") is None
    assert goal_from_answer(np.zeros((0, 2)), [], "the red target") is None


def test_a_goal_is_the_densest_sighting_not_the_mean_of_two():
    """Two sightings 6 m apart: the mean (a phantom between them, often in a wall) is no goal; the larger one is."""
    locations = np.array([[0.0, 0.0], [6.0, 0.0], [6.2, 0.0], [5.8, 0.2], [0.1, 0.1]])
    labels = ["red target"] * 5
    assert goal_from_answer(locations, labels, "the red target") == pytest.approx((6.0, 0.0667), abs=1e-3)


def test_places_found_empty_are_left_out_of_the_goal():
    locations = np.array([[6.0, 0.0], [6.2, 0.0], [0.0, 0.0], [0.1, 0.1]])
    labels = ["red target"] * 4
    assert goal_from_answer(locations, labels, "the red target", not_here=[(6.1, 0.1)]) == \
        pytest.approx((0.05, 0.05))
    assert goal_from_answer(locations, labels, "the red target", not_here=[(6.1, 0.1), (0.0, 0.0)]) is None


def test_a_place_found_empty_twice_rules_out_its_surroundings_once_only():
    locations = np.array([[6.0, 0.0], [6.2, 0.0], [0.0, 0.0], [0.1, 0.1]])
    labels = ["red target"] * 4
    first = found_empty((5.0, 0.0), [])
    assert first == EmptyPlace(5.0, 0.0, 0.75)
    assert goal_from_answer(locations, labels, "the red target", not_here=[first]) == pytest.approx((6.1, 0.0))
    second = found_empty((5.4, 0.4), [first])  # 0.57 m from the first: the same object
    assert second == pytest.approx((5.2, 0.2, 1.5))
    assert goal_from_answer(locations, labels, "the red target", not_here=[first, second]) == \
        pytest.approx((0.05, 0.05))
    assert found_empty((8.0, 0.0), [first]).radius == 0.75  # 3 m away: another place


def test_reaching_the_target_forgets_the_places_found_empty_beside_it_only():
    beside, twice, far = EmptyPlace(1.0, 0.0, 0.75), EmptyPlace(0.0, 3.0, 1.5), EmptyPlace(6.0, 0.0, 0.75)
    assert still_empty([beside, twice, far], (0.0, 0.0), 1.5) == [far]      # 1 <= 2.25, 3 <= 3.0, 6 > 2.25
    assert still_empty([beside, twice, far], (0.0, 0.0), 0.2) == [beside, twice, far]   # all beyond reach
    assert still_empty([], (0.0, 0.0), 1.5) == []


def test_the_score_robot_forgets_a_colours_empty_places_where_that_colour_was_reached():
    from spatial_memory_ros.evaluation.memory_maze_agent import MemoryMazeAgent

    agent = MemoryMazeAgent(9, adapter=None, embedder=LabelEmbedder({}))   # no asking here
    agent._robot_for("salmon")
    agent._not_here["salmon"] = [EmptyPlace(1.0, 0.5), EmptyPlace(7.0, 0.0)]   # false arrivals at both
    agent.pose = Pose2D(0.2, 0.0, 0.0)        # salmon's reward came here: the new colour is red
    agent._robot_for("red")
    assert agent.empty_places_cleared == 1 and agent._not_here["salmon"] == [EmptyPlace(7.0, 0.0)]
    assert agent._robot_for("salmon").not_here == [EmptyPlace(7.0, 0.0)]   # salmon asked again: only the far one


def test_a_robot_told_its_target_is_not_there_looks_elsewhere():
    from spatial_memory_ros.behaviour.robot import Robot

    robot = Robot("the red target", geometry=GridGeometry(0.25, 40, 40))
    phantom_and_real = (np.array([[2.0, 2.0], [2.1, 2.0], [8.0, 8.0]]), ["red target"] * 3)
    robot.take_answer(*phantom_and_real)
    assert robot.goal == pytest.approx((2.05, 2.0))
    robot.arrived = True
    robot.not_found_here()
    assert not robot.arrived and robot.goal is None and robot.should_ask()
    robot.take_answer(*phantom_and_real)
    assert robot.goal == pytest.approx((8.0, 8.0))
    assert Robot("the red target", not_here=robot.not_here).not_here == [pytest.approx((2.05, 2.0, 0.75))]


def test_an_arrival_the_world_does_not_confirm_makes_the_place_one_found_empty():
    from spatial_memory_ros.behaviour.robot import Robot

    robot = Robot("the red target", geometry=GridGeometry(0.25, 40, 40))
    robot.take_answer(np.array([[2.0, 2.0], [2.1, 2.0]]), ["red target"] * 2)
    assert not robot.unconfirmed_arrival()  # not arrived: nothing to confirm
    robot.arrived = True  # by its own pose, at the memory's goal
    assert robot.unconfirmed_arrival()
    assert not robot.arrived and robot.goal is None and robot.should_ask()
    assert robot.not_here == [pytest.approx((2.05, 2.0, 0.75))]
    assert not robot.unconfirmed_arrival()  # told once
    robot.reached()  # the world's word: a real arrival stays one
    assert not robot.unconfirmed_arrival() and robot.arrived


def test_goal_sampled_from_a_memory_that_saw_the_target():
    geometry = GridGeometry(0.25, 40, 40)
    memory = RobotMemory(geometry, LabelEmbedder.synthetic(), "robot1")
    assert goal_from_memory(memory, "the red target") is None
    occupancy = np.zeros((32, 32), np.int8)
    objects = np.zeros((32, 32), np.uint8)
    objects[16, 8] = CLASS_NAMES.index("red") + 1
    bev = BevGrid(occupancy, objects, 0.25, 0.0, -4.0, CLASS_NAMES)
    memory.observe(bev, Pose2D(2.0, 5.0, 0.0), 0.05, 0.0)
    assert goal_from_memory(memory, "the red target", seed=1) is None, "one view of an object is not evidence"
    memory.observe(bev, Pose2D(2.0, 5.0, 0.0), 0.05, 0.25)
    goal = goal_from_memory(memory, "the red target", seed=1)
    assert goal is not None and math.hypot(goal[0] - 4.125, goal[1] - 5.125) < 0.4
    assert goal_from_memory(memory, "the blue target", seed=1) is None


def test_a_target_that_later_views_show_is_not_there_leaves_the_memory():
    """Negative evidence: views of the bin without the object withdraw its label, and the robot's own entries of it
    go; a teammate's sighting of the same object stays (only its sender can withdraw it)."""
    memory = RobotMemory(GridGeometry(0.25, 40, 40), LabelEmbedder.synthetic(), "robot1")
    objects = np.zeros((32, 32), np.uint8)
    objects[16, 8] = CLASS_NAMES.index("red") + 1
    seen = BevGrid(np.zeros((32, 32), np.int8), objects, 0.25, 0.0, -4.0, CLASS_NAMES)
    empty = BevGrid(np.zeros((32, 32), np.int8), np.zeros_like(objects), 0.25, 0.0, -4.0, CLASS_NAMES)
    pose = Pose2D(2.0, 5.0, 0.0)
    for stamp in (0.0, 0.25):
        memory.observe(seen, pose, 0.05, stamp)
    assert goal_from_memory(memory, "the red target", seed=1) is not None
    teammate = memory.values(Observations(np.array([[4.1, 5.1]], np.float32), ["red target"],
                                          np.array([[0.0, 0.0, 1.0, 0.5]], np.float32)))
    memory.merge(np.array([[4.1, 5.1]]), np.array([0.1]), teammate, ["red target"], ["robot2"], np.array([0.3]))
    views_until_withdrawn = None
    for view in range(1, 21):
        memory.observe(empty, pose, 0.05, 0.25 * (view + 2))
        if views_until_withdrawn is None and memory.entries_withdrawn:
            views_until_withdrawn = view
    assert views_until_withdrawn is not None and views_until_withdrawn >= 5, \
        f"withdrawn after {views_until_withdrawn} views without it: a few misses must not erase an object"
    snapshot = memory.memory.snapshot()
    assert [source for label, source in zip(snapshot.labels, snapshot.sources) if label == "red target"] == ["robot2"]


def test_clearance_looks_ahead_but_not_beside():
    occupancy = np.zeros((32, 32), np.int8)
    bev = BevGrid(occupancy.copy(), np.zeros((32, 32), np.uint8), 0.25, 0.0, -4.0, CLASS_NAMES)
    assert clearance_ahead(bev, 0.18) == 3.0
    bev.occupancy[16, 6] = 100                      # 1.5 m straight ahead
    assert clearance_ahead(bev, 0.18) == pytest.approx(1.5)
    beside = BevGrid(occupancy.copy(), np.zeros((32, 32), np.uint8), 0.25, 0.0, -4.0, CLASS_NAMES)
    beside.occupancy[17, :] = 100                   # a wall along the robot's left side, 0.25 m off its centre line
    beside.occupancy[14, :] = 100
    assert clearance_ahead(beside, 0.1) == 3.0


def test_wall_cells_measure_straight_line_clearance(known):
    occupancy, geometry = known
    walls = WallCells(occupancy, geometry)
    assert walls.segment_clearance((1.5, 1.5), (1.5, 3.5)) == pytest.approx(0.5)
    assert walls.segment_clearance((1.5, 1.5), (3.5, 3.5)) < 0.1  # cuts through the wall at (2, 2)


@pytest.mark.parametrize("goal", [(5.5, 1.5), (7.5, 5.5)])
def test_navigator_drives_a_simulated_robot_to_a_goal_in_a_known_map(maze, known, goal):
    occupancy, geometry = known
    world = World(maze, num_robots=1, seed=3)
    world.set_pose(0, Pose2D(1.5, 1.5, 0.0))
    navigator = Navigator(geometry, seed=4)
    for _ in range(400):
        pose = world.true_pose(0)
        if math.hypot(pose.x - goal[0], pose.y - goal[1]) < 0.3:
            break
        world.step([navigator.step(world.oracle_bev(0), pose, occupancy, goal, twist=world.true_twist(0))])
    pose = world.true_pose(0)
    assert math.hypot(pose.x - goal[0], pose.y - goal[1]) < 0.3, navigator.status.mode


def test_navigator_explores_an_unknown_map_by_frontiers(maze, known):
    from spatial_memory_ros.memory.mapping import LogOddsMap, bev_to_map

    truth, geometry = known
    world = World(maze, num_robots=1, seed=5)
    world.set_pose(0, Pose2D(1.5, 1.5, 0.0))
    grid = LogOddsMap(geometry)
    navigator = Navigator(geometry, seed=6)
    modes = set()
    for _ in range(500):
        bev, pose = world.oracle_bev(0), world.true_pose(0)
        grid.integrate(bev_to_map(bev, pose))
        world.step([navigator.step(bev, pose, grid.occupancy(), twist=world.true_twist(0))])
        modes.add(navigator.status.mode)
    seen_free = (grid.occupancy() >= 0) & (grid.occupancy() < 50) & (truth == 0)
    assert seen_free.sum() / (truth == 0).sum() > 0.9
    assert "frontier" in modes


def _wall_blob(occupancy, geometry, centre, half):
    """A copy with a square of wall cells of half-width ``half`` around ``centre`` (a target mapped as a wall)."""
    xs, ys = geometry.cell_centres()
    blob = occupancy.copy()
    blob[(np.abs(xs - centre[0]) <= half) & (np.abs(ys - centre[1]) <= half)] = 100
    return blob


def test_walls_near_a_goal_read_as_unknown_for_planning(known):
    occupancy, geometry = known
    goal = (5.5, 1.5)
    blob = _wall_blob(occupancy, geometry, goal, 0.4)
    cleared = clear_around(blob, geometry, goal, 0.3)
    xs, ys = geometry.cell_centres()
    near = np.hypot(xs - goal[0], ys - goal[1]) <= 0.3
    assert (cleared[near] == -1).all() and (blob[near] == 100).all()
    assert (cleared[~near] == blob[~near]).all()
    assert (blob[near] == 100).all()  # the map passed in is not changed
    assert (clear_around(blob, geometry, goal, 0.0) == blob).all()


def test_nearest_reachable_cell_of_a_sealed_off_point(known):
    occupancy, geometry = known
    blob = _wall_blob(occupancy, geometry, (5.5, 1.5), 0.6)
    field = shortest_paths(cost_grid(blob, geometry, PlannerConfig()), geometry, (1.5, 1.5))
    cell = field.nearest_reachable((5.5, 1.5), 1.0)
    assert cell is not None and np.isfinite(field.distances.reshape(-1)[cell])
    xs, ys = geometry.cell_centres()
    assert 0.6 < math.hypot(xs.reshape(-1)[cell] - 5.5, ys.reshape(-1)[cell] - 1.5) <= 1.0
    assert field.nearest_reachable((5.5, 1.5), 0.5) is None


@pytest.mark.parametrize("half", [0.4, 0.6])
def test_navigator_drives_to_a_goal_the_map_walls_in(maze, known, half):
    """A target mapped as a wall (a blob around the goal the world does not have) must not send the robot away
    exploring: 0.4 m is cleared (goal_clear_radius 0.5), 0.6 m is reached via the nearest reachable cell."""
    occupancy, geometry = known
    goal = (5.5, 1.5)
    blob = _wall_blob(occupancy, geometry, goal, half)
    world = World(maze, num_robots=1, seed=3)
    world.set_pose(0, Pose2D(1.5, 1.5, 0.0))
    navigator = Navigator(geometry, PlannerConfig(goal_clear_radius=0.5), seed=4)
    modes = set()
    for _ in range(400):
        pose = world.true_pose(0)
        if math.hypot(pose.x - goal[0], pose.y - goal[1]) < 0.3:
            break
        world.step([navigator.step(world.oracle_bev(0), pose, blob, goal, twist=world.true_twist(0))])
        modes.add(navigator.status.mode)
    pose = world.true_pose(0)
    assert math.hypot(pose.x - goal[0], pose.y - goal[1]) < 0.3, modes
    assert "frontier" not in modes and "wander" not in modes
