"""explorer as a real rclpy node: given a map, a pose and a memory's answer it publishes the goal, a plan and
commands toward it; bad input (invalid pose, map or BEV, a query service that is absent, fails, answers garbage
or never answers) never crashes it, and every BEV still gets exactly one command."""
from __future__ import annotations

import math

import numpy as np
import pytest
from rclpy.parameter import Parameter

from conftest import spin_until

pytestmark = pytest.mark.ros
NS = "/robot1"


def _explorer(ros, **overrides):
    from spatial_memory_ros.nodes.explorer import ExplorerNode

    params = {"goal_query": "the red target", "query_period": 0.2, "query_timeout": 0.5, **overrides}
    node = ExplorerNode(context=ros.context_, namespace=NS,
                        parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    ros.add_node(node)
    return node


class Probe:
    """Feeds the explorer's inputs and collects its outputs."""

    def __init__(self, ros, explorer) -> None:
        import rclpy
        from geometry_msgs.msg import PointStamped, PoseWithCovarianceStamped, Twist
        from nav_msgs.msg import OccupancyGrid, Path
        from std_msgs.msg import String

        from spatial_memory_ros.msg import BevMap
        from spatial_memory_ros.ros_common import LATCHED_QOS, RELIABLE_QOS

        self.ros, self.explorer = ros, explorer
        self.node = rclpy.create_node("explorer_probe", context=ros.context_)
        ros.add_node(self.node)
        self.commands, self.goals, self.plans, self.statuses = [], [], [], []
        self.node.create_subscription(Twist, f"{NS}/cmd_vel", self.commands.append, RELIABLE_QOS)
        self.node.create_subscription(PointStamped, f"{NS}/goal", self.goals.append, LATCHED_QOS)
        self.node.create_subscription(Path, f"{NS}/plan", self.plans.append, LATCHED_QOS)
        self.node.create_subscription(String, f"{NS}/explorer/status", lambda m: self.statuses.append(m.data),
                                      LATCHED_QOS)
        self.bev_pub = self.node.create_publisher(BevMap, f"{NS}/bev", RELIABLE_QOS)
        self.pose_pub = self.node.create_publisher(PoseWithCovarianceStamped, f"{NS}/pose", RELIABLE_QOS)
        self.map_pub = self.node.create_publisher(OccupancyGrid, f"{NS}/map", LATCHED_QOS)
        navigating = explorer.params["mode"] == "navigate"
        for pub in (self.bev_pub, self.pose_pub, self.map_pub) if navigating else (self.bev_pub,):
            assert spin_until(ros, pub.get_subscription_count)
        assert spin_until(ros, lambda: self.statuses)
        self.bevs = 0

    def pose(self, x: float, y: float, theta: float, stamp: float = 0.0, nan: bool = False) -> None:
        from spatial_memory_ros.conversions import pose_to_msg, seconds_to_time
        from spatial_memory_ros.types import Pose2D

        msg = pose_to_msg(Pose2D(x, y, theta), seconds_to_time(stamp), "map", xy_sd=0.05)
        if nan:
            msg.pose.pose.position.x = float("nan")
        self.pose_pub.publish(msg)

    def map(self, grid: np.ndarray | None = None, broken: bool = False) -> None:
        from spatial_memory_ros.conversions import occupancy_to_msg, seconds_to_time

        grid = open_room() if grid is None else grid
        msg = occupancy_to_msg(grid, GEOMETRY, seconds_to_time(0.0))
        if broken:
            msg.data = msg.data[:-7]  # fewer cells than width x height
        self.map_pub.publish(msg)

    def bev(self, stamp: float = 0.0, broken: bool = False) -> None:
        """One BEV (free all round); waits for the explorer's command to it."""
        from spatial_memory_ros.conversions import bev_to_msg, seconds_to_time
        from spatial_memory_ros.sim.maze import CLASS_NAMES
        from spatial_memory_ros.types import BevGrid

        bev = BevGrid(np.zeros((32, 32), np.int8), np.zeros((32, 32), np.uint8), 0.25, 0.0, -4.0, CLASS_NAMES)
        msg = bev_to_msg(bev, seconds_to_time(stamp), "base_link", "robot1")
        if broken:
            msg.occupancy = msg.occupancy[:10]
        self.bev_pub.publish(msg)
        self.bevs += 1
        assert spin_until(self.ros, lambda: len(self.commands) >= self.bevs, timeout=5.0), "no command to a BEV"

    def settle(self, seconds: float = 0.3) -> None:
        spin_until(self.ros, lambda: False, timeout=seconds)


def _geometry():
    from spatial_memory_ros.types import GridGeometry

    return GridGeometry(0.25, 36, 36, 0.0, 0.0)  # 9 x 9 m


GEOMETRY = _geometry()


def open_room() -> np.ndarray:
    """A known 9 x 9 m room: free inside, walls on the border."""
    grid = np.zeros((GEOMETRY.height, GEOMETRY.width), np.int8)
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = 100
    return grid


def _query_service(ros, probe: Probe, answer, spin: bool = True):
    """A QueryMemory service on the probe (or on a node nobody spins, when ``spin`` is False)."""
    import rclpy

    from spatial_memory_ros.srv import QueryMemory

    calls = []

    def handle(request, response):
        calls.append(request.query)
        return answer(request, response)

    node = probe.node
    if not spin:
        node = rclpy.create_node("deaf_memory", context=ros.context_)
    service = node.create_service(QueryMemory, f"{NS}/query", handle)
    assert spin_until(ros, probe.explorer.query_client.service_is_ready, timeout=5.0)
    return calls, service, node


def calls_refused(ros, probe: Probe, explorer, calls: list, reason: str) -> bool:
    """Feed BEVs so the explorer asks the installed service; true once it was asked and refused the answer."""
    for _ in range(4):
        probe.bev(stamp=2.0)
        probe.settle(0.05)
    return bool(calls) and spin_until(ros, lambda: explorer.guard.counts.get(reason), timeout=5.0)


def red_target_at(x: float, y: float):
    def answer(request, response):
        response.success = True
        response.xs = [x + 0.05, x - 0.05, x, 1.0]
        response.ys = [y, y + 0.05, y - 0.05, 1.0]
        response.labels = ["red target", "red target", "red target", "floor"]
        response.scores = [0.9, 0.9, 0.8, 0.1]
        return response
    return answer


@pytest.mark.slow
def test_map_pose_and_answer_give_a_goal_a_plan_and_commands_toward_it(ros):
    explorer = _explorer(ros)
    probe = Probe(ros, explorer)
    calls, _, _ = _query_service(ros, probe, red_target_at(7.0, 2.0))
    probe.map()
    probe.pose(2.0, 2.0, 0.0, stamp=0.0)
    probe.settle()
    for step in range(8):
        probe.bev(stamp=0.0)
        probe.settle(0.05)
    assert calls and calls[0] == "the red target"
    assert spin_until(ros, lambda: probe.goals, timeout=5.0), "no goal published"
    goal = probe.goals[-1]
    assert goal.header.frame_id == "map" and abs(goal.point.x - 7.0) < 0.1 and abs(goal.point.y - 2.0) < 0.1
    assert explorer.robot.goal is not None and abs(explorer.robot.goal[0] - 7.0) < 0.1
    probe.bev(stamp=0.0)
    probe.bev(stamp=0.0)
    assert spin_until(ros, lambda: probe.statuses[-1] == "going to goal", timeout=5.0), probe.statuses
    assert spin_until(ros, lambda: probe.plans and probe.plans[-1].poses, timeout=5.0)
    last = probe.plans[-1].poses[-1].pose.position
    assert math.hypot(last.x - 7.0, last.y - 2.0) < 0.05, "the plan does not end at the goal"
    forward = probe.commands[-1]
    assert forward.linear.x > 0.2 and abs(forward.angular.z) < 0.5, "not driving straight at a goal ahead"
    # Facing away from the goal, it turns (in place) toward it.
    probe.pose(2.0, 2.0, math.pi / 2, stamp=1.0)
    probe.settle()
    probe.bev(stamp=1.0)
    turn = probe.commands[-1]
    assert turn.angular.z < -0.5 and turn.linear.x < 0.05, (turn.linear.x, turn.angular.z)
    # At the goal: a turn on the spot to look around, arrived, then it parks out of the way and stops asking.
    probe.pose(7.0, 2.0, 0.0, stamp=2.0)
    probe.settle()
    probe.bev(stamp=2.0)
    assert spin_until(ros, lambda: probe.statuses[-1] == "looking around", timeout=5.0), probe.statuses
    turn = probe.commands[-1]
    assert turn.angular.z > 0.5 and turn.linear.x == 0.0, (turn.linear.x, turn.angular.z)
    for _ in range(explorer.robot.look_around_steps):
        probe.bev(stamp=2.0)
    assert spin_until(ros, lambda: probe.statuses[-1] == "arrived", timeout=5.0), probe.statuses
    probe.bev(stamp=2.0)
    assert explorer.robot.arrived and explorer.robot.park is not None
    assert 2.0 <= math.hypot(explorer.robot.park[0] - 7.0, explorer.robot.park[1] - 2.0)
    probe.settle()
    asked = len(calls)
    for step in range(5):
        probe.bev(stamp=2.0)
    probe.settle()
    assert len(calls) == asked
    assert len(probe.commands) == probe.bevs


def test_without_pose_or_map_it_random_walks_one_command_per_bev(ros):
    explorer = _explorer(ros)
    probe = Probe(ros, explorer)
    for step in range(5):
        probe.bev(stamp=0.1 * step)
    assert probe.statuses[-1] == "waiting" and len(probe.commands) == 5
    assert all(math.isfinite(c.linear.x) and math.isfinite(c.angular.z) for c in probe.commands)


def test_walk_mode_ignores_goal_and_map(ros):
    explorer = _explorer(ros, mode="walk")
    probe = Probe(ros, explorer)
    probe.pose(2.0, 2.0, 0.0)
    for step in range(5):
        probe.bev(stamp=0.1 * step)
    assert probe.statuses == ["walking"] and explorer.queries_sent == 0 and len(probe.commands) == 5


@pytest.mark.slow
def test_bad_input_never_stops_the_commands(ros):
    explorer = _explorer(ros)
    probe = Probe(ros, explorer)
    # Invalid pose, broken map, broken BEV, no query service: still a command per BEV.
    probe.pose(2.0, 2.0, 0.0, nan=True)
    probe.map(broken=True)
    probe.settle()
    probe.bev()
    probe.bev(broken=True)
    probe.settle(1.2)
    counts = explorer.guard.counts
    assert {"invalid pose", "invalid map", "invalid BEV"} <= set(counts), counts
    assert explorer._pose is None and explorer._map is None and explorer.queries_sent == 0
    # A pose outside the map and an all-unknown map: it wanders rather than plans.
    probe.map(np.full((GEOMETRY.height, GEOMETRY.width), -1, np.int8))
    probe.pose(-50.0, 3.0, 0.0, stamp=1.0)
    probe.settle()
    probe.bev(stamp=1.0)
    probe.bev(stamp=1.0)
    assert explorer.robot.navigator is not None and explorer.robot.navigator.geometry == GEOMETRY
    # A query service that fails, then one that answers garbage: counted, no goal.
    probe.map()
    probe.pose(2.0, 2.0, 0.0, stamp=2.0)
    probe.settle()

    def failing(request, response):
        response.success, response.message = False, "memory is empty"
        return response

    calls, service, _ = _query_service(ros, probe, failing)
    assert calls_refused(ros, probe, explorer, calls, "query failed")
    probe.node.destroy_service(service)

    def garbage(request, response):
        response.success = True
        response.xs, response.ys, response.labels = [1.0, float("nan")], [2.0], ["red target"]
        return response

    calls, service, _ = _query_service(ros, probe, garbage)
    assert calls_refused(ros, probe, explorer, calls, "invalid query answer")
    assert explorer.robot.goal is None and not probe.goals
    probe.node.destroy_service(service)
    # A service that never answers (its node is not spun): given up after query_timeout, asked again later.
    _, _, deaf = _query_service(ros, probe, red_target_at(7.0, 2.0), spin=False)
    sent = explorer.queries_sent
    for _ in range(12):
        probe.bev(stamp=2.0)
        probe.settle(0.08)
    assert explorer.guard.counts.get("query timed out"), explorer.guard.counts
    assert explorer.queries_sent > sent + 1 and explorer.robot.goal is None
    assert len(probe.commands) == probe.bevs and explorer.context.ok()
    deaf.destroy_node()


def test_graph_gives_every_explorer_the_goal_the_team_map_and_the_pose_source():
    from spatial_memory_ros.graph import Sources, sim_team_graph

    graph = sim_team_graph(2, goal_query="the red target", sources=Sources("ground_truth/bev", "ground_truth/pose"))
    explorers = [spec for spec in graph if spec.executable == "explorer"]
    assert len(explorers) == 2
    for spec in explorers:
        assert spec.parameters["goal_query"] == "the red target"
        assert dict(spec.remappings) == {"bev": "ground_truth/bev", "pose": "ground_truth/pose", "map": "team_map"}
    for spec in graph:  # the link needs the same pose the memory and the explorer use (no localizer runs here)
        if spec.executable == "team_comm":
            assert dict(spec.remappings)["pose"] == "ground_truth/pose"


def test_the_final_approach_by_sight_and_the_look_around_are_parameters(ros):
    explorer = _explorer(ros, sight_range=1.5, look_around=False)
    assert explorer.robot.config.sight_range == 1.5 and explorer.robot.config.look_around is False


def test_the_node_decides_exactly_as_the_in_process_robot_on_the_same_senses(ros):
    """The explorer node runs behaviour.Robot: fed through topics the senses that an in-process Robot of the same
    seed and settings gets (a simulated robot's oracle BEV, true pose and measured motion, the true map), it gives
    the same command at every one of 60 steps. (A whole episode through the nodes differs from the in-process
    team task in its inputs only: the node's map comes from the memory node a period late, its odometry twist is
    noisy and its query answers arrive asynchronously; the decisions on given inputs are the same code.)"""
    from nav_msgs.msg import Odometry

    from spatial_memory_ros.behaviour.planner import PlannerConfig
    from spatial_memory_ros.behaviour.robot import Robot, RobotConfig, Senses
    from spatial_memory_ros.conversions import bev_to_msg, occupancy_to_msg, seconds_to_time
    from spatial_memory_ros.evaluation.map_scores import rasterize_maze
    from spatial_memory_ros.ros_common import RELIABLE_QOS
    from spatial_memory_ros.sim.maze import generate_maze
    from spatial_memory_ros.sim.world import World
    from spatial_memory_ros.types import GridGeometry

    maze = generate_maze(9, seed=3)
    geometry = GridGeometry.covering(maze, 0.25)
    truth = rasterize_maze(maze, geometry)
    explorer = _explorer(ros, goal_query="", seed=7)
    probe = Probe(ros, explorer)
    odom_pub = probe.node.create_publisher(Odometry, f"{NS}/odom", RELIABLE_QOS)
    assert spin_until(ros, odom_pub.get_subscription_count)
    probe.map_pub.publish(occupancy_to_msg(truth, geometry, seconds_to_time(0.0)))
    assert spin_until(ros, lambda: explorer.robot.geometry == geometry, timeout=5.0)
    p = explorer.params
    robot = Robot("", RobotConfig(PlannerConfig(max_linear_speed=p["max_linear_speed"],
                                                max_angular_speed=p["max_angular_speed"], dt=p["control_period"],
                                                goal_tolerance=p["goal_tolerance"], replan_every=p["replan_every"]),
                                  ask_every=10, seed=7), geometry)
    world = World(maze, 1, seed=3)
    expected, twist = [], None
    for step in range(60):
        stamp = 1.0 + 0.1 * step
        bev, pose = world.oracle_bev(0), world.true_pose(0)
        if twist is not None:
            odom = Odometry()
            odom.header.stamp = seconds_to_time(stamp)
            odom.twist.twist.linear.x, odom.twist.twist.angular.z = twist
            odom_pub.publish(odom)
            assert spin_until(ros, lambda: explorer._twist == twist, timeout=5.0)
        before = explorer._pose
        probe.pose(pose.x, pose.y, pose.theta, stamp=stamp)
        assert spin_until(ros, lambda: explorer._pose is not before, timeout=5.0)
        expected.append(robot.step(Senses(bev, explorer._pose, truth, (), twist)))
        probe.bev_pub.publish(bev_to_msg(bev, seconds_to_time(stamp), "base_link", "robot1"))
        assert spin_until(ros, lambda: len(probe.commands) > step, timeout=5.0)
        world.step([expected[-1]])
        twist = tuple(float(v) for v in world.true_twist(0))
    got = [(c.linear.x, c.angular.z) for c in probe.commands]
    assert np.allclose(got, expected, atol=1e-9), next(k for k, (a, b) in enumerate(zip(got, expected))
                                                        if not np.allclose(a, b, atol=1e-9))
    assert robot.status == explorer.robot.status == "exploring"
    assert sum(abs(v) > 0.05 for v, _ in expected) > 20  # it did drive, so the comparison means something


def test_a_planner_failure_is_logged_counted_and_answered_with_a_stop(ros):
    """A bug in the control path is not swallowed: counted as 'fault: planning error' on ~/dropped_inputs, the robot
    stops (no random walk that hides it), and the next BEV is served again."""
    explorer = _explorer(ros, goal_query="")
    probe = Probe(ros, explorer)
    probe.map()
    probe.pose(2.0, 2.0, 0.0)
    assert spin_until(ros, lambda: explorer._pose is not None and explorer._map is not None, timeout=5.0)

    def broken(*_args, **_kwargs):
        raise RuntimeError("planner bug")

    explorer.robot.navigator.step = broken
    probe.bev()
    probe.bev()
    assert explorer.guard.counts.get("fault: planning error") == 2
    assert [(c.linear.x, c.angular.z) for c in probe.commands[-2:]] == [(0.0, 0.0), (0.0, 0.0)]
