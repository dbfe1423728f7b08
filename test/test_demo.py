"""The demo end to end, in both modes: it runs the team for a few sim seconds and writes its run folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros
CLI = Path(sys.prefix) / "bin" / "spatial-memory"


@pytest.mark.parametrize("mode, bev", [("processes", "predicted"), ("composed", "oracle")])
def test_demo_writes_its_run_folder(tmp_path, mode, bev):
    command = [str(CLI), "demo", "--duration", "4", "--robots", "2", "--maze-size", "9", "--out", str(tmp_path),
               "--no-progress", "--wall-timeout", "240", "--bev", bev] + (["--composed"] if mode == "composed" else [])
    result = subprocess.run(command, capture_output=True, text=True, timeout=400, env=os.environ.copy())
    assert result.returncode == 0, result.stdout + result.stderr
    (run_dir,) = list(tmp_path.iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["mode"] == mode and summary["bev_source"] == bev
    assert summary["sim_seconds"] >= 4.0 - 1e-6
    assert set(summary["per_robot"]) == {"robot1", "robot2"}
    for robot in summary["per_robot"].values():
        assert robot["frames_published"] >= 41
        assert robot["distance_travelled_m"] > 0.2, "the explorer did not move the robot"
        assert robot["mean_speed_m_s"] > 0.0
        assert robot["map"]["coverage"] > 0.05, "the memory saw (almost) nothing: did the sim start too early?"
        assert robot["localization"]["poses"] >= 35 and robot["localization"]["ate_m"] is not None
    assert (run_dir / "trajectories.png").stat().st_size > 1000
    assert str(run_dir) in result.stdout


def test_demo_refuses_bad_arguments_with_a_message():
    result = subprocess.run([str(CLI), "demo", "--robots", "0"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "must be in 1..16" in result.stderr
