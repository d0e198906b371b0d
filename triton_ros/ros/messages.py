"""Conversions between ROS messages and the core's arrays/detections."""
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import (BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesis,
                             ObjectHypothesisWithPose, Point2D, Pose2D)

from triton_ros.detections import Detections
from triton_ros.frame_intake import CompressedPayload, RawPayload
from triton_ros.image_conversion import (compressed_image_cdr_fields, compressed_image_to_bgr,
                                        image_cdr_fields, raw_image_to_bgr)

try:  # cv_bridge where the ROS distribution has it; the numpy path otherwise (same pixels)
    from cv_bridge import CvBridge
    _BRIDGE = CvBridge()
except ImportError:
    _BRIDGE = None


class SerializedImage:
    """A ``sensor_msgs/Image`` taken as received (a ``raw=True`` subscription): the header is
    parsed, the pixels stay in the serialized buffer (rclpy's deserialization would copy them
    into a Python array first: ~2.7 ms per 1080p frame). ``header`` is a std_msgs/Header.

    Raises ImageDecodeError when ``raw`` is not a serialized Image.
    """
    __slots__ = ("fields", "header")
    parse = staticmethod(image_cdr_fields)

    def __init__(self, raw: bytes):
        self.fields = self.parse(raw)
        self.header = Header(frame_id=self.fields["frame_id"])
        self.header.stamp.sec, self.header.stamp.nanosec = (self.fields["sec"],
                                                            self.fields["nanosec"])


class SerializedCompressedImage(SerializedImage):
    """A ``sensor_msgs/CompressedImage`` taken as received: ``fields["format"]`` and
    ``fields["data"]`` (a view of the encoded file inside the buffer), ``header``.

    Raises ImageDecodeError when ``raw`` is not a serialized CompressedImage.
    """
    __slots__ = ()
    parse = staticmethod(compressed_image_cdr_fields)


def parse_serialized(raw: bytes, compressed: bool) -> SerializedImage:
    """A serialized Image (``compressed`` False) or CompressedImage, header parsed."""
    return SerializedCompressedImage(raw) if compressed else SerializedImage(raw)


def payload_of(msg) -> RawPayload | CompressedPayload:
    """The plain payload of a sensor_msgs/Image, CompressedImage or their Serialized* forms (no
    copy of the pixels) for :class:`triton_ros.frame_intake.FrameIntake`."""
    if isinstance(msg, SerializedCompressedImage):
        return CompressedPayload(msg.fields["format"], msg.fields["data"])
    if isinstance(msg, SerializedImage):
        f = msg.fields
        return RawPayload(f["encoding"], f["height"], f["width"], f["step"], f["data"],
                          f["is_bigendian"])
    if hasattr(msg, "format"):  # CompressedImage
        return CompressedPayload(msg.format, msg.data)
    return RawPayload(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                      bool(msg.is_bigendian))


def bgr_to_image_msg(frame, header) -> Image:
    """A bgr8 sensor_msgs/Image of a uint8 BGR [H, W, 3] array (``header`` shared)."""
    h, w = frame.shape[:2]
    return Image(header=header, height=h, width=w, encoding="bgr8", is_bigendian=0,
                 step=w * 3, data=frame.tobytes())


def image_msg_to_bgr(msg):
    """sensor_msgs/Image, CompressedImage or their Serialized* forms -> uint8 BGR [H, W, 3] or
    mono [H, W].

    Raises ImageDecodeError (a ValueError) with the reason for malformed messages.
    """
    if _BRIDGE is not None and isinstance(msg, Image) and \
            msg.encoding in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8"):
        try:
            return _BRIDGE.imgmsg_to_cv2(msg, desired_encoding="bgr8"
                                         if msg.encoding != "mono8" else "mono8")
        except Exception as exc:  # cv_bridge raises CvBridgeError and TypeError variants
            raise ValueError(f"cv_bridge could not convert the image: {exc}") from exc
    payload = payload_of(msg)
    if isinstance(payload, CompressedPayload):
        return compressed_image_to_bgr(payload.format, payload.data)
    return raw_image_to_bgr(payload.encoding, payload.height, payload.width, payload.step,
                            payload.data, bool(payload.is_bigendian))


def stamp_to_ns(stamp: Time) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def _factory(cls):
    """A fast constructor for message ``cls``: a copy of a default instance's fields, then
    ``fields`` (names without the leading underscore) set on its slots.

    Written by hand because the generated ``__init__`` builds every default sub-message (a
    Detection2D's ObjectHypothesisWithPose alone makes a PoseWithCovariance and a 36-float
    covariance array) and then type-checks the keyword arguments: 50 us per detection here.
    Untouched defaults are *shared* between the messages made: callers must not mutate them.
    """
    defaults = [(slot, getattr(cls(), slot)) for slot in cls.__slots__]
    new = cls.__new__

    def make(**fields):
        msg = new(cls)
        for slot, value in defaults:
            setattr(msg, slot, value)
        for name, value in fields.items():
            setattr(msg, "_" + name, value)
        return msg
    return make


_DETECTION = _factory(Detection2D)
_BBOX = _factory(BoundingBox2D)
_POSE2D = _factory(Pose2D)
_POINT2D = _factory(Point2D)
_HYPOTHESIS_WITH_POSE = _factory(ObjectHypothesisWithPose)
_HYPOTHESIS = _factory(ObjectHypothesis)


def detections_to_msg(dets: Detections, header) -> Detection2DArray:
    """Detection2DArray with ``header`` (the source image's); boxes in source pixels.

    ``ObjectHypothesis.class_id`` is the label string and ``score`` its confidence in [0, 1].
    The detections share ``header`` and their untouched default fields (hypothesis poses,
    ``id``, ``center.theta``): publish the message, do not mutate it.
    """
    array = Detection2DArray(header=header)
    array.detections = [
        _DETECTION(header=header, bbox=_BBOX(center=_POSE2D(position=_POINT2D(x=cx, y=cy)),
                                             size_x=w, size_y=h),
                   results=[_HYPOTHESIS_WITH_POSE(
                       hypothesis=_HYPOTHESIS(class_id=label, score=score))])
        for (cx, cy, w, h), score, label in zip(dets.centers_sizes().tolist(),
                                                dets.scores.tolist(), dets.labels)]
    return array
