"""perception/camera_adapter.py (issue 12): a BEV model for any pinhole camera and any world's class names."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spatial_memory_ros.perception.camera_adapter import (CameraAdapter, CameraMismatch, bev_sample_grid,  # noqa: E402
                                                          canonical_camera, class_slots, image_maps,
                                                          resample_logits, warp_image, world_to_slot)
from spatial_memory_ros.perception.frames import render_maze_frames, sim_geometry  # noqa: E402
from spatial_memory_ros.perception.predictor import BevPredictor  # noqa: E402
from spatial_memory_ros.types import CameraModel  # noqa: E402
from spatial_memory_ros.sim.maze import CLASS_NAMES  # noqa: E402

GEOMETRY = sim_geometry()
MEMORY_MAZE_NAMES = ("red", "green", "blue", "purple", "yellow", "salmon")
MEMORY_MAZE_CAMERA = CameraModel.pinhole(64, 64, 80.0, 0.9, 0.15, math.radians(5.71))


@pytest.fixture(scope="module")
def predictor():
    torch.set_num_threads(1)
    return BevPredictor.load()


def test_class_slots_match_names_then_fill_free_slots():
    lookup = class_slots(CLASS_NAMES, MEMORY_MAZE_NAMES)  # model: red green blue yellow magenta cyan
    assert [MEMORY_MAZE_NAMES[k - 1] if k else None for k in lookup[1:]] == \
        ["red", "green", "blue", "yellow", "purple", "salmon"]
    inverse = world_to_slot(CLASS_NAMES, MEMORY_MAZE_NAMES)
    assert all(lookup[inverse[k]] == k for k in range(1, 7))
    assert list(class_slots(CLASS_NAMES, CLASS_NAMES)) == list(range(7))


def test_canonical_camera_is_the_identity(predictor):
    frames = render_maze_frames(2_000_000, 6)
    adapter = predictor.for_camera(canonical_camera(predictor.geometry), CLASS_NAMES)
    assert adapter.identity
    expected = predictor.predict_arrays(frames.images)
    got = adapter.predict_arrays(frames.images)
    assert np.array_equal(expected[0], got[0]) and np.array_equal(expected[1], got[1])


def test_same_camera_other_pose_maps_pixels_on_the_same_ray():
    canonical = canonical_camera(GEOMETRY)
    map_x, map_y = image_maps(canonical, canonical)
    v, u = np.mgrid[0:64, 0:64]
    assert np.allclose(map_x, u, atol=1e-4) and np.allclose(map_y, v, atol=1e-4)
    # a camera pitched down sees the horizon (canonical row 31.5) above its centre
    pitched = CameraModel.pinhole(64, 64, 90.0, 0.5, 0.0, math.radians(10))
    _, map_y = image_maps(pitched, canonical)
    expected = 31.5 - 32.0 * math.tan(math.radians(10))
    assert map_y[31:33, 32].mean() == pytest.approx(expected, abs=0.05)
    image = np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8)
    other = CameraModel.pinhole(80, 48, 60.0, 0.9)
    assert warp_image(image, *image_maps(other, canonical)).shape == (64, 64, 3)


def test_bev_comes_back_in_real_metres():
    """A camera twice as high: the model's canonical cell at x sees the floor at 2x; a wall drawn at canonical
    x = 2 m must come back at 4 m on the real grid."""
    high = CameraModel.pinhole(64, 64, 90.0, 1.0)
    grid, outside = bev_sample_grid(GEOMETRY, high, canonical_camera(GEOMETRY))
    logits = torch.zeros(1, 10, 32, 32)
    logits[0, 1] = 1.0
    logits[0, 2, 14:18, 8] = 5.0  # ix 8: x in [2, 2.25)
    resampled = resample_logits(logits, grid, outside)
    walls = resampled[0, :3].argmax(0).numpy() == 2
    columns = np.flatnonzero(walls.any(0))
    assert columns.min() >= 15 and columns.max() <= 18  # x in [3.75, 4.75)
    assert not outside.any()


def test_memory_maze_camera_and_bad_inputs(predictor):
    adapter = predictor.for_camera(MEMORY_MAZE_CAMERA, MEMORY_MAZE_NAMES)
    assert not adapter.identity and adapter.scale == pytest.approx(0.5 / 0.9)
    images = np.random.default_rng(1).integers(0, 255, (3, 64, 64, 3), dtype=np.uint8)
    grids = adapter.predict(images)
    assert len(grids) == 3 and grids[0].class_names == MEMORY_MAZE_NAMES
    occupancy, objects = adapter.predict_arrays(images)
    assert (occupancy[:, ~adapter.view_mask] == -1).all() and objects.max() <= 6
    with pytest.raises(CameraMismatch):
        adapter.predict_arrays(np.zeros((1, 48, 64, 3), np.uint8))
    with pytest.raises(CameraMismatch):
        adapter.predict_arrays(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(CameraMismatch):
        CameraAdapter(predictor, CameraModel.pinhole(64, 64, 80.0, 0.0), MEMORY_MAZE_NAMES)


@pytest.mark.slow
def test_memory_maze_canonical_frames_come_back_to_the_worlds_oracle():
    """data bev --world memory_maze: canonical labels (the world shrunk to the model's camera height), brought back
    through the adapter's resampling, agree with the world's own oracle on the same poses."""
    from spatial_memory_ros.perception.camera_adapter import real_view_mask
    from spatial_memory_ros.perception.frames import render_canonical_frames, render_world_frames, world_camera
    from spatial_memory_ros.sim.interface import WorldUnavailable

    try:
        real = render_world_frames("memory_maze", 1_000_000, 4, size=9)
        canonical = render_canonical_frames("memory_maze", 1_000_000, 4, GEOMETRY, size=9)
    except WorldUnavailable as error:
        pytest.skip(str(error))
    assert canonical.images.shape == (4, 64, 64, 3) and canonical.object_class.max() <= 6
    camera = world_camera("memory_maze")
    grid, outside = bev_sample_grid(GEOMETRY, camera, canonical_camera(GEOMETRY))
    logits = torch.from_numpy(np.stack([canonical.occupancy == v for v in (-1, 0, 100)], 1).astype(np.float32))
    back = np.array([-1, 0, 100])[resample_logits(logits, grid, outside).argmax(1).numpy()]
    back[:, ~real_view_mask(GEOMETRY, camera)] = -1
    seen = (back >= 0) | (real.occupancy >= 0)
    assert (back == real.occupancy)[seen].mean() > 0.75
