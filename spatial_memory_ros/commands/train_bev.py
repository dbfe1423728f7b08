"""``spatial-memory train bev``: train the BEV predictor on shards from ``spatial-memory data bev``."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from spatial_memory_ros.commands import _adapt_bev as adapt_bev, command_group

DESCRIPTION = """Train the BEV predictor (perception/) on the shards in --data, validating on frames rendered from
unseen mazes (seeds from 1,000,000 up). The run folder --out gets last.pt (the full training state, for --resume),
best.pt (the best model by validation so far, loadable by BevPredictor) and log.jsonl. --export calibrates the
decision biases of best.pt and of the final weights on the validation mazes and writes the better of the two, with
its data, command, time and validation metrics, to a path such as spatial_memory_ros/models/bev.pt. The shipped
model is a first run from random weights, a second with --init from it and --depth-bins 36, and a third with
--init from the second on frames with area-sampled wall edges (models/bev.md)."""

EXAMPLE = """example:
  spatial-memory data bev --mazes 300 --frames-per-maze 160 --out runs/bev-data
  spatial-memory train bev --data runs/bev-data --steps 3600 --export spatial_memory_ros/models/bev.pt
  spatial-memory train bev --data runs/bev-data --steps 3600 --resume      # continue an interrupted run
  spatial-memory train bev --data runs/bev-data --out runs/bev-2 --init runs/train-bev/best.pt --depth-bins 36 \
      --lr 0.001 --steps 5000 --val-every 250 --export bev.pt     # then go on from it with the depth path
""" + adapt_bev.EXAMPLE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train bev`` under the (shared) ``train`` command."""
    from spatial_memory_ros.perception.model import BevModelConfig  # numpy only: the defaults below come from it
    from spatial_memory_ros.perception.training import BevLossWeights
    models = command_group(subparsers, "train", "train a model")
    parser = models.add_parser("bev", help="train the BEV predictor", description=DESCRIPTION, epilog=EXAMPLE,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, nargs="+", default=None,
                        help="folder(s) of shards from `spatial-memory data bev` (several: mixed, e.g. both worlds); "
                             "or --bag to adapt to a robot's camera")
    parser.add_argument("--val-world-mazes", type=int, default=4,
                        help="validation mazes of each other world in --data (Memory-Maze, canonical camera; "
                             "default 4)")
    parser.add_argument("--augment", action="store_true",
                        help="random brightness, contrast, per-channel gain and pixel noise on training images")
    parser.add_argument("--out", type=Path, default=Path("runs/train-bev"),
                        help="run folder for checkpoints and the log (default runs/train-bev)")
    parser.add_argument("--export", type=Path, default=None, help="write the best model here when done")
    parser.add_argument("--steps", type=_positive_int, default=3600, help="optimizer steps (default 3600)")
    parser.add_argument("--batch-size", type=_positive_int, default=64, help="frames per step (default 64)")
    parser.add_argument("--lr", type=float, default=None,
                        help="peak learning rate, one-cycle schedule (default 3e-3; with --bag 6e-4, warm-up then "
                             "cosine decay)")
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay (default 1e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initial weights, batch order, flips (default 0)")
    parser.add_argument("--val-mazes", type=_positive_int, default=10,
                        help="unseen validation mazes (seeds 1,000,000 up; default 10)")
    parser.add_argument("--val-frames-per-maze", type=_positive_int, default=60, help="frames per validation maze")
    parser.add_argument("--val-every", type=_positive_int, default=400, help="validate every N steps (default 400)")
    parser.add_argument("--threads", type=_positive_int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--depth-bins", type=int, default=BevModelConfig.depth_bins,
                        help="bins of the per-column depth distribution the cells read (0: no depth path; "
                             f"default {BevModelConfig.depth_bins})")
    parser.add_argument("--wall-weight", type=float, default=BevLossWeights.wall,
                        help=f"cross-entropy weight of wall cells (default {BevLossWeights.wall})")
    parser.add_argument("--wall-range-weight", type=float, default=BevLossWeights.wall_range,
                        help="extra weight of wall cells per metre of range: weight * (1 + this * range) "
                             f"(default {BevLossWeights.wall_range})")
    parser.add_argument("--init", type=Path, default=None,
                        help="start from the weights of this BEV checkpoint (e.g. the shipped bev.pt) instead of "
                             "random ones; layers it lacks (the depth path) start at zero effect")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    adapt_bev.add_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train; returns a process exit code."""
    import torch

    from spatial_memory_ros.perception.frames import (VALIDATION_SEED_BASE, BevFrames, frames_for_seeds,
                                                      maze_seed_range, read_manifest, read_shards,
                                                      render_canonical_frames, sim_geometry)
    from spatial_memory_ros.perception.predictor import save_checkpoint

    if args.bag is not None:
        if args.data:
            print("error: give --data (train on simulator shards) or --bag (adapt to a robot's camera), not both",
                  file=sys.stderr)
            return 2
        return adapt_bev.run(args)
    if not args.data:
        print("error: --data (shards of `spatial-memory data bev`) or --bag (a robot's bag) is required",
              file=sys.stderr)
        return 2
    args.lr = 3e-3 if args.lr is None else args.lr
    torch.set_num_threads(args.threads)
    try:
        parts = [read_shards(directory) for directory in args.data]
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    manifests = [read_manifest(directory) for directory in args.data]
    manifest = manifests[0] if len(manifests) == 1 else {"parts": manifests}
    for directory, part in zip(args.data, parts):
        if int(part.maze_seeds.max()) >= VALIDATION_SEED_BASE:
            print(f"error: {directory} holds frames of validation mazes (seed >= {VALIDATION_SEED_BASE})",
                  file=sys.stderr)
            return 2
        print(f"training frames: {len(part)} from {len(set(part.maze_seeds.tolist()))} mazes in {directory}")
    frames = BevFrames.concatenate(parts)
    validation = frames_for_seeds(maze_seed_range(VALIDATION_SEED_BASE, args.val_mazes), args.val_frames_per_maze)
    worlds = sorted({m.get("world", "builtin") for m in manifests} - {"builtin"})
    if worlds and args.val_world_mazes > 0:
        validation = BevFrames.concatenate([validation] + [
            render_canonical_frames(world, seed, args.val_frames_per_maze, sim_geometry())
            for world in worlds for seed in maze_seed_range(VALIDATION_SEED_BASE, args.val_world_mazes)])
        print(f"validation: {len(validation)} frames ({args.val_mazes} built-in mazes, {args.val_world_mazes} of "
              f"each of {', '.join(worlds)})")
    trainer = _Trainer(args, frames, validation)
    if args.resume:
        error = trainer.resume()
        if error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    trainer.train()
    best = args.out / "best.pt"
    print(f"best validation (step {trainer.best_step}): {_brief(trainer.best_summary)}\nbest model: {best}")
    if args.export:
        model, info, bias, calibrated = _pick_export(trainer, best, validation)
        info.update(data=manifest, data_dir=" ".join(map(str, args.data)), train_command=_command_line(args),
                    train_seconds=round(trainer.elapsed, 1), validation_calibrated=calibrated)
        if args.init is not None:
            info.update(init=trainer.init_info)
        save_checkpoint(args.export, model, info, bias)
        print(f"exported to {args.export} ({args.export.stat().st_size / 1e6:.2f} MB)")
    return 0


def _pick_export(trainer, best: Path, validation) -> tuple:
    """The model to export, its info, decision biases and calibrated validation metrics.

    best.pt is picked during training by metrics without decision biases, where the object F1 (few objects, and
    under-called before calibration) is noisy; so the final weights are calibrated as well and the one with the
    better calibrated score is exported (on the validation mazes, never the benchmark's).
    """
    import copy

    from spatial_memory_ros.perception.metrics import headline_score
    from spatial_memory_ros.perception.predictor import load_model
    from spatial_memory_ros.perception.training import calibrate, evaluate

    candidates = [load_model(best)[:2]]
    if trainer.step != trainer.best_step:
        final = copy.deepcopy(trainer.model).eval()
        candidates.append((final, {"step": trainer.step, "validation": evaluate(final, validation),
                                   "validation_mazes": trainer.args.val_mazes,
                                   "validation_frames": len(validation)}))
    picked = None
    for model, info in candidates:
        bias, calibrated = calibrate(model, validation)
        score = headline_score(calibrated)
        print(f"step {info['step']} with decision biases wall {bias.wall:+.1f}, object {bias.object:+.1f} from the "
              f"validation mazes: {_brief(calibrated)}")
        if picked is None or score > picked[0]:
            picked = (score, model, info, bias, calibrated)
    print(f"exporting step {picked[2]['step']}")
    return picked[1:]


class _Trainer:
    """The training loop's state: model, optimizer, schedule, random generators, best validation so far."""

    def __init__(self, args: argparse.Namespace, frames, validation) -> None:
        import numpy as np
        import torch

        from spatial_memory_ros.perception.frames import sim_geometry
        from spatial_memory_ros.perception.geometry import view_cone_mask
        from spatial_memory_ros.perception.model import BevModelConfig, build_model
        from spatial_memory_ros.perception.training import BevLossWeights, training_tensors

        self.args, self.validation = args, validation
        torch.manual_seed(args.seed)
        self.model = build_model(sim_geometry(), BevModelConfig(depth_bins=args.depth_bins))
        self.init_info = _initialise(self.model, args.init) if args.init is not None else None
        self.loss_weights = BevLossWeights(wall=args.wall_weight, wall_range=args.wall_range_weight)
        self.images, self.occupancy, self.objects = training_tensors(frames)
        self.view_mask = torch.from_numpy(view_cone_mask(self.model.geometry))
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, max_lr=args.lr, total_steps=args.steps,
                                                            pct_start=0.1)
        self.rng = np.random.default_rng([args.seed, 0xB7])
        self.step, self.elapsed = 0, 0.0
        self.best_score, self.best_step, self.best_summary = -math.inf, 0, {}
        args.out.mkdir(parents=True, exist_ok=True)

    def resume(self) -> str | None:
        """Load <out>/last.pt; returns an error message if it cannot continue this run."""
        import torch

        path = self.args.out / "last.pt"
        if not path.is_file():
            return f"--resume: no {path} to continue from"
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["steps"] != self.args.steps:
            return f"--resume: {path} was a run of {state['steps']} steps, not --steps {self.args.steps}"
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.step, self.elapsed = state["step"], state["elapsed"]
        self.best_score, self.best_step, self.best_summary = state["best_score"], state["best_step"], state["best"]
        print(f"resumed from {path} at step {self.step}")
        return None

    def train(self) -> None:
        """Run the remaining steps with a progress bar, validating and checkpointing every --val-every steps."""
        from tqdm import tqdm

        args = self.args
        progress = tqdm(total=args.steps, initial=self.step, unit="step", desc="train bev", disable=args.no_progress)
        started = time.monotonic() - self.elapsed
        self.model.train()
        while self.step < args.steps:
            parts = self._train_step()
            self.step += 1
            progress.update(1)
            progress.set_postfix(occ=f"{parts['occupancy']:.3f}", obj=f"{parts['object']:.3f}")
            if self.step % args.val_every == 0 or self.step == args.steps:
                self.elapsed = time.monotonic() - started
                summary = self._validate(parts)
                progress.write(f"step {self.step}: {_brief(summary)}")
        progress.close()

    def _train_step(self) -> dict[str, float]:
        import torch

        from spatial_memory_ros.perception.training import bev_loss, mirror_left_right

        index = torch.from_numpy(self.rng.integers(0, len(self.images), size=self.args.batch_size))
        flip = torch.from_numpy(self.rng.random(self.args.batch_size) < 0.5)
        images, occupancy, objects = mirror_left_right(self.images[index], self.occupancy[index],
                                                       self.objects[index], flip)
        pixels = images.permute(0, 3, 1, 2).float().div_(255.0)
        if self.args.augment:
            pixels = _augment(pixels, self.rng)
        logits = self.model(pixels)
        loss, parts = bev_loss(logits, occupancy, objects, self.view_mask, self.loss_weights, self.model.geometry)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.schedule.step()
        return parts

    def _validate(self, parts: dict[str, float]) -> dict:
        import torch

        from spatial_memory_ros.perception.metrics import headline_score
        from spatial_memory_ros.perception.predictor import save_checkpoint
        from spatial_memory_ros.perception.training import evaluate

        summary = evaluate(self.model, self.validation)
        score = headline_score(summary)
        record = {"step": self.step, "seconds": round(self.elapsed, 1), "lr": self.schedule.get_last_lr()[0],
                  "train_loss": parts, "validation": summary}
        with (self.args.out / "log.jsonl").open("a") as log:
            log.write(json.dumps(record) + "\n")
        if score > self.best_score:
            self.best_score, self.best_step, self.best_summary = score, self.step, summary
            save_checkpoint(self.args.out / "best.pt", self.model,
                            {"step": self.step, "validation": summary, "validation_mazes": self.args.val_mazes,
                             "validation_frames": len(self.validation)})
        state = {"steps": self.args.steps, "step": self.step, "elapsed": self.elapsed,
                 "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "schedule": self.schedule.state_dict(), "rng": self.rng.bit_generator.state,
                 "torch_rng": torch.get_rng_state(), "best_score": self.best_score, "best_step": self.best_step,
                 "best": self.best_summary}
        partial = self.args.out / "last.pt.partial"
        torch.save(state, partial)
        partial.replace(self.args.out / "last.pt")
        return summary


def _augment(pixels, rng):
    """Appearance augmentation of a batch (N, 3, H, W) in [0, 1]: brightness +-25%, contrast +-25%, per-channel
    gain +-8% (small enough to keep the target colours apart), Gaussian pixel noise of up to 3% of the range."""
    import torch

    count = len(pixels)
    gain = torch.from_numpy(rng.uniform(0.75, 1.25, (count, 1, 1, 1)) * rng.uniform(0.92, 1.08, (count, 3, 1, 1)))
    contrast = torch.from_numpy(rng.uniform(0.75, 1.25, (count, 1, 1, 1)))
    mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
    pixels = (pixels - mean) * contrast.float() + mean
    pixels = pixels * gain.float()
    noise = torch.from_numpy(rng.uniform(0.0, 0.03, (count, 1, 1, 1))).float()
    return (pixels + noise * torch.randn_like(pixels)).clamp_(0.0, 1.0)


def _initialise(model, path: Path) -> dict:
    """Copy the weights of the checkpoint at ``path`` into ``model``; a tensor the model has grown (the head's
    first layer when the depth path is added) is copied into its leading part and the rest set to zero, so the
    model starts out computing what the checkpoint did. Returns the checkpoint's training record."""
    import torch

    from spatial_memory_ros.perception.predictor import CHECKPOINT_FORMAT

    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise SystemExit(f"error: --init {path} is not a BEV predictor checkpoint")
    state = model.state_dict()
    for key, value in payload["state_dict"].items():
        if key not in state:
            raise SystemExit(f"error: --init {path}: {key} is not a weight of this model")
        target = state[key]
        if target.shape == value.shape:
            target.copy_(value)
        elif target.dim() == value.dim() and all(a >= b for a, b in zip(target.shape, value.shape)):
            target.zero_()
            target[tuple(slice(0, n) for n in value.shape)].copy_(value)
        else:
            raise SystemExit(f"error: --init {path}: {key} is {tuple(value.shape)}, the model needs "
                             f"{tuple(target.shape)}")
    info = payload.get("info", {})
    print(f"initialised from {path} ({info.get('train_command', 'unknown command')})")
    return {"path": str(path), "train_command": info.get("train_command"), "init": info.get("init"),
            "train_seconds": info.get("train_seconds")}


def _brief(summary: dict) -> str:
    if not summary:
        return "none"
    return (f"free IoU {summary['free_iou']:.3f}  wall IoU {summary['wall_iou']:.3f}  "
            f"object P/R/F1 {summary['object_precision']:.3f}/{summary['object_recall']:.3f}/"
            f"{summary['object_f1']:.3f}")


def _command_line(args: argparse.Namespace) -> str:
    return (f"spatial-memory train bev --data {' '.join(map(str, args.data))} --out {args.out} --steps {args.steps} "
            f"--batch-size {args.batch_size} --lr {args.lr} --weight-decay {args.weight_decay} --seed {args.seed} "
            f"--val-mazes {args.val_mazes} --val-frames-per-maze {args.val_frames_per_maze} "
            f"--val-every {args.val_every} --threads {args.threads} --depth-bins {args.depth_bins} "
            f"--wall-weight {args.wall_weight} --wall-range-weight {args.wall_range_weight}"
            + (f" --val-world-mazes {args.val_world_mazes}" if args.val_world_mazes != 4 else "")
            + (" --augment" if args.augment else "")
            + (f" --init {args.init}" if args.init else "") + (f" --export {args.export}" if args.export else ""))


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value
