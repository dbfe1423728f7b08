"""Doubting walls: a search that has gone on long without a goal explores behind walls the map holds only weakly
(planner.open_doubtful_walls, Navigator ``doubt_walls``, RobotConfig.doubt_walls_after), since the map closes a
doorway with a wall seen from afar (Memory-Maze 15x15 seed 3,000,002)."""
import numpy as np
import pytest

from spatial_memory_ros.behaviour.navigator import Navigator
from spatial_memory_ros.behaviour.planner import (PlannerConfig, choose_frontier, cost_grid, frontier_mask,
                                                  open_doubtful_walls, shortest_paths)
from spatial_memory_ros.behaviour.robot import Robot, RobotConfig, Senses
from spatial_memory_ros.types import BevGrid, GridGeometry, Pose2D

GEOMETRY = GridGeometry(0.25, 40, 40, 0.0, 0.0)  # 10 x 10 m
CERTAIN, DOUBTFUL = 98, 70  # wall probability in percent: many hits, one hit


def closed_room(doorway: int = DOUBTFUL) -> np.ndarray:
    """A known free 5 x 5 m room (cells 4..23) in the unknown, walled all round by certain walls but for a 1.5 m
    doorway in its east wall whose cells hold ``doorway`` percent."""
    grid = np.full((40, 40), -1, np.int8)
    grid[3:25, 3:25] = CERTAIN
    grid[4:24, 4:24] = 0
    grid[10:16, 24] = doorway
    return grid


def test_doubtful_walls_next_to_the_unknown_read_as_unknown_and_certain_ones_stay():
    grid = closed_room()
    grid[14, 10] = DOUBTFUL  # a doubtful cell inside the seen room touches no unknown: it stays a wall
    opened = open_doubtful_walls(grid, 85)
    assert (opened[10:16, 24] == -1).all()
    assert opened[14, 10] == DOUBTFUL
    assert (opened[3, 3:25] == CERTAIN).all() and (opened[4:24, 4:24][grid[4:24, 4:24] == 0] == 0).all()
    assert (grid[10:16, 24] == DOUBTFUL).all(), "the map passed in is left as it was"


def test_a_doubtful_band_two_cells_thick_opens_through_to_the_unknown():
    grid = closed_room()
    grid[10:16, 23] = DOUBTFUL
    opened = open_doubtful_walls(grid, 85)
    assert (opened[10:16, 23:25] == -1).all()


def test_a_map_without_doubtful_walls_comes_back_unchanged():
    grid = closed_room(doorway=CERTAIN)
    assert open_doubtful_walls(grid, 85) is grid or np.array_equal(open_doubtful_walls(grid, 85), grid)


def test_a_closed_doorway_becomes_the_frontier_only_when_walls_are_doubted():
    config = PlannerConfig()
    grid = closed_room()
    start = (2.0, 2.0)  # in the room
    closed = shortest_paths(cost_grid(grid, GEOMETRY, config), GEOMETRY, start)
    assert not frontier_mask(grid)[4:24, 4:24].any() and choose_frontier(grid, closed, config) is None
    opened = open_doubtful_walls(grid, config.doubtful_wall_below)
    field = shortest_paths(cost_grid(opened, GEOMETRY, config), GEOMETRY, start)
    frontier = choose_frontier(opened, field, config)
    assert frontier is not None and 5.5 < frontier.x < 6.0 and 2.5 < frontier.y < 4.0  # before the doorway


def test_the_maps_own_frontier_comes_first_unless_it_is_farther_than_the_doubt_costs():
    config = PlannerConfig()
    grid = closed_room()
    grid[10:16, 3] = -1  # the west wall was never seen there: an ordinary frontier at x = 1 m
    opened = open_doubtful_walls(grid, config.doubtful_wall_below)
    field = shortest_paths(cost_grid(opened, GEOMETRY, config), GEOMETRY, (5.0, 3.2))  # 0.8 m from the doorway
    nearest = choose_frontier(opened, field, config)
    ranked = choose_frontier(opened, field, config, ordinary=frontier_mask(grid))
    assert nearest.x > 5.5 and ranked.x < 1.5
    cheap = PlannerConfig(doubtful_frontier_cost=0.0)
    assert choose_frontier(opened, field, cheap, ordinary=frontier_mask(grid)).x > 5.5


def test_a_navigator_asked_to_doubt_walls_drives_to_the_closed_doorway():
    grid = closed_room()
    pose = Pose2D(2.0, 2.0, 0.0)
    navigator = Navigator(GEOMETRY)
    navigator.step(None, pose, grid)
    assert navigator.status.mode == "wander"
    navigator.step(None, pose, grid, doubt_walls=True)
    assert navigator.status.mode == "frontier" and navigator.status.target[0] > 5.5
    navigator.step(None, pose, grid, doubt_walls=False)
    assert navigator.status.mode == "wander", "no longer doubting, the doorway is closed again at once"


def test_a_threshold_outside_wall_probabilities_and_a_negative_cost_are_refused():
    with pytest.raises(ValueError, match="doubtful_wall_below"):
        PlannerConfig(doubtful_wall_below=30)
    with pytest.raises(ValueError, match="doubtful_frontier_cost"):
        PlannerConfig(doubtful_frontier_cost=-1.0)


def searcher(after: int) -> Robot:
    return Robot("the red target", RobotConfig(park=False, doubt_walls_after=after), GEOMETRY)


def senses(grid: np.ndarray) -> Senses:
    bev = BevGrid(np.zeros((40, 40), np.int8), np.zeros((40, 40), np.uint8), 0.1, 0.0, -2.0, ("red",))
    return Senses(bev, Pose2D(2.0, 2.0, 0.0), grid, (), (0.0, 0.0))


def test_a_robot_doubts_walls_only_after_its_set_search_without_a_goal():
    grid = closed_room()
    robot = searcher(5)
    for _ in range(4):
        robot.take_answer(np.zeros((0, 2)), [])
        robot.step(senses(grid))
    assert not robot.doubting_walls and robot.navigator.status.mode == "wander"
    robot.step(senses(grid))
    robot.step(senses(grid))
    assert robot.doubting_walls and robot.navigator.status.mode == "frontier"
    robot.take_answer(np.array([[3.0, 3.0], [3.1, 3.0]]), ["red target"] * 2)
    robot.step(senses(grid))
    assert robot.status == "going to goal", "with a goal the map's walls are driven by as they are"


def test_by_default_a_robot_never_doubts_its_walls_and_a_negative_count_is_refused():
    robot = Robot("the red target", RobotConfig(park=False), GEOMETRY)
    for _ in range(30):
        robot.step(senses(closed_room()))
    assert not robot.doubting_walls
    with pytest.raises(ValueError, match="doubt_walls_after"):
        RobotConfig(doubt_walls_after=-1)


def test_out_of_frontiers_the_navigator_looks_behind_doubtful_walls_before_it_wanders():
    pose = Pose2D(2.0, 2.0, 0.0)
    navigator = Navigator(GEOMETRY, PlannerConfig(doubt_when_out_of_frontiers=True))
    navigator.step(None, pose, closed_room())
    assert navigator.status.mode == "frontier" and navigator.status.doubting and navigator.status.target[0] > 5.5
    default = Navigator(GEOMETRY)  # the default keeps the random walk
    default.step(None, pose, closed_room())
    assert default.status.mode == "wander" and not PlannerConfig().doubt_when_out_of_frontiers


def test_the_last_resort_waits_for_the_maps_own_frontiers_and_for_a_doubtful_wall():
    pose = Pose2D(2.0, 2.0, 0.0)
    config = PlannerConfig(doubt_when_out_of_frontiers=True)
    grid = closed_room()
    grid[10:16, 3] = -1  # an ordinary frontier at the west wall, 5 m farther than the doorway is
    navigator = Navigator(GEOMETRY, config)
    navigator.step(None, Pose2D(5.0, 3.2, 0.0), grid)
    assert navigator.status.mode == "frontier" and navigator.status.target[0] < 1.5 and not navigator.status.doubting
    firm = Navigator(GEOMETRY, config)
    firm.step(None, pose, closed_room(doorway=CERTAIN))
    assert firm.status.mode == "wander", "a room closed by walls the map holds firmly leaves only the random walk"


def two_rooms(between: int = DOUBTFUL) -> np.ndarray:
    """Two known free rooms, west (x 1-5 m) and east (x 5.25-9 m), apart by a wall one cell thick whose south metre
    (y 1-2 m) holds ``between`` percent, the rest firm, and joined by a corridor round the north (y 9-9.75 m):
    from (3, 1.5) to (7, 1.5) it is 4 m through the wall and some 19 m round."""
    grid = np.full((40, 40), CERTAIN, np.int8)
    grid[4:36, 4:20] = 0
    grid[4:36, 21:36] = 0
    grid[36:39, 4:36] = 0
    grid[4:8, 20] = between
    return grid


def goal_path_length(config: PlannerConfig, grid: np.ndarray) -> float:
    navigator = Navigator(GEOMETRY, config)
    navigator.step(None, Pose2D(3.0, 1.5, 0.0), grid, goal=(7.0, 1.5))
    assert navigator.status.mode == "goal"
    return float(np.hypot(*np.diff(navigator.status.path, axis=0).T).sum())


def test_a_goals_path_crosses_a_doubtful_wall_only_when_asked_and_never_a_firm_one():
    through = PlannerConfig(goal_through_doubtful_walls=True)
    assert goal_path_length(through, two_rooms()) < 5.0, "a doubtful wall a cell thick (10 m of cost) beats 19 m round"
    assert goal_path_length(PlannerConfig(), two_rooms()) > 14.0, "by default the map's walls hold"
    assert goal_path_length(through, two_rooms(between=CERTAIN)) > 14.0, "a firm wall is never crossed"
    dear = PlannerConfig(goal_through_doubtful_walls=True, doubtful_wall_cost=100.0)
    assert goal_path_length(dear, two_rooms()) > 14.0, "unless crossing costs more than the way round"


def test_doubtful_walls_are_passable_only_in_a_goals_costs_and_a_negative_cost_is_refused():
    config = PlannerConfig()
    grid = two_rooms()
    assert np.isinf(cost_grid(grid, GEOMETRY, config)[5, 20])
    passable = cost_grid(grid, GEOMETRY, config, doubtful_passable=True)
    assert np.isfinite(passable[5, 20]) and passable[5, 20] >= config.doubtful_wall_cost
    assert np.isinf(passable[10, 20]), "firm walls stay walls"
    navigator = Navigator(GEOMETRY, PlannerConfig(goal_through_doubtful_walls=True))
    navigator.step(None, Pose2D(3.0, 1.5, 0.0), grid)  # no goal: exploring plans on the map's own walls
    assert navigator.status.mode in ("frontier", "wander")
    with pytest.raises(ValueError, match="doubtful_wall_cost"):
        PlannerConfig(doubtful_wall_cost=-1.0)
