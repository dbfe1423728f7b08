"""The model card of an adapted BEV checkpoint (plain text, no torch): what it was adapted from and on, the command,
when and how long, and the held-out scores before and after, per epoch."""
from __future__ import annotations

import math
from pathlib import Path


def model_card(adaptation: dict, checkpoint: Path) -> str:
    """Markdown for ``checkpoint`` from the ``adaptation`` info that train bev --bag stores in it."""
    camera = adaptation["camera"]
    epochs = adaptation["epochs"]
    first = epochs[0]
    best = next(e for e in epochs if e["epoch"] == adaptation["best_epoch"])
    lines = [
        f"# {checkpoint.name}: the BEV predictor adapted to a robot's camera",
        "",
        f"Fine-tuned from `{adaptation['base_checkpoint']}` on the camera frames of the bag `{adaptation['bag']}`, "
        f"labelled by its {adaptation['labels']} (geometric BEVs, perception/scan_bev.py or depth_bev.py); cells the "
        f"sensor did not see carried no loss. Written {adaptation['date_utc']} in {adaptation['seconds']:.0f} s.",
        "",
        "## Data",
        f"- topics: {', '.join(f'{role} `{topic}`' for role, topic in adaptation['topics'].items())}",
        f"- pairing by header stamp, tolerance {adaptation['stamp_tolerance_s']} s: {adaptation['pairing']}"
        + (f" (every {adaptation['stride']}th used)" if adaptation.get("stride", 1) > 1 else ""),
        f"- {adaptation['pairs']['train']} training pairs, {adaptation['pairs']['heldout']} held out (the tail of "
        f"the recording); refused messages: {adaptation['refused'] or 'none'}",
        f"- camera: {camera['width']}x{camera['height']}, fx {camera['fx']:.2f}, fy {camera['fy']:.2f}, cx "
        f"{camera['cx']:.2f}, cy {camera['cy']:.2f}; mount {camera['mount_height']:.3f} m up, "
        f"{camera['mount_forward']:.3f} m ahead, pitched {math.degrees(camera['mount_pitch']):.2f} deg down",
        f"- rehearsal: {adaptation['rehearsal_frames']} frames of the checkpoint's own camera (built-in sim), "
        f"distilled from the starting model, in every batch" if adaptation["rehearsal_frames"] else
        "- rehearsal: none",
        "",
        "## Command",
        "```",
        adaptation["command"],
        "```",
        f"Configuration: {adaptation['config']}",
        "",
        "## Metrics",
        "Held-out pairs: free and wall IoU against the sensor's labels on the cells it saw. Original camera: "
        "BevMetrics against the true BEV on built-in validation mazes (when rehearsed).",
        "",
        "| epoch | train loss | held-out free IoU | held-out wall IoU | original free IoU | original wall IoU |",
        "|---|---|---|---|---|---|",
    ]
    for e in epochs:
        original = e["original"] or {}
        mark = " (exported)" if e["epoch"] == best["epoch"] else (" (before)" if e is first else "")
        lines.append(f"| {e['epoch']}{mark} | {_number(e['loss'])} | {_number(e['heldout']['free_iou'])} | "
                     f"{_number(e['heldout']['wall_iou'])} | {_number(original.get('free_iou'))} | "
                     f"{_number(original.get('wall_iou'))} |")
    lines += ["", f"Exported: epoch {best['epoch']}, the best held-out free + wall IoU. Run it with "
              f"`ros2 launch spatial_memory_ros robot.launch.py bev_checkpoint:={checkpoint} camera_height:="
              f"{camera['mount_height']:g} camera_pitch:={camera['mount_pitch']:g} camera_forward:="
              f"{camera['mount_forward']:g}` (bev_predictor: `checkpoint`, `use_camera_info:=true` and the mount).", ""]
    return "\n".join(lines)


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}"
