"""One filled-in instance of every message and service type of the package (used in and across processes)."""
# Float fields hold values exact in float32, so a round trip through DDS compares equal.
from __future__ import annotations

from spatial_memory_ros.msg import (BevMap, DropCounters, GridCode, MemoryEntry, MemoryEntryArray, PartnerState,
                                    PartnerStateArray, SimStatus, TeamPacket)
from spatial_memory_ros.srv import QueryMemory


def _entry(k: int) -> MemoryEntry:
    entry = MemoryEntry(x=1.5 + k, y=-2.25, location_sd=0.375, label=f"red target {k}", source_robot="robot2")
    entry.value = [0.5, -1.0, 2.0 + k]
    entry.stamp.sec, entry.stamp.nanosec = 12, 345
    return entry


def sample_messages() -> dict[str, object]:
    """Type name -> a message whose every field differs from its default."""
    bev = BevMap(robot_id="robot1", resolution=0.25, width=3, height=2, class_names=["red", "green"])
    bev.header.frame_id = "robot1/base_link"
    bev.header.stamp.sec = 7
    bev.origin.x, bev.origin.y, bev.origin.theta = 0.0, -0.25, 0.0
    bev.occupancy = [-1, 0, 100, 0, 0, -1]
    bev.object_class = [0, 1, 0, 2, 0, 0]

    grid = GridCode(robot_id="robot3", periods=[0.5, 0.75, 1.0], orientations=[0.0, 0.25, 0.5],
                    phases=[0.125, 0.25, 0.375, 0.5, 0.625, 0.75], decoded_sd=0.0625)
    grid.decoded_pose.x, grid.decoded_pose.y, grid.decoded_pose.theta = 3.0, 4.0, 1.0

    packet = TeamPacket(sender="robot2", sequence=41, budget_window=400, payload=[1, 2, 255], payload_bits=21,
                        auth_tag=[9, 8, 7, 6, 5, 4, 3, 2])
    partner = PartnerState(robot_id="robot2", age=1.5, packets_received=3)
    partner.pose.pose.position.x = 2.0
    partner.pose.covariance = [0.1] + [0.0] * 35
    partners = PartnerStateArray(partners=[partner])
    partners.header.frame_id = "map"
    drops = DropCounters(node="/robot1/explorer", reasons=["invalid BEV"], counts=[3])
    status = SimStatus(steps=10, sim_time=1.0, wall_time=0.2, robot_ids=["robot1"], frames_published=[11],
                       distance_travelled=[0.7])
    entries = MemoryEntryArray(entries=[_entry(0), _entry(1)])
    entries.header.frame_id = "map"
    return {"BevMap": bev, "GridCode": grid, "MemoryEntry": _entry(5), "MemoryEntryArray": entries,
            "TeamPacket": packet, "PartnerState": partner, "PartnerStateArray": partners,
            "DropCounters": drops, "SimStatus": status}


def sample_query() -> QueryMemory.Request:
    return QueryMemory.Request(query="the red target", embedding=[0.25, 0.5], x=1.0, y=2.0, location_sd=3.0,
                               num_samples=4)


def answer_query(request: QueryMemory.Request, response: QueryMemory.Response) -> QueryMemory.Response:
    """A deterministic answer that depends on every request field (proves the request arrived whole)."""
    response.success = True
    response.message = f"{request.query}|{len(request.embedding)}|{request.location_sd}"
    response.xs = [request.x + k for k in range(request.num_samples)]
    response.ys = [request.y] * request.num_samples
    response.scores = [float(v) for v in request.embedding] + [1.0] * (request.num_samples - len(request.embedding))
    response.labels = ["red target"] * request.num_samples
    return response
