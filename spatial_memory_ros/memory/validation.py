"""Input validation for the spatial memory: every check runs before anything changes, and a bad argument raises a
ValueError that says how to fix it.

Shared by the memory's public methods and by the prune / refine planners (``pruning.py``), which take the same
thresholds and rates; nothing here knows the memory's storage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_SAMPLES_PER_CALL = 1_000_000


def float_matrix(name: str, array, n_cols: int, what: str) -> np.ndarray:
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


def float_vector(name: str, array, size: int) -> np.ndarray:
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


def sd_matrix(name: str, sds, n_rows: int, n_cols: int) -> np.ndarray:
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


def positive(name: str, value, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ValueError(f"{name} must be finite and {'>=' if allow_zero else '>'} 0; got {value!r}")
    return number


def per_entry_strings(name: str, items, n: int, default: str) -> list[str]:
    """One string per entry: None gives ``default``, a single str is repeated."""
    if items is None:
        return [default] * n
    if isinstance(items, str):
        return [items] * n
    items = list(items)
    if len(items) != n or not all(isinstance(item, str) for item in items):
        raise ValueError(f"{name} must be a str or a sequence of {n} str (one per entry); got {len(items)} items")
    return items


def per_entry_stamps(stamps, n: int) -> np.ndarray:
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


def optional_threshold(match_threshold) -> float | None:
    """A match threshold: None (no threshold) or a finite distance > 0."""
    return None if match_threshold is None else positive("match_threshold", match_threshold)


def sample_count(num_samples) -> int:
    """How many samples one call draws: an int in 1..MAX_SAMPLES_PER_CALL."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)):
        raise ValueError(f"num_samples must be an int; got {num_samples!r}")
    if not 1 <= num_samples <= MAX_SAMPLES_PER_CALL:
        raise ValueError(f"num_samples must be in 1..{MAX_SAMPLES_PER_CALL}; got {num_samples}")
    return int(num_samples)


@dataclass
class EntryBatch:
    """A validated batch of entries, one row (or item) per entry."""

    locations: np.ndarray
    location_sds: np.ndarray
    values: np.ndarray
    labels: list[str]
    sources: list[str]
    stamps: np.ndarray


def entry_batch(location_dim: int, value_dim: int, locations, location_sds, values, labels, sources,
                stamps) -> EntryBatch:
    """A batch of entries to write, checked against the memory's dimensions (see ``SpatialMemory.write``)."""
    locations = float_matrix("locations", locations, location_dim, "one row per entry, metres")
    n = len(locations)
    location_sds = sd_matrix("location_sds", location_sds, n, location_dim)
    values = float_matrix("values", values, value_dim, "one row per entry")
    if len(values) != n:
        raise ValueError(f"values has {len(values)} rows but locations has {n}; pass one value per location")
    return EntryBatch(
        locations, location_sds, values, per_entry_strings("labels", labels, n, ""),
        per_entry_strings("sources", sources, n, ""), per_entry_stamps(stamps, n),
    )


# ------------------------------------------------------------------------------------------------ merges


@dataclass(frozen=True)
class MergeLimits:
    """What the memory takes from teammates (the memory/merge path): bounds on every field, a rate, and a total.

    Memory growth from merges is bounded by ``max_entries`` entries of at most VALUE_DIM float32 numbers, a label
    and a source of at most ``max_label_chars`` characters each: at the defaults (10,000 entries, 388-D values,
    64-character strings) about 10,000 x (1,552 + 2 x 64 x 4 + 24) bytes = 18 MB, however long the stream."""

    max_entries: int = 10_000           # merged entries accepted in all
    max_per_message: int = 1_000
    rate: float = 100.0                 # entries per second, in the long run
    burst: float = 1_000.0
    max_label_chars: int = 64
    max_location_sd: float = 10.0       # metres
    max_value_magnitude: float = 1e3    # values are unit embeddings and fractions; far beyond is not one

    def __post_init__(self) -> None:
        for name in ("max_entries", "max_per_message", "rate", "burst", "max_label_chars", "max_location_sd",
                     "max_value_magnitude"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"MergeLimits.{name} must be a positive number, got {value!r}")


class MergeGate:
    """Checks a batch of merged entries against :class:`MergeLimits` and the map ``extent`` (x0, y0, x1, y1):
    :meth:`check_fields` before anything is built from it, :meth:`admit` (rate and total) once it is otherwise
    good. Each returns (reason, detail) to refuse the batch, or None."""

    def __init__(self, extent: tuple[float, float, float, float], limits: MergeLimits | None = None) -> None:
        self.extent, self.limits = tuple(float(v) for v in extent), limits or MergeLimits()
        self.accepted = 0
        self._tokens, self._time = self.limits.burst, None

    def check_fields(self, labels: list, sources: list, xs: list, ys: list, sds: list, values=()
                     ) -> tuple[str, str] | None:
        """Field bounds, cheapest first, on plain lists (a 1 MB label is refused by its length); ``values`` are
        the entries' value sequences (empty ones skipped)."""
        limits, n = self.limits, len(labels)
        if not 0 < n <= limits.max_per_message:
            return "merged entries out of bounds", f"{n} entries in one message; 1..{limits.max_per_message} taken"
        for text in (*labels, *sources):
            if not isinstance(text, str) or len(text) > limits.max_label_chars or not text.isprintable():
                return ("merged entries out of bounds",
                        f"a label or source of {len(text) if isinstance(text, str) else '?'} characters (or not "
                        f"printable); at most {limits.max_label_chars} printable characters")
        x0, y0, x1, y1 = self.extent
        for x, y, sd in zip(xs, ys, sds):
            if not (x0 <= x <= x1 and y0 <= y <= y1):
                return "merged entries out of bounds", f"location ({x:.3g}, {y:.3g}) outside the map {self.extent}"
            if not 0 < sd <= limits.max_location_sd:
                return "merged entries out of bounds", f"location_sd {sd:.3g} not in (0, {limits.max_location_sd}]"
        for value in values:
            array = np.asarray(value, np.float64)
            if array.size and not np.all(np.abs(array) <= limits.max_value_magnitude):
                return "merged entries out of bounds", f"values beyond +-{limits.max_value_magnitude:g}"
        return None

    def admit(self, n: int, now: float) -> tuple[str, str] | None:
        """Take ``n`` entries at ``now`` (seconds, monotonic) if the total and the rate allow; counts them."""
        limits = self.limits
        if self.accepted + n > limits.max_entries:
            return "merged entries over the total", (f"{self.accepted} merged entries held; at most "
                                                     f"{limits.max_entries:.0f} are taken (MergeLimits.max_entries)")
        if self._time is not None:
            self._tokens = min(limits.burst, self._tokens + max(0.0, now - self._time) * limits.rate)
        self._time = now if self._time is None else max(now, self._time)
        if n > self._tokens:
            return "merged entries over the rate", f"{n} entries now; {limits.rate:g} a second are taken"
        self._tokens -= n
        self.accepted += n
        return None
