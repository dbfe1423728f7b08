"""Prune and refine for the spatial memory (seed 004): which entries a prune removes, the recursive prune planned
over arrays or a snapshot, and the Adam regression of the survivors toward the read from before the prune.

Planning reads plain arrays and never changes a memory, so it can run in a background thread on a snapshot while
writes go on; ``SpatialMemory.apply_prune`` / ``apply_refine`` then apply the plans (the seed's hot swap).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spatial_memory_ros.memory.index import static_index
from spatial_memory_ros.memory.kernels import leave_one_out_arrays, read_arrays
from spatial_memory_ros.memory.results import MemorySnapshot
from spatial_memory_ros.memory.validation import optional_threshold, positive

PRUNE_RULES = ("independent", "seed")


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


def plan_prune_arrays(
    locations, location_sds, values, ids, *, max_error, match_threshold, max_steps, rule, reference_points, seed,
    progress=None,
) -> PrunePlan:
    """The recursive prune of seed 004 over plain arrays (nothing is modified)."""
    max_error = positive("max_error", max_error)
    match_threshold = optional_threshold(match_threshold)
    if not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"max_steps must be an int >= 1; got {max_steps!r}")
    if rule not in PRUNE_RULES:
        raise ValueError(f"unknown prune rule {rule!r}; use one of {PRUNE_RULES}")
    size_before = len(ids)
    reference = None
    if reference_points and size_before:
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(size_before, min(size_before, int(reference_points)), replace=False))
        index = static_index(locations, location_sds, match_threshold)
        targets = read_arrays(
            locations[chosen], location_sds[chosen], locations, location_sds, values, match_threshold, index
        ).values
        reference = RefineReference(locations[chosen].copy(), location_sds[chosen].copy(), targets, match_threshold)
    removed_ids, removed_per_step = [], []
    for _ in range(max_steps):
        if len(ids) < 2:
            break
        index = static_index(locations, location_sds, match_threshold)
        _, errors, rows, cols = leave_one_out_arrays(locations, location_sds, values, match_threshold, index, False)
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
    return plan_prune_arrays(
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
        index = static_index(locations, location_sds, match_threshold)
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
    learning_rate = positive("learning_rate", learning_rate)
    if len(snapshot) == 0:
        empty = np.empty((0,), np.int64)
        return RefinePlan(empty, snapshot.locations, snapshot.location_sds, snapshot.values, [])
    locations, sds, values, losses = _refine_arrays(
        snapshot.locations, snapshot.location_sds, snapshot.values, reference, steps, learning_rate
    )
    return RefinePlan(snapshot.ids.copy(), locations, sds, values, losses)
