"""The egocentric BEV grid a predictor works in (numpy only): the camera and grid geometry a model is made for, and
the labels it predicts for each cell.

Nothing here knows a world: the simulator supplies its geometry when a model is trained on its frames
(``perception.frames.sim_geometry``), every checkpoint stores it, and inference reads it back from the checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

UNSEEN, FREE, WALL = 0, 1, 2
"""Occupancy labels the model predicts; BevGrid uses -1 / 0 / 100 for the same three."""
OCCUPANCY_VALUES = np.array([-1, 0, 100], dtype=np.int8)


@dataclass(frozen=True)
class BevGeometry:
    """The camera and the egocentric grid a model is for, and the object classes it tells apart.

    The camera takes square ``image_size`` RGB images with a horizontal field of view of ``fov_deg``; cells farther
    than ``view_range`` metres are never seen. Grid cell [iy, ix] covers x (forward) in
    [origin_x + ix * bev_resolution, ...) and y (left) in [origin_y + iy * bev_resolution, ...), with
    ``bev_origin`` = (origin_x, origin_y). Object class k of a grid is ``class_names[k - 1]`` (0: none).
    """

    image_size: int
    fov_deg: float
    view_range: float
    bev_resolution: float
    bev_width: int
    bev_height: int
    bev_origin: tuple[float, float]
    class_names: tuple[str, ...]

    @classmethod
    def from_dict(cls, values: dict) -> BevGeometry:
        """The geometry as a checkpoint or a data manifest stores it (``as_dict``); KeyError, TypeError or
        ValueError if ``values`` is not one."""
        origin_x, origin_y = (float(v) for v in values["bev_origin"])
        return cls(int(values["image_size"]), float(values["fov_deg"]), float(values["view_range"]),
                   float(values["bev_resolution"]), int(values["bev_width"]), int(values["bev_height"]),
                   (origin_x, origin_y), tuple(str(name) for name in values["class_names"]))

    def as_dict(self) -> dict:
        """Plain JSON values, as checkpoints and data manifests store the geometry."""
        return {"image_size": int(self.image_size), "fov_deg": float(self.fov_deg),
                "view_range": float(self.view_range), "bev_resolution": float(self.bev_resolution),
                "bev_width": int(self.bev_width), "bev_height": int(self.bev_height),
                "bev_origin": [float(v) for v in self.bev_origin], "class_names": list(self.class_names)}

    @property
    def num_object_labels(self) -> int:
        """Object labels of a cell: none, then one per class."""
        return len(self.class_names) + 1

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Robot-frame x (forward) and y (left) of every cell centre, each (bev_height, bev_width)."""
        origin_x, origin_y = self.bev_origin
        iy, ix = np.mgrid[0:self.bev_height, 0:self.bev_width]
        return origin_x + (ix + 0.5) * self.bev_resolution, origin_y + (iy + 0.5) * self.bev_resolution


def occupancy_to_labels(occupancy: np.ndarray) -> np.ndarray:
    """BevGrid occupancy (-1 / 0 / 100) to model labels (UNSEEN / FREE / WALL), uint8 of the same shape."""
    occupancy = np.asarray(occupancy)
    labels = np.full(occupancy.shape, UNSEEN, dtype=np.uint8)
    labels[occupancy == 0] = FREE
    labels[occupancy == 100] = WALL
    return labels


def labels_to_occupancy(labels: np.ndarray) -> np.ndarray:
    """Model labels (UNSEEN / FREE / WALL) to BevGrid occupancy (-1 / 0 / 100), int8."""
    return OCCUPANCY_VALUES[np.asarray(labels, dtype=np.intp)]


def view_cone_mask(geometry: BevGeometry) -> np.ndarray:
    """(bev_height, bev_width) bool: the cells whose centres lie inside the camera's field of view and range.

    Cells outside it are unseen in every oracle BEV, so predictions are forced to unseen there.
    """
    x, y = geometry.cell_centres()
    inside_fov = np.abs(np.arctan2(y, x)) <= math.radians(geometry.fov_deg) / 2
    return inside_fov & (np.hypot(x, y) <= geometry.view_range)


def cell_ranges(geometry: BevGeometry) -> np.ndarray:
    """(H * W,) float32: the distance in metres from the camera to each BEV cell's centre (along its bearing)."""
    x, y = geometry.cell_centres()
    return np.hypot(x, y).reshape(-1).astype(np.float32)
