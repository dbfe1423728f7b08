"""SpatialMemory: the seed's read, sample, leave-one-out and prune, the grid index, eviction, and bad input."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from spatial_memory_ros.memory import index as index_module
from spatial_memory_ros.memory import kernels
from spatial_memory_ros.memory.pruning import plan_prune, plan_refine, select_prune_candidates
from spatial_memory_ros.memory.results import MemoryChange
from spatial_memory_ros.memory.spatial_memory import SpatialMemory
from spatial_memory_ros.memory.validation import MAX_SAMPLES_PER_CALL


def smooth_field(locations: np.ndarray, value_dim: int = 8) -> np.ndarray:
    """A smooth value field over locations, so nearby entries are redundant (what pruning exploits)."""
    frequencies = np.linspace(0.005, 0.02, value_dim)
    phase = locations[:, :1] * frequencies + np.sin(locations[:, 1:2] * frequencies * 0.7)
    return (0.3 * np.cos(phase)).astype(np.float32)


def filled_memory(n=600, location_dim=2, value_dim=8, max_size=100_000, seed=0, spread=50.0) -> SpatialMemory:
    rng = np.random.default_rng(seed)
    memory = SpatialMemory(location_dim, value_dim, max_size)
    locations = rng.normal(0.0, spread, (n, location_dim))
    values = smooth_field(locations, value_dim) if location_dim >= 2 else rng.normal(size=(n, value_dim))
    sds = rng.uniform(1.0, 4.0, (n, location_dim))
    memory.write(locations, sds, values, labels=[f"l{i % 5}" for i in range(n)], sources="robot1", stamps=1.0)
    return memory


def reference_read(memory: SpatialMemory, queries, query_sds, threshold=None):
    """The seed's kernel regression written out directly (Gaussian log density, softmax, threshold mask)."""
    snap = memory.snapshot()
    variance = query_sds[:, None, :] ** 2 + snap.location_sds[None].astype(np.float64) ** 2
    delta = queries[:, None, :] - snap.locations[None].astype(np.float64)
    log_k = -0.5 * (delta**2 / variance).sum(-1) - 0.5 * np.log(variance).sum(-1)
    if threshold is not None:
        log_k[np.linalg.norm(delta, axis=-1) > threshold] = -np.inf
    out = np.zeros((len(queries), snap.values.shape[1]))
    matched = np.isfinite(log_k).any(axis=1)
    w = np.exp(log_k[matched] - log_k[matched].max(axis=1, keepdims=True))
    out[matched] = (w / w.sum(axis=1, keepdims=True)) @ snap.values
    return out, matched


def assert_snapshots_equal(a, b):
    assert a.next_id == b.next_id
    for name in ("ids", "locations", "location_sds", "values", "stamps"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.labels == b.labels and a.sources == b.sources


# ---------------------------------------------------------------------------------------------------------------
# read


def test_read_back_at_written_points_is_exact():
    grid = np.stack(np.meshgrid(np.linspace(-500, 500, 30), np.linspace(-500, 500, 30)), -1).reshape(-1, 2)
    memory = SpatialMemory(2, 8)
    values = smooth_field(grid)
    memory.write(grid, 1.0, values)
    result = memory.read(grid, 1.0)
    assert result.matched.all()
    assert np.abs(result.values - values).max() < 1e-6


@pytest.mark.parametrize("threshold", [None, 8.0])
def test_read_matches_the_kernel_formula(threshold):
    memory = filled_memory(300)
    rng = np.random.default_rng(1)
    queries = rng.normal(0, 60, (50, 2))
    query_sds = rng.uniform(0.5, 3.0, (50, 2))
    expected, matched = reference_read(memory, queries, query_sds, threshold)
    result = memory.read(queries, query_sds, threshold)
    np.testing.assert_array_equal(result.matched, matched)
    np.testing.assert_allclose(result.values, expected, atol=1e-5)
    if threshold is not None:
        assert not matched.all(), "the test should include queries that match nothing"
        assert (result.values[~matched] == 0).all()


def test_empty_memory_reads_zero_unmatched():
    result = SpatialMemory(2, 4).read(np.zeros((3, 2)), 1.0, 5.0)
    assert result.values.shape == (3, 4) and not result.values.any() and not result.matched.any()


@pytest.fixture(params=["cell directory", "binary search"])
def index_lookup(request, monkeypatch):
    """Run a test with the index's dense cell directory on every part, and with binary searches only."""
    directory = request.param == "cell directory"
    monkeypatch.setattr(index_module, "_DIRECTORY_MIN_ENTRIES", 1 if directory else 1 << 40)
    monkeypatch.setattr(index_module, "_DIRECTORY_CELLS_PER_ENTRY", 1 << 40 if directory else 4)
    return request.param


def assert_paths_agree(memory: SpatialMemory, queries: np.ndarray, query_sd: float, threshold: float) -> None:
    """The dense and the indexed read give the same matches and (to float32 rounding) the same values."""
    dense = memory.read(queries, query_sd, threshold, use_index=False)
    indexed = memory.read(queries, query_sd, threshold, use_index=True)
    np.testing.assert_array_equal(dense.matched, indexed.matched)
    np.testing.assert_allclose(dense.values, indexed.values, atol=1e-5)


@pytest.mark.parametrize("location_dim", [1, 2, 3])
def test_dense_and_indexed_paths_agree(location_dim, index_lookup):
    memory = filled_memory(3000, location_dim=location_dim, max_size=2500, spread=30.0)  # ring has wrapped
    rng = np.random.default_rng(2)
    memory.write(rng.normal(0, 30, (400, location_dim)), 2.0, rng.normal(size=(400, 8)))  # after index creation
    for threshold in (3.0, 10.0, 33.0):
        queries = rng.normal(0, 40, (200, location_dim))
        assert_paths_agree(memory, queries, 1.5, threshold)
        assert bool(memory._synced_index(threshold)._main._directory()) == (index_lookup == "cell directory")
        memory.write(rng.normal(0, 30, (300, location_dim)), 1.0, rng.normal(size=(300, 8)))  # index updates


@pytest.mark.slow
def test_dense_and_indexed_leave_one_out_and_sample_agree():
    memory = filled_memory(2500)
    dense = memory.read_one_removed(6.0, use_index=False)
    indexed = memory.read_one_removed(6.0, use_index=True)
    np.testing.assert_allclose(dense.errors, indexed.errors, atol=1e-5)
    np.testing.assert_allclose(dense.values, indexed.values, atol=1e-5)
    as_set = lambda loo: set(zip(loo.dependency_rows.tolist(), loo.dependency_cols.tolist()))  # noqa: E731
    assert as_set(dense) == as_set(indexed)
    key = smooth_field(np.array([[20.0, -10.0]]))[0] * 5
    kwargs = dict(location=[10.0, 0.0], location_sd=5.0, num_samples=300, temperature=0.5, match_threshold=25.0)
    a = memory.sample(key, rng=7, use_index=False, **kwargs)
    b = memory.sample(key, rng=7, use_index=True, **kwargs)
    np.testing.assert_array_equal(a.entry_ids, b.entry_ids)
    np.testing.assert_allclose(a.locations, b.locations, atol=1e-5)


def test_index_merges_and_drops_evicted_entries(monkeypatch, index_lookup):
    """Many small writes into a full ring, with the index's recent part merged often (as at robot scale)."""
    monkeypatch.setattr(index_module, "_RECENT_MIN", 50)
    rng = np.random.default_rng(8)
    memory = SpatialMemory(2, 4, max_size=1000)
    queries = rng.uniform(-30, 30, (60, 2))
    for step in range(40):
        memory.write(rng.uniform(-30, 30, (70, 2)), 1.0, rng.normal(size=(70, 4)))
        if step % 3 == 0:
            assert_paths_agree(memory, queries, 1.0, 4.0)


@pytest.mark.slow
def test_index_is_exact_on_cell_edges_and_far_away(index_lookup):
    """Entries exactly at the threshold, on cell boundaries (power-of-two radii), and beyond the hashed range."""
    rng = np.random.default_rng(6)
    memory = SpatialMemory(2, 4)
    centres = np.array([[0.0, 0.0], [8.0, 8.0], [3e7, -3e7]])
    ring = np.concatenate([c + np.stack([np.cos(a), np.sin(a)], 1) * r for c in centres
                           for r in (2.0, 4.0, 8.0) for a in [np.linspace(0, 2 * np.pi, 16, endpoint=False)]])
    lattice = np.stack(np.meshgrid(np.arange(-16, 17, 2.0), np.arange(-16, 17, 2.0)), -1).reshape(-1, 2)
    locations = np.concatenate([ring, lattice, lattice + 3e7, rng.uniform(-20, 20, (500, 2))])
    memory.write(locations, 1.0, rng.normal(size=(len(locations), 4)))
    queries = np.concatenate([centres, lattice[::7], rng.uniform(-20, 20, (50, 2))])
    for threshold in (2.0, 4.0, 8.0, 3.0):
        assert_paths_agree(memory, queries, 1.0, threshold)


def test_index_skips_the_stale_check_only_while_nothing_indexed_was_evicted():
    memory = SpatialMemory(2, 4, max_size=3000)
    rng = np.random.default_rng(9)
    memory.write(rng.uniform(-20, 20, (3000, 2)), 1.0, rng.normal(size=(3000, 4)))
    queries = rng.uniform(-20, 20, (40, 2))
    memory.read(queries, 1.0, 3.0, use_index=True)
    index = memory._synced_index(3.0)
    assert memory._ids_to_check(index) is None  # full but nothing evicted yet
    memory.write(rng.uniform(-20, 20, (10, 2)), 1.0, rng.normal(size=(10, 4)))  # evicts the 10 oldest
    index = memory._synced_index(3.0)
    assert memory._ids_to_check(index) is memory._ids
    assert_paths_agree(memory, queries, 1.0, 3.0)


def test_gathers_match_numpy_with_and_without_torch(monkeypatch):
    rng = np.random.default_rng(10)
    values = rng.normal(size=(500, 16)).astype(np.float32)
    rows = rng.integers(0, 500, 3000)
    key = rng.normal(size=16).astype(np.float32)
    np.testing.assert_allclose(kernels.gathered_dot(values, rows, key, chunk=64), values[rows] @ key,
                               rtol=1e-5, atol=1e-5)
    segments = np.sort(rng.integers(0, 40, 3000))
    segments[segments == 7] = 8  # a row with no pairs reads zero
    weights = rng.random(3000)
    expected = np.zeros((40, 16))
    np.add.at(expected, segments, weights[:, None] * values[rows])
    none = np.empty(0, np.int64)
    monkeypatch.setattr(kernels, "_TORCH_MIN_PAIRS", 0)
    for torch_available in (True, False):
        if not torch_available:
            monkeypatch.setattr(kernels, "_TORCH", False)  # the scipy fallback
        result = kernels._sparse_weighted_sum(segments, rows, weights, 40, values)
        assert result.dtype == np.float32 and result.shape == (40, 16) and not result[7].any()
        np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4)
        nothing = kernels._sparse_weighted_sum(none, none, np.empty(0), 5, values)
        assert nothing.shape == (5, 16) and not nothing.any()


def test_prune_of_an_empty_or_single_entry_memory():
    memory = SpatialMemory(2, 3)
    assert len(memory.prune().removed_ids) == 0
    memory.write([[0.0, 0.0]], 1.0, [[1.0, 2.0, 3.0]])
    assert len(memory.prune().removed_ids) == 0 and len(memory) == 1


def test_index_stays_correct_after_prune_remove_and_replace():
    memory = filled_memory(3000)
    queries = np.random.default_rng(3).normal(0, 50, (100, 2))
    memory.read(queries, 1.0, 5.0, use_index=True)  # build the index
    memory.remove(memory.snapshot().ids[::3])
    snap = memory.snapshot()
    memory.replace(snap.ids[:50], snap.locations[:50] + 7.0, snap.location_sds[:50], snap.values[:50])
    dense = memory.read(queries, 1.0, 5.0, use_index=False)
    indexed = memory.read(queries, 1.0, 5.0, use_index=True)
    np.testing.assert_allclose(dense.values, indexed.values, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# write and eviction


def test_eviction_keeps_the_newest_entries_in_order():
    memory = SpatialMemory(2, 3, max_size=10)
    events: list[MemoryChange] = []
    memory.subscribe(events.append)
    for start in range(0, 25, 4):
        ids = memory.write(np.full((4, 2), float(start)), 1.0, np.zeros((4, 3)), labels=[str(start)] * 4)
        np.testing.assert_array_equal(ids, np.arange(start, start + 4))
    snap = memory.snapshot()
    assert len(memory) == 10 and memory.next_id == 28
    np.testing.assert_array_equal(snap.ids, np.arange(18, 28))
    evicted = np.concatenate([e.ids for e in events if e.kind == "evict"])
    np.testing.assert_array_equal(evicted, np.arange(18))
    memory.write(np.zeros((15, 2)), 1.0, np.ones((15, 3)))  # a batch larger than the memory
    np.testing.assert_array_equal(memory.snapshot().ids, np.arange(33, 43))


def test_write_accepts_scalar_and_isotropic_sds_and_broadcast_metadata():
    memory = SpatialMemory(2, 2)
    memory.write([[0, 0], [1, 1]], [0.5, 2.0], [[1, 0], [0, 1]], labels="wall", sources="robot2", stamps=12.5)
    snap = memory.snapshot()
    np.testing.assert_array_equal(snap.location_sds, [[0.5, 0.5], [2.0, 2.0]])
    assert snap.labels == ["wall", "wall"] and snap.sources == ["robot2", "robot2"]
    np.testing.assert_array_equal(snap.stamps, [12.5, 12.5])


# ---------------------------------------------------------------------------------------------------------------
# sample


def test_sample_weights_follow_the_seed_mixture():
    memory = filled_memory(200)
    snap = memory.snapshot()
    key = snap.values[17] * 3
    location, location_sd, beta, temperature = np.array([5.0, -5.0]), 10.0, 0.5, 2.0
    result = memory.sample(key, location, location_sd, 500, temperature, beta, sigma_scale=0.0, rng=0)
    variance = location_sd**2 + snap.location_sds.astype(np.float64) ** 2
    log_k = -0.5 * ((location - snap.locations) ** 2 / variance).sum(1) - 0.5 * np.log(variance).sum(1)
    logits = (snap.values @ key + beta * log_k) / temperature
    expected = np.exp(logits - logits.max())
    expected /= expected.sum()
    position = {entry_id: i for i, entry_id in enumerate(snap.ids)}
    picked = np.array([position[i] for i in result.entry_ids])
    np.testing.assert_allclose(result.weights, expected[picked], rtol=1e-4)
    np.testing.assert_allclose(result.locations, snap.locations[picked])  # sigma_scale 0: the centres
    counts = np.bincount(picked, minlength=len(snap.ids)) / 500
    assert abs(counts.max() - expected.max()) < 0.08


def test_location_bias_pulls_samples_toward_the_location():
    memory = filled_memory(800)
    key = np.zeros(8, np.float32)  # no preference by value: only the location term matters
    near = memory.sample(key, [40.0, 40.0], 5.0, 400, temperature=1.0, location_weight=1.0, rng=1)
    free = memory.sample(key, num_samples=400, temperature=1.0, rng=1)
    distance = lambda result: np.linalg.norm(result.locations - 40.0, axis=1).mean()  # noqa: E731
    assert distance(near) < 0.5 * distance(free)


def test_sample_is_reproducible_and_cached_scores_follow_writes():
    memory = filled_memory(500)
    key = np.ones(8, np.float32)
    a = memory.sample(key, num_samples=50, rng=3)
    b = memory.sample(key, num_samples=50, rng=3)
    np.testing.assert_array_equal(a.locations, b.locations)
    memory.write([[0.0, 0.0]], 1.0, [np.full(8, 10.0)], labels="jackpot")  # dominates the cached key's scores
    result = memory.sample(key, num_samples=20, temperature=1.0, rng=3)
    assert result.labels == ["jackpot"] * 20 and result.similarities[0] == pytest.approx(1.0)


def test_sample_with_nothing_in_range_is_empty():
    memory = filled_memory(100)
    result = memory.sample(np.ones(8), [1e5, 1e5], 1.0, 10, match_threshold=5.0)
    assert result.locations.shape == (0, 2) and result.labels == []
    assert len(SpatialMemory(2, 8).sample(np.ones(8), num_samples=3).entry_ids) == 0


def test_a_million_samples_is_answered_and_more_is_refused():
    memory = filled_memory(50)
    assert memory.sample(np.ones(8), num_samples=MAX_SAMPLES_PER_CALL, rng=0).locations.shape == (10**6, 2)
    with pytest.raises(ValueError, match="num_samples"):
        memory.sample(np.ones(8), num_samples=MAX_SAMPLES_PER_CALL + 1)


# ---------------------------------------------------------------------------------------------------------------
# leave-one-out, prune, refine


def test_leave_one_out_matches_reading_without_the_entry():
    memory = filled_memory(120)
    loo = memory.read_one_removed(15.0)
    snap = memory.snapshot()
    for i in (0, 33, 119):
        alone = SpatialMemory(2, 8)
        keep = np.arange(120) != i
        alone.write(snap.locations[keep], snap.location_sds[keep], snap.values[keep])
        expected = alone.read(snap.locations[i : i + 1], snap.location_sds[i : i + 1], 15.0).values[0]
        np.testing.assert_allclose(loo.values[i], expected, atol=1e-5)
        assert loo.errors[i] == pytest.approx(np.linalg.norm(expected - snap.values[i]), abs=1e-4)
    assert loo.dependencies_per_entry().sum() == len(loo.dependency_rows)


def test_prune_rules_on_a_small_graph():
    errors = np.array([0.01, 0.02, 0.03, 0.5, 0.04])
    # 0 <-> 1 depend on each other; 2 depends on 3; 4 depends on nothing (isolated)
    rows, cols = np.array([0, 1, 2]), np.array([1, 0, 3])
    independent = select_prune_candidates(errors, rows, cols, 0.05, "independent")
    np.testing.assert_array_equal(independent, [True, False, True, False, False])
    seed = select_prune_candidates(errors, rows, cols, 0.05, "seed")
    np.testing.assert_array_equal(seed, [False, True, False, False, False])  # 1 depends on lower-error 0
    with pytest.raises(ValueError, match="unknown prune rule"):
        select_prune_candidates(errors, rows, cols, 0.05, "greedy")


def test_independent_rule_equals_the_sequential_greedy_choice():
    rng = np.random.default_rng(4)
    n = 300
    errors = rng.random(n) * 0.1
    rows, cols = rng.integers(0, n, 1500), rng.integers(0, n, 1500)
    keep = rows != cols
    rows, cols = rows[keep], cols[keep]
    removed = select_prune_candidates(errors, rows, cols, 0.06, "independent")
    neighbours = [set() for _ in range(n)]
    for r, c in zip(rows, cols):
        neighbours[r].add(c)
        neighbours[c].add(r)
    has_dependency = np.bincount(rows, minlength=n) > 0
    greedy = np.zeros(n, bool)
    for i in np.argsort(errors, kind="stable"):
        if errors[i] < 0.06 and has_dependency[i] and not any(greedy[j] for j in neighbours[i]):
            greedy[i] = True
    np.testing.assert_array_equal(removed, greedy)


def seed_like_memory() -> SpatialMemory:
    """The seed's prune set-up: 1,024 locations ~ N(0, 100^2) with sd 10."""
    locations = np.random.default_rng(0).normal(0.0, 100.0, (1024, 2))
    memory = SpatialMemory(2, 8)
    memory.write(locations, 10.0, smooth_field(locations))
    return memory


def test_prune_shrinks_the_memory_and_keeps_the_read():
    memory = seed_like_memory()
    grid = np.stack(np.meshgrid(np.linspace(-150, 150, 40), np.linspace(-150, 150, 40)), -1).reshape(-1, 2)
    before = memory.read(grid, 10.0, 25.0).values
    plan = memory.prune(max_error=0.05, match_threshold=25.0, max_steps=10)
    assert len(memory) == 1024 - len(plan.removed_ids) < 800
    assert plan.removed_per_step[-1] == 0 or len(plan.removed_per_step) == 10
    after = memory.read(grid, 10.0, 25.0).values
    change = np.linalg.norm(after - before, axis=1).mean()
    assert change < 0.05  # on average the read moves less than the error allowed per removal
    refined = memory.refine(steps=30, learning_rate=1e-3)
    assert refined.losses[-1] < refined.losses[0]


def test_background_prune_keeps_writes_made_meanwhile():
    memory = seed_like_memory()
    plan = plan_prune(memory.snapshot(), 0.05, 25.0, 5)
    new_ids = memory.write(np.zeros((5, 2)), 1.0, np.ones((5, 8)), labels="new")
    removed = memory.apply_prune(plan)
    ids = memory.snapshot().ids
    assert removed == len(plan.removed_ids) > 0
    assert np.isin(new_ids, ids).all() and not np.isin(plan.removed_ids, ids).any()
    refine = plan_refine(memory.snapshot(), plan.reference, steps=5)
    assert memory.apply_refine(refine) == len(memory)


# ---------------------------------------------------------------------------------------------------------------
# bad input: a clear ValueError and the memory unchanged

GOOD = dict(locations=np.zeros((3, 2)), location_sds=1.0, values=np.zeros((3, 4)))
BAD_WRITES = {
    "NaN location": dict(locations=[[0, 0], [np.nan, 1], [2, 2]]),
    "inf value": dict(values=[[0] * 4, [np.inf] * 4, [0] * 4]),
    "huge value": dict(values=np.full((3, 4), 1e300)),
    "wrong location dims": dict(locations=np.zeros((3, 3))),
    "wrong value dims": dict(values=np.zeros((3, 5))),
    "1-D locations": dict(locations=np.zeros(2)),
    "row count mismatch": dict(values=np.zeros((2, 4))),
    "zero sd": dict(location_sds=0.0),
    "negative sd": dict(location_sds=[1.0, -1.0, 1.0]),
    "NaN sd": dict(location_sds=np.nan),
    "sd shape": dict(location_sds=np.ones((3, 5))),
    "empty batch": dict(locations=np.zeros((0, 2)), values=np.zeros((0, 4))),
    "text location": dict(locations=[["a", "b"]] * 3),
    "label count": dict(labels=["a", "b"]),
    "label type": dict(labels=[1, 2, 3]),
    "inf stamp": dict(stamps=np.inf),
}


@pytest.mark.parametrize("case", sorted(BAD_WRITES))
def test_bad_write_raises_and_changes_nothing(case):
    memory = filled_memory(20, value_dim=4)
    before = memory.snapshot()
    with pytest.raises(ValueError) as error:
        memory.write(**{**GOOD, **BAD_WRITES[case]})
    assert len(str(error.value)) > 20
    assert_snapshots_equal(memory.snapshot(), before)


BAD_CALLS = {
    "read NaN query": lambda m: m.read([[np.nan, 0]], 1.0),
    "read zero sd": lambda m: m.read([[0, 0]], 0.0),
    "read wrong dims": lambda m: m.read([[0, 0, 0]], 1.0),
    "read empty": lambda m: m.read(np.zeros((0, 2)), 1.0),
    "read negative threshold": lambda m: m.read([[0, 0]], 1.0, -1.0),
    "index without threshold": lambda m: m.read([[0, 0]], 1.0, use_index=True),
    "sample key dims": lambda m: m.sample(np.ones(5)),
    "sample NaN key": lambda m: m.sample(np.full(4, np.nan)),
    "sample zero samples": lambda m: m.sample(np.ones(4), num_samples=0),
    "sample float samples": lambda m: m.sample(np.ones(4), num_samples=2.5),
    "sample location without sd": lambda m: m.sample(np.ones(4), location=[0, 0]),
    "sample threshold without location": lambda m: m.sample(np.ones(4), match_threshold=3.0),
    "sample zero temperature": lambda m: m.sample(np.ones(4), temperature=0.0),
    "sample negative location weight": lambda m: m.sample(np.ones(4), [0, 0], 1.0, location_weight=-1),
    "prune zero error": lambda m: m.prune(max_error=0.0),
    "prune bad rule": lambda m: m.prune(rule="random"),
    "prune zero steps": lambda m: m.prune(max_steps=0),
    "refine before prune": lambda m: m.refine(),
    "replace NaN": lambda m: m.replace([0], [[np.nan, 0]], 1.0, np.zeros((1, 4))),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_calls_raise_and_change_nothing(case):
    memory = filled_memory(20, value_dim=4)
    before = memory.snapshot()
    with pytest.raises(ValueError):
        BAD_CALLS[case](memory)
    assert_snapshots_equal(memory.snapshot(), before)


def test_bad_constructor_arguments():
    for args in ((0, 4), (2, -1), (2, 4, 0), (2.5, 4)):
        with pytest.raises(ValueError):
            SpatialMemory(*args)


# ---------------------------------------------------------------------------------------------------------------
# snapshots, subscribers, threads


def test_snapshot_round_trip():
    memory = filled_memory(300, max_size=250)
    copy = SpatialMemory.from_snapshot(memory.snapshot())
    assert_snapshots_equal(copy.snapshot(), memory.snapshot())
    queries = np.random.default_rng(5).normal(0, 50, (20, 2))
    np.testing.assert_allclose(copy.read(queries, 2.0).values, memory.read(queries, 2.0).values)
    assert copy.write([[0, 0]], 1.0, np.zeros((1, 8)))[0] == memory.next_id


def test_subscribers_see_every_change_in_order():
    memory = SpatialMemory(2, 2, max_size=4)
    kinds: list[str] = []
    memory.subscribe(lambda change: kinds.append(change.kind))
    memory.write(np.zeros((3, 2)), 1.0, np.zeros((3, 2)))
    memory.write(np.zeros((3, 2)), 1.0, np.zeros((3, 2)))
    memory.replace([3], [[1.0, 1.0]], 1.0, [[0.0, 0.0]])
    memory.remove([4])
    memory.clear()
    assert kinds == ["write", "evict", "write", "replace", "remove", "remove"]


def test_concurrent_writes_and_reads():
    memory = SpatialMemory(2, 8, max_size=5000)
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer():
        rng = np.random.default_rng(0)
        try:
            while not stop.is_set():
                memory.write(rng.normal(0, 50, (100, 2)), 1.0, rng.normal(size=(100, 8)))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(30):
            memory.read(np.zeros((20, 2)), 1.0, 10.0, use_index=True)
            memory.sample(np.ones(8), [0, 0], 5.0, 10, match_threshold=20.0)
    finally:
        stop.set()
        thread.join()
    assert not errors and len(memory) == min(5000, memory.next_id)
    queries = np.zeros((5, 2))
    np.testing.assert_allclose(memory.read(queries, 1.0, 10.0, use_index=True).values,
                               memory.read(queries, 1.0, 10.0, use_index=False).values, atol=1e-5)



def test_newest_gives_the_latest_locations_and_labels_without_values():
    memory = SpatialMemory(location_dim=2, value_dim=3, max_size=4)
    for k in range(6):  # wraps around the ring: the two oldest are evicted
        memory.write(np.array([[k, -k]], float), np.array([0.1]), np.ones((1, 3)), labels=[f"e{k}"])
    locations, labels = memory.newest(3)
    np.testing.assert_array_equal(locations, [[3, -3], [4, -4], [5, -5]])
    assert labels == ["e3", "e4", "e5"]
    assert memory.newest(10)[1] == ["e2", "e3", "e4", "e5"] and memory.newest(0)[1] == []
