"""team_comm: one robot's end of the bandwidth-limited team link (comm/link.py).

Subscribes  pose            geometry_msgs/PoseWithCovarianceStamped (own estimate)
            odom            nav_msgs/Odometry (own speed: teammates path-integrate it)
            map             nav_msgs/OccupancyGrid (own memory map; transient local)
            memory/entries  spatial_memory_ros/MemoryEntryArray (own new entries: target sightings are news)
            /team/packets   spatial_memory_ros/TeamPacket (teammates', best effort)
Publishes   /team/packets   spatial_memory_ros/TeamPacket: at most one per step, only when the bit budget allows
            memory/merge    spatial_memory_ros/MemoryEntryArray (teammates' sightings, source robot kept)
            partners        spatial_memory_ros/PartnerStateArray; partners/markers (RViz)
            team_map        nav_msgs/OccupancyGrid: own map with what teammates told filled in (transient local)
            comm/stats      spatial_memory_ros/CommStats (bits per step, packets, wire bytes, drops by reason)
Forged, replayed, reordered, truncated, oversized or unknown-sender packets are dropped and counted, never applied.
Before any tag is computed each DDS publisher may have ``source_rate`` packets/s checked and the link ``link_rate``;
packets lost in the receive queue are counted from the publisher's numbering (comm/receive.py FloodGuard).

The team's key: ``team_key_file`` (a file from ``spatial-memory keygen``, mode 0600; a warning if others can read
it) on a real robot; the simulator and the tests pass a per-run ``team_key`` instead. With neither the node refuses
to start (exit code 78, EX_CONFIG) and says how to make a key: there is no default key.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rclpy.subscription import Subscription
from visualization_msgs.msg import MarkerArray

from spatial_memory_ros.conversions import (InvalidMessage, msg_to_occupancy, msg_to_pose, occupancy_to_msg,
                                            partner_markers, partner_states_to_msg, sightings_to_msg, wire_to_msg)
from spatial_memory_ros.comm.layout import CommLayout
from spatial_memory_ros.comm.link import STRATEGIES, CommConfig, TeamComm
from spatial_memory_ros.comm.partners import Sighting
from spatial_memory_ros.comm.receive import FloodGuard, FloodLimits
from spatial_memory_ros.comm.security import (DROP_QUEUE_OVERFLOW, DROP_RATE_LIMITED, MAKE_KEY_HINT, WirePacket,
                                              key_file_problem, load_team_key)
from spatial_memory_ros.sim.maze import CLASS_NAMES
from spatial_memory_ros.types import Pose2D, is_target_label
from spatial_memory_ros.msg import CommStats, MemoryEntryArray, PartnerStateArray, TeamPacket
from spatial_memory_ros.ros_common import (LATCHED_QOS, RELIABLE_QOS, InputGuard, Param, declare_parameters,
                                           map_geometry, robot_id_of)

PACKETS_PER_WAKEUP = 64
EXIT_NO_TEAM_KEY = 78  # EX_CONFIG: a respawning launcher should not retry a node that cannot have a key
PACKET_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.BEST_EFFORT)

PARAMETERS = [
    Param("robot_id", "", "this robot's id; empty: the node's namespace"),
    Param("team", ["robot1", "robot2", "robot3"], "every robot id of the team (this one included)"),
    Param("bits_per_step", 16, "payload bit budget B per step (the token bucket gains B each step)", 1, 1024),
    Param("strategy", "ours", f"what to send: {', '.join(STRATEGIES)}"),
    Param("team_key_file", "", "the team's HMAC key file (spatial-memory keygen PATH; mode 0600), the same on every "
          "robot; required unless team_key is set"),
    Param("team_key", "", "the key itself as 'hex:<digits>', for the simulator and tests, which generate one per run "
          "(anyone who can list parameters sees it: a real team uses team_key_file)"),
    Param("step_period", 0.1, "seconds per budget step (the sim's 1/rate_hz)", 0.01, 10.0),
    Param("comm_resolution", 0.5, "cell size of the shared map (m); a whole multiple of map_resolution", 0.05, 10.0),
    Param("class_names", list(CLASS_NAMES), "the world's object classes, lower case; sightings are sent as an index "
          "into this list, so every teammate must list the same classes in the same order"),
    Param("threshold", 0.3, "send when expected error reduction per bit reaches this (x bucket emptiness)", 0.0,
          100.0),
    Param("wall_share", 0.5, "a shared-map cell is sent as a wall when at least this share of its seen memory-map "
          "cells are walls (0.5: a tie is a wall; 0.6: a tie is free floor)", 0.01, 1.0),
    Param("map_resolution", 0.25, "the memory map's cell size (m)", 0.01, 5.0),
    Param("map_width_m", 20.0, "the memory map's extent along x (m)", 1.0, 2000.0),
    Param("map_height_m", 20.0, "the memory map's extent along y (m)", 1.0, 2000.0),
    Param("map_origin_x", -10.0, "x of the memory map's lower-left corner (m)", -1e6, 1e6),
    Param("map_origin_y", -10.0, "y of the memory map's lower-left corner (m)", -1e6, 1e6),
    Param("publish_period", 0.5, "seconds between partners, team map and stats publications", 0.05, 60.0),
    Param("max_window_skew", 10, "steps a packet's budget window may lead this robot's clock (clock error plus "
          "latency); a forged window can shut a teammate out for at most this long", 1, 1000),
    Param("source_rate", 30.0, "packets per second one DDS publisher may have checked (a teammate sends at most "
          "one a step); more are dropped before the tag is computed", 1.0, 10000.0),
    Param("link_rate", 300.0, "packets per second all publishers together may have checked", 1.0, 100000.0),
    # The team link between hosts (issue 14, comm/transport.py): 'dds' keeps /team/packets; 'udp' sends compact
    # frames to link_peers and counts every byte on the air (frames + IPv4/UDP headers) against link_bits_per_second.
    Param("transport", "dds", "how packets reach the team: 'dds' (/team/packets) or 'udp' (frames to link_peers)"),
    Param("link_bind", "", "udp: this robot's link address 'IPv4:port' (e.g. 10.77.0.1:7447)"),
    Param("link_peers", [""], "udp: teammates' 'IPv4:port' endpoints, or the link's subnet broadcast address"),
    Param("link_bits_per_second", 400.0, "udp: this robot's share of the air in bit/s, every header counted; 0: no "
          "limit", 0.0, 1e9),
]


class TeamCommNode(Node):
    """Sends this robot's news under the bit budget and applies what teammates send."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("team_comm", **node_kwargs)
        p = self.params = declare_parameters(self, PARAMETERS)
        self.robot_id = robot_id_of(self, p["robot_id"])
        if p["strategy"] not in STRATEGIES:
            raise ValueError(f"strategy '{p['strategy']}' is not one of {', '.join(STRATEGIES)}")
        self.map_geometry = map_geometry(p)
        layout = CommLayout.for_map(self.map_geometry, p["class_names"], p["comm_resolution"])
        config = CommConfig(bits_per_step=p["bits_per_step"], strategy=p["strategy"], threshold=p["threshold"],
                            max_window_skew=p["max_window_skew"], wall_share=p["wall_share"])
        self.flood = FloodGuard(FloodLimits(source_rate=p["source_rate"], source_burst=max(20.0, p["source_rate"]),
                                            link_rate=p["link_rate"], link_burst=max(100.0, p["link_rate"] / 3)))
        self.comm = TeamComm(self.robot_id, list(p["team"]), self._team_key(), layout, config)
        self.guard = InputGuard(self)
        self.wire_bytes_sent = 0
        self.steps_taken = 0
        self._pose: Pose2D | None = None
        self._speed = 0.0
        self._occupancy = np.full((self.map_geometry.height, self.map_geometry.width), -1, np.int8)
        self._new_sightings: list[Sighting] = []
        self._make_interfaces()
        self.get_logger().info(f"team link of {self.robot_id}: {p['bits_per_step']} bits/step, strategy "
                               f"{p['strategy']}, team {', '.join(p['team'])}")

    def _team_key(self) -> bytes:
        """The team's key from team_key_file or team_key; without one the node refuses to start (SystemExit 78
        after one fatal log line: no traceback, and no default key anyone could look up)."""
        key_file, key = self.params["team_key_file"].strip(), self.params["team_key"].strip()
        try:
            if key_file:
                path = Path(key_file).expanduser()
                loaded = load_team_key(path)
                problem = key_file_problem(path)
                if problem:
                    self.get_logger().warning(problem)
                return loaded
            if key:
                if not key.startswith("hex:"):
                    raise ValueError("team_key takes the key itself as 'hex:<digits>'; a key file goes in "
                                     "team_key_file")
                return load_team_key(key)
            raise ValueError(f"no team key: the team link needs the team's key and has no default; {MAKE_KEY_HINT}")
        except (ValueError, OSError) as error:
            self.get_logger().fatal(f"team_comm of {self.robot_id} cannot start: {error}")
            raise SystemExit(EXIT_NO_TEAM_KEY) from None

    def _make_interfaces(self) -> None:
        self.link = self._make_link()  # transport:=udp: frames to the other hosts instead of /team/packets
        if self.link is None:
            self.packet_pub = self.create_publisher(TeamPacket, "/team/packets", PACKET_QOS)
        self.merge_pub = self.create_publisher(MemoryEntryArray, "memory/merge", RELIABLE_QOS)
        self.partners_pub = self.create_publisher(PartnerStateArray, "partners", RELIABLE_QOS)
        self.markers_pub = self.create_publisher(MarkerArray, "partners/markers", RELIABLE_QOS)
        self.team_map_pub = self.create_publisher(OccupancyGrid, "team_map", LATCHED_QOS)
        self.stats_pub = self.create_publisher(CommStats, "comm/stats", RELIABLE_QOS)
        self.create_subscription(PoseWithCovarianceStamped, "pose", self._on_pose, RELIABLE_QOS)
        self.create_subscription(Odometry, "odom", self._on_odom, RELIABLE_QOS)
        self.create_subscription(OccupancyGrid, "map", self._on_map, LATCHED_QOS)
        self.create_subscription(MemoryEntryArray, "memory/entries", self._on_entries, RELIABLE_QOS)
        if self.link is None and hasattr(Subscription, "CallbackType"):
            # Iron and later hand the publisher's GID and numbering over: the flood guard's source
            self.packet_sub = self.create_subscription(TeamPacket, "/team/packets", self._on_packet, PACKET_QOS)
        elif self.link is None:  # Humble: no publisher identity (see _receive_packet)
            self.packet_sub = self.create_subscription(TeamPacket, "/team/packets",
                                                       lambda msg: self._on_packet(msg, None), PACKET_QOS)
        self.create_timer(self.params["step_period"], self._on_step)
        self.create_timer(self.params["publish_period"], self.publish_state)

    def _step(self) -> int:
        """The budget window: clock time in steps, wrapped to uint32 (TeamPacket.budget_window). The team's clocks
        agree (sim time, or NTP on real robots); at 10 Hz the wrap comes once in 13.6 years."""
        steps = int(round(self.get_clock().now().nanoseconds * 1e-9 / self.params["step_period"]))
        return steps % (1 << 32)

    # -- own state -------------------------------------------------------------------------------------------

    def _on_pose(self, msg: PoseWithCovarianceStamped) -> None:
        try:
            self._pose = msg_to_pose(msg)[0]
        except InvalidMessage as error:
            self.guard.reject("invalid pose", str(error))

    def _on_odom(self, msg: Odometry) -> None:
        speed = float(msg.twist.twist.linear.x)
        if math.isfinite(speed):
            self._speed = speed

    def _on_map(self, msg: OccupancyGrid) -> None:
        try:
            grid, geometry = msg_to_occupancy(msg)
        except InvalidMessage as error:
            self.guard.reject("invalid map", str(error))
            return
        if geometry != self.map_geometry:
            self.guard.reject("map of another geometry", f"got {geometry}, configured {self.map_geometry}: set the "
                                                         f"map_* parameters like the spatial memory's")
            return
        self._occupancy = grid.copy()

    def _on_entries(self, msg: MemoryEntryArray) -> None:
        for entry in msg.entries:
            if is_target_label(entry.label) and math.isfinite(entry.x) and math.isfinite(entry.y):
                self._new_sightings.append(Sighting(entry.label, float(entry.x), float(entry.y)))

    # -- the link --------------------------------------------------------------------------------------------

    def _on_step(self) -> None:
        if self._pose is None:
            return
        self.steps_taken += 1
        sightings, self._new_sightings = self._new_sightings, []
        if self.link is not None:
            self.link.step(self._step(), time.monotonic(), self._pose, self._speed, self._occupancy, sightings)
            self.wire_bytes_sent = self.link.stats.air_bytes_sent  # on the air: frames + IPv4/UDP headers
            return
        wire = self.comm.make_packet(self._step(), self._pose, self._speed, self._occupancy, sightings)
        if wire is not None:
            msg = wire_to_msg(wire, self.get_clock().now().to_msg())
            self.wire_bytes_sent += len(serialize_message(msg))
            self.packet_pub.publish(msg)

    def _on_packet(self, msg: TeamPacket, info: dict | None) -> None:
        """Handle a packet, then take what else waits in the queue, up to PACKETS_PER_WAKEUP: one executor round
        per packet costs far more than the checks, and a flood would otherwise overflow the queue and hold up the
        step timer. Bounded, so the timers still run between rounds."""
        self._receive_packet(msg, info)
        for _ in range(PACKETS_PER_WAKEUP - 1):
            try:
                with self.packet_sub.handle:
                    taken = self.packet_sub.handle.take_message(TeamPacket, False)
            except Exception:  # noqa: BLE001 (rclpy internals differ between distributions: fall back to one a round)
                return
            if taken is None:
                return
            self._receive_packet(taken[0], taken[1] if isinstance(taken[1], dict) else None)

    def _receive_packet(self, msg: TeamPacket, info: dict | None) -> None:
        """Cheapest first: count what the publisher's numbering shows was lost on the way (the receive queue), drop
        what is over its publisher's or the link's packet rate, and only then authenticate.

        Without the publisher's GID (Jazzy's and Humble's rclpy do not hand it over) there is no source to keep
        apart: a bucket or a numbering per claimed sender would let an outsider's flood in a teammate's name shut
        that teammate out (measured on Jazzy: 40% of a teammate's packets lost under a 2,000/s flood). Every packet
        then goes to the tag check, an HMAC of a few dozen bytes, cheaper than the callback that delivered it."""
        gid = (info or {}).get("publisher_gid")
        if gid:
            source = bytes(gid["data"])
            lost = self.flood.missed(source, (info or {}).get("publication_sequence_number"))
            if lost:
                self.comm.stats.drops[DROP_QUEUE_OVERFLOW] += lost
            if not self.flood.admit(source, time.monotonic()):
                self.comm.stats.drops[DROP_RATE_LIMITED] += 1
                return
        wire = WirePacket(msg.sender, msg.sequence, msg.budget_window, msg.payload, msg.payload_bits, msg.auth_tag)
        decoded = self.comm.verify(wire, self._step())  # lengths are checked before the payload is copied
        if decoded is None:
            return
        new = self.comm.apply(decoded, self._step())
        if new:
            self.merge_pub.publish(sightings_to_msg(new, decoded.sender, self.get_clock().now().to_msg()))

    # -- the team link between hosts (transport:=udp; comm/transport.py) ---------------------------------------

    def _make_link(self):
        """A FrameLink over UDP when transport is 'udp', None for 'dds'. A link that cannot be set up (unknown
        transport, no or malformed endpoints, an address this host does not have) stops the node with one fatal
        line and exit code 78, as a missing key does."""
        p = self.params
        if p["transport"] == "dds":
            return None
        from spatial_memory_ros.comm.transport import FrameLink, UdpTransport
        peers = [peer for peer in p["link_peers"] if peer.strip()]
        try:
            if p["transport"] != "udp":
                raise ValueError(f"transport '{p['transport']}' is not 'dds' or 'udp' (Zenoh was measured and not "
                                 f"chosen: benchmarks/results/link.json)")
            transport = UdpTransport(p["link_bind"], peers)
        except (ValueError, OSError) as error:
            self.get_logger().fatal(f"team_comm of {self.robot_id} cannot open its team link: {error}")
            raise SystemExit(78) from None  # EX_CONFIG, as without a key: a respawning launcher should not retry
        link = FrameLink(self.comm, list(p["team"]), transport, link_bits_per_second=p["link_bits_per_second"])
        self._link_alone = True
        self.create_timer(min(0.05, p["step_period"]), self._poll_link)
        self.get_logger().info(f"team link over UDP from {p['link_bind']} to {', '.join(peers)}, "
                               f"{p['link_bits_per_second']:.0f} bit/s on the air")
        return link

    def _link_state(self) -> str:
        """'dds', or on the UDP link whom this robot hears, or that it works alone."""
        if self.link is None:
            return "dds"
        heard = self.link.partners_heard(time.monotonic())
        return (f"udp: hearing {', '.join(heard)}" if heard else
                f"udp: alone (no teammate heard for {self.link.silent_after_s:.0f} s): working on its own")

    def _poll_link(self) -> None:
        now = time.monotonic()
        for decoded, new in self.link.poll(self._step(), now):
            if new:
                self.merge_pub.publish(sightings_to_msg(new, decoded.sender, self.get_clock().now().to_msg()))
        alone = not self.link.link_up(now)
        if alone != self._link_alone:
            log = self.get_logger().warning if alone else self.get_logger().info
            log(f"team link: no teammate heard for {self.link.silent_after_s:.0f} s, working alone" if alone else
                f"team link: hearing {', '.join(self.link.partners_heard(now))}")
            self._link_alone = alone

    def publish_state(self) -> None:
        """Publish partners (and their markers), the team map and the link statistics."""
        stamp = self.get_clock().now().to_msg()
        states = self.comm.partner_states(self._step())
        self.partners_pub.publish(partner_states_to_msg(states, stamp))
        self.markers_pub.publish(partner_markers(states, stamp, f"{self.robot_id}/partners"))
        team = self.comm.team_occupancy(self._occupancy, self.map_geometry)
        self.team_map_pub.publish(occupancy_to_msg(team, self.map_geometry, stamp))
        self.stats_pub.publish(self.stats_msg(stamp))

    def stats_msg(self, stamp) -> CommStats:
        """The link statistics as a message."""
        stats, steps = self.comm.stats, self.comm.budget_steps  # windows, not timer calls: a late timer skips some
        msg = CommStats(robot_id=self.robot_id, budget_bits_per_step=self.params["bits_per_step"], steps=steps,
                        payload_bits_sent=stats.payload_bits_sent, packets_sent=stats.packets_sent,
                        packets_received=stats.packets_received, wire_bytes_sent=self.wire_bytes_sent)
        msg.header.stamp = stamp
        seconds = steps * self.params["step_period"]
        msg.payload_bits_per_step = stats.payload_bits_sent / steps if steps else 0.0
        msg.wire_bytes_per_second = self.wire_bytes_sent / seconds if seconds else 0.0
        drops = stats.drop_counts()
        msg.drop_reasons, msg.drop_counts = list(drops), [int(v) for v in drops.values()]
        msg.link_state = self._link_state()
        return msg


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down (Ctrl-C)."""
    from spatial_memory_ros.nodes import spin_node

    return spin_node(TeamCommNode, sys.argv if args is None else args)


if __name__ == "__main__":
    sys.exit(main())
