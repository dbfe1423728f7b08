"""BEV inference (torch, imported on first use; no simulator): checkpoints (writing, loading, and the errors that say
how to train one), decision biases and the decoding of logits into grids, and ``BevPredictor``, the inference API
the ROS node uses.

The camera, grid and object classes come from the checkpoint's geometry (perception/geometry.py), which training
stored in it, so inference needs nothing of the world the model was trained in.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from spatial_memory_ros.perception.geometry import (FREE, UNSEEN, WALL, BevGeometry, labels_to_occupancy,
                                                    view_cone_mask)
from spatial_memory_ros.perception.model import BevModelConfig, build_model, images_to_tensor
from spatial_memory_ros.types import BevGrid

if TYPE_CHECKING:
    import torch

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "models" / "bev.pt"
BOUNDARY_CHECKPOINT = DEFAULT_CHECKPOINT.with_name("bev_boundary.pt")
"""The floor-boundary model (perception/boundary_model.py, models/bev_boundary.md): the one for cameras other than
the built-in sim's (Memory-Maze's, a real robot's), where the camera's height, pitch and field of view are inputs."""


def checkpoint_for_world(world: str) -> Path:
    """The shipped checkpoint a camera of ``world`` runs on: bev.pt for the built-in sim's camera, the
    floor-boundary model for any other (where it ships), so nodes and benchmarks pick the same one."""
    if world != "builtin" and BOUNDARY_CHECKPOINT.is_file():
        return BOUNDARY_CHECKPOINT
    return DEFAULT_CHECKPOINT
CHECKPOINT_FORMAT = "spatial_memory_ros.bev"
CHECKPOINT_VERSION = 1
TRAIN_COMMAND = ("spatial-memory data bev --mazes 300 --frames-per-maze 160 --out runs/bev-data && "
                 "spatial-memory train bev --data runs/bev-data --out runs/bev-1 --steps 3600 && "
                 "spatial-memory train bev --data runs/bev-data --out runs/bev-2 --init runs/bev-1/best.pt "
                 "--depth-bins 36 --lr 0.001 --steps 5000 --val-every 250 --export {path}")
"""How the shipped checkpoint was made (models/bev.md): a first run, then a second that goes on from its weights
with the depth path added. Named in every checkpoint error."""


class CheckpointError(RuntimeError):
    """A BEV checkpoint is missing, unreadable or does not fit this code; the message says how to train one."""


@dataclass(frozen=True)
class DecisionBias:
    """Offsets added to the wall logit and to every object-colour logit before the argmax.

    Training leaves them at 0; ``calibrate`` picks them on validation frames (the rare classes are under-called
    by a plain argmax), and the checkpoint carries them to the predictor.
    """

    wall: float = 0.0
    object: float = 0.0


def decode_logits(logits: torch.Tensor, view_mask: np.ndarray,
                  bias: DecisionBias = DecisionBias()) -> tuple[np.ndarray, np.ndarray]:
    """(B, 10, H, W) logits -> occupancy (B, H, W) int8 (-1 / 0 / 100) and object class (B, H, W) uint8.

    Cells outside ``view_mask`` are unseen; objects are kept only on cells predicted free (as in the oracle).
    """
    values = logits.numpy()  # numpy's argmax over channels is many times faster than torch's on CPU
    occupancy_logits, object_logits = values[:, :3].copy(), values[:, 3:].copy()
    occupancy_logits[:, WALL] += bias.wall
    object_logits[:, 1:] += bias.object
    labels = occupancy_logits.argmax(axis=1).astype(np.uint8)
    objects = object_logits.argmax(axis=1).astype(np.uint8)
    labels[:, ~view_mask] = UNSEEN
    objects[labels != FREE] = 0
    return labels_to_occupancy(labels), objects


def save_checkpoint(path: str | Path, model: torch.nn.Module, info: dict | None = None,
                    bias: DecisionBias = DecisionBias()) -> Path:
    """Write weights, layer sizes, the model's geometry, decision biases and ``info`` (data, command, metrics) to
    ``path``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
               "model_config": asdict(model.config), "geometry": model.geometry.as_dict(),
               "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
               "decision_bias": asdict(bias), "info": json.loads(json.dumps(info or {}))}
    torch.save(payload, path)
    return path


def load_model(path: str | Path = DEFAULT_CHECKPOINT) -> tuple[torch.nn.Module, dict, DecisionBias]:
    """The BevNet stored at ``path`` (eval mode, built for the checkpoint's geometry), the checkpoint's info dict
    and its decision biases.

    Raises CheckpointError naming the file and the commands that train one if the file is missing, is not a
    BEV checkpoint, or does not fit the model in this code (layer sizes, or a camera or grid its layers do not take).
    """
    import torch

    path = Path(path)
    how = "train one with: " + TRAIN_COMMAND.format(path=path)
    if not path.is_file():
        raise CheckpointError(f"BEV checkpoint {path} not found; {how}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for corrupt or foreign files
        raise CheckpointError(f"BEV checkpoint {path} could not be read ({type(error).__name__}: {error}); "
                              f"{how}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a BEV predictor checkpoint; {how}")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"BEV checkpoint {path} has format version {payload.get('version')}, this code reads "
                              f"version {CHECKPOINT_VERSION}; {how}")
    try:
        geometry = BevGeometry.from_dict(payload["geometry"])
        config = BevModelConfig.from_dict(payload["model_config"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"BEV checkpoint {path} does not describe its model and camera/grid ({error}); {how}") \
            from None
    if (geometry.image_size, geometry.bev_height, geometry.bev_width) != (config.image_size, config.bev_size,
                                                                          config.bev_size):
        raise CheckpointError(f"BEV checkpoint {path} was trained for camera/grid {payload['geometry']}, but its "
                              f"model takes {config.image_size}-pixel images and a {config.bev_size}-cell grid; {how}")
    try:
        model = build_model(geometry, config)
        model.load_state_dict(payload["state_dict"])
        bias = DecisionBias(**payload.get("decision_bias", {}))
    except (KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"BEV checkpoint {path} does not match the model in this code ({error}); {how}") \
            from None
    return model.eval(), payload.get("info", {}), bias


class BevPredictor:
    """Predicts egocentric BEV grids from camera images with a trained BevNet (CPU, no gradients)."""

    def __init__(self, model: torch.nn.Module, info: dict | None = None, bias: DecisionBias = DecisionBias()) -> None:
        """Wrap a BevNet (put in eval mode, batch norms folded); prefer ``BevPredictor.load``. The camera, grid and
        object classes are the model's (``model.geometry``)."""
        import torch

        self.model = _fuse_batch_norms(model.eval())
        self.info = info or {}
        self.bias = bias
        self.geometry: BevGeometry = model.geometry
        self.view_mask = view_cone_mask(self.geometry)
        self._torch = torch

    @classmethod
    def load(cls, path: str | Path = DEFAULT_CHECKPOINT, num_threads: int | None = None) -> BevPredictor:
        """Load a checkpoint (default: the shipped one). ``num_threads`` sets torch's (process-wide) thread count.

        Raises CheckpointError (with the file and the training command) if it is missing or does not fit. On a
        busy machine, 2 threads stay fast only with OMP_WAIT_POLICY=PASSIVE in the environment before torch is
        first imported (benchmarks/bev.py: 164 vs 71 frames/s at batch 3).
        """
        if num_threads is not None:
            import torch

            torch.set_num_threads(int(num_threads))
        return cls(*load_model(path))

    def for_camera(self, camera, class_names=None):
        """A CameraAdapter (perception/camera_adapter.py) that runs this model on images of ``camera`` (a
        types.CameraModel: intrinsics and mount) and names objects in ``class_names`` (default the
        model's). The canonical camera's height is the checkpoint's info['camera_height'] (default 0.5 m, the
        built-in sim's). Raises CameraMismatch for a camera it cannot adapt."""
        from spatial_memory_ros.perception.camera_adapter import CANONICAL_CAMERA_HEIGHT, CameraAdapter

        return CameraAdapter(self, camera, tuple(class_names or self.geometry.class_names),
                             float(self.info.get("camera_height", CANONICAL_CAMERA_HEIGHT)))

    def predict_arrays(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 64, 64, 3) or (64, 64, 3) uint8 RGB -> occupancy (B, 32, 32) int8 (-1 / 0 / 100) and object class
        (B, 32, 32) uint8 (0 none, k = geometry.class_names[k - 1]). Raises ValueError for any other shape or
        dtype."""
        images = self._checked(images)
        with self._torch.inference_mode():
            logits = self.model(images_to_tensor(images))
        return decode_logits(logits, self.view_mask, self.bias)

    def predict(self, images: np.ndarray) -> list[BevGrid]:
        """(B, 64, 64, 3) or (64, 64, 3) uint8 RGB images -> one BevGrid per image, in the robot frame."""
        occupancy, objects = self.predict_arrays(images)
        geometry = self.geometry
        origin_x, origin_y = geometry.bev_origin
        return [BevGrid(occ, obj, geometry.bev_resolution, origin_x, origin_y, geometry.class_names)
                for occ, obj in zip(occupancy, objects)]

    def _checked(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        size = self.geometry.image_size
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[1:] != (size, size, 3) or len(images) == 0:
            raise ValueError(f"expected RGB images shaped (B, {size}, {size}, 3) or ({size}, {size}, 3), "
                             f"got {images.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"expected uint8 RGB images, got dtype {images.dtype}")
        return images


def load_predictor(path: str | Path = DEFAULT_CHECKPOINT, num_threads: int | None = None):
    """The predictor a checkpoint holds: a BevPredictor, or a FloorBoundaryPredictor (perception/boundary_model.py)
    for a floor-boundary checkpoint. Both have ``geometry``, ``predict_arrays``, ``predict`` and ``for_camera``.
    Raises CheckpointError as ``BevPredictor.load`` does."""
    from spatial_memory_ros.perception.boundary_model import FloorBoundaryPredictor, is_boundary_checkpoint

    if Path(path).is_file() and is_boundary_checkpoint(path):
        return FloorBoundaryPredictor.load(path, num_threads=num_threads)
    return BevPredictor.load(path, num_threads=num_threads)


def _fuse_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Fold each eval-mode BatchNorm into the conv before it (same outputs, fewer ops per frame)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for block in model.modules():
        if isinstance(block, nn.Sequential) and len(block) == 3 and isinstance(block[1], nn.BatchNorm2d):
            block[0] = fuse_conv_bn_eval(block[0], block[1])
            block[1] = nn.Identity()
    return model
