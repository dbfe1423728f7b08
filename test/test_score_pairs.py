"""The rule that decides whether a Memory-Maze candidate ships (evaluation/score_pairs.py) and the script that
applies it to results files (benchmarks/memory_maze_pairs.py)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from spatial_memory_ros.evaluation.memory_maze_env import EPISODE_STEPS
from spatial_memory_ros.evaluation.score_pairs import Pair, decide, full_episodes, pair_up, summarise_pairs
from spatial_memory_ros.perception.predictor import BOUNDARY_CHECKPOINT

REPO = Path(__file__).resolve().parents[1]
ORACLE = {9: 34.8, 15: 87.7}


def row(size: int, seed: int, reward: float, checkpoint: str = BOUNDARY_CHECKPOINT.name, **settings) -> dict:
    return {"size": size, "seed": seed, "variant": "memory", "steps": EPISODE_STEPS[size], "total_reward": reward,
            "checkpoint": checkpoint, **settings}


def test_only_full_memory_on_episodes_both_sides_ran_are_paired():
    short = {**row(9, 2, 30.0), "steps": 100}
    off = {**row(9, 3, 4.0), "variant": "no_memory"}
    candidate = full_episodes([row(9, 0, 25.0), row(9, 1, 20.0), short, off], EPISODE_STEPS)
    baseline = full_episodes([row(9, 0, 22.0), row(9, 2, 20.0), row(9, 3, 21.0)], EPISODE_STEPS)
    assert pair_up(candidate, baseline) == [Pair(9, 0, 25.0, 22.0)]


def test_a_consistent_gain_ships_and_a_consistent_loss_is_worse():
    gains = [Pair(9, seed, 25.0 + seed % 3, 22.0) for seed in range(8)] + [
        Pair(15, seed, 60.0 + seed % 4, 45.0) for seed in range(8)]
    summary = summarise_pairs(gains, ORACLE)
    assert summary["decision"] == "ships" and summary["pooled"]["ci95"][0] > 0
    assert summary["pooled"]["signed_rank_p"] < 0.01
    (nine, fifteen) = summary["sizes"]
    assert nine["better"] == 8 and fifteen["mean_difference"] == pytest.approx(16.5)
    losses = [Pair(p.size, p.seed, p.baseline, p.candidate) for p in gains]
    assert summarise_pairs(losses, ORACLE)["decision"] == "worse"


def test_a_mixed_result_stays_a_candidate_and_so_does_a_pooled_gain_with_one_size_clearly_worse():
    mixed = [Pair(15, seed, 45.0 + (20 if seed % 2 else -18), 45.0) for seed in range(10)]
    assert summarise_pairs(mixed, ORACLE)["decision"] == "candidate"
    sizes = [{"size": 9, "ci95": [-3.0, -1.0]}, {"size": 15, "ci95": [5.0, 30.0]}]
    assert decide(sizes, {"pairs": 20, "ci95": [0.01, 0.2]}) == "candidate"
    assert decide([], {"pairs": 0, "ci95": [float("nan")] * 2}) == "candidate"


def _pairs_script():
    spec = importlib.util.spec_from_file_location("memory_maze_pairs", REPO / "benchmarks" / "memory_maze_pairs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _results(path: Path, rows: list[dict]) -> Path:
    path.write_text(json.dumps({"episodes": {f"{r['size']}/{r['seed']}/{r['checkpoint']}/{i}": r
                                             for i, r in enumerate(rows)}}))
    return path


def test_the_script_pairs_a_later_files_rerun_and_picks_rows_by_setting(tmp_path, capsys):
    shipped = _results(tmp_path / "table.json", [row(9, s, 20.0, turn_in_place_deg=50.0) for s in range(4)]
                       + [row(9, 9, 99.0, turn_in_place_deg=70.0)])  # a trial row in the table: never a baseline
    older = _results(tmp_path / "old.json", [row(9, s, 10.0, "tuned.pt") for s in range(4)])
    rerun = _results(tmp_path / "rerun.json", [row(9, 0, 23.0, "tuned.pt"), row(9, 1, 24.0, "tuned.pt"),
                                               row(9, 9, 25.0, "tuned.pt")])
    out = tmp_path / "pairs.json"
    _pairs_script().main(["--candidate", str(older), str(rerun), "--checkpoint", "tuned.pt", "--baseline",
                          str(shipped), "--out", str(out)])
    record = json.loads(out.read_text())
    assert [(p["seed"], p["candidate"]) for p in record["pairs"]] == [(0, 23.0), (1, 24.0), (2, 10.0), (3, 10.0)]
    assert "decision:" in capsys.readouterr().out
    trial = _results(tmp_path / "trial.json", [row(9, 0, 30.0, doubt_when_out_of_frontiers=True),
                                               row(9, 1, 5.0, doubt_when_out_of_frontiers=False)])
    _pairs_script().main(["--candidate", str(trial), "--where", "doubt_when_out_of_frontiers=true", "--baseline",
                          str(shipped), "--out", str(out)])
    assert [p["seed"] for p in json.loads(out.read_text())["pairs"]] == [0]


def test_the_script_says_what_to_do_when_nothing_pairs_or_an_argument_is_wrong(tmp_path, capsys):
    shipped = _results(tmp_path / "table.json", [row(9, 0, 20.0)])
    other = _results(tmp_path / "other.json", [row(9, 5, 20.0, "tuned.pt")])
    with pytest.raises(SystemExit):
        _pairs_script().main(["--candidate", str(other), "--checkpoint", "tuned.pt", "--baseline", str(shipped)])
    assert "run the same seeds on both sides first" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _pairs_script().main(["--candidate", str(other), "--where", "novalue", "--baseline", str(shipped)])
    assert "KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="cannot read episodes"):
        _pairs_script().main(["--candidate", str(tmp_path / "missing.json"), "--baseline", str(shipped)])


def test_rows_older_than_a_setting_keep_the_value_they_were_run_with_when_the_shipped_one_changes(tmp_path,
                                                                                                  monkeypatch):
    script = _pairs_script()
    shipped = {**script.shipped_settings(), "min_wall_incidence": 0.2}
    monkeypatch.setattr(script, "shipped_settings", lambda: shipped)
    table = _results(tmp_path / "table.json", [row(9, 0, 20.0), row(9, 1, 22.0, min_wall_incidence=0.2)])
    trial = _results(tmp_path / "trial.json", [row(9, s, 25.0, far_wall_weight=0.4) for s in (0, 1)])
    out = tmp_path / "pairs.json"
    script.main(["--candidate", str(trial), "--where", "far_wall_weight=0.4", "--baseline", str(table),
                 "--out", str(out)])
    assert [p["seed"] for p in json.loads(out.read_text())["pairs"]] == [1]  # seed 0's row ran without the filter
