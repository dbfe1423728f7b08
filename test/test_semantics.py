"""Embedder (packaged all-MiniLM-L6-v2, offline), GoalClassifier and text queries as search keys."""
from __future__ import annotations

import os

import numpy as np
import pytest

from spatial_memory_ros.memory.spatial_memory import SpatialMemory
from spatial_memory_ros.memory.semantics import Embedder, GoalClassifier, QueryEncoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


# ---------------------------------------------------------------------------------------------------------------
# GoalClassifier (no model needed)


def clusters(seed=0, per_goal=20, dim=16):
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:3] * 3
    x = np.concatenate([centre + rng.normal(0, 0.3, (per_goal, dim)) for centre in centres])
    labels = ["edible"] * per_goal + ["poison"] * per_goal + ["neutral"] * per_goal
    return x, labels


def test_goal_classifier_learns_separable_goals():
    x, labels = clusters()
    classifier = GoalClassifier.fit(x, labels, steps=200, seed=0)
    assert classifier.goals == ["edible", "neutral", "poison"]
    assert classifier.classify(x) == labels
    probabilities = classifier.probabilities(x)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert probabilities.min(axis=0).shape == (3,)
    edible = classifier.key("edible")
    assert (x[:20] @ edible).mean() > (x[20:] @ edible).mean()


def test_goal_classifier_is_deterministic_given_a_seed():
    x, labels = clusters()
    a = GoalClassifier.fit(x, labels, steps=50, seed=3).keys
    b = GoalClassifier.fit(x, labels, steps=50, seed=3).keys
    np.testing.assert_array_equal(a, b)


def test_goal_classifier_bad_input():
    x, labels = clusters()
    classifier = GoalClassifier.fit(x, labels, steps=10)
    with pytest.raises(ValueError, match="unknown goal 'water'.*edible"):
        classifier.key("water")
    with pytest.raises(ValueError, match="shape"):
        classifier.probabilities(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="two goals"):
        GoalClassifier.fit(x, ["edible"] * len(x))
    with pytest.raises(ValueError, match="labels"):
        GoalClassifier.fit(x, labels[:-1])
    with pytest.raises(ValueError, match="NaN"):
        GoalClassifier.fit(np.full_like(x, np.nan), labels)


# ---------------------------------------------------------------------------------------------------------------
# Embedder


def test_embeddings_are_unit_rows_and_cached(embedder):
    vectors = embedder.embed(["red target", "blue target", "red target"])
    assert vectors.shape == (3, embedder.dim) == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    np.testing.assert_array_equal(embedder.embed("red target")[0], vectors[0])


def test_related_words_are_closer(embedder):
    red, blue, wall, query = embedder.embed(["red target", "blue target", "wall", "the red target"])
    assert query @ red > query @ blue > query @ wall


@pytest.mark.parametrize("texts", [[], [""], ["   "], [3], ["ok", None]])
def test_bad_texts_raise(embedder, texts):
    with pytest.raises(ValueError):
        embedder.embed(texts)


def test_very_long_text_is_cut_not_refused(embedder):
    vector = embedder.embed("red " * 2500)  # 10,000 characters
    assert vector.shape == (1, 384) and np.isfinite(vector).all()


# ---------------------------------------------------------------------------------------------------------------
# Text queries against a memory


def test_text_query_finds_the_red_target(embedder):
    labels = ["red target", "blue target", "wall", "open floor"]
    places = {"red target": (10.0, 10.0), "blue target": (-10.0, 5.0), "wall": (0.0, -10.0), "open floor": (0, 0)}
    rng = np.random.default_rng(0)
    memory = SpatialMemory(2, 384)
    for label in labels:
        count = 3 if "target" in label else 300  # many more walls and floor than targets
        where = np.array(places[label]) + rng.normal(0, 0.3, (count, 2))
        memory.write(where, 0.2, np.repeat(embedder.embed(label), count, axis=0), labels=label)
    encoder = QueryEncoder(embedder)
    for query, expected in (("something red", "red target"), ("the blue target", "blue target")):
        result = memory.sample(encoder.search_key(query), num_samples=50, temperature=1.0, rng=1)
        share = np.mean([label == expected for label in result.labels])
        assert share > 0.8, (query, share)
    with pytest.raises(ValueError):
        encoder.search_key("")


def test_goal_names_become_classifier_keys(embedder):
    classifier = GoalClassifier.from_examples(
        embedder, {"edible": ["pear", "apple", "banana", "cherry"], "poison": ["nightshade", "manchineel"]}, steps=200
    )
    encoder = QueryEncoder(embedder, classifier)
    np.testing.assert_array_equal(encoder.search_key(" Edible "), classifier.key("edible"))
    assert classifier.classify(embedder.embed(["apple", "nightshade"])) == ["edible", "poison"]
    assert encoder.search_key("a ripe pear").shape == (384,)
