"""config/spatial_memory.rviz: every display's topic is published by the running graph, with the display's
message type, and with QoS the display can receive (transient local where RViz needs the last message)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import spin_until

pytestmark = pytest.mark.ros
CONFIG = Path(__file__).resolve().parent.parent / "config" / "spatial_memory.rviz"
DISPLAY_TYPES = {
    "rviz_default_plugins/Map": "nav_msgs/msg/OccupancyGrid",
    "rviz_default_plugins/Path": "nav_msgs/msg/Path",
    "rviz_default_plugins/PoseWithCovariance": "geometry_msgs/msg/PoseWithCovarianceStamped",
    "rviz_default_plugins/Image": "sensor_msgs/msg/Image",
    "rviz_default_plugins/MarkerArray": "visualization_msgs/msg/MarkerArray",
}


def topic_displays(displays: list[dict]) -> list[dict]:
    """Every display with a topic, groups flattened."""
    found = []
    for item in displays:
        found += topic_displays(item.get("Displays", []))
        if "Topic" in item and "Value" in item["Topic"]:
            found.append(item)
    return found


def test_every_display_is_fed_by_the_graph_with_compatible_qos(ros, tmp_path):
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from spatial_memory_ros.graph import sim_team_graph
    from spatial_memory_ros.demo.processes import ComposedGraph

    config = yaml.safe_load(CONFIG.read_text())
    assert config["Visualization Manager"]["Global Options"]["Fixed Frame"] == "map"
    displays = topic_displays(config["Visualization Manager"]["Displays"])
    robots = {d["Topic"]["Value"].split("/")[1] for d in displays if d["Topic"]["Value"].startswith("/robot")}
    graph = ComposedGraph(sim_team_graph(len(robots), maze_size=9), tmp_path)
    graph.start(ros)
    probe = graph.nodes[0]
    assert probe.context is ros.context_

    def publishers(topic: str):
        return probe.get_publishers_info_by_topic(topic)

    topics = [d["Topic"]["Value"] for d in displays]
    spin_until(ros, lambda: all(publishers(t) for t in topics), timeout=90.0)
    problems = []
    for item in displays:
        topic, wanted = item["Topic"]["Value"], item["Topic"]
        infos = publishers(topic)
        if not infos:
            problems.append(f"{item['Name']}: nothing publishes {topic}")
            continue
        expected = DISPLAY_TYPES.get(item["Class"])
        if expected and {i.topic_type for i in infos} != {expected}:
            problems.append(f"{item['Name']}: {topic} is {infos[0].topic_type}, the display shows {expected}")
        for info in infos:
            if wanted["Reliability Policy"] == "Reliable" and info.qos_profile.reliability != ReliabilityPolicy.RELIABLE:
                problems.append(f"{item['Name']}: wants reliable, {info.node_name} offers best effort on {topic}")
            if (wanted["Durability Policy"] == "Transient Local"
                    and info.qos_profile.durability != DurabilityPolicy.TRANSIENT_LOCAL):
                problems.append(f"{item['Name']}: wants transient local, {info.node_name} offers volatile on {topic}")
        if item["Class"].endswith("/Map") and wanted["Durability Policy"] != "Transient Local" \
                and not topic.endswith("bev/grid"):
            problems.append(f"{item['Name']}: a map display must ask for transient local (RViz joins late)")
    graph.stop()
    assert not problems, "\n".join(problems)
