"""The parameters that several nodes must agree on, derived in one place, and the check that a graph's nodes do.

A robot's nodes each declare their own parameters, but some describe one fact of the run and are only right
together: the control step (the sim's ``rate_hz``, the explorer's ``control_period``, team_comm's
``step_period``), the odometry noise the localizer assumes (the sim's ``odom_*_noise``), the map the memory
builds and the team link encodes (``map_*`` in spatial_memory and team_comm), how late the localizer reads that
map (``map_lag`` beyond the memory's ``map_period``), and the team. :class:`SharedParameters` holds each once and
gives every node its share (:meth:`SharedParameters.for_node`); graph.py builds every graph from it, and
:func:`check_graph` refuses a graph (YAML defaults plus overrides, as the nodes will see them) whose nodes
disagree, saying which values differ and where to set them. Needs neither rclpy nor launch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

MAP_KEYS = ("map_resolution", "map_width_m", "map_height_m", "map_origin_x", "map_origin_y")
MAP_LAG_MARGIN = 0.1  # the localizer must ask for a map the memory has published already


class GraphMismatch(ValueError):
    """Nodes of one graph disagree on a value they must share."""


@dataclass(frozen=True)
class SharedParameters:
    """One run's cross-node values (SI units). The defaults are the package's YAML defaults (a real robot starting
    near (0, 0) of a 20 x 20 m map, stepping at 10 Hz); :meth:`for_maze` fits the map to a simulated maze."""

    step_period: float = 0.1
    odom_linear_noise: float = 0.05
    odom_angular_noise_deg: float = 2.0
    map_resolution: float = 0.25
    map_width_m: float = 20.0
    map_height_m: float = 20.0
    map_origin_x: float = -10.0
    map_origin_y: float = -10.0
    map_period: float = 1.0
    map_lag: float = 2.0
    team: tuple[str, ...] = ("robot1", "robot2", "robot3")

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_period) and self.step_period > 0):
            raise ValueError(f"step_period must be > 0 s, got {self.step_period}")
        if self.map_lag and self.map_lag < self.map_period + MAP_LAG_MARGIN:
            raise ValueError(f"map_lag {self.map_lag} s must exceed map_period {self.map_period} s by "
                             f"{MAP_LAG_MARGIN} s (or be 0 for a fixed prior map)")
        if len(set(self.team)) != len(self.team) or not self.team:
            raise ValueError(f"team must list distinct robot ids, got {list(self.team)}")

    @classmethod
    def for_maze(cls, maze_size: int, team: list[str] | tuple[str, ...], cell_size: float = 1.0,
                 **values: Any) -> SharedParameters:
        """The values of a simulated team in a ``maze_size`` maze of ``cell_size`` metre cells (map from (0, 0))."""
        side = float(maze_size * cell_size)
        return cls(map_width_m=side, map_height_m=side, map_origin_x=0.0, map_origin_y=0.0, team=tuple(team),
                   **values)

    def map_extent(self) -> dict[str, float]:
        """The map_* parameters that spatial_memory and team_comm share."""
        return {key: float(getattr(self, key)) for key in MAP_KEYS}

    def for_node(self, executable: str) -> dict[str, Any]:
        """The shared parameters of one node executable (empty for a node that shares none)."""
        if executable == "sim_world":
            return {"rate_hz": 1.0 / self.step_period, "odom_linear_noise": self.odom_linear_noise,
                    "odom_angular_noise_deg": self.odom_angular_noise_deg}
        if executable == "localizer":
            return {"linear_noise": self.odom_linear_noise, "angular_noise_deg": self.odom_angular_noise_deg,
                    "map_lag": self.map_lag}
        if executable == "spatial_memory":
            return {**self.map_extent(), "map_period": self.map_period}
        if executable == "team_comm":
            return {**self.map_extent(), "step_period": self.step_period, "team": list(self.team)}
        if executable == "explorer":
            return {"control_period": self.step_period}
        return {}

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for a run's summary)."""
        return {**asdict(self), "team": list(self.team)}


def effective_parameters(spec, config: Path) -> dict[str, Any]:
    """What a node of the graph will see: its YAML file's parameters, then the spec's overrides."""
    values: dict[str, Any] = {}
    if spec.params_file:
        data = yaml.safe_load((config / spec.params_file).read_text()) or {}
        for section in data.values():
            values.update((section or {}).get("ros__parameters", {}))
    values.update(spec.parameters)
    return values


def check_graph(graph: list, config: Path) -> None:
    """Raise GraphMismatch naming every shared value on which the graph's nodes disagree."""
    problems = disagreements(graph, config)
    if problems:
        raise GraphMismatch("the graph's nodes disagree on shared values (set them through graph.py's "
                            "SharedParameters, not per node):\n  " + "\n  ".join(problems))


def disagreements(graph: list, config: Path) -> list[str]:
    """Each shared value on which the graph's nodes disagree, as a line that names the nodes and values."""
    params = {spec.fully_qualified_name: (spec.executable, effective_parameters(spec, config)) for spec in graph}
    sims = [values for executable, values in params.values() if executable == "sim_world"]
    problems = []
    for sim in sims:
        problems += _against_sim(params, sim)
    problems += _same_map(params)
    problems += _map_lag(params)
    problems += _teams(params)
    return problems


def _against_sim(params: dict, sim: dict[str, Any]) -> list[str]:
    step = 1.0 / float(sim["rate_hz"])
    wanted = {"explorer": {"control_period": step}, "team_comm": {"step_period": step},
              "localizer": {"linear_noise": sim["odom_linear_noise"],
                            "angular_noise_deg": sim["odom_angular_noise_deg"]}}
    problems = []
    for name, (executable, values) in params.items():
        for key, value in wanted.get(executable, {}).items():
            if key in values and not math.isclose(float(values[key]), float(value), rel_tol=1e-9):
                problems.append(f"{name} {key}={values[key]} but the simulator implies {value:g}")
    return problems


def _same_map(params: dict) -> list[str]:
    extents = {name: tuple(float(values[key]) for key in MAP_KEYS) for name, (executable, values) in params.items()
               if executable in ("spatial_memory", "team_comm") and all(key in values for key in MAP_KEYS)}
    if len(set(extents.values())) <= 1:
        return []
    return ["map_* (resolution, width, height, origin x, y) differ: " +
            "; ".join(f"{name} {extent}" for name, extent in sorted(extents.items()))]


def _map_lag(params: dict) -> list[str]:
    periods = {_namespace(name): float(values["map_period"]) for name, (executable, values) in params.items()
               if executable == "spatial_memory" and "map_period" in values}
    problems = []
    for name, (executable, values) in params.items():
        period = periods.get(_namespace(name))
        lag = float(values.get("map_lag", 0.0)) if executable == "localizer" else 0.0
        if period is not None and lag and lag < period + MAP_LAG_MARGIN:
            problems.append(f"{name} map_lag={lag:g} s must exceed its memory's map_period {period:g} s by "
                            f"{MAP_LAG_MARGIN} s")
    return problems


def _teams(params: dict) -> list[str]:
    problems = []
    teams = {}
    for name, (executable, values) in params.items():
        if executable != "team_comm":
            continue
        team = tuple(values.get("team", ()))
        teams[name] = team
        robot = values.get("robot_id") or _namespace(name).strip("/")
        if robot not in team:
            problems.append(f"{name} is robot '{robot}' but its team is {list(team)}: set the team to include it")
    if len(set(teams.values())) > 1:
        problems.append("team lists differ: " + "; ".join(f"{n} {list(t)}" for n, t in sorted(teams.items())))
    return problems


def _namespace(fully_qualified_name: str) -> str:
    return fully_qualified_name.rsplit("/", 1)[0] or "/"
