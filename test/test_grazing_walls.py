"""perception/wall_incidence.py: a wall seen head-on is kept, one seen edge-on is made unseen when asked (never the
floor, never an object), a threshold that is not a |cos| is refused;
the wall-incidence diagnostic sorts predicted walls by range, angle and what the oracle says they are."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from spatial_memory_ros.memory.mapping import FREE, UNKNOWN, WALL, bev_to_map
from spatial_memory_ros.perception.wall_incidence import wall_incidence, without_grazing_walls
from spatial_memory_ros.types import BevGrid, Pose2D

RESOLUTION, SIZE = 0.25, 32  # the model's grid: x forward 0..8 m, y left -4..4 m


def _grid() -> tuple[np.ndarray, np.ndarray]:
    iy, ix = np.mgrid[0:SIZE, 0:SIZE]
    return (ix + 0.5) * RESOLUTION, -4.0 + (iy + 0.5) * RESOLUTION


def _bev(occupancy: np.ndarray, objects: np.ndarray | None = None) -> BevGrid:
    objects = np.zeros(occupancy.shape, np.uint8) if objects is None else objects
    return BevGrid(occupancy.astype(np.int8), objects, RESOLUTION, 0.0, -4.0, ("red",))


def _wall_ahead() -> np.ndarray:
    """Floor up to 5 m ahead, a wall 5.0-5.25 m, unseen beyond."""
    forward, _ = _grid()
    return np.where(forward < 5.0, FREE, np.where(forward < 5.25, WALL, UNKNOWN))


def _wall_beside() -> np.ndarray:
    """A corridor's left wall 1.0-1.25 m to the left, floor to its right, unseen behind it."""
    _, left = _grid()
    return np.where(left < 1.0, FREE, np.where(left < 1.25, WALL, UNKNOWN))


def test_a_wall_ahead_is_seen_head_on_and_a_wall_beside_edge_on_far_away():
    forward, left = _grid()
    ahead = wall_incidence(_wall_ahead(), forward, left)
    centre = (np.abs(left) < 0.5) & (np.abs(forward - 5.125) < 0.1)
    assert ahead[centre].min() > 0.9
    beside = wall_incidence(_wall_beside(), forward, left)
    wall_row = np.abs(left - 1.125) < 0.1
    assert beside[wall_row & (np.abs(forward - 6.0) < 0.2)].max() < 0.25  # 6 m along it: edge-on
    assert beside[wall_row & (np.abs(forward - 1.0) < 0.2)].min() > 0.5   # beside the robot: well seen


def test_grazing_walls_are_left_out_only_when_asked():
    pose = Pose2D(0.0, 0.0, 0.0)
    bev = _bev(_wall_beside())
    every = bev_to_map(bev, pose)
    picky = bev_to_map(without_grazing_walls(bev, 0.2), pose)
    walls_every = np.count_nonzero(every.occupancy >= 50)
    walls_picky = np.count_nonzero(picky.occupancy >= 50)
    # 1.125 m to the side, the wall is seen within 11.5 deg of edge-on (|cos| < 0.2) beyond about 5.5 m ahead
    assert walls_every == SIZE and walls_every - 12 <= walls_picky <= walls_every - 8
    assert np.all(picky.x[picky.occupancy >= 50] < 6.0)  # what was left out is the far, edge-on part
    assert np.count_nonzero(picky.occupancy < 50) == np.count_nonzero(every.occupancy < 50)  # floor untouched


def test_a_wall_seen_head_on_is_kept():
    bev = _bev(_wall_ahead())
    picky = bev_to_map(without_grazing_walls(bev, 0.2), Pose2D(1.0, 2.0, 0.5))
    every = bev_to_map(bev, Pose2D(1.0, 2.0, 0.5))
    # the wall's ends, where the view cone of a square grid cuts it off, may read edge-on; its face does not
    assert np.count_nonzero(picky.occupancy >= 50) >= 0.8 * np.count_nonzero(every.occupancy >= 50)


def test_objects_on_a_grazing_wall_line_are_kept():
    occupancy = _wall_beside()
    objects = np.zeros(occupancy.shape, np.uint8)
    forward, left = _grid()
    objects[(np.abs(left - 1.125) < 0.1) & (np.abs(forward - 6.0) < 0.2)] = 1
    picky = bev_to_map(without_grazing_walls(_bev(occupancy, objects), 0.2), Pose2D(0.0, 0.0, 0.0))
    assert np.count_nonzero(picky.object_class == 1) == np.count_nonzero(objects == 1) > 0


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_a_threshold_that_is_not_a_cosine_is_refused(value):
    with pytest.raises(ValueError, match="min_incidence"):
        without_grazing_walls(_bev(_wall_beside()), value)


def test_threshold_zero_returns_the_bev_untouched():
    bev = _bev(_wall_beside())
    assert without_grazing_walls(bev, 0.0) is bev


def test_the_diagnostic_counts_each_predicted_wall_once_by_range_angle_and_truth():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "diagnostics" / "bev_wall_incidence.py"
    spec = importlib.util.spec_from_file_location("bev_wall_incidence", path)
    diagnostic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(diagnostic)
    forward, left = _grid()
    predicted = _wall_beside()
    truth = np.where(forward < 4.0, predicted, FREE)  # the far part of the predicted wall is really floor
    counts = np.zeros((len(diagnostic.RANGE_BANDS), len(diagnostic.INCIDENCE_BANDS), 3), np.int64)
    diagnostic.tally(predicted, truth, np.hypot(forward, left), forward, left, counts)
    assert counts.sum() == SIZE
    assert counts[..., 0].sum() == np.count_nonzero((predicted == WALL) & (forward < 4.0))
    table = diagnostic.rows(counts)
    far = table[-1]
    assert far["all"]["floor"] == 1.0 and far["incidence 0.0-0.2"]["cells"] > 0
