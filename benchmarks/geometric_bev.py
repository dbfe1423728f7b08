"""Benchmark of the geometric BEV sources (issue 13, item 1): LaserScan -> BEV (perception/scan_bev.py) and depth
image -> BEV (perception/depth_bev.py) against the true BEV (sim/oracle.py's BevOracle) in the simulated worlds.

For each world (built-in; Memory-Maze when it renders here) and maze seed, robots are placed at random free
points with random headings (not only cell centres); each pose gives the world's scan and depth image
(sim/range_sensors.py), their BEVs, and the true BEV for the same sensor's field of view: the world's BevOracle
with rays every 0.125 deg (for the scan over the whole half plane in front, 179.9 deg: the scan covers 360 deg,
the grid only the front; for the depth camera over its field of view). Scores, over the cells inside the sensor's
field of view and range: free IoU and wall IoU (|pred & true| / |pred | true| of that class, summed over all
frames), and per-cell accuracy. Baseline, measured in the same run on the same frames: the per-cell majority label
of the true BEVs (a prior that knows the maze statistics but not the scene).

Targets: free IoU >= 0.95, wall IoU >= 0.85 (both are geometry).
The scan is the sim's (720 rays, 0.5 deg, 8 m), the depth image its depth camera's (sim/range_sensors.py: 160x160
on the colour camera's mount and fields of view: 90 deg level at 0.5 m in the built-in world, 80 deg pitched 5.7
deg down at 0.9 m in Memory-Maze; at the colour camera's own 64 columns walls scored 0.83, the rays too far apart). A second reference row scores the oracle
itself with rays as far apart as the sensor's (0.5 deg; one per pixel column) against the fine truth: how much of
the gap to the targets is the sensor's angular resolution under the oracle's conventions.
Prints a table and writes benchmarks/results/geometric_bev.json (geometric_bev_quick.json with --quick).
  .venv/bin/python benchmarks/geometric_bev.py [--quick] [--seeds 4] [--poses 50] [--worlds builtin,memory_maze]
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spatial_memory_ros.perception.depth_bev import DepthCamera, depth_to_bev  # noqa: E402
from spatial_memory_ros.perception.depth_bev import field_of_view as depth_field  # noqa: E402
from spatial_memory_ros.perception.scan_bev import scan_to_bev  # noqa: E402
from spatial_memory_ros.perception.scan_bev import field_of_view as scan_field  # noqa: E402
from spatial_memory_ros.sim import range_sensors  # noqa: E402
from spatial_memory_ros.sim.camera import RayCaster  # noqa: E402
from spatial_memory_ros.sim.interface import WorldUnavailable, make_world  # noqa: E402
from spatial_memory_ros.sim.oracle import BevOracle  # noqa: E402
from spatial_memory_ros.types import GridGeometry, Pose2D  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "geometric_bev.json"
TARGET_FREE_IOU, TARGET_WALL_IOU = 0.95, 0.85
SIZES = {"builtin": 15, "memory_maze": 9}


class Score:
    """Free and wall intersections and unions, and agreeing cells, summed over frames."""

    def __init__(self) -> None:
        self.sums = {"free_inter": 0, "free_union": 0, "wall_inter": 0, "wall_union": 0, "agree": 0, "cells": 0}
        self.frames = 0

    def add(self, predicted: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> None:
        p, t = predicted[mask], truth[mask]
        for name, value in (("free", 0), ("wall", 100)):
            self.sums[f"{name}_inter"] += int(((p == value) & (t == value)).sum())
            self.sums[f"{name}_union"] += int(((p == value) | (t == value)).sum())
        self.sums["agree"] += int((p == t).sum())
        self.sums["cells"] += int(mask.sum())
        self.frames += 1

    def result(self) -> dict:
        s = self.sums
        return {"free_iou": s["free_inter"] / max(s["free_union"], 1), "wall_iou": s["wall_inter"] / max(s["wall_union"], 1),
                "accuracy": s["agree"] / max(s["cells"], 1), "frames": self.frames, "cells": s["cells"]}


def random_poses(world, robot: int, count: int, rng: np.random.Generator) -> list[Pose2D]:
    """Random collision-free poses anywhere in free cells, random headings."""
    maze, radius = world.maze, world.config.robot_radius
    free = maze.free_cells()
    poses = []
    while len(poses) < count:
        row, col = free[rng.integers(len(free))]
        x, y = (col + rng.uniform(0.1, 0.9)) * maze.cell_size, (row + rng.uniform(0.1, 0.9)) * maze.cell_size
        if not maze.disc_collides(x, y, radius):
            poses.append(Pose2D(float(x), float(y), float(rng.uniform(-math.pi, math.pi))))
    return poses


def run_world(name: str, seeds: int, poses_per_seed: int) -> dict:
    keys = ("scan", "scan_baseline", "scan_reference", "depth", "depth_baseline", "depth_reference")
    scores = {key: Score() for key in keys}
    frames = {"scan": [], "depth": []}    # true BEVs, for the baseline's majority labels
    started = time.perf_counter()
    convert_s = {"scan": 0.0, "depth": 0.0}
    for seed in range(seeds):
        world = make_world(name, size=SIZES[name], seed=seed, num_robots=1)
        try:
            config = world.config
            geometry = GridGeometry(config.bev_resolution, config.bev_width, config.bev_height, *config.bev_origin)
            caster = RayCaster(world.maze)
            model = range_sensors.default_scan_model(world)
            camera_model = range_sensors.depth_camera_model(world, 0)  # what sim_world publishes on camera/depth
            camera = DepthCamera.from_camera_model(camera_model)
            half_plane = replace(config, fov_deg=179.9)
            # the truth: the oracle with rays every 0.125 deg or finer; the reference: the same oracle with rays
            # as far apart as the sensor's (1 deg; one per pixel column), scored against the truth
            oracles = {"scan": (oracle(world, replace(half_plane, bev_rays=1441)),
                                oracle(world, replace(half_plane, bev_rays=round(179.9 / math.degrees(
                                    model.angle_increment)) + 1))),
                       "depth": (oracle(world, replace(config, bev_rays=721)),
                                 oracle(world, replace(config, bev_rays=camera.width)))}
            masks = {"scan": scan_field(geometry, Pose2D(0.0, 0.0, 0.0), model.angle_min, model.angle_max,
                                        model.range_max) & judged(oracles["scan"][0], geometry),
                     "depth": depth_field(camera, geometry, config.view_range) & judged(oracles["depth"][0],
                                                                                         geometry)}
            rng = np.random.default_rng([seed, 13])
            for pose in random_poses(world, 0, poses_per_seed, rng):
                world.set_pose(0, pose)
                truth, reference = {}, {}
                for key, (fine, coarse) in oracles.items():
                    truth[key] = true_bev(fine, caster, world, pose)
                    reference[key] = true_bev(coarse, caster, world, pose)
                tick = time.perf_counter()
                scan_bev, _ = scan_to_bev(range_sensors.scan(world, 0, model), geometry=geometry)
                convert_s["scan"] += time.perf_counter() - tick
                depth = range_sensors.depth_image(world, 0, camera_model)
                tick = time.perf_counter()
                depth_bev, _ = depth_to_bev(depth, camera, geometry, max_range=config.view_range)
                convert_s["depth"] += time.perf_counter() - tick
                for key, bev in (("scan", scan_bev), ("depth", depth_bev)):
                    scores[key].add(bev.occupancy, truth[key], masks[key])
                    scores[f"{key}_reference"].add(reference[key], truth[key], masks[key])
                    frames[key].append(truth[key])
        finally:
            world.close()
    for key in ("scan", "depth"):
        stack = np.stack(frames[key])
        counts = np.stack([(stack == v).sum(axis=0) for v in (-1, 0, 100)])
        prior = np.array([-1, 0, 100], dtype=np.int8)[counts.argmax(axis=0)]
        for truth in frames[key]:
            scores[f"{key}_baseline"].add(prior, truth, masks[key])
    result = {key: score.result() for key, score in scores.items()}
    for key in ("scan", "depth"):
        result[key]["ms_per_frame"] = 1000.0 * convert_s[key] / max(scores[key].frames, 1)
    result["sensors"] = {"scan": {"rays": model.count, "angle_increment_deg": math.degrees(model.angle_increment),
                                  "range_max": model.range_max},
                         "depth": {"width": camera.width, "height": camera.height,
                                   "horizontal_fov_deg": camera_model.horizontal_fov_deg,
                                   "mount": camera_model.as_dict()}}
    result["seconds"] = time.perf_counter() - started
    return result


def oracle(world, config) -> BevOracle:
    """The world's BEV oracle for another field of view or ray count."""
    from spatial_memory_ros.sim.memory_maze import TARGET_RADIUS, MemoryMazeWorld

    radius = TARGET_RADIUS if isinstance(world, MemoryMazeWorld) else None
    return BevOracle(world.maze, config, world.class_names, radius)


def true_bev(bev_oracle: BevOracle, caster: RayCaster, world, pose: Pose2D) -> np.ndarray:
    rays = caster.cast(pose.x, pose.y, pose.theta + bev_oracle.ray_angles).distance
    return bev_oracle.compute(pose, rays, world.maze.targets).occupancy


def judged(bev_oracle: BevOracle, geometry: GridGeometry) -> np.ndarray:
    """The cells an oracle judges (its field of view and range)."""
    mask = np.zeros(geometry.width * geometry.height, dtype=bool)
    mask[bev_oracle.cells] = True
    return mask.reshape(geometry.height, geometry.width)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=4, help="mazes per world")
    parser.add_argument("--poses", type=int, default=50, help="random poses per maze")
    parser.add_argument("--worlds", default="builtin,memory_maze")
    parser.add_argument("--quick", action="store_true", help="1 maze x 20 poses per world (a smoke run; writes "
                        "geometric_bev_quick.json)")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON output (default {RESULTS})")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.poses = 1, 20
    args.out = args.out or (RESULTS.with_name("geometric_bev_quick.json") if args.quick else RESULTS)
    started = time.perf_counter()
    worlds, skipped = {}, {}
    for name in filter(None, args.worlds.split(",")):
        try:
            worlds[name] = run_world(name, args.seeds, args.poses)
        except WorldUnavailable as error:
            skipped[name] = str(error)
            print(f"{name}: skipped ({error})")
    print(f"\n{'world':12s} {'source':16s} {'free IoU':>9s} {'wall IoU':>9s} {'accuracy':>9s} {'frames':>7s} "
          f"{'ms/frame':>9s}")
    ok = True
    for name, result in worlds.items():
        for key in ("scan", "scan_baseline", "scan_reference", "depth", "depth_baseline", "depth_reference"):
            r = result[key]
            label = key.replace("_baseline", " (prior)").replace("_reference", " (oracle@res)")
            ms = f"{r['ms_per_frame']:9.2f}" if "ms_per_frame" in r else f"{'':9s}"
            print(f"{name:12s} {label:16s} {r['free_iou']:9.3f} {r['wall_iou']:9.3f} {r['accuracy']:9.3f} "
                  f"{r['frames']:7d} {ms}")
            if key in ("scan", "depth"):
                ok &= r["free_iou"] >= TARGET_FREE_IOU and r["wall_iou"] >= TARGET_WALL_IOU
    print(f"targets free IoU >= {TARGET_FREE_IOU}, wall IoU >= {TARGET_WALL_IOU}: {'met' if ok else 'NOT met'}")
    output = {"benchmark": "geometric_bev", "command": " ".join(["benchmarks/geometric_bev.py"] + sys.argv[1:]),
              "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
              "python": platform.python_version(), "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "seconds": time.perf_counter() - started, "seeds": args.seeds, "poses_per_seed": args.poses,
              "targets": {"free_iou": TARGET_FREE_IOU, "wall_iou": TARGET_WALL_IOU}, "targets_met": ok,
              "worlds": worlds, "skipped": skipped,
              "baseline": "per-cell majority label of the oracle BEVs of the same frames"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(output, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
