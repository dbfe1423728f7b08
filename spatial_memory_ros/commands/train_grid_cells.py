"""`spatial-memory train grid-cells`: train a path integrator whose units become grid cells (seed 003, SSM-PC).

  spatial-memory train grid-cells --out runs/grid_cells --steps 5000 --seed 0
  spatial-memory train grid-cells --out runs/grid_cells --resume          # continue an interrupted run
  spatial-memory train grid-cells --model lstm --hidden 128 --bottleneck 256 --optimizer rmsprop --lr 1e-3

Writes <out>/checkpoint.pt (every --checkpoint-every steps), then <out>/metrics.json, ratemaps_best16.png and
ratemaps_top64.png; --export copies the final checkpoint (weights only, no optimiser state) to a path of your choice.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from spatial_memory_ros.commands import command_group


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add `train grid-cells` under a shared `train` parser (other modules add their own models to it)."""
    models = command_group(subparsers, "train", "train a model")
    parser = models.add_parser(
        "grid-cells", help="train a grid-cell path integrator (vanilla RNN of seed 003 or LSTM of SSM-PC)",
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/grid_cells"),
                        help="run folder (default runs/grid_cells)")
    parser.add_argument("--model", dest="kind", choices=("rnn", "lstm"), default="rnn",
                        help="rnn: ReLU RNN (seed 003); lstm: LSTM + linear bottleneck (SSM-PC) (default rnn)")
    parser.add_argument("--hidden", type=int, default=512, help="RNN or LSTM units (seed 003: 4096; SSM-PC: 128)")
    parser.add_argument("--bottleneck", type=int, default=256, help="LSTM bottleneck units (SSM-PC: 256)")
    parser.add_argument("--place-cells", type=int, default=512, help="number of place cells (default 512)")
    parser.add_argument("--place-sigma", type=float, default=0.12, help="place-cell width in metres (default 0.12)")
    parser.add_argument("--gaussian", action="store_true", help="plain Gaussian place cells (default: DoG)")
    parser.add_argument("--steps", type=int, default=5000, help="optimiser steps (default 5000)")
    parser.add_argument("--batch-size", type=int, default=100, help="walks per batch (seed 003: 200)")
    parser.add_argument("--sequence-length", type=int, default=20, help="steps per walk (default 20)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3; seed 003: 1e-4)")
    parser.add_argument("--optimizer", choices=("adam", "rmsprop"), default="adam")
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="L2 on recurrent weights (default 1e-4)")
    parser.add_argument("--clip-grad-norm", type=float, default=1.0, help="gradient norm clip (default 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, cells and data (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--checkpoint-every", type=int, default=250, help="steps between checkpoints")
    parser.add_argument("--max-minutes", type=float, default=None, help="stop (checkpointed) after this long")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    parser.add_argument("--export", type=Path, default=None, help="also write the final weights-only checkpoint here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    for flag, default, text in (("speed-scale", 1.0, "multiplies the Rayleigh speed scale"),
                                ("speed-max", None, "clamps forward speed, m/s"),
                                ("velocity-smoothing", 0.0, "EMA of speed, 0..0.99"),
                                ("turn-sigma-scale", 1.0, "multiplies the turning noise"),
                                ("border-region", 0.03, "distance at which walls repel, m"),
                                ("wall-slowdown", 0.25, "speed factor near a wall"),
                                ("wall-turn-scale", 1.0, "multiplies the turn away from a wall")):
        parser.add_argument(f"--traj-{flag}", type=float, default=default, help=f"{text} (default {default})")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Train, then analyse the final model (rate maps, grid scores, decoding error) into the run folder."""
    from spatial_memory_ros.localization.grid_cells.analysis import write_report
    from spatial_memory_ros.localization.grid_cells.training import (CheckpointError, load_path_integrator,
                                                                     save_checkpoint, train_path_integrator)

    try:
        config = _config(args)
    except ValueError as error:
        print(f"train grid-cells: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "command.txt").write_text(" ".join(sys.argv) + "\n")
    started = time.time()
    try:
        checkpoint = train_path_integrator(config, args.out, resume=args.resume, progress=not args.no_progress)
        loaded = load_path_integrator(checkpoint)
    except (CheckpointError, FileNotFoundError) as error:
        print(f"train grid-cells: {error}", file=sys.stderr)
        return 1
    print(f"trained to step {loaded.step} in {loaded.metadata.get('train_seconds', 0.0) / 60:.1f} min of training; "
          "analysing ...")
    metrics = write_report(loaded, args.out)
    if args.export is not None:
        save_checkpoint(args.export, loaded.model, None, loaded.place_cells, loaded.hd_cells, loaded.config,
                        loaded.step, loaded.metadata | {"metrics": metrics})
        print(f"exported {args.export}")
    print(json.dumps(metrics, indent=2))
    print(f"run folder {args.out} ({(time.time() - started) / 60:.1f} min wall in this call)")
    return 0


def _config(args: argparse.Namespace):
    from spatial_memory_ros.localization.grid_cells.model import ModelConfig
    from spatial_memory_ros.localization.grid_cells.training import TrainConfig
    from spatial_memory_ros.localization.grid_cells.trajectories import TrajectoryConfig

    trajectory = TrajectoryConfig(
        speed_scale=args.traj_speed_scale, speed_max=args.traj_speed_max,
        velocity_smoothing=args.traj_velocity_smoothing, turn_sigma_scale=args.traj_turn_sigma_scale,
        border_region=args.traj_border_region, wall_slowdown=args.traj_wall_slowdown,
        wall_turn_scale=args.traj_wall_turn_scale)
    model = ModelConfig(kind=args.kind, hidden_size=args.hidden, bottleneck_size=args.bottleneck,
                        num_place_cells=args.place_cells, place_cell_sigma=args.place_sigma,
                        difference_of_gaussians=not args.gaussian, weight_decay=args.weight_decay)
    return TrainConfig(model=model, trajectory=trajectory, steps=args.steps, batch_size=args.batch_size,
                       sequence_length=args.sequence_length, learning_rate=args.lr, optimizer=args.optimizer,
                       seed=args.seed, threads=args.threads, checkpoint_every=args.checkpoint_every,
                       max_minutes=args.max_minutes, clip_grad_norm=args.clip_grad_norm)
