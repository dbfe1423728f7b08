"""The README's ROS 2 commands through the real tools: `ros2 launch` of both launch files, `ros2 topic echo`,
`ros2 param get/set`, `ros2 service call`, and Ctrl-C as a terminal sends it (SIGINT to the launch's whole process
group, after which `ros2 launch` sends every node a second SIGINT): every node must exit 0 with no traceback.

Needs the real ROS 2 launch system and CLI in this venv: `make setup` installs them when ../shared/vendor/ros2_tools
is present; elsewhere these tests are skipped with that reason. The package is found by `ros2 launch` through the
ament index that its CMake install wrote into the venv (AMENT_PREFIX_PATH=<venv>, as after `source .venv/bin/activate`).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

VENV = Path(sys.prefix)
ROS2 = VENV / "bin" / "ros2"
HERE = Path(__file__).resolve().parent


def _tools_missing() -> str:
    if not ROS2.exists():
        return f"no {ROS2}: the real ROS 2 launch and CLI are not installed (make setup installs them when " \
               f"../shared/vendor/ros2_tools is present)"
    try:
        import launch_ros  # noqa: F401
        import ros2launch  # noqa: F401
    except ImportError as error:
        return f"the real ROS 2 launch system is not installed ({error}); see ../shared/vendor/ros2_tools"
    return ""


pytestmark = [pytest.mark.slow, pytest.mark.ros, pytest.mark.timeout(600),
              pytest.mark.skipif(bool(_tools_missing()), reason=_tools_missing() or "tools present")]

_domains = iter(range(1, 50))


def _env() -> dict[str, str]:
    """The test's environment, with the venv's ament index first and a DDS domain of this test's own."""
    env = dict(os.environ)
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    env["AMENT_PREFIX_PATH"] = os.pathsep.join(prefixes + [str(VENV)] if str(VENV) not in prefixes else prefixes)
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env['PATH']}"
    env["ROS_DOMAIN_ID"] = str((int(env.get("ROS_DOMAIN_ID", "100")) + next(_domains)) % 200 + 1)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _sigint_default() -> None:
    # A child of a non-interactive shell's `&` job would inherit SIGINT as ignored (see the vendor README).
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Launch:
    """`ros2 launch spatial_memory_ros ...` in its own process group, as a terminal's foreground job."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = open(log, "w")
        self.process = subprocess.Popen([str(ROS2), "launch", "spatial_memory_ros", *args], env=env,
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=_sigint_default)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if re.search(pattern, self.output()):
                return True
            time.sleep(0.5)
        return bool(re.search(pattern, self.output()))

    def ctrl_c(self, timeout: float = 60.0) -> int:
        """SIGINT to the whole process group (what a terminal's Ctrl-C does); the launch's exit code."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()


def assert_every_node_exited_cleanly(output: str, nodes: int) -> None:
    died = re.findall(r"\[ERROR\] \[([\w.-]+)\]: process has died \[pid \d+, exit code (-?\d+)", output)
    finished = re.findall(r"\[INFO\] \[([\w.-]+)\]: process has finished cleanly", output)
    said = {name: [line for line in output.splitlines() if line.startswith(f"[{name}]")][-40:] for name, _ in died}
    assert not died, f"nodes with a non-zero exit code: {died}; their last lines: {said}"
    assert "Traceback" not in output, output[output.index("Traceback") - 2000: output.index("Traceback") + 3000]
    assert len(finished) == nodes, f"{len(finished)} of {nodes} nodes finished cleanly: {finished}"


def ros2(env: dict[str, str], *args: str, timeout: float = 60.0, tries: int = 3) -> str:
    """Run `ros2 ARGS` (retried: discovery without the daemon can miss a node on a loaded machine); stdout."""
    for attempt in range(tries):
        result = subprocess.run([str(ROS2), *args], env=env, capture_output=True, text=True, timeout=timeout)
        if result.returncode == 0:
            return result.stdout
        time.sleep(2.0)
    raise AssertionError(f"ros2 {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def test_the_package_is_in_the_venvs_ament_index():
    env = _env()
    assert (VENV / "share" / "ament_index" / "resource_index" / "packages" / "spatial_memory_ros").exists()
    prefix = Path(ros2(env, "pkg", "prefix", "spatial_memory_ros").strip())  # the venv, or an overlay before it
    assert (prefix / "share" / "spatial_memory_ros" / "launch" / "sim_team.launch.py").exists()
    executables = ros2(env, "pkg", "executables", "spatial_memory_ros").split()
    for name in ("sim_world", "bev_predictor", "localizer", "spatial_memory", "explorer", "team_comm"):
        assert name in executables
    assert "ready_topics" in ros2(env, "run", "spatial_memory_ros", "sim_world", "--help")  # its parameters


def test_sim_team_reaches_the_goal_answers_the_cli_and_stops_cleanly_on_ctrl_c(tmp_path):
    """sim_team with 2 robots: an explorer reports 'arrived' (ros2 topic echo), ros2 param get/set and ros2 service
    call answer, and Ctrl-C ends all 10 nodes with exit code 0 and no traceback."""
    env = _env()
    launch = Launch(["sim_team.launch.py", "robots:=2", "maze_size:=9", "real_time_factor:=0",
                     "goal_query:=the red target"], env, tmp_path / "sim_team.log")
    try:
        echoes = [subprocess.Popen([str(ROS2), "topic", "echo", "--no-daemon", "--once", "--filter",
                                    "m.data == 'arrived'", f"/robot{k}/explorer/status", "std_msgs/msg/String",
                                    "--qos-durability", "transient_local", "--qos-reliability", "reliable"],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                  for k in (1, 2)]
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and all(e.poll() is None for e in echoes) \
                and launch.process.poll() is None:
            time.sleep(1.0)
        arrived = [e for e in echoes if e.poll() == 0]
        for echo in echoes:
            if echo.poll() is None:
                echo.terminate()
            echo.wait(timeout=10)
        assert arrived, "no explorer arrived at the red target within 300 s:\n" + launch.output()[-4000:]
        assert "data: arrived" in arrived[0].stdout.read()

        assert "String value is: map" in ros2(env, "param", "get", "--no-daemon", "--spin-time", "5",
                                              "/robot1/localizer", "map_frame")
        refused = subprocess.run([str(ROS2), "param", "set", "--no-daemon", "--spin-time", "5", "/robot1/localizer",
                                  "initial_sd", "0.5"], env=env, capture_output=True, text=True, timeout=60)
        assert "read-only" in refused.stdout + refused.stderr
        assert "Set parameter successful" in ros2(env, "param", "set", "--no-daemon", "--spin-time", "5",
                                                  "/robot1/explorer", "use_sim_time", "true")
        answer = ros2(env, "service", "call", "/robot1/query", "spatial_memory_ros/srv/QueryMemory",
                      "{query: 'the red target', num_samples: 5}", timeout=60)
        assert "success=True" in answer, answer
    except BaseException:
        launch.close()
        raise
    assert launch.ctrl_c() == 0
    assert_every_node_exited_cleanly(launch.output(), nodes=10)


def test_robot_launch_with_its_own_namespace_drives_a_stand_in_base_and_stops_cleanly(tmp_path):
    """robot.launch.py namespace:=robot7 (no team given): team_comm stays up, the base gets cmd_vel, map -> odom ->
    base_link is connected with the base's own odom -> base_link, and Ctrl-C ends all 5 nodes cleanly."""
    env = _env()
    key = tmp_path / "team.key"
    subprocess.run([str(VENV / "bin" / "spatial-memory"), "keygen", str(key)], env=env, check=True,
                   capture_output=True, timeout=60)
    base_log = open(tmp_path / "base.log", "w")
    base = subprocess.Popen([sys.executable, str(HERE / "stand_in_base.py"), "--cmd-vel", "/base/cmd_vel"],
                            env=env, stdout=base_log, stderr=subprocess.STDOUT)
    launch = Launch(["robot.launch.py", "namespace:=robot7", "cmd_vel:=/base/cmd_vel", f"team_key_file:={key}"],
                    env, tmp_path / "robot.log")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and launch.process.poll() is None and base.poll() is None:
            seen = (tmp_path / "base.log").read_text()
            if "CMD_VEL" in seen and "TF_CONNECTED map odom base_link" in seen:
                break
            time.sleep(0.5)
        seen = (tmp_path / "base.log").read_text()
        assert "CMD_VEL" in seen and "TF_CONNECTED map odom base_link" in seen, seen + launch.output()[-4000:]
        assert "team robot7" in launch.output()  # team_comm came up in a team of its own
        assert "process has died" not in launch.output()
    except BaseException:
        launch.close()
        raise
    finally:
        base.send_signal(signal.SIGINT)
        base.wait(timeout=30)
        base_log.close()
    assert launch.ctrl_c() == 0
    assert_every_node_exited_cleanly(launch.output(), nodes=5)


def test_robot_launch_refuses_a_team_without_its_namespace(tmp_path):
    env = _env()
    result = subprocess.run([str(ROS2), "launch", "spatial_memory_ros", "robot.launch.py", "namespace:=robot7",
                             "team:=robot1,robot2"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "does not contain this robot's namespace 'robot7'" in result.stdout + result.stderr
