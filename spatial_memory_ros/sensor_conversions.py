"""Conversions between the range sensors' ROS messages and the package's types: CameraInfo of a pinhole
CameraModel, LaserScan of perception.scan_bev.LaserScan, 32FC1/16UC1 depth images, and intrinsics from a CameraInfo,
each checked (InvalidMessage says what is wrong). Kept apart from conversions.py so each stays one concern."""
from __future__ import annotations

import array
import math

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image, LaserScan

from spatial_memory_ros.conversions import InvalidMessage


def camera_info_to_msg(camera, stamp: Time, frame_id: str) -> CameraInfo:
    """sensor_msgs/CameraInfo of a world's pinhole camera (types.CameraModel): no distortion."""
    msg = CameraInfo()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(camera.width), int(camera.height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in camera.projection_matrix()]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(camera.fx), 0.0, float(camera.cx), 0.0, 0.0, float(camera.fy), float(camera.cy), 0.0,
             0.0, 0.0, 1.0, 0.0]
    return msg


# ------------------------------------------------------------------ range sensors (perception/scan_bev.py, depth_bev.py)

MAX_SCAN_RAYS = 100_000
MAX_DEPTH_PIXELS = 1 << 24


def scan_to_msg(scan, stamp: Time, frame_id: str, scan_time: float = 0.0) -> LaserScan:
    """sensor_msgs/LaserScan of a perception.scan_bev.LaserScan."""
    msg = LaserScan()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    count = len(scan.ranges)
    msg.angle_min = float(scan.angle_min)
    msg.angle_increment = float(scan.angle_increment)
    msg.angle_max = float(scan.angle_min + scan.angle_increment * (count - 1))
    msg.scan_time = float(scan_time)
    msg.range_min, msg.range_max = float(scan.range_min), float(scan.range_max)
    msg.ranges = array.array("f", np.asarray(scan.ranges, dtype=np.float32).tobytes())
    return msg


def msg_to_scan(msg: LaserScan):
    """perception.scan_bev.LaserScan from a message; InvalidMessage if angle_min + increment * (n - 1) does not
    give angle_max (a mismatched ray count), or its angles or range limits are unusable (the returns themselves
    are judged one by one, REP-117)."""
    from spatial_memory_ros.perception.scan_bev import LaserScan as Scan, check_scan

    count = len(msg.ranges)
    if count == 0 or count > MAX_SCAN_RAYS:
        raise InvalidMessage(f"scan has {count} rays (1..{MAX_SCAN_RAYS} accepted)")
    values = (msg.angle_min, msg.angle_max, msg.angle_increment)
    if not all(math.isfinite(v) for v in values):
        raise InvalidMessage(f"scan angles {values} are not finite")
    expected = msg.angle_min + msg.angle_increment * (count - 1)
    if abs(expected - msg.angle_max) > max(0.5 * abs(msg.angle_increment), 1e-6):
        implied = (msg.angle_max - msg.angle_min) / msg.angle_increment + 1 if msg.angle_increment else float("nan")
        raise InvalidMessage(f"scan has {count} ranges but angle_min {msg.angle_min:.4f} .. angle_max "
                             f"{msg.angle_max:.4f} every {msg.angle_increment:.5f} rad makes {implied:.1f}")
    scan = Scan(np.asarray(msg.ranges, dtype=np.float32), float(msg.angle_min), float(msg.angle_increment),
                float(msg.range_min), float(msg.range_max))
    try:
        check_scan(scan)
    except ValueError as error:
        raise InvalidMessage(str(error)) from None
    return scan


def depth_to_msg(depth: np.ndarray, stamp: Time, frame_id: str) -> Image:
    """sensor_msgs/Image 32FC1 (metres along the optical axis, REP-118) of a float depth image."""
    depth = np.ascontiguousarray(depth, dtype=np.float32)
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = (int(n) for n in depth.shape)
    msg.encoding = "32FC1"
    msg.is_bigendian = 0
    msg.step = 4 * msg.width
    msg.data = depth.tobytes()
    return msg


def msg_to_depth(msg: Image) -> np.ndarray:
    """A depth image from a 32FC1 (float32 metres) or 16UC1 / mono16 (uint16 millimetres) Image, as that dtype;
    InvalidMessage for any other encoding or inconsistent sizes."""
    dtypes = {"32FC1": np.float32, "16UC1": np.uint16, "mono16": np.uint16}
    if msg.encoding not in dtypes:
        raise InvalidMessage(f"depth encoding '{msg.encoding}' is not supported: publish 32FC1 (metres) or 16UC1 "
                             f"(millimetres)")
    dtype = np.dtype(dtypes[msg.encoding]).newbyteorder(">" if msg.is_bigendian else "<")
    if msg.width == 0 or msg.height == 0 or msg.width * msg.height > MAX_DEPTH_PIXELS:
        raise InvalidMessage(f"depth image is {msg.width}x{msg.height} (1..{MAX_DEPTH_PIXELS} pixels accepted)")
    if msg.step < dtype.itemsize * msg.width or len(msg.data) != msg.step * msg.height:
        raise InvalidMessage(f"depth image data has {len(msg.data)} bytes with step {msg.step}, expected step >= "
                             f"{dtype.itemsize * msg.width} and step * height bytes")
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, : dtype.itemsize * msg.width].copy().view(dtype).reshape(msg.height, msg.width)
    return pixels.astype(dtype.newbyteorder("="))


def msg_to_intrinsics(msg: CameraInfo) -> tuple[int, int, float, float, float, float]:
    """(width, height, fx, fy, cx, cy) of a CameraInfo; InvalidMessage if K is not a usable pinhole."""
    k = list(msg.k)
    if len(k) != 9 or not all(math.isfinite(v) for v in k):
        raise InvalidMessage("camera_info K is not 9 finite numbers")
    fx, fy, cx, cy = k[0], k[4], k[2], k[5]
    if msg.width == 0 or msg.height == 0 or fx <= 0 or fy <= 0:
        raise InvalidMessage(f"camera_info is {msg.width}x{msg.height} with fx={fx}, fy={fy}: not a usable pinhole "
                             f"(is the camera calibrated?)")
    return int(msg.width), int(msg.height), float(fx), float(fy), float(cx), float(cy)
