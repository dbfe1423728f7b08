"""The simulated team as separate hosts (issue 14): the simulator on one host, each robot's whole stack on its own,
only the team link on the radio between robots.

:func:`split_team_graph` cuts ``graph.sim_team_graph``'s graph by host: ``"sim"`` keeps the simulator, and each
robot keeps the nodes of its namespace plus a BEV maker of its own (the one-host graph shares one bev_predictor or
geometric_bev among the robots; on separate hosts each robot makes its own BEV); every team_comm sends its frames
over UDP (``transport:=udp``) from the robot's radio endpoint. The sim reaches each robot's camera, odometry,
cmd_vel, initialpose, ground truth and /clock by DDS over a control channel that is not the radio (a network of
its own, not counted against any share): :data:`CONTROL_DDS_PROFILE` makes every participant UDPv4 only (no shared
memory between hosts), and ``ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT`` lets the profile decide. Each robot's
DDS must be kept off its radio by the host (test/netns.py's ``radio_port`` lets only the link's UDP port out on
the radio); robots never discover each other, since the control channel joins each robot to the sim alone.
This module needs neither rclpy nor launch.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from spatial_memory_ros.graph import NodeSpec, Sources, ready_topics

# Fast DDS: UDPv4 only (no shared-memory transport: separate hosts share no memory), on every interface the host has.
CONTROL_DDS_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com">
  <profiles>
    <transport_descriptors>
      <transport_descriptor><transport_id>udp_only</transport_id><type>UDPv4</type></transport_descriptor>
    </transport_descriptors>
    <participant profile_name="udp_only" is_default_profile="true">
      <rtps>
        <userTransports><transport_id>udp_only</transport_id></userTransports>
        <useBuiltinTransports>false</useBuiltinTransports>
      </rtps>
    </participant>
  </profiles>
</dds>
"""

BEV_MAKERS = ("bev_predictor", "geometric_bev")


def control_dds_environment(profile_path: Path, domain_id: int | None = None) -> dict[str, str]:
    """Environment for every node on every host of the split team: DDS over UDP only, as the profile says (write
    :data:`CONTROL_DDS_PROFILE` to ``profile_path`` first)."""
    # ROS_LOCALHOST_ONLY=0 as well: Jazzy still honours the deprecated variable, and over the discovery range
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT", "ROS_LOCALHOST_ONLY": "0",
           "FASTDDS_DEFAULT_PROFILES_FILE": str(profile_path), "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(int(domain_id))
    return env


def split_team_graph(graph: list[NodeSpec], link_endpoints: list[str], link_peers: list[str] | str,
                     link_bits_per_second: float = 400.0, sources: Sources | None = None,
                     extra_bev_readers: int = 0, team_key_file: str = "") -> dict[str, list[NodeSpec]]:
    """``{"sim": [...], "robot1": [...], ...}``: the simulated team's graph (``sim_team_graph``), one host each.
    ``link_endpoints`` is each robot's 'IPv4:port' on the radio (in the team's order); ``link_peers`` the subnet's
    broadcast address or the endpoints (a robot's own left out of its list), as robot.launch.py's ``link_peers``;
    ``link_bits_per_second`` each robot's share of the air. ``sources`` and ``extra_bev_readers`` as given to sim_team_graph (the sim's ready_topics
    are rewritten so that each robot's camera waits for that robot's own BEV maker). ``team_key_file``: the team's
    key file (``spatial-memory keygen``) instead of the graph's per-run key, for hosts started one by one (each
    start of sim_team_graph draws a new per-run key)."""
    sims = [spec for spec in graph if spec.executable == "sim_world"]
    if len(sims) != 1:
        raise ValueError("the graph has no single sim_world: not a sim_team_graph")
    sim = sims[0]
    robots = [f"robot{k + 1}" for k in range(int(sim.parameters["robots"]))]
    if len(link_endpoints) != len(robots):
        raise ValueError(f"{len(robots)} robots need {len(robots)} link endpoints, got {len(link_endpoints)}")
    peers = [p.strip() for p in (link_peers.split(",") if isinstance(link_peers, str) else link_peers) if p.strip()]
    shared_makers = [spec for spec in graph if not spec.namespace and spec.executable in BEV_MAKERS]
    hosts: dict[str, list[NodeSpec]] = {"sim": []}
    for robot, endpoint in zip(robots, link_endpoints):
        ns = f"/{robot}"
        part = [replace(spec, parameters={**spec.parameters, "robots": [""]}, namespace=ns)
                for spec in shared_makers]
        for spec in graph:
            if spec.namespace != ns:
                continue
            if spec.executable == "team_comm":
                key = {"team_key_file": team_key_file, "team_key": ""} if team_key_file else {}
                spec = replace(spec, parameters={**spec.parameters, **key, "transport": "udp", "link_bind": endpoint,
                                                 "link_peers": [p for p in peers if p != endpoint] or peers,
                                                 "link_bits_per_second": float(link_bits_per_second)})
            part.append(spec)
        hosts[robot] = part
    placed = {id(spec) for spec in shared_makers} | {id(spec) for spec in graph if spec.namespace in
                                                      {f"/{r}" for r in robots}}
    hosts["sim"] = [spec for spec in graph if id(spec) not in placed]
    if sources is not None:
        ready = ready_topics(robots, sources, [], extra_bev_readers, per_robot=hosts)
        hosts["sim"] = [replace(spec, parameters={**spec.parameters, "ready_topics": ready})
                        if spec.executable == "sim_world" else spec for spec in hosts["sim"]]
    return hosts


def host_graph(graph: list[NodeSpec], host: str, link_endpoints: str | list[str] = "",
               link_peers: str | list[str] = "", link_bits_per_second: float = 400.0, team_key_file: str = "",
               sources: Sources | None = None) -> list[NodeSpec]:
    """The part of the simulated team's graph that runs on ``host`` ('' or 'all': the whole graph, as before;
    'sim'; or a robot id), for sim_team.launch.py's ``host:=``. A split team needs every robot's radio endpoint
    ('IPv4:port', comma separated, in the team's order) and the team's key file on every host (each launch would
    otherwise draw its own per-run key); ``link_peers`` defaults to the endpoints."""
    if host in ("", "all"):
        return graph
    endpoints = [e.strip() for e in (link_endpoints.split(",") if isinstance(link_endpoints, str)
                                     else link_endpoints) if e.strip()]
    if not team_key_file:
        raise ValueError(f"host:={host} needs team_key_file:=PATH (spatial-memory keygen PATH, the same file on "
                         f"every host): each host's launch would draw its own per-run key")
    parts = split_team_graph(graph, endpoints, link_peers or endpoints, link_bits_per_second, sources=sources,
                             team_key_file=team_key_file)
    if host not in parts:
        raise ValueError(f"host:={host} is not one of {', '.join(parts)}")
    return parts[host]
