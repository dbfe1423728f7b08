"""The BEV predictor's core: labels, data shards, metrics, model shapes, checkpoints, the shipped model, CLI."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spatial_memory_ros.perception.frames import (BENCHMARK_SEED_BASE, BevFrames, read_manifest,  # noqa: E402
                                                  read_shards, render_maze_frames, shard_paths, sim_geometry,
                                                  write_shard)
from spatial_memory_ros.perception.geometry import (FREE, UNSEEN, WALL, cell_ranges, labels_to_occupancy,  # noqa: E402
                                                    occupancy_to_labels, view_cone_mask)
from spatial_memory_ros.perception.metrics import BevMetrics, match_objects, object_blobs  # noqa: E402
from spatial_memory_ros.perception.model import BevModelConfig, build_model, images_to_tensor  # noqa: E402
from spatial_memory_ros.perception.predictor import (DEFAULT_CHECKPOINT, BevPredictor, CheckpointError,  # noqa: E402
                                                     load_model, save_checkpoint)
from spatial_memory_ros.perception.training import (BevLossWeights, bev_loss, mirror_left_right,  # noqa: E402
                                                    training_tensors)
from spatial_memory_ros.sim.maze import CLASS_NAMES  # noqa: E402
from spatial_memory_ros.types import BevGrid  # noqa: E402

GEOMETRY = sim_geometry()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these models are tiny and extra threads only spin on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def frames() -> BevFrames:
    """A few frames of one benchmark maze (never used in training)."""
    return render_maze_frames(BENCHMARK_SEED_BASE + 3, frames=12)


@pytest.fixture(scope="module")
def untrained() -> BevPredictor:
    torch.manual_seed(0)
    return BevPredictor(build_model(GEOMETRY))


# ------------------------------------------------------------------------------------------ labels, data


def test_occupancy_labels_round_trip() -> None:
    occupancy = np.array([[-1, 0], [100, 0]], dtype=np.int8)
    labels = occupancy_to_labels(occupancy)
    assert labels.tolist() == [[UNSEEN, FREE], [WALL, FREE]]
    np.testing.assert_array_equal(labels_to_occupancy(labels), occupancy)


def test_rendered_frames_have_the_oracle_shapes_and_lie_in_the_view_cone(frames: BevFrames) -> None:
    assert frames.images.shape == (12, 64, 64, 3) and frames.images.dtype == np.uint8
    assert frames.occupancy.shape == (12, 32, 32) and frames.object_class.shape == (12, 32, 32)
    assert set(np.unique(frames.occupancy).tolist()) <= {-1, 0, 100}
    assert np.all(frames.occupancy[:, ~view_cone_mask(GEOMETRY)] == -1)
    assert np.all(frames.maze_seeds == BENCHMARK_SEED_BASE + 3)


def test_frames_are_fixed_by_the_seed() -> None:
    first, second = (render_maze_frames(5, frames=4) for _ in range(2))
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.occupancy, second.occupancy)
    assert not np.array_equal(first.images, render_maze_frames(6, frames=4).images)


def test_shard_round_trip(tmp_path, frames: BevFrames) -> None:
    write_shard(tmp_path / "shard-00000.npz", frames)
    back = read_shards(tmp_path)
    for name in ("images", "occupancy", "object_class", "maze_seeds"):
        np.testing.assert_array_equal(getattr(back, name), getattr(frames, name))
        assert getattr(back, name).dtype == getattr(frames, name).dtype


def test_bad_shards_and_empty_folders_are_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="spatial-memory data bev"):
        shard_paths(tmp_path)
    (tmp_path / "shard-00000.npz").write_bytes(b"not a shard")
    with pytest.raises(ValueError, match="shard-00000.npz"):
        read_shards(tmp_path)


def test_mirroring_twice_is_the_identity(frames: BevFrames) -> None:
    images, occupancy, objects = training_tensors(frames)
    flip = torch.arange(len(images)) % 2 == 0
    once = mirror_left_right(images, occupancy, objects, flip)
    twice = mirror_left_right(*once, flip)
    assert not torch.equal(once[0], images)
    for original, back in zip((images, occupancy, objects), twice):
        assert torch.equal(original, back)


# ---------------------------------------------------------------------------------------------- metrics


def _grid(rows: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Occupancy and objects from text: ' ' unseen, '.' free, '#' wall, a digit k = object class k on free."""
    occupancy = np.array([[{" ": -1, "#": 100}.get(c, 0) for c in row] for row in rows], dtype=np.int8)
    objects = np.array([[int(c) if c.isdigit() else 0 for c in row] for row in rows], dtype=np.uint8)
    return occupancy, objects


def test_iou_of_hand_made_grids() -> None:
    predicted = _grid(["..# ", "  # ", "    "])
    true = _grid([".## ", ". # ", "    "])
    metrics = BevMetrics(CLASS_NAMES)
    metrics.update(*predicted, *true)
    summary = metrics.summary()
    assert summary["free_iou"] == pytest.approx(1 / 3)  # free: predicted {a, b}, true {a, c}
    assert summary["wall_iou"] == pytest.approx(2 / 3)  # walls: predicted {d, e}, true {b, d, e}
    perfect = BevMetrics(CLASS_NAMES)
    perfect.update(*true, *true)
    assert perfect.summary()["free_iou"] == perfect.summary()["wall_iou"] == 1.0


def test_object_detection_tolerates_one_cell_but_not_two_or_another_colour() -> None:
    true = _grid(["......", ".11...", ".11...", "......", "....2."])
    near = _grid(["......", "......", "..11..", "..11..", "....3."])
    far = _grid(["......", "......", "......", "...11.", "......"])
    assert match_objects(near[1], true[1]) == (1, 1, 1)  # the red blob matches; green seen as blue does not
    assert match_objects(far[1], true[1]) == (0, 1, 2)
    metrics = BevMetrics(CLASS_NAMES)
    metrics.update(*true, *true)
    metrics.update(*near, *true)
    summary = metrics.summary()
    assert summary["object_precision"] == pytest.approx(3 / 4) and summary["object_recall"] == pytest.approx(3 / 4)
    assert summary["object_cell_accuracy_per_class"][CLASS_NAMES[0]] == pytest.approx((4 + 1) / 8)
    assert summary["object_cell_accuracy_per_class"][CLASS_NAMES[1]] == pytest.approx(1 / 2)


def test_two_blobs_of_one_colour_are_two_detections() -> None:
    predicted = _grid(["1....1"])[1]
    assert object_blobs(predicted) == [(1, 0.0, 0.0), (1, 0.0, 5.0)]
    assert match_objects(predicted, _grid(["1....."])[1]) == (1, 1, 0)


# ------------------------------------------------------------------------------------------------ model


def test_model_output_shape_and_predictions(untrained: BevPredictor, frames: BevFrames) -> None:
    logits = untrained.model(images_to_tensor(frames.images[:2]))
    assert logits.shape == (2, 3 + len(CLASS_NAMES) + 1, 32, 32)
    grids = untrained.predict(frames.images[:3])
    assert len(grids) == 3 and all(isinstance(g, BevGrid) for g in grids)
    grid = grids[0]
    assert grid.occupancy.shape == (32, 32) and grid.occupancy.dtype == np.int8
    assert grid.object_class.dtype == np.uint8 and (grid.resolution, grid.origin_x, grid.origin_y) == (0.25, 0, -4)
    assert np.all(grid.occupancy[~view_cone_mask(GEOMETRY)] == -1)
    assert np.all(grid.object_class[grid.occupancy != 0] == 0)
    assert len(untrained.predict(frames.images[0])) == 1


@pytest.mark.parametrize("images", [np.zeros((1, 32, 32, 3), np.uint8), np.zeros((1, 64, 64), np.uint8),
                                    np.zeros((1, 64, 64, 3), np.uint16), np.zeros((0, 64, 64, 3), np.uint8)])
def test_bad_images_raise_value_error(untrained: BevPredictor, images: np.ndarray) -> None:
    with pytest.raises(ValueError, match="expected"):
        untrained.predict(images)


@pytest.mark.slow
def test_folded_batch_norm_gives_the_same_logits(frames: BevFrames) -> None:
    torch.manual_seed(1)
    model = build_model(GEOMETRY)
    model.train()
    model(images_to_tensor(frames.images))  # move the BatchNorm running statistics off their defaults
    model.eval()
    with torch.inference_mode():
        before = model(images_to_tensor(frames.images[:4])).clone()
        after = BevPredictor(model).model(images_to_tensor(frames.images[:4]))
    torch.testing.assert_close(before, after, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_loss_is_finite_and_trains_down(frames: BevFrames) -> None:
    torch.manual_seed(2)
    model = build_model(GEOMETRY)
    images, occupancy, objects = training_tensors(frames)
    inputs, mask = images.permute(0, 3, 1, 2).float() / 255, torch.from_numpy(view_cone_mask(GEOMETRY))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss, parts = bev_loss(model(inputs), occupancy, objects, mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and set(parts) == {"occupancy", "object", "tv"}
    assert losses[-1] < losses[0]


def test_depth_path_reads_each_cells_own_bearing_and_range() -> None:
    """The depth features of a cell are P(wall nearer), P(wall within one cell), P(wall farther) along its bearing:
    with every column's distribution on one distance, cells short of it read 'farther', cells past it 'nearer'."""
    torch.manual_seed(4)
    model = build_model(GEOMETRY, BevModelConfig(depth_bins=36)).eval()
    with torch.no_grad():
        model.depth.weight.zero_()
        model.depth.bias.fill_(-50.0)
        model.depth.bias[16] = 50.0  # every column: the wall in bin 16, i.e. 16.5 * 9 m / 36 = 4.1 m away
    tokens = torch.zeros(1, model.config.columns, model.config.d_model)
    with torch.no_grad():
        features = model._depth_features(tokens)[0].reshape(3, 32, 32).numpy()
    ranges = cell_ranges(GEOMETRY).reshape(32, 32)
    inside = view_cone_mask(GEOMETRY)
    assert features.min() > -1e-6 and features.max() < 1 + 1e-6
    assert np.all(features[:, ~inside] == 0)
    assert np.all(features[2][inside & (ranges < 3.5)] > 0.99)  # wall farther than these cells
    assert np.all(features[0][inside & (ranges > 4.8)] > 0.99)  # and nearer than these
    assert np.all(features[1][inside & (np.abs(ranges - 4.125) < 0.1)] > 0.5)


def test_a_grown_model_initialised_from_a_checkpoint_computes_the_same(tmp_path, frames: BevFrames) -> None:
    from spatial_memory_ros.commands.train_bev import _initialise

    torch.manual_seed(5)
    old = build_model(GEOMETRY).eval()
    path = save_checkpoint(tmp_path / "old.pt", old, {"train_command": "spatial-memory train bev --test"})
    grown = build_model(GEOMETRY, BevModelConfig(depth_bins=36)).eval()
    info = _initialise(grown, path)
    assert info["path"] == str(path) and "--test" in info["train_command"]
    images = images_to_tensor(frames.images[:4])
    with torch.inference_mode():
        torch.testing.assert_close(grown(images), old(images))
    round_trip = load_model(save_checkpoint(tmp_path / "grown.pt", grown))[0]
    assert round_trip.config.depth_bins == 36


def test_checkpoints_without_a_depth_path_still_load(tmp_path) -> None:
    path = save_checkpoint(tmp_path / "bev.pt", build_model(GEOMETRY))
    payload = torch.load(path, weights_only=True)
    del payload["model_config"]["depth_bins"]  # as written before the depth path existed
    torch.save(payload, path)
    assert load_model(path)[0].config.depth_bins == 0


def test_wall_range_weight_counts_far_walls_more(frames: BevFrames) -> None:
    images, occupancy, objects = training_tensors(frames)
    mask = torch.from_numpy(view_cone_mask(GEOMETRY))
    logits = torch.zeros(len(frames), 10, 32, 32)
    plain, _ = bev_loss(logits, occupancy, objects, mask)
    weighted, _ = bev_loss(logits, occupancy, objects, mask, BevLossWeights(wall_range=0.5), GEOMETRY)
    assert weighted > plain


# ------------------------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path, untrained: BevPredictor, frames: BevFrames) -> None:
    torch.manual_seed(3)
    model = build_model(GEOMETRY).eval()
    path = save_checkpoint(tmp_path / "bev.pt", model, {"note": "test"})
    loaded = BevPredictor.load(path)
    assert loaded.info == {"note": "test"}
    np.testing.assert_array_equal(loaded.predict_arrays(frames.images)[0],
                                  BevPredictor(model).predict_arrays(frames.images)[0])


def test_missing_checkpoint_names_the_file_and_the_command(tmp_path) -> None:
    path = tmp_path / "nowhere" / "bev.pt"
    with pytest.raises(CheckpointError, match="not found") as error:
        BevPredictor.load(path)
    assert str(path) in str(error.value) and "spatial-memory train bev" in str(error.value)


def test_foreign_or_corrupt_checkpoints_are_refused(tmp_path) -> None:
    garbage, foreign = tmp_path / "garbage.pt", tmp_path / "foreign.pt"
    garbage.write_bytes(b"\x00" * 100)
    torch.save({"weights": torch.zeros(3)}, foreign)
    for path in (garbage, foreign):
        with pytest.raises(CheckpointError, match="spatial-memory train bev") as error:
            load_model(path)
        assert str(path) in str(error.value)


@pytest.mark.parametrize("change", ["geometry", "layers", "version"])
def test_mismatched_checkpoints_are_refused(tmp_path, change: str) -> None:
    path = save_checkpoint(tmp_path / "bev.pt", build_model(GEOMETRY))
    payload = torch.load(path, weights_only=True)
    if change == "geometry":
        payload["geometry"]["bev_width"] = 64
    elif change == "layers":
        payload["model_config"]["d_model"] *= 2
    else:
        payload["version"] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="spatial-memory train bev") as error:
        load_model(path)
    assert str(path) in str(error.value)


def test_shipped_checkpoint_beats_a_trivial_baseline(frames: BevFrames) -> None:
    """The baseline calls every cell of the view cone free; the model must do far better on unseen mazes."""
    predictor = BevPredictor.load()
    assert DEFAULT_CHECKPOINT.stat().st_size < 20e6
    model_metrics, baseline_metrics = BevMetrics(CLASS_NAMES), BevMetrics(CLASS_NAMES)
    model_metrics.update(*predictor.predict_arrays(frames.images), frames.occupancy, frames.object_class)
    everything_free = np.where(view_cone_mask(GEOMETRY), 0, -1).astype(np.int8)[None].repeat(len(frames), 0)
    baseline_metrics.update(everything_free, np.zeros_like(frames.object_class), frames.occupancy,
                            frames.object_class)
    model, baseline = model_metrics.summary(), baseline_metrics.summary()
    assert model["free_iou"] > max(0.8, baseline["free_iou"] + 0.3)
    assert model["wall_iou"] > 0.5 > baseline["wall_iou"]


def test_shipped_checkpoint_is_for_the_simulators_camera_and_classes() -> None:
    """The predictor takes its camera, grid and classes from the checkpoint; the simulator must still match them."""
    predictor = BevPredictor.load()
    assert predictor.geometry == GEOMETRY
    assert predictor.predict(np.zeros((64, 64, 3), np.uint8))[0].class_names == CLASS_NAMES


def test_inference_imports_nothing_of_the_simulator() -> None:
    import subprocess
    import sys
    from pathlib import Path

    check = ("import sys; import spatial_memory_ros.perception.predictor; "
             "print(sorted(m for m in sys.modules if m.startswith('spatial_memory_ros.sim')))")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_groups_share_data_and_train_with_other_modules() -> None:
    from spatial_memory_ros.commands import data_bev, train_bev

    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command")
    other = subparsers.add_parser("train")
    other._models = other.add_subparsers(dest="model", required=True)
    other._models.add_parser("grid-cells")
    train_bev.add_parser(subparsers)
    data_bev.add_parser(subparsers)
    assert {"grid-cells", "bev"} <= set(other._models.choices)
    args = parser.parse_args(["data", "bev", "--mazes", "2", "--out", "x"])
    assert args.run is data_bev.run and args.mazes == 2


@pytest.mark.slow
def test_data_and_train_commands_end_to_end(tmp_path) -> None:
    from spatial_memory_ros.cli import main

    data, run, export = tmp_path / "data", tmp_path / "run", tmp_path / "bev.pt"
    assert main(["data", "bev", "--mazes", "2", "--frames-per-maze", "6", "--out", str(data), "--no-progress"]) == 0
    assert len(read_shards(data)) == 12 and read_manifest(data)["mazes"] == 2
    train = ["train", "bev", "--data", str(data), "--out", str(run), "--steps", "4", "--batch-size", "4",
             "--val-mazes", "1", "--val-frames-per-maze", "4", "--val-every", "2", "--no-progress"]
    assert main(train) == 0
    assert (run / "last.pt").is_file() and len((run / "log.jsonl").read_text().splitlines()) == 2
    assert main(train + ["--resume", "--export", str(export)]) == 0
    assert "train bev" in BevPredictor.load(export).info["train_command"]
    assert main(["data", "bev", "--mazes", "3", "--frames-per-maze", "6", "--out", str(data)]) == 2
