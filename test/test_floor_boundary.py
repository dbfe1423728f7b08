"""The floor-boundary BEV model (issue 12): geometry (perception/floor_boundary.py), labels (boundary_data.py),
the net and its predictor (boundary_model.py), and the data and train commands."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from spatial_memory_ros.perception.boundary_data import (column_labels, disc_ranges, read_boundary_shards,
                                                         render_boundary_frames)
from spatial_memory_ros.perception.camera_adapter import world_to_slot
from spatial_memory_ros.perception.floor_boundary import (MAX_BOUNDARY, ColumnRaster, boundary_of_ranges,
                                                          column_bearings, object_depths, ranges_of_boundary)
from spatial_memory_ros.perception.frames import _scatter_robots, sim_geometry, world_camera
from spatial_memory_ros.perception.metrics import BevMetrics
from spatial_memory_ros.sim.interface import make_world
from spatial_memory_ros.sim.maze import CLASS_NAMES
from spatial_memory_ros.types import CameraModel, Pose2D

GEOMETRY = sim_geometry()
BEARINGS = column_bearings(64, 90.0)


def test_boundary_and_range_are_inverse_and_clipped():
    ranges = np.linspace(1.2, 20.0, 64)
    t = boundary_of_ranges(ranges, BEARINGS, 0.9)
    assert np.allclose(ranges_of_boundary(t, BEARINGS, 0.9), ranges, rtol=1e-5)
    assert boundary_of_ranges(np.full(64, 0.01), BEARINGS, 0.5).max() == pytest.approx(MAX_BOUNDARY)
    # the scale is the camera height's: the same image row means twice the range for a camera twice as high
    assert np.allclose(ranges_of_boundary(t, BEARINGS, 1.8), 2 * ranges, rtol=1e-5)


def test_bearings_run_left_to_right_across_the_field_of_view():
    assert BEARINGS[0] > 0 > BEARINGS[-1]
    assert BEARINGS[0] == pytest.approx(-BEARINGS[-1])
    assert math.degrees(BEARINGS[0]) == pytest.approx(45.0, abs=1.0)


def test_disc_ranges_hit_the_near_side_of_a_disc_ahead_only():
    eye = Pose2D(0.0, 0.0, 0.0)
    ranges, which = disc_ranges(eye, np.array([0.0, math.pi, 0.5]), [(3.0, 0.0, 0.5)])
    assert ranges[0] == pytest.approx(2.5) and which[0] == 0
    assert np.isinf(ranges[1]) and which[1] == -1
    assert np.isinf(ranges[2])


@pytest.mark.parametrize("world", ["builtin"])
def test_true_boundaries_rasterise_to_nearly_the_oracle(world):
    """The geometry alone, fed perfect boundaries, reproduces the world's own oracle BEV (the model's ceiling)."""
    camera = world_camera(world)
    raster = ColumnRaster(GEOMETRY, camera)
    slots = world_to_slot(GEOMETRY.class_names, CLASS_NAMES)
    metrics = BevMetrics(CLASS_NAMES)
    rng = np.random.default_rng(0)
    built = make_world(world, size=13, seed=2_000_000, num_robots=1)
    for _ in range(40):
        _scatter_robots(built, rng)
        ranges, classes = column_labels(built, 0, camera, BEARINGS, slots)
        occupancy, objects = raster.rasterise(ranges[None], classes[None])
        truth = built.oracle_bev(0)
        metrics.update(occupancy, objects, truth.occupancy[None], truth.object_class[None])
    summary = metrics.summary()
    assert summary["free_iou"] > 0.88
    assert summary["wall_iou"] > 0.65


def test_a_higher_camera_puts_the_same_image_farther_away():
    low = ColumnRaster(GEOMETRY, CameraModel.pinhole(64, 64, 90.0, 0.5))
    high = ColumnRaster(GEOMETRY, CameraModel.pinhole(64, 64, 90.0, 1.0))
    t = np.full((1, 64), 0.25)  # a wall 2 m ahead of the low camera, 4 m ahead of the high one
    near, _ = low.rasterise(ranges_of_boundary(t, BEARINGS, 0.5))
    far, _ = high.rasterise(ranges_of_boundary(t, BEARINGS, 1.0))
    ahead = near[0, 16]  # the row along the heading: x from 0 to 8 m in 0.25 m cells
    assert (ahead[:7] == 0).all() and ahead[8] == 100 and (ahead[10:] == -1).all()
    assert (far[0, 16, :15] == 0).all() and far[0, 16, 16] == 100


def test_objects_are_drawn_as_deep_as_they_are_wide():
    ranges = np.full((1, 64), 4.0)
    classes = np.zeros((1, 64), dtype=np.int64)
    classes[0, 30:34] = 2
    depth = object_depths(ranges, classes, abs(BEARINGS[0] - BEARINGS[1]))
    assert depth[0, 31] == pytest.approx(4 * abs(BEARINGS[0] - BEARINGS[1]) * 4.0)
    occupancy, objects = ColumnRaster(GEOMETRY, world_camera("builtin")).rasterise(ranges, classes)
    assert (objects == 2).any() and (occupancy[objects == 2] == 0).all()


def test_labels_of_both_worlds_line_up_with_the_rendered_floor():
    """Below the labelled boundary the built-in image shows floor: its colour matches the bottom row's family."""
    frames = render_boundary_frames("builtin", 7, 12, GEOMETRY)
    assert frames.images.shape == (12, 64, 64, 3) and frames.boundary.shape == (12, 64)
    assert frames.valid.all() and (frames.boundary > 0).all() and (frames.boundary <= MAX_BOUNDARY).all()
    rows = np.round(31.5 + 32 * frames.boundary).astype(int)
    assert ((rows >= 32) | (rows > 63)).all()


def test_a_restyled_maze_keeps_its_geometry_but_not_its_looks():
    plain = render_boundary_frames("builtin", 11, 6, GEOMETRY)
    styled = render_boundary_frames("builtin", 11, 6, GEOMETRY, randomize=True)
    assert np.allclose(plain.boundary, styled.boundary)
    assert np.abs(plain.images.astype(int) - styled.images.astype(int)).mean() > 10


torch = pytest.importorskip("torch")

from spatial_memory_ros.perception.boundary_model import (FloorBoundaryPredictor, build_boundary_model,  # noqa: E402
                                                          save_boundary_checkpoint)
from spatial_memory_ros.perception.camera_adapter import CameraMismatch  # noqa: E402
from spatial_memory_ros.perception.predictor import CheckpointError, load_predictor  # noqa: E402


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("boundary") / "untrained.pt"
    save_boundary_checkpoint(path, build_boundary_model(GEOMETRY), {"note": "test"})
    return path


def test_load_predictor_tells_the_two_kinds_of_checkpoint_apart(untrained, tmp_path):
    predictor = load_predictor(untrained)
    assert isinstance(predictor, FloorBoundaryPredictor) and predictor.info == {"note": "test"}
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_predictor(tmp_path / "junk.pt")


def test_predictor_serves_any_camera_and_rejects_images_that_do_not_fit(untrained):
    predictor = load_predictor(untrained)
    occupancy, objects = predictor.predict_arrays(np.zeros((2, 64, 64, 3), np.uint8))
    assert occupancy.shape == (2, 32, 32) and objects.shape == (2, 32, 32)
    memory_maze = predictor.for_camera(world_camera("memory_maze"), ("red", "green", "blue", "purple", "yellow",
                                                                     "salmon"))
    grids = memory_maze.predict(np.full((1, 64, 64, 3), 90, np.uint8))
    assert grids[0].class_names[3] == "purple"
    outside = ~memory_maze.raster.inside.reshape(32, 32)
    assert (grids[0].occupancy[outside] == -1).all()  # nothing outside the 80 deg camera's view is claimed
    with pytest.raises(CameraMismatch):
        memory_maze.predict(np.zeros((1, 48, 64, 3), np.uint8))
    with pytest.raises(CameraMismatch):
        memory_maze.predict(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(CameraMismatch):
        predictor.for_camera(CameraModel.pinhole(64, 64, 80.0, -0.2))


@pytest.mark.slow
def test_data_and_train_commands_make_a_loadable_model(tmp_path):
    data = tmp_path / "data"
    command = [sys.executable, "-m", "spatial_memory_ros.cli"]
    subprocess.run(command + ["data", "boundary", "--randomize", "0.5", "--mazes", "2", "--frames-per-maze", "6",
                              "--mazes-per-shard", "1", "--out", str(data)], check=True, timeout=300)
    assert len(read_boundary_shards(data)) == 12
    export = tmp_path / "model.pt"
    result = subprocess.run(command + ["train", "boundary", "--data", str(data), "--out", str(tmp_path / "run"),
                                       "--steps", "4", "--val-every", "2", "--batch-size", "4", "--val-worlds",
                                       "builtin", "--val-mazes", "1", "--val-frames-per-maze", "4", "--export",
                                       str(export)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    predictor = load_predictor(export)
    assert predictor.info["step"] in (2, 4) and "train boundary" in predictor.info["command"]
    resumed = subprocess.run(command + ["train", "boundary", "--data", str(data), "--out", str(tmp_path / "run"),
                                        "--steps", "4", "--resume", "--val-worlds", "builtin", "--val-mazes", "1"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and "resumed" in resumed.stdout + resumed.stderr
