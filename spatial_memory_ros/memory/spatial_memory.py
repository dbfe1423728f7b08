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

For scale, reads and samples with a match threshold go through a uniform-grid hash and touch only nearby entries;
without a threshold, sampling stays exact over all entries (alignment scores per search key are cached and kept
current on writes). Dense and indexed paths give the same answers.

Deviation from the seed: the read kernel uses the Gaussian log density, -0.5 * sum(log var), as the seed's prose and
its sampling code do; the seed's read code has -sum(log var). With equal sds per query the two give the same read.

Where the parts live: ``index.py`` (the grid index), ``kernels.py`` (reads over plain arrays), ``pruning.py``
(prune and refine planned over arrays or snapshots), ``results.py`` (what the memory returns), ``validation.py``
(argument checks). This module is the ``SpatialMemory`` class alone. It is over 500 lines and stays one class on
purpose: every method reads or changes the same ring-buffer storage (slots, ids, start, count), the indexes and
score cache kept in step with it, and the one lock that makes each public call atomic; the work that needs no
storage already lives in the modules above, and what remains are short methods whose invariants (live slots,
eviction order, index and cache versions) would leak if they were spread over several classes.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from spatial_memory_ros.memory.index import GridIndex, cell_exponent
from spatial_memory_ros.memory.kernels import (gathered_dot, leave_one_out_arrays, log_kernel_and_distance,
                                               read_arrays, row_softmax, weighted_draw)
from spatial_memory_ros.memory.pruning import (PrunePlan, RefinePlan, RefineReference, plan_prune_arrays,
                                               plan_refine)
from spatial_memory_ros.memory.results import LeaveOneOut, MemoryChange, MemorySnapshot, ReadResult, SampleResult
from spatial_memory_ros.memory.validation import (EntryBatch, entry_batch, float_matrix, float_vector,
                                                  optional_threshold, positive, sample_count, sd_matrix)

_INDEX_MIN_ENTRIES = 2048  # below this a dense read is as fast as the index
_MAX_INDEXES = 3
_MAX_CACHED_KEYS = 4


@dataclass
class _IndexState:
    index: GridIndex
    next_id: int  # entries with smaller ids are in the index (unless overwritten since: queries check ids)
    version: int


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

    def _append(self, batch: EntryBatch) -> np.ndarray:
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
            return gathered_dot(self._values, slots, key)
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
        batch = entry_batch(self._location_dim, self._value_dim, locations, location_sds, values, labels,
                            sources, stamps)
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
        queries = float_matrix("query_locations", query_locations, self._location_dim, "one row per query")
        query_sds = sd_matrix("query_sds", query_sds, len(queries), self._location_dim)
        match_threshold = optional_threshold(match_threshold)
        with self._lock:
            index = self._index_for(match_threshold, use_index)
            n = self._count
            return read_arrays(
                queries, query_sds, self._locations[:n], self._sds[:n], self._values[:n], match_threshold, index,
                self._ids_to_check(index),
            )

    def read_one_removed(self, match_threshold: float | None = None, *, use_index: bool | None = None,
                         keep_values: bool = True) -> LeaveOneOut:
        """Leave-one-out reads, errors and dependencies of every entry, in entry order (oldest first)."""
        match_threshold = optional_threshold(match_threshold)
        with self._lock:
            n = self._count
            if n == 0:
                empty = np.empty(0, np.int64)
                return LeaveOneOut(np.zeros((0, self._value_dim), np.float32), np.zeros(0), empty, empty)
            index = self._index_for(match_threshold, use_index)
            values, errors, rows, cols = leave_one_out_arrays(
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
        key = float_vector("search_key", search_key, self._value_dim)
        query, query_sd = self._sample_location(location, location_sd, match_threshold)
        num_samples = sample_count(num_samples)
        temperature = math.sqrt(self._value_dim) if temperature is None else positive("temperature", temperature)
        location_weight = positive("location_weight", location_weight, allow_zero=True)
        sigma_scale = positive("sigma_scale", sigma_scale, allow_zero=True)
        match_threshold = optional_threshold(match_threshold)
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
                log_k, distance2 = log_kernel_and_distance(
                    query[None].astype(np.float64), query_sd[None].astype(np.float64),
                    self._locations[slots].astype(np.float64), self._sds[slots].astype(np.float64),
                )
                logits = logits + location_weight * log_k
                if index is None and match_threshold is not None:
                    logits[distance2 > match_threshold * match_threshold] = -np.inf
            weights, matched = row_softmax(logits / temperature)
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
        query = float_vector("location", location, self._location_dim)
        if location_sd is None:
            raise ValueError("location was given without location_sd; pass the sd of the location in metres")
        return query, sd_matrix("location_sd", location_sd, 1, self._location_dim)[0]

    def _draw_samples(self, key, slots, scores, weights, num_samples, sigma_scale, generator) -> SampleResult:
        picks = weighted_draw(weights, generator, num_samples)
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
            plan = plan_prune_arrays(
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
        locations = float_matrix("locations", locations, self._location_dim, "one row per id")
        location_sds = sd_matrix("location_sds", location_sds, len(ids), self._location_dim)
        values = float_matrix("values", values, self._value_dim, "one row per id")
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
        batch = entry_batch(
            memory.location_dim, memory.value_dim, snapshot.locations, snapshot.location_sds, snapshot.values, snapshot.labels, snapshot.sources, None
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
