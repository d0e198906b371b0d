"""Conversions between ROS messages and the core's arrays/detections."""
from builtin_interfaces.msg import Time
from vision_msgs.msg import (BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesis,
                             ObjectHypothesisWithPose)

from triton_ros.detections import Detections
from triton_ros.image_conversion import compressed_image_to_bgr, raw_image_to_bgr

try:  # cv_bridge where the ROS distribution has it; the numpy path otherwise (same pixels)
    from cv_bridge import CvBridge
    _BRIDGE = CvBridge()
except ImportError:
    _BRIDGE = None


def image_msg_to_bgr(msg):
    """sensor_msgs/Image or CompressedImage -> uint8 BGR [H, W, 3] or mono [H, W].

    Raises ImageDecodeError (a ValueError) with the reason for malformed messages.
    """
    if hasattr(msg, "format"):  # CompressedImage
        return compressed_image_to_bgr(msg.format, msg.data)
    if _BRIDGE is not None and msg.encoding in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8"):
        try:
            return _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="bgr8"
                                         if msg.encoding != "mono8" else "mono8")
        except Exception as exc:  # cv_bridge raises CvBridgeError and TypeError variants
            raise ValueError(f"cv_bridge could not convert the image: {exc}") from exc
    return raw_image_to_bgr(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                            bool(msg.is_bigendian))


def stamp_to_ns(stamp: Time) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def detections_to_msg(dets: Detections, header) -> Detection2DArray:
    """Detection2DArray with ``header`` (the source image's); boxes in source pixels.

    ``ObjectHypothesis.class_id`` is the label string and ``score`` its confidence in [0, 1].
    """
    array = Detection2DArray(header=header)
    for (cx, cy, w, h), score, label in zip(dets.centers_sizes(), dets.scores, dets.labels):
        bbox = BoundingBox2D(size_x=float(w), size_y=float(h))
        bbox.center.position.x = float(cx)
        bbox.center.position.y = float(cy)
        hypothesis = ObjectHypothesisWithPose(
            hypothesis=ObjectHypothesis(class_id=label, score=float(score)))
        array.detections.append(Detection2D(header=header, results=[hypothesis], bbox=bbox))
    return array
