"""A text goal and the memory's answer to it: which labels answer a query, and where the goal is (no ROS).

:func:`goal_from_answer` reads a memory query's samples: the goal is the mean of the samples whose label matches
the text query (all the query's content words appear in the label, e.g. 'red target' for 'the red target'), when
the best sample matches. The same matching decides which news makes a robot ask its memory again and, in the
evaluation, which true targets a query names, so there is one notion of "this answers the goal".
"""
from __future__ import annotations

import re

import numpy as np

from spatial_memory_ros.types import target_label

_STOP_WORDS = {"the", "a", "an", "to", "go", "find", "some", "something", "any", "please", "of"}


def query_words(text: str) -> set[str]:
    """The content words of a query or label, lower case ('the red target' -> {'red', 'target'})."""
    return {word for word in re.findall(r"[a-z0-9]+", text.lower()) if word not in _STOP_WORDS}


def label_matches(label: str, query: str) -> bool:
    """Whether a memory label answers a query: every content word of the query is in the label."""
    wanted = query_words(query)
    return bool(wanted) and wanted <= query_words(label)


def goal_from_answer(locations: np.ndarray, labels: list[str], query: str) -> tuple[float, float] | None:
    """A goal from a query's samples (best first): the mean of the matching samples, if the best one matches."""
    if not len(labels) or not label_matches(labels[0], query):
        return None
    matching = [k for k, label in enumerate(labels) if label_matches(label, query)]
    x, y = np.asarray(locations, np.float64)[matching].mean(axis=0)
    return float(x), float(y)


def targets_named(targets, query: str) -> list:
    """The targets (anything with a ``color``) that a text query names: their sighting label matches it."""
    return [target for target in targets if label_matches(target_label(target.color), query)]


def ask_memory(memory, query: str, num_samples: int = 10, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """A RobotMemory's samples for a text query, best first: ((n, 2) locations, n labels); none from an empty one."""
    if len(memory.memory) == 0:
        return np.zeros((0, 2)), []
    answer = memory.ask(query, num_samples=num_samples, seed=seed)
    return np.asarray(answer.locations, np.float64), list(answer.labels)


def goal_from_memory(memory, query: str, num_samples: int = 10, seed: int = 0) -> tuple[float, float] | None:
    """Sample a RobotMemory with a text query and read a goal with :func:`goal_from_answer`."""
    return goal_from_answer(*ask_memory(memory, query, num_samples, seed), query)
