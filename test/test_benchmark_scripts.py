"""The benchmark scripts run as ``python benchmarks/NAME.py``, which puts benchmarks/ first on sys.path: a script
named like an installed module (benchmarks/memory_maze.py once did) would be imported in its place by every
benchmark that uses it, so none may share a name with one."""
from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_no_benchmark_script_shadows_an_installed_module():
    search = [entry for entry in sys.path
              if Path(entry or ".").resolve() not in (REPO, REPO / "benchmarks", REPO / "test")]
    scripts = sorted(path.stem for path in (REPO / "benchmarks").glob("*.py"))
    assert scripts
    shadowing = [name for name in scripts
                 if name in sys.builtin_module_names or importlib.machinery.PathFinder.find_spec(name, search)]
    assert not shadowing, f"rename these benchmarks/ scripts: they shadow installed modules: {shadowing}"
