"""Per-world class offsets of the floor-boundary model: the fit (perception/class_calibration.py), the predictor
applying them to their own world only (boundary_model.py), and `spatial-memory calibrate boundary`."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from spatial_memory_ros.perception.class_calibration import (class_scores, column_confusion, decide,
                                                             fit_class_offsets, macro_f1)

RED, SALMON = 1, 2


def _confused_columns(seed: int = 0, columns: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits (N, S, 3) where salmon columns score red 0.5 above salmon (a class training saw rarely), red
    columns score red 1.5 above salmon, and empty columns score no-object highest; plus truth and validity."""
    rng = np.random.default_rng(seed)
    true = rng.choice([0, RED, SALMON], size=(columns, 8), p=[0.5, 0.25, 0.25])
    logits = rng.normal(0.0, 0.3, size=true.shape + (3,))
    logits[true == 0, 0] += 3.0
    logits[true == RED, RED] += 2.0
    logits[true == RED, SALMON] += 0.5
    logits[true == SALMON, RED] += 1.5
    logits[true == SALMON, SALMON] += 1.0
    return logits, true, np.ones(true.shape, bool)


def test_an_under_predicted_class_gets_the_offset_that_recovers_it():
    logits, true, valid = _confused_columns()
    zero = np.zeros(3)
    before = class_scores(column_confusion(logits, true, valid, zero), [RED, SALMON])
    assert before[SALMON]["recall"] < 0.2  # mostly called red
    offsets = fit_class_offsets(logits, true, valid, [RED, SALMON])
    after = class_scores(column_confusion(logits, true, valid, offsets), [RED, SALMON])
    assert offsets[SALMON] - offsets[RED] >= 0.25 and offsets[0] == 0.0
    assert after[SALMON]["recall"] > 0.8 and after[RED]["precision"] > before[RED]["precision"]
    assert macro_f1(column_confusion(logits, true, valid, offsets), [RED, SALMON]) > \
        macro_f1(column_confusion(logits, true, valid, zero), [RED, SALMON]) + 0.2


def test_a_class_with_too_few_columns_keeps_no_offset():
    logits, true, valid = _confused_columns(columns=30)  # about 60 salmon columns: under 100
    offsets = fit_class_offsets(logits, true, valid, [RED, SALMON], min_columns=100)
    assert offsets[SALMON] == 0.0
    assert not fit_class_offsets(logits, true, np.zeros_like(valid), [RED, SALMON]).any()  # nothing valid


def test_offsets_recolour_objects_but_never_turn_a_column_into_one_or_out_of_one():
    logits, true, valid = _confused_columns()
    plain = decide(logits, np.zeros(3))
    for offsets in (np.array([0.0, -3.0, 3.0]), np.array([0.0, 3.0, -3.0])):
        assert np.array_equal(decide(logits, offsets) > 0, plain > 0)
    assert (decide(logits, np.array([0.0, -3.0, 3.0])) == SALMON).sum() > (plain == SALMON).sum()


def test_shapes_that_do_not_fit_are_refused_with_what_was_given():
    with pytest.raises(ValueError, match="logits must be"):
        column_confusion(np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 3), bool), np.zeros(3))


torch = pytest.importorskip("torch")

from spatial_memory_ros.perception.boundary_data import boundary_geometry  # noqa: E402
from spatial_memory_ros.perception.boundary_model import (FloorBoundaryPredictor, build_boundary_model,  # noqa: E402
                                                          class_bias_for, save_boundary_checkpoint)
from spatial_memory_ros.perception.predictor import CheckpointError  # noqa: E402

MEMORY_MAZE = ("red", "green", "blue", "purple", "yellow", "salmon")
BUILTIN = ("red", "green", "blue", "yellow", "magenta", "cyan")


def test_a_calibration_applies_to_its_own_world_only():
    calibrations = {"memory_maze": {"classes": list(MEMORY_MAZE), "bias": {"red": -1.0, "salmon": 1.5}}}
    model_classes = boundary_geometry().class_names
    assert class_bias_for(calibrations, tuple(reversed(MEMORY_MAZE)), model_classes) == {"red": -1.0, "salmon": 1.5}
    assert class_bias_for(calibrations, BUILTIN, model_classes) == {}  # the built-in red is not Memory-Maze's
    with pytest.raises(ValueError, match="lacks"):
        class_bias_for({"w": {"classes": ["red"], "bias": {"teal": 1.0}}}, ("red",), model_classes)
    with pytest.raises(ValueError, match="non-finite"):
        class_bias_for({"w": {"classes": ["red"], "bias": {"red": float("nan")}}}, ("red",), model_classes)
    with pytest.raises(ValueError, match="is not"):
        class_bias_for({"w": ["red"]}, ("red",), model_classes)


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("calibration") / "untrained.pt"
    save_boundary_checkpoint(path, build_boundary_model(boundary_geometry()), {"note": "test"})
    return path


def test_the_predictor_adds_a_loaded_calibration_to_its_worlds_logits(untrained, tmp_path):
    payload = torch.load(untrained, weights_only=True)
    payload["class_calibrations"] = {"memory_maze": {"classes": list(MEMORY_MAZE), "bias": {"salmon": 2.0}}}
    calibrated = tmp_path / "calibrated.pt"
    torch.save(payload, calibrated)
    predictor = FloorBoundaryPredictor.load(calibrated)
    names = predictor.geometry.class_names
    memory_maze = predictor.for_camera(predictor.canonical, MEMORY_MAZE)
    builtin = predictor.for_camera(predictor.canonical, BUILTIN)
    assert memory_maze.class_offsets[names.index("salmon") + 1] == pytest.approx(2.0)
    assert memory_maze.class_offsets[names.index("red") + 1] == 0.0 and not builtin.class_offsets.any()
    images = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    _, shifted = memory_maze.infer(images)
    _, plain = builtin.infer(images)
    assert np.array_equal(shifted > 0, plain > 0)  # the offsets recolour objects, never add or drop one
    assert (shifted == names.index("salmon") + 1).sum() >= (plain == names.index("salmon") + 1).sum()
    payload["class_calibrations"] = {"memory_maze": {"classes": ["red"], "bias": {"teal": 1.0}}}
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="teal"):
        FloorBoundaryPredictor.load(tmp_path / "broken.pt")


@pytest.mark.slow
def test_calibrate_command_writes_a_calibrated_copy_and_refuses_to_overwrite(untrained, tmp_path):
    command = [sys.executable, "-m", "spatial_memory_ros.cli", "calibrate", "boundary", "--checkpoint",
               str(untrained), "--world", "builtin", "--mazes", "1", "--frames-per-maze", "4", "--no-progress"]
    export = tmp_path / "calibrated.pt"
    done = subprocess.run(command + ["--export", str(export)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "precision" in done.stdout and f"wrote {export}" in done.stdout
    predictor = FloorBoundaryPredictor.load(export)
    report = predictor.info["class_calibration"]["builtin"]
    assert report["frames"] == 4 and "calibrate boundary" in report["command"] and predictor.info["note"] == "test"
    assert set(predictor.calibrations["builtin"]["classes"]) == set(BUILTIN)
    same = subprocess.run(command + ["--export", str(untrained)], capture_output=True, text=True, timeout=300)
    assert same.returncode == 2 and "--export must differ" in same.stderr
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    junk = subprocess.run(command[:6] + [str(tmp_path / "junk.pt")] + command[7:] + ["--export", str(export)],
                          capture_output=True, text=True, timeout=300)
    assert junk.returncode == 2 and "junk.pt" in junk.stderr
