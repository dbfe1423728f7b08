"""What the spatial memory hands out: read and sample results, leave-one-out statistics, change notices and
snapshots.

These are plain records with no behaviour beyond a length or a count, kept apart from ``spatial_memory.py`` so that
the array kernels (``kernels.py``) and the prune planner (``pruning.py``), which build or take them, sit below the
memory class instead of importing it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class MemoryChange(NamedTuple):
    """One change, as told to subscribers: kind is "write", "evict", "remove" or "replace".

    "write" carries the whole validated batch (all rows, even those a batch larger than max_size evicts at once);
    "evict" and "remove" carry only ids; "replace" carries ids, locations, sds and values.
    """

    kind: str
    ids: np.ndarray
    locations: np.ndarray | None = None
    location_sds: np.ndarray | None = None
    values: np.ndarray | None = None
    labels: list[str] | None = None
    sources: list[str] | None = None
    stamps: np.ndarray | None = None


class ReadResult(NamedTuple):
    """What ``SpatialMemory.read`` returns: values (Q, value_dim) and whether any entry matched each query."""

    values: np.ndarray
    matched: np.ndarray


class SampleResult(NamedTuple):
    """Goal samples: locations (N, location_dim), the entry each came from, its label, its alignment score
    (key . value), its mixture weight, and the cosine similarity of key and value (in [-1, 1])."""

    locations: np.ndarray
    entry_ids: np.ndarray
    labels: list[str]
    scores: np.ndarray
    weights: np.ndarray
    similarities: np.ndarray


class LeaveOneOut(NamedTuple):
    """Leave-one-out statistics in entry order (oldest first).

    ``values[i]`` is the read at entry i's location with entry i removed, ``errors[i]`` its distance to entry i's
    value. Entry i depends on entry j (``dependency_rows == i`` with ``dependency_cols == j``) when j's weight in
    that read exceeds 1 / size, as in the seed.
    """

    values: np.ndarray | None
    errors: np.ndarray
    dependency_rows: np.ndarray
    dependency_cols: np.ndarray

    def dependencies_per_entry(self) -> np.ndarray:
        """How many entries each entry's leave-one-out read depends on."""
        return np.bincount(self.dependency_rows, minlength=len(self.errors))



@dataclass
class MemorySnapshot:
    """A copy of a memory's entries in age order (oldest first) plus what is needed to rebuild it."""

    location_dim: int
    value_dim: int
    max_size: int
    next_id: int
    ids: np.ndarray
    locations: np.ndarray
    location_sds: np.ndarray
    values: np.ndarray
    labels: list[str]
    sources: list[str]
    stamps: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)
