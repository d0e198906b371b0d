"""Frame intake: a camera message's payload -> what an inference request carries. No ROS.

A payload is the plain content of a ``sensor_msgs/Image`` (:class:`RawPayload`) or a
``sensor_msgs/CompressedImage`` (:class:`CompressedPayload`); the node builds it from the message
(``triton_ros.ros.messages.payload_of``). :class:`FrameIntake` turns it into

- :meth:`FrameIntake.to_bgr`: a uint8 BGR ``[H, W, 3]`` (or mono ``[H, W]``) array, for a tensor
  model (pre-processed on the robot) and for the debug image;
- :meth:`FrameIntake.to_encoded`: one whole encoded image file (JPEG or PNG bytes), for a model
  that takes encoded images (decoded on the server): CompressedImage data untouched, a raw Image
  encoded here (``encode_format`` jpeg or png, ``jpeg_quality``).

Both check the image size against ``max_image_pixels`` *before* decoding: an Image from its
width/height fields, a JPEG or PNG file from its header (:func:`triton_ros.image_files.image_size`,
the reader the encoded-image ensembles use on the server). Other CompressedImage formats (TIFF,
WebP, BMP, ...: not what image_transport publishes) are decoded by OpenCV for a tensor model and
checked after decoding, so for them memory is not bounded beforehand; an encoded-input model takes
JPEG and PNG only, so they are refused for it.

Every refusal raises :class:`ImageDecodeError` with the reason (text) and its ``kind``.
"""
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from triton_ros.image_conversion import (ImageDecodeError, compressed_image_to_bgr,
                                         raw_image_to_bgr)
from triton_ros.image_files import (DEFAULT_MAX_IMAGE_PIXELS, ImageFileError, image_format,
                                    image_size)

# DEFAULT_MAX_IMAGE_PIXELS (image_files): 7680 x 4320 = 33_177_600, 8K UHD, the largest
# video-camera format in use; it also fits every common machine-vision sensor (<= 31 MP).
__all__ = ["DEFAULT_MAX_IMAGE_PIXELS", "ENCODE_FORMATS", "CompressedPayload", "FrameIntake",
           "RawPayload", "encoded_size"]
ENCODE_FORMATS = ("jpeg", "png")


@dataclass(frozen=True)
class RawPayload:
    """A sensor_msgs/Image's fields; ``data`` bytes-like (a zero-copy view is fine)."""
    encoding: str
    height: int
    width: int
    step: int
    data: Any
    is_bigendian: bool = False


@dataclass(frozen=True)
class CompressedPayload:
    """A sensor_msgs/CompressedImage's fields: ``format`` (e.g. "jpeg", "png", "rgb8; jpeg
    compressed bgr8") and ``data``, one whole encoded image file."""
    format: str
    data: Any


def encoded_size(data) -> tuple[int, int] | None:
    """(width, height) from a JPEG or PNG file's header, without decoding; None for other
    formats. Raises ImageDecodeError when a JPEG/PNG header is unreadable."""
    data = memoryview(data).cast("B")  # bytes, array('B') or a view: read in place
    if not image_format(data):
        return None
    try:
        return image_size(data)
    except ImageFileError as exc:
        raise ImageDecodeError(str(exc), kind="unreadable JPEG/PNG header") from None


class FrameIntake:
    """Payload -> BGR frame or encoded bytes, with the size limit checked before decoding.

    ``max_image_pixels``: the largest width x height accepted (0 = no limit);
    ``encode_format``: "jpeg" or "png" for raw Images sent to an encoded-input model;
    ``jpeg_quality``: 1..100 for "jpeg".
    """

    def __init__(self, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                 encode_format: str = "jpeg", jpeg_quality: int = 90):
        if max_image_pixels < 0:
            raise ValueError(f"max_image_pixels must be >= 0, got {max_image_pixels}")
        if encode_format not in ENCODE_FORMATS:
            raise ValueError(f"encode_format {encode_format!r} not in {list(ENCODE_FORMATS)}")
        self.max_image_pixels = max_image_pixels
        self.encode_format = encode_format
        self.jpeg_quality = jpeg_quality

    def check_size(self, width: int, height: int, what: str = "image") -> None:
        """Raise ImageDecodeError when width x height exceeds ``max_image_pixels``."""
        if self.max_image_pixels and width * height > self.max_image_pixels:
            raise ImageDecodeError(
                f"{what} {width}x{height} ({width * height} pixels) is over max_image_pixels "
                f"{self.max_image_pixels}: not decoded", kind="image over max_image_pixels")

    def check(self, payload) -> None:
        """The size check alone, from the payload's fields or header (no decoding)."""
        if isinstance(payload, RawPayload):
            self.check_size(payload.width, payload.height, f"Image ({payload.encoding})")
            return
        size = encoded_size(payload.data)
        if size is not None:
            self.check_size(*size, f"CompressedImage ({payload.format})")

    def to_bgr(self, payload) -> np.ndarray:
        """uint8 BGR [H, W, 3] or mono [H, W] (may be a view into the payload's data)."""
        self.check(payload)
        if isinstance(payload, RawPayload):
            return raw_image_to_bgr(payload.encoding, payload.height, payload.width,
                                    payload.step, payload.data, payload.is_bigendian)
        frame = compressed_image_to_bgr(payload.format, payload.data)
        # A format Pillow could not size was decoded unchecked: refuse it all the same.
        self.check_size(frame.shape[1], frame.shape[0], f"CompressedImage ({payload.format})")
        return frame

    def to_encoded(self, payload) -> bytes:
        """One JPEG or PNG file: CompressedImage data as received (no decoding here); an Image
        encoded here as ``encode_format``."""
        if isinstance(payload, CompressedPayload):
            if len(payload.data) == 0:
                raise ImageDecodeError(f"empty CompressedImage (format {payload.format!r})",
                                       kind="empty CompressedImage")
            data = bytes(payload.data)  # the request needs bytes
            if not image_format(data):
                raise ImageDecodeError(
                    f"CompressedImage (format {payload.format!r}, {len(data)} bytes) is not a "
                    "JPEG or PNG file: an encoded-image model takes only those",
                    kind=f"not JPEG/PNG for an encoded-image model (format {payload.format!r})")
            self.check(payload)
            return data
        frame = self.to_bgr(payload)
        if self.encode_format == "png":
            ok, encoded = cv2.imencode(".png", frame)
        else:
            ok, encoded = cv2.imencode(".jpg", frame,
                                       [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise ImageDecodeError(f"OpenCV could not encode a {frame.shape} image as "
                                   f"{self.encode_format}", kind="encode failed")
        return encoded.tobytes()
