"""bev_predictor: camera image -> bird's-eye view (perception/predictor.py), for one robot or, batched, for several.

For each robot namespace in ``robots`` (default [""]: this node's own namespace):
Subscribes  <ns>/camera/image_raw   sensor_msgs/Image (rgb8 or bgr8, 64x64; other sizes resized with a warning)
            <ns>/camera/camera_info sensor_msgs/CameraInfo (only with use_camera_info: the camera's intrinsics)
Publishes   <ns>/bev                spatial_memory_ros/BevMap (same stamp as the image)
            <ns>/bev/grid           nav_msgs/OccupancyGrid of the BEV in <robot>/base_link, for RViz
            <ns>/bev/debug_image    sensor_msgs/Image: camera | predicted BEV side by side (if publish_debug_image)
Frames that arrive together (one per robot, as the sim publishes them) are predicted in one batch.

With ``use_camera_info`` (issue 12) the camera is an input, not a constant of the weights: each robot's image is
re-projected from its CameraInfo's intrinsics and the mount (camera_height, camera_forward, camera_pitch) to the
model's canonical camera and the BEV rescaled to metres (perception/camera_adapter.py), objects named in
``class_names`` (the world's). Dropped and counted then (~/dropped_inputs): an image before any usable CameraInfo,
an image whose size or encoding does not match its CameraInfo, an unusable or inconsistent CameraInfo.

With ``min_wall_incidence`` > 0 the wall cells the camera sees nearly edge-on, the predictor's least reliable, are
published as unseen (perception/wall_incidence.py), as the Memory-Maze score robot does with the same setting.
"""
from __future__ import annotations

import math
import os
import sys
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from nav_msgs.msg import OccupancyGrid
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from spatial_memory_ros.conversions import InvalidMessage, bev_to_msg, image_to_msg, msg_to_image, occupancy_to_msg
from spatial_memory_ros.sensor_conversions import msg_to_intrinsics
from spatial_memory_ros.perception.predictor import DEFAULT_CHECKPOINT, CheckpointError, load_predictor
from spatial_memory_ros.perception.wall_incidence import MIN_WALL_INCIDENCE, without_grazing_walls
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
    Param("use_camera_info", False, "adapt each image to the model's camera from camera/camera_info and the mount "
                                    "below (issue 12); false: images are taken as the model's own camera's"),
    Param("camera_height", 0.5, "camera's optical centre above the floor (m), with use_camera_info", 0.01, 100.0),
    Param("camera_forward", 0.0, "camera ahead of base_link's origin (m), with use_camera_info", -100.0, 100.0),
    Param("camera_pitch", 0.0, "camera pitched down (rad, positive = down), with use_camera_info", -1.0, 1.0),
    Param("class_names", [""], "object classes the BEVs name (the world's); [''] = the model's own"),
    Param("min_wall_incidence", MIN_WALL_INCIDENCE,
          "predicted wall cells seen more edge-on than this |cos| (ray against wall normal) are published unseen; "
          "0: every wall kept (perception/wall_incidence.py)", 0.0, 1.0),
]


class BevPredictorNode(Node):
    """Predicts BEVs from camera images, batching the robots it serves."""

    def __init__(self, **node_kwargs) -> None:
        super().__init__("bev_predictor", **node_kwargs)
        p = self.params = declare_parameters(self, PARAMETERS)
        checkpoint = Path(p["checkpoint"]) if p["checkpoint"] else DEFAULT_CHECKPOINT
        self.predictor = load_predictor(checkpoint, num_threads=p["num_threads"])  # CheckpointError says how to fix
        self.image_size = self.predictor.geometry.image_size
        self.guard = InputGuard(self)
        self.robots = [ns.strip("/") for ns in p["robots"]] or [""]
        # torch's first call is several times slower; pay it now rather than on the first camera frames, which a
        # replay at rate 1 would otherwise drop while they queue
        self.predictor.predict_arrays(np.zeros((len(self.robots), self.image_size, self.image_size, 3), np.uint8))
        self.class_names = tuple(n for n in p["class_names"] if n) or self.predictor.geometry.class_names
        self._adapters: dict[int, object] = {}  # robot index -> CameraAdapter of its latest usable CameraInfo
        self._pending: dict[int, tuple[np.ndarray, Image]] = {}
        self._outputs = []
        for index, namespace in enumerate(self.robots):
            prefix = f"/{namespace}/" if namespace else ""
            self._outputs.append((self.create_publisher(BevMap, f"{prefix}bev", RELIABLE_QOS),
                                  self.create_publisher(OccupancyGrid, f"{prefix}bev/grid", RELIABLE_QOS),
                                  self.create_publisher(Image, f"{prefix}bev/debug_image", SENSOR_QOS)))
            self.create_subscription(Image, f"{prefix}camera/image_raw", partial(self._on_image, index), SENSOR_QOS)
            if p["use_camera_info"]:
                self.create_subscription(CameraInfo, f"{prefix}camera/camera_info", partial(self._on_info, index),
                                         SENSOR_QOS)
        self._flush_timer = self.create_timer(max(p["batch_timeout"], 0.001), self._flush_if_stale)
        self._first_pending_at: float | None = None
        self.frames_predicted = 0
        self.get_logger().info(f"BEV predictor ({checkpoint}) for {len(self.robots)} robot(s), "
                               f"{p['num_threads']} thread(s)")

    def _robot_id(self, index: int) -> str:
        return robot_id_of(self, self.robots[index])

    def _on_info(self, index: int, msg: CameraInfo) -> None:
        from spatial_memory_ros.perception.camera_adapter import CameraMismatch
        from spatial_memory_ros.types import CameraModel

        p = self.params
        try:
            width, height, fx, fy, cx, cy = msg_to_intrinsics(msg)
            camera = CameraModel(width, height, fx, fy, cx, cy, p["camera_height"], p["camera_forward"],
                                 p["camera_pitch"])
            adapter = self._adapters.get(index)
            if adapter is None or adapter.camera != camera:
                self._adapters[index] = self.predictor.for_camera(camera, self.class_names)
                self.get_logger().info(f"{self._robot_id(index)}: camera {width}x{height}, "
                                       f"{camera.horizontal_fov_deg:.1f} deg across, {p['camera_height']} m up, "
                                       f"pitched {math.degrees(p['camera_pitch']):.2f} deg down")
        except (InvalidMessage, CameraMismatch) as error:
            self._adapters.pop(index, None)  # an inconsistent CameraInfo: its images wait for a usable one
            self.guard.reject("invalid camera_info", f"{self._robot_id(index)}: {error}")

    def _on_image(self, index: int, msg: Image) -> None:
        try:
            image = self._checked_image(msg) if not self.params["use_camera_info"] else self._adapted(index, msg)
        except InvalidMessage as error:
            self.guard.reject("invalid image", f"{self._robot_id(index)}: {error}")
            return
        except _NoCameraInfo as error:
            self.guard.reject("image without camera_info", f"{self._robot_id(index)}: {error}")
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

    def _adapted(self, index: int, msg: Image) -> np.ndarray:
        """The image re-projected to the model's camera by the robot's CameraAdapter."""
        adapter = self._adapters.get(index)
        if adapter is None:
            raise _NoCameraInfo("no usable CameraInfo on camera/camera_info yet; the image cannot be adapted")
        if len(msg.data) > self.params["max_image_bytes"]:
            raise InvalidMessage(f"image of {len(msg.data)} bytes exceeds max_image_bytes")
        if (msg.width, msg.height) != (adapter.camera.width, adapter.camera.height):
            raise InvalidMessage(f"image is {msg.width}x{msg.height} but its CameraInfo says "
                                 f"{adapter.camera.width}x{adapter.camera.height}")
        return adapter.canonical_images(msg_to_image(msg))[0]

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
        if self.params["use_camera_info"]:
            bevs = self._predict_adapted(indices, images)
        else:
            bevs = self.predictor.predict(images)
        for index, msg, bev in zip(indices, messages, bevs):
            self._publish(index, msg, bev)
        self.frames_predicted += len(indices)

    def _predict_adapted(self, indices: list[int], images: np.ndarray) -> list:
        """One batch through the model (images already canonical), each BEV rescaled by its robot's adapter."""
        from spatial_memory_ros.perception.camera_adapter import resample_logits
        from spatial_memory_ros.perception.model import images_to_tensor
        from spatial_memory_ros.perception.predictor import decode_logits
        from spatial_memory_ros.types import BevGrid

        predictor = self.predictor
        if hasattr(predictor, "infer"):  # a floor-boundary model: one pass, then each robot's camera geometry
            t, classes = predictor.infer(np.ascontiguousarray(images))
            return [self._adapters[index].bevs_from_inference(t[row:row + 1], classes[row:row + 1])[0]
                    for row, index in enumerate(indices)]
        with predictor._torch.inference_mode():
            logits = predictor.model(images_to_tensor(np.ascontiguousarray(images)))
        geometry, bevs = predictor.geometry, []
        for row, index in enumerate(indices):
            adapter = self._adapters[index]
            one = logits[row:row + 1]
            if not adapter.identity:
                one = resample_logits(one, adapter.sample_grid, adapter.outside)
            occupancy, objects = decode_logits(one, adapter.view_mask, predictor.bias)
            bevs.append(BevGrid(occupancy[0], adapter.slots[objects[0]], geometry.bev_resolution,
                                *geometry.bev_origin, self.class_names))
        return bevs

    def _publish(self, index: int, image_msg: Image, bev) -> None:
        bev_pub, grid_pub, debug_pub = self._outputs[index]
        bev = without_grazing_walls(bev, self.params["min_wall_incidence"])
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


class _NoCameraInfo(Exception):
    """An image arrived before its robot's first usable CameraInfo."""


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
