"""Look-alikes: a robot that has searched too long without a goal tries the objects its memory holds, best first,
each ruled out in turn when it is not the target (RobotConfig.look_alike_after; behaviour/robot.py)."""
import numpy as np
import pytest

from spatial_memory_ros.behaviour.robot import LOOK_ALIKE_QUERY, Robot, RobotConfig, Senses
from spatial_memory_ros.types import BevGrid, GridGeometry, Pose2D

GEOMETRY = GridGeometry(0.25, 80, 80, -10.0, -10.0)
CLASSES = ("red", "green", "yellow")


def view(*discs: tuple[float, float, int]) -> BevGrid:
    """A 4 x 4 m egocentric view (0.1 m cells, x 0..4 m ahead, y -2..2 m) with discs (forward, left, class)."""
    bev = BevGrid(np.zeros((40, 40), np.int8), np.zeros((40, 40), np.uint8), 0.1, 0.0, -2.0, CLASSES)
    forward, left = bev.cell_centers()
    for x, y, k in discs:
        bev.object_class[np.hypot(forward - x, left - y) <= 0.3] = k
    return bev


def senses(bev: BevGrid | None = None) -> Senses:
    return Senses(bev if bev is not None else view(), Pose2D(0.0, 0.0, 0.0), np.zeros((80, 80), np.int8), (),
                  (0.0, 0.0))


GREEN = (np.array([[5.0, 2.0], [5.1, 2.0], [5.0, 2.1]]), ["green target"] * 3)
GREEN_AND_YELLOW = (np.array([[5.0, 2.0], [5.1, 2.0], [5.0, 2.1], [-4.0, 3.0], [-4.1, 3.0]]),
                    ["green target"] * 3 + ["yellow target"] * 2)


def searcher(after: int, searched: int | None = None) -> Robot:
    """A robot after the red target, trying look-alikes ``after`` steps, that has searched ``searched`` steps
    (default: ``after``) without a goal."""
    robot = Robot("the red target", RobotConfig(park=False, look_alike_after=after), GEOMETRY)
    for _ in range(after if searched is None else searched):
        robot.take_answer(np.zeros((0, 2)), [])
        robot.step(senses())
    return robot


def test_by_default_a_robot_never_takes_another_object_for_its_target():
    robot = searcher(0)
    for _ in range(50):
        robot.step(senses())
    assert robot.ask_text == "the red target" and not robot.trying_look_alikes
    robot.take_answer(*GREEN)
    assert robot.goal is None


def test_after_the_set_search_the_robot_asks_for_any_object_and_drives_to_it():
    robot = searcher(5)
    assert robot.steps_without_goal == 5 and robot.trying_look_alikes and robot.ask_text == LOOK_ALIKE_QUERY
    robot.take_answer(*GREEN)
    assert robot.goal == pytest.approx((5.03, 2.03), abs=0.01)
    robot.step(senses())
    assert robot.status == "going to goal" and robot.navigator.status.target == pytest.approx(robot.goal)


def test_the_search_count_stops_while_the_robot_has_its_own_target_as_goal():
    robot = searcher(20, searched=3)
    robot.take_answer(np.array([[5.0, 2.0], [5.1, 2.0]]), ["red target"] * 2)
    for _ in range(10):
        robot.step(senses())
    assert robot.goal is not None and robot.steps_without_goal == 3 and not robot.trying_look_alikes


def test_a_look_alike_found_empty_is_ruled_out_and_the_next_one_taken():
    robot = searcher(5)
    robot.take_answer(*GREEN)
    robot.arrived = True  # drove there and turned; the world said nothing
    assert robot.unconfirmed_arrival()
    assert robot.goal is None and robot.trying_look_alikes and robot.should_ask()
    robot.take_answer(*GREEN_AND_YELLOW)
    assert robot.goal == pytest.approx((-4.05, 3.0), abs=0.01)


def test_the_real_target_in_view_wins_over_a_look_alike():
    robot = searcher(5)
    robot.take_answer(*GREEN)
    for _ in range(2):
        robot.step(senses(view((2.0, 1.0, 1))))  # red, 2 m ahead and 1 m left
    assert robot.current_goal == pytest.approx((2.0, 1.0), abs=0.06)


def test_a_negative_search_length_is_refused():
    with pytest.raises(ValueError, match="look_alike_after"):
        RobotConfig(look_alike_after=-1)


def test_an_object_known_to_be_another_target_is_no_look_alike_but_stays_a_goal_for_its_own_query():
    robot = Robot("the red target", RobotConfig(park=False, look_alike_after=5), GEOMETRY,
                  other_objects=[(5.0, 2.0, 1.5)])  # the green target, reached earlier
    for _ in range(5):
        robot.step(senses())
    robot.take_answer(*GREEN_AND_YELLOW)
    assert robot.goal == pytest.approx((-4.05, 3.0), abs=0.01)
    plain = Robot("the green target", RobotConfig(park=False), GEOMETRY, other_objects=[(5.0, 2.0, 1.5)])
    plain.take_answer(*GREEN)
    assert plain.goal == pytest.approx((5.03, 2.03), abs=0.01)
