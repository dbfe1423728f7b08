"""spatial-memory render: PNG snapshots and an MP4 of a recorded run (a real 5-s demo bag), every robot's panel
drawn, absent topics left out, and a corrupt bag refused with exit code 1 and a clear message."""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace as NS

import cv2
import numpy as np
import pytest

from spatial_memory_ros.cli import main
from spatial_memory_ros.evaluation.plots import ROBOT_COLOURS_RGB
from spatial_memory_ros.evaluation.render import (HEADER, TITLE, View, belief_colours, frame_times, render_frame,
                                                  snapshot_times)
from spatial_memory_ros.evaluation.scene import Scene

ROBOTS, DURATION = 2, 5.0


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """A recorded 5-s demo of two robots in a 9x9 maze (one per module: it takes ~30-60 s)."""
    out = tmp_path_factory.mktemp("runs")
    command = [str(Path(sys.executable).parent / "spatial-memory"), "demo", "--duration", str(DURATION),
               "--robots", str(ROBOTS), "--maze-size", "9", "--no-progress", "--record", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert (folder / "bag" / "metadata.yaml").is_file()
    return folder


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, f"{path} does not read back as an image"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _has_colour(image: np.ndarray, rgb, tolerance: int = 12) -> bool:
    return bool(np.any(np.all(np.abs(image.astype(int) - np.array(rgb)) <= tolerance, axis=2)))


@pytest.mark.slow
def test_render_run_folder_writes_video_and_snapshots(run_folder, tmp_path, capsys):
    out = tmp_path / "pictures"
    code = main(["render", str(run_folder), "--out", str(out), "--every", "1.0", "--fps", "5", "--snapshots", "2",
                 "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0, printed.err

    expected_frames = len(frame_times(0.0, DURATION, 1.0))          # 0, 1, ..., 5 s
    capture = cv2.VideoCapture(str(out / "render.mp4"))
    assert capture.isOpened()
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == expected_frames
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape[0] % 2 == 0 and first.shape[1] % 2 == 0
    assert f"({expected_frames} frames)" in printed.out

    snapshots = sorted(out.glob("snapshot_*.png"))
    assert [p.name for p in snapshots][-1] == "snapshot_02_t5.0s.png" and len(snapshots) == 3
    last = _read_rgb(snapshots[-1])
    assert last.shape[:2] == first.shape[:2]
    assert last.std() > 20, "the snapshot is blank"
    assert np.abs(last.astype(int) - _read_rgb(snapshots[0]).astype(int)).mean() > 0.2, "nothing moved"
    panel_width = last.shape[1] // (ROBOTS + 1)
    for k in range(ROBOTS):                          # panel k+1 is robot k+1's: its name in its colour on top
        header = last[TITLE:TITLE + HEADER, (k + 1) * panel_width:(k + 2) * panel_width]
        assert _has_colour(header, ROBOT_COLOURS_RGB[k]), f"robot{k + 1}'s panel is missing"


@pytest.mark.slow  # the module's recorded demo run takes ~20 s
def test_render_bare_bag_defaults_to_render_folder_beside_it(run_folder, capsys):
    code = main(["render", str(run_folder / "bag"), "--no-video", "--snapshots", "0", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    written = list((run_folder / "render").iterdir())
    assert [p.name for p in written] == ["snapshot_00_t5.0s.png"]


@pytest.mark.slow  # the module's recorded demo run takes ~20 s
def test_corrupt_bag_exits_1_with_a_clear_message(run_folder, tmp_path, capsys):
    bag = tmp_path / "bag"
    shutil.copytree(run_folder / "bag", bag)
    mcap = bag / "bag.mcap"
    data = bytearray(mcap.read_bytes())
    middle = slice(len(data) // 2, len(data) // 2 + 16)
    data[middle] = bytes(b ^ 0xFF for b in data[middle])    # flip 16 bytes in the middle (zeroing may change nothing)
    mcap.write_bytes(bytes(data))
    assert main(["render", str(bag), "--out", str(tmp_path / "out"), "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert "corrupt" in error and "record it again" in error
    assert not (tmp_path / "out").exists(), "nothing may be written from a corrupt bag"


def test_not_a_bag_exits_1(tmp_path, capsys):
    assert main(["render", str(tmp_path), "--no-progress"]) == 1
    assert "neither a run folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- ROS-free drawing

def _stamp(seconds: float) -> NS:
    return NS(sec=int(seconds), nanosec=int(round((seconds % 1) * 1e9)))


def _grid(values: np.ndarray, resolution: float) -> NS:
    info = NS(width=values.shape[1], height=values.shape[0], resolution=resolution,
              origin=NS(position=NS(x=0.0, y=0.0, z=0.0)))
    return NS(header=NS(stamp=_stamp(0)), info=info, data=values.astype(np.int8).ravel())


def _pose(x: float, y: float, yaw: float = 0.0, sd: float = 0.0) -> NS:
    covariance = np.zeros(36)
    covariance[0], covariance[7] = sd ** 2, (sd / 2) ** 2
    pose = NS(position=NS(x=x, y=y, z=0.0), orientation=NS(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)))
    return NS(header=NS(stamp=_stamp(1)), pose=NS(pose=pose, covariance=covariance))


def test_frame_shows_belief_partners_camera_and_bits(tmp_path):
    """Topics the demo does not record yet (belief, partners, comm/stats) are drawn when present."""
    maze = np.zeros((8, 8), np.int8)
    maze[0, :] = maze[-1, :] = maze[:, 0] = maze[:, -1] = 100
    belief = np.zeros((32, 32), np.int8)
    belief[8:12, 8:12] = 100
    scene = Scene(["robot1", "robot2"])
    scene.apply("/ground_truth/map", _grid(maze, 1.0))
    scene.apply("/robot1/map", _grid(np.where(np.arange(64).reshape(8, 8) % 3 == 0, -1, maze), 1.0))
    scene.apply("/robot1/belief", _grid(belief, 0.25))
    for t in range(5):
        scene.apply("/robot1/ground_truth/pose", _pose(2.0 + 0.3 * t, 2.5, 0.3))
        scene.apply("/robot1/pose", _pose(2.1 + 0.3 * t, 2.3, 0.3))
    partner = NS(robot_id="robot2", pose=_pose(5.5, 5.5, sd=0.6).pose, age=0.4, packets_received=7)
    scene.apply("/robot1/partners", NS(header=NS(stamp=_stamp(1)), partners=[partner]))
    camera = np.zeros((64, 64, 3), np.uint8)
    camera[:, :, 2] = 255
    scene.apply("/robot1/camera/image_raw", NS(header=NS(stamp=_stamp(1)), height=64, width=64, encoding="rgb8",
                                               step=192, data=camera.ravel()))
    scene.apply("/robot1/comm/stats", NS(header=NS(stamp=_stamp(1)), payload_bits_per_step=3.25,
                                         budget_bits_per_step=4, packets_sent=12, packets_received=9))
    scene.time = 1.0
    frame = render_frame(scene, View.around((0.0, 0.0, 8.0, 8.0)), "synthetic")
    cv2.imwrite(str(tmp_path / "synthetic.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    panel_width = frame.shape[1] // 3
    robot1 = frame[TITLE + HEADER:, panel_width:2 * panel_width]
    assert _has_colour(robot1, (0, 0, 255), 0), "camera inset missing"
    assert _has_colour(robot1, ROBOT_COLOURS_RGB[1], 0), "partner robot2 missing from robot1's panel"
    assert _has_colour(robot1, belief_colours(np.array(1.0)), 30), "belief heat map missing"
    robot2 = frame[TITLE + HEADER:, 2 * panel_width:]
    assert not _has_colour(robot2, (0, 0, 255), 0), "robot2 published no camera image: none may be drawn"


def test_frame_and_snapshot_times():
    assert frame_times(0.0, 5.0, 1.0) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert frame_times(0.0, 1.2, 0.5) == [0.0, 0.5, 1.0, 1.2]
    assert snapshot_times(0.0, 4.0, 3) == [1.0, 2.0, 3.0, 4.0]
    assert snapshot_times(2.0, 2.0, 0) == [2.0]
