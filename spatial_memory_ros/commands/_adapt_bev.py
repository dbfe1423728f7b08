"""``spatial-memory train bev --bag BAG --labels scan|depth``: adapt the camera BEV predictor to a robot's own camera
from a recorded bag, labelled by the robot's own LaserScan or depth camera (issue 13). The work is in
recording/sensor_bags.py (pairs from the bag), perception/self_supervised.py (labels, masks, checks) and
perception/adaptation.py (the fine-tuning); this file reads the options and writes the checkpoint and its card."""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

DEFAULT_LR = 6e-4
EXAMPLE = """adapting to a robot's camera (a bag from `spatial-memory record --adaptation`):
  spatial-memory train bev --bag runs/robot-bag --labels scan --camera-height 0.3 --out runs/adapt \\
      --export bev_robot.pt        # then: robot.launch.py ... bev_checkpoint:=bev_robot.pt
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the bag mode of ``train bev``."""
    group = parser.add_argument_group("adapting to a robot's own camera from a bag (--bag)")
    group.add_argument("--bag", type=Path, default=None,
                       help="a rosbag2 bag with the camera (image_raw + camera_info) and a scan or depth image: "
                            "fine-tune --init (default: the shipped bev.pt) on its frames, labelled by --labels")
    group.add_argument("--labels", choices=("scan", "depth"), default="scan",
                       help="what labels the camera frames: the LaserScan or the depth image (default scan)")
    group.add_argument("--stamp-tolerance", type=float, default=0.05,
                       help="a camera frame pairs with the sensor message nearest in header stamp if at most this "
                            "many seconds apart (default 0.05)")
    group.add_argument("--namespace", default=None, help="the robot's namespace in the bag (default: the one "
                       "namespace that has the topics)")
    for role, default in (("image", "camera/image_raw"), ("info", "camera/camera_info"), ("scan", "scan"),
                          ("depth", "camera/depth")):
        group.add_argument(f"--{role}-topic", default=None, help=f"the {role} topic (default <namespace>/{default})")
    group.add_argument("--camera-height", type=float, default=0.5,
                       help="the camera's optical centre above the floor, m (default 0.5, the built-in sim's)")
    group.add_argument("--camera-pitch", type=float, default=0.0, help="the camera's pitch, rad, down positive")
    group.add_argument("--camera-forward", type=float, default=0.0,
                       help="the camera's optical centre ahead of the robot's centre, m")
    group.add_argument("--scan-x", type=float, default=0.0, help="the scan frame ahead of the robot's centre, m")
    group.add_argument("--scan-y", type=float, default=0.0, help="the scan frame left of the robot's centre, m")
    group.add_argument("--scan-yaw", type=float, default=0.0, help="the scan frame's yaw on the robot, rad")
    group.add_argument("--epochs", type=int, default=6, help="passes over the bag's training pairs (default 6)")
    group.add_argument("--validation-fraction", type=float, default=0.2,
                       help="the tail of the recording held out for validation (default 0.2)")
    group.add_argument("--rehearse", type=int, default=1600,
                       help="frames of the checkpoint's own camera (built-in sim) mixed into every batch, against "
                            "the starting model's answers, so it keeps what it knew; 0: none (default 1600)")
    group.add_argument("--stride", type=int, default=1, help="use every n-th pair of the bag (default 1)")
    group.add_argument("--adapt-layers", choices=("encoder", "all"), default="all",
                       help="what adapts: all layers (default) or the image encoder only")
    group.add_argument("--rehearse-weight", type=float, default=10.0,
                       help="weight of the rehearsal (distillation) term against the bag's (default 10)")


def run(args: argparse.Namespace) -> int:
    """Read the bag, check the pairs, fine-tune, export; returns a process exit code."""
    import torch

    from spatial_memory_ros.perception.adaptation import AdaptationConfig, AdaptationRun
    from spatial_memory_ros.perception.predictor import DEFAULT_CHECKPOINT, BevPredictor, CheckpointError
    from spatial_memory_ros.perception.self_supervised import AdaptationDataError
    from spatial_memory_ros.recording.bags import BagError

    torch.set_num_threads(args.threads)
    args.lr = DEFAULT_LR if args.lr is None else args.lr
    args.export = args.export or args.out / "adapted.pt"
    started = time.monotonic()
    init = args.init or DEFAULT_CHECKPOINT
    try:
        predictor = BevPredictor.load(init)
        pairs, camera = _read(args, predictor)
        train, heldout = pairs.pairs.split(args.validation_fraction)
        adapter = predictor.for_camera(camera)
        train.check(adapter.view_mask, heldout, source=str(args.bag))
    except (BagError, AdaptationDataError, CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.bag}: {pairs.pairing.describe()}; {len(train)} training, {len(heldout)} held-out (the last "
          f"{100 * args.validation_fraction:.0f}% of the recording); labelled cells in the camera's view "
          f"{train.counts(adapter.view_mask)}")
    config = AdaptationConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                              weight_decay=args.weight_decay, wall_weight=args.wall_weight, seed=args.seed,
                              rehearsal=0.5 if args.rehearse > 0 else 0.0, layers=args.adapt_layers,
                              rehearsal_weight=args.rehearse_weight)
    rehearsal, original = _rehearsal_frames(args.rehearse)
    model, info, bias = _load_raw(init)
    run_ = AdaptationRun(model, bias, camera, train, heldout, args.out, config,
                         float(info.get("camera_height", 0.5)), rehearsal, original)
    if args.resume:
        error = run_.resume()
        if error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"resumed from {args.out / 'last.pt'} after epoch {run_.epoch}")
    history = _train(run_, args)
    best = _export(run_, init, args.export, args, pairs, camera, time.monotonic() - started)
    first, chosen = history[0], next(r for r in history if r.epoch == run_.best_epoch)
    print(f"held-out pairs, free / wall IoU: before {first.heldout['free_iou']:.3f} / "
          f"{first.heldout['wall_iou']:.3f}, after (epoch {chosen.epoch}) {chosen.heldout['free_iou']:.3f} / "
          f"{chosen.heldout['wall_iou']:.3f}")
    print(f"wrote {best} and its model card {best.with_suffix('.md')}")
    return 0


def _read(args: argparse.Namespace, predictor):
    """The bag's pairs (images re-projected to the model's camera) and the camera (intrinsics + mount)."""
    from spatial_memory_ros.perception.camera_adapter import CameraAdapter
    from spatial_memory_ros.recording.sensor_bags import LabelSensor, read_pairs
    from spatial_memory_ros.types import CameraModel, GridGeometry, Pose2D

    geometry = predictor.geometry
    grid = GridGeometry(geometry.bev_resolution, geometry.bev_width, geometry.bev_height, *geometry.bev_origin)
    sensor = LabelSensor(args.labels, Pose2D(args.scan_x, args.scan_y, args.scan_yaw), args.camera_height,
                         args.camera_pitch, args.camera_forward, max_range=geometry.view_range)
    adapters: dict[tuple, CameraAdapter] = {}

    def camera_of(intrinsics: tuple) -> CameraModel:
        return CameraModel(*intrinsics, args.camera_height, args.camera_forward, args.camera_pitch)

    def canonical(rgb, intrinsics):
        if intrinsics not in adapters:
            adapters[intrinsics] = predictor.for_camera(camera_of(intrinsics))
        return adapters[intrinsics].canonical_images(rgb)[0]

    topics = {"image": args.image_topic, "info": args.info_topic, "scan": args.scan_topic,
              "depth": args.depth_topic}
    pairs = read_pairs(args.bag, sensor, grid, args.stamp_tolerance, args.namespace, topics, canonical, args.stride)
    return pairs, camera_of(pairs.intrinsics)


def _load_raw(path: Path):
    """The checkpoint's model (not fused, trainable), info and decision biases."""
    from spatial_memory_ros.perception.predictor import load_model

    return load_model(path)


def _rehearsal_frames(count: int):
    """(training, validation) frames of the built-in world's camera with true BEVs, or (None, None)."""
    if count <= 0:
        return None, None
    from spatial_memory_ros.perception.frames import VALIDATION_SEED_BASE, frames_for_seeds, maze_seed_range

    per_maze = 40
    mazes = max(1, -(-count // per_maze))
    return (frames_for_seeds(maze_seed_range(0, mazes), per_maze),
            frames_for_seeds(maze_seed_range(VALIDATION_SEED_BASE, 5), 40))


def _train(run_, args: argparse.Namespace):
    from tqdm import tqdm

    bar = tqdm(total=run_.total_steps, initial=run_.step, unit="step", desc="adapt bev",
               disable=True if args.no_progress else None)   # None: quiet when stderr is not a terminal

    def progress(step: int, total: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", epoch=run_.epoch + 1)

    history = run_.train(progress)
    bar.close()
    for record in history:
        original = (f"; original camera free / wall {record.original['free_iou']:.3f} / "
                    f"{record.original['wall_iou']:.3f}" if record.original else "")
        print(f"epoch {record.epoch}: loss {record.loss:.3f}, held-out free / wall IoU "
              f"{record.heldout['free_iou']:.3f} / {record.heldout['wall_iou']:.3f}{original}")
    return history


def command_line(args: argparse.Namespace, init: Path) -> str:
    """The command that repeats this adaptation, every option spelled out."""
    options = ["--bag", args.bag, "--labels", args.labels, "--init", init, "--stamp-tolerance", args.stamp_tolerance]
    for name in ("namespace", "image_topic", "info_topic", "scan_topic", "depth_topic"):
        if getattr(args, name):
            options += [f"--{name.replace('_', '-')}", getattr(args, name)]
    for name in ("camera_height", "camera_pitch", "camera_forward", "scan_x", "scan_y", "scan_yaw", "epochs",
                 "validation_fraction", "rehearse", "stride", "adapt_layers", "rehearse_weight", "batch_size", "lr",
                 "weight_decay", "wall_weight", "seed", "threads", "out", "export"):
        if getattr(args, name) is not None:
            options += [f"--{name.replace('_', '-')}", getattr(args, name)]
    return "spatial-memory train bev " + " ".join(shlex.quote(str(value)) for value in options)


def _export(run_, init: Path, export: Path, args: argparse.Namespace, pairs, camera, seconds: float) -> Path:
    """Write the best epoch's model to ``export`` with the run's data, command and metrics, and its card."""
    from spatial_memory_ros.perception.adaptation_card import model_card
    from spatial_memory_ros.perception.predictor import load_model, save_checkpoint

    model, _, bias = load_model(args.out / "best.pt")
    _, base_info, _ = load_model(init)
    command = command_line(args, init)
    info = dict(base_info)
    info.update(adaptation={
        "base_checkpoint": str(init), "bag": str(args.bag), "labels": args.labels, "topics": pairs.topics,
        "stamp_tolerance_s": args.stamp_tolerance, "pairing": pairs.pairing.describe(), "stride": args.stride,
        "pairs": {"train": len(run_.train_set), "heldout": len(run_.heldout)}, "refused": pairs.refused,
        "camera": camera.as_dict(), "config": dict(run_.config.__dict__),
        "rehearsal_frames": 0 if run_.rehearsal is None else len(run_.rehearsal[0]),
        "epochs": [{"epoch": r.epoch, "loss": r.loss, "heldout": r.heldout, "original": r.original}
                   for r in run_.history],
        "best_epoch": run_.best_epoch, "command": command, "seconds": round(seconds, 1),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    save_checkpoint(export, model, info, bias)
    export.with_suffix(".md").write_text(model_card(info["adaptation"], export))
    return export
