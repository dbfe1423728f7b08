"""The ROS route: `colcon build` (with and without --symlink-install) of this repository in a workspace gives an
install prefix where the generated interfaces and the hand-written modules are one package, and `ros2 run` finds
the node executables in lib/spatial_memory_ros."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)

CHECK = """
import spatial_memory_ros.msg as msg, spatial_memory_ros.sim.world as world, spatial_memory_ros.graph as graph
from spatial_memory_ros.msg import BevMap
from spatial_memory_ros.srv import QueryMemory
print(msg.__file__); print(world.__file__); print(graph.__file__)
"""


@pytest.mark.slow
@pytest.mark.timeout(900)  # a colcon build of the package: ~30 s alone, several minutes on a loaded machine
@pytest.mark.parametrize("symlink", [False, True], ids=["copy", "symlink-install"])
def test_colcon_build_gives_one_package_in_the_install_prefix(tmp_path, symlink):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "spatial_memory_ros").symlink_to(REPO)
    env = {**os.environ, "AMENT_PREFIX_PATH": str(VENV), "CMAKE_PREFIX_PATH": str(VENV),
           "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}"}
    command = [str(VENV / "bin" / "colcon"), "--log-base", str(tmp_path / "log"), "build",
               "--base-paths", str(tmp_path / "src"), "--build-base", str(tmp_path / "build"),
               "--install-base", str(tmp_path / "install"), "--event-handlers", "console_direct-",
               "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"]
    if symlink:
        command.insert(command.index("--event-handlers"), "--symlink-install")
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    prefix = tmp_path / "install" / "spatial_memory_ros"
    site_packages = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    check = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(site_packages)})
    assert check.returncode == 0, check.stderr
    for module_file in check.stdout.split():
        assert module_file.startswith(str(site_packages)), f"{module_file} is not from the install prefix"
    installed_init = site_packages / "spatial_memory_ros" / "__init__.py"
    assert installed_init.is_symlink() == symlink
    for executable in ("sim_world", "explorer"):
        assert os.access(prefix / "lib" / "spatial_memory_ros" / executable, os.X_OK)
    assert (prefix / "share" / "spatial_memory_ros" / "launch" / "sim_team.launch.py").exists()
    assert (prefix / "share" / "spatial_memory_ros" / "config" / "sim_world.yaml").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_colcon_test_runs_the_pytest_suite(tmp_path):
    """BUILD_TESTING (colcon's default) registers the pytest suite with ctest; SPATIAL_MEMORY_TEST_ARGS picks a
    tiny selection here. colcon test must run it (its tests find the generated messages in the workspace's install
    prefix, as `make test` finds them in the venv) and colcon test-result must count them."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "spatial_memory_ros").symlink_to(REPO)
    env = {**os.environ, "AMENT_PREFIX_PATH": str(VENV), "CMAKE_PREFIX_PATH": str(VENV),
           "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    paths = ["--base-paths", str(tmp_path / "src"), "--build-base", str(tmp_path / "build"),
             "--install-base", str(tmp_path / "install"), "--event-handlers", "console_direct-"]
    colcon = [str(VENV / "bin" / "colcon"), "--log-base", str(tmp_path / "log")]
    selection = "test/test_conversions.py -k round_trip"
    build = subprocess.run(colcon + ["build", *paths, "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}",
                                     "-DBUILD_TESTING=ON", f"-DSPATIAL_MEMORY_TEST_ARGS={selection}"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    tested = subprocess.run(colcon + ["test", *paths], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-3000:]
    result = subprocess.run(colcon + ["test-result", "--test-result-base", str(tmp_path / "build"), "--all"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]  # "Summary: N tests, 0 errors, 0 failures, 0 skipped"
    counts = dict((name.rstrip(","), int(number)) for number, name in
                  (part.split() for part in summary.removeprefix("Summary:").split(", ")))
    assert counts["tests"] >= 1 and counts["errors"] == counts["failures"] == 0, result.stdout
    output = (tmp_path / "build" / "spatial_memory_ros" / "ament_cmake_pytest" / "pytest.txt").read_text()
    assert "passed" in output and "round_trip" in (tmp_path / "build" / "spatial_memory_ros" / "test_results" /
                                                    "spatial_memory_ros" / "pytest.xunit.xml").read_text()
