"""A BEV model for any pinhole camera (numpy + OpenCV; torch only for the logits): the camera's intrinsics, height,
forward offset and pitch are inputs, not constants in the weights (issue 12).

A BevNet is trained for one *canonical* camera (its checkpoint's geometry: the built-in sim's level 90 deg camera,
``CANONICAL_CAMERA_HEIGHT`` metres up at the robot's centre). ``CameraAdapter`` serves another camera with it:

1. Image: every pixel of the canonical image is the real image's pixel on the same ray (a rotation homography
   ``K_real R K_canonical^-1``, R the pitch difference; bilinear, edges replicated). Scaling the world about the
   camera by s = canonical height / real height changes no pixel and puts the real camera at the canonical
   height, so the floor maps exactly: the re-projected image is what the canonical camera sees of the world
   shrunk by s.
2. BEV: each cell of the real grid (the model's grid, in real metres, in the robot frame) reads the canonical
   logits at its camera-relative position times s (bilinear), so the prediction comes back in metres on the
   real grid; cells outside the real camera's view cone are unseen.
3. Objects: model class slot k is matched to the world's class of the same name, the world's other classes take
   the free slots in order (``class_slots``), so BevGrid carries the world's class names.

With the canonical camera itself the adapter is the identity (the built-in world's figures do not move).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from spatial_memory_ros.perception.geometry import BevGeometry
from spatial_memory_ros.types import CameraModel
from spatial_memory_ros.types import BevGrid

if TYPE_CHECKING:
    from spatial_memory_ros.perception.predictor import BevPredictor

CANONICAL_CAMERA_HEIGHT = 0.5
"""The built-in sim's camera height in metres (sim/camera.py: half a 1 m cell), the camera every shipped
checkpoint was trained for; a checkpoint may name another in info['camera_height']."""


class CameraMismatch(ValueError):
    """An image does not fit the camera the adapter was built for, or a camera cannot be adapted."""


def canonical_camera(geometry: BevGeometry, height: float = CANONICAL_CAMERA_HEIGHT) -> CameraModel:
    """The level camera of a model's geometry (square image, ``fov_deg`` across) at ``height``, at the robot's
    centre."""
    return CameraModel.pinhole(geometry.image_size, geometry.image_size, geometry.fov_deg, float(height))


def class_slots(model_names: Sequence[str], world_names: Sequence[str]) -> np.ndarray:
    """(len(model_names) + 1,) uint8 lookup: model object label -> world object label (0 none).

    A world class takes the slot of the model class of the same name; the others take the remaining slots in
    order (Memory-Maze: purple -> magenta's, salmon -> cyan's). A slot left over maps to 0; a world with more
    classes than slots loses the rest (ValueError would hide every object, so they are just never predicted).
    """
    model_names, world_names = list(model_names), list(world_names)
    lookup = np.zeros(len(model_names) + 1, dtype=np.uint8)
    free_slots = [k for k, name in enumerate(model_names) if name not in world_names]
    for index, name in enumerate(world_names):
        if name in model_names:
            lookup[model_names.index(name) + 1] = index + 1
        elif free_slots:
            lookup[free_slots.pop(0) + 1] = index + 1
    return lookup


def world_to_slot(model_names: Sequence[str], world_names: Sequence[str]) -> np.ndarray:
    """(len(world_names) + 1,) uint8: world object label -> model slot label (the inverse of ``class_slots``),
    for training a model on a world's frames."""
    lookup = class_slots(model_names, world_names)
    inverse = np.zeros(len(world_names) + 1, dtype=np.uint8)
    for slot, world in enumerate(lookup):
        if world:
            inverse[world] = slot
    return inverse


def check_camera(camera: CameraModel) -> None:
    """CameraMismatch if ``camera`` cannot be adapted (non-positive or non-finite focal lengths or size, a height
    not above the floor, a pitch beyond +-60 deg)."""
    numbers = (camera.fx, camera.fy, camera.cx, camera.cy, camera.mount_height, camera.mount_forward,
               camera.mount_pitch)
    if not all(math.isfinite(v) for v in numbers):
        raise CameraMismatch(f"camera has non-finite values: {camera}")
    if camera.width < 2 or camera.height < 2 or camera.fx <= 0 or camera.fy <= 0:
        raise CameraMismatch(f"camera needs a size of at least 2x2 and positive focal lengths, got "
                             f"{camera.width}x{camera.height}, fx {camera.fx}, fy {camera.fy}")
    if camera.mount_height <= 0:
        raise CameraMismatch(f"camera height must be above the floor, got {camera.mount_height} m")
    if abs(camera.mount_pitch) > math.radians(60):
        raise CameraMismatch(f"camera pitch {math.degrees(camera.mount_pitch):.1f} deg is beyond +-60 deg")


@dataclass
class CameraAdapter:
    """Runs a BevPredictor for ``camera`` (see the module docstring); ``class_names``: the world's classes."""

    predictor: BevPredictor
    camera: CameraModel
    class_names: tuple[str, ...]
    canonical_height: float = CANONICAL_CAMERA_HEIGHT

    def __post_init__(self) -> None:
        check_camera(self.camera)
        geometry = self.predictor.geometry
        self.class_names = tuple(self.class_names)
        self.canonical = canonical_camera(geometry, self.canonical_height)
        self.scale = self.canonical.mount_height / self.camera.mount_height
        self.identity = (self.camera == self.canonical or _same_camera(self.camera, self.canonical))
        self.map_x, self.map_y = image_maps(self.camera, self.canonical)
        self.view_mask = self.predictor.view_mask if self.identity else real_view_mask(geometry, self.camera)
        self.sample_grid, self.outside = bev_sample_grid(geometry, self.camera, self.canonical)
        self.slots = class_slots(geometry.class_names, self.class_names)

    def canonical_images(self, images: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 images of ``camera`` -> (B, S, S, 3) uint8 images of the canonical camera.
        Raises CameraMismatch if an image is not camera.height x camera.width RGB uint8."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        expected = (self.camera.height, self.camera.width, 3)
        if images.ndim != 4 or images.shape[1:] != expected or images.dtype != np.uint8:
            raise CameraMismatch(f"expected uint8 RGB images of {expected[1]}x{expected[0]} (the camera's), got "
                                 f"{images.shape} {images.dtype}")
        if self.identity:
            return images
        return np.stack([warp_image(image, self.map_x, self.map_y) for image in images])

    def predict_arrays(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images of ``camera`` -> occupancy (B, H, W) int8 (-1 / 0 / 100) and object labels (B, H, W) uint8 in
        the world's classes (0 none, k = class_names[k - 1]) on the model's grid in real metres."""
        from spatial_memory_ros.perception.predictor import decode_logits

        predictor = self.predictor
        canonical = predictor._checked(self.canonical_images(images))
        torch = predictor._torch
        from spatial_memory_ros.perception.model import images_to_tensor

        with torch.inference_mode():
            logits = predictor.model(images_to_tensor(canonical))
            if not self.identity:
                logits = resample_logits(logits, self.sample_grid, self.outside)
        occupancy, objects = decode_logits(logits, self.view_mask, predictor.bias)
        return occupancy, self.slots[objects]

    def predict(self, images: np.ndarray) -> list[BevGrid]:
        """Images of ``camera`` -> one BevGrid per image in the robot frame, with the world's class names."""
        occupancy, objects = self.predict_arrays(images)
        geometry = self.predictor.geometry
        origin_x, origin_y = geometry.bev_origin
        return [BevGrid(occ, obj, geometry.bev_resolution, origin_x, origin_y, self.class_names)
                for occ, obj in zip(occupancy, objects)]


def _same_camera(a: CameraModel, b: CameraModel) -> bool:
    return all(math.isclose(getattr(a, name), getattr(b, name), rel_tol=1e-6, abs_tol=1e-9)
               for name in ("width", "height", "fx", "fy", "cx", "cy", "mount_height", "mount_forward",
                            "mount_pitch"))


def image_maps(real: CameraModel, canonical: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps (canonical.height, canonical.width) float32: the real pixel seen by each canonical pixel
    (the same ray; -1 where the ray points behind the real camera)."""
    v, u = np.mgrid[0:canonical.height, 0:canonical.width].astype(np.float64)
    dx, dy, dz = (u - canonical.cx) / canonical.fx, (v - canonical.cy) / canonical.fy, np.ones_like(u)
    pitch = real.mount_pitch - canonical.mount_pitch  # the real camera looks this much further down
    cos_p, sin_p = math.cos(pitch), math.sin(pitch)
    ry, rz = cos_p * dy - sin_p * dz, sin_p * dy + cos_p * dz
    ahead = rz > 1e-6
    safe = np.where(ahead, rz, 1.0)
    map_x = np.where(ahead, real.fx * dx / safe + real.cx, -1.0)
    map_y = np.where(ahead, real.fy * ry / safe + real.cy, -1.0)
    return map_x.astype(np.float32), map_y.astype(np.float32)


def warp_image(image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    """One real image re-projected to the canonical camera (bilinear; the real image's edges replicated where
    the canonical camera sees beyond it). An image much finer than the canonical one is area-averaged first."""
    import cv2

    height, width = image.shape[:2]
    shrink = max(1, int(min(width / max(map_x.shape[1], 1), height / max(map_x.shape[0], 1)) // 2))
    if shrink > 1:  # bilinear sampling of a much finer image would alias
        image = cv2.resize(image, (width // shrink, height // shrink), interpolation=cv2.INTER_AREA)
        map_x = (map_x + 0.5) / (width / (width // shrink)) - 0.5
        map_y = (map_y + 0.5) / (height / (height // shrink)) - 0.5
    return cv2.remap(np.ascontiguousarray(image), map_x, map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def real_view_mask(geometry: BevGeometry, camera: CameraModel) -> np.ndarray:
    """(H, W) bool: the model grid's cells (real metres, robot frame) inside ``camera``'s horizontal field of
    view (from the robot's centre, as the worlds' oracles draw it) and the model's range."""
    x, y = geometry.cell_centres()
    inside = np.abs(np.arctan2(y, x)) <= math.radians(camera.horizontal_fov_deg) / 2
    return inside & (np.hypot(x, y) <= geometry.view_range)


def bev_sample_grid(geometry: BevGeometry, real: CameraModel,
                    canonical: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """For torch's grid_sample (align_corners=True): (1, H, W, 2) float32 canonical-grid coordinates of every
    real cell centre, and (H, W) bool cells that fall outside the canonical grid."""
    scale = canonical.mount_height / real.mount_height
    x, y = geometry.cell_centres()
    canonical_x = scale * (x - real.mount_forward) + canonical.mount_forward
    canonical_y = scale * y
    origin_x, origin_y = geometry.bev_origin
    ix = (canonical_x - origin_x) / geometry.bev_resolution - 0.5
    iy = (canonical_y - origin_y) / geometry.bev_resolution - 0.5
    outside = (ix < -0.5) | (ix > geometry.bev_width - 0.5) | (iy < -0.5) | (iy > geometry.bev_height - 0.5)
    grid = np.stack([2 * ix / (geometry.bev_width - 1) - 1, 2 * iy / (geometry.bev_height - 1) - 1], axis=-1)
    return grid[None].astype(np.float32), outside


def resample_logits(logits, sample_grid: np.ndarray, outside: np.ndarray):
    """Canonical logits (B, C, H, W) -> logits on the real grid (bilinear); cells off the canonical grid unseen."""
    import torch
    from torch.nn import functional

    grid = torch.from_numpy(sample_grid).expand(len(logits), -1, -1, -1)
    resampled = functional.grid_sample(logits, grid, mode="bilinear", padding_mode="border", align_corners=True)
    if outside.any():
        mask = torch.from_numpy(outside)
        resampled[:, :3, mask] = torch.tensor([10.0, -10.0, -10.0])[None, :, None]
    return resampled
