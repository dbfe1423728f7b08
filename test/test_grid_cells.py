"""Tests of the grid-cell path integrators and their analysis (localization/grid_cells/) and `train grid-cells`."""
import math

import numpy as np
import pytest
import torch

from spatial_memory_ros.localization.grid_cells.analysis import decoding_error_cm
from spatial_memory_ros.localization.grid_cells.cells import HeadDirectionCells, PlaceCells
from spatial_memory_ros.localization.grid_cells.model import (ModelConfig, build_cells, build_model, network_batch,
                                                              path_integration_loss)
from spatial_memory_ros.localization.grid_cells.scores import GridScorer, autocorrelograms, rate_maps
from spatial_memory_ros.localization.grid_cells.training import (DEFAULT_CHECKPOINT, CheckpointError, TrainConfig,
                                                                 load_path_integrator, train_path_integrator)
from spatial_memory_ros.localization.grid_cells.trajectories import TrajectoryConfig, generate_trajectories

torch.set_num_threads(1)


def test_trajectories_are_seeded_and_stay_in_the_box():
    config = TrajectoryConfig()
    first = generate_trajectories(20, 50, config, seed=3)
    again = generate_trajectories(20, 50, config, seed=3)
    other = generate_trajectories(20, 50, config, seed=4)
    assert np.array_equal(first.positions, again.positions)
    assert not np.array_equal(first.positions, other.positions)
    assert np.all(np.abs(first.positions) <= 1.1 + 1e-9)
    assert first.positions.shape == (20, 51, 2) and first.velocities.shape == (20, 50, 2)


def test_velocities_integrate_to_the_positions():
    walks = generate_trajectories(10, 30, seed=0)
    integrated = walks.positions[:, :1] + np.cumsum(walks.velocities * walks.dt, axis=1)
    np.testing.assert_allclose(integrated, walks.positions[:, 1:], atol=1e-9)
    turned = walks.headings[:, :1] + np.cumsum(walks.angular_velocity * walks.dt, axis=1)
    difference = (turned - walks.headings[:, 1:] + math.pi) % (2 * math.pi) - math.pi
    np.testing.assert_allclose(difference, 0.0, atol=1e-9)


def test_movement_flags_change_the_statistics():
    base = generate_trajectories(200, 50, TrajectoryConfig(), seed=1)
    capped = generate_trajectories(200, 50, TrajectoryConfig(speed_max=0.2), seed=1)
    smooth = generate_trajectories(200, 50, TrajectoryConfig(velocity_smoothing=0.9), seed=1)
    calm = generate_trajectories(200, 50, TrajectoryConfig(turn_sigma_scale=0.1, border_region=0.0), seed=1)
    fast = generate_trajectories(200, 50, TrajectoryConfig(speed_scale=2.0), seed=1)
    assert capped.speeds.max() <= 0.2 + 1e-9
    assert np.diff(smooth.speeds, axis=1).std() < 0.5 * np.diff(base.speeds, axis=1).std()
    assert np.abs(calm.angular_velocity).mean() < 0.2 * np.abs(base.angular_velocity).mean()
    assert fast.speeds.mean() > 1.5 * base.speeds.mean()


def test_walls_slow_the_walker_down():
    slowed = generate_trajectories(300, 60, TrajectoryConfig(border_region=0.3, wall_slowdown=0.1), seed=2)
    free = generate_trajectories(300, 60, TrajectoryConfig(border_region=0.3, wall_slowdown=1.0), seed=2)
    assert slowed.speeds.mean() < free.speeds.mean()


@pytest.mark.parametrize("name, value", [("dt", 0.0), ("velocity_smoothing", 1.0), ("speed_max", -1.0)])
def test_bad_movement_settings_are_value_errors(name, value):
    with pytest.raises(ValueError, match=name):
        TrajectoryConfig(**{name: value})


@pytest.mark.parametrize("dog", [True, False])
def test_place_code_is_a_distribution_that_decodes_back(dog):
    cells = PlaceCells(256, sigma=0.12, difference_of_gaussians=dog, seed=0)
    positions = np.random.default_rng(0).uniform(-0.9, 0.9, size=(200, 2))
    code = cells.encode(positions)
    np.testing.assert_allclose(code.sum(-1), 1.0, atol=1e-5)
    assert code.min() >= 0.0
    error = np.linalg.norm(cells.decode(code) - positions, axis=-1)
    assert np.median(error) < 0.1


def test_head_direction_code_decodes_back():
    cells = HeadDirectionCells(12, concentration=20.0, seed=0)
    headings = np.linspace(-3.0, 3.0, 50)
    code = cells.encode(headings)
    np.testing.assert_allclose(code.sum(-1), 1.0, atol=1e-5)
    difference = (cells.decode(code) - headings + math.pi) % (2 * math.pi) - math.pi
    assert np.abs(difference).max() < 0.15


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_both_integrators_run_and_learn_a_little(kind):
    torch.manual_seed(0)
    config = ModelConfig(kind=kind, hidden_size=32, bottleneck_size=16, num_place_cells=64,
                         difference_of_gaussians=False)
    model = build_model(config)
    place, hd = build_cells(config, TrajectoryConfig(), seed=0)
    batch = network_batch(generate_trajectories(32, 10, seed=0), place, hd)
    place_logits, hd_logits, units = model(batch["inputs"], batch["start_place"], batch["start_hd"])
    assert place_logits.shape == (32, 10, 64)
    assert units.shape == (32, 10, 32 if kind == "rnn" else 16)
    assert (hd_logits is None) == (kind == "rnn")
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    first, _ = path_integration_loss(model, batch)
    for _ in range(15):
        loss, _ = path_integration_loss(model, batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < first.item()


def hexagonal_maps(bins: int = 20, angle_step: float = 60.0) -> np.ndarray:
    coordinate = np.linspace(-1.1, 1.1, bins)
    xx, yy = np.meshgrid(coordinate, coordinate)
    waves = [np.cos(2 * math.pi / 0.5 * (math.cos(a) * xx + math.sin(a) * yy))
             for a in np.radians(np.arange(0.0, 180.0, angle_step))]
    return sum(waves)[None]


def test_grid_scores_tell_hexagonal_from_square_and_noise():
    scorer = GridScorer(20)
    hex_60, hex_90 = scorer.scores(hexagonal_maps(angle_step=60.0))
    square_60, square_90 = scorer.scores(hexagonal_maps(angle_step=90.0))
    noise_60, _ = scorer.scores(np.random.default_rng(0).random((1, 20, 20)))
    assert hex_60[0] > 0.8 and hex_60[0] > square_60[0]
    assert square_90[0] > 0.8 and square_90[0] > hex_90[0]
    assert noise_60[0] < 0.3


def test_autocorrelogram_peaks_at_zero_lag_and_ignores_unvisited_bins():
    maps = np.random.default_rng(1).random((2, 10, 10))
    maps[:, 0, 0] = np.nan
    sac = autocorrelograms(maps)
    assert sac.shape == (2, 19, 19)
    np.testing.assert_allclose(sac[:, 9, 9], 1.0)


def test_rate_maps_average_activity_per_bin():
    positions = np.array([[-1.0, -1.0], [-1.0, -1.0], [1.0, 1.0]])
    activity = np.array([[1.0], [3.0], [5.0]])
    maps = rate_maps(positions, activity, 2.2, 2.2, bins=2)
    assert maps[0, 0, 0] == 2.0 and maps[0, 1, 1] == 5.0 and np.isnan(maps[0, 0, 1])


def tiny_config(**changes) -> TrainConfig:
    model = ModelConfig(hidden_size=16, num_place_cells=32)
    return TrainConfig(model=model, steps=4, batch_size=8, checkpoint_every=2, **changes)


def test_checkpoint_round_trip_and_resume(tmp_path):
    path = train_path_integrator(tiny_config(), tmp_path, progress=False)
    loaded = load_path_integrator(path)
    assert loaded.step == 4 and loaded.place_cells.num_cells == 32
    longer = tiny_config()
    longer.steps = 6
    train_path_integrator(longer, tmp_path, resume=True, progress=False, log=lambda _: None)
    assert load_path_integrator(path).step == 6


def test_missing_checkpoint_names_the_file_and_how_to_train(tmp_path):
    missing = tmp_path / "nothing.pt"
    with pytest.raises(FileNotFoundError, match="nothing.pt") as error:
        load_path_integrator(missing)
    assert "spatial-memory train grid-cells" in str(error.value)


def test_wrong_shape_checkpoint_names_the_file(tmp_path):
    path = train_path_integrator(tiny_config(), tmp_path, progress=False)
    payload = torch.load(path, weights_only=True)
    payload["model_state"]["decoder.weight"] = torch.zeros(7, 16)
    broken = tmp_path / "broken.pt"
    torch.save(payload, broken)
    with pytest.raises(CheckpointError, match="broken.pt") as error:
        load_path_integrator(broken)
    assert "spatial-memory train grid-cells" in str(error.value)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt"):
        load_path_integrator(garbage)


def test_resume_with_another_model_is_refused(tmp_path):
    train_path_integrator(tiny_config(), tmp_path, progress=False)
    other = tiny_config()
    other.model = ModelConfig(hidden_size=24, num_place_cells=32)
    with pytest.raises(CheckpointError, match="another model"):
        train_path_integrator(other, tmp_path, resume=True, progress=False)


def test_shipped_checkpoint_loads_and_path_integrates():
    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip("no shipped checkpoint yet")
    loaded = load_path_integrator()
    error = decoding_error_cm(loaded.model, loaded.place_cells, loaded.hd_cells, loaded.config.trajectory,
                              steps=20, walks=100)
    assert error < 30.0


@pytest.mark.slow
def test_train_command_writes_checkpoint_metrics_and_figures(tmp_path, capsys):
    from spatial_memory_ros.cli import main

    out = tmp_path / "run"
    args = ["train", "grid-cells", "--out", str(out), "--steps", "2", "--hidden", "8", "--place-cells", "16",
            "--batch-size", "4", "--no-progress", "--export", str(tmp_path / "exported.pt")]
    assert main(args) == 0
    for name in ("checkpoint.pt", "metrics.json", "ratemaps_best16.png", "ratemaps_top64.png"):
        assert (out / name).is_file(), name
    assert load_path_integrator(tmp_path / "exported.pt").step == 2
    assert "fraction_grid_60" in capsys.readouterr().out
