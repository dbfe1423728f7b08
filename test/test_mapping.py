"""memory/mapping.py: BEVs moved into the map frame land on the true geometry, fused maps converge to the maze,
and the observation binner reports each bin once per label."""
from __future__ import annotations

import math

import numpy as np
import pytest

from spatial_memory_ros.behaviour.walker import RandomWalker
from spatial_memory_ros.evaluation.map_scores import map_scores, rasterize_maze, wall_surfaces
from spatial_memory_ros.memory.mapping import (FLOOR_LABEL, WALL, WALL_LABEL, BevInMap, LogOddsMap, ObservationBinner,
                                              bev_to_map)
from spatial_memory_ros.types import GridGeometry
from spatial_memory_ros.sim.maze import generate_maze
from spatial_memory_ros.sim.world import World


@pytest.fixture(scope="module")
def drive():
    """300 steps of one robot in a 9x9 maze: (world, [(bev, true pose)])."""
    world = World(generate_maze(9, seed=4), num_robots=1, seed=4)
    walker = RandomWalker(seed=4)
    frames = []
    for _ in range(300):
        bev = world.oracle_bev(0)
        frames.append((bev, world.true_pose(0)))
        world.step([walker.command(bev)])
    return world, frames


def test_seen_cells_land_on_the_true_geometry(drive):
    world, frames = drive
    geometry = GridGeometry.covering(world.maze, 0.05)
    truth = rasterize_maze(world.maze, geometry)
    agree = total = 0
    for bev, pose in frames[::10]:
        seen = bev_to_map(bev, pose)
        rows, cols, inside = geometry.cell_indices(seen.x, seen.y)
        said_wall = seen.occupancy[inside] >= 50
        agree += np.count_nonzero(said_wall == (truth[rows[inside], cols[inside]] == WALL))
        total += np.count_nonzero(inside)
    assert total > 1000 and agree / total > 0.9


def test_fused_map_converges_to_the_maze(drive):
    world, frames = drive
    geometry = GridGeometry.covering(world.maze, 0.25)
    fused = LogOddsMap(geometry)
    for bev, pose in frames:
        fused.integrate(bev_to_map(bev, pose))
    scores = map_scores(fused.occupancy(), rasterize_maze(world.maze, geometry))
    assert scores["coverage"] > 0.3
    assert scores["free_iou"] > 0.3 and scores["wall_iou"] > 0.2
    assert scores["accuracy_seen"] > 0.9


def test_map_scores_of_what_a_camera_can_see_are_perfect():
    truth = rasterize_maze(generate_maze(9, seed=0), GridGeometry(0.25, 36, 36))
    visible = np.where((truth == WALL) & ~wall_surfaces(truth), -1, truth).astype(np.int8)
    assert map_scores(visible, truth) == {"coverage": 1.0, "free_iou": 1.0, "wall_iou": 1.0, "map_iou": 1.0,
                                         "accuracy_seen": 1.0}
    assert map_scores(truth, truth)["wall_iou"] < 1.0, "a wall's inside is not a wall surface"
    unknown = np.full_like(truth, -1)
    assert map_scores(unknown, truth)["coverage"] == 0.0


def test_binner_reports_each_bin_once_per_label(drive):
    _, frames = drive
    binner = ObservationBinner(bin_size=0.5)
    first = binner.observe(bev_to_map(*frames[0][:1], frames[0][1]))
    assert len(first) > 0 and set(first.labels) <= {FLOOR_LABEL, WALL_LABEL} | {f"{c} target" for c in
                                                                               ("red", "green", "blue", "yellow",
                                                                                "magenta", "cyan")}
    again = binner.observe(bev_to_map(frames[0][0], frames[0][1]))
    assert len(again) == 0, "the same view reported twice"
    assert first.features.shape == (len(first), 4) and np.all((first.features >= 0) & (first.features <= 1))
    total = sum(len(binner.observe(bev_to_map(bev, pose))) for bev, pose in frames)
    assert total < 300 * 50, "the binner should grow with the area seen, not with time"


def test_bad_geometry_is_refused():
    with pytest.raises(ValueError, match="resolution"):
        GridGeometry(math.nan, 10, 10)
    with pytest.raises(ValueError, match="cells"):
        GridGeometry(0.1, 0, 10)


def _one_bin_view(object_class: int) -> BevInMap:
    """A BEV seen in the map frame with four cells in the bin [0, 0.5) x [0, 0.5), all of ``object_class``."""
    cells = np.full(4, object_class, np.uint8)
    return BevInMap(x=np.array([0.1, 0.2, 0.3, 0.4]), y=np.array([0.1, 0.2, 0.3, 0.4]),
                    occupancy=np.zeros(4, np.int8), object_class=cells, range_fraction=np.full(4, 0.5),
                    class_names=("red", "green"))


def test_an_object_seen_in_one_view_only_is_not_written():
    binner = ObservationBinner(bin_size=0.5, min_object_views=2, min_object_share=0.5)
    assert binner.observe(_one_bin_view(1)).labels == [FLOOR_LABEL]
    assert binner.observe(_one_bin_view(0)).labels == []
    assert binner.observe(_one_bin_view(0)).labels == [], "a floor bin already reported is not written again"


def test_an_object_seen_again_is_written_once_its_views_outweigh_the_views_without_it():
    binner = ObservationBinner(bin_size=0.5, min_object_views=2, min_object_share=0.5)
    labels = [binner.observe(_one_bin_view(k)).labels for k in (0, 0, 1, 1, 1, 2)]
    assert labels == [[FLOOR_LABEL], [], [], ["red target"], [], []], labels
    assert ObservationBinner(min_object_views=1).observe(_one_bin_view(2)).labels == ["green target"]
    with pytest.raises(ValueError, match="min_object_views"):
        ObservationBinner(min_object_views=0)


def test_views_without_the_object_withdraw_its_label_from_the_bin():
    binner = ObservationBinner(bin_size=0.5, min_object_views=2, min_object_share=0.5)
    reports = [binner.observe(_one_bin_view(k)) for k in (1, 1, 0, 0, 0)]
    assert [r.labels for r in reports] == [[FLOOR_LABEL], ["red target"], [], [], [FLOOR_LABEL]]
    assert [r.withdrawn for r in reports] == [[], [], [], [], [(0, 0)]], "red lost its share (2 of 5) at view 5"
    assert reports[1].bins == [(0, 0)]
    assert binner.observe(_one_bin_view(1)).withdrawn == [], "a bin labelled floor has nothing to withdraw"


def _wall_then_floor(range_m: float, far_wall_weight: float) -> int:
    """The map's value of one cell seen once as wall from ``range_m`` off, then once as floor from close by."""
    geometry = GridGeometry(0.25, 8, 8)
    fused = LogOddsMap(geometry, far_wall_weight=far_wall_weight)

    def view(occupancy: int, distance: float) -> BevInMap:
        return BevInMap(x=np.array([1.1]), y=np.array([1.1]), occupancy=np.array([occupancy], np.int8),
                        object_class=np.zeros(1, np.uint8), range_fraction=np.array([0.5]),
                        range_m=np.array([distance]))

    fused.integrate(view(WALL, range_m))
    fused.integrate(view(0, 1.0))
    return int(fused.occupancy()[4, 4])


def test_far_walls_weigh_less_and_one_close_view_of_floor_undoes_them():
    from spatial_memory_ros.memory.mapping import wall_weights

    np.testing.assert_allclose(wall_weights(np.array([0.5, 3.0, 5.0, 7.0, 12.0]), 0.4), [1, 1, 0.7, 0.4, 0.4])
    assert _wall_then_floor(8.0, 1.0) >= 50  # at full weight a far wall outlasts one view of floor
    assert _wall_then_floor(8.0, 0.4) < 50
    assert _wall_then_floor(2.0, 0.4) >= 50  # a wall seen close counts fully
    geometry = GridGeometry(0.25, 8, 8)
    fused = LogOddsMap(geometry, far_wall_weight=0.4)
    fused.integrate(BevInMap(x=np.array([1.1]), y=np.array([1.1]), occupancy=np.zeros(1, np.int8),
                             object_class=np.zeros(1, np.uint8), range_fraction=np.array([1.0]),
                             range_m=np.array([8.0])))
    assert fused.log_odds[4, 4] == pytest.approx(fused.miss)  # floor is not weighted by range


@pytest.mark.parametrize("weight", [0.0, -0.5, 1.5, float("nan")])
def test_a_far_wall_weight_outside_zero_one_is_refused(weight):
    with pytest.raises(ValueError, match="far_wall_weight"):
        LogOddsMap(GridGeometry(0.25, 8, 8), far_wall_weight=weight)
