"""Spatial memory: what was seen where, read back by Gaussian-kernel regression (seed 004), at robot scale.

Each entry is a location with a per-dimension standard deviation, a value vector (what was seen), a label, the
robot that saw it and a stamp. The memory supports the seed's four operations:

* ``read``: kernel regression. The weight of entry t for a query at l with sd s is the softmax over entries of
  log N(l; l_t, diag(s^2 + s_t^2)), zero where |l - l_t| exceeds the match threshold; a query that matches nothing
  reads zero and is flagged.
* ``sample``: goal locations from the conditional mixture softmax((key . z_t + beta log k(l, l_t)) / T), each sample
  drawn around its component's location with sd ``sigma_scale * s_t``.
* ``read_one_removed`` / ``prune``: leave-one-out error and dependencies per entry, and the seed's recursive pruning
  of entries whose removal changes the read by less than ``max_error``; ``refine`` regresses the survivors toward
  the read from before the prune.
* eviction of the oldest entries once ``max_size`` is reached (a ring buffer, so a full memory writes in O(batch)).

For scale, reads and samples with a match threshold go through a uniform-grid hash (``GridIndex``) and touch only
nearby entries; without a threshold, sampling stays exact over all entries (alignment scores per search key are
cached and kept current on writes). Dense and indexed paths give the same answers. At 10^6 entries an indexed read
is bound by fetching the neighbours' value rows from memory: the index finds candidates as whole rows of cells
(contiguous ranges of its cell-sorted order, through a dense cell directory), keeps locations and sds alongside so
only the values are fetched from the memory's own storage, and the weighted sum of those rows is one fused,
multithreaded gather (torch's ``embedding_bag``, float32 as stored).

Deviation from the seed: the read kernel uses the Gaussian log density, -0.5 * sum(log var), as the seed's prose and
its sampling code do; the seed's read code has -sum(log var). With equal sds per query the two give the same read.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import scipy.sparse

_LOG_2PI = math.log(2.0 * math.pi)
MAX_SAMPLES_PER_CALL = 1_000_000
PRUNE_RULES = ("independent", "seed")
_DENSE_CHUNK_ELEMENTS = 1 << 23  # query x entry elements per dense chunk (bounds temporaries to ~64 MB each)
_PAIR_CHUNK_QUERIES = 4096
_INDEX_MIN_ENTRIES = 2048  # below this a dense read is as fast as the index
_TORCH_MIN_PAIRS = 16384  # weighted sums over fewer (query, entry) pairs run in scipy
_RECENT_MIN = 8192  # the index merges its recent part into the main one past max(this, main / 8)
_MAX_INDEXES = 3
_MAX_CACHED_KEYS = 4


# ----------------------------------------------------------------------------------------------------------------
# Results


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
class RefineReference:
    """Query points and the read there before a prune: the target that ``refine`` regresses toward."""

    locations: np.ndarray
    location_sds: np.ndarray
    targets: np.ndarray
    match_threshold: float | None


@dataclass
class PrunePlan:
    """The outcome of a prune: entry ids to remove, entries removed per step, and the refine target."""

    removed_ids: np.ndarray
    removed_per_step: list[int]
    size_before: int
    reference: RefineReference | None


@dataclass
class RefinePlan:
    """Refined locations, sds and values for the entries with ``ids``, and the loss at every step."""

    ids: np.ndarray
    locations: np.ndarray
    location_sds: np.ndarray
    values: np.ndarray
    losses: list[float]


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


# ----------------------------------------------------------------------------------------------------------------
# Input validation (every check runs before anything changes)


def _float_matrix(name: str, array, n_cols: int, what: str) -> np.ndarray:
    """``array`` as a finite float32 (n, n_cols) matrix with n >= 1, or a ValueError that says how to fix it."""
    try:
        with np.errstate(over="ignore"):  # values beyond float32 become inf and are reported below
            matrix = np.array(array, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numbers ({what}); could not convert: {error}") from None
    if matrix.ndim != 2 or matrix.shape[1] != n_cols:
        raise ValueError(f"{name} must have shape (n, {n_cols}) ({what}); got shape {matrix.shape}")
    if matrix.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch; pass at least one row")
    if not np.isfinite(matrix).all():
        bad = int(np.count_nonzero(~np.isfinite(matrix).all(axis=1)))
        raise ValueError(f"{name} has {bad} row(s) with NaN or inf (or values beyond float32); drop those rows")
    return matrix


def _float_vector(name: str, array, size: int) -> np.ndarray:
    """``array`` as a finite float32 vector of ``size`` (a (1, size) matrix is accepted)."""
    try:
        vector = np.array(array, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numbers; could not convert: {error}") from None
    if vector.ndim == 2 and vector.shape[0] == 1:
        vector = vector[0]
    if vector.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},); got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise ValueError(f"{name} has NaN or inf entries; pass finite numbers")
    return vector


def _sd_matrix(name: str, sds, n_rows: int, n_cols: int) -> np.ndarray:
    """Standard deviations as a positive finite (n_rows, n_cols) float32 matrix.

    A scalar applies to everything; a 1-D array of n_rows values gives one isotropic sd per row; per-dimension
    sds come as (n_rows, n_cols) or (1, n_cols) (a (n_cols,) vector too, unless n_cols == n_rows).
    """
    try:
        array = np.array(sds, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numbers; could not convert: {error}") from None
    if array.ndim == 1 and array.shape[0] == n_rows:
        array = array[:, None]
    try:
        matrix = np.array(np.broadcast_to(array, (n_rows, n_cols)), dtype=np.float32)
    except ValueError:
        raise ValueError(
            f"{name} must be a scalar, shape ({n_rows},), ({n_rows}, 1) or ({n_rows}, {n_cols}); got {array.shape}"
        ) from None
    if not np.isfinite(matrix).all() or not (matrix > 0).all():
        raise ValueError(f"{name} must be finite and > 0 (a standard deviation in metres); got min {matrix.min()}")
    return matrix


def _positive(name: str, value, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ValueError(f"{name} must be finite and {'>=' if allow_zero else '>'} 0; got {value!r}")
    return number


def _strings(name: str, items, n: int, default: str) -> list[str]:
    """One string per entry: None gives ``default``, a single str is repeated."""
    if items is None:
        return [default] * n
    if isinstance(items, str):
        return [items] * n
    items = list(items)
    if len(items) != n or not all(isinstance(item, str) for item in items):
        raise ValueError(f"{name} must be a str or a sequence of {n} str (one per entry); got {len(items)} items")
    return items


def _stamps(stamps, n: int) -> np.ndarray:
    """Stamps in seconds, one per entry; None means unknown (NaN), a scalar is repeated."""
    if stamps is None:
        return np.full(n, np.nan)
    try:
        array = np.array(np.broadcast_to(np.asarray(stamps, dtype=np.float64), (n,)))
    except (TypeError, ValueError):
        raise ValueError(f"stamps must be a number or {n} numbers (seconds)") from None
    if not np.isfinite(array).all():
        raise ValueError("stamps must be finite seconds; pass None when unknown")
    return array


def _threshold(match_threshold) -> float | None:
    return None if match_threshold is None else _positive("match_threshold", match_threshold)


@dataclass
class _Batch:
    locations: np.ndarray
    location_sds: np.ndarray
    values: np.ndarray
    labels: list[str]
    sources: list[str]
    stamps: np.ndarray


# ----------------------------------------------------------------------------------------------------------------
# Kernel arithmetic shared by the dense and the indexed paths (same operations, so the same numbers)


def _log_kernel_and_distance(query_locations, query_sds, entry_locations, entry_sds) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian log density log N(q; l, diag(s_q^2 + s_l^2)) and squared distance, broadcast over leading axes.

    All inputs are float64 with the location dimension last.
    """
    dim = query_locations.shape[-1]
    log_k = 0.0
    distance2 = 0.0
    for j in range(dim):
        variance = query_sds[..., j] ** 2 + entry_sds[..., j] ** 2
        delta = query_locations[..., j] - entry_locations[..., j]
        log_k = log_k - 0.5 * (delta * delta) / variance - 0.5 * np.log(variance)
        distance2 = distance2 + delta * delta
    return log_k - 0.5 * dim * _LOG_2PI, distance2


def _row_softmax(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Softmax over the last axis; rows that are all -inf give zeros and matched=False."""
    row_max = logits.max(axis=-1, keepdims=True)
    matched = np.isfinite(row_max[..., 0])
    safe_max = np.where(np.isfinite(row_max), row_max, 0.0)
    weights = np.exp(logits - safe_max)
    total = weights.sum(axis=-1, keepdims=True)
    weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    return weights, matched


def _segment_softmax(logits: np.ndarray, segments: np.ndarray, n_segments: int) -> np.ndarray:
    """Softmax of ``logits`` within each segment; ``segments`` is sorted ascending."""
    if len(logits) == 0:
        return logits.copy()
    starts = np.flatnonzero(np.r_[True, segments[1:] != segments[:-1]])
    segment_max = np.full(n_segments, -np.inf)
    segment_max[segments[starts]] = np.maximum.reduceat(logits, starts)
    weights = np.exp(logits - segment_max[segments])
    totals = np.bincount(segments, weights=weights, minlength=n_segments)
    return weights / totals[segments]


def _sparse_weighted_sum(segments, columns, weights, n_rows: int, values: np.ndarray) -> np.ndarray:
    """sum_pairs weights * values[columns] per row (``segments`` sorted), without a (pairs x dim) temporary.

    Uses torch's ``embedding_bag`` (a fused, multithreaded gather-multiply-add in float32); it is about four times
    as fast as a scipy CSR product on a 10^6-row table, where the time goes to fetching the rows from memory. Few
    pairs go to scipy, which has no threads to wake (and wait for, on a busy machine).
    """
    torch = _torch() if len(columns) >= _TORCH_MIN_PAIRS else None
    if torch is None:
        indptr = np.searchsorted(segments, np.arange(n_rows + 1))
        matrix = scipy.sparse.csr_matrix(
            (weights.astype(np.float32), columns, indptr), shape=(n_rows, values.shape[0])
        )
        return np.asarray(matrix @ values, dtype=np.float32)
    if len(columns) == 0:
        return np.zeros((n_rows, values.shape[1]), np.float32)
    offsets = np.searchsorted(segments, np.arange(n_rows))
    table = _as_tensor(torch, values)
    summed = torch.nn.functional.embedding_bag(
        torch.from_numpy(np.ascontiguousarray(columns, dtype=np.int64)), table,
        torch.from_numpy(offsets.astype(np.int64)), mode="sum",
        per_sample_weights=torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float32)),
    )
    return summed.numpy()


def _gathered_dot(values: np.ndarray, rows: np.ndarray, key: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """values[rows] @ key, gathering the rows a chunk at a time into one small buffer that stays in cache (about
    four times as fast as gathering them all on a 10^6-row table, and no large temporary)."""
    out = np.empty(len(rows), np.float32)
    buffer = np.empty((min(chunk, len(rows)), values.shape[1]), values.dtype)
    for start in range(0, len(rows), chunk):
        part = buffer[: min(chunk, len(rows) - start)]
        np.take(values, rows[start : start + len(part)], axis=0, out=part)
        np.matmul(part, key, out=out[start : start + len(part)])
    return out


_TORCH = None


def _torch():
    """torch (imported on first use), or None where it cannot be imported (scipy then does the sums)."""
    global _TORCH
    if _TORCH is None:
        try:
            import torch
        except ImportError:  # pragma: no cover - torch is a dependency; this keeps numpy-only installs working
            torch = False
        _TORCH = torch
    return _TORCH or None


def _as_tensor(torch, array: np.ndarray):
    """A float32 tensor sharing ``array``'s memory (read-only arrays too: the tensor is only read)."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not array.flags.writeable:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(array)
    return torch.from_numpy(array)


def _draw(weights: np.ndarray, rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """Indices drawn with replacement in proportion to ``weights`` (zero weights are never drawn)."""
    cumulative = np.cumsum(weights, dtype=np.float64)
    picks = np.searchsorted(cumulative, rng.random(num_samples) * cumulative[-1], side="right")
    return np.minimum(picks, len(weights) - 1)


# ----------------------------------------------------------------------------------------------------------------
# Spatial index


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
            for j in range(queries64.shape[1]):  # accumulated as _log_kernel_and_distance does
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


# ----------------------------------------------------------------------------------------------------------------
# Reads over plain arrays (used by the memory and by background prune / refine on snapshots)


def _kernel_read_chunks(
    query_locations: np.ndarray,
    query_sds: np.ndarray,
    locations: np.ndarray,
    location_sds: np.ndarray,
    values: np.ndarray,
    match_threshold: float | None,
    index: GridIndex | None,
    leave_one_out: bool = False,
    dependency_floor: float | None = None,
    ids_by_slot: np.ndarray | None = None,
):
    """Kernel reads in chunks of queries: yields (start, stop, values, matched, dependency rows, dependency cols).

    With ``index`` the reads touch only entries within ``match_threshold``; without, every entry (the seed's
    dense algorithm). With ``leave_one_out`` query i is entry i and excludes itself. Dependencies are the pairs
    whose weight exceeds ``dependency_floor``. ``ids_by_slot`` lets a live index skip overwritten entries.
    """
    n_queries, n_entries = len(query_locations), len(locations)
    empty = np.empty(0, np.int64)
    if index is None:
        entry_locations64, entry_sds64 = locations.astype(np.float64), location_sds.astype(np.float64)
        chunk = max(1, _DENSE_CHUNK_ELEMENTS // max(n_entries, 1))
        for start in range(0, n_queries, chunk):
            stop = min(n_queries, start + chunk)
            log_k, distance2 = _log_kernel_and_distance(
                query_locations[start:stop, None, :].astype(np.float64),
                query_sds[start:stop, None, :].astype(np.float64),
                entry_locations64[None],
                entry_sds64[None],
            )
            if match_threshold is not None:
                log_k[distance2 > match_threshold * match_threshold] = -np.inf
            if leave_one_out:
                log_k[np.arange(stop - start), np.arange(start, stop)] = -np.inf
            weights, matched = _row_softmax(log_k)
            chunk_values = weights.astype(np.float32) @ values
            rows, cols = (empty, empty) if dependency_floor is None else np.nonzero(weights > dependency_floor)
            yield start, stop, chunk_values, matched, rows + start, cols
        return
    for start in range(0, n_queries, _PAIR_CHUNK_QUERIES):
        stop = min(n_queries, start + _PAIR_CHUNK_QUERIES)
        pairs = index.pairs(query_locations[start:stop], match_threshold, ids_by_slot)
        query_index, slots = pairs.query_index, pairs.slots
        entry_locations, entry_sds = pairs.locations, pairs.location_sds  # the index's copies, in its order
        if leave_one_out:
            not_self = np.flatnonzero(query_index + start != slots)
            query_index, slots = query_index[not_self], slots[not_self]
            entry_locations, entry_sds = entry_locations[not_self], entry_sds[not_self]
        log_k, _ = _log_kernel_and_distance(
            query_locations[start:stop].astype(np.float64)[query_index],
            query_sds[start:stop].astype(np.float64)[query_index],
            entry_locations.astype(np.float64),
            entry_sds.astype(np.float64),
        )
        weights = _segment_softmax(np.asarray(log_k, dtype=np.float64), query_index, stop - start)
        matched = np.bincount(query_index, minlength=stop - start) > 0
        chunk_values = _sparse_weighted_sum(query_index, slots, weights, stop - start, values)
        rows, cols = empty, empty
        if dependency_floor is not None:
            dependent = weights > dependency_floor
            rows, cols = query_index[dependent] + start, slots[dependent]
        yield start, stop, chunk_values, matched, rows, cols


def _read_arrays(query_locations, query_sds, locations, location_sds, values, match_threshold, index,
                 ids_by_slot=None) -> ReadResult:
    """A whole kernel read over plain arrays."""
    out = np.zeros((len(query_locations), values.shape[1]), np.float32)
    matched = np.zeros(len(query_locations), bool)
    if len(locations) == 0:
        return ReadResult(out, matched)
    chunks = _kernel_read_chunks(query_locations, query_sds, locations, location_sds, values, match_threshold, index,
                                 ids_by_slot=ids_by_slot)
    for start, stop, chunk_values, chunk_matched, _, _ in chunks:
        out[start:stop], matched[start:stop] = chunk_values, chunk_matched
    return ReadResult(out, matched)


def _leave_one_out_arrays(locations, location_sds, values, match_threshold, index, keep_values: bool,
                          ids_by_slot=None):
    """Leave-one-out reads of every entry: (values or None, errors, dependency rows, dependency cols)."""
    n = len(locations)
    errors = np.zeros(n)
    loo_values = np.zeros_like(values) if keep_values else None
    rows, cols = [], []
    chunks = _kernel_read_chunks(
        locations, location_sds, locations, location_sds, values, match_threshold, index,
        leave_one_out=True, dependency_floor=1.0 / n, ids_by_slot=ids_by_slot,
    )
    for start, stop, chunk_values, _, chunk_rows, chunk_cols in chunks:
        errors[start:stop] = np.linalg.norm((chunk_values - values[start:stop]).astype(np.float64), axis=1)
        if loo_values is not None:
            loo_values[start:stop] = chunk_values
        rows.append(chunk_rows)
        cols.append(chunk_cols)
    join = lambda parts: np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)  # noqa: E731
    return loo_values, errors, join(rows), join(cols)


def _static_index(locations: np.ndarray, location_sds: np.ndarray, match_threshold: float | None) -> GridIndex | None:
    if match_threshold is None:
        return None
    index = GridIndex(cell_exponent(match_threshold), locations.shape[1])
    index.rebuild(locations, np.arange(len(locations)), np.arange(len(locations)), location_sds)
    return index


# ----------------------------------------------------------------------------------------------------------------
# Prune and refine


def select_prune_candidates(
    errors: np.ndarray, dependency_rows: np.ndarray, dependency_cols: np.ndarray, max_error: float, rule: str
) -> np.ndarray:
    """Which entries to remove in one prune step (a boolean mask), from leave-one-out statistics.

    Candidates have a leave-one-out error below ``max_error`` and depend on at least one other entry (isolated
    entries are never removed). ``rule="seed"`` then keeps the candidates that depend on an entry of lower error,
    as the seed's code does. ``rule="independent"`` (default) removes a set in which no removed entry depends on
    another removed one, chosen greedily in order of increasing error, so each removal's error estimate stays
    valid; it is computed in rounds of local minima, which gives the same set as the sequential greedy choice.
    """
    if rule not in PRUNE_RULES:
        raise ValueError(f"unknown prune rule {rule!r}; use one of {PRUNE_RULES}")
    n = len(errors)
    counts = np.bincount(dependency_rows, minlength=n)
    candidates = (errors < max_error) & (counts > 0)
    rank = np.empty(n, np.int64)
    rank[np.argsort(errors, kind="stable")] = np.arange(n)
    if rule == "seed":
        has_lower = np.zeros(n, bool)
        has_lower[dependency_rows[rank[dependency_cols] < rank[dependency_rows]]] = True
        return candidates & has_lower
    between = candidates[dependency_rows] & candidates[dependency_cols]
    u, v = dependency_rows[between], dependency_cols[between]
    alive, removed = candidates.copy(), np.zeros(n, bool)
    while alive.any():
        live_edge = alive[u] & alive[v]
        u, v = u[live_edge], v[live_edge]
        not_minimum = np.zeros(n, bool)
        u_higher = rank[u] > rank[v]
        not_minimum[u[u_higher]] = True
        not_minimum[v[~u_higher]] = True
        accepted = alive & ~not_minimum
        removed |= accepted
        alive &= ~accepted
        alive[v[accepted[u]]] = False
        alive[u[accepted[v]]] = False
    return removed


def _plan_prune_arrays(
    locations, location_sds, values, ids, *, max_error, match_threshold, max_steps, rule, reference_points, seed,
    progress=None,
) -> PrunePlan:
    """The recursive prune of seed 004 over plain arrays (nothing is modified)."""
    max_error = _positive("max_error", max_error)
    match_threshold = _threshold(match_threshold)
    if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be an int >= 1; got {max_steps!r}")
    if rule not in PRUNE_RULES:
        raise ValueError(f"unknown prune rule {rule!r}; use one of {PRUNE_RULES}")
    size_before = len(ids)
    reference = None
    if reference_points and size_before:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(size_before, min(size_before, int(reference_points)), replace=False))
        index = _static_index(locations, location_sds, match_threshold)
        targets = _read_arrays(
            locations[chosen], location_sds[chosen], locations, location_sds, values, match_threshold, index
        ).values
        reference = RefineReference(locations[chosen].copy(), location_sds[chosen].copy(), targets, match_threshold)
    removed_ids, removed_per_step = [], []
    for _ in range(max_steps):
        if len(ids) < 2:
            break
        index = _static_index(locations, location_sds, match_threshold)
        _, errors, rows, cols = _leave_one_out_arrays(locations, location_sds, values, match_threshold, index, False)
        removed = select_prune_candidates(errors, rows, cols, max_error, rule)
        removed_per_step.append(int(removed.sum()))
        if progress is not None:
            progress(len(ids), removed_per_step[-1])
        if not removed.any():
            break
        removed_ids.append(ids[removed])
        keep = ~removed
        locations, location_sds, values, ids = locations[keep], location_sds[keep], values[keep], ids[keep]
    removed_all = np.concatenate(removed_ids) if removed_ids else np.empty(0, np.int64)
    return PrunePlan(np.sort(removed_all), removed_per_step, size_before, reference)


def plan_prune(
    snapshot: MemorySnapshot,
    max_error: float = 0.05,
    match_threshold: float | None = 25.0,
    max_steps: int = 10,
    *,
    rule: str = "independent",
    reference_points: int = 4096,
    seed: int = 0,
) -> PrunePlan:
    """Plan a prune of ``snapshot`` without touching any memory (e.g. in a background thread).

    Apply the result with ``SpatialMemory.apply_prune``: entries written since the snapshot are kept, which is the
    seed's hot swap. ``reference_points`` query points (drawn with ``seed``) record the read before the prune, the
    target that ``refine`` regresses toward; 0 records none.
    """
    return _plan_prune_arrays(
        snapshot.locations, snapshot.location_sds, snapshot.values, snapshot.ids, max_error=max_error,
        match_threshold=match_threshold, max_steps=max_steps, rule=rule, reference_points=reference_points, seed=seed,
    )


def _refine_arrays(locations, location_sds, values, reference: RefineReference, steps: int, learning_rate: float):
    """Adam on locations, sds and values so the read at the reference points approaches the reference targets.

    Returns refined (locations, sds, values) and the loss (mean squared read error) per step. The set of pairs
    within the match threshold is fixed from the starting locations (entries move little at the seed's rate).
    """
    import torch

    match_threshold = reference.match_threshold
    n_queries = len(reference.locations)
    if match_threshold is not None:
        index = _static_index(locations, location_sds, match_threshold)
        query_index, slots = index.query(reference.locations, match_threshold)
    else:
        query_index = np.repeat(np.arange(n_queries), len(locations))
        slots = np.tile(np.arange(len(locations)), n_queries)
    q = torch.from_numpy(query_index)
    s = torch.from_numpy(slots)
    as_tensor = lambda array: torch.from_numpy(np.asarray(array, dtype=np.float32))  # noqa: E731
    query_locations = as_tensor(reference.locations)[q]
    query_variance = as_tensor(reference.location_sds)[q] ** 2
    targets = as_tensor(reference.targets)
    location_t = as_tensor(locations).clone().requires_grad_(True)
    sd_t = as_tensor(location_sds).clone().requires_grad_(True)
    value_t = as_tensor(values).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([location_t, sd_t, value_t], lr=learning_rate)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        variance = query_variance + sd_t[s] ** 2
        delta = query_locations - location_t[s]
        log_k = (-0.5 * delta**2 / variance - 0.5 * torch.log(variance)).sum(dim=1)
        with torch.no_grad():
            row_max = torch.full((n_queries,), -math.inf).scatter_reduce(0, q, log_k, "amax")
        weights = torch.exp(log_k - row_max[q])
        weights = weights / torch.zeros(n_queries).index_add(0, q, weights)[q]
        read = torch.zeros(n_queries, values.shape[1]).index_add(0, q, weights[:, None] * value_t[s])
        loss = ((read - targets) ** 2).sum(dim=1).mean()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            sd_t.clamp_(min=1e-6)
        losses.append(loss.item())
    return location_t.detach().numpy(), sd_t.detach().numpy(), value_t.detach().numpy(), losses


def plan_refine(
    snapshot: MemorySnapshot, reference: RefineReference, steps: int = 100, learning_rate: float = 1e-3
) -> RefinePlan:
    """Plan the seed's regression of ``snapshot``'s entries toward ``reference`` (from a ``PrunePlan``).

    Apply the result with ``SpatialMemory.apply_refine``; entries removed meanwhile are skipped.
    """
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an int >= 1; got {steps!r}")
    learning_rate = _positive("learning_rate", learning_rate)
    if len(snapshot) == 0:
        empty = np.empty((0,), np.int64)
        return RefinePlan(empty, snapshot.locations, snapshot.location_sds, snapshot.values, [])
    locations, sds, values, losses = _refine_arrays(
        snapshot.locations, snapshot.location_sds, snapshot.values, reference, steps, learning_rate
    )
    return RefinePlan(snapshot.ids.copy(), locations, sds, values, losses)


# ----------------------------------------------------------------------------------------------------------------
# The memory


@dataclass
class _IndexState:
    index: GridIndex
    next_id: int  # entries with smaller ids are in the index (unless overwritten since: queries check ids)
    version: int


def _sample_count(num_samples) -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)):
        raise ValueError(f"num_samples must be an int; got {num_samples!r}")
    if not 1 <= num_samples <= MAX_SAMPLES_PER_CALL:
        raise ValueError(f"num_samples must be in 1..{MAX_SAMPLES_PER_CALL}; got {num_samples}")
    return int(num_samples)


def _empty_samples(location_dim: int) -> SampleResult:
    empty = np.empty(0, np.float32)
    return SampleResult(np.empty((0, location_dim), np.float32), np.empty(0, np.int64), [], empty, empty, empty)


class SpatialMemory:
    """A memory of (location, sd, value, label, source, stamp) entries with kernel read, goal sampling and pruning.

    Thread-safe: every public method holds the memory's lock, so a ROS node may write from one callback and read
    or sample from another. Entries get increasing integer ids; once ``max_size`` entries are held, each write
    evicts the oldest ones.
    """

    def __init__(self, location_dim: int, value_dim: int, max_size: int = 1_000_000):
        """Create an empty memory for ``location_dim``-D locations and ``value_dim``-D values."""
        for name, number in (("location_dim", location_dim), ("value_dim", value_dim), ("max_size", max_size)):
            if isinstance(number, bool) or not isinstance(number, (int, np.integer)) or number < 1:
                raise ValueError(f"{name} must be an int >= 1; got {number!r}")
        self._location_dim, self._value_dim, self._max_size = int(location_dim), int(value_dim), int(max_size)
        self._lock = threading.RLock()
        self._count = 0
        self._start = 0  # ring position of the oldest entry; 0 whenever the ring is not full
        self._next_id = 0
        self._version = 0  # bumped when entries are removed, moved or replaced
        self._indexes: OrderedDict[int, _IndexState] = OrderedDict()
        self._score_cache: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._refine_reference: RefineReference | None = None
        self._subscribers: list[Callable[[MemoryChange], None]] = []
        self._capacity = 0
        self._allocate(0)

    # -- properties ------------------------------------------------------------------------------------------

    @property
    def location_dim(self) -> int:
        """Dimension of locations (2 for x, y in the map frame)."""
        return self._location_dim

    @property
    def value_dim(self) -> int:
        """Dimension of values."""
        return self._value_dim

    @property
    def max_size(self) -> int:
        """Most entries held; older ones are evicted past it."""
        return self._max_size

    @property
    def next_id(self) -> int:
        """The id the next written entry gets."""
        return self._next_id

    @property
    def lock(self) -> threading.RLock:
        """The memory's reentrant lock: hold it to make several calls atomic (e.g. snapshot + journal rotation)."""
        return self._lock

    def __len__(self) -> int:
        return self._count

    def subscribe(self, callback: Callable[[MemoryChange], None]) -> None:
        """Call ``callback(change)`` after every write, eviction, removal and replacement, in order, while the
        memory's lock is held (keep it quick). A journal or a node publishing deltas subscribes here."""
        with self._lock:
            self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[MemoryChange], None]) -> None:
        """Stop calling ``callback``."""
        with self._lock:
            self._subscribers.remove(callback)

    def _notify(self, change: MemoryChange) -> None:
        for callback in list(self._subscribers):
            callback(change)

    # -- storage ---------------------------------------------------------------------------------------------

    def _allocate(self, capacity: int) -> None:
        """Resize storage to ``capacity`` slots, keeping the live prefix (the ring must not be wrapped)."""
        assert self._start == 0 or self._count == 0
        n, d, v = self._count, self._location_dim, self._value_dim
        arrays = {
            "_ids": np.full(capacity, -1, np.int64),
            "_locations": np.zeros((capacity, d), np.float32),
            "_sds": np.ones((capacity, d), np.float32),
            "_values": np.zeros((capacity, v), np.float32),
            "_labels": np.full(capacity, "", object),
            "_sources": np.full(capacity, "", object),
            "_stamps": np.full(capacity, np.nan),
        }
        for name, array in arrays.items():
            if n:
                array[:n] = getattr(self, name)[:n]
            setattr(self, name, array)
        for key, scores in list(self._score_cache.values()):
            grown = np.zeros(capacity, np.float32)
            grown[:n] = scores[:n]
            self._score_cache[key.tobytes()] = (key, grown)
        self._capacity = capacity

    def _order(self) -> np.ndarray:
        """Slots of the live entries, oldest first (live slots are always 0..count-1)."""
        if self._count < self._capacity or self._start == 0:
            return np.arange(self._count)
        return (self._start + np.arange(self._count)) % self._capacity

    def _structure_changed(self) -> None:
        self._version += 1
        self._score_cache.clear()

    def _compact(self, kept_slots: np.ndarray) -> None:
        """Keep only ``kept_slots`` (in age order), moved to the front."""
        m = len(kept_slots)
        for name in ("_ids", "_locations", "_sds", "_values", "_labels", "_sources", "_stamps"):
            array = getattr(self, name)
            array[:m] = array[kept_slots]
        self._ids[m:] = -1
        self._count, self._start = m, 0
        self._structure_changed()

    def _validated_batch(self, locations, location_sds, values, labels, sources, stamps) -> _Batch:
        locations = _float_matrix("locations", locations, self._location_dim, "one row per entry, metres")
        n = len(locations)
        location_sds = _sd_matrix("location_sds", location_sds, n, self._location_dim)
        values = _float_matrix("values", values, self._value_dim, "one row per entry")
        if len(values) != n:
            raise ValueError(f"values has {len(values)} rows but locations has {n}; pass one value per location")
        return _Batch(
            locations, location_sds, values, _strings("labels", labels, n, ""), _strings("sources", sources, n, ""),
            _stamps(stamps, n),
        )

    def _append(self, batch: _Batch) -> np.ndarray:
        n = len(batch.locations)
        ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        self._next_id += n
        evicted = [np.empty(0, np.int64)]
        skip = max(0, n - self._max_size)  # a batch larger than the memory keeps only its newest rows
        if skip:
            evicted.append(self._ids[self._order()])
            self._count, self._start = 0, 0
        k = n - skip
        needed = self._count + k
        if needed > self._capacity and self._capacity < self._max_size:
            self._allocate(min(self._max_size, max(needed, 2 * self._capacity, 1024)))
        slots = (self._start + self._count + np.arange(k)) % self._capacity
        overflow = needed - self._capacity
        if overflow > 0:
            evicted.append(self._ids[slots][self._ids[slots] >= 0])
            self._start = (self._start + self._count + k) % self._capacity
            self._count = self._capacity
        else:
            self._count = needed
        rows = slice(skip, n)
        self._ids[slots] = ids[rows]
        self._locations[slots] = batch.locations[rows]
        self._sds[slots] = batch.location_sds[rows]
        self._values[slots] = batch.values[rows]
        self._labels[slots] = batch.labels[skip:]
        self._sources[slots] = batch.sources[skip:]
        self._stamps[slots] = batch.stamps[rows]
        for key, scores in self._score_cache.values():
            scores[slots] = batch.values[rows] @ key
        if self._subscribers:
            evicted_ids = np.concatenate(evicted)
            if len(evicted_ids):
                self._notify(MemoryChange("evict", evicted_ids))
            self._notify(MemoryChange(
                "write", ids, batch.locations, batch.location_sds, batch.values, batch.labels, batch.sources,
                batch.stamps,
            ))
        return ids

    def _synced_index(self, match_threshold: float) -> GridIndex:
        """The grid index for this threshold's cell size, brought up to date with writes and evictions."""
        exponent = cell_exponent(match_threshold)
        n = self._count
        state = self._indexes.get(exponent)
        if state is None or state.version != self._version:
            index = GridIndex(exponent, self._location_dim)
            index.rebuild(self._locations[:n], np.arange(n), self._ids[:n], self._sds[:n])
            state = _IndexState(index, self._next_id, self._version)
        else:
            new = min(self._next_id - state.next_id, n)
            if new > 0:
                slots = (self._start + n - new + np.arange(new)) % self._capacity
                state.index.insert(self._locations[slots], slots, self._ids[slots], self._sds[slots], self._ids)
            state.next_id = self._next_id
        self._indexes[exponent] = state
        self._indexes.move_to_end(exponent)
        while len(self._indexes) > _MAX_INDEXES:
            self._indexes.popitem(last=False)
        return state.index

    def _ids_to_check(self, index: GridIndex | None) -> np.ndarray | None:
        """The ids by slot when ``index`` may hold entries evicted since it took them (their slots now hold newer
        entries, which queries must tell apart); None when it cannot (every indexed id is still live)."""
        if index is None or self._count == 0 or index.min_id < self._ids[self._start]:
            return self._ids
        return None

    def _index_for(self, match_threshold: float | None, use_index: bool | None) -> GridIndex | None:
        if use_index is None:
            use_index = match_threshold is not None and self._count >= _INDEX_MIN_ENTRIES
        if not use_index:
            return None
        if match_threshold is None:
            raise ValueError("the spatial index needs a match_threshold; pass one or use_index=False")
        return self._synced_index(match_threshold)

    def _scores(self, key: np.ndarray, slots: np.ndarray | None) -> np.ndarray:
        """key . value for ``slots`` (all live slots when None; those are cached per key)."""
        cached = self._score_cache.get(key.tobytes())
        if cached is not None:
            self._score_cache.move_to_end(key.tobytes())
            scores = cached[1]
            return scores[: self._count] if slots is None else scores[slots]
        if slots is not None:
            return _gathered_dot(self._values, slots, key)
        scores = np.zeros(self._capacity, np.float32)
        scores[: self._count] = self._values[: self._count] @ key
        self._score_cache[key.tobytes()] = (key.copy(), scores)
        while len(self._score_cache) > _MAX_CACHED_KEYS:
            self._score_cache.popitem(last=False)
        return scores[: self._count]

    # -- write -----------------------------------------------------------------------------------------------

    def write(self, locations, location_sds, values, labels=None, sources=None, stamps=None) -> np.ndarray:
        """Add a batch of entries; returns their ids.

        locations (n, location_dim) metres; location_sds > 0 as a scalar, (n,) or (n, location_dim); values
        (n, value_dim); labels and sources one str each or a single str for all; stamps seconds (scalar or (n,)),
        NaN when None. Bad input raises ValueError and leaves the memory unchanged.
        """
        batch = self._validated_batch(locations, location_sds, values, labels, sources, stamps)
        with self._lock:
            return self._append(batch)

    # -- read ------------------------------------------------------------------------------------------------

    def read(self, query_locations, query_sds, match_threshold: float | None = None, *,
             use_index: bool | None = None) -> ReadResult:
        """Kernel-regression read at each query location (seed 004).

        query_locations (Q, location_dim); query_sds > 0 as a scalar, (Q,) or (Q, location_dim). Entries farther
        than ``match_threshold`` get weight zero; queries with no match read zeros and ``matched`` False.
        ``use_index`` forces (True) or avoids (False) the grid index; by default it is used with a threshold on
        large memories.
        """
        queries = _float_matrix("query_locations", query_locations, self._location_dim, "one row per query")
        query_sds = _sd_matrix("query_sds", query_sds, len(queries), self._location_dim)
        match_threshold = _threshold(match_threshold)
        with self._lock:
            index = self._index_for(match_threshold, use_index)
            n = self._count
            return _read_arrays(
                queries, query_sds, self._locations[:n], self._sds[:n], self._values[:n], match_threshold, index,
                self._ids_to_check(index),
            )

    def read_one_removed(self, match_threshold: float | None = None, *, use_index: bool | None = None,
                         keep_values: bool = True) -> LeaveOneOut:
        """Leave-one-out reads, errors and dependencies of every entry, in entry order (oldest first)."""
        match_threshold = _threshold(match_threshold)
        with self._lock:
            n = self._count
            if n == 0:
                empty = np.empty(0, np.int64)
                return LeaveOneOut(np.zeros((0, self._value_dim), np.float32), np.zeros(0), empty, empty)
            index = self._index_for(match_threshold, use_index)
            values, errors, rows, cols = _leave_one_out_arrays(
                self._locations[:n], self._sds[:n], self._values[:n], match_threshold, index, keep_values,
                self._ids_to_check(index),
            )
            order = self._order()
            position = np.empty(n, np.int64)
            position[order] = np.arange(n)
            return LeaveOneOut(
                None if values is None else values[order], errors[order], position[rows], position[cols]
            )

    # -- sample ----------------------------------------------------------------------------------------------

    def sample(
        self,
        search_key,
        location=None,
        location_sd=None,
        num_samples: int = 1,
        temperature: float | None = None,
        location_weight: float = 0.01,
        sigma_scale: float = 1.0,
        match_threshold: float | None = None,
        *,
        rng: np.random.Generator | int | None = None,
        use_index: bool | None = None,
    ) -> SampleResult:
        """Sample goal locations from the conditional mixture of seed 004.

        Component t has weight softmax((key . value_t + location_weight * log k(location, l_t)) / temperature)
        (the location term only when ``location`` is given, with sd ``location_sd``); each sample is
        l_t + N(0, (sigma_scale * sd_t)^2). ``temperature`` defaults to sqrt(value_dim). ``match_threshold``
        restricts components to entries within that distance of ``location``; without it sampling is exact over
        all entries. Returns an empty result when no entry qualifies; ``rng`` is a seed or a Generator.
        """
        key = _float_vector("search_key", search_key, self._value_dim)
        query, query_sd = self._sample_location(location, location_sd, match_threshold)
        num_samples = _sample_count(num_samples)
        temperature = math.sqrt(self._value_dim) if temperature is None else _positive("temperature", temperature)
        location_weight = _positive("location_weight", location_weight, allow_zero=True)
        sigma_scale = _positive("sigma_scale", sigma_scale, allow_zero=True)
        match_threshold = _threshold(match_threshold)
        generator = np.random.default_rng(rng)
        with self._lock:
            if self._count == 0:
                return _empty_samples(self._location_dim)
            index = self._index_for(match_threshold, use_index)
            if index is not None:
                _, slots = index.query(query[None], match_threshold, self._ids_to_check(index))
                slots = np.sort(slots)
                scores = self._scores(key, slots)
            else:
                slots = np.arange(self._count)
                scores = self._scores(key, None)
            logits = scores.astype(np.float64)
            if query is not None:
                log_k, distance2 = _log_kernel_and_distance(
                    query[None].astype(np.float64), query_sd[None].astype(np.float64),
                    self._locations[slots].astype(np.float64), self._sds[slots].astype(np.float64),
                )
                logits = logits + location_weight * log_k
                if index is None and match_threshold is not None:
                    logits[distance2 > match_threshold * match_threshold] = -np.inf
            weights, matched = _row_softmax(logits / temperature)
            if not matched:
                return _empty_samples(self._location_dim)
            return self._draw_samples(key, slots, scores, weights, num_samples, sigma_scale, generator)

    def _sample_location(self, location, location_sd, match_threshold):
        if location is None:
            if location_sd is not None:
                raise ValueError("location_sd was given without location; pass both or neither")
            if match_threshold is not None:
                raise ValueError("match_threshold is measured from a location; pass location and location_sd")
            return None, None
        query = _float_vector("location", location, self._location_dim)
        if location_sd is None:
            raise ValueError("location was given without location_sd; pass the sd of the location in metres")
        return query, _sd_matrix("location_sd", location_sd, 1, self._location_dim)[0]

    def _draw_samples(self, key, slots, scores, weights, num_samples, sigma_scale, generator) -> SampleResult:
        picks = _draw(weights, generator, num_samples)
        chosen = slots[picks]
        noise = generator.standard_normal((num_samples, self._location_dim))
        locations = self._locations[chosen] + noise * sigma_scale * self._sds[chosen]
        chosen_values = self._values[chosen]
        norms = np.linalg.norm(chosen_values, axis=1) * np.linalg.norm(key)
        similarities = np.divide(chosen_values @ key, norms, out=np.zeros(num_samples, np.float32), where=norms > 0)
        return SampleResult(
            locations.astype(np.float32), self._ids[chosen].copy(), [str(x) for x in self._labels[chosen]],
            np.asarray(scores[picks], np.float32), weights[picks].astype(np.float32), similarities.astype(np.float32),
        )

    # -- prune and refine ------------------------------------------------------------------------------------

    def prune(
        self,
        max_error: float = 0.05,
        match_threshold: float | None = 25.0,
        max_steps: int = 10,
        *,
        rule: str = "independent",
        reference_points: int = 4096,
        seed: int = 0,
    ) -> PrunePlan:
        """Recursively remove entries whose leave-one-out error is below ``max_error`` (seed 004); see
        ``select_prune_candidates`` for the rules. Returns what was removed; ``refine`` can follow."""
        with self._lock:
            order = self._order()
            plan = _plan_prune_arrays(
                self._locations[order], self._sds[order], self._values[order], self._ids[order],
                max_error=max_error, match_threshold=match_threshold, max_steps=max_steps, rule=rule,
                reference_points=reference_points, seed=seed,
            )
            self.apply_prune(plan)
            return plan

    def apply_prune(self, plan: PrunePlan) -> int:
        """Remove the plan's entries (those still present); keeps entries written since it was planned."""
        with self._lock:
            removed = self.remove(plan.removed_ids)
            if plan.reference is not None:
                self._refine_reference = plan.reference
            return removed

    def refine(self, steps: int = 100, learning_rate: float = 1e-3,
               reference: RefineReference | None = None) -> RefinePlan:
        """Regress the entries toward the read from before the last prune (or ``reference``) with Adam."""
        with self._lock:
            reference = reference or self._refine_reference
            if reference is None:
                raise ValueError("nothing to refine toward: call prune() first or pass a reference")
            plan = plan_refine(self.snapshot(), reference, steps, learning_rate)
            self.apply_refine(plan)
            return plan

    def apply_refine(self, plan: RefinePlan) -> int:
        """Replace the refined entries that are still present; returns how many."""
        return self.replace(plan.ids, plan.locations, plan.location_sds, plan.values)

    # -- bulk edits ------------------------------------------------------------------------------------------

    def remove(self, ids) -> int:
        """Remove the entries with these ids (unknown ids are ignored); returns how many were removed."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        with self._lock:
            order = self._order()
            drop = np.isin(self._ids[order], ids)
            if not drop.any():
                return 0
            removed_ids = self._ids[order[drop]]
            self._compact(order[~drop])
            self._notify(MemoryChange("remove", removed_ids))
            return len(removed_ids)

    def replace(self, ids, locations, location_sds, values) -> int:
        """Overwrite location, sd and value of the entries with these ids (absent ids are skipped)."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        if len(ids) == 0:
            return 0
        locations = _float_matrix("locations", locations, self._location_dim, "one row per id")
        location_sds = _sd_matrix("location_sds", location_sds, len(ids), self._location_dim)
        values = _float_matrix("values", values, self._value_dim, "one row per id")
        if not len(ids) == len(locations) == len(values):
            raise ValueError(f"ids, locations and values must have equal lengths; got {len(ids)}, "
                             f"{len(locations)}, {len(values)}")
        with self._lock:
            order = self._order()
            live_ids = self._ids[order]
            at = np.minimum(np.searchsorted(live_ids, ids), max(len(order) - 1, 0))
            present = (live_ids[at] == ids) if len(order) else np.zeros(len(ids), bool)
            slots = order[at[present]]
            self._locations[slots] = locations[present]
            self._sds[slots] = location_sds[present]
            self._values[slots] = values[present]
            self._structure_changed()
            if present.any():
                self._notify(MemoryChange(
                    "replace", ids[present], locations[present], location_sds[present], values[present]
                ))
            return int(present.sum())

    def clear(self) -> None:
        """Remove every entry (ids keep counting up)."""
        with self._lock:
            self.remove(self._ids[self._order()])

    # -- snapshots -------------------------------------------------------------------------------------------

    def newest(self, count: int) -> tuple[np.ndarray, list[str]]:
        """Locations (n, location_dim) and labels of the ``count`` newest entries, oldest first: a cheap look for
        displays (no values are copied, unlike ``snapshot``)."""
        with self._lock:
            order = self._order()[-max(int(count), 0):] if count > 0 else np.arange(0)
            return self._locations[order].copy(), [str(x) for x in self._labels[order]]

    def snapshot(self) -> MemorySnapshot:
        """A copy of every entry, oldest first (for saving, background pruning or export)."""
        with self._lock:
            order = self._order()
            return MemorySnapshot(
                self._location_dim, self._value_dim, self._max_size, self._next_id, self._ids[order],
                self._locations[order], self._sds[order], self._values[order],
                [str(x) for x in self._labels[order]], [str(x) for x in self._sources[order]], self._stamps[order],
            )

    @classmethod
    def from_snapshot(cls, snapshot: MemorySnapshot) -> SpatialMemory:
        """A memory holding exactly the snapshot's entries and id counter (validated; ValueError if inconsistent)."""
        memory = cls(snapshot.location_dim, snapshot.value_dim, snapshot.max_size)
        n = len(snapshot.ids)
        if n == 0:
            memory._next_id = int(snapshot.next_id)
            return memory
        batch = memory._validated_batch(
            snapshot.locations, snapshot.location_sds, snapshot.values, snapshot.labels, snapshot.sources, None
        )
        stamps = np.asarray(snapshot.stamps, dtype=np.float64)
        if stamps.shape != (n,) or np.isinf(stamps).any():
            raise ValueError(f"snapshot stamps must be {n} finite seconds or NaN; got shape {stamps.shape}")
        ids = np.asarray(snapshot.ids, dtype=np.int64)
        if ids.shape != (n,) or (n > 1 and not (np.diff(ids) > 0).all()) or ids[0] < 0:
            raise ValueError("snapshot ids must be non-negative and strictly increasing, one per entry")
        if ids[-1] >= snapshot.next_id or n > snapshot.max_size:
            raise ValueError(f"snapshot is inconsistent: last id {ids[-1]}, next_id {snapshot.next_id}, "
                             f"{n} entries for max_size {snapshot.max_size}")
        memory._allocate(n)
        memory._count = n
        memory._ids[:] = ids
        memory._locations[:], memory._sds[:], memory._values[:] = batch.locations, batch.location_sds, batch.values
        memory._labels[:], memory._sources[:] = batch.labels, batch.sources
        memory._stamps[:] = stamps
        memory._next_id = int(snapshot.next_id)
        return memory
