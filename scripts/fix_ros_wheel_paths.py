"""Point the ROS 2 wheels' exported CMake files at this venv's Python and numpy headers.

The wheels were built on a machine whose paths (/opt/python/cp311-cp311/...) are baked into
share/**/*.cmake. Only files inside the venv given as the first argument are rewritten.
"""
from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import numpy

BUILD_MACHINE_PATHS = {
    "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include": numpy.get_include(),
    "/opt/python/cp311-cp311/include/python3.11": sysconfig.get_paths()["include"],
}


def rewrite(venv: Path) -> int:
    """Rewrite the build-machine paths under venv/share; return the number of files changed."""
    changed = 0
    for cmake_file in (venv / "share").rglob("*.cmake"):
        text = cmake_file.read_text()
        new_text = text
        for old, new in BUILD_MACHINE_PATHS.items():
            new_text = new_text.replace(old, new)
        if new_text != text:
            cmake_file.write_text(new_text)
            changed += 1
    return changed


if __name__ == "__main__":
    venv_dir = Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix).resolve()
    if not (venv_dir / "pyvenv.cfg").exists():
        sys.exit(f"{venv_dir} is not a virtual environment: refusing to touch files outside a venv")
    print(f"fix_ros_wheel_paths: rewrote {rewrite(venv_dir)} CMake files in {venv_dir}/share")
