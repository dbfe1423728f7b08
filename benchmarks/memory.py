#!/usr/bin/env python3
"""Seed 004's spatial-memory numbers beside ours, and dense vs indexed performance at 10^3..10^6 entries.

Part 1 rebuilds the seed's tree world as a sensor field: the seed's 25 fruit trees (same names, fruits and
coordinates), the value at a point being the sentence embeddings of the fruits (all-MiniLM-L6-v2, 384-D) blended by
a softmax over trees of -distance^2 / (2 * 30 m^2), so the nearest trees dominate. It then repeats the seed's
experiments: exact recall on a 100x100 grid, leave-one-out statistics of 1,024 entries, prune candidates, recursive
pruning (the seed's rule and our independent rule), refinement, and drive sampling scored by a goal classifier
(edible / poison / neutral, trained on fruit and ground words as the seed's drive classifier is).

Part 2 times the same memory code, dense (the seed's algorithm: every query against every entry) and indexed (the
grid hash), in one run: a call is 1,000 reads (match threshold 5 m) plus 250 goal samples (within 50 m), entries
uniform over the tree world's 1 km x 1 km with 384-D values. Then prune throughput and write throughput at
3 robots x 10 Hz x one BEV's cells.

Peak MB is what tracemalloc sees (numpy and Python); the indexed read's weighted sum runs in torch, whose buffers
(its 1,000 x 384 float32 output, 1.5 MB) tracemalloc does not see. The JSON records the machine's load average
before and after the run, since the timings depend on it.

Prints tables and writes JSON (default benchmarks/results/memory.json; memory_quick.json with --quick).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from spatial_memory_ros.memory.pruning import RefineReference, select_prune_candidates  # noqa: E402
from spatial_memory_ros.memory.spatial_memory import SpatialMemory  # noqa: E402
from spatial_memory_ros.memory.persistence import Journal  # noqa: E402
from spatial_memory_ros.memory.semantics import Embedder, GoalClassifier  # noqa: E402

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover - the venv has tqdm
    tqdm = None

# The seed's world, printed in its notebook: (tree id, fruit, x, y).
TREES = [
    ("Winston", "pear", -363.10, -10.47), ("Kramer", "banana", 311.37, -214.82), ("Peter", "date", -241.36, 291.28),
    ("Rupert", "papaya", 166.30, -285.33), ("Julia", "elderberry", 338.36, 34.61), ("Homer", "cherry", 33.31, 290.41),
    ("Richard", "strychnine fruit", -424.96, -314.72), ("Abigail", "strychnine fruit", 252.84, -77.74),
    ("Rachel", "pear", 182.72, -13.93), ("Homer", "papaya", -23.02, 1.54),
    ("Rupert", "strychnine fruit", -126.63, -318.90), ("Ursula", "strychnine fruit", -56.49, -225.31),
    ("Kamala", "orange", 168.80, -29.35), ("Clinton", "pear", 28.28, -41.14),
    ("Kamala", "strychnine fruit", 106.22, 55.17), ("George", "nightshade", -228.01, 131.72),
    ("Florence", "mango", -360.04, 41.14), ("Wendy", "nightshade", -29.32, 101.14), ("Sam", "apple", -387.78, 49.99),
    ("Elizabeth", "manchineel", -136.21, -71.44), ("Toby", "cherry", 163.61, -25.74),
    ("Rachel", "cherry", 378.78, 131.09),
    ("Winston", "banana", -110.95, 199.56), ("Jane", "manchineel", -143.97, -338.00), ("Yogi", "apple", 187.32, 215.32),
]
POISON = ("strychnine fruit", "nightshade", "manchineel")
BACKGROUND = "bare ground"
GOAL_EXAMPLES = {
    "edible": ["pear", "banana", "date", "papaya", "elderberry", "cherry", "orange", "mango", "apple"],
    "poison": list(POISON),
    "neutral": [BACKGROUND, "grass", "rock", "sand", "dirt", "open field"],
}
SENSOR_SCALE_M = 30.0
CLASSIFIER = dict(steps=5000, l2=0.0, seed=0)  # unregularised, like the seed's: large keys, sharp drives

SEED = {  # numbers printed in seed 004
    "grid_recall_max_error": 0.0,
    "loo_error": {"min": 0.0016184506, "mean": 0.1276467144, "max": 4.7523179054, "std": 0.2841464579},
    "dependencies_per_slot": {"min": 0.0, "mean": 16.591796875, "max": 45.0, "std": 10.4407920837},
    "candidates_at_0.05": 273,
    "candidates_at_0.01": 7,
    "prune_removed_per_step": [273, 127, 75, 28, 6, 6, 0],
    "pruned_size": "509 (notebook) / 558 (SpatialMemory.prune)",
    "read_error_vs_sensor_before": 0.4647279382,
    "read_error_vs_sensor_after_prune": 0.4682459533,
    "read_change_after_prune": 0.0102876509,
    "read_change_after_refine": 0.0059420518,
    "read_error_vs_sensor_after_refine": 0.4663110971,
    "sampling_t1": {"mean": 0.9949816466, "min": 0.4727088511},
    "sampling_sqrt_d": {"mean": 0.7755414844, "min": 0.1278099120},
    "sampling_location": {"mean": 0.9999754429, "min": 0.9981056452},
    "dense_ceiling": "about 4,096 entries at a few frames per second on a good GPU",
}


def progress(iterable, description: str):
    """tqdm when available, else a plain line per step."""
    if tqdm is not None:
        return tqdm(iterable, desc=description, file=sys.stderr, leave=False)

    def plain():
        for item in iterable:
            print(f"[{description}] {item}", file=sys.stderr, flush=True)
            yield item

    return plain()


@dataclass
class TreeWorld:
    """The seed's trees as a 384-D sensor field."""

    locations: np.ndarray
    embeddings: np.ndarray  # one row per tree
    edible: np.ndarray

    def sense(self, points: np.ndarray) -> np.ndarray:
        """Sensor values at ``points`` (n, 2): fruit embeddings blended by distance to the trees."""
        out = np.empty((len(points), self.embeddings.shape[1]), np.float32)
        for start in range(0, len(points), 65536):
            chunk = points[start : start + 65536].astype(np.float64)
            distance2 = ((chunk[:, None, :] - self.locations[None]) ** 2).sum(-1)
            logits = -distance2 / (2 * SENSOR_SCALE_M**2)
            weights = np.exp(logits - logits.max(axis=1, keepdims=True))
            weights /= weights.sum(axis=1, keepdims=True)
            out[start : start + len(chunk)] = (weights @ self.embeddings).astype(np.float32)
        return out


def build_world(embedder: Embedder) -> TreeWorld:
    fruits = [fruit for _, fruit, _, _ in TREES]
    embeddings = embedder.embed(fruits).astype(np.float64)
    locations = np.array([(x, y) for _, _, x, y in TREES])
    return TreeWorld(locations, embeddings, np.array([fruit not in POISON for fruit in fruits]))


def grid(points_per_axis: int, half_width: float = 500.0) -> np.ndarray:
    axis = np.linspace(-half_width, half_width, points_per_axis)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


def stats(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {"min": float(values.min()), "mean": float(values.mean()), "max": float(values.max()),
            "std": float(values.std(ddof=1))}


# ----------------------------------------------------------------------------------------------------------------
# Part 1: the seed's experiments


def seed_experiments(world: TreeWorld, classifier: GoalClassifier, quick: bool) -> dict:
    rng = np.random.default_rng(0)
    results: dict = {}
    steps = ["recall", "leave-one-out", "prune", "refine", "sampling"]
    bar = progress(steps, "seed 004")
    plot = grid(40 if quick else 100)
    sensor_at_plot = world.sense(plot)
    for step in bar:
        if step == "recall":
            memory = SpatialMemory(2, world.embeddings.shape[1])
            memory.write(plot, 1.0, sensor_at_plot)
            read = memory.read(plot, 1.0).values
            results["grid_recall_max_error"] = float(np.linalg.norm(read - sensor_at_plot, axis=1).max())
        elif step == "leave-one-out":
            locations = rng.normal(0.0, 100.0, (1024, 2))
            memory = SpatialMemory(2, world.embeddings.shape[1])
            memory.write(locations, 10.0, world.sense(locations))
            loo = memory.read_one_removed(25.0, keep_values=False)
            results["loo_error"] = stats(loo.errors)
            results["dependencies_per_slot"] = stats(loo.dependencies_per_entry())
            for max_error in (0.05, 0.01):
                for rule in ("seed", "independent"):
                    chosen = select_prune_candidates(loo.errors, loo.dependency_rows, loo.dependency_cols, max_error,
                                                     rule)
                    results[f"candidates_at_{max_error}_{rule}"] = int(chosen.sum())
        elif step == "prune":
            before = memory.read(plot, 10.0, 25.0).values
            error_before = np.linalg.norm(before - sensor_at_plot, axis=1)
            results["read_error_vs_sensor_before"] = float(error_before.mean())
            starting = memory.snapshot()
            for rule in ("seed", "independent"):
                pruned = SpatialMemory.from_snapshot(starting)
                started = time.perf_counter()
                plan = pruned.prune(0.05, 25.0, 10, rule=rule, reference_points=4096, seed=0)
                elapsed = time.perf_counter() - started
                after = pruned.read(plot, 10.0, 25.0).values
                results[f"prune_{rule}"] = {
                    "removed_per_step": plan.removed_per_step, "size": len(pruned), "seconds": elapsed,
                    "read_error_vs_sensor": float(np.linalg.norm(after - sensor_at_plot, axis=1).mean()),
                    "read_change": float(np.linalg.norm(after - before, axis=1).mean()),
                }
                if rule == "independent":
                    refined_memory, refined_memory_reference = pruned, plan.reference
        elif step == "refine":
            # Ours regresses toward the pre-prune read at the pre-prune entries; the seed's toward the plot grid.
            grid_reference = RefineReference(plot, np.full_like(plot, 10.0), before, 25.0)
            pruned = refined_memory.snapshot()
            for name, reference in (("refine", refined_memory_reference), ("refine_toward_grid", grid_reference)):
                memory = SpatialMemory.from_snapshot(pruned)
                plan = memory.refine(steps=100, learning_rate=1e-3, reference=reference)
                after = memory.read(plot, 10.0, 25.0).values
                results[name] = {
                    "loss_first": plan.losses[0], "loss_last": plan.losses[-1],
                    "read_error_vs_sensor": float(np.linalg.norm(after - sensor_at_plot, axis=1).mean()),
                    "read_change": float(np.linalg.norm(after - before, axis=1).mean()),
                }
        else:
            results.update(sampling_experiments(world, classifier, rng))
    return results


def sampling_experiments(world: TreeWorld, classifier: GoalClassifier, rng: np.random.Generator) -> dict:
    """The seed's drive sampling: a memory of 100 points ~ N(0, 100^2) with sd 1; 250 samples per setting."""
    locations = rng.normal(0.0, 100.0, (100, 2))
    memory = SpatialMemory(2, world.embeddings.shape[1])
    memory.write(locations, 1.0, world.sense(locations))
    key = classifier.key("edible")
    edible = classifier.goals.index("edible")
    settings = {
        "sampling_t1": dict(temperature=1.0, sigma_scale=25.0),
        "sampling_sqrt_d": dict(temperature=None, sigma_scale=1.0),
        "sampling_location": dict(location=[100.0, 100.0], location_sd=25.0, temperature=1.0, location_weight=0.01,
                                  sigma_scale=1.0),
    }
    out = {"edible_key_norm": float(np.linalg.norm(key))}
    for name, kwargs in settings.items():
        samples = memory.sample(key, num_samples=250, rng=rng, **kwargs)
        score = classifier.probabilities(world.sense(samples.locations.astype(np.float64)))[:, edible]
        spread = np.linalg.norm(samples.locations - samples.locations.mean(axis=0), axis=1)
        out[name] = {"mean": float(score.mean()), "min": float(score.min()), "spread_m": float(spread.mean())}
    return out


# ----------------------------------------------------------------------------------------------------------------
# Part 2: performance


def filled_memory(world: TreeWorld, size: int, sd: float, seed: int) -> SpatialMemory:
    rng = np.random.default_rng(seed)
    memory = SpatialMemory(2, world.embeddings.shape[1], max_size=size)
    for start in range(0, size, 100_000):
        n = min(100_000, size - start)
        locations = rng.uniform(-500.0, 500.0, (n, 2))
        memory.write(locations, sd, world.sense(locations), labels="field", sources="bench", stamps=0.0)
    return memory


def timed(function, trace: bool = False):
    """(seconds, peak traced MB or None, result) of one call."""
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    result = function()
    elapsed = time.perf_counter() - started
    peak = None
    if trace:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return elapsed, peak, result


def one_call(memory, reads, robot, key, use_index, call):
    """The benchmark's unit of work: 1,000 reads (5 m) and 250 goal samples (50 m) for one robot."""
    read = memory.read(reads, 0.5, 5.0, use_index=use_index)
    samples = memory.sample(key, robot, 5.0, 250, temperature=1.0, match_threshold=50.0, rng=call,
                            use_index=use_index)
    return read, samples


def performance(world: TreeWorld, classifier: GoalClassifier, sizes: list[int], repeats: int, dense_budget: float):
    rng = np.random.default_rng(1)
    reads = rng.uniform(-500.0, 500.0, (1000, 2))
    robot = np.array([20.0, -30.0])
    base_key = classifier.key("edible")
    rows = []
    for size in progress(sizes, "dense vs indexed"):
        memory = filled_memory(world, size, 0.5, seed=size)
        stored_mb = sum(getattr(memory, name).nbytes for name in ("_locations", "_sds", "_values", "_ids", "_stamps"))
        build_s, _, _ = timed(lambda: memory.read(reads[:1], 0.5, 5.0, use_index=True))
        indexed_s = []
        for call in range(repeats):
            seconds, _, (indexed_read, indexed_samples) = timed(
                lambda: one_call(memory, reads, robot, base_key, True, call))
            indexed_s.append(seconds)
        _, indexed_peak, _ = timed(lambda: one_call(memory, reads, robot, base_key, True, 0), trace=True)
        # Dense: every read touches every entry, so time a subset of the reads and scale to 1,000.
        n_dense = int(min(1000, max(16, dense_budget / size)))
        dense_key = base_key.copy()
        dense_key[0] += 1e-3  # a key the score cache has not seen: the seed computes every score per call
        dense_read_s, dense_peak, dense_read = timed(
            lambda: memory.read(reads[:n_dense], 0.5, 5.0, use_index=False), trace=True)
        dense_sample_s, _, _ = timed(
            lambda: memory.sample(dense_key, robot, 5.0, 250, temperature=1.0, match_threshold=50.0, rng=0,
                                  use_index=False))
        dense_call_s = dense_read_s * 1000 / n_dense + dense_sample_s
        indexed_check = memory.read(reads[:n_dense], 0.5, 5.0, use_index=True)
        same_samples = np.array_equal(
            memory.sample(base_key, robot, 5.0, 250, temperature=1.0, match_threshold=50.0, rng=5,
                          use_index=False).entry_ids,
            memory.sample(base_key, robot, 5.0, 250, temperature=1.0, match_threshold=50.0, rng=5,
                          use_index=True).entry_ids)
        unbounded_first, _, _ = timed(lambda: memory.sample(base_key * 1.01, robot, 5.0, 250, temperature=1.0, rng=0))
        unbounded_cached, _, _ = timed(lambda: memory.sample(base_key * 1.01, robot, 5.0, 250, temperature=1.0, rng=1))
        neighbours = memory._synced_index(5.0).query(reads[:100], 5.0, memory._ids)[0].size / 100  # a statistic only
        indexed_call_s = float(np.median(indexed_s))
        rows.append({
            "entries": size, "stored_mb": stored_mb / 2**20,
            "dense_ms_per_call": dense_call_s * 1e3, "dense_reads_timed": n_dense,
            "dense_sample_ms": dense_sample_s * 1e3, "dense_peak_mb": dense_peak,
            "indexed_ms_per_call": indexed_call_s * 1e3, "indexed_calls_per_s": 1.0 / indexed_call_s,
            "indexed_peak_mb": indexed_peak, "index_build_ms": build_s * 1e3,
            "speedup": dense_call_s / indexed_call_s, "neighbours_per_read": neighbours,
            "max_abs_difference": float(np.abs(dense_read.values - indexed_check.values).max()),
            "same_matches": bool(np.array_equal(dense_read.matched, indexed_check.matched)),
            "same_samples": bool(same_samples),
            "unbounded_sample_ms_first": unbounded_first * 1e3, "unbounded_sample_ms_cached": unbounded_cached * 1e3,
            "samples_classified_edible": float(np.mean([goal == "edible" for goal in classifier.classify(
                world.sense(indexed_samples.locations.astype(np.float64)))])),
        })
        del memory
    return rows


def prune_throughput(world: TreeWorld, sizes: list[int]) -> list[dict]:
    """Recursive prune (independent rule, 0.05, threshold 10 m) of entries uniform over 1 km^2, sd 2 m."""
    rows = []
    for size in progress(sizes, "prune throughput"):
        memory = filled_memory(world, size, 2.0, seed=size + 7)
        loo_s, _, _ = timed(lambda: memory.read_one_removed(10.0, use_index=True, keep_values=False))
        prune_s, _, plan = timed(lambda: memory.prune(0.05, 10.0, 10, reference_points=0))
        rows.append({
            "entries": size, "leave_one_out_s": loo_s, "leave_one_out_entries_per_s": size / loo_s,
            "prune_s": prune_s, "prune_steps": len(plan.removed_per_step), "size_after": len(memory),
            "prune_entries_per_s": size / prune_s,
        })
    return rows


def write_throughput(world: TreeWorld, size: int, bev_cells: list[int], batches: int) -> list[dict]:
    """Writes of one BEV's cells into a full memory (each write evicts), with the index kept in sync by one
    read per three writes (3 robots writing, one node reading at the same rate), with and without a journal."""
    rows = []
    memory = filled_memory(world, size, 0.5, seed=3)
    rng = np.random.default_rng(4)
    for cells in progress(bev_cells, "write throughput"):
        locations = rng.uniform(-500.0, 500.0, (cells, 2))
        values = world.sense(locations)
        for journaled in (False, True):
            with tempfile.TemporaryDirectory() as folder:
                journal = Journal(Path(folder) / "bench.journal", 2, values.shape[1]) if journaled else None
                if journal:
                    memory.subscribe(journal.record)
                memory.read(locations[:10], 0.5, 5.0, use_index=True)
                started = time.perf_counter()
                for batch in range(batches):
                    memory.write(locations, 0.5, values, labels="cell", sources=f"robot{batch % 3}", stamps=0.0)
                    if batch % 3 == 2:
                        memory.read(locations[:10], 0.5, 5.0, use_index=True)
                elapsed = time.perf_counter() - started
                if journal:
                    memory.unsubscribe(journal.record)
                    journal.close()
            rate = cells * batches / elapsed
            required = 3 * 10 * cells
            rows.append({"entries": size, "bev_cells": cells, "journal": journaled, "entries_per_s": rate,
                         "required_entries_per_s": required, "headroom": rate / required})
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Report


def fmt(value, digits=4) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def triple(values: dict, digits: int = 4) -> str:
    return "/".join(fmt(values[key], digits) for key in ("min", "mean", "max"))


def with_rise(after: float, before: float) -> str:
    return f"{fmt(after)} (+{100 * (after / before - 1):.1f}%)"


def print_seed_table(ours: dict) -> None:
    s, ind, sd = SEED, ours["prune_independent"], ours["prune_seed"]
    before = ours["read_error_vs_sensor_before"]
    rows = [
        ("100x100 grid recall, max error", fmt(s["grid_recall_max_error"], 6), fmt(ours["grid_recall_max_error"], 6)),
        ("leave-one-out error min/mean/max", triple(s["loo_error"]), triple(ours["loo_error"])),
        ("dependencies per slot min/mean/max", triple(s["dependencies_per_slot"], 1),
         triple(ours["dependencies_per_slot"], 1)),
        ("prune candidates at 0.05 (seed rule | independent)", fmt(s["candidates_at_0.05"]),
         f"{ours['candidates_at_0.05_seed']} | {ours['candidates_at_0.05_independent']}"),
        ("prune candidates at 0.01 (seed rule | independent)", fmt(s["candidates_at_0.01"]),
         f"{ours['candidates_at_0.01_seed']} | {ours['candidates_at_0.01_independent']}"),
        ("recursive prune, seed rule: removed per step", str(s["prune_removed_per_step"]), str(sd["removed_per_step"])),
        ("recursive prune, independent rule: removed per step", "-", str(ind["removed_per_step"])),
        ("size after prune 1,024 -> (seed rule | independent)", s["pruned_size"], f"{sd['size']} | {ind['size']}"),
        ("mean read error vs sensor, before prune", fmt(s["read_error_vs_sensor_before"]), fmt(before)),
        ("  after prune (seed rule | independent)",
         with_rise(s["read_error_vs_sensor_after_prune"], s["read_error_vs_sensor_before"]),
         f"{with_rise(sd['read_error_vs_sensor'], before)} | {with_rise(ind['read_error_vs_sensor'], before)}"),
        ("  mean read change vs before prune", fmt(s["read_change_after_prune"]),
         f"{fmt(sd['read_change'])} | {fmt(ind['read_change'])}"),
        ("refine (100 Adam steps) toward the grid: read change", fmt(s["read_change_after_refine"]),
         fmt(ours["refine_toward_grid"]["read_change"])),
        ("  mean read error vs sensor", fmt(s["read_error_vs_sensor_after_refine"]),
         fmt(ours["refine_toward_grid"]["read_error_vs_sensor"])),
        ("refine toward the entries (our default): read change", "-", fmt(ours["refine"]["read_change"])),
        ("  mean read error vs sensor", "-", fmt(ours["refine"]["read_error_vs_sensor"])),
    ]
    for name, label in (("sampling_t1", "T=1, sigma x25"), ("sampling_sqrt_d", "T=sqrt(d)"),
                        ("sampling_location", "T=1 + location bias")):
        mean_min = lambda d: f"{d['mean']:.5f}/{d['min']:.3f}"  # noqa: E731
        rows.append((f"'edible' of 250 samples, {label}: mean/min", mean_min(s[name]), mean_min(ours[name])))
    width = max(len(row[0]) for row in rows)
    print("\nSeed 004 beside ours (tree world; seed: bge-large 1024-D, ours: all-MiniLM-L6-v2 384-D)")
    print(f"{'quantity':<{width}}  {'seed 004':<28}  ours")
    for name, seed_value, our_value in rows:
        print(f"{name:<{width}}  {seed_value:<28}  {our_value}")


def print_performance_tables(performance_rows, prune_rows, write_rows) -> None:
    print("\nDense (seed algorithm) vs indexed, one call = 1,000 reads (5 m) + 250 goal samples (50 m), 384-D values")
    print(f"{'entries':>9} {'dense ms':>10} {'indexed ms':>10} {'speed-up':>9} {'calls/s':>8} {'dense MB':>9} "
          f"{'index MB':>9} {'stored MB':>9} {'nbrs/read':>9} {'max|diff|':>9} {'unbounded ms':>13}")
    for row in performance_rows:
        print(f"{row['entries']:>9,} {row['dense_ms_per_call']:>10.1f} {row['indexed_ms_per_call']:>10.1f} "
              f"{row['speedup']:>8.0f}x {row['indexed_calls_per_s']:>8.1f} {row['dense_peak_mb']:>9.1f} "
              f"{row['indexed_peak_mb']:>9.1f} {row['stored_mb']:>9.0f} {row['neighbours_per_read']:>9.1f} "
              f"{row['max_abs_difference']:>9.1e} "
              f"{row['unbounded_sample_ms_first']:>6.0f}/{row['unbounded_sample_ms_cached']:<6.1f}")
    print("  dense ms scale the timed reads (dense_reads_timed in the JSON) to 1,000; unbounded = exact sampling "
          "over all entries, first call / with the key's scores cached")
    print("\nPrune (independent rule, max error 0.05, threshold 10 m, sd 2 m)")
    for row in prune_rows:
        print(f"  {row['entries']:>9,} entries: leave-one-out {row['leave_one_out_entries_per_s']:>9,.0f} entries/s; "
              f"recursive prune {row['prune_s']:.1f} s ({row['prune_entries_per_s']:,.0f} entries/s), "
              f"{row['prune_steps']} steps, {row['entries']:,} -> {row['size_after']:,}")
    print("\nWrites into a full memory (each write evicts), index kept in sync")
    for row in write_rows:
        journal = "on " if row["journal"] else "off"
        print(f"  {row['entries']:>9,} entries, {row['bev_cells']:>5} cells/BEV, journal {journal}: "
              f"{row['entries_per_s']:>10,.0f} entries/s = {row['headroom']:.1f}x the "
              f"{row['required_entries_per_s']:,} needed by 3 robots at 10 Hz")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small version (seconds): sizes 1e3 and 1e4")
    parser.add_argument("--sizes", type=float, nargs="+", help="memory sizes to time (default 1e3 1e4 1e5 1e6)")
    parser.add_argument("--repeats", type=int, default=5, help="indexed calls timed per size (median reported)")
    parser.add_argument("--out", type=Path, help="JSON output (default benchmarks/results/memory.json, or "
                                                  "memory_quick.json with --quick)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads for embeddings, refine and the indexed read's weighted sum")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    sizes = [int(size) for size in (args.sizes or ([1e3, 1e4] if args.quick else [1e3, 1e4, 1e5, 1e6]))]
    out = args.out or REPO / "benchmarks" / "results" / ("memory_quick.json" if args.quick else "memory.json")
    started = time.perf_counter()
    load_before = os.getloadavg()
    embedder = Embedder()
    world = build_world(embedder)
    classifier = GoalClassifier.from_examples(embedder, GOAL_EXAMPLES, **CLASSIFIER)
    seed_results = seed_experiments(world, classifier, args.quick)
    print_seed_table(seed_results)
    performance_rows = performance(world, classifier, sizes, 3 if args.quick else args.repeats,
                                   dense_budget=2e6 if args.quick else 2e7)
    prune_rows = prune_throughput(world, [1000, 10_000] if args.quick else [10_000, 100_000])
    write_rows = write_throughput(world, 10_000 if args.quick else max(sizes), [300, 4096], 30 if args.quick else 90)
    print_performance_tables(performance_rows, prune_rows, write_rows)
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    print(f"\n{'quick ' if args.quick else ''}run took {elapsed:.0f} s; load average (1/5/15 min) "
          f"{'/'.join(f'{x:.1f}' for x in load_before)} before, {'/'.join(f'{x:.1f}' for x in load_after)} after; "
          f"JSON: {out}")
    results = {
        "seed": SEED, "ours": seed_results, "performance": performance_rows, "prune": prune_rows,
        "writes": write_rows, "quick": args.quick, "seconds": elapsed,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "torch_threads": args.threads,
                    "numpy": np.__version__, "load_average_before": load_before, "load_average_after": load_after},
        "settings": {"sensor_scale_m": SENSOR_SCALE_M, "classifier": CLASSIFIER,
                     "read_threshold_m": 5.0, "sample_threshold_m": 50.0, "world": "uniform in [-500, 500]^2"},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
