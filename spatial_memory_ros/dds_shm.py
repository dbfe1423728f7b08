"""Stale Fast DDS shared-memory files: find and remove those whose owning process is gone.

Fast DDS (the default RMW of rclpy's wheels) keeps a segment per participant and one per port in /dev/shm, each
with a ``<name>_el`` file its owner holds an exclusive ``flock`` on, and a ``sem.<port>_mutex`` per port. A
participant that exits cleanly removes its files; one that is killed (SIGKILL, a crash, ``os._exit`` before its
node was destroyed) leaves them, and they pile up across runs. Left there they have made later participants of
the same domain hang at start-up or crash (seen in this project's CI on a machine holding ~450 of them). A file is
stale when its ``_el`` lock can be taken; files younger than ``min_age_s`` are never touched, since their owner may
be between creating the file and locking it. Run ``python -m spatial_memory_ros.dds_shm`` to clean by hand.
"""
from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

SHM_DIR = Path("/dev/shm")
PREFIXES = ("fastdds_", "fastrtps_")  # Fast DDS 3 (Kilted) and 2 (Jazzy, Humble) name their files so
LOCK_SUFFIX = "_el"


def _owner_alive(lock_file: Path) -> bool:
    """True if some process holds ``lock_file``'s flock (or it cannot be opened to tell)."""
    try:
        fd = os.open(lock_file, os.O_RDWR)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the lock if we took it
    return False


def stale_fastdds_files(directory: Path = SHM_DIR, min_age_s: float = 60.0) -> list[Path]:
    """The Fast DDS segment, lock and port-mutex files in ``directory`` whose owner has died."""
    now = time.time()
    stale: list[Path] = []
    for lock_file in sorted(directory.glob("*" + LOCK_SUFFIX)):
        name = lock_file.name[: -len(LOCK_SUFFIX)]
        if not name.startswith(PREFIXES):
            continue
        try:
            if now - lock_file.stat().st_mtime < min_age_s:
                continue
        except FileNotFoundError:
            continue
        if _owner_alive(lock_file):
            continue
        companions = [directory / name, lock_file, directory / f"sem.{name}_mutex"]
        stale.extend(path for path in companions if path.exists())
    return stale


def remove_stale_fastdds_files(directory: Path = SHM_DIR, min_age_s: float = 60.0) -> list[Path]:
    """Remove what :func:`stale_fastdds_files` finds; return the paths removed (others may race us: ignored)."""
    removed = []
    for path in stale_fastdds_files(directory, min_age_s):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
        except PermissionError:
            pass  # another user's: theirs to clean
    return removed


def main() -> int:
    """Remove stale Fast DDS files from /dev/shm and say how many."""
    if "-h" in sys.argv or "--help" in sys.argv:
        print(__doc__.strip())
        return 0
    removed = remove_stale_fastdds_files()
    print(f"removed {len(removed)} stale Fast DDS shared-memory file(s) from {SHM_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
