"""Paired score comparisons on Memory-Maze: a candidate (another checkpoint or robot setting) against the shipped
robot, seed by seed, per size and pooled over sizes, with the rule that decides whether the candidate ships.

Episodes are deterministic per seed, so the same seed run twice differs only by what changed; pairing by seed
removes the maze-to-maze spread that dominates each size's own interval. Sizes have different scales (the oracle
scores 34.8 on 9x9 and 87.7 on 15x15), so the pooled figure is each difference as a share of its size's oracle.

The rule (:func:`decide`), set before the runs it judges: a candidate **ships** when the pooled share's 95%
interval lies above zero and no size's interval lies below zero; it is **worse** when the pooled interval lies
below zero; otherwise it stays a **candidate** (more seeds or a better version decide).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np

Row = Mapping[str, object]


@dataclass(frozen=True)
class Pair:
    """One seed's total reward with the candidate and with the baseline."""

    size: int
    seed: int
    candidate: float
    baseline: float

    @property
    def difference(self) -> float:
        return self.candidate - self.baseline


def full_episodes(rows: Iterable[Row], episode_steps: Mapping[int, int],
                  keep: Callable[[Row], bool] = lambda row: True) -> dict[tuple[int, int], float]:
    """Total reward by (size, seed) of the memory-on, full-length episodes among ``rows`` that ``keep`` accepts."""
    return {(int(r["size"]), int(r["seed"])): float(r["total_reward"]) for r in rows
            if r["variant"] == "memory" and r["steps"] == episode_steps[int(r["size"])] and keep(r)}


def pair_up(candidate: Mapping[tuple[int, int], float], baseline: Mapping[tuple[int, int], float]) -> list[Pair]:
    """The seeds both sides ran, as pairs, by size then seed."""
    return [Pair(size, seed, candidate[size, seed], baseline[size, seed])
            for size, seed in sorted(set(candidate) & set(baseline))]


def mean_interval(values: Iterable[float]) -> tuple[float, float, float]:
    """Mean and its 95% t interval (the mean twice for fewer than two values)."""
    from scipy import stats

    data = np.asarray(list(values), np.float64)
    if len(data) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(data.mean())
    if len(data) < 2 or not data.std(ddof=1) > 0:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(data) - 1) * data.std(ddof=1) / np.sqrt(len(data)))
    return mean, mean - half, mean + half


def signed_rank_p(differences: Iterable[float]) -> float:
    """Two-sided Wilcoxon signed-rank p of the differences (zeros dropped); 1.0 when none is non-zero."""
    from scipy import stats

    data = [d for d in differences if d != 0]
    if not data:
        return 1.0
    return float(stats.wilcoxon(data).pvalue)


def summarise_pairs(pairs: list[Pair], oracle: Mapping[int, float]) -> dict:
    """Per size: pairs, both means, the mean difference with its interval, seeds better / worse; pooled: the mean
    difference as a share of each size's ``oracle`` with its interval and signed-rank p; and :func:`decide`'s word."""
    sizes = []
    for size in sorted({p.size for p in pairs}):
        mine = [p for p in pairs if p.size == size]
        mean, low, high = mean_interval(p.difference for p in mine)
        sizes.append({"size": size, "pairs": len(mine), "seeds": [p.seed for p in mine],
                      "candidate_mean": float(np.mean([p.candidate for p in mine])),
                      "baseline_mean": float(np.mean([p.baseline for p in mine])),
                      "mean_difference": mean, "ci95": [low, high],
                      "better": sum(p.difference > 0 for p in mine), "worse": sum(p.difference < 0 for p in mine)})
    shares = [p.difference / oracle[p.size] for p in pairs]
    mean, low, high = mean_interval(shares)
    pooled = {"pairs": len(pairs), "mean_share_of_oracle": mean, "ci95": [low, high],
              "signed_rank_p": signed_rank_p(shares)}
    return {"sizes": sizes, "pooled": pooled, "decision": decide(sizes, pooled)}


def decide(sizes: list[dict], pooled: dict) -> str:
    """'ships', 'worse' or 'candidate' by the module's rule (pooled interval above / below zero, no size below)."""
    low, high = pooled["ci95"]
    if not pooled["pairs"] or not np.isfinite(low):
        return "candidate"
    if high < 0:
        return "worse"
    if low > 0 and all(row["ci95"][1] >= 0 for row in sizes):
        return "ships"
    return "candidate"
