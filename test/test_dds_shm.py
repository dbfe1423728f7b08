"""Stale Fast DDS shared-memory files are found by their free lock, and live or young ones are left alone."""
from __future__ import annotations

import fcntl
import os
import time

from spatial_memory_ros.dds_shm import remove_stale_fastdds_files


def _make(directory, name: str, age_s: float) -> None:
    for path in (directory / name, directory / f"{name}_el"):
        path.write_bytes(b"")
        os.utime(path, (time.time() - age_s, time.time() - age_s))


def test_only_the_files_of_dead_owners_are_removed(tmp_path):
    _make(tmp_path, "fastdds_dead", 600)
    _make(tmp_path, "fastrtps_port7007", 600)
    (tmp_path / "sem.fastrtps_port7007_mutex").write_bytes(b"")
    _make(tmp_path, "fastdds_alive", 600)
    _make(tmp_path, "fastdds_young", 1)
    _make(tmp_path, "other_program", 600)
    held = os.open(tmp_path / "fastdds_alive_el", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)  # a live participant holds its lock
    try:
        removed = {path.name for path in remove_stale_fastdds_files(tmp_path, min_age_s=60)}
    finally:
        os.close(held)
    assert removed == {"fastdds_dead", "fastdds_dead_el", "fastrtps_port7007", "fastrtps_port7007_el",
                       "sem.fastrtps_port7007_mutex"}
    assert {p.name for p in tmp_path.iterdir()} == {"fastdds_alive", "fastdds_alive_el", "fastdds_young",
                                                   "fastdds_young_el", "other_program", "other_program_el"}


def test_a_live_participants_files_survive_a_cleaning(tmp_path):
    """Against the real Fast DDS: a node's own files in /dev/shm are held, so nothing of it is removed."""
    import rclpy

    from spatial_memory_ros.dds_shm import SHM_DIR, stale_fastdds_files

    before = set(SHM_DIR.iterdir())
    context = rclpy.context.Context()
    rclpy.init(args=[], context=context)
    try:
        node = rclpy.create_node("shm_probe", context=context)
        own = set(SHM_DIR.iterdir()) - before  # this participant's segment and port files (others may come and go)
        assert any(path.name.endswith("_el") for path in own), sorted(own)
        assert not own & set(stale_fastdds_files(min_age_s=0))
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
