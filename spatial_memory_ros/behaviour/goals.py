"""A text goal and the memory's answer to it: which labels answer a query, and where the goal is (no ROS).

:func:`goal_from_answer` reads a memory query's samples: the goal is the centre of the densest cluster of the
samples whose label matches the text query (all the query's content words appear in the label, e.g. 'red target'
for 'the red target'), when the best sample matches; samples at places the robot already went to and found empty
are left out. (The mean of all matching samples put goals between two sightings, in a wall: a phantom target.) The same matching decides which news makes a robot ask its memory again and, in the
evaluation, which true targets a query names, so there is one notion of "this answers the goal".
:func:`sighting_in_view` reads the current BEV the same way: the densest cluster of the query's object cells, put
on the map from the pose (the robot's final approach by sight).
"""
from __future__ import annotations

import math
import re
from typing import Iterable, NamedTuple, Sequence

import numpy as np

from spatial_memory_ros.types import BevGrid, Pose2D, target_label

_STOP_WORDS = {"the", "a", "an", "to", "go", "find", "some", "something", "any", "please", "of"}


def query_words(text: str) -> set[str]:
    """The content words of a query or label, lower case ('the red target' -> {'red', 'target'})."""
    return {word for word in re.findall(r"[a-z0-9]+", text.lower()) if word not in _STOP_WORDS}


def label_matches(label: str, query: str) -> bool:
    """Whether a memory label answers a query: every content word of the query is in the label."""
    wanted = query_words(query)
    return bool(wanted) and wanted <= query_words(label)


CLUSTER_RADIUS = 1.0   # m: samples this close to each other count as one sighting
NOT_HERE_RADIUS = 0.75  # m: a place found empty rules out the samples this close to it (a target within
# about 0.6 m of where the robot stood would have been reached, so a wider radius could rule out one it just missed)
WRONG_OBJECT_RADIUS = 1.5  # m: what a place found empty twice rules out (see found_empty)


class EmptyPlace(NamedTuple):
    """A place found without the query's target: the memory's samples and the view's sightings within ``radius``
    of (x, y) are left out."""

    x: float
    y: float
    radius: float = NOT_HERE_RADIUS


def empty_places(places: Iterable[Sequence[float]]) -> list[EmptyPlace]:
    """``places`` as EmptyPlaces: (x, y) pairs take NOT_HERE_RADIUS, (x, y, radius) triples keep theirs."""
    return [EmptyPlace(*(float(value) for value in place)) for place in places]


def found_empty(place: tuple[float, float], earlier: Sequence[EmptyPlace]) -> EmptyPlace:
    """The EmptyPlace for arriving at ``place`` without the target, given the places ``earlier`` found empty.

    Once, it rules out only the place itself: the robot's pose may have been off, or a sighting short. A second
    arrival without the target within WRONG_OBJECT_RADIUS of an earlier one is an object that looks like the
    target but is not (a salmon target seen as red: the memory's red entries and the view's red sightings spread
    around it, and the robot went back to it all episode in a Memory-Maze team trace): it rules out
    WRONG_OBJECT_RADIUS around the mean of those places."""
    x, y = float(place[0]), float(place[1])
    near = [p for p in earlier if math.hypot(p.x - x, p.y - y) <= WRONG_OBJECT_RADIUS]
    if not near:
        return EmptyPlace(x, y)
    return EmptyPlace(float(np.mean([p.x for p in near] + [x])), float(np.mean([p.y for p in near] + [y])),
                      WRONG_OBJECT_RADIUS)


def still_empty(places: Sequence[EmptyPlace], reached_at: tuple[float, float], reach: float) -> list[EmptyPlace]:
    """The places still empty once the target was reached with the robot at ``reached_at``: a place whose ruled-out
    circle comes within ``reach`` (how far from the robot the touched target can be, pose error included) of it
    may have held the target all along, and is forgotten.

    Why: a goal the memory puts 1 m off the target, and a turn there that does not see it, make a place "empty"
    next to the target; a second such visit rules out WRONG_OBJECT_RADIUS around both (:func:`found_empty`), and
    the target with it. In a 15x15 Memory-Maze trace (seed 3,000,004) salmon was reached four times after its
    first false arrival, then the second one ruled it out for the last 900 steps."""
    x, y = float(reached_at[0]), float(reached_at[1])
    return [p for p in places if math.hypot(p.x - x, p.y - y) > p.radius + reach]


def goal_from_answer(locations: np.ndarray, labels: list[str], query: str,
                     not_here: Sequence[Sequence[float]] = ()) -> tuple[float, float] | None:
    """A goal from a query's samples (best first): the centre of the densest cluster of matching samples, if the
    best sample not ruled out by ``not_here`` (places already visited and found empty: EmptyPlaces or (x, y)
    pairs) matches."""
    points = np.asarray(locations, np.float64).reshape(-1, 2)
    places = empty_places(not_here)
    keep = [k for k in range(len(labels)) if not _near_any(points[k], places)]
    if not keep or not label_matches(labels[keep[0]], query):
        return None
    matching = points[[k for k in keep if label_matches(labels[k], query)]]
    x, y = matching[_densest_cluster(matching)].mean(axis=0)
    return float(x), float(y)


def _densest_cluster(points: np.ndarray) -> np.ndarray:
    """Mask of the points within ``CLUSTER_RADIUS`` of the point with the most such neighbours (ties: the first)."""
    close = np.linalg.norm(points[:, None, :] - points[None, :, :], axis=2) <= CLUSTER_RADIUS
    return close[int(np.argmax(close.sum(axis=1)))]


def _near_any(point: np.ndarray, places: Sequence[EmptyPlace]) -> bool:
    return any(math.hypot(point[0] - place.x, point[1] - place.y) <= place.radius for place in places)


def sighting_in_view(bev: BevGrid, pose: Pose2D, query: str, max_range: float, min_cells: int = 3,
                     not_here: Sequence[Sequence[float]] = ()) -> tuple[float, float] | None:
    """Where the current view shows the query's object: the map-frame centre of the BEV cells whose class answers
    ``query``, when there are at least ``min_cells`` of them, their centre lies within ``max_range`` of the robot and
    not at a place already found empty; else None.

    The view measures the object relative to the robot, so this point is as good as the view even when the pose
    estimate has drifted (a goal from the memory carries the drift of every pose it was written from)."""
    wanted = [k + 1 for k, name in enumerate(bev.class_names) if label_matches(target_label(name), query)]
    if not wanted or max_range <= 0:
        return None
    iy, ix = np.nonzero(np.isin(bev.object_class, wanted))
    if len(ix) < min_cells:
        return None
    cells = np.column_stack([bev.origin_x + (ix + 0.5) * bev.resolution, bev.origin_y + (iy + 0.5) * bev.resolution])
    densest = _densest_cluster(cells)  # one object: two of a kind in view are not averaged
    if densest.sum() < min_cells:
        return None
    forward, left = cells[densest].mean(axis=0)
    if math.hypot(forward, left) > max_range:
        return None
    cos, sin = math.cos(pose.theta), math.sin(pose.theta)
    point = (float(pose.x + cos * forward - sin * left), float(pose.y + sin * forward + cos * left))
    return None if _near_any(np.asarray(point), empty_places(not_here)) else point


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
