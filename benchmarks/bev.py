"""Benchmark of the BEV predictor (issue 5).

1. Accuracy on unseen mazes (seeds 2,000,000 up, disjoint from training and validation): free IoU, wall IoU,
   object precision / recall / F1 of the shipped checkpoint, next to a trivial baseline measured on the same frames
   (every cell of the camera's view cone called free, no objects), and the model's wall IoU by range from the
   camera. Targets: free IoU >= 0.90, wall IoU >= 0.75, object F1 >= 0.90.
2. Latency per frame at batch 1 and 3 with 1 and 2 torch threads, for the shipped model and, as the baseline, an
   untrained model of SSM-PC's size (convs 32-64-128-256, 3 encoder + 3 decoder transformer layers of width 256 with
   8 heads, 64 learned queries, upsampled to a 250x250 RGBA view). Target: >= 100 frames/s at batch 3 on 2 threads.
3. End to end (``--end-to-end``, or ``--only-end-to-end`` to update that row alone): the memory maps' IoU after
   the same 3-robot demo run with predicted and with oracle BEVs, and within the predicted run the map the oracle
   BEVs would have given with the same poses.

4. Other worlds (issue 12; ``--world-sizes memory_maze:15,memory_maze:9``, ``--only-worlds`` to update those rows
   alone): the model on unseen Memory-Maze mazes against the world's own oracle, fed the raw image and behind the
   camera adapter, beside the view-cone-all-free baseline and the adapter's ceiling (a perfect canonical
   prediction brought back to the real grid). Targets there: free IoU >= 0.90, wall IoU >= 0.70, object F1 >= 0.80.

Prints a table and writes benchmarks/results/bev.json.
  .venv/bin/python benchmarks/bev.py [--quick] [--mazes 20] [--frames-per-maze 50] [--checkpoint PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "bev.json"
TARGETS = {"free_iou": 0.90, "wall_iou": 0.75, "object_f1": 0.90, "frames_per_s_batch3_2threads": 100.0}
RANGE_BANDS = {"<2 m": (0.0, 2.0), "2-4 m": (2.0, 4.0), "4-6 m": (4.0, 6.0), ">=6 m": (6.0, 99.0)}
"""Distance bands from the camera (cell centres) for the wall IoU by range."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--quick", action="store_true", help="5 mazes x 20 frames, fewer timing repeats")
    parser.add_argument("--mazes", type=int, default=20, help="unseen mazes for accuracy (default 20)")
    parser.add_argument("--frames-per-maze", type=int, default=50, help="frames per maze (default 50)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="BEV checkpoint (default: the shipped one)")
    parser.add_argument("--repeats", type=int, default=200, help="timed forward passes per setting (default 200)")
    parser.add_argument("--only-end-to-end", action="store_true",
                        help="run only the end-to-end row and update it in the existing JSON")
    parser.add_argument("--e2e-duration", type=float, default=60.0, help="sim seconds of each end-to-end demo")
    parser.add_argument("--end-to-end", action="store_true",
                        help="also measure map IoU of a 3-robot run with predicted vs oracle BEV (needs the nodes)")
    parser.add_argument("--world-sizes", default="memory_maze:15,memory_maze:9",
                        help="other worlds' rows, WORLD:SIZE comma-separated ('' for none; default "
                             "memory_maze:15,memory_maze:9)")
    parser.add_argument("--world-mazes", type=int, default=5, help="unseen mazes per other-world row (default 5)")
    parser.add_argument("--world-frames-per-maze", type=int, default=40,
                        help="frames per maze in the other worlds' rows (default 40)")
    parser.add_argument("--only-worlds", action="store_true",
                        help="run only the other worlds' rows and update them in the existing JSON")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    parser.add_argument("--omp-wait-policy", choices=("PASSIVE", "ACTIVE", "unset"), default="PASSIVE",
                        help="OMP_WAIT_POLICY for torch's threads (default PASSIVE: idle threads sleep instead of "
                             "spinning, which keeps 2 threads fast on a busy machine)")
    args = parser.parse_args(argv)
    if args.quick:
        args.mazes, args.frames_per_maze, args.repeats = 5, 20, 40
        args.world_mazes, args.world_frames_per_maze = 2, 20
    return args


# --------------------------------------------------------------------------------------------- accuracy


class WallBands:
    """Wall IoU by distance band from the robot (RANGE_BANDS), pooled over frames like BevMetrics."""

    def __init__(self, geometry) -> None:
        from spatial_memory_ros.perception.geometry import cell_ranges

        ranges = cell_ranges(geometry).reshape(geometry.bev_height, geometry.bev_width)
        self.bands = {name: (ranges >= low) & (ranges < high) for name, (low, high) in RANGE_BANDS.items()}
        self.counts = {name: [0, 0] for name in self.bands}  # wall intersection, union

    def update(self, predicted_occupancy, true_occupancy) -> None:
        """Add (N, H, W) occupancy grids (-1 / 0 / 100)."""
        import numpy as np

        predicted_wall, true_wall = predicted_occupancy == 100, true_occupancy == 100
        for name, band in self.bands.items():
            self.counts[name][0] += int(np.count_nonzero(predicted_wall & true_wall & band))
            self.counts[name][1] += int(np.count_nonzero((predicted_wall | true_wall) & band))

    def summary(self) -> dict:
        """Wall IoU per band (nan where neither has a wall)."""
        return {name: i / u if u else float("nan") for name, (i, u) in self.counts.items()}


def accuracy(predictor, mazes: int, frames_per_maze: int) -> dict:
    """Metrics of the predictor and of the everything-free baseline on frames of unseen mazes."""
    import numpy as np

    from spatial_memory_ros.perception.frames import BENCHMARK_SEED_BASE, maze_seed_range, render_maze_frames
    from spatial_memory_ros.perception.geometry import view_cone_mask
    from spatial_memory_ros.perception.metrics import BevMetrics

    seeds = maze_seed_range(BENCHMARK_SEED_BASE, mazes)
    model_metrics, baseline_metrics = (BevMetrics(predictor.geometry.class_names) for _ in range(2))
    everything_free = np.where(view_cone_mask(predictor.geometry), 0, -1).astype(np.int8)
    bands = WallBands(predictor.geometry)
    for seed in seeds:
        frames = render_maze_frames(seed, frames_per_maze)
        occupancy, objects = predictor.predict_arrays(frames.images)
        model_metrics.update(occupancy, objects, frames.occupancy, frames.object_class)
        baseline_metrics.update(np.repeat(everything_free[None], len(frames), 0), np.zeros_like(objects),
                                frames.occupancy, frames.object_class)
        bands.update(occupancy, frames.occupancy)
    return {"maze_seeds": [seeds[0], seeds[-1]], "model": model_metrics.summary(),
            "model_wall_iou_by_range": bands.summary(),
            "baseline_everything_free": baseline_metrics.summary()}


def world_accuracy(predictor, world: str, size: int, mazes: int, frames_per_maze: int) -> dict:
    """Issue 12: the predictor on frames of unseen mazes of ``world`` (seeds 2,000,000 up, fixed ``size``), scored
    against the world's own oracle (its camera's view cone, the model's 32 x 32 grid of 0.25 m) with BevMetrics in
    the world's classes. Rows: the model fed the raw image (model's view cone; object slots matched to the world's
    classes by name), the model behind the CameraAdapter (perception/camera_adapter.py: image re-projected to the
    model's camera, BEV rescaled to real metres), and the baseline (every cell of the camera's view cone free)."""
    import numpy as np

    from spatial_memory_ros.perception.camera_adapter import class_slots, real_view_mask
    from spatial_memory_ros.perception.frames import (BENCHMARK_SEED_BASE, render_canonical_frames,
                                                      render_world_frames, world_camera)
    from spatial_memory_ros.perception.metrics import BevMetrics
    from spatial_memory_ros.sim.interface import world_class_names

    names = world_class_names(world)
    camera = world_camera(world)
    adapter = predictor.for_camera(camera, names)
    slots = class_slots(predictor.geometry.class_names, names)
    raw, adapted, baseline, ceiling = (BevMetrics(names) for _ in range(4))
    adapted_bands, ceiling_bands = WallBands(predictor.geometry), WallBands(predictor.geometry)
    everything_free = np.where(real_view_mask(predictor.geometry, camera), 0, -1).astype(np.int8)
    started = time.monotonic()
    for seed in range(BENCHMARK_SEED_BASE, BENCHMARK_SEED_BASE + mazes):
        frames = render_world_frames(world, seed, frames_per_maze, size=size)
        occupancy, objects = predictor.predict_arrays(frames.images)
        raw.update(occupancy, slots[objects], frames.occupancy, frames.object_class)
        adapted_occupancy, adapted_objects = adapter.predict_arrays(frames.images)
        adapted.update(adapted_occupancy, adapted_objects, frames.occupancy, frames.object_class)
        adapted_bands.update(adapted_occupancy, frames.occupancy)
        baseline.update(np.repeat(everything_free[None], len(frames), 0), np.zeros_like(objects),
                        frames.occupancy, frames.object_class)
        if hasattr(adapter, "raster"):  # a floor-boundary model: the true boundaries through the same geometry
            best_occupancy, best_objects = true_boundary_prediction(world, seed, frames_per_maze, size, adapter)
            ceiling.update(best_occupancy, best_objects, frames.occupancy, frames.object_class)
            ceiling_bands.update(best_occupancy, frames.occupancy)
        elif not adapter.identity:  # the same poses' oracle drawn in the model's canonical grid, brought back
            canonical = render_canonical_frames(world, seed, frames_per_maze, predictor.geometry,
                                                adapter.canonical_height, size=size)
            ceiling.update(*_perfect_canonical_prediction(canonical, adapter), frames.occupancy, frames.object_class)
    return {"world": world, "size": size, "mazes": mazes, "frames_per_maze": frames_per_maze,
            "maze_seeds": [BENCHMARK_SEED_BASE, BENCHMARK_SEED_BASE + mazes - 1], "camera": camera.as_dict(),
            "model_raw_image": raw.summary(), "model_camera_adapter": adapted.summary(),
            "baseline_everything_free": baseline.summary(),
            "adapter_ceiling_canonical_oracle": ceiling.summary() if ceiling.frames else None,
            "model_camera_adapter_wall_iou_by_range": adapted_bands.summary(),
            "ceiling_wall_iou_by_range": ceiling_bands.summary() if ceiling_bands.counts["<2 m"][1] else None,
            "seconds": round(time.monotonic() - started, 1)}


def true_boundary_prediction(world: str, seed: int, frames: int, size: int, adapter) -> tuple:
    """A floor-boundary model's ceiling: the true per-column ranges of the same poses as render_world_frames
    (same seed, same draws) through the same rasterisation, in the world's classes."""
    from spatial_memory_ros.perception.boundary_data import true_column_ranges

    ranges, classes = true_column_ranges(world, seed, frames, size, adapter.camera, adapter.geometry)
    occupancy, objects = adapter.raster.rasterise(ranges, classes)
    return occupancy, adapter.slots[objects]


def _perfect_canonical_prediction(canonical, adapter) -> tuple:
    """What the adapter makes of a perfect prediction in the canonical grid (the canonical oracle as one-hot
    logits, resampled to the real grid): the ceiling its coarser canonical cells leave (0.25 m / scale)."""
    import numpy as np
    import torch

    from spatial_memory_ros.perception.camera_adapter import resample_logits
    from spatial_memory_ros.perception.predictor import DecisionBias, decode_logits

    occupancy = canonical.occupancy
    logits = np.zeros((len(occupancy), 3 + adapter.predictor.geometry.num_object_labels) + occupancy.shape[1:],
                      np.float32)
    for channel, value in enumerate((-1, 0, 100)):
        logits[:, channel] = 10.0 * (occupancy == value)
    for label in range(adapter.predictor.geometry.num_object_labels):
        logits[:, 3 + label] = 10.0 * (canonical.object_class == label)
    resampled = resample_logits(torch.from_numpy(logits), adapter.sample_grid, adapter.outside)
    predicted, objects = decode_logits(resampled, adapter.view_mask, DecisionBias())
    return predicted, adapter.slots[objects]


# ---------------------------------------------------------------------------------------------- latency


def ssm_pc_sized_model():
    """An untrained model with SSM-PC's BEV predictor sizes (our reading of them), for latency only.

    64x64 RGB -> 4 stride-2 convs (32, 64, 128, 256) -> 4 column tokens of width 256 -> transformer encoder
    (3 layers, 8 heads, feed-forward 1024) -> transformer decoder (3 layers) with 64 learned queries -> 8x8 grid
    upsampled by 5 transposed convs to 256x256 and resized to a 250x250 RGBA view.
    """
    import torch
    from torch import nn

    class SsmPcSizedBev(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            widths = (3, 32, 64, 128, 256)
            self.encoder = nn.Sequential(*(layer for k in range(4) for layer in (
                nn.Conv2d(widths[k], widths[k + 1], 3, stride=2, padding=1), nn.BatchNorm2d(widths[k + 1]),
                nn.ReLU())))
            self.project = nn.Linear(256 * 4, 256)
            sizes = dict(d_model=256, nhead=8, dim_feedforward=1024, dropout=0.0, batch_first=True)
            self.transformer = nn.Transformer(num_encoder_layers=3, num_decoder_layers=3, **sizes)
            self.queries = nn.Parameter(torch.randn(1, 64, 256) * 0.02)
            channels = (256, 128, 64, 32, 16)
            self.upsample = nn.Sequential(*(layer for k in range(4) for layer in (
                nn.ConvTranspose2d(channels[k], channels[k + 1], 4, stride=2, padding=1), nn.ReLU())),
                nn.ConvTranspose2d(16, 4, 4, stride=2, padding=1))

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            features = self.encoder(images)
            batch, channels, rows, columns = features.shape
            tokens = self.project(features.permute(0, 3, 1, 2).reshape(batch, columns, channels * rows))
            decoded = self.transformer(tokens, self.queries.expand(batch, -1, -1))
            grid = decoded.transpose(1, 2).reshape(batch, 256, 8, 8)
            return nn.functional.interpolate(self.upsample(grid), size=(250, 250), mode="bilinear")

    return SsmPcSizedBev().eval()


def seconds_per_call(function, repeats: int) -> float:
    """Median wall seconds of one call, after a warm-up."""
    for _ in range(max(3, repeats // 10)):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def latency(predictor, repeats: int) -> list[dict]:
    """Per-frame latency and frames/s of the predictor (uint8 images in, BEV arrays out) and of the SSM-PC-sized
    model (float tensor in, logits out), at batch 1 and 3 with 1 and 2 threads."""
    import numpy as np
    import torch

    from spatial_memory_ros.perception.frames import BENCHMARK_SEED_BASE, render_maze_frames
    from spatial_memory_ros.perception.model import images_to_tensor

    from spatial_memory_ros.perception.frames import world_camera

    images = render_maze_frames(BENCHMARK_SEED_BASE, 3).images
    reference = ssm_pc_sized_model()
    adapter = predictor.for_camera(world_camera("memory_maze"))  # issue 12: re-projection + BEV resampling
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (1, 3):
            ours = seconds_per_call(lambda: predictor.predict_arrays(images[:batch]), repeats)
            adapted = seconds_per_call(lambda: adapter.predict_arrays(images[:batch]), repeats)
            tensor = images_to_tensor(np.ascontiguousarray(images[:batch]))
            with torch.inference_mode():
                theirs = seconds_per_call(lambda: reference(tensor), max(10, repeats // 10))
            rows.append({"threads": threads, "batch": batch, "ms_per_frame": 1e3 * ours / batch,
                         "frames_per_s": batch / ours, "camera_adapter_frames_per_s": batch / adapted,
                         "ssm_pc_sized_ms_per_frame": 1e3 * theirs / batch,
                         "speedup_vs_ssm_pc_sized": theirs / ours})
    return rows


def parameter_count(model) -> int:
    """Number of weights in a torch module."""
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------- end to end


def end_to_end_map_iou(duration: float = 60.0, robots: int = 3, seed: int = 0) -> dict:
    """Memory-map IoU after the same ``robots``-robot run with predicted vs oracle BEVs (issue 5, third row).

    Runs ``spatial-memory demo`` twice with the same seed, ``--bev predicted`` and ``--bev oracle``, and reads each
    robot's map scores from the summaries; the predicted run also reports the map its robots would have fused
    from the oracle BEVs with the same poses (the same-run comparison, free of the runs drifting apart).
    """
    import json
    import subprocess
    import tempfile

    cli = Path(sys.prefix) / "bin" / "spatial-memory"
    runs = {}
    with tempfile.TemporaryDirectory() as out:
        for source in ("predicted", "oracle"):
            command = [str(cli), "demo", "--duration", str(duration), "--robots", str(robots), "--seed", str(seed),
                       "--bev", source, "--no-progress", "--out", f"{out}/{source}"]
            print(f"end to end: {' '.join(command[1:])}", file=sys.stderr, flush=True)
            subprocess.run(command, check=True, capture_output=True, text=True)
            (run_dir,) = Path(out, source).iterdir()
            runs[source] = json.loads((run_dir / "summary.json").read_text())
    rows = []
    for robot, predicted in runs["predicted"]["per_robot"].items():
        oracle = runs["oracle"]["per_robot"][robot]
        rows.append({"robot": robot, "predicted_map_iou": predicted["map"]["map_iou"],
                     "oracle_run_map_iou": oracle["map"]["map_iou"],
                     "same_run_oracle_bev_map_iou": predicted["map_with_oracle_bev"]["map_iou"],
                     "predicted_accuracy_seen": predicted["map"]["accuracy_seen"],
                     "same_run_oracle_accuracy_seen": predicted["map_with_oracle_bev"]["accuracy_seen"]})
    mean = {key: sum(r[key] for r in rows) / len(rows) for key in rows[0] if key != "robot"}
    return {"status": "measured", "duration": duration, "robots": robots, "seed": seed, "rows": rows, "mean": mean}


def print_end_to_end(end_to_end: dict) -> None:
    """The end-to-end rows, or why there are none."""
    if end_to_end.get("status") != "measured":
        print(f"\nend to end map IoU: {end_to_end.get('status')}")
        return
    print(f"\nend to end map IoU after {end_to_end['duration']:g} sim s, {end_to_end['robots']} robots, "
          f"seed {end_to_end['seed']}")
    print(f"{'robot':<8}{'predicted':>10}{'oracle run':>11}{'oracle BEV, same run':>22}"
          f"{'accuracy seen pred/oracle':>27}")
    for row in end_to_end["rows"] + [{"robot": "mean", **end_to_end["mean"]}]:
        print(f"{row['robot']:<8}{row['predicted_map_iou']:>10.3f}{row['oracle_run_map_iou']:>11.3f}"
              f"{row['same_run_oracle_bev_map_iou']:>22.3f}{row['predicted_accuracy_seen']:>15.3f} / "
              f"{row['same_run_oracle_accuracy_seen']:.3f}")


# ------------------------------------------------------------------------------------------------- main


def print_table(result: dict) -> None:
    """The human-readable summary of a result dict."""
    acc = result["accuracy"]
    model, baseline = acc["model"], acc["baseline_everything_free"]
    print(f"\nBEV accuracy on {result['mazes']} unseen mazes x {result['frames_per_maze']} frames "
          f"(seeds {acc['maze_seeds'][0]}..{acc['maze_seeds'][1]})")
    print(f"{'metric':<22}{'model':>9}{'baseline':>10}{'target':>8}  met")
    for key, label in (("free_iou", "free IoU"), ("wall_iou", "wall IoU"), ("object_precision", "object precision"),
                       ("object_recall", "object recall"), ("object_f1", "object F1"),
                       ("object_cell_accuracy", "object cell accuracy")):
        target = TARGETS.get(key)
        met = "" if target is None else ("yes" if model[key] >= target else "NO")
        print(f"{label:<22}{model[key]:>9.3f}{baseline[key]:>10.3f}{'' if target is None else f'{target:.2f}':>8}"
              f"  {met}")
    print("object cell accuracy per class: " + ", ".join(
        f"{name} {value:.2f}" for name, value in model["object_cell_accuracy_per_class"].items()))
    if "model_wall_iou_by_range" in acc:
        print("wall IoU by range: " + ", ".join(f"{name} {value:.2f}"
                                                for name, value in acc["model_wall_iou_by_range"].items()))
    print(f"\nlatency per frame ({result['parameters']:,} weights vs SSM-PC-sized "
          f"{result['ssm_pc_sized_parameters']:,}); OMP_WAIT_POLICY {result['omp_wait_policy']}, "
          f"load average {result['load_average']} on {result['cpu_count']} CPUs")
    print(f"{'threads':>7}{'batch':>6}{'ms/frame':>10}{'frames/s':>10}{'SSM-PC ms/frame':>17}{'speed-up':>10}"
          f"{'adapter frames/s':>18}")
    for row in result["latency"]:
        print(f"{row['threads']:>7}{row['batch']:>6}{row['ms_per_frame']:>10.2f}{row['frames_per_s']:>10.0f}"
              f"{row['ssm_pc_sized_ms_per_frame']:>17.1f}{row['speedup_vs_ssm_pc_sized']:>9.0f}x"
              f"{row.get('camera_adapter_frames_per_s', float('nan')):>18.0f}")
    print(f"target >= {TARGETS['frames_per_s_batch3_2threads']:.0f} frames/s at batch 3 on 2 threads: "
          f"{'met' if result['meets_latency_target'] else 'NOT met'}")
    print_end_to_end(result["end_to_end"])
    print_worlds(result.get("worlds", []))


def print_worlds(rows: list[dict]) -> None:
    """The other worlds' rows (issue 12)."""
    for row in rows:
        print(f"\n{row['world']} {row['size']}x{row['size']}: {row['mazes']} unseen mazes x {row['frames_per_maze']} "
              f"frames (seeds {row['maze_seeds'][0]}..{row['maze_seeds'][1]}), {row['seconds']:.0f} s")
        ceiling = row.get("adapter_ceiling_canonical_oracle") or {}
        print(f"{'metric':<22}{'raw image':>10}{'camera adapter':>16}{'baseline':>10}{'adapter ceiling':>17}")
        for key, label in (("free_iou", "free IoU"), ("wall_iou", "wall IoU"), ("object_precision", "object precision"),
                           ("object_recall", "object recall"), ("object_f1", "object F1")):
            print(f"{label:<22}{row['model_raw_image'][key]:>10.3f}{row['model_camera_adapter'][key]:>16.3f}"
                  f"{row['baseline_everything_free'][key]:>10.3f}{ceiling.get(key, float('nan')):>17.3f}")
        by_range = row.get("model_camera_adapter_wall_iou_by_range")
        if by_range:
            best = row.get("ceiling_wall_iou_by_range") or {}
            print("wall IoU by range (camera adapter / ceiling): " + ", ".join(
                f"{name} {value:.2f} / {best.get(name, float('nan')):.2f}" for name, value in by_range.items()))


def world_rows(predictor, args: argparse.Namespace) -> list[dict]:
    """The rows of ``--world-sizes``; a world that cannot start here gives a row that says why."""
    from spatial_memory_ros.sim.interface import WorldUnavailable

    rows = []
    for item in filter(None, (part.strip() for part in args.world_sizes.split(","))):
        world, size = item.split(":")
        try:
            rows.append(world_accuracy(predictor, world, int(size), args.world_mazes, args.world_frames_per_maze))
        except WorldUnavailable as error:
            print(f"{world}: not measured ({error})", file=sys.stderr)
    return rows


def update_end_to_end(path: Path, duration: float) -> int:
    """Measure the end-to-end row and store it in an existing result file."""
    result = json.loads(path.read_text()) if path.exists() else {"benchmark": "bev"}
    result["end_to_end"] = end_to_end_map_iou(duration=duration)
    print_end_to_end(result["end_to_end"])
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON."""
    args = parse_args(argv)
    if args.only_end_to_end:
        return update_end_to_end(args.out, args.e2e_duration)
    if args.omp_wait_policy != "unset":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy  # read once, when torch starts its thread pool
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import torch

    from spatial_memory_ros.perception.predictor import DEFAULT_CHECKPOINT, CheckpointError, load_predictor

    try:
        predictor = load_predictor(args.checkpoint or DEFAULT_CHECKPOINT)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    torch.set_num_threads(1)
    if args.only_worlds:
        result = json.loads(args.out.read_text()) if args.out.exists() else {"benchmark": "bev"}
        result["worlds"] = world_rows(predictor, args)
        print_worlds(result["worlds"])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
        return 0
    started = time.monotonic()
    result = {"benchmark": "bev", "quick": args.quick, "mazes": args.mazes, "frames_per_maze": args.frames_per_maze,
              "checkpoint": str(args.checkpoint or DEFAULT_CHECKPOINT), "machine": platform.platform(),
              "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
              "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
              "parameters": parameter_count(predictor.model),
              "ssm_pc_sized_parameters": parameter_count(ssm_pc_sized_model())}
    result["accuracy"] = accuracy(predictor, args.mazes, args.frames_per_maze)
    result["load_average"] = [round(v, 2) for v in os.getloadavg()]
    result["latency"] = latency(predictor, args.repeats)
    batch3 = next(r for r in result["latency"] if r["threads"] == 2 and r["batch"] == 3)
    result["meets_latency_target"] = batch3["frames_per_s"] >= TARGETS["frames_per_s_batch3_2threads"]
    model = result["accuracy"]["model"]
    result["meets_accuracy_targets"] = {key: model[key] >= TARGETS[key] for key in ("free_iou", "wall_iou",
                                                                                      "object_f1")}
    result["targets"] = TARGETS
    result["end_to_end"] = (end_to_end_map_iou(duration=args.e2e_duration) if args.end_to_end
                            else {"status": "skipped (pass --end-to-end)"})
    result["worlds"] = world_rows(predictor, args)
    result["seconds"] = round(time.monotonic() - started, 1)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
