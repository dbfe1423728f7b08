"""Landmarks: objects a BEV labels fix the pose when seen again (localization/landmarks.py, TemLocalizer)."""
import math

import numpy as np
import pytest

from spatial_memory_ros.localization.landmarks import LandmarkMap, Sighting, object_sightings
from spatial_memory_ros.localization.tem import TemLocalizer
from spatial_memory_ros.localization.tem_config import TemConfig
from spatial_memory_ros.types import BevGrid

RES, SIZE = 0.25, 32
ORIGIN = (0.0, -SIZE * RES / 2)


def bev_seeing(objects: list[tuple[int, float, float]]) -> BevGrid:
    """A free 8 x 8 m BEV ahead of the robot with a 0.5 m disc of class k at each robot-frame (x, y)."""
    occupancy = np.zeros((SIZE, SIZE), np.int8)
    classes = np.zeros((SIZE, SIZE), np.uint8)
    iy, ix = np.mgrid[0:SIZE, 0:SIZE]
    xs, ys = ORIGIN[0] + (ix + 0.5) * RES, ORIGIN[1] + (iy + 0.5) * RES
    for k, x, y in objects:
        classes[np.hypot(xs - x, ys - y) <= 0.5] = k
    return BevGrid(occupancy, classes, RES, ORIGIN[0], ORIGIN[1], ("red", "green"))


def test_sightings_are_blob_centres_near_enough_and_big_enough():
    bev = bev_seeing([(1, 2.0, 0.5), (2, 6.0, -1.0)])
    near = object_sightings(bev.object_class, RES, ORIGIN, min_cells=3, max_range=4.0)
    assert [s.class_id for s in near] == [1]
    assert near[0].x == pytest.approx(2.0, abs=0.1) and near[0].y == pytest.approx(0.5, abs=0.1)
    far = object_sightings(bev.object_class, RES, ORIGIN, min_cells=3, max_range=8.0)
    assert sorted(s.class_id for s in far) == [1, 2]
    speck = np.zeros((SIZE, SIZE), np.uint8)
    speck[16, 8] = 1
    assert object_sightings(speck, RES, ORIGIN, min_cells=3, max_range=8.0) == []


def test_a_landmark_seen_again_from_a_drifted_pose_says_where_the_robot_is():
    landmarks = LandmarkMap(TemConfig())
    assert landmarks.observe([Sighting(1, 2.0, 0.0)], (0.0, 0.0, 0.0), 0.05) is None  # first seen: stored
    assert len(landmarks.landmarks) == 1
    landmarks.moved(5.0)
    # truly at (1, 0) facing +x, so the object is 1 m ahead; the estimate says (1.8, 0.6)
    fix = landmarks.observe([Sighting(1, 1.0, 0.0)], (1.8, 0.6, 0.0), 1.0)
    assert fix is not None and fix.x == pytest.approx(1.0, abs=0.05) and fix.y == pytest.approx(0.0, abs=0.05)
    assert fix.sd < 1.0


def test_an_object_far_from_every_stored_one_is_a_new_landmark_not_a_fix():
    landmarks = LandmarkMap(TemConfig(landmark_gate=2.0))
    landmarks.observe([Sighting(1, 2.0, 0.0)], (0.0, 0.0, 0.0), 0.05)
    assert landmarks.observe([Sighting(1, 1.0, 0.0)], (10.0, 0.0, 0.0), 1.0) is None
    assert landmarks.observe([Sighting(2, 1.0, 0.0)], (1.0, 0.0, 0.0), 1.0) is None  # another class
    assert len(landmarks.landmarks) == 3


def test_a_robot_sure_of_its_pose_refines_the_landmark_instead_of_moving():
    landmarks = LandmarkMap(TemConfig())
    landmarks.observe([Sighting(1, 2.0, 0.0)], (0.0, 0.0, 0.0), 2.0)  # placed from a poor pose
    landmarks.moved(2.0)
    assert landmarks.observe([Sighting(1, 2.0, 0.0)], (0.5, 0.0, 0.0), 0.01) is None
    assert landmarks.landmarks[0].x > 2.4 and landmarks.landmarks[0].sd < 1.0


def test_two_fixes_far_apart_correct_the_heading():
    landmarks = LandmarkMap(TemConfig(landmark_min_baseline=4.0))
    landmarks.observe([Sighting(1, 1.0, 0.0)], (0.0, 0.0, 0.0), 0.05)
    landmarks.observe([Sighting(2, 1.0, 0.0)], (10.0, 0.0, 0.0), 0.05)
    landmarks.fixed(0.0, 0.0)
    landmarks.moved(10.0)
    # back at the first one's place... no: the robot drove from (0, 0) to (10, 0) but odometry, 5 deg off,
    # says it went to (10 cos 5, 10 sin 5)
    drift = math.radians(5.0)
    fix = landmarks.observe([Sighting(2, 1.0, 0.0)], (10 * math.cos(drift), 10 * math.sin(drift), drift), 0.5, 0.1)
    assert fix is not None and math.isfinite(fix.heading_sd)
    assert fix.heading_change == pytest.approx(-drift, abs=0.02)


def test_the_localizer_comes_back_to_a_landmark_where_it_truly_is():
    """Odometry 8 deg off in heading: dead reckoning ends metres away, the landmark brings the estimate back."""
    def run(use_landmarks: bool) -> float:
        tem = TemLocalizer(TemConfig(landmarks=use_landmarks), initial_pose=(0.0, 0.0, 0.0), initial_sigma=0.05,
                           extent=(-20.0, -20.0, 20.0, 20.0))
        tem.correct(bev_seeing([(1, 2.0, 0.0)]))  # a red object 2 m ahead of the start: at (2, 0)
        for _ in range(100):  # out 10 m along +x and back (a turn of pi), odometry reports 8 deg extra turn
            tem.predict(1.0, 0.0, 0.1)
        tem.predict(0.0, math.pi + math.radians(8.0), 1.0)
        for _ in range(95):
            tem.predict(1.0, 0.0, 0.1)
        # truly at (0.5, 0) facing -x: the object 1.5 m behind... turn round to face it
        tem.predict(0.0, math.pi, 1.0)
        tem.correct(bev_seeing([(1, 1.5, 0.0)]))
        estimate = tem.estimate()
        return math.hypot(estimate.x - 0.5, estimate.y - 0.0)

    without, with_landmarks = run(False), run(True)
    assert without > 1.0
    assert with_landmarks < 0.4


def test_an_object_fixed_to_the_camera_does_not_hold_the_robot_back():
    """A BEV source that draws the same 'object' 2 m ahead wherever the robot is (a smudge on the lens) must not
    pull a moving robot back to where it first drew it."""
    tem = TemLocalizer(TemConfig(), initial_pose=(0.0, 0.0, 0.0), initial_sigma=0.05,
                       extent=(-20.0, -20.0, 20.0, 20.0))
    for _ in range(100):
        tem.predict(1.0, 0.0, 0.1)
        tem.correct(bev_seeing([(1, 2.0, 0.0)]))
    assert tem.estimate().x == pytest.approx(10.0, abs=0.5)


def test_the_store_stays_bounded_and_keeps_the_landmarks_seen_often():
    from spatial_memory_ros.localization import landmarks as module

    store = LandmarkMap(TemConfig())
    store.observe([Sighting(1, 1.0, 0.0)], (0.0, 0.0, 0.0), 0.05)
    store.moved(3.0)
    store.observe([Sighting(1, 1.0, 0.0)], (0.0, 0.0, 0.0), 0.05)  # seen twice
    for k in range(module.MAX_LANDMARKS + 10):  # phantoms, each far from the others
        store.observe([Sighting(2, 1.0, 0.0)], (10.0 * (k + 1), 0.0, 0.0), 0.05)
    assert len(store.landmarks) == module.MAX_LANDMARKS
    assert store.landmarks[0].class_id == 1 and store.landmarks[0].sightings == 2
