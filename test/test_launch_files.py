"""The launch files cannot run here (launch and launch_ros are not published as wheels), so check what can be
checked without them: they compile, and every graph.py function they call exists and accepts the keywords
they pass. The graph they build is exercised by the demo tests."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from spatial_memory_ros import graph

LAUNCH = Path(__file__).resolve().parent.parent / "launch"


@pytest.mark.parametrize("launch_file", sorted(LAUNCH.glob("*.launch.py")), ids=lambda p: p.name)
def test_launch_file_calls_graph_functions_that_exist(launch_file):
    tree = ast.parse(launch_file.read_text(), filename=str(launch_file))
    compile(tree, str(launch_file), "exec")
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "spatial_memory_ros.graph" for alias in node.names]
    assert imported, f"{launch_file.name} does not build its nodes from spatial_memory_ros.graph"
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Name) and node.func.id in imported]
    assert calls
    for call in calls:
        parameters = inspect.signature(getattr(graph, call.func.id)).parameters
        for keyword in call.keywords:
            assert keyword.arg in parameters, f"{launch_file.name}: {call.func.id}() has no '{keyword.arg}'"
    assert "generate_launch_description" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
