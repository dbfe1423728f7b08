"""``spatial-memory data boundary``, ``train boundary`` and ``calibrate boundary``: the floor-boundary BEV model
(issue 12; perception/floor_boundary.py, boundary_data.py, boundary_model.py, boundary_training.py,
boundary_calibration.py)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from spatial_memory_ros.commands import command_group

DATA_DESCRIPTION = """Render canonical-camera frames labelled, per image column, with where the floor ends and the
object standing there, from --mazes seeded mazes of --world (seeds --first-seed up; seeds from 1,000,000 up are
kept for validation and benchmarks), into npz shards plus manifest.json in --out. --randomize F gives that share
of the built-in mazes a random appearance (colours, textures, wall height, shading): the data of a model that has
to work in worlds it never saw. Re-running with the same arguments skips the shards already written."""

TRAIN_DESCRIPTION = """Train the floor-boundary net on the shards of --data (one or more folders), validating on
unseen mazes (seeds from 1,000,000 up) of --val-worlds. The run folder --out keeps last.pt (for --resume),
best.pt and log.jsonl; --export writes the best model, with its data, command, time and validation figures, to a
checkpoint that BevPredictor-style code loads (benchmarks/bev.py --checkpoint, the bev_predictor node)."""

CALIBRATE_DESCRIPTION = """Fit one logit offset per object class of --world to a floor-boundary checkpoint, on
--mazes validation mazes of that world (seeds from 1,000,000 up, never in training data), and write the checkpoint
with them to --export. A class the training data held rarely is under-predicted (Memory-Maze's salmon, which only
its 15x15 mazes have, was mostly called red); the offsets maximise the mean F1 of the column classes. Prints each
class's precision and recall before and after; the export's info keeps them with this command."""

EXAMPLE = """example:
  spatial-memory data boundary --world builtin --randomize 0.75 --mazes 600 --out runs/boundary-builtin
  spatial-memory data boundary --world memory_maze --mazes 64 --frames-per-maze 50 --out runs/boundary-mm
  spatial-memory train boundary --data runs/boundary-builtin --out runs/boundary-lowo --export lowo.pt
  spatial-memory train boundary --data runs/boundary-builtin runs/boundary-mm --out runs/boundary-mixed
  spatial-memory train boundary --data runs/boundary-builtin --out runs/boundary-lowo --resume   # go on
  spatial-memory calibrate boundary --checkpoint mixed.pt --world memory_maze --export mixed_calibrated.pt
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data boundary`` and ``train boundary``."""
    data = command_group(subparsers, "data", "render training data for a model").add_parser(
        "boundary", help="frames + per-column floor boundaries for the floor-boundary BEV model",
        description=DATA_DESCRIPTION, epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    data.add_argument("--world", choices=("builtin", "memory_maze"), default="builtin", help="world (default builtin)")
    data.add_argument("--randomize", type=float, default=0.0, metavar="FRACTION",
                      help="share of built-in mazes given a random appearance (default 0: none; the rest keep "
                           "the built-in look)")
    data.add_argument("--mazes", type=_positive_int, default=600, help="number of mazes (default 600)")
    data.add_argument("--frames-per-maze", type=_positive_int, default=40, help="frames per maze (default 40)")
    data.add_argument("--first-seed", type=int, default=0, help="seed of the first maze (default 0)")
    data.add_argument("--size", type=_positive_int, default=None,
                      help="maze size of every maze (default: the world's sizes in turn by seed); e.g. more of "
                           "Memory-Maze's 15x15, the only size with its sixth colour (salmon)")
    data.add_argument("--mazes-per-shard", type=_positive_int, default=50, help="mazes per shard (default 50)")
    data.add_argument("--out", type=Path, required=True, help="output folder")
    data.add_argument("--no-progress", action="store_true", help="no progress bar")
    data.set_defaults(run=run_data)

    train = command_group(subparsers, "train", "train a model").add_parser(
        "boundary", help="train the floor-boundary BEV model", description=TRAIN_DESCRIPTION, epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--data", type=Path, nargs="+", required=True, help="shard folders of `data boundary`")
    train.add_argument("--out", type=Path, default=Path("runs/train-boundary"), help="run folder")
    train.add_argument("--export", type=Path, default=None, help="write the best model here when done")
    train.add_argument("--steps", type=_positive_int, default=4000, help="optimizer steps (default 4000)")
    train.add_argument("--batch-size", type=_positive_int, default=64, help="frames per step (default 64)")
    train.add_argument("--lr", type=float, default=2e-3, help="peak learning rate, one-cycle (default 2e-3)")
    train.add_argument("--seed", type=int, default=0, help="seed of weights, batches, augmentation (default 0)")
    train.add_argument("--val-worlds", default="builtin,memory_maze",
                       help="worlds of the validation mazes, comma-separated (default builtin,memory_maze; a world "
                            "that cannot start here is skipped with a message)")
    train.add_argument("--val-mazes", type=_positive_int, default=4, help="validation mazes per world (default 4)")
    train.add_argument("--val-frames-per-maze", type=_positive_int, default=40, help="default 40")
    train.add_argument("--val-every", type=_positive_int, default=500, help="validate every N steps (default 500)")
    train.add_argument("--threads", type=_positive_int, default=1, help="torch CPU threads (default 1)")
    train.add_argument("--resume", action="store_true", help="continue from --out/last.pt")
    train.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                       help="start from this floor-boundary checkpoint's weights (fine-tuning; its layer sizes and "
                            "classes must be the model's) instead of fresh ones")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(run=run_train)

    calibrate = command_group(subparsers, "calibrate", "calibrate a trained model").add_parser(
        "boundary", help="per-class object offsets of the floor-boundary model for a world",
        description=CALIBRATE_DESCRIPTION, epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    calibrate.add_argument("--checkpoint", type=Path, required=True, help="floor-boundary checkpoint to calibrate")
    calibrate.add_argument("--world", choices=("builtin", "memory_maze"), default="memory_maze",
                           help="world whose classes are calibrated (default memory_maze)")
    calibrate.add_argument("--mazes", type=_positive_int, default=32,
                           help="validation mazes (default 32: Memory-Maze's sizes in turn, 8 of each)")
    calibrate.add_argument("--frames-per-maze", type=_positive_int, default=80,
                           help="default 80 (a class needs 100 columns to be fitted)")
    calibrate.add_argument("--export", type=Path, required=True, help="write the calibrated checkpoint here")
    calibrate.add_argument("--no-progress", action="store_true", help="no progress bar")
    calibrate.set_defaults(run=run_calibrate)


def run_data(args: argparse.Namespace) -> int:
    """Write the shards; returns an exit code."""
    from tqdm import tqdm

    from spatial_memory_ros.perception.boundary_data import (BoundaryFrames, boundary_geometry,
                                                             render_boundary_frames, write_boundary_shard)
    from spatial_memory_ros.perception.frames import VALIDATION_SEED_BASE
    from spatial_memory_ros.sim.interface import WorldUnavailable

    seeds = range(args.first_seed, args.first_seed + args.mazes)
    if args.first_seed < 0 or seeds[-1] >= VALIDATION_SEED_BASE:
        print(f"error: training maze seeds must lie in 0..{VALIDATION_SEED_BASE - 1}, got {seeds[0]}..{seeds[-1]}",
              file=sys.stderr)
        return 2
    manifest = {"world": args.world, "randomize": args.randomize, "first_seed": args.first_seed,
                "size": args.size, "mazes": args.mazes, "frames_per_maze": args.frames_per_maze,
                "mazes_per_shard": args.mazes_per_shard, "geometry": boundary_geometry().as_dict()}
    path = args.out / "manifest.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    if previous and {k: previous.get(k) for k in manifest} != manifest:
        print(f"error: {args.out} holds data made with other arguments ({path}); choose another --out or delete it",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**previous, **manifest}, indent=2) + "\n")
    started = time.monotonic()
    progress = tqdm(total=len(seeds), unit="maze", desc="data boundary",
                    disable=args.no_progress or not sys.stderr.isatty())
    for index, first in enumerate(range(0, len(seeds), args.mazes_per_shard)):
        shard = args.out / f"shard-{index:05d}.npz"
        chunk = seeds[first:first + args.mazes_per_shard]
        if shard.exists():
            progress.update(len(chunk))
            continue
        parts = []
        for seed in chunk:
            try:
                parts.append(render_boundary_frames(args.world, seed, args.frames_per_maze, boundary_geometry(),
                                                    randomize=args.randomize, size=args.size))
            except WorldUnavailable as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            progress.update(1)
        partial = shard.with_name(shard.name + ".partial")
        write_boundary_shard(partial, BoundaryFrames.concatenate(parts))
        os.replace(partial, shard)
    progress.close()
    seconds = round(time.monotonic() - started, 1) + previous.get("seconds", 0.0)
    command = " ".join(["spatial-memory", "data", "boundary", f"--world {args.world}",
                        f"--randomize {args.randomize}", f"--mazes {args.mazes}",
                        f"--frames-per-maze {args.frames_per_maze}", f"--first-seed {args.first_seed}",
                        f"--size {args.size}" if args.size else "",
                        f"--mazes-per-shard {args.mazes_per_shard}", f"--out {args.out}"]).replace("  ", " ")
    path.write_text(json.dumps({**manifest, "frames": args.mazes * args.frames_per_maze, "seconds": seconds,
                                "command": command}, indent=2) + "\n")
    print(f"wrote {args.mazes * args.frames_per_maze} frames of {args.world} to {args.out} in "
          f"{time.monotonic() - started:.0f} s")
    return 0


def run_train(args: argparse.Namespace) -> int:
    """Train, validate, export; returns an exit code."""
    from spatial_memory_ros.perception.boundary_training import TrainingRun
    from spatial_memory_ros.perception.predictor import CheckpointError

    try:
        run = TrainingRun(args)
    except (FileNotFoundError, ValueError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run.train()
    if args.export:
        print(f"exported {run.export(args.export)}")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    """Fit, print the per-class table, write the calibrated checkpoint; returns an exit code."""
    from tqdm import tqdm

    from spatial_memory_ros.perception.boundary_calibration import calibrate_checkpoint
    from spatial_memory_ros.perception.predictor import CheckpointError
    from spatial_memory_ros.sim.interface import WorldUnavailable

    if args.export.resolve() == args.checkpoint.resolve():
        print("error: --export must differ from --checkpoint (the source stays as it is)", file=sys.stderr)
        return 2
    command = (f"spatial-memory calibrate boundary --checkpoint {args.checkpoint} --world {args.world} "
               f"--mazes {args.mazes} --frames-per-maze {args.frames_per_maze} --export {args.export}")
    progress = tqdm(total=args.mazes, unit="maze", desc="calibrate boundary",
                    disable=args.no_progress or not sys.stderr.isatty())
    try:
        report = calibrate_checkpoint(args.checkpoint, args.world, args.mazes, args.frames_per_maze, args.export,
                                      command, lambda: progress.update(1))
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except WorldUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        progress.close()
    print(f"{'class':>8} {'columns':>8} {'offset':>7}  precision  recall   (before -> after)")
    for name, after in report["after"].items():
        before = report["before"][name]
        print(f"{name:>8} {after['columns']:8d} {report['class_bias'][name]:+7.2f}  {before['precision']:.2f} -> "
              f"{after['precision']:.2f}  {before['recall']:.2f} -> {after['recall']:.2f}")
    print(f"wrote {args.export} ({report['frames']} frames of {args.world}, {report['seconds']:.0f} s)")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value
