"""``spatial-memory data bev``: render camera frames and oracle BEVs from seeded mazes into npz shards."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from spatial_memory_ros.commands import command_group

DESCRIPTION = """Render first-person frames and their oracle BEVs from --mazes seeded mazes (sizes 9..15, seeds
--first-seed, --first-seed + 1, ...) and write them as compressed npz shards plus manifest.json to --out.
Half the frames (--walker-fraction) come from robots driven by the random walker, the rest from random free
poses; 3 robots share each maze so teammates appear in some images. Maze seeds from 1,000,000 up are kept for
validation and benchmarks. Re-running with the same arguments skips the shards already written.
--world memory_maze renders Memory-Maze (sizes 9, 11, 13, 15 in turn; one robot at uniformly random free poses)
in the model's canonical camera (perception/camera_adapter.py: each image re-projected, its oracle BEV drawn in
the canonical grid, objects in the model's class slots), so both worlds' shards train one model."""

EXAMPLE = """example:
  spatial-memory data bev --mazes 300 --frames-per-maze 160 --out runs/bev-data
  spatial-memory train bev --data runs/bev-data --export spatial_memory_ros/models/bev.pt
  spatial-memory data bev --world memory_maze --mazes 80 --frames-per-maze 60 --out runs/bev-data-mm
  spatial-memory train bev --data runs/bev-data runs/bev-data-mm --init spatial_memory_ros/models/bev.pt ...
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data bev`` under the (shared) ``data`` command."""
    models = command_group(subparsers, "data", "render training data for a model")
    parser = models.add_parser("bev", help="frames + oracle BEVs for the BEV predictor", description=DESCRIPTION,
                               epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", choices=("builtin", "memory_maze"), default="builtin",
                        help="the world to render (default builtin; memory_maze in the model's canonical camera)")
    parser.add_argument("--mazes", type=_positive_int, default=300, help="number of mazes (default 300)")
    parser.add_argument("--frames-per-maze", type=_positive_int, default=160,
                        help="frames rendered in each maze (default 160)")
    parser.add_argument("--out", type=Path, required=True, help="output folder for shard-*.npz and manifest.json")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first maze (default 0)")
    parser.add_argument("--walker-fraction", type=float, default=0.5,
                        help="share of frames taken along random-walker trajectories (default 0.5)")
    parser.add_argument("--mazes-per-shard", type=_positive_int, default=20, help="mazes per shard (default 20)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the shards; returns a process exit code."""
    from tqdm import tqdm

    from spatial_memory_ros.perception.frames import (MANIFEST_NAME, SHARD_PATTERN, VALIDATION_SEED_BASE, BevFrames,
                                                      maze_seed_range, read_manifest, render_maze_frames, shard_paths,
                                                      render_canonical_frames, sim_geometry)
    from spatial_memory_ros.sim.interface import WorldUnavailable

    seeds = maze_seed_range(args.first_seed, args.mazes)
    if args.first_seed < 0 or seeds[-1] >= VALIDATION_SEED_BASE:
        print(f"error: training maze seeds must lie in 0..{VALIDATION_SEED_BASE - 1} (validation and "
              f"benchmark mazes use the seeds above), got {seeds[0]}..{seeds[-1]}", file=sys.stderr)
        return 2
    if not 0.0 <= args.walker_fraction <= 1.0:
        print(f"error: --walker-fraction must be in [0, 1], got {args.walker_fraction}", file=sys.stderr)
        return 2
    manifest = {"first_seed": args.first_seed, "mazes": args.mazes, "frames_per_maze": args.frames_per_maze,
                "walker_fraction": args.walker_fraction, "mazes_per_shard": args.mazes_per_shard,
                "geometry": sim_geometry().as_dict()}
    if args.world != "builtin":  # manifests of built-in data stay as they were
        manifest["world"] = args.world
    previous = read_manifest(args.out)
    if previous and {k: previous.get(k) for k in manifest} != manifest:
        print(f"error: {args.out} holds data made with other arguments ({args.out / MANIFEST_NAME}); "
              f"choose another --out or delete it", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / MANIFEST_NAME
    if not previous:  # written first, so an interrupted run is resumed only with the same arguments
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    started = time.monotonic()
    shards = [seeds[k:k + args.mazes_per_shard] for k in range(0, len(seeds), args.mazes_per_shard)]
    progress = tqdm(total=len(seeds), unit="maze", desc="data bev", disable=args.no_progress)
    for index, shard_seeds in enumerate(shards):
        path = args.out / SHARD_PATTERN.format(index=index)
        if path.exists():
            progress.update(len(shard_seeds))
            continue
        parts = []
        for seed in shard_seeds:
            if args.world == "builtin":
                parts.append(render_maze_frames(seed, args.frames_per_maze, args.walker_fraction))
            else:
                try:
                    parts.append(render_canonical_frames(args.world, seed, args.frames_per_maze, sim_geometry()))
                except WorldUnavailable as error:
                    print(f"error: {error}", file=sys.stderr)
                    return 1
            progress.update(1)
        _write_atomically(path, BevFrames.concatenate(parts))
    progress.close()
    manifest.update(frames=args.mazes * args.frames_per_maze, shards=len(shards),
                    seconds=round(time.monotonic() - started, 1) + previous.get("seconds", 0.0),
                    command=_command_line(args))
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    size_mb = sum(p.stat().st_size for p in shard_paths(args.out)) / 1e6
    print(f"wrote {manifest['frames']} frames from mazes {seeds[0]}..{seeds[-1]} in {len(shards)} shards "
          f"({size_mb:.0f} MB) to {args.out} in {time.monotonic() - started:.0f} s")
    return 0


def _command_line(args: argparse.Namespace) -> str:
    world = f"--world {args.world} " if args.world != "builtin" else ""
    return (f"spatial-memory data bev {world}--mazes {args.mazes} --frames-per-maze {args.frames_per_maze} "
            f"--out {args.out} --first-seed {args.first_seed} --walker-fraction {args.walker_fraction} "
            f"--mazes-per-shard {args.mazes_per_shard}")


def _write_atomically(path: Path, frames) -> None:
    """Write a shard under a temporary name first so an interrupted run never leaves a truncated shard."""
    from spatial_memory_ros.perception.frames import write_shard

    partial = path.with_name(path.name + ".partial")
    write_shard(partial, frames)
    os.replace(partial, path)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value
