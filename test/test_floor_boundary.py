"""The floor-boundary BEV model (issue 12): geometry (perception/floor_boundary.py), labels (boundary_data.py),
the net and its predictor (boundary_model.py), and the data and train commands."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

from spatial_memory_ros.perception.boundary_data import (boundary_geometry, column_labels, disc_ranges,
                                                         read_boundary_shards, render_boundary_frames)
from spatial_memory_ros.perception.camera_adapter import class_slots, world_to_slot
from spatial_memory_ros.perception.floor_boundary import (MAX_BOUNDARY, ColumnRaster, boundary_of_ranges,
                                                          column_bearings, hidden_wall_ranges,
                                                          ranges_of_boundary)
from spatial_memory_ros.perception.frames import _scatter_robots, sim_geometry, world_camera
from spatial_memory_ros.perception.metrics import BevMetrics
from spatial_memory_ros.sim.interface import WORLDS, make_world, world_class_names
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


def test_the_boundary_model_has_one_class_per_colour_of_every_world():
    """A class means one colour in every world's data (no slot shared by, say, cyan and salmon)."""
    names = boundary_geometry().class_names
    assert len(set(names)) == len(names)
    for world in WORLDS:
        world_names = world_class_names(world)
        lookup = class_slots(names, world_names)
        assert all(world_names[lookup[slot] - 1] == names[slot - 1] for slot in range(1, len(names) + 1)
                   if lookup[slot])
        assert sorted(lookup[lookup > 0]) == list(range(1, len(world_names) + 1))


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
    assert summary["free_iou"] > 0.90
    assert summary["wall_iou"] > 0.65
    assert summary["object_f1"] > 0.7, summary


def test_a_higher_camera_puts_the_same_image_farther_away():
    low = ColumnRaster(GEOMETRY, CameraModel.pinhole(64, 64, 90.0, 0.5))
    high = ColumnRaster(GEOMETRY, CameraModel.pinhole(64, 64, 90.0, 1.0))
    t = np.full((1, 64), 0.25)  # a wall 2 m ahead of the low camera, 4 m ahead of the high one
    near, _ = low.rasterise(ranges_of_boundary(t, BEARINGS, 0.5))
    far, _ = high.rasterise(ranges_of_boundary(t, BEARINGS, 1.0))
    ahead = near[0, 16]  # the row along the heading: x from 0 to 8 m in 0.25 m cells
    assert (ahead[:7] == 0).all() and ahead[8] == 100 and (ahead[10:] == -1).all()
    assert (far[0, 16, :15] == 0).all() and far[0, 16, 16] == 100


def _wall_and_disc(disc_x: float, disc_y: float, radius: float, wall_depth: float = 6.0):
    """Column ranges and classes (slot 2) of the built-in camera facing a flat wall with a disc before it."""
    camera = world_camera("builtin")
    eye = Pose2D(camera.mount_forward, 0.0, 0.0)
    walls = wall_depth / np.cos(BEARINGS)
    near, which = disc_ranges(eye, BEARINGS, [(disc_x, disc_y, radius)])
    classes = np.where(near < walls, 2, 0)
    return np.minimum(walls, near)[None], classes[None], camera


def test_an_object_is_drawn_as_the_disc_its_silhouette_implies():
    """Centred where its width and near side put it (as the oracles centre a target's disc), on free floor, with
    the wall it hides drawn where the columns beside it see that wall."""
    ranges, classes, camera = _wall_and_disc(2.4, 0.4, 0.4, wall_depth=4.0)
    occupancy, objects = ColumnRaster(GEOMETRY, camera).rasterise(ranges, classes)
    cells = np.argwhere(objects[0] == 2)
    x, y = GEOMETRY.cell_centres()
    assert len(cells) > 4 and (occupancy[0][objects[0] == 2] == 0).all()
    assert x[objects[0] == 2].mean() == pytest.approx(2.4, abs=0.2)
    assert y[objects[0] == 2].mean() == pytest.approx(0.4, abs=0.2)
    behind = (np.abs(y - 0.4) < 0.2) & (x > 3.0) & (x < camera.mount_forward + 3.9)
    assert (occupancy[0][behind] == 0).all()
    assert (occupancy[0][(np.abs(y - 0.4) < 0.2) & (np.abs(x - camera.mount_forward - 4.1) < 0.125)] == 100).all()


def test_hidden_walls_are_interpolated_exactly_for_a_flat_wall():
    ranges, classes, _ = _wall_and_disc(2.5, -0.3, 0.6, wall_depth=5.0)
    walls = hidden_wall_ranges(ranges, classes, BEARINGS)
    assert (classes > 0).sum() > 5
    assert np.allclose(walls, 5.0 / np.cos(BEARINGS)[None], rtol=1e-9)


def test_an_object_whose_near_side_is_out_of_view_is_left_out():
    """Cut off by the edge of the view with its nearest column at that edge, its centre is probably outside the
    view, where the oracles draw nothing; with its nearest column inside the view it is drawn."""
    camera = world_camera("builtin")
    raster = ColumnRaster(GEOMETRY, camera)
    edge = float(BEARINGS[np.flatnonzero(raster.columns_used)[0]])
    for bearing, expected in ((edge + 0.15, False), (edge - 0.15, True)):
        centre = 3.0
        ranges, classes, _ = _wall_and_disc(camera.mount_forward + centre * math.cos(bearing),
                                            centre * math.sin(bearing), 0.5)
        _, objects = raster.rasterise(ranges, classes)
        assert (objects == 2).any() == expected, bearing


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
    sized = tmp_path / "sized"
    subprocess.run(command + ["data", "boundary", "--size", "9", "--mazes", "1", "--frames-per-maze", "3",
                              "--first-seed", "3", "--out", str(sized)], check=True, timeout=300)
    assert json.loads((sized / "manifest.json").read_text())["size"] == 9 and len(read_boundary_shards(sized)) == 3
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
    tuned = subprocess.run(command + ["train", "boundary", "--data", str(data), "--out", str(tmp_path / "tuned"),
                                      "--steps", "2", "--val-every", "2", "--batch-size", "4", "--val-worlds", "",
                                      "--init", str(export), "--export", str(tmp_path / "tuned.pt")],
                           capture_output=True, text=True, timeout=300)
    assert tuned.returncode == 0, tuned.stderr
    assert load_predictor(tmp_path / "tuned.pt").info["init"] == str(export)
    not_a_model = subprocess.run(command + ["train", "boundary", "--data", str(data), "--out", str(tmp_path / "r1"),
                                            "--steps", "1", "--val-worlds", "", "--init", str(data / "manifest.json")],
                                 capture_output=True, text=True, timeout=300)
    assert not_a_model.returncode == 2 and "--init" in not_a_model.stderr
    relabelled = tmp_path / "relabelled"
    shutil.copytree(data, relabelled)
    manifest = json.loads((relabelled / "manifest.json").read_text())
    manifest["geometry"]["class_names"] = ["red", "green"]
    (relabelled / "manifest.json").write_text(json.dumps(manifest))
    refused = subprocess.run(command + ["train", "boundary", "--data", str(relabelled), "--out", str(tmp_path / "r2"),
                                        "--steps", "1", "--val-worlds", "builtin", "--val-mazes", "1"],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and f"{relabelled} was labelled with the classes" in refused.stderr


def test_every_camera_but_the_sims_runs_the_shipped_floor_boundary_model():
    """Nodes, graph and benchmarks pick the checkpoint by world in one place; the boundary model ships."""
    from spatial_memory_ros.graph import other_camera_checkpoint
    from spatial_memory_ros.perception.predictor import (BOUNDARY_CHECKPOINT, DEFAULT_CHECKPOINT, checkpoint_for_world,
                                                         load_predictor)

    assert checkpoint_for_world("builtin") == DEFAULT_CHECKPOINT
    assert checkpoint_for_world("memory_maze") == BOUNDARY_CHECKPOINT and BOUNDARY_CHECKPOINT.is_file()
    assert other_camera_checkpoint() == str(BOUNDARY_CHECKPOINT)
    predictor = load_predictor(BOUNDARY_CHECKPOINT)
    assert predictor.geometry.class_names == boundary_geometry().class_names
