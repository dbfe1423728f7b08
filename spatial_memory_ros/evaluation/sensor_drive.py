"""A simulated robot's drive recorded as a real robot's sensor bag (no ROS): a random walk in any world of
sim/interface.py, steered by its own laser scan's BEV, writing the camera image with its CameraInfo, the scan, the
depth image and odometry at every step (recording/sensor_bags.py), stamped in sim time. What
``spatial-memory record --adaptation`` records from a live robot; tests and benchmarks/adapt.py adapt on it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spatial_memory_ros.behaviour.walker import RandomWalker
from spatial_memory_ros.perception.scan_bev import scan_to_bev
from spatial_memory_ros.recording.sensor_bags import SensorBagWriter
from spatial_memory_ros.sim import range_sensors


@dataclass(frozen=True)
class DriveResult:
    """What the drive wrote: the bag, sim seconds, frames per topic, metres driven."""

    bag: Path
    seconds: float
    counts: dict[str, int]
    distance: float


def record_drive(world, bag: Path | str, seconds: float, seed: int = 0, robot: int = 0,
                 namespace: str = "robot1", depth: bool = True, label_lag: float = 0.0) -> DriveResult:
    """Drive ``robot`` of ``world`` for ``seconds`` of sim time with a RandomWalker on its scan's BEV and record
    its sensors into a new bag at ``bag``. ``label_lag``: the scan and depth are stamped this much later than
    the image (a sensor on another clock, for tests)."""
    walker = RandomWalker(seed=seed)
    scan_model = range_sensors.default_scan_model(world)
    camera = world.camera_model(robot)
    steps = int(round(seconds / world.config.dt))
    with SensorBagWriter(bag, namespace) as writer:
        for _ in range(steps):
            stamp = world.time
            scan = range_sensors.scan(world, robot, scan_model)
            writer.image(stamp, world.render(robot))
            writer.camera_info(stamp, camera)
            writer.scan(stamp + label_lag, scan)
            if depth:
                writer.depth(stamp + label_lag, range_sensors.depth_image(world, robot))
            writer.odometry(stamp, world.odom_pose(robot), world.odom_twist(robot))
            bev, _ = scan_to_bev(scan)
            commands = [(0.0, 0.0)] * world.num_robots
            commands[robot] = walker.command(bev, world.odom_twist(robot))
            world.step(commands)
        counts = dict(writer.writer.counts)
    return DriveResult(Path(bag), steps * world.config.dt, counts, world.distance_travelled(robot))
