"""The values several nodes must agree on come from one place (shared_parameters.py), the YAML defaults agree with
it, and a graph whose nodes disagree is refused with a message that names what differs."""
from __future__ import annotations

import dataclasses

import pytest

from spatial_memory_ros.graph import config_dir, sim_team_graph
from spatial_memory_ros.shared_parameters import GraphMismatch, SharedParameters, check_graph, effective_parameters


def _with(graph, executable: str, namespace: str, **parameters):
    """The graph with one node's parameters overridden (as a user's YAML or launch argument would)."""
    return [dataclasses.replace(spec, parameters={**spec.parameters, **parameters})
            if spec.executable == executable and spec.namespace in (namespace, "") else spec for spec in graph]


def test_yaml_defaults_are_the_shared_defaults():
    shared = SharedParameters()
    for executable in ("sim_world", "localizer", "spatial_memory", "team_comm", "explorer"):
        spec = next(s for s in sim_team_graph(3) if s.executable == executable)
        yaml_values = effective_parameters(dataclasses.replace(spec, parameters={}), config_dir())
        for key, value in shared.for_node(executable).items():
            assert yaml_values[key] == pytest.approx(value) if not isinstance(value, list) else \
                list(yaml_values[key]) == value, (executable, key)


def test_the_sim_team_graph_agrees_and_every_node_gets_the_maze_extent():
    graph = sim_team_graph(3, maze_size=11)
    check_graph(graph, config_dir())
    memories = [s for s in graph if s.executable in ("spatial_memory", "team_comm")]
    assert len(memories) == 6 and all(s.parameters["map_width_m"] == 11.0 for s in memories)
    assert all(s.parameters["team"] == ["robot1", "robot2", "robot3"] for s in graph if s.executable == "team_comm")


@pytest.mark.parametrize("executable, parameters, named", [
    ("explorer", {"control_period": 0.2}, "control_period=0.2"),
    ("team_comm", {"step_period": 0.05}, "step_period=0.05"),
    ("localizer", {"linear_noise": 0.1}, "linear_noise=0.1"),
    ("localizer", {"map_lag": 0.5}, "map_lag=0.5"),
    ("spatial_memory", {"map_width_m": 20.0}, "map_* "),
    ("team_comm", {"team": ["robot2", "robot3"]}, "its team is"),
])
def test_a_graph_whose_nodes_disagree_is_refused_naming_the_value(executable, parameters, named):
    graph = _with(sim_team_graph(3), executable, "/robot1", **parameters)
    with pytest.raises(GraphMismatch, match="disagree") as error:
        check_graph(graph, config_dir())
    assert named in str(error.value) and "/robot1" in str(error.value)


def test_shared_parameters_refuse_impossible_values():
    with pytest.raises(ValueError, match="map_lag"):
        SharedParameters(map_period=2.0, map_lag=2.0)
    with pytest.raises(ValueError, match="distinct"):
        SharedParameters(team=("robot1", "robot1"))
    with pytest.raises(ValueError, match="step_period"):
        SharedParameters(step_period=0.0)
    assert SharedParameters(map_lag=0.0).for_node("localizer")["map_lag"] == 0.0  # a fixed prior map
