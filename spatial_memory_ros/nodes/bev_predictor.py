"""bev_predictor: camera image -> bird's-eye view (perception/predictor.py), for one robot or, batched, for several.

For each robot namespace in ``robots`` (default [""]: this node's own namespace):
Subscribes  <ns>/camera/image_raw   sensor_msgs/Image (rgb8 or bgr8, 64x64; other sizes resized with a warning)
Publishes   <ns>/bev                spatial_memory_ros/BevMap (same stamp as the image)
            <ns>/bev/grid           nav_msgs/OccupancyGrid of the BEV in <robot>/base_link, for RViz
            <ns>/bev/debug_image    sensor_msgs/Image: camera | predicted BEV side by side (if publish_debug_image)
Frames that arrive together (one per robot, as the sim publishes them) are predicted in one batch.
"""
from __future__ import annotations

import os
import sys
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from nav_msgs.msg import OccupancyGrid
from rclpy.node import Node
from sensor_msgs.msg import Image

from spatial_memory_ros.conversions import (InvalidMessage, bev_to_msg, image_to_msg, msg_to_image,
                                            occupancy_to_msg)
from spatial_memory_ros.perception.predictor import DEFAULT_CHECKPOINT, BevPredictor, CheckpointError
from spatial_memory_ros.types import GridGeometry
from spatial_memory_ros.evaluation.plots import draw_bev
from spatial_memory_ros.msg import BevMap
from spatial_memory_ros.ros_common import (RELIABLE_QOS, SENSOR_QOS, InputGuard, Param, declare_parameters,
                                           robot_id_of)

# Idle OpenMP threads must sleep, not spin: on a shared 2-core machine spinning halved the frame rate.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PARAMETERS = [
    Param("robots", [""], "robot namespaces served by this node ('' = the node's own namespace)"),
    Param("checkpoint", "", f"model file; empty: the shipped one ({DEFAULT_CHECKPOINT.name})"),
    Param("num_threads", 1, "torch threads for inference", 1, 64),
    Param("batch_timeout", 0.02, "wait at most this long (s) for the other robots' frames before predicting", 0.0,
          1.0),
    Param("resize_wrong_size", True, "resize images of another size (with a warning) instead of dropping them"),
    Param("publish_debug_image", False, "publish camera | BEV side by side on bev/debug_image"),
    Param("max_image_bytes", 16_000_000, "drop images larger than this", 1000, 1_000_000_000),
]


class BevPredictorNode(Node):
    """Predicts BEVs from camera images, batching the robots it serves."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("bev_predictor", **node_kwargs)
        p = self.params = declare_parameters(self, PARAMETERS)
        checkpoint = Path(p["checkpoint"]) if p["checkpoint"] else DEFAULT_CHECKPOINT
        self.predictor = BevPredictor.load(checkpoint, num_threads=p["num_threads"])  # CheckpointError says how to fix
        self.image_size = self.predictor.geometry.image_size
        self.guard = InputGuard(self)
        self.robots = [ns.strip("/") for ns in p["robots"]] or [""]
        # torch's first call is several times slower; pay it now rather than on the first camera frames, which a
        # replay at rate 1 would otherwise drop while they queue
        self.predictor.predict_arrays(np.zeros((len(self.robots), self.image_size, self.image_size, 3), np.uint8))
        self._pending: dict[int, tuple[np.ndarray, Image]] = {}
        self._outputs = []
        for index, namespace in enumerate(self.robots):
            prefix = f"/{namespace}/" if namespace else ""
            self._outputs.append((self.create_publisher(BevMap, f"{prefix}bev", RELIABLE_QOS),
                                  self.create_publisher(OccupancyGrid, f"{prefix}bev/grid", RELIABLE_QOS),
                                  self.create_publisher(Image, f"{prefix}bev/debug_image", SENSOR_QOS)))
            self.create_subscription(Image, f"{prefix}camera/image_raw", partial(self._on_image, index), SENSOR_QOS)
        self._flush_timer = self.create_timer(max(p["batch_timeout"], 0.001), self._flush_if_stale)
        self._first_pending_at: float | None = None
        self.frames_predicted = 0
        self.get_logger().info(f"BEV predictor ({checkpoint}) for {len(self.robots)} robot(s), "
                               f"{p['num_threads']} thread(s)")

    def _robot_id(self, index: int) -> str:
        return robot_id_of(self, self.robots[index])

    def _on_image(self, index: int, msg: Image) -> None:
        try:
            image = self._checked_image(msg)
        except InvalidMessage as error:
            self.guard.reject("invalid image", f"{self._robot_id(index)}: {error}")
            return
        if index in self._pending:
            self._predict_pending()  # a second frame of the same robot: the batch is complete as it is
        self._pending[index] = (image, msg)
        if self._first_pending_at is None:
            self._first_pending_at = self._now()
        if len(self._pending) == len(self.robots):
            self._predict_pending()

    def _checked_image(self, msg: Image) -> np.ndarray:
        if len(msg.data) > self.params["max_image_bytes"]:
            raise InvalidMessage(f"image of {len(msg.data)} bytes exceeds max_image_bytes")
        image = msg_to_image(msg)
        if image.shape[:2] != (self.image_size, self.image_size):
            if not self.params["resize_wrong_size"]:
                raise InvalidMessage(f"image is {image.shape[1]}x{image.shape[0]}, the model takes "
                                     f"{self.image_size}x{self.image_size}")
            self.get_logger().warning(f"image of {image.shape[1]}x{image.shape[0]} resized to {self.image_size}x"
                                      f"{self.image_size}; the model was trained on the sim's camera",
                                      throttle_duration_sec=5.0)
            image = cv2.resize(image, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
        return image

    @staticmethod
    def _now() -> float:
        return time.monotonic()

    def _flush_if_stale(self) -> None:
        if self._pending and self._now() - self._first_pending_at >= self.params["batch_timeout"]:
            self._predict_pending()

    def _predict_pending(self) -> None:
        indices = sorted(self._pending)
        images = np.stack([self._pending[i][0] for i in indices])
        messages = [self._pending[i][1] for i in indices]
        self._pending.clear()
        self._first_pending_at = None
        for index, msg, bev in zip(indices, messages, self.predictor.predict(images)):
            self._publish(index, msg, bev)
        self.frames_predicted += len(indices)

    def _publish(self, index: int, image_msg: Image, bev) -> None:
        bev_pub, grid_pub, debug_pub = self._outputs[index]
        robot = self._robot_id(index)
        stamp = image_msg.header.stamp
        bev_pub.publish(bev_to_msg(bev, stamp, f"{robot}/base_link", robot))
        height, width = bev.occupancy.shape
        geometry = GridGeometry(bev.resolution, width, height, bev.origin_x, bev.origin_y)
        grid_pub.publish(occupancy_to_msg(bev.occupancy, geometry, stamp, f"{robot}/base_link"))
        if self.params["publish_debug_image"]:
            camera = msg_to_image(image_msg)
            picture = draw_bev(bev, pixels_per_cell=max(1, camera.shape[0] // height))
            picture = cv2.resize(picture, (camera.shape[0], camera.shape[0]), interpolation=cv2.INTER_NEAREST)
            debug_pub.publish(image_to_msg(np.concatenate([camera, picture], axis=1), stamp, f"{robot}/camera"))


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down (Ctrl-C); exit 1 with the reason if the checkpoint cannot be used."""
    from spatial_memory_ros.nodes import spin_node

    try:
        return spin_node(BevPredictorNode, sys.argv if args is None else args)
    except CheckpointError as error:
        print(f"bev_predictor: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
