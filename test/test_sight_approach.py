"""The final approach by sight: the current view's sighting of the query's object, and the Robot driving to it."""
import math

import numpy as np
import pytest

from spatial_memory_ros.behaviour.goals import NOT_HERE_RADIUS, WRONG_OBJECT_RADIUS, sighting_in_view
from spatial_memory_ros.behaviour.robot import Robot, RobotConfig, Senses
from spatial_memory_ros.types import BevGrid, GridGeometry, Pose2D

CLASSES = ("red", "green")


def view(*discs: tuple[float, float, int], radius: float = 0.3) -> BevGrid:
    """A 4 x 4 m egocentric view (0.1 m cells, x 0..4 m ahead, y -2..2 m) with discs (forward, left, class)."""
    bev = BevGrid(np.zeros((40, 40), np.int8), np.zeros((40, 40), np.uint8), 0.1, 0.0, -2.0, CLASSES)
    forward, left = bev.cell_centers()
    for x, y, k in discs:
        bev.object_class[np.hypot(forward - x, left - y) <= radius] = k
    return bev


def test_a_sighting_is_put_on_the_map_from_the_pose():
    seen = sighting_in_view(view((2.0, 1.0, 1)), Pose2D(1.0, 1.0, math.pi / 2), "the red target", 3.0)
    assert seen == pytest.approx((0.0, 3.0), abs=0.06)
    assert all(isinstance(value, float) for value in seen)


@pytest.mark.parametrize("query, max_range, not_here", [
    ("the green target", 3.0, ()),    # not the class asked for
    ("the red target", 1.5, ()),      # too far to trust
    ("the red target", 0.0, ()),      # sight switched off
    ("the red target", 3.0, [(2.5, 1.0)]),  # within 0.75 m of a place already found empty
])
def test_no_sighting_when_the_view_does_not_answer(query, max_range, not_here):
    assert sighting_in_view(view((2.0, 1.0, 1)), Pose2D(0.0, 0.0, 0.0), query, max_range,
                            not_here=not_here) is None


def test_a_few_flickering_cells_are_no_sighting():
    bev = view()
    bev.object_class[20, 20] = 1
    assert sighting_in_view(bev, Pose2D(0.0, 0.0, 0.0), "the red target", 3.0) is None


def test_two_objects_of_a_kind_are_not_averaged_into_a_phantom_between_them():
    bev = view((1.0, -1.5, 1), (3.0, 1.0, 1), (3.3, 1.0, 1))
    seen = sighting_in_view(bev, Pose2D(0.0, 0.0, 0.0), "the red target", 4.0)
    assert seen == pytest.approx((3.15, 1.0), abs=0.1)


def sighted_robot(sight_frames: int = 2) -> Robot:
    config = RobotConfig(sight_range=3.0, sight_frames=sight_frames, park=False)
    robot = Robot("the red target", config, GridGeometry(0.25, 80, 80, -10.0, -10.0))
    robot.take_answer(np.array([[4.0, -1.0], [4.1, -1.0]]), ["red target"] * 2)  # the memory's goal, off by 2 m
    return robot


def senses(bev: BevGrid) -> Senses:
    return Senses(bev, Pose2D(0.0, 0.0, 0.0), np.zeros((80, 80), np.int8), (), (0.0, 0.0))


def test_the_robot_drives_to_what_it_sees_over_the_memory_goal_once_the_view_holds():
    robot = sighted_robot()
    robot.step(senses(view((2.0, 1.0, 1))))
    assert robot.sight is None, "one view is not enough"
    robot.step(senses(view((2.0, 1.0, 1))))
    assert robot.sight == pytest.approx((2.0, 1.0), abs=0.06)
    assert robot.navigator.status.target == pytest.approx(robot.sight) and robot.current_goal == robot.sight
    robot.step(senses(view()))
    assert robot.sight is not None, "the sighting stays the goal when the object leaves the view up close"


def test_views_that_lose_the_object_start_the_count_again():
    robot = sighted_robot(sight_frames=2)
    for bev in (view((2.0, 1.0, 1)), view(), view((2.0, 1.0, 1))):
        robot.step(senses(bev))
    assert robot.sight is None and robot.navigator.status.target == pytest.approx((4.05, -1.0))


def test_a_sighting_found_empty_is_remembered_and_not_taken_again():
    robot = sighted_robot()
    for _ in range(2):
        robot.step(senses(view((2.0, 1.0, 1))))
    robot.arrived = True
    robot.not_found_here()
    assert robot.sight is None and robot.goal is None
    assert robot.not_here[-1][:2] == pytest.approx((2.0, 1.0), abs=0.06)
    for _ in range(3):
        robot.step(senses(view((2.0, 1.0, 1))))
    assert robot.sight is None


def test_bad_sight_settings_are_refused():
    with pytest.raises(ValueError, match="sight_range"):
        RobotConfig(sight_range=float("nan"))
    with pytest.raises(ValueError, match="sight_frames"):
        RobotConfig(sight_range=2.0, sight_frames=0)


def test_at_the_memory_goal_the_robot_turns_once_on_the_spot_before_it_counts_itself_arrived():
    robot = Robot("the red target", RobotConfig(park=False), GridGeometry(0.25, 80, 80, -10.0, -10.0))
    robot.take_answer(np.array([[0.1, 0.0], [0.1, 0.05]]), ["red target"] * 2)  # the goal is where it stands
    turn = math.ceil(2 * math.pi / (robot.config.planner.max_angular_speed * robot.config.planner.dt))
    assert robot.look_around_steps == turn
    commands = [robot.step(senses(view())) for _ in range(turn)]
    assert all(v == 0 and w > 0 for v, w in commands[:-1]) and robot.status == "arrived" and robot.arrived
    assert robot.steps == turn


def test_a_target_seen_while_turning_at_the_goal_ends_the_turn_and_becomes_the_goal():
    robot = Robot("the red target", RobotConfig(park=False), GridGeometry(0.25, 80, 80, -10.0, -10.0))
    robot.take_answer(np.array([[0.1, 0.0], [0.1, 0.05]]), ["red target"] * 2)
    for bev in (view(), view(), view((2.0, 1.0, 1)), view((2.0, 1.0, 1))):
        robot.step(senses(bev))
    assert robot.sight == pytest.approx((2.0, 1.0), abs=0.06) and not robot.arrived
    robot.step(senses(view((2.0, 1.0, 1))))
    assert not robot.arrived and robot.status == "going to goal"
    assert robot.navigator.status.target == pytest.approx(robot.sight)



def test_a_goal_found_empty_after_a_full_turn_rules_out_only_the_place_itself():
    """A false arrival may be the robot's pose, not the memory's goal: the rest of the cluster stays a goal."""
    robot = Robot("the red target", RobotConfig(park=False), GridGeometry(0.25, 80, 80, -10.0, -10.0))
    blob = np.array([[0.1, 0.0], [0.1, 0.05], [1.2, 0.5], [1.3, 0.6], [6.0, 0.0]])
    robot.take_answer(blob, ["red target"] * 5)
    while not robot.arrived:
        robot.step(senses(view()))
    robot.not_found_here()
    assert robot.not_here == [pytest.approx((0.1, 0.025, NOT_HERE_RADIUS))]
    robot.take_answer(blob, ["red target"] * 5)
    assert robot.goal == pytest.approx((1.25, 0.55))


def test_a_glimpse_while_turning_at_the_goal_stops_the_turn_for_a_second_look():
    robot = Robot("the red target", RobotConfig(park=False), GridGeometry(0.25, 80, 80, -10.0, -10.0))
    robot.take_answer(np.array([[0.1, 0.0], [0.1, 0.05]]), ["red target"] * 2)
    turning = [robot.step(senses(view())) for _ in range(2)]
    assert all(v == 0 and w > 0 for v, w in turning) and robot.status == "looking around"
    assert robot.step(senses(view((2.0, 1.0, 1)))) == (0.0, 0.0), "a glimpse holds the view still"
    robot.step(senses(view((2.0, 1.0, 1))))
    assert robot.sight == pytest.approx((2.0, 1.0), abs=0.06), "the second look confirms it"
    flicker = Robot("the red target", RobotConfig(park=False), GridGeometry(0.25, 80, 80, -10.0, -10.0))
    flicker.take_answer(np.array([[0.1, 0.0], [0.1, 0.05]]), ["red target"] * 2)
    commands = [flicker.step(senses(view((2.0, 1.0, 1)) if k % 2 else view())) for k in range(3 * flicker.look_around_steps)]
    assert flicker.arrived and flicker.sight is None, "a glimpse the next view does not confirm is no target"
    assert sum(w > 0 for _, w in commands) == flicker.look_around_steps - 1


def test_an_object_found_empty_twice_is_ruled_out_with_its_surroundings():
    """A salmon target seen as red: its red sightings spread around it, and a place ruled out alone left the next
    sighting a metre away to drive back to. The second empty arrival near it rules out the object's surroundings."""
    robot = sighted_robot()
    for place in ((2.0, 1.0), (2.2, 1.9)):
        for _ in range(2):
            robot.step(senses(view((place[0], place[1], 1))))
        assert robot.sight == pytest.approx(place, abs=0.1)  # the view ends at 2 m left: a disc there is cut
        robot.arrived = True
        robot.not_found_here()
    first, second = robot.not_here
    assert first.radius == NOT_HERE_RADIUS and second.radius == WRONG_OBJECT_RADIUS
    assert (second.x, second.y) == pytest.approx((2.1, 1.45), abs=0.1)
    for _ in range(3):
        robot.step(senses(view((1.2, 1.6, 1))))  # over 0.75 m from both places, 0.9 m from their mean
    assert robot.sight is None
    for _ in range(2):
        robot.step(senses(view((2.0, -1.5, 1))))  # 2.7 m away: another object
    assert robot.sight == pytest.approx((2.0, -1.5), abs=0.06)


def test_places_found_empty_far_apart_stay_small():
    robot = sighted_robot()
    for place in ((2.0, 1.0), (2.0, -1.0)):
        for _ in range(2):
            robot.step(senses(view((place[0], place[1], 1))))
        robot.arrived = True
        robot.not_found_here()
    assert [place.radius for place in robot.not_here] == [NOT_HERE_RADIUS, NOT_HERE_RADIUS]
