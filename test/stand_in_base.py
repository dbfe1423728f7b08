"""A stand-in for a real robot base and camera, for tests of robot.launch.py through the real `ros2 launch`.

Like a real base it publishes odometry (header `odom`, child `base_link`) and its own odom -> base_link on /tf,
and a 64x64 rgb8 camera with camera_info, at 10 Hz on wall-clock stamps, and it obeys cmd_vel. It prints one line
when the first velocity command arrives (CMD_VEL) and one when map -> odom -> base_link is connected on /tf
(TF_CONNECTED map odom base_link), then keeps running until SIGINT or SIGTERM.

Usage: python stand_in_base.py [--odom /odom] [--cmd-vel /cmd_vel] [--camera /camera/image_raw]
"""
from __future__ import annotations

import argparse
import math
import signal
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--odom", default="/odom")
    parser.add_argument("--cmd-vel", default="/cmd_vel")
    parser.add_argument("--camera", default="/camera/image_raw")
    options = parser.parse_args()

    import numpy as np
    import rclpy
    from geometry_msgs.msg import TransformStamped, Twist
    from nav_msgs.msg import Odometry
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import CameraInfo, Image
    from tf2_msgs.msg import TFMessage

    stop = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.append(True))
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("stand_in_base")
    state = {"x": 0.0, "y": 0.0, "theta": 0.0, "v": 0.0, "w": 0.0, "commands": 0, "connected": False}
    parents: dict[str, str] = {}
    odom_pub = node.create_publisher(Odometry, options.odom, 10)
    tf_pub = node.create_publisher(TFMessage, "/tf", 10)
    image_pub = node.create_publisher(Image, options.camera, qos_profile_sensor_data)
    info_pub = node.create_publisher(CameraInfo, options.camera.rsplit("/", 1)[0] + "/camera_info",
                                     qos_profile_sensor_data)
    rng = np.random.default_rng(0)
    wall = np.full((64, 64, 3), 90, np.uint8)
    wall[40:] = 160  # a floor below a wall

    def on_cmd_vel(msg: Twist) -> None:
        state["v"], state["w"] = max(-0.3, min(0.3, msg.linear.x)), max(-1.0, min(1.0, msg.angular.z))
        state["commands"] += 1
        if state["commands"] == 1:
            print("CMD_VEL", flush=True)

    def on_tf(msg: TFMessage) -> None:
        for transform in msg.transforms:
            parents[transform.child_frame_id] = transform.header.frame_id
        chain = ["base_link"]
        while chain[-1] in parents and len(chain) < 10:
            chain.append(parents[chain[-1]])
        if not state["connected"] and chain[-1] == "map":
            state["connected"] = True
            print("TF_CONNECTED", " ".join(reversed(chain)), flush=True)

    def tick() -> None:
        dt = 0.1
        state["theta"] += state["w"] * dt
        state["x"] += state["v"] * dt * math.cos(state["theta"])
        state["y"] += state["v"] * dt * math.sin(state["theta"])
        stamp = node.get_clock().now().to_msg()
        odom = Odometry()
        odom.header.stamp, odom.header.frame_id, odom.child_frame_id = stamp, "odom", "base_link"
        odom.pose.pose.position.x, odom.pose.pose.position.y = state["x"], state["y"]
        odom.pose.pose.orientation.z = math.sin(state["theta"] / 2)
        odom.pose.pose.orientation.w = math.cos(state["theta"] / 2)
        odom.twist.twist.linear.x, odom.twist.twist.angular.z = state["v"], state["w"]
        odom_pub.publish(odom)
        transform = TransformStamped()
        transform.header, transform.child_frame_id = odom.header, "base_link"
        transform.transform.translation.x, transform.transform.translation.y = state["x"], state["y"]
        transform.transform.rotation = odom.pose.pose.orientation
        tf_pub.publish(TFMessage(transforms=[transform]))
        pixels = np.clip(wall.astype(np.int16) + rng.integers(-8, 9, wall.shape), 0, 255).astype(np.uint8)
        image = Image(height=64, width=64, encoding="rgb8", step=64 * 3, data=pixels.tobytes())
        image.header.stamp, image.header.frame_id = stamp, "camera"
        image_pub.publish(image)
        info = CameraInfo(height=64, width=64)
        info.header = image.header
        info_pub.publish(info)

    node.create_subscription(Twist, options.cmd_vel, on_cmd_vel, 10)
    node.create_subscription(TFMessage, "/tf", on_tf, 10)
    node.create_timer(0.1, tick)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    while not stop:
        executor.spin_once(timeout_sec=0.1)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
