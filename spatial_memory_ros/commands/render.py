"""spatial-memory render RUN_OR_BAG: PNG snapshots and an MP4 of a recorded run, for people without RViz.

Each frame shows the true maze with every robot's true and estimated trail, and per robot its map, location
belief, trails, partners (as that robot believes them), camera image and the bits its team link used. Frames
are taken every ``--every`` simulated seconds (sim time from /clock, or from header stamps if the bag has no
/clock); a frame shows every message up to its time. The bag is checked whole before anything is drawn.

In-process use (the demo)::

    result = render_bag(run_folder / "bag", run_folder, RenderOptions(progress=False))
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

VIDEO_NAME = "render.mp4"


class RenderError(Exception):
    """The pictures cannot be made: the message says what is wrong and what to do."""


@dataclass(frozen=True)
class RenderOptions:
    """What to draw and write."""

    fps: float = 10.0
    every: float = 0.5          # sim seconds between video frames
    video: bool = True
    snapshots: int = 3          # PNGs at this many evenly spaced times, plus one at the end
    progress: bool = True


@dataclass
class RenderResult:
    """What was written."""

    video: Path | None = None
    frames: int = 0
    snapshots: list[Path] = field(default_factory=list)
    sim_span: tuple[float, float] = (0.0, 0.0)
    wall_seconds: float = 0.0

    def report(self) -> str:
        """A few lines for the terminal."""
        lines = [f"rendered sim {self.sim_span[0]:.1f}..{self.sim_span[1]:.1f} s in {self.wall_seconds:.1f} s wall"]
        if self.video is not None:
            lines.append(f"  video:     {self.video}  ({self.frames} frames)")
        lines += [f"  snapshot:  {path}" for path in self.snapshots]
        return "\n".join(lines)


def add_parser(subparsers) -> None:
    """Add ``render`` to the CLI."""
    parser = subparsers.add_parser(
        "render", help="draw a recorded run: PNG snapshots and an MP4 of maps, beliefs, partners, trails, bits",
        description="Read a rosbag2 bag (or a run folder holding bag/, from `spatial-memory demo --record`)\n"
                    "and write PNG snapshots and an MP4: the true maze with every robot's trails, and per robot\n"
                    "its map, belief, partners, camera and bits used. Topics missing from the bag are left out.",
        epilog="examples:\n  spatial-memory render runs/20250101-120000\n"
               "  spatial-memory render runs/bag1 --out pictures --every 0.25 --fps 20\n"
               "  spatial-memory render runs/20250101-120000 --no-video --snapshots 5",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, metavar="RUN_OR_BAG",
                        help="a run folder holding bag/, a bag directory (with metadata.yaml) or an .mcap file")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write (default: the run folder, or <bag>/../render for a bare bag)")
    parser.add_argument("--fps", type=float, default=RenderOptions.fps, help="video frames per second (default 10)")
    parser.add_argument("--every", type=float, default=RenderOptions.every,
                        help="simulated seconds between video frames (default 0.5)")
    parser.add_argument("--no-video", action="store_true", help="write the PNG snapshots only")
    parser.add_argument("--snapshots", type=int, default=RenderOptions.snapshots, metavar="K",
                        help="PNG snapshots at K evenly spaced times, plus one at the end (default 3)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Render; print what was written; exit 1 with the reason if the source or an option is unusable."""
    from spatial_memory_ros.recording.bags import BagError

    options = RenderOptions(fps=args.fps, every=args.every, video=not args.no_video, snapshots=args.snapshots,
                            progress=not args.no_progress)
    try:
        _check_options(options)
        bag, default_out = resolve_source(args.source)
        result = render_bag(bag, args.out or default_out, options)
    except (BagError, RenderError) as error:
        print(f"render: {error}", file=sys.stderr)
        return 1
    print(result.report())
    return 0


def _check_options(options: RenderOptions) -> None:
    if not options.fps > 0:
        raise RenderError(f"--fps must be > 0, got {options.fps}")
    if not options.every > 0:
        raise RenderError(f"--every must be > 0 sim seconds, got {options.every}")
    if options.snapshots < 0:
        raise RenderError(f"--snapshots must be 0 or more, got {options.snapshots}")


def resolve_source(source: Path) -> tuple[Path, Path]:
    """(bag, default output folder) of a run folder, a bag directory or a lone .mcap file."""
    if (source / "bag").is_dir():
        return source / "bag", source
    if (source / "metadata.yaml").is_file() or source.suffix == ".mcap":
        return source, source.resolve().parent / "render"
    if source.is_dir() and (source / "summary.json").is_file():
        raise RenderError(f"{source} is a run folder without a bag/: run the demo with --record "
                          f"(make demo RECORD=1) to have something to render")
    raise RenderError(f"{source} is neither a run folder with bag/, a bag directory (holding metadata.yaml) nor an "
                      f".mcap file; give one of those")


# ---------------------------------------------------------------------------------------------- rendering

@dataclass(frozen=True)
class _Plan:
    """What the first pass over the bag found."""

    robots: list[str]
    topics: list[str]
    clocked: bool
    start: float
    end: float
    extent: tuple[float, float, float, float]


def render_bag(bag: Path, out: Path, options: RenderOptions = RenderOptions()) -> RenderResult:
    """Check the bag, then write the snapshots and the video into ``out``; raise BagError or RenderError."""
    from spatial_memory_ros.recording.bags import BagReader

    began = time.monotonic()
    with BagReader(bag) as reader:
        reader.validate()
        plan = _plan(reader)
        out.mkdir(parents=True, exist_ok=True)
        result = _render(reader, plan, out, options, title=_title(bag))
    if result.video is not None:
        _verify_video(result.video, result.frames)
    result.wall_seconds = time.monotonic() - began
    return result


def _title(bag: Path) -> str:
    bag = bag.resolve()
    return f"{bag.parent.name}/{bag.name}" if bag.name == "bag" else bag.name


def _plan(reader) -> _Plan:
    """First pass: the robots, the sim-time span and the area to draw."""
    from spatial_memory_ros.evaluation import render, scene

    names = list(reader.topics)
    robots = list(scene.robot_topics(names))
    topics = [t for t in names if scene.is_drawn(t)]
    if not robots and scene.MAZE_TOPIC not in topics:
        raise RenderError(f"{reader.path} has nothing to draw: none of {scene.MAZE_TOPIC} or /robotK/"
                          f"{{{', '.join(scene.ROBOT_SUFFIXES)}}}; record with `spatial-memory record` (its "
                          f"default topics) or `spatial-memory demo --record`")
    clocked = scene.CLOCK_TOPIC in names
    scanned = [t for t in topics if not t.endswith(("camera/image_raw", "belief"))]
    clock_times, stamps, grids, points, maze = [], [], [], [], None
    for message in reader.messages(scanned + ([scene.CLOCK_TOPIC] if clocked else [])):
        msg = reader.deserialize(message)
        seconds = scene.stamp_seconds(msg)
        (clock_times if message.topic == scene.CLOCK_TOPIC else stamps).append(seconds)
        if message.topic == scene.MAZE_TOPIC:
            maze = scene.Grid.from_msg(msg)
        elif message.topic.endswith("/map"):
            grids.append(scene.Grid.from_msg(msg))
        elif message.topic.endswith("pose"):
            pose = scene.Pose.from_msg(msg)
            points += [] if pose is None else [(pose.x, pose.y)]
    start, end = _sim_span(clock_times, [s for s in stamps if s is not None])
    extent = render.scene_extent(maze, [g for g in grids if g is not None], points)
    return _Plan(robots, topics, clocked, start, end, extent)


def _sim_span(clock_times: list[float], stamps: list[float]) -> tuple[float, float]:
    """(start, end) sim seconds: /clock's span (reaching back to stamps before the first tick), else the stamps'."""
    if clock_times:
        start, end = min(clock_times), max(clock_times)
        return min([start] + [s for s in stamps if s <= start]), end
    if stamps:
        return min(stamps), max(stamps)
    return 0.0, 0.0


def _moments(plan: _Plan, options: RenderOptions) -> list[tuple[float, bool, bool]]:
    """(time, in the video, as a snapshot) for every frame to draw, in time order."""
    from spatial_memory_ros.evaluation.render import frame_times, snapshot_times

    moments: dict[float, list[bool]] = {}
    if options.video:
        for t in frame_times(plan.start, plan.end, options.every):
            moments.setdefault(round(t, 6), [False, False])[0] = True
    for t in snapshot_times(plan.start, plan.end, options.snapshots):
        moments.setdefault(round(t, 6), [False, False])[1] = True
    return [(t, video, snapshot) for t, (video, snapshot) in sorted(moments.items())]


def _render(reader, plan: _Plan, out: Path, options: RenderOptions, title: str) -> RenderResult:
    """Second pass: apply the messages in order and draw a frame each time sim time passes a moment."""
    from tqdm import tqdm

    from spatial_memory_ros.evaluation import render
    from spatial_memory_ros.evaluation.scene import CLOCK_TOPIC, Scene

    scene, view = Scene(plan.robots), render.View.around(plan.extent)
    moments = _moments(plan, options)
    sink = _Sink(out, options)
    result = RenderResult(sim_span=(plan.start, plan.end))
    pending = iter(moments)
    upcoming = next(pending, None)
    with tqdm(total=len(moments), unit="frame", desc="render", disable=not options.progress, file=sys.stderr) as bar:
        topics = plan.topics + ([CLOCK_TOPIC] if plan.clocked else [])
        for message in reader.messages(topics):
            msg = reader.deserialize(message)
            now = _message_time(message.topic, msg, plan.clocked)
            while upcoming is not None and now is not None and upcoming[0] < now - 1e-6:
                sink.take(scene, view, upcoming, title)
                upcoming = next(pending, None)
                bar.update()
            scene.apply(message.topic, msg)
        while upcoming is not None:
            sink.take(scene, view, upcoming, title)
            upcoming = next(pending, None)
            bar.update()
    result.video, result.frames, result.snapshots = sink.close()
    return result


def _message_time(topic: str, msg, clocked: bool) -> float | None:
    """The sim time a message moves the scene to: /clock's if the bag has it, else the header stamp."""
    from spatial_memory_ros.evaluation.scene import CLOCK_TOPIC, stamp_seconds

    if clocked and topic != CLOCK_TOPIC:
        return None
    return stamp_seconds(msg)


class _Sink:
    """Writes frames: into the MP4 and, where asked, as PNG snapshots."""

    def __init__(self, out: Path, options: RenderOptions) -> None:
        self.out, self.options = out, options
        self.writer = None
        self.frames = 0
        self.snapshots: list[Path] = []

    def take(self, scene, view, moment: tuple[float, bool, bool], title: str) -> None:
        """Draw the scene at ``moment`` and write it where the moment says."""
        from spatial_memory_ros.evaluation.plots import save_png
        from spatial_memory_ros.evaluation.render import render_frame

        when, in_video, as_snapshot = moment
        scene.time = when
        rgb = render_frame(scene, view, title)
        if in_video:
            self._write_video_frame(rgb)
        if as_snapshot:
            path = self.out / f"snapshot_{len(self.snapshots):02d}_t{when:.1f}s.png"
            save_png(path, rgb)
            self.snapshots.append(path)

    def _write_video_frame(self, rgb) -> None:
        import cv2

        if self.writer is None:
            path = self.out / VIDEO_NAME
            height, width = rgb.shape[:2]
            self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), self.options.fps,
                                          (width, height))
            if not self.writer.isOpened():
                raise RenderError(f"OpenCV cannot write an mp4v video to {path} (is the folder writable, does "
                                  f"this OpenCV build have the mp4v encoder?); use --no-video for PNGs only")
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> tuple[Path | None, int, list[Path]]:
        """Finish the video; return (video or None, its frame count, the snapshots)."""
        if self.writer is None:
            return None, 0, self.snapshots
        self.writer.release()
        return self.out / VIDEO_NAME, self.frames, self.snapshots


def _verify_video(path: Path, expected: int) -> None:
    """Open the written video again and check its frame count."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise RenderError(f"{path} was written but OpenCV cannot open it again; try --no-video")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:
            count = 0
            while capture.grab():
                count += 1
    finally:
        capture.release()
    if count != expected:
        raise RenderError(f"{path} holds {count} frames, {expected} were written; the video is damaged "
                          f"(disk full?); try again or use --no-video")
