"""Self-supervised camera adaptation (issue 13): pairing by stamp, which cells may teach, the checks that refuse an
empty or mislabelled set, bags written by the project's own writer read back as pairs (and refused when a topic
is missing or the stamps never meet), and ``spatial-memory train bev --bag`` end to end on a tiny bag."""
from __future__ import annotations

import math

import numpy as np
import pytest

from spatial_memory_ros.perception.self_supervised import (AdaptationDataError, AdaptationSet, label_mask,
                                                           pair_by_stamp)
from spatial_memory_ros.types import GridGeometry

GRID = GridGeometry(0.25, 32, 32, 0.0, -4.0)


def test_pairs_each_frame_with_the_nearest_message_within_the_tolerance():
    images = np.array([0.0, 0.1, 0.2, 0.3, 5.0])
    labels = np.array([0.31, 0.12, -0.01, 0.26])          # unsorted; 5.0 has no partner
    pairing = pair_by_stamp(images, labels, tolerance=0.05)
    assert pairing.image_index.tolist() == [0, 1, 3]
    assert pairing.label_index.tolist() == [2, 1, 0]
    assert np.allclose(pairing.offset, [-0.01, 0.02, 0.01])
    assert pairing.unpaired == 2                         # 0.2 is 0.06 from 0.26, 5.0 far from all
    assert len(pair_by_stamp(images, labels, tolerance=0.0)) == 0
    with pytest.raises(ValueError):
        pair_by_stamp(images, labels, tolerance=-1.0)


def test_occluded_cells_teach_unknown_cells_do_not():
    occupancy = np.full((32, 32), -1, dtype=np.int8)
    occupancy[14:18, 0:8] = 0             # free corridor ahead, 0..2 m
    occupancy[14:18, 8] = 100             # a wall at 2 m
    mask = label_mask(occupancy, GRID, (0.0, 0.0))
    assert mask[15, 4] and mask[15, 8]            # free and wall teach
    assert mask[15, 12]                           # behind the wall: occluded, teaches 'unseen'
    assert not mask[2, 4]                         # off to the side, nothing in between: unknown
    assert not label_mask(np.full((32, 32), -1, np.int8), GRID).any()


def _set(occupancy: np.ndarray, frames: int = 12) -> AdaptationSet:
    return AdaptationSet(np.zeros((frames, 64, 64, 3), np.uint8), np.repeat(occupancy[None], frames, 0),
                         np.repeat(label_mask(occupancy, GRID)[None], frames, 0), np.arange(frames, dtype=float))


def test_empty_or_mislabelled_sets_are_refused():
    view = np.zeros((32, 32), dtype=bool)
    view[8:24, :] = True
    good = np.full((32, 32), 0, dtype=np.int8)
    good[:, 20] = 100
    _set(good).check(view, _set(good, 3))
    with pytest.raises(AdaptationDataError, match="0 training pairs"):
        _set(good, 0).check(view)
    with pytest.raises(AdaptationDataError, match="held-out"):
        _set(good).check(view, _set(good, 1))
    with pytest.raises(AdaptationDataError, match="without walls"):
        _set(np.zeros((32, 32), np.int8)).check(view)
    with pytest.raises(AdaptationDataError, match="does not look where the camera looks"):
        behind = np.full((32, 32), -1, dtype=np.int8)
        behind[0:4, :] = 0                    # labels only outside the camera's view
        behind[0, 0] = 100
        _set(behind).check(view)


def test_split_holds_out_the_tail_of_the_recording():
    pairs = _set(np.zeros((32, 32), np.int8), frames=100)
    train, heldout = pairs.split(0.2, gap=1.0)
    assert heldout.stamps.min() >= 79.2 and train.stamps.max() < 78.2
    assert len(train) + len(heldout) < 100


# ------------------------------------------------------------------------------------------------ bags


@pytest.fixture(scope="module")
def drive_bag(tmp_path_factory):
    """8 s of a built-in robot's drive: camera, camera_info, scan, depth, odom, written by SensorBagWriter."""
    from spatial_memory_ros.evaluation.sensor_drive import record_drive
    from spatial_memory_ros.sim.interface import make_world

    path = tmp_path_factory.mktemp("adapt") / "bag"
    world = make_world("builtin", size=9, seed=3, num_robots=1)
    result = record_drive(world, path, 8.0, seed=3)
    world.close()
    assert result.counts["/robot1/camera/image_raw"] == 80
    return path


def _read(bag, labels="scan", **kwargs):
    from spatial_memory_ros.recording.sensor_bags import LabelSensor, read_pairs

    return read_pairs(bag, LabelSensor(labels), GRID, **kwargs)


@pytest.mark.parametrize("labels", ["scan", "depth"])
def test_a_recorded_bag_reads_back_as_labelled_pairs(drive_bag, labels):
    from spatial_memory_ros.sim.interface import make_world

    pairs = _read(drive_bag, labels)
    assert len(pairs.pairs) == 80 and pairs.pairing.unpaired == 0
    assert pairs.topics["image"] == "/robot1/camera/image_raw" and pairs.topics[labels].startswith("/robot1/")
    assert pairs.intrinsics[:2] == (64, 64)
    assert pairs.pairs.images.shape == (80, 64, 64, 3) and pairs.pairs.images.dtype == np.uint8
    # the first pair is the robot's start: its labels agree with the true BEV where both see (geometry)
    world = make_world("builtin", size=9, seed=3, num_robots=1)
    truth = world.oracle_bev(0).occupancy
    assert np.array_equal(pairs.pairs.images[0], world.render(0))
    world.close()
    labelled = pairs.pairs.mask[0] & (truth != -1) & (pairs.pairs.occupancy[0] != -1)
    agree = (pairs.pairs.occupancy[0] == truth)[labelled].mean()
    assert labelled.sum() > 50 and agree > 0.9


def test_bags_without_the_topics_or_with_far_stamps_are_refused(tmp_path):
    from spatial_memory_ros.recording.sensor_bags import SensorBagWriter
    from spatial_memory_ros.sim.interface import make_world

    world = make_world("builtin", size=9, seed=3, num_robots=1)
    with SensorBagWriter(tmp_path / "no_scan") as writer:
        for k in range(5):
            writer.image(0.1 * k, world.render(0))
            writer.camera_info(0.1 * k, world.camera_model(0))
    world.close()
    with pytest.raises(AdaptationDataError, match=r"no scan topic .*it holds: /robot1/camera/camera_info"):
        _read(tmp_path / "no_scan")
    with pytest.raises(AdaptationDataError, match="no depth topic"):
        _read(tmp_path / "no_scan", "depth")
    with pytest.raises(AdaptationDataError, match=r"nearest is 4\.100 s away.*cannot be synchronised"):
        _read(_lagged(tmp_path), tolerance=0.05)


def _lagged(tmp_path):
    """A bag of 1 s whose scans are stamped 5 s after the images (another clock)."""
    from spatial_memory_ros.evaluation.sensor_drive import record_drive
    from spatial_memory_ros.sim.interface import make_world

    world = make_world("builtin", size=9, seed=3, num_robots=1)
    record_drive(world, tmp_path / "lagged", 1.0, depth=False, label_lag=5.0)
    world.close()
    return tmp_path / "lagged"


@pytest.mark.slow
def test_train_bev_bag_adapts_writes_a_checkpoint_and_card_and_resumes(drive_bag, tmp_path, capsys):
    from spatial_memory_ros.cli import main
    from spatial_memory_ros.perception.predictor import BevPredictor

    out, export = tmp_path / "run", tmp_path / "robot_bev.pt"
    command = ["train", "bev", "--bag", str(drive_bag), "--labels", "scan", "--out", str(out), "--export",
               str(export), "--epochs", "1", "--rehearse", "0", "--batch-size", "16", "--no-progress"]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "80 pairs" in printed and "held-out pairs, free / wall IoU: before" in printed
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    predictor = BevPredictor.load(export)          # loadable as a normal checkpoint, with its data and command
    info = predictor.info["adaptation"]
    assert info["bag"] == str(drive_bag) and info["pairs"]["train"] > 40 and info["labels"] == "scan"
    card = export.with_suffix(".md").read_text()
    assert "--bag" in card and "| epoch |" in card and "exported" in card
    assert main(command + ["--resume"]) == 0      # nothing left: resumes after epoch 1 and exports again
    assert "resumed" in capsys.readouterr().out
    other = [value if value != "1" else "2" for value in command]          # --epochs 2: another run's state
    assert main(other + ["--resume"]) == 2
    assert "is a run of" in capsys.readouterr().err


def test_train_bev_bag_never_trains_on_an_unlabelled_set(tmp_path, capsys):
    from spatial_memory_ros.cli import main
    from spatial_memory_ros.perception.scan_bev import LaserScan
    from spatial_memory_ros.recording.sensor_bags import SensorBagWriter
    from spatial_memory_ros.sim.interface import make_world

    world = make_world("builtin", size=9, seed=3, num_robots=1)
    blind = LaserScan(np.full(360, np.nan, np.float32), -math.pi, math.radians(1.0), 0.05, 8.0)
    with SensorBagWriter(tmp_path / "blind") as writer:
        for k in range(30):
            writer.image(0.1 * k, world.render(0))
            writer.camera_info(0.1 * k, world.camera_model(0))
            writer.scan(0.1 * k, blind)
    world.close()
    out = tmp_path / "run"
    assert main(["train", "bev", "--bag", str(tmp_path / "blind"), "--out", str(out), "--no-progress"]) == 2
    assert "does not look where the camera looks" in capsys.readouterr().err
    assert not (out / "last.pt").exists()


def test_robot_graph_runs_an_adapted_checkpoint_with_the_camera_mount():
    from spatial_memory_ros.graph import real_robot_graph

    def predictor(graph):
        return next(spec for spec in graph if spec.executable == "bev_predictor").parameters

    assert "checkpoint" not in predictor(real_robot_graph()) and "use_camera_info" not in predictor(
        real_robot_graph())
    parameters = predictor(real_robot_graph(bev_checkpoint="/robot/bev_robot.pt", camera_mount=(0.3, 0.1, 0.05)))
    assert parameters["checkpoint"] == "/robot/bev_robot.pt"
    assert (parameters["use_camera_info"], parameters["camera_height"], parameters["camera_pitch"],
            parameters["camera_forward"]) == (True, 0.3, 0.1, 0.05)


@pytest.mark.slow
def test_encoder_only_adaptation_leaves_the_geometry_layers_and_batch_norms_alone(tmp_path):
    import torch

    from spatial_memory_ros.perception.adaptation import AdaptationConfig, AdaptationRun
    from spatial_memory_ros.perception.camera_adapter import canonical_camera
    from spatial_memory_ros.perception.predictor import load_model

    model, _, bias = load_model()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    occupancy = np.full((32, 32), 0, dtype=np.int8)
    occupancy[:, 20:] = -1
    occupancy[:, 20] = 100
    rng = np.random.default_rng(0)
    pairs = AdaptationSet(rng.integers(0, 255, (10, 64, 64, 3), dtype=np.uint8), np.repeat(occupancy[None], 10, 0),
                          np.repeat(label_mask(occupancy, GRID)[None], 10, 0), np.arange(10, dtype=float))
    run = AdaptationRun(model, bias, canonical_camera(model.geometry), pairs.subset(slice(0, 8)),
                        pairs.subset(slice(8, 10)), tmp_path, AdaptationConfig(epochs=1, batch_size=4, rehearsal=0.0,
                                                                   layers="encoder"))
    history = run.train()
    assert [r.epoch for r in history] == [0, 1] and (tmp_path / "last.pt").is_file()
    after = model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert any(name.startswith("encoder.") for name in changed)
    assert not any(name.startswith(("column_encoder.", "query_decoder.", "head.", "queries", "cell_embedding"))
                   for name in changed)
    assert not any(name.endswith(("running_mean", "running_var")) for name in changed)


@pytest.mark.slow
def test_the_readme_adapt_command_runs_on_a_tiny_bag(drive_bag, tmp_path):
    """README's 'A real robot's three commands': command 2, as printed there, on a bag of the project's writer
    (paths swapped for the test's, one short epoch; the built-in camera is 0.5 m up and level)."""
    import re
    import shlex
    from pathlib import Path

    from spatial_memory_ros.cli import main

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    line = re.search(r"^spatial-memory train bev --bag .*$", readme, re.MULTILINE).group(0)
    args = shlex.split(line)[1:]
    swap = {"--bag": str(drive_bag), "--out": str(tmp_path / "adapt"), "--export": str(tmp_path / "bev_robot.pt"),
            "--camera-height": "0.5", "--camera-pitch": "0.0"}
    args = [swap.get(args[k - 1], value) if k else value for k, value in enumerate(args)]
    assert main(args + ["--epochs", "1", "--rehearse", "40", "--batch-size", "16", "--no-progress"]) == 0
    assert (tmp_path / "bev_robot.pt").is_file() and (tmp_path / "bev_robot.md").is_file()
