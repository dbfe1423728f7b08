"""The node graph as data: which executables run, under which names and namespaces, with which
parameter files, overrides and remappings.

The launch files (launch/*.launch.py) turn these specs into launch_ros actions; ``spatial-memory demo``
turns them into processes (or composed nodes) with exactly the ``--ros-args`` that ros2 launch passes.
This module needs neither rclpy nor launch.
"""
from __future__ import annotations

import os
import secrets
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spatial_memory_ros.shared_parameters import SharedParameters, check_graph

PACKAGE = "spatial_memory_ros"
SOURCE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph."""

    executable: str
    name: str
    namespace: str = ""
    params_file: str | None = None           # a file name in config/, e.g. "sim_world.yaml"
    parameters: dict[str, Any] = field(default_factory=dict)   # overrides, applied after params_file
    remappings: tuple[tuple[str, str], ...] = ()

    @property
    def fully_qualified_name(self) -> str:
        """/namespace/name"""
        return f"{self.namespace.rstrip('/')}/{self.name}" if self.namespace else f"/{self.name}"


BEV_SOURCES = ("camera", "scan", "depth")


@dataclass(frozen=True)
class Sources:
    """Which topics feed the mapping stack: the BEV (the sim's oracle, or the robot's own ``bev``) and the pose
    (the localizer's estimate, or the sim's ground truth). ``bev_source`` says what makes the robot's own ``bev``:
    ``camera`` (the learned bev_predictor), ``scan`` or ``depth`` (geometric_bev from a LaserScan or a depth
    image)."""

    bev: str = "ground_truth/bev"
    pose: str = "pose"
    bev_source: str = "camera"

    def __post_init__(self) -> None:
        if self.bev_source not in BEV_SOURCES:
            raise ValueError(f"bev_source must be one of {', '.join(BEV_SOURCES)}, got '{self.bev_source}'")

    @property
    def predicted(self) -> bool:
        """Whether the robot's own BEV comes from the learned camera predictor."""
        return self.bev == "bev" and self.bev_source == "camera"

    @property
    def geometric(self) -> bool:
        """Whether the robot's own BEV comes from geometric_bev (a scan or a depth image)."""
        return self.bev == "bev" and self.bev_source != "camera"

    @property
    def localized(self) -> bool:
        """Whether the pose comes from this robot's localizer (which then runs)."""
        return self.pose == "pose"


def robot_ids(robots: int) -> list[str]:
    """robot1 .. robotN"""
    if not 1 <= robots <= 16:
        raise ValueError(f"robots must be in 1..16, got {robots}")
    return [f"robot{k + 1}" for k in range(robots)]


def sim_team_graph(robots: int = 3, seed: int = 0, maze_size: int = 15, max_sim_time: float = 0.0,
                   real_time_factor: float = 0.0, use_sim_time: bool = True,
                   sources: Sources = Sources(bev="bev"), extra_bev_readers: int = 0, bits_per_step: int = 16,
                   strategy: str = "ours", goal_query: str = "", shared: SharedParameters | None = None,
                   world: str = "builtin", wait_for_readers: float | None = None) -> list[NodeSpec]:
    """The simulated team: one sim_world for the maze, one bev_predictor batching every robot's frames (when the
    BEV is predicted) and, per robot namespace, its own stack. ``extra_bev_readers`` counts subscribers of the
    oracle BEV outside the graph (a recorder) that the sim must also wait for; ``goal_query`` is the text goal
    every explorer asks its memory for (empty: explore only); ``shared`` the cross-node values (default: the
    package's, with the map fitted to the maze); ``world`` the simulated world (sim/interface.py: builtin or
    memory_maze), whose maze sets the map extent and whose object classes the team link sends;
    ``wait_for_readers`` the wall seconds the sim waits for every node to listen (None: sim_world.yaml's). Raises
    GraphMismatch if the nodes would disagree."""
    from spatial_memory_ros.sim.interface import world_class_names, world_extent

    ids = robot_ids(robots)
    cells, cell_size = world_extent(world, maze_size)  # builtin: 1 m cells; Memory-Maze: 2 m, outer walls added
    shared = shared or SharedParameters.for_maze(cells, ids, cell_size=cell_size)
    sim = NodeSpec("sim_world", "sim_world", params_file="sim_world.yaml",
                   parameters={"world": world, "robots": robots, "seed": seed, "maze_size": maze_size,
                               "max_sim_time": float(max_sim_time), "real_time_factor": float(real_time_factor),
                               **shared.for_node("sim_world")})
    if wait_for_readers is not None:
        sim.parameters["wait_for_controllers"] = float(wait_for_readers)
    team = []
    if sources.predicted:
        predictor_parameters: dict[str, Any] = {"use_sim_time": use_sim_time, "robots": ids}
        if world != "builtin":  # issue 12: another camera than the model's, read from camera_info + the mount
            camera = sim_geometric_parameters(world, "depth")
            predictor_parameters.update(use_camera_info=True, class_names=list(world_class_names(world)),
                                        checkpoint=other_camera_checkpoint(),
                                        **{k: v for k, v in camera.items() if k != "source"})
        team.append(NodeSpec("bev_predictor", "bev_predictor", params_file="bev_predictor.yaml",
                             parameters=predictor_parameters))
    elif sources.geometric:
        team.append(NodeSpec("geometric_bev", "geometric_bev", params_file="geometric_bev.yaml",
                             parameters={"use_sim_time": use_sim_time, "robots": ids,
                                         **sim_geometric_parameters(world, sources.bev_source)}))
    link = {"bits_per_step": int(bits_per_step), "strategy": strategy,
            "team_key": "hex:" + secrets.token_hex(32)}  # a new key per simulated run: there is no default key
    if world != "builtin":
        link["class_names"] = list(world_class_names(world))  # sightings travel as an index into the world's classes
    for index, robot in enumerate(ids):
        team.extend(robot_stack(robot, seed=seed * 100 + index, use_sim_time=use_sim_time, sources=sources,
                                shared=shared, predictor=False, comm_parameters=link, goal_query=goal_query))
    sim.parameters["ready_topics"] = ready_topics(ids, sources, team, extra_bev_readers)
    graph = [sim] + team
    check_graph(graph, config_dir())
    return graph


def ready_topics(ids: list[str], sources: Sources, team: list[NodeSpec], extra_bev_readers: int = 0,
                 per_robot: dict[str, list[NodeSpec]] | None = None) -> list[str]:
    """'TOPIC=COUNT@READERS' for the sim: every robot's BEV (oracle or predicted) and camera, read by the graph's
    nodes named in READERS, and by as many readers in all as the graph has plus ``extra_bev_readers`` outside it
    (e.g. a recorder of both), so the sim starts only when none of them would miss the first frames. Naming the
    readers matters: a recorder that is up early must not stand in for a node still loading its models. With
    ``per_robot`` (robot -> the nodes of its own host), each robot's sensors are read by its own host's nodes."""
    entries = []
    for robot in ids:
        own = per_robot[robot] if per_robot is not None else [spec for spec in team if spec.namespace == f"/{robot}"]
        bev_readers = [spec.fully_qualified_name for spec in own if ("bev", sources.bev) in spec.remappings]
        entries.append(f"/{robot}/{sources.bev}={len(bev_readers) + extra_bev_readers}@{','.join(bev_readers)}")
        if sources.bev == "bev":
            executable, topic = {"camera": ("bev_predictor", "camera/image_raw"), "scan": ("geometric_bev", "scan"),
                                 "depth": ("geometric_bev", "camera/depth")}[sources.bev_source]
            makers = [spec.fully_qualified_name for spec in (own if per_robot is not None else team)
                      if spec.executable == executable]
            entries.append(f"/{robot}/{topic}={1 + extra_bev_readers}@{','.join(makers)}")
    return entries


def sim_geometric_parameters(world: str, bev_source: str) -> dict[str, Any]:
    """geometric_bev's parameters for a simulated world's sensors (sim/range_sensors.py): the source, and for
    depth the world's camera mount; the BEV grid is the world's (WorldConfig's, the node's defaults)."""
    parameters: dict[str, Any] = {"source": bev_source}
    if bev_source == "depth":
        if world == "memory_maze":
            from spatial_memory_ros.sim.memory_maze import camera_model
            camera = camera_model()
        else:
            from spatial_memory_ros.sim.camera import CAMERA_HEIGHT_CELLS
            from spatial_memory_ros.types import CameraModel
            camera = CameraModel.pinhole(64, 64, 90.0, CAMERA_HEIGHT_CELLS * 1.0)  # builtin: 1 m cells, level
        # the sim's depth camera sits on the colour camera's mount with its own resolution and CameraInfo
        parameters.update(camera_height=float(camera.mount_height), camera_pitch=float(camera.mount_pitch),
                          camera_forward=float(camera.mount_forward), depth_info_topic="camera/depth/camera_info")
    return parameters


def robot_stack(namespace: str, seed: int = 0, use_sim_time: bool = False,
                sources: Sources = Sources(bev="bev"),
                shared: SharedParameters | None = None, predictor: bool = True,
                comm_parameters: dict[str, Any] | None = None, goal_query: str = "") -> list[NodeSpec]:
    """The nodes that run on one robot, under /<namespace> (with its own bev_predictor if ``predictor`` and the
    BEV is predicted; the simulated team shares one that batches all robots instead). The explorer plans on the
    team map, from the same pose source as the memory, towards ``goal_query`` once the memory answers it. Every
    node gets its share of ``shared`` (default: the package's values)."""
    shared = shared or SharedParameters()
    common = {"use_sim_time": use_sim_time}
    ns = f"/{namespace}"
    memory = NodeSpec("spatial_memory", "spatial_memory", namespace=ns, params_file="spatial_memory.yaml",
                      parameters={**common, **shared.for_node("spatial_memory")},
                      remappings=(("bev", sources.bev), ("pose", sources.pose)))
    explorer = NodeSpec("explorer", "explorer", namespace=ns, params_file="explorer.yaml",
                        parameters={**common, **shared.for_node("explorer"), "seed": seed, "goal_query": goal_query},
                        remappings=(("bev", sources.bev), ("pose", sources.pose), ("map", "team_map")))
    comm = NodeSpec("team_comm", "team_comm", namespace=ns, params_file="team_comm.yaml",
                    parameters={**common, **shared.for_node("team_comm"), **(comm_parameters or {})},
                    remappings=(("pose", sources.pose),))
    stack = [memory, explorer, comm]
    if predictor and sources.predicted:
        stack.insert(0, NodeSpec("bev_predictor", "bev_predictor", namespace=ns, params_file="bev_predictor.yaml",
                                 parameters=dict(common)))
    elif predictor and sources.geometric:
        stack.insert(0, NodeSpec("geometric_bev", "geometric_bev", namespace=ns, params_file="geometric_bev.yaml",
                                 parameters={**common, "source": sources.bev_source}))
    if sources.localized:
        stack.insert(0, NodeSpec("localizer", "localizer", namespace=ns, params_file="localizer.yaml",
                                 parameters={**common, **shared.for_node("localizer")},
                                 remappings=(("bev", sources.bev),)))
    return stack


def real_robot_graph(namespace: str = "robot1", camera: str = "/camera/image_raw", odom: str = "/odom",
                     use_sim_time: bool = False, team: str | list[str] = "", cmd_vel: str = "/cmd_vel",
                     camera_info: str = "", odom_frame: str = "odom", base_frame: str = "base_link",
                     map_frame: str = "map", link_bind: str = "", link_peers: str | list[str] = "",
                     link_bits_per_second: float = 400.0, bev_source: str = "camera", scan: str = "/scan",
                     depth: str = "/camera/depth/image_raw", depth_camera_info: str = "",
                     team_key_file: str = "", bev_checkpoint: str = "",
                     camera_mount: tuple[float, float, float] | None = None) -> list[NodeSpec]:
    """A real robot: its camera (and camera_info, default: beside the image topic), odometry and velocity command
    topics are remapped into the robot's namespace. ``team`` lists the team's robot ids (a list or 'robot1,robot7';
    default: this robot alone) and must contain ``namespace``. The frames are nav2's: the localizer publishes
    map_frame -> odom_frame (the frame the odometry's header names, if it names one), the base publishes
    odom -> base_frame. With ``link_bind`` (this robot's 'IPv4:port' on the team's radio) team_comm sends compact
    UDP frames to ``link_peers`` (teammates' endpoints or the subnet broadcast address) within
    ``link_bits_per_second`` on the air, instead of /team/packets over DDS (comm/transport.py). ``bev_source``
    makes the BEV from the ``camera`` (bev_predictor), a LaserScan on ``scan`` or a depth image on ``depth`` with
    its CameraInfo on ``depth_camera_info`` (default: camera_info beside the depth topic) (geometric_bev; its
    sensor mount: config/geometric_bev.yaml). ``team_key_file``: the team's key (spatial-memory keygen), which
    team_comm needs to start. ``bev_checkpoint``: the camera model (default the shipped one; e.g. one adapted to
    this robot by ``spatial-memory train bev --bag``); ``camera_mount`` (height m, pitch rad down, forward m): the
    camera's mount, which makes bev_predictor read the intrinsics from camera_info and adapt each image to the
    model's camera (perception/camera_adapter.py)."""
    members = [m.strip() for m in (team.split(",") if isinstance(team, str) else team) if m.strip()]
    members = members or [namespace]
    if namespace not in members:
        raise ValueError(f"team {','.join(members)} does not contain this robot's namespace '{namespace}': "
                         f"its team_comm would refuse to start (team:={','.join(members + [namespace])})")
    stack = robot_stack(namespace, use_sim_time=use_sim_time, shared=SharedParameters(team=tuple(members)),
                        sources=Sources(bev="bev", bev_source=bev_source))
    camera_info = camera_info or camera.rsplit("/", 1)[0] + "/camera_info"
    sensor_remaps = (("camera/image_raw", camera), ("camera/camera_info", camera_info), ("odom", odom),
                     ("cmd_vel", cmd_vel))
    depth_camera_info = depth_camera_info or depth.rsplit("/", 1)[0] + "/camera_info"
    range_remaps = (("scan", scan), ("camera/depth", depth), ("camera/camera_info", depth_camera_info))
    frames = {"map_frame": map_frame, "odom_frame": odom_frame, "base_frame": base_frame}
    graph = [NodeSpec(s.executable, s.name, s.namespace, s.params_file,
                      {**s.parameters, **frames} if s.executable == "localizer" else
                      {**s.parameters, "map_frame": map_frame} if s.executable == "explorer" else s.parameters,
                      s.remappings + (range_remaps if s.executable == "geometric_bev" else sensor_remaps))
             for s in stack]
    if link_bind:
        peers = [p.strip() for p in (link_peers.split(",") if isinstance(link_peers, str) else link_peers)
                 if p.strip()]
        link = {"transport": "udp", "link_bind": link_bind, "link_peers": peers,
                "link_bits_per_second": float(link_bits_per_second)}
        graph = [NodeSpec(s.executable, s.name, s.namespace, s.params_file, {**s.parameters, **link}, s.remappings)
                 if s.executable == "team_comm" else s for s in graph]
    if team_key_file:
        graph = [NodeSpec(s.executable, s.name, s.namespace, s.params_file,
                          {**s.parameters, "team_key_file": team_key_file}, s.remappings)
                 if s.executable == "team_comm" else s for s in graph]
    camera_parameters: dict[str, Any] = {"checkpoint": bev_checkpoint} if bev_checkpoint else {}
    if camera_mount is not None:
        camera_parameters.setdefault("checkpoint", other_camera_checkpoint())
        height, pitch, forward = (float(v) for v in camera_mount)
        camera_parameters.update(use_camera_info=True, camera_height=height, camera_pitch=pitch,
                                 camera_forward=forward)
    if camera_parameters:
        graph = [NodeSpec(s.executable, s.name, s.namespace, s.params_file, {**s.parameters, **camera_parameters},
                          s.remappings) if s.executable == "bev_predictor" else s for s in graph]
    check_graph(graph, config_dir())
    return graph


def other_camera_checkpoint() -> str:
    """The BEV model for a camera other than the built-in sim's: the floor-boundary checkpoint where it ships
    (perception/predictor.py BOUNDARY_CHECKPOINT), else '' (the node's default, the BevNet through the adapter)."""
    from spatial_memory_ros.perception.predictor import BOUNDARY_CHECKPOINT, checkpoint_for_world

    return str(BOUNDARY_CHECKPOINT) if checkpoint_for_world("other") == BOUNDARY_CHECKPOINT else ""


def config_dir() -> Path:
    """config/ of the installed package (ament index or the venv prefix), else of the source tree."""
    candidates = []
    if os.environ.get("AMENT_PREFIX_PATH"):
        try:
            from ament_index_python.packages import get_package_share_directory
            candidates.append(Path(get_package_share_directory(PACKAGE)) / "config")
        except (ImportError, LookupError, ValueError):
            pass
    candidates += [Path(sys.prefix) / "share" / PACKAGE / "config", SOURCE_ROOT / "config"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no config/ directory for {PACKAGE}; looked in: {', '.join(map(str, candidates))}")


def executable_path(executable: str) -> Path:
    """Where the build installed a node executable (lib/spatial_memory_ros/<executable>)."""
    return Path(sys.prefix) / "lib" / PACKAGE / executable


def ros_args(spec: NodeSpec, config: Path | None = None, overrides_dir: Path | None = None) -> list[str]:
    """The arguments ros2 launch passes to a node process: ``--ros-args`` with name, namespace,
    parameter files (the node's YAML, then the overrides written to a temporary YAML) and remappings."""
    args = ["--ros-args", "-r", f"__node:={spec.name}"]
    if spec.namespace:
        args += ["-r", f"__ns:={spec.namespace}"]
    if spec.params_file:
        args += ["--params-file", str((config or config_dir()) / spec.params_file)]
    if spec.parameters:
        args += ["--params-file", str(write_overrides(spec, overrides_dir))]
    for source, target in spec.remappings:
        args += ["-r", f"{source}:={target}"]
    return args


def write_overrides(spec: NodeSpec, directory: Path | None = None) -> Path:
    """Write a node's parameter overrides as a ROS 2 parameter file (as launch_ros does for dicts)."""
    directory = Path(directory or tempfile.mkdtemp(prefix="spatial_memory_params_"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{spec.fully_qualified_name.strip('/').replace('/', '__')}.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": dict(spec.parameters)}}, sort_keys=True))
    return path
