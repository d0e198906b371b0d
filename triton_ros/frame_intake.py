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
width/height fields, an encoded file from its header (Pillow's ``Image.open`` is lazy: it parses
the header only). A file whose header Pillow cannot read (a format only OpenCV knows, e.g. a float
TIFF) is checked after decoding instead: memory is bounded beforehand only for the formats Pillow
reads (JPEG, PNG, WebP, BMP, integer TIFF, ... : every format image_transport publishes).

Every refusal raises :class:`ImageDecodeError` with the reason (text) and its ``kind``.
"""
import io
import warnings
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import PIL.Image

from triton_ros.image_conversion import (ImageDecodeError, compressed_image_to_bgr,
                                         raw_image_to_bgr)

# 8K UHD (7680x4320) is the largest video-camera format in use; 33_177_600 = 7680 x 4320 fits it,
# every common machine-vision sensor (<= 31 MP) and a 8192x4050 panorama.
DEFAULT_MAX_IMAGE_PIXELS = 7680 * 4320
ENCODE_FORMATS = ("jpeg", "png")
# Pillow refuses to open files above twice its bomb limit (~179 MP) before telling their size:
# max_image_pixels may not exceed that, so such a refusal always means "over max_image_pixels".
MAX_IMAGE_PIXELS_LIMIT = 2 * PIL.Image.MAX_IMAGE_PIXELS

# Pillow's own bomb guard (a warning above its MAX_IMAGE_PIXELS, an error above twice that) is
# replaced here by max_image_pixels; its warning would otherwise print once per process.
warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)


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
    """(width, height) from an encoded file's header, without decoding; None when Pillow does
    not know the format. Raises ImageDecodeError above :data:`MAX_IMAGE_PIXELS_LIMIT`."""
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            return image.size
    except PIL.Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"encoded image over max_image_pixels ({exc})",
                               kind="image over max_image_pixels") from None
    except Exception:  # noqa: BLE001 - UnidentifiedImageError, truncated headers, ...: unknown
        return None


class FrameIntake:
    """Payload -> BGR frame or encoded bytes, with the size limit checked before decoding.

    ``max_image_pixels``: the largest width x height accepted (0 = no limit);
    ``encode_format``: "jpeg" or "png" for raw Images sent to an encoded-input model;
    ``jpeg_quality``: 1..100 for "jpeg".
    """

    def __init__(self, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                 encode_format: str = "jpeg", jpeg_quality: int = 90):
        if not 0 <= max_image_pixels <= MAX_IMAGE_PIXELS_LIMIT:
            raise ValueError(f"max_image_pixels {max_image_pixels} not in [0, "
                             f"{MAX_IMAGE_PIXELS_LIMIT}]")
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
        """One encoded image file: CompressedImage data as received; an Image encoded here."""
        if isinstance(payload, CompressedPayload):
            self.check(payload)
            if len(payload.data) == 0:
                raise ImageDecodeError(f"empty CompressedImage (format {payload.format!r})",
                                       kind="empty CompressedImage")
            return bytes(payload.data)
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
