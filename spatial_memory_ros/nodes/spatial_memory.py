"""spatial_memory: one robot's spatial memory and fused occupancy map (memory/robot_memory.py).

Subscribes  bev             spatial_memory_ros/BevMap (oracle or predicted; graph.py remaps)
            pose            geometry_msgs/PoseWithCovarianceStamped (ground truth or the localizer; graph.py remaps)
            memory/merge    spatial_memory_ros/MemoryEntryArray (entries shared by teammates; an entry with no
                            value gets the embedding of its label)
Publishes   map             nav_msgs/OccupancyGrid in `map` (reliable, transient local), once per map_period of
                            BEV time: right after observing the first BEV past each multiple of map_period, stamped
                            with that BEV's stamp, so map(T) holds exactly the BEVs stamped up to T, live or replayed
            memory/entries  spatial_memory_ros/MemoryEntryArray (the entries each BEV added)
            memory/markers  visualization_msgs/MarkerArray (entries for RViz, transient local), every map_period
                            of the node's clock
Services    query           spatial_memory_ros/QueryMemory (text or embedding -> goal locations)
            ~/prune         std_srvs/Trigger (prune in the background; writes made meanwhile are kept)
            ~/save          std_srvs/Trigger (snapshot to snapshot_path)
A BEV is paired with the pose of the same stamp (within pose_tolerance); BEVs with no pose yet wait briefly.
"""
from __future__ import annotations

import array
import math
import sys
import threading
import time
from collections import deque

import numpy as np
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import OccupancyGrid
from rclpy.node import Node
from rclpy.subscription import Subscription
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from spatial_memory_ros.conversions import (InvalidMessage, entries_to_msg, memory_markers, msg_to_bev, msg_to_entries,
                                            msg_to_pose, occupancy_to_msg, time_to_seconds)
from spatial_memory_ros.memory.mapping import FAR_WALL_WEIGHT
from spatial_memory_ros.memory.robot_memory import (EMBEDDING_DIM, MAX_QUERY_CHARS, MAX_SAMPLES, VALUE_DIM,
                                                  QuerySettings, RobotMemory, load_or_create_memory,
                                                  set_aside_memory_files)
from spatial_memory_ros.memory.semantics import Embedder
from spatial_memory_ros.memory.validation import MergeGate, MergeLimits
from spatial_memory_ros.msg import BevMap, MemoryEntryArray
from spatial_memory_ros.ros_common import (LATCHED_QOS, RELIABLE_QOS, InputGuard, Param, PublisherAllowlist,
                                           declare_parameters, map_geometry, robot_id_of)
from spatial_memory_ros.sim.maze import CLASS_NAMES
from spatial_memory_ros.srv import QueryMemory

PARAMETERS = [
    Param("robot_id", "", "this robot's id in entries and packets; empty: the node's namespace"),
    Param("map_resolution", 0.25, "occupancy map cell size (m)", 0.01, 5.0),
    Param("map_width_m", 20.0, "occupancy map extent along x (m)", 1.0, 2000.0),
    Param("map_height_m", 20.0, "occupancy map extent along y (m)", 1.0, 2000.0),
    Param("map_origin_x", -10.0, "x of the map's lower-left corner in `map` (m)", -1e6, 1e6),
    Param("map_origin_y", -10.0, "y of the map's lower-left corner in `map` (m)", -1e6, 1e6),
    Param("map_period", 1.0, "seconds of BEV stamps between map publications (and of clock between marker "
                             "publications)", 0.05, 60.0),
    Param("bin_size", 0.5, "one memory entry per bin of this size (m) and label", 0.05, 10.0),
    Param("min_object_views", 2, "BEVs that must show an object in a bin before the memory takes it as seen "
                                 "(flickering classes are ignored; 1 with min_object_share 0: at once)", 1, 1000),
    Param("min_object_share", 0.15, "and the share of the BEVs seeing the bin that must show the object (below it, "
                                    "the robot's own entries of the object there are withdrawn)", 0.0, 1.0),
    Param("far_wall_weight", FAR_WALL_WEIGHT, "how much a wall seen 7 m off or more counts in the map against one "
                                              "seen within 3 m (linear between; 1: all alike)", 0.01, 1.0),
    Param("max_entries", 1_000_000, "entries kept; the oldest are evicted past it", 100, 100_000_000),
    Param("pose_tolerance", 0.05, "largest stamp difference (s) between a BEV and the pose it is paired with",
          0.0, 5.0),
    Param("query_temperature", 1.0, "softmax temperature of goal sampling", 1e-3, 1e3),
    Param("query_location_weight", 0.01, "weight of the caller's location in goal sampling", 0.0, 1e3),
    Param("query_sigma_scale", 0.5, "spread of each sample around its entry, in entry sds", 0.0, 10.0),
    Param("snapshot_path", "", "file to load at start and save to (~/save, shutdown); with a journal beside it "
                               "so a crash loses at most ~1 s of writes. Empty: memory only"),
    Param("prune_max_error", 0.05, "prune: largest leave-one-out read change of a removed entry", 0.0, 100.0),
    Param("prune_match_threshold", 2.0, "prune: entries farther apart (m) do not affect each other", 0.01, 1e4),
    Param("prune_max_steps", 10, "prune: recursive steps", 1, 1000),
    Param("on_corrupt", "fail", "a snapshot or journal at snapshot_path that is damaged or not a memory: 'fail' "
          "(one log line, exit code 65, files left alone) or 'fresh' (files renamed to *.corrupt-<time>, start empty)"),
    Param("merge_max_entries", 10_000, "entries taken from memory/merge in all (bounds the memory teammates can "
          "fill: about 1.8 kB each); more are refused and counted", 1, 10_000_000),
    Param("merge_publisher", "team_comm", "the only node (in this namespace) whose memory/merge messages are "
                                          "taken: the robot's own team link, which authenticates what it merges"),
    Param("merge_rate", 100.0, "entries per second taken from memory/merge (bursts of up to 1,000)", 0.1, 1e6),
]
PENDING_BEVS = 10
EXIT_CORRUPT_MEMORY = 65  # EX_DATAERR: the memory files are bad; restarting the node will not help


class SpatialMemoryNode(Node):
    """Writes what its robot sees into the spatial memory, publishes the fused map, answers queries."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("spatial_memory", **node_kwargs)
        p = self.params = declare_parameters(self, PARAMETERS)
        self.robot_id = robot_id_of(self, p["robot_id"])
        geometry = map_geometry(p)
        self.durable, memory = self._load_memory()
        if len(memory):
            self.get_logger().info(f"loaded {len(memory)} entries from {p['snapshot_path']}")
        self.memory = RobotMemory(geometry, Embedder(), self.robot_id, bin_size=p["bin_size"], memory=memory,
                                  min_object_views=p["min_object_views"],
                                  min_object_share=p["min_object_share"], far_wall_weight=p["far_wall_weight"],
                                  query=QuerySettings(p["query_temperature"], p["query_location_weight"],
                                                      p["query_sigma_scale"]),
                                  class_names=CLASS_NAMES)  # the built-in world's object classes, embedded ahead
        self.memory.warm_up()  # load the language model before subscribing, so no BEV waits behind it
        self.guard = InputGuard(self)
        extent = (geometry.origin_x, geometry.origin_y, geometry.origin_x + geometry.width * geometry.resolution,
                  geometry.origin_y + geometry.height * geometry.resolution)
        self.merge_gate = MergeGate(extent, MergeLimits(max_entries=p["merge_max_entries"], rate=p["merge_rate"]))
        self.merge_sources = PublisherAllowlist(self, "memory/merge", p["merge_publisher"])
        self.bevs_received = self.bevs_observed = 0
        self._poses: deque = deque(maxlen=200)
        self._pending: deque = deque()
        self._prune_thread: threading.Thread | None = None
        self._map_slot: int | None = None
        self._make_interfaces()
        if len(self.memory.memory):
            self.publish_map(self.get_clock().now().to_msg())
        self.get_logger().info(f"spatial memory of {self.robot_id}: map {geometry.width}x{geometry.height} cells "
                               f"at {geometry.resolution:g} m, values {VALUE_DIM}-D")

    def _load_memory(self):
        """The memory at snapshot_path (or a new one). Damaged files: exit 65 (EX_DATAERR) after one fatal line, so
        a launcher that respawns the node sees why instead of a traceback, or with on_corrupt:=fresh set them
        aside and start empty."""
        p = self.params
        if p["on_corrupt"] not in ("fail", "fresh"):
            raise ValueError(f"on_corrupt must be 'fail' or 'fresh', got {p['on_corrupt']!r}")
        try:
            return load_or_create_memory(p["snapshot_path"], p["max_entries"])
        except (ValueError, OSError) as error:  # CorruptFileError, other dimensions, unreadable
            if p["on_corrupt"] == "fresh":
                moved = set_aside_memory_files(p["snapshot_path"])
                self.get_logger().warning(f"{error}; set aside as {', '.join(map(str, moved))}; starting with an "
                                          f"empty memory (on_corrupt:=fresh)")
                return load_or_create_memory(p["snapshot_path"], p["max_entries"])
            self.get_logger().fatal(f"spatial_memory of {self.robot_id} cannot load its memory: {error} (move the "
                                    f"files away, or start with on_corrupt:=fresh to set them aside and start empty)")
            raise SystemExit(EXIT_CORRUPT_MEMORY) from None

    def _make_interfaces(self) -> None:
        self.map_pub = self.create_publisher(OccupancyGrid, "map", LATCHED_QOS)
        self.entries_pub = self.create_publisher(MemoryEntryArray, "memory/entries", RELIABLE_QOS)
        self.markers_pub = self.create_publisher(MarkerArray, "memory/markers", LATCHED_QOS)
        self.create_subscription(BevMap, "bev", self._on_bev, RELIABLE_QOS)
        self.create_subscription(PoseWithCovarianceStamped, "pose", self._on_pose, RELIABLE_QOS)
        if hasattr(Subscription, "CallbackType"):  # message info; Kilted's carries the publisher's GID
            self.create_subscription(MemoryEntryArray, "memory/merge", self._on_merge, RELIABLE_QOS)
        else:  # Humble: no message info, so only the bounds below protect memory/merge
            self.create_subscription(MemoryEntryArray, "memory/merge", lambda msg: self._on_merge(msg, None),
                                     RELIABLE_QOS)
        self.create_service(QueryMemory, "query", self._on_query)
        self.create_service(Trigger, "~/prune", self._on_prune)
        self.create_service(Trigger, "~/save", self._on_save)
        self.create_timer(self.params["map_period"], self.publish_markers)

    # -- inputs ----------------------------------------------------------------------------------------------

    def _on_pose(self, msg: PoseWithCovarianceStamped) -> None:
        try:
            pose, sd = msg_to_pose(msg)
        except InvalidMessage as error:
            self.guard.reject("invalid pose", str(error))
            return
        self._poses.append((time_to_seconds(msg.header.stamp), pose, sd))
        self._drain_pending()

    def _on_bev(self, msg: BevMap) -> None:
        try:
            bev = msg_to_bev(msg)
        except InvalidMessage as error:
            self.guard.reject("invalid BEV", str(error))
            return
        self.bevs_received += 1
        if len(self._pending) == PENDING_BEVS:
            self._pending.popleft()
            self.guard.reject("BEV without a pose", f"no pose within {self.params['pose_tolerance']:g} s "
                                                    f"of a BEV; is the pose topic published?")
        self._pending.append((bev, time_to_seconds(msg.header.stamp), msg.header.stamp))
        self._drain_pending()

    def _drain_pending(self) -> None:
        """Observe waiting BEVs strictly in arrival order, as long as each has its pose (the entries then do
        not depend on whether a BEV or its pose arrived first)."""
        while self._pending and self._try_observe(*self._pending[0]):
            self._pending.popleft()

    def _try_observe(self, bev, stamp: float, stamp_msg) -> bool:
        """Observe ``bev`` with the pose of the nearest stamp; False if no pose is close enough yet."""
        if not self._poses:
            return False
        pose_stamp, pose, sd = min(self._poses, key=lambda item: abs(item[0] - stamp))
        if abs(pose_stamp - stamp) > self.params["pose_tolerance"] + 1e-9:
            return False
        entries = self.memory.observe(bev, pose, sd, stamp)
        self.bevs_observed += 1
        if len(entries):
            self.entries_pub.publish(entries_to_msg(entries, self.get_clock().now().to_msg()))
        slot = math.floor(stamp / self.params["map_period"])
        if self._map_slot is None or slot > self._map_slot:
            self._map_slot = slot
            self.publish_map(stamp_msg)
        return True

    def _on_merge(self, msg: MemoryEntryArray, info: dict | None) -> None:
        """Teammates' entries: only from this robot's own team link (the node named merge_publisher in this
        namespace, which took them from authenticated packets), every field bounded (MergeGate) before anything is
        built, then a rate and a total, so a stream of absurd but well-formed entries stores nothing and the merged
        part of the memory stays under merge_max_entries."""
        if not self.merge_sources.allows(info):
            self.guard.reject("merge from an unauthorised publisher",
                              f"memory/merge takes entries only from {self.merge_sources.describe()}")
            return
        entries = msg.entries
        if len(entries) > self.merge_gate.limits.max_per_message:
            self.guard.reject("merged entries out of bounds", f"{len(entries)} entries in one message")
            return
        problem = self.merge_gate.check_fields([e.label for e in entries], [e.source_robot for e in entries],
                                               [e.x for e in entries], [e.y for e in entries],
                                               [e.location_sd for e in entries], [e.value for e in entries])
        if problem is not None:
            self.guard.reject(*problem)
            return
        try:
            batch = msg_to_entries(msg, VALUE_DIM)
            if any(not source or source == self.robot_id for source in batch.sources):
                raise ValueError(f"merged entries must name a teammate as source (not '' or '{self.robot_id}')")
        except (InvalidMessage, ValueError) as error:
            self.guard.reject("invalid merged entries", str(error))
            return
        problem = self.merge_gate.admit(len(batch), time.monotonic())
        if problem is not None:
            self.guard.reject(*problem)
            return
        try:
            self.memory.merge_entries(batch)
        except ValueError as error:
            self.guard.reject("invalid merged entries", str(error))

    # -- outputs ---------------------------------------------------------------------------------------------

    def publish_map(self, stamp) -> None:
        """Publish the fused occupancy map with ``stamp`` (the newest BEV in it)."""
        self.map_pub.publish(occupancy_to_msg(self.memory.occupancy(), self.memory.map.geometry, stamp))

    def publish_markers(self) -> None:
        """Publish the entries as RViz markers."""
        self.markers_pub.publish(memory_markers(self.memory.memory, self.get_clock().now().to_msg(),
                                                f"{self.robot_id}/memory"))

    # -- services --------------------------------------------------------------------------------------------

    def _on_query(self, request: QueryMemory.Request, response: QueryMemory.Response) -> QueryMemory.Response:
        response.success = False
        try:
            key = self._query_key(request)
            if request.num_samples == 0:
                raise ValueError(f"num_samples is 0: ask for 1..{MAX_SAMPLES} samples")
            answer = self.memory.query(key, int(request.num_samples), (request.x, request.y),
                                       float(request.location_sd))
        except ValueError as error:
            response.message = str(error)
            self.guard.reject("invalid query", str(error))
            return response
        if not answer.labels:
            response.message = "the memory is empty: nothing has been seen yet"
            return response
        response.success = True
        response.message = f"capped to {MAX_SAMPLES} samples" if answer.capped else "ok"
        response.xs = array.array("f", answer.locations[:, 0].tobytes())
        response.ys = array.array("f", answer.locations[:, 1].tobytes())
        response.scores = array.array("f", answer.scores.astype(np.float32).tobytes())
        response.labels = list(answer.labels)
        return response

    def _query_key(self, request: QueryMemory.Request) -> np.ndarray:
        if len(request.embedding):
            return self.memory.key_from_embedding(np.asarray(request.embedding, np.float32) *
                                                  (self.memory.query_settings.sharpness
                                                   if len(request.embedding) == EMBEDDING_DIM else 1.0))
        if len(request.query) > MAX_QUERY_CHARS:
            raise ValueError(f"the query has {len(request.query)} characters; at most {MAX_QUERY_CHARS} are accepted")
        return self.memory.search_key(request.query)

    def _on_prune(self, _request, response: Trigger.Response) -> Trigger.Response:
        if self._prune_thread is not None and self._prune_thread.is_alive():
            response.success, response.message = False, "a prune is already running"
            return response
        p = self.params

        def prune() -> None:
            before = len(self.memory.memory)
            removed = self.memory.prune_in_background(p["prune_max_error"], p["prune_match_threshold"],
                                                      p["prune_max_steps"])
            self.get_logger().info(f"pruned {removed} of {before} entries")

        self._prune_thread = threading.Thread(target=prune, name="prune", daemon=True)
        self._prune_thread.start()
        response.success, response.message = True, f"pruning {len(self.memory.memory)} entries in the background"
        return response

    def _on_save(self, _request, response: Trigger.Response) -> Trigger.Response:
        if self.durable is None:
            response.success, response.message = False, "snapshot_path is empty: set it to save the memory"
            return response
        self.durable.checkpoint()
        response.success = True
        response.message = f"saved {len(self.memory.memory)} entries to {self.durable.snapshot_path}"
        return response

    def close(self) -> None:
        """Checkpoint and close the journal (called on shutdown)."""
        self.get_logger().info(f"observed {self.bevs_observed} of {self.bevs_received} BEVs received; "
                               f"{len(self.memory.memory)} entries; {self.memory.entries_withdrawn} object entries "
                               f"withdrawn by later views")
        if self._prune_thread is not None:
            self._prune_thread.join(timeout=30.0)
        if self.durable is not None:
            self.durable.checkpoint()
            self.durable.close()


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down (Ctrl-C)."""
    from spatial_memory_ros.nodes import spin_node

    return spin_node(SpatialMemoryNode, sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())
