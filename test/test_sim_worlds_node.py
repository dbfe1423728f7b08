"""sim_world in either world (world:=builtin|memory_maze): camera images with camera_info, odometry, ground truth
and the oracle BEV, and robots that follow cmd_vel; the graph fits the map to the world's maze."""
from __future__ import annotations

import math

import pytest
from rclpy.parameter import Parameter

from conftest import spin_until

pytestmark = pytest.mark.ros


def _sim(ros, **overrides):
    from spatial_memory_ros.nodes.sim_world import SimWorldNode

    params = {"robots": 2, "maze_size": 9, "seed": 3, "wait_for_controllers": 0.0, "lockstep": False, **overrides}
    node = SimWorldNode(context=ros.context_, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    ros.add_node(node)
    return node


@pytest.mark.parametrize("world", ["builtin", pytest.param("memory_maze", marks=pytest.mark.slow)])
def test_publishes_camera_info_and_sensors_and_follows_cmd_vel(ros, world):
    import rclpy
    from geometry_msgs.msg import Twist
    from nav_msgs.msg import OccupancyGrid, Odometry
    from sensor_msgs.msg import CameraInfo, Image

    from spatial_memory_ros.msg import BevMap
    from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
    from spatial_memory_ros.sim.interface import WorldUnavailable, world_class_names, world_extent

    if world == "memory_maze":
        try:
            from spatial_memory_ros.sim.memory_maze import _load_tasks

            _load_tasks()
        except WorldUnavailable as error:
            pytest.skip(f"Memory-Maze cannot start on this machine: {error}")
    sim = _sim(ros, world=world)
    probe = rclpy.create_node("probe", context=ros.context_)
    ros.add_node(probe)
    got = {"image": [], "info": [], "odom": [], "bev": [], "map": []}
    probe.create_subscription(Image, "/robot2/camera/image_raw", got["image"].append, SENSOR_QOS)
    probe.create_subscription(CameraInfo, "/robot2/camera/camera_info", got["info"].append, SENSOR_QOS)
    probe.create_subscription(Odometry, "/robot2/odom", got["odom"].append, RELIABLE_QOS)
    probe.create_subscription(BevMap, "/robot2/ground_truth/bev", got["bev"].append, RELIABLE_QOS)
    probe.create_subscription(OccupancyGrid, "/ground_truth/map", got["map"].append, LATCHED_QOS)
    from tf2_msgs.msg import TFMessage

    tf_static = []
    probe.create_subscription(TFMessage, "/tf_static", tf_static.append, LATCHED_QOS)
    cmd = probe.create_publisher(Twist, "/robot2/cmd_vel", RELIABLE_QOS)
    turn = Twist()
    turn.linear.x, turn.angular.z = 0.0, 1.0
    start_yaw = sim.world.true_pose(1).theta
    probe.create_timer(0.02, lambda: cmd.publish(turn))

    assert spin_until(ros, lambda: all(len(v) >= (1 if k == "map" else 5) for k, v in got.items()), timeout=60.0), \
        {k: len(v) for k, v in got.items()}
    image, info = got["image"][-1], got["info"][-1]
    assert (image.encoding, image.width, image.height) == ("rgb8", 64, 64)
    assert (info.width, info.height, info.header.frame_id) == (64, 64, "robot2/camera")
    assert info.header.stamp == image.header.stamp or len(got["info"]) >= len(got["image"]) - 1
    camera = sim.world.camera_model(1)
    assert list(info.k) == pytest.approx(camera.projection_matrix())
    expected_fov = 80.0 if world == "memory_maze" else 90.0
    assert math.degrees(2 * math.atan(32 / info.k[0])) == pytest.approx(expected_fov)
    assert tuple(got["bev"][-1].class_names) == world_class_names(world)
    cells, cell_size = world_extent(world, 9)
    grid = got["map"][-1]
    assert (grid.info.width, grid.info.height, grid.info.resolution) == (cells, cells, pytest.approx(cell_size))
    assert spin_until(ros, lambda: tf_static, timeout=10.0)
    mount = {t.child_frame_id: t.transform for m in tf_static for t in m.transforms}["robot2/camera"]
    assert mount.translation.z == pytest.approx(camera.mount_height)
    assert mount.translation.x == pytest.approx(camera.mount_forward)
    assert 2 * math.asin(mount.rotation.y) == pytest.approx(camera.mount_pitch)
    assert spin_until(ros, lambda: abs(math.remainder(sim.world.true_pose(1).theta - start_yaw, math.tau)) > 0.3,
                      timeout=30.0)


def test_an_unknown_world_stops_the_node_with_one_fatal_line(ros):
    with pytest.raises(SystemExit) as stopped:
        _sim(ros, world="gazebo")
    assert stopped.value.code == 78


def test_the_graph_fits_the_map_to_the_world():
    from spatial_memory_ros.graph import Sources, sim_team_graph

    graph = sim_team_graph(robots=2, maze_size=15, world="memory_maze", sources=Sources(bev="ground_truth/bev"))
    nodes = {spec.fully_qualified_name: spec.parameters for spec in graph}
    assert nodes["/sim_world"]["world"] == "memory_maze"
    assert nodes["/robot1/spatial_memory"]["map_width_m"] == 34.0  # 15 + 2 outer walls, 2 m cells
    assert nodes["/robot2/team_comm"]["class_names"] == ["red", "green", "blue", "purple", "yellow", "salmon"]
    builtin = {spec.fully_qualified_name: spec.parameters for spec in sim_team_graph(robots=2, maze_size=15)}
    assert builtin["/robot1/spatial_memory"]["map_width_m"] == 15.0 and "class_names" not in builtin["/robot1/team_comm"]


@pytest.mark.slow
def test_sim_world_without_gl_exits_78_with_one_fatal_line_and_no_traceback(tmp_path):
    import os
    import subprocess

    from spatial_memory_ros.graph import executable_path

    env = {**os.environ, "MUJOCO_GL": "no-such-backend", "ROS_LOG_DIR": str(tmp_path)}
    done = subprocess.run([str(executable_path("sim_world")), "--ros-args", "-p", "world:=memory_maze", "-p",
                           "maze_size:=9"], env=env, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 78, output[-3000:]
    assert "cannot start the memory_maze world" in output and "MUJOCO_GL" in output and "Traceback" not in output
