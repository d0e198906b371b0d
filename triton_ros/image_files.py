"""Encoded image files (JPEG, PNG): their size from the header, and a size-checked decode.

No ROS here. Used on the server by the encoded-image ensembles' pre-processing step
(:mod:`triton_ros.ensemble_steps`), and usable on a robot to check an image before sending it.

Why the header is read by hand: a small file can declare a huge image (a PNG of 16000x16000
zeros is ~1 MB, decoded 768 MB), and OpenCV has no header-only API while Pillow is not in the
server's environment. Only the fixed fields every JPEG/PNG carries are read: PNG's IHDR, JPEG's
first SOFn frame header. Other formats are refused (their size cannot be checked before
decoding).
"""
import struct

import cv2
import numpy as np

DEFAULT_MAX_IMAGE_PIXELS = 7680 * 4320  # 8K UHD: 33177600
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG markers with a frame header (width/height): SOF0..SOF15 except DHT, JPG, DAC.
_SOF = {m for m in range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0..7: no length field


class ImageFileError(ValueError):
    """The bytes are not an image this module will decode; ``str(exc)`` is the reason."""


def image_format(data: bytes) -> str:
    """``"png"``, ``"jpeg"``, or "" for anything else (by the signature)."""
    if data[:8] == PNG_SIGNATURE:
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    return ""


def _not_an_image(data: bytes, why: str = "") -> ImageFileError:
    return ImageFileError(f"not an image OpenCV can read ({len(data)} bytes)"
                          + (f": {why}" if why else ""))


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels from a PNG or JPEG header, without decoding the pixels.

    Raises :class:`ImageFileError` for other formats or a header cut short."""
    kind = image_format(data)
    if kind == "png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise _not_an_image(data, "PNG without an IHDR header")
        return struct.unpack(">II", data[16:24])
    if kind == "jpeg":
        return _jpeg_size(data)
    raise _not_an_image(data, "only JPEG and PNG are accepted")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise _not_an_image(data, f"JPEG marker expected at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in _SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            if height == 0 or width == 0:  # height from a later DNL marker: not checkable
                raise _not_an_image(data, "JPEG frame header without a size")
            return width, height
        if marker == 0xDA or length < 2:  # scan data before any frame header
            break
        pos += 2 + length
    raise _not_an_image(data, "JPEG without a frame header")


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """A JPEG/PNG file -> uint8 BGR ``[H, W, 3]`` (grey and alpha images converted), after
    checking the header's width x height against ``max_pixels``.

    Raises :class:`ImageFileError` (the reason in its message) for bytes OpenCV cannot read,
    other formats, or an image over the limit; nothing larger than the limit is allocated.
    """
    width, height = image_size(data)
    if width * height > max_pixels:
        raise ImageFileError(f"image {width}x{height} is over max_image_pixels {max_pixels}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise _not_an_image(data)
    if image.shape[:2] != (height, width):  # the header lied: refuse rather than guess
        raise _not_an_image(data, f"decoded {image.shape[1]}x{image.shape[0]}, header says "
                                  f"{width}x{height}")
    return image
