"""Packaging metadata: package.xml declares what the code imports (as rosdep keys where rosdep has them), and
setup.py (pip users without ROS) installs no node executables, which would crash without the generated messages."""
from __future__ import annotations

import ast
import xml.etree.ElementTree as ElementTree
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
# Third-party imports of the package -> the package.xml dependency (rosdep key) that provides them.
ROSDEP_KEYS = {"rclpy": "rclpy", "rcl_interfaces": "rcl_interfaces", "ament_index_python": "ament_index_python",
               "std_msgs": "std_msgs", "geometry_msgs": "geometry_msgs", "nav_msgs": "nav_msgs",
               "sensor_msgs": "sensor_msgs", "visualization_msgs": "visualization_msgs",
               "rosgraph_msgs": "rosgraph_msgs", "std_srvs": "std_srvs", "tf2_msgs": "tf2_msgs",
               "numpy": "python3-numpy", "scipy": "python3-scipy", "cv2": "python3-opencv", "yaml": "python3-yaml",
               "tqdm": "python3-tqdm", "matplotlib": "python3-matplotlib"}
PIP_ONLY = ("torch", "sentence-transformers", "rosbags")  # no rosdep key: package.xml names them for pip


def _dependencies() -> set[str]:
    root = ElementTree.parse(REPO / "package.xml").getroot()
    return {element.text for element in root if element.tag.endswith("depend")}


def _imported_top_level_modules() -> set[str]:
    modules = set()
    for path in (REPO / "spatial_memory_ros").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules


def test_package_xml_declares_every_imported_ros_and_python_dependency():
    declared = _dependencies()
    for module in sorted(_imported_top_level_modules() & set(ROSDEP_KEYS)):
        assert ROSDEP_KEYS[module] in declared, f"package.xml lacks {ROSDEP_KEYS[module]} (imported as {module})"
    assert {"python3-pytest", "python3-pytest-timeout", "ament_cmake_test"} <= declared


def test_dependencies_without_a_rosdep_key_are_named_for_pip():
    text = (REPO / "package.xml").read_text()
    requirements = (REPO / "requirements.txt").read_text()
    for name in PIP_ONLY:
        assert name in text and name in requirements


def test_setup_py_installs_the_command_line_but_no_node_executables(monkeypatch):
    import setuptools

    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(REPO)
    exec(compile((REPO / "setup.py").read_text(), "setup.py", "exec"), {"__name__": "__main__"})
    assert captured["entry_points"]["console_scripts"] == ["spatial-memory=spatial_memory_ros.cli:main"]
