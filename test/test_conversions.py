"""conversions.py: message <-> core round trips, validation messages, planar pose algebra."""
from __future__ import annotations

import math

import numpy as np
import pytest

from spatial_memory_ros.conversions import (InvalidMessage, bev_to_msg, compose, image_to_msg, inverse,
                                            msg_to_bev, msg_to_image, seconds_to_time, time_to_seconds)
from spatial_memory_ros.sim.maze import generate_maze
from spatial_memory_ros.sim.world import World
from spatial_memory_ros.types import Pose2D


def test_bev_and_image_round_trip():
    world = World(generate_maze(9, seed=1), num_robots=1, seed=1)
    bev = world.oracle_bev(0)
    back = msg_to_bev(bev_to_msg(bev, seconds_to_time(1.5), "robot1/base_link", "robot1"))
    np.testing.assert_array_equal(back.occupancy, bev.occupancy)
    np.testing.assert_array_equal(back.object_class, bev.object_class)
    image = world.render(0)
    np.testing.assert_array_equal(msg_to_image(image_to_msg(image, seconds_to_time(0.0), "cam")), image)


def test_bad_bev_and_image_are_explained():
    msg = bev_to_msg(World(generate_maze(9, seed=1), 1, seed=1).oracle_bev(0), seconds_to_time(0.0), "b", "r")
    msg.occupancy = msg.occupancy[:-1]
    with pytest.raises(InvalidMessage, match="width \\* height"):
        msg_to_bev(msg)
    image = image_to_msg(np.zeros((4, 4, 3), np.uint8), seconds_to_time(0.0), "cam")
    image.encoding = "mono16"
    with pytest.raises(InvalidMessage, match="rgb8"):
        msg_to_image(image)


def test_planar_pose_algebra():
    a, b = Pose2D(1.0, 2.0, 0.7), Pose2D(-0.5, 0.3, -2.0)
    identity = compose(a, inverse(a))
    assert abs(identity.x) < 1e-12 and abs(identity.y) < 1e-12 and abs(identity.theta) < 1e-12
    c = compose(compose(a, b), inverse(b))
    assert math.isclose(c.x, a.x, abs_tol=1e-12) and math.isclose(c.theta, a.theta, abs_tol=1e-12)


def test_time_round_trip():
    assert time_to_seconds(seconds_to_time(12.3456789)) == pytest.approx(12.3456789, abs=1e-9)
