"""The BEV predictor's network (torch, imported only where a model is built or run): BevNet, its layer sizes, the
fixed camera geometry it builds on (which image columns and depths each BEV cell reads) and its input format.

After SSM-PC's predictive BEV: a strided conv encoder over the 64x64 RGB image, a transformer over the image's
columns (each column is a bearing), a transformer decoder whose learned queries each own one 4x4 patch of the
egocentric grid, and an upsampling head. One addition of ours: each BEV cell also reads the column token of its own
bearing directly (a fixed interpolation given by the pinhole camera), which in short trials on 1 CPU thread gave
much better walls for the same number of steps. It predicts the oracle BEV of ``sim/oracle.py``: per cell unseen /
free / wall, and the colour class of any target object. It is sized for 2 CPU cores (see ``BevModelConfig``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from spatial_memory_ros.perception.geometry import BevGeometry, cell_ranges, view_cone_mask

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class BevModelConfig:
    """Layer sizes of BevNet, chosen so it runs at well over 100 frames/s in batches of 3 on 2 CPU threads."""

    conv_channels: tuple[int, ...] = (24, 32, 48, 64)
    columns: int = 32
    d_model: int = 64
    heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    feedforward: int = 128
    query_grid: int = 8
    head_channels: int = 32
    image_size: int = 64
    bev_size: int = 32
    depth_bins: int = 0
    """Bins of the per-column depth distribution (0: no depth path). With K > 0 every column token also predicts a
    distribution of the distance to the first wall along its bearing over K bins up to ``DEPTH_RANGE_MARGIN`` past
    the view range, and each cell reads three numbers from the distributions of its bearing: the probability that
    the wall is nearer than the cell, that it lies within one cell of the cell's range, and that it is farther."""

    @classmethod
    def from_dict(cls, values: dict) -> BevModelConfig:
        """The config stored in a checkpoint (lists back to tuples; checkpoints older than the depth path have
        none)."""
        values = dict(values)
        values["conv_channels"] = tuple(values["conv_channels"])
        values.setdefault("depth_bins", 0)
        return cls(**values)


DEPTH_RANGE_MARGIN = 1.0
"""Metres past the camera's view range that the depth path's last bin reaches (farther walls fall in it)."""


def build_model(geometry: BevGeometry, config: BevModelConfig | None = None) -> torch.nn.Module:
    """A fresh BevNet for the camera and grid of ``geometry``; torch is imported here."""
    return _model_classes()["BevNet"](config or BevModelConfig(), geometry)


def column_lift_matrix(columns: int, geometry: BevGeometry) -> np.ndarray:
    """(columns, H * W) float32: how each BEV cell's feature mixes the column tokens along its bearing.

    A cell at bearing phi (left positive) projects to image column u = W/2 - f tan(phi) of the pinhole camera;
    its weights interpolate linearly between the two nearest of ``columns`` evenly spaced tokens. Cells outside the
    view cone get all-zero weights.
    """
    focal = 0.5 * geometry.image_size / math.tan(math.radians(geometry.fov_deg) / 2)
    x, y = geometry.cell_centres()
    pixel = 0.5 * geometry.image_size - focal * y / np.maximum(x, 1e-6)
    position = np.clip(pixel / geometry.image_size * columns - 0.5, 0, columns - 1).reshape(-1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, columns - 1)
    share = (position - low).astype(np.float32)
    weights = np.zeros((columns, position.size), dtype=np.float32)
    cells = np.arange(position.size)
    weights[low, cells] += 1 - share
    weights[high, cells] += share
    weights[:, ~view_cone_mask(geometry).reshape(-1)] = 0.0
    return weights


def _depth_gather(columns: int, bins: int, bin_width: float, geometry: BevGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Indices into a flattened (columns, bins + 1) cumulative depth distribution and their weights, each
    (3, 4, H * W): for each cell, its range less one cell, its range and its range plus one cell, read from the two
    columns of its bearing (``column_lift_matrix``) at the two bin edges around that distance."""
    lift = column_lift_matrix(columns, geometry)  # (columns, HW), at most two non-zero weights per cell
    order = np.argsort(-lift, axis=0, kind="stable")[:2]  # (2, HW)
    column_weight = np.take_along_axis(lift, order, axis=0)
    ranges = cell_ranges(geometry)
    index = np.zeros((3, 4, ranges.size), dtype=np.int64)
    weight = np.zeros((3, 4, ranges.size), dtype=np.float32)
    for q, offset in enumerate((-geometry.bev_resolution, 0.0, geometry.bev_resolution)):
        position = np.clip((ranges + offset) / bin_width, 0, bins)
        low = np.minimum(np.floor(position).astype(np.int64), bins - 1)
        share = (position - low).astype(np.float32)
        for j in range(2):
            for k, (edge, edge_weight) in enumerate(((low, 1 - share), (low + 1, share))):
                index[q, 2 * j + k] = order[j] * (bins + 1) + edge
                weight[q, 2 * j + k] = column_weight[j] * edge_weight
    return index, weight


_CLASSES: dict = {}


def _model_classes() -> dict:
    """Define the torch modules on first use so importing this file does not import torch."""
    if _CLASSES:
        return _CLASSES
    import torch
    from torch import nn

    class ConvBlock(nn.Sequential):
        def __init__(self, inputs: int, outputs: int, stride: tuple[int, int], kernel: int = 3) -> None:
            super().__init__(nn.Conv2d(inputs, outputs, kernel, stride=stride, padding=kernel // 2, bias=False),
                             nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))

    class BevNet(nn.Module):
        """Image -> column tokens -> transformer -> BEV cells, by geometry and by learned queries -> logits.

        The encoder halves the image height four times and its width once, leaving one token per two pixel
        columns (2.8 degrees of bearing); a transformer encoder mixes them. Two paths then fill the 32x32 grid:
        each cell takes the token of its own bearing (a fixed interpolation given by the camera) plus a learned
        embedding of its place, and a transformer decoder's learned queries, one per 4x4 patch, attend to all
        tokens and are unfolded into their patches (SSM-PC's decoder). With ``depth_bins`` > 0 each cell also gets
        three depth features from its bearing's predicted wall-distance distribution (``_depth_features``). A small
        conv head turns the sum into (B, 3 + 7, 32, 32) logits: occupancy (unseen, free, wall), then object
        (none + one per class of the geometry: the simulator's 6 colours).
        """

        def __init__(self, config: BevModelConfig, geometry: BevGeometry) -> None:
            super().__init__()
            self.config = config
            self.geometry = geometry
            channels = (3, *config.conv_channels)
            width_strides = _width_strides(config.image_size, config.columns, len(config.conv_channels))
            self.encoder = nn.Sequential(*(ConvBlock(channels[k], channels[k + 1], (2, width_strides[k]))
                                           for k in range(len(width_strides))))
            rows_left = config.image_size // 2 ** len(width_strides)
            d_model, size = config.d_model, config.bev_size
            self.column_projection = nn.Linear(channels[-1] * rows_left, d_model)
            self.column_position = nn.Parameter(torch.randn(1, config.columns, d_model) * 0.02)
            layer_sizes = dict(d_model=d_model, nhead=config.heads, dim_feedforward=config.feedforward,
                               dropout=0.0, batch_first=True, norm_first=True)
            self.column_encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**layer_sizes),
                                                        config.encoder_layers, norm=nn.LayerNorm(d_model),
                                                        enable_nested_tensor=False)
            self.query_decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**layer_sizes),
                                                       config.decoder_layers, norm=nn.LayerNorm(d_model))
            self.queries = nn.Parameter(torch.randn(1, config.query_grid ** 2, d_model) * 0.02)
            self.patch = size // config.query_grid
            self.to_patches = nn.Linear(d_model, d_model * self.patch ** 2)
            self.register_buffer("lift", torch.from_numpy(column_lift_matrix(config.columns, geometry)),
                                 persistent=False)
            self.cell_embedding = nn.Parameter(torch.randn(1, d_model, size, size) * 0.02)
            hidden = config.head_channels
            extra = 0
            if config.depth_bins:
                self.depth = nn.Linear(d_model, config.depth_bins)
                bin_width = (geometry.view_range + DEPTH_RANGE_MARGIN) / config.depth_bins
                index, weight = _depth_gather(config.columns, config.depth_bins, bin_width, geometry)
                self.register_buffer("depth_index", torch.from_numpy(index), persistent=False)
                self.register_buffer("depth_weight", torch.from_numpy(weight), persistent=False)
                extra = 3
            self.head = nn.Sequential(
                nn.Conv2d(d_model + extra, hidden, 1), nn.ReLU(inplace=True),
                nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True),
                nn.Conv2d(hidden, 3 + geometry.num_object_labels, 1))

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            """images: (B, 3, 64, 64) float in [0, 1] -> (B, 10, 32, 32) logits."""
            features = self.encoder(images - 0.5)
            batch, channels, rows, columns = features.shape
            tokens = features.permute(0, 3, 1, 2).reshape(batch, columns, channels * rows)
            tokens = self.column_encoder(self.column_projection(tokens) + self.column_position)
            size, grid = self.config.bev_size, self.config.query_grid
            lifted = (tokens.transpose(1, 2) @ self.lift).reshape(batch, -1, size, size)
            decoded = self.query_decoder(self.queries.expand(batch, -1, -1), tokens)
            patches = self.to_patches(decoded).transpose(1, 2).reshape(batch, -1, grid, grid)
            cells = lifted + nn.functional.pixel_shuffle(patches, self.patch) + self.cell_embedding
            if self.config.depth_bins:
                cells = torch.cat([cells, self._depth_features(tokens).reshape(batch, 3, size, size)], dim=1)
            return self.head(cells)

        def _depth_features(self, tokens: torch.Tensor) -> torch.Tensor:
            """(B, 3, H * W): P(wall nearer than the cell), P(wall within one cell of it), P(wall farther)."""
            probabilities = torch.softmax(self.depth(tokens), dim=-1)  # (B, columns, K)
            cumulative = nn.functional.pad(probabilities.cumsum(-1), (1, 0))  # (B, columns, K + 1): P(depth < k)
            # P(depth < range - 1 cell, range, range + 1 cell) of each cell, interpolated between its bearing's two
            # nearest columns and two nearest bin edges: (B, 3, HW)
            cdf = (cumulative.flatten(1)[:, self.depth_index] * self.depth_weight).sum(2)
            inside = self.depth_weight[2].sum(0)  # 1 inside the view cone, 0 outside
            return torch.stack([cdf[:, 1], cdf[:, 2] - cdf[:, 0], inside - cdf[:, 2]], dim=1)

    _CLASSES.update(BevNet=BevNet)
    return _CLASSES


def _width_strides(image_size: int, columns: int, layers: int) -> list[int]:
    """Width strides (1 or 2) of the encoder's layers, earliest first, that take ``image_size`` to ``columns``."""
    halvings = int(round(math.log2(image_size / columns)))
    if 2 ** halvings * columns != image_size or not 0 <= halvings <= layers:
        raise ValueError(f"columns must be image_size / 2**k with k <= {layers}, got {columns} for {image_size}")
    return [2] * halvings + [1] * (layers - halvings)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, 64, 64, 3) uint8 -> (B, 3, 64, 64) float32 in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
