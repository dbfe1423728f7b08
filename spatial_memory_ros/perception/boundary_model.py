"""The floor-boundary net and its predictor (torch, imported on first use; issue 12): a canonical-camera image ->
per column where the floor ends (t, perception/floor_boundary.py) and the class of the object standing there ->
the BEV of any real camera by geometry.

BoundaryNet: four strided conv layers (height halved each time, width once: one token per two columns), a
transformer over the 32 column tokens, and per token a linear head for its two columns: t = MAX_BOUNDARY *
sigmoid(.) and object-class logits (none + the model's classes). About 0.2 M weights.

``FloorBoundaryPredictor`` has BevPredictor's interface (``geometry``, ``predict_arrays``, ``predict``,
``for_camera``), so the bev_predictor node and benchmarks/bev.py take either checkpoint.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from spatial_memory_ros.perception.class_calibration import decide
from spatial_memory_ros.perception.floor_boundary import (MAX_BOUNDARY, ColumnRaster, column_bearings,
                                                          ranges_of_boundary)
from spatial_memory_ros.perception.geometry import BevGeometry
from spatial_memory_ros.types import BevGrid, CameraModel

if TYPE_CHECKING:
    import torch

CHECKPOINT_FORMAT = "spatial_memory_ros.floor_boundary"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class BoundaryModelConfig:
    """Layer sizes of BoundaryNet."""

    conv_channels: tuple[int, ...] = (24, 32, 48, 64)
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    feedforward: int = 128
    image_size: int = 64

    @classmethod
    def from_dict(cls, values: dict) -> BoundaryModelConfig:
        """From a checkpoint (lists back to tuples)."""
        values = dict(values)
        values["conv_channels"] = tuple(values["conv_channels"])
        return cls(**values)


_CLASSES: dict = {}


def build_boundary_model(geometry: BevGeometry, config: BoundaryModelConfig | None = None) -> torch.nn.Module:
    """A fresh BoundaryNet for ``geometry`` (its image size and object classes)."""
    return _model_classes()["BoundaryNet"](config or BoundaryModelConfig(), geometry)


def _model_classes() -> dict:
    if _CLASSES:
        return _CLASSES
    import torch
    from torch import nn

    class BoundaryNet(nn.Module):
        """(B, 3, S, S) images in [0, 1] -> t (B, S) and object logits (B, S, classes + 1)."""

        def __init__(self, config: BoundaryModelConfig, geometry: BevGeometry) -> None:
            super().__init__()
            self.config, self.geometry = config, geometry
            channels = (3, *config.conv_channels)
            strides = [(2, 2)] + [(2, 1)] * (len(config.conv_channels) - 1)
            self.encoder = nn.Sequential(*(nn.Sequential(
                nn.Conv2d(channels[k], channels[k + 1], 3, stride=strides[k], padding=1, bias=False),
                nn.BatchNorm2d(channels[k + 1]), nn.ReLU(inplace=True)) for k in range(len(strides))))
            rows = config.image_size // 2 ** len(strides)
            self.columns = config.image_size // 2
            self.projection = nn.Linear(channels[-1] * rows, config.d_model)
            self.position = nn.Parameter(torch.randn(1, self.columns, config.d_model) * 0.02)
            layer = nn.TransformerEncoderLayer(config.d_model, config.heads, config.feedforward, dropout=0.0,
                                               batch_first=True, norm_first=True)
            self.mixer = nn.TransformerEncoder(layer, config.layers, norm=nn.LayerNorm(config.d_model),
                                               enable_nested_tensor=False)
            self.labels = geometry.num_object_labels
            self.head = nn.Linear(config.d_model, 2 * (1 + self.labels))

        def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.encoder(images - 0.5)
            batch, channels, rows, columns = features.shape
            tokens = features.permute(0, 3, 1, 2).reshape(batch, columns, channels * rows)
            tokens = self.mixer(self.projection(tokens) + self.position)
            out = self.head(tokens).reshape(batch, columns * 2, 1 + self.labels)
            return MAX_BOUNDARY * torch.sigmoid(out[..., 0]), out[..., 1:]

    _CLASSES["BoundaryNet"] = BoundaryNet
    return _CLASSES


def boundary_loss(t: torch.Tensor, logits: torch.Tensor, true_t: torch.Tensor, true_class: torch.Tensor,
                  valid: torch.Tensor, focal: float, object_weight: float = 0.5) -> torch.Tensor:
    """Smooth-L1 of the boundary in pixels (the image's own unit of evidence) + weighted cross-entropy of the
    column's object class (objects x 8: they are rare), over the columns the real camera saw."""
    import torch
    from torch.nn import functional

    mask = valid.float()
    pixels = functional.smooth_l1_loss(focal * t, focal * true_t, reduction="none", beta=0.5)
    weights = torch.ones(logits.shape[-1], device=logits.device)
    weights[1:] = 8.0
    classes = functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), true_class.reshape(-1).long(),
                                       weight=weights, reduction="none").reshape(mask.shape)
    return ((pixels + object_weight * classes) * mask).sum() / mask.sum().clamp(min=1.0)


def save_boundary_checkpoint(path: str | Path, model: torch.nn.Module, info: dict | None = None,
                             object_bias: float = 0.0) -> Path:
    """Weights, layer sizes, geometry, the object decision bias and ``info`` (data, command, metrics); per-world
    class offsets are added by ``calibrate boundary`` (perception/boundary_calibration.py)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "model_config": asdict(model.config),
                "geometry": model.geometry.as_dict(), "object_bias": float(object_bias),
                "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "info": json.loads(json.dumps(info or {}))}, path)
    return path


def class_bias_for(calibrations: dict[str, dict], world_classes: Sequence[str],
                   model_classes: Sequence[str]) -> dict[str, float]:
    """The class offsets (name -> logit offset) of the calibration made for a world with exactly ``world_classes``
    (in any order), or {} when none was: a world's offsets say nothing of another world's look, even for a class
    of the same name. ``calibrations``: world -> {"classes": [...], "bias": {name: offset}}. ValueError for an
    entry that is malformed, names a class the model lacks, or holds a non-finite offset."""
    wanted = set(world_classes)
    for world, entry in calibrations.items():
        try:
            classes, bias = set(entry["classes"]), {str(k): float(v) for k, v in entry["bias"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ValueError(f"class calibration {world!r} is not {{'classes': [...], 'bias': {{name: offset}}}}: "
                             f"{entry!r}") from None
        unknown = sorted(set(bias) - set(model_classes))
        if unknown or not all(math.isfinite(v) for v in bias.values()):
            raise ValueError(f"class calibration {world!r} has offsets for classes the model lacks ({unknown}) or "
                             f"non-finite offsets: {bias}; the model's classes are {list(model_classes)}")
        if classes == wanted:
            return bias
    return {}


def is_boundary_checkpoint(path: str | Path) -> bool:
    """True if ``path`` holds a floor-boundary checkpoint (False for anything else, readable or not)."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises several unrelated types for foreign files
        return False
    return isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT


class FloorBoundaryPredictor:
    """BEVs from camera images with a BoundaryNet; by itself for the canonical camera, ``for_camera`` for any."""

    def __init__(self, model: torch.nn.Module, info: dict | None = None, object_bias: float = 0.0,
                 camera: CameraModel | None = None, class_names: Sequence[str] | None = None,
                 calibrations: dict[str, dict] | None = None) -> None:
        import torch

        from spatial_memory_ros.perception.camera_adapter import canonical_camera, class_slots, image_maps

        from spatial_memory_ros.perception.predictor import _fuse_batch_norms

        self.model = _fuse_batch_norms(model.eval())
        self.info = info or {}
        self.object_bias = float(object_bias)
        self.geometry: BevGeometry = model.geometry
        self.calibrations = dict(calibrations or {})
        self.class_bias = class_bias_for(self.calibrations, class_names or self.geometry.class_names,
                                         self.geometry.class_names)
        # per slot (0: no object) the class's offset among the colours (perception/class_calibration.py decide)
        self.class_offsets = np.array([0.0] + [self.class_bias.get(name, 0.0) for name in self.geometry.class_names],
                                      np.float32)
        self.canonical = canonical_camera(self.geometry)
        self.camera = camera or self.canonical
        self.class_names = tuple(class_names or self.geometry.class_names)
        self.slots = class_slots(self.geometry.class_names, self.class_names)
        self.raster = ColumnRaster(self.geometry, self.camera)
        self.bearings = column_bearings(self.geometry.image_size, self.geometry.fov_deg)
        self.identity = self.camera == self.canonical
        self.map_x, self.map_y = image_maps(self.camera, self.canonical)
        self._torch = torch

    @classmethod
    def load(cls, path: str | Path, num_threads: int | None = None) -> FloorBoundaryPredictor:
        """Load a checkpoint written by ``save_boundary_checkpoint``; CheckpointError if it is not one."""
        import torch

        from spatial_memory_ros.perception.predictor import CheckpointError

        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        how = "train one with `spatial-memory data boundary` and `spatial-memory train boundary` (models/bev.md)"
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload.get("format") != CHECKPOINT_FORMAT or payload.get("version") != CHECKPOINT_VERSION:
                raise ValueError("not a floor-boundary checkpoint of this version")
            model = build_boundary_model(BevGeometry.from_dict(payload["geometry"]),
                                         BoundaryModelConfig.from_dict(payload["model_config"]))
            model.load_state_dict(payload["state_dict"])
        except Exception as error:  # torch and the dict access raise several unrelated types
            raise CheckpointError(f"{path}: {type(error).__name__}: {error}; {how}") from None
        try:
            return cls(model, payload.get("info", {}), payload.get("object_bias", 0.0),
                       calibrations=payload.get("class_calibrations"))
        except ValueError as error:
            raise CheckpointError(f"{path}: {error}; {how}") from None

    def for_camera(self, camera: CameraModel, class_names: Sequence[str] | None = None) -> FloorBoundaryPredictor:
        """The same model for images of ``camera`` (any pinhole; CameraMismatch if it cannot be used), objects
        named in ``class_names``."""
        from spatial_memory_ros.perception.camera_adapter import check_camera

        check_camera(camera)
        return FloorBoundaryPredictor(self.model, self.info, self.object_bias, camera, class_names,
                                      self.calibrations)

    def infer(self, canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, S, S, 3) uint8 canonical images -> t (B, S) and object labels (B, S) in the model's slots (the net
        alone: the bev_predictor node batches several robots' images through it)."""
        from spatial_memory_ros.perception.model import images_to_tensor

        with self._torch.inference_mode():
            t, logits = self.model(images_to_tensor(np.ascontiguousarray(canonical)))
        logits = logits.numpy()
        logits[..., 1:] += self.object_bias
        return t.numpy(), decide(logits, self.class_offsets)

    def arrays_from_inference(self, t: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``infer``'s output -> occupancy (B, 32, 32) int8 (-1 / 0 / 100) and object labels (B, 32, 32) uint8 in
        ``class_names``, on the grid of this predictor's camera."""
        ranges = ranges_of_boundary(t, self.bearings, self.camera.mount_height)
        occupancy, objects = self.raster.rasterise(ranges, classes)
        return occupancy, self.slots[objects]

    def bevs_from_inference(self, t: np.ndarray, classes: np.ndarray) -> list[BevGrid]:
        """``infer``'s output -> one BevGrid per image in the robot frame."""
        return self._grids(*self.arrays_from_inference(t, classes))

    def predict_arrays(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, H, W, 3) uint8 images of the camera -> occupancy (B, 32, 32) int8 (-1 / 0 / 100) and object labels
        (B, 32, 32) uint8 in ``class_names``; CameraMismatch (a ValueError) for an image of another size or type."""
        return self.arrays_from_inference(*self.infer(self.canonical_images(images)))

    def predict(self, images: np.ndarray) -> list[BevGrid]:
        """Images -> one BevGrid per image in the robot frame, objects in ``class_names``."""
        return self._grids(*self.predict_arrays(images))

    def _grids(self, occupancy: np.ndarray, objects: np.ndarray) -> list[BevGrid]:
        origin_x, origin_y = self.geometry.bev_origin
        return [BevGrid(occ, obj, self.geometry.bev_resolution, origin_x, origin_y, self.class_names)
                for occ, obj in zip(occupancy, objects)]

    def canonical_images(self, images: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 images of the camera -> the canonical camera's; CameraMismatch for others."""
        from spatial_memory_ros.perception.camera_adapter import CameraMismatch, warp_image

        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        expected = (self.camera.height, self.camera.width, 3)
        if images.ndim != 4 or images.shape[1:] != expected or images.dtype != np.uint8 or not len(images):
            raise CameraMismatch(f"expected uint8 RGB images of {expected[1]}x{expected[0]} (the camera's), got "
                                 f"{images.shape} {images.dtype}")
        if self.identity:
            return images
        return np.stack([warp_image(image, self.map_x, self.map_y) for image in images])


def focal_of(geometry: BevGeometry) -> float:
    """The canonical camera's focal length in pixels."""
    return 0.5 * geometry.image_size / math.tan(math.radians(geometry.fov_deg) / 2)
