"""The spatial index of the memory: a uniform-grid hash (``GridIndex``) that finds the entries within a match
threshold of each query, so reads and samples with a threshold touch only nearby entries.

The index finds candidates as whole rows of cells (contiguous ranges of its cell-sorted order, through a dense cell
directory for large parts) and keeps the exact distance test of the dense path, so it changes the work, never an
answer. It knows entries only as locations, sds, slots and ids, not the memory that holds them.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

_RECENT_MIN = 8192  # the index merges its recent part into the main one past max(this, main / 8)
_KEY_BITS = 21
_KEY_OFFSET = 1 << (_KEY_BITS - 1)
_KEY_LIMIT = _KEY_OFFSET - 1
_X_MASK = (1 << _KEY_BITS) - 1
_NO_ID = 1 << 62
_DIRECTORY_MIN_ENTRIES = 4096  # smaller parts are searched with binary searches
_DIRECTORY_CELLS_PER_ENTRY = 4  # and so are parts whose occupied rows span more cells than this per entry


def cell_exponent(radius: float) -> int:
    """The grid level used for a match threshold: cells of 2^level, between an eighth and a quarter of the radius
    (a query reads whole rows of cells as one range, so small cells cost few lookups and trim the candidates)."""
    return int(math.floor(math.log2(radius / 4.0)))


class _SortedCells:
    """Entries sorted by the key of their cell, with their slots, ids, locations and sds alongside.

    A row of cells along the first dimension has consecutive keys, so the entries of a row segment are one
    contiguous range of this order, found with two binary searches or, for a large part, a dense cell directory.
    """

    def __init__(self, keys, slots, ids, locations, sds):
        self.keys, self.slots, self.ids, self.locations, self.sds = keys, slots, ids, locations, sds
        self._cell_table = None

    @classmethod
    def empty(cls, location_dim: int) -> _SortedCells:
        none = np.empty(0, np.int64)
        return cls(none, none, none, np.empty((0, location_dim), np.float32), np.empty((0, location_dim), np.float32))

    @classmethod
    def sorted_from(cls, keys, slots, ids, locations, sds) -> _SortedCells:
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], np.asarray(slots, np.int64)[order], np.asarray(ids, np.int64)[order],
                   np.asarray(locations, np.float32)[order], np.asarray(sds, np.float32)[order])

    def __len__(self) -> int:
        return len(self.keys)

    def merged(self, other: _SortedCells) -> _SortedCells:
        """Both sets in one (O(total), no re-sort)."""
        at = np.searchsorted(self.keys, other.keys, side="right")
        return _SortedCells(np.insert(self.keys, at, other.keys), np.insert(self.slots, at, other.slots),
                            np.insert(self.ids, at, other.ids), np.insert(self.locations, at, other.locations, axis=0),
                            np.insert(self.sds, at, other.sds, axis=0))

    def live(self, ids_by_slot: np.ndarray) -> _SortedCells:
        """Without entries whose slot now holds another entry (evicted and overwritten)."""
        keep = ids_by_slot[self.slots] == self.ids
        return self if keep.all() else _SortedCells(self.keys[keep], self.slots[keep], self.ids[keep],
                                                    self.locations[keep], self.sds[keep])

    def ranges(self, low_keys: np.ndarray, high_keys: np.ndarray,
               use_directory: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """For (Q, R) bounds of row segments (low and high key in the same row): (query index, position) of every
        entry with low <= key <= high, sorted by query. ``use_directory`` False: binary searches only (for a part
        that changes with every write, whose directory would be rebuilt each time)."""
        if len(self.keys) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        low, high = low_keys.ravel(), high_keys.ravel()
        directory = self._directory() if use_directory else None
        if directory is None:
            order = np.argsort(low)  # sorted needles search faster (shared paths stay in cache)
            starts, stops = np.empty_like(low), np.empty_like(low)
            starts[order] = np.searchsorted(self.keys, low[order], side="left")
            stops[order] = np.searchsorted(self.keys, high[order], side="right")
        else:
            rows, x_min, width, cell_starts = directory
            row_of = np.minimum(np.searchsorted(rows, low >> _KEY_BITS), len(rows) - 1)
            x_low = np.maximum((low & _X_MASK) - x_min, 0)
            x_high = np.minimum((high & _X_MASK) - x_min, width - 1)
            empty = (rows[row_of] != low >> _KEY_BITS) | (x_low > x_high)
            base = row_of * width
            starts = cell_starts[np.minimum(base + x_low, len(cell_starts) - 1)]
            stops = np.where(empty, starts, cell_starts[np.minimum(base + x_high + 1, len(cell_starts) - 1)])
        counts = np.maximum(stops - starts, 0)
        total = int(counts.sum())
        query_index = np.repeat(np.repeat(np.arange(low_keys.shape[0]), low_keys.shape[1]), counts)
        positions = np.arange(total) + np.repeat(starts - (np.cumsum(counts) - counts), counts)
        return query_index, positions

    def _directory(self):
        """A dense table of where each cell's entries start, per occupied row of cells (rows, first x cell,
        row width, starts), built on first use; None where the occupied rows are too sparse for it to pay."""
        if self._cell_table is None:
            self._cell_table = False
            if len(self.keys) >= _DIRECTORY_MIN_ENTRIES:
                row_keys, x = self.keys >> _KEY_BITS, self.keys & _X_MASK  # both ascending within a row
                x_min, width = int(x.min()), int(x.max() - x.min()) + 1
                new_row = np.r_[True, row_keys[1:] != row_keys[:-1]]
                rows = row_keys[new_row]
                if len(rows) * width <= _DIRECTORY_CELLS_PER_ENTRY * len(self.keys) + 4096:
                    row_index = np.cumsum(new_row) - 1
                    cell = row_index * width + (x - x_min)  # ascending, as the keys are
                    counts = np.bincount(cell, minlength=len(rows) * width)
                    cell_starts = np.zeros(len(counts) + 1, np.int64)
                    np.cumsum(counts, out=cell_starts[1:])
                    self._cell_table = (rows, x_min, width, cell_starts)
        return self._cell_table or None


class PairSet(NamedTuple):
    """Pairs (query, entry) within a radius, sorted by query: the entry's slot, location and sd per pair."""

    query_index: np.ndarray
    slots: np.ndarray
    locations: np.ndarray
    location_sds: np.ndarray


class GridIndex:
    """A uniform grid hash over the first (up to three) location dimensions.

    Entries are kept sorted by the key of their cell, locations and sds alongside. A query covers the disc of its
    radius with rows of cells; each row is one contiguous range of that order, found with two binary searches.
    New entries go to a small recent part that is merged into the main part once it holds an eighth as many, so
    keeping up with writes costs O(batch) amortised. Candidates are kept by the exact float64 distance over all
    location dimensions (the test the dense path uses), so the index never changes an answer, only the work.
    """

    def __init__(self, exponent: int, location_dim: int):
        # A hair over 2^exponent, so that a radius that is a power of two does not need one more ring of cells.
        self.cell_size = (2.0**exponent) * (1.0 + 1e-5)
        self.hashed_dims = min(location_dim, 3)
        self._main = _SortedCells.empty(location_dim)
        self._recent = _SortedCells.empty(location_dim)
        self._rows_cache: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        self.min_id = _NO_ID  # the smallest id indexed: no entry can be stale while the oldest live id is <= it

    def __len__(self) -> int:
        return len(self._main) + len(self._recent)

    def _cell_coordinates(self, locations: np.ndarray) -> np.ndarray:
        scaled = np.floor(locations[:, : self.hashed_dims].astype(np.float64) / self.cell_size)
        return np.clip(scaled, -_KEY_LIMIT, _KEY_LIMIT).astype(np.int64)

    @staticmethod
    def _pack(cells: np.ndarray) -> np.ndarray:
        keys = np.zeros(cells.shape[:-1], np.int64)
        for j in range(cells.shape[-1]):
            keys |= (cells[..., j] + _KEY_OFFSET) << (_KEY_BITS * j)
        return keys

    def rebuild(self, locations: np.ndarray, slots: np.ndarray, ids: np.ndarray, sds: np.ndarray) -> None:
        """Index exactly these entries."""
        keys = self._pack(self._cell_coordinates(locations))
        self._main = _SortedCells.sorted_from(keys, slots, ids, locations, sds)
        self._recent = _SortedCells.empty(locations.shape[1])
        self.min_id = int(np.min(ids)) if len(ids) else _NO_ID

    def insert(self, locations: np.ndarray, slots: np.ndarray, ids: np.ndarray, sds: np.ndarray,
               ids_by_slot: np.ndarray | None = None) -> None:
        """Add entries; when the recent part is merged, entries overwritten since (per ``ids_by_slot``) go."""
        keys = self._pack(self._cell_coordinates(locations))
        self._recent = self._recent.merged(_SortedCells.sorted_from(keys, slots, ids, locations, sds))
        if len(ids):
            self.min_id = min(self.min_id, int(np.min(ids)))
        if len(self._recent) > max(_RECENT_MIN, len(self._main) // 8):
            main = self._main if ids_by_slot is None else self._main.live(ids_by_slot)
            recent = self._recent if ids_by_slot is None else self._recent.live(ids_by_slot)
            self._main, self._recent = main.merged(recent), _SortedCells.empty(locations.shape[1])
            self.min_id = int(self._main.ids.min()) if len(self._main) else _NO_ID

    def _rows(self, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Rows of cells that can hold a point within ``radius`` of some point of the centre cell: the offsets of
        each row in the hashed dimensions after the first (R, hashed_dims - 1) and its half-width in cells along
        the first (R,). These are exactly the cells whose gap to the centre cell is at most the radius."""
        cached = self._rows_cache.get(radius)
        if cached is not None:
            return cached
        span = int(math.floor(radius / self.cell_size * (1.0 + 1e-6))) + 1
        axis = np.arange(-span, span + 1)
        others = self.hashed_dims - 1
        offsets = np.stack(np.meshgrid(*[axis] * others, indexing="ij"), -1).reshape(-1, others) if others else (
            np.zeros((1, 0), np.int64))
        gap2 = ((np.maximum(np.abs(offsets) - 1, 0) * self.cell_size) ** 2).sum(axis=1)
        budget = radius * radius * (1.0 + 1e-6) - gap2
        keep = budget >= 0
        offsets, budget = offsets[keep].astype(np.int64), budget[keep]
        half_widths = np.floor(np.sqrt(budget) / self.cell_size).astype(np.int64) + 1
        # |dx| <= half_width  <=>  (max(|dx| - 1, 0) * cell)^2 <= budget, up to the same 1e-6 slack as the span
        if len(self._rows_cache) >= 16:
            self._rows_cache.clear()
        self._rows_cache[radius] = offsets, half_widths
        return offsets, half_widths

    def pairs(self, query_locations: np.ndarray, radius: float, ids_by_slot: np.ndarray | None = None) -> PairSet:
        """Pairs with |query - entry| <= radius (float64, as the dense path tests), sorted by query, with each
        entry's slot, location and sd. With ``ids_by_slot``, entries whose slot holds another id by now
        (overwritten) are left out."""
        queries64 = np.asarray(query_locations, np.float64)
        n_queries = len(queries64)
        base = np.floor(queries64[:, : self.hashed_dims] / self.cell_size).astype(np.int64)
        offsets, half_widths = self._rows(radius)
        low = np.empty((n_queries, len(offsets), self.hashed_dims), np.int64)
        low[..., 1:] = base[:, None, 1:] + offsets[None]
        high = low.copy()
        low[..., 0] = base[:, None, 0] - half_widths[None]
        high[..., 0] = base[:, None, 0] + half_widths[None]
        np.clip(low, -_KEY_LIMIT, _KEY_LIMIT, out=low)
        np.clip(high, -_KEY_LIMIT, _KEY_LIMIT, out=high)
        low_keys, high_keys = self._pack(low), self._pack(high)
        if self.hashed_dims > 1 and (np.abs(base[:, 1:]) + int(np.abs(offsets).max(initial=0)) > _KEY_LIMIT).any():
            # rows clipped onto the same row at the far edge: keep one of each
            order = np.argsort(low_keys, axis=1)
            low_keys, high_keys = np.take_along_axis(low_keys, order, 1), np.take_along_axis(high_keys, order, 1)
            repeated = np.zeros(low_keys.shape, bool)
            repeated[:, 1:] = low_keys[:, 1:] == low_keys[:, :-1]
            high_keys[repeated] = low_keys[repeated] - 1
        radius2 = radius * radius
        found = []
        for part in (self._main, self._recent):
            query_index, positions = part.ranges(low_keys, high_keys, use_directory=part is self._main)
            locations = part.locations[positions]
            distance2 = 0.0
            for j in range(queries64.shape[1]):  # accumulated as log_kernel_and_distance does
                delta = queries64[query_index, j] - locations[:, j].astype(np.float64)
                distance2 = distance2 + delta * delta
            near = np.flatnonzero(distance2 <= radius2)
            if ids_by_slot is not None:
                near = near[ids_by_slot[part.slots[positions[near]]] == part.ids[positions[near]]]
            positions = positions[near]
            found.append(PairSet(query_index[near], part.slots[positions], locations[near], part.sds[positions]))
        if len(self._recent) == 0:
            return found[0]
        query_index = np.concatenate([pairs.query_index for pairs in found])
        order = np.argsort(query_index, kind="stable")
        return PairSet(query_index[order], *(np.concatenate([getattr(pairs, name) for pairs in found])[order]
                                             for name in ("slots", "locations", "location_sds")))

    def query(self, query_locations: np.ndarray, radius: float,
              ids_by_slot: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pairs (query index, slot) with |query - entry| <= radius, sorted by query (see ``pairs``)."""
        pairs = self.pairs(query_locations, radius, ids_by_slot)
        return pairs.query_index, pairs.slots


def static_index(locations: np.ndarray, location_sds: np.ndarray, match_threshold: float | None) -> GridIndex | None:
    """An index over plain arrays (slot and id = row), for reading a snapshot; None without a threshold."""
    if match_threshold is None:
        return None
    index = GridIndex(cell_exponent(match_threshold), locations.shape[1])
    index.rebuild(locations, np.arange(len(locations)), np.arange(len(locations)), location_sds)
    return index
