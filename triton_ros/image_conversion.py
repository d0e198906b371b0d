"""sensor_msgs/Image and CompressedImage payloads to OpenCV BGR arrays, without ROS types.

Used where ``cv_bridge`` is absent (and for CompressedImage everywhere). Arguments are the message
fields; the returned array is uint8 ``[H, W, 3]`` BGR or ``[H, W]`` mono and may be a zero-copy view
of ``data`` (do not mutate it).
"""
import struct

import cv2
import numpy as np

# encoding -> (channels, dtype, cv2 conversion to BGR or None)
_ENCODINGS = {
    "bgr8": (3, np.uint8, None),
    "rgb8": (3, np.uint8, cv2.COLOR_RGB2BGR),
    "bgra8": (4, np.uint8, cv2.COLOR_BGRA2BGR),
    "rgba8": (4, np.uint8, cv2.COLOR_RGBA2BGR),
    "mono8": (1, np.uint8, None),
    "8UC1": (1, np.uint8, None),
    "8UC3": (3, np.uint8, None),
    "mono16": (1, np.uint16, None),
    "16UC1": (1, np.uint16, None),
    "yuv422": (2, np.uint8, cv2.COLOR_YUV2BGR_UYVY),
    "uyvy": (2, np.uint8, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": (2, np.uint8, cv2.COLOR_YUV2BGR_YUY2),
    "yuyv": (2, np.uint8, cv2.COLOR_YUV2BGR_YUY2),
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)


class ImageDecodeError(ValueError):
    """The message cannot be turned into an image; the text says why.

    ``kind`` names the kind of problem, the same for every frame with it and different for
    different problems (e.g. ``unsupported encoding 'nv24'``, ``data too short``): what a node
    throttles its log by, so one flood never hides another problem.
    """

    def __init__(self, text: str, kind: str = ""):
        super().__init__(text)
        self.kind = kind or text


def raw_image_to_bgr(encoding: str, height: int, width: int, step: int, data,
                     is_bigendian: bool = False) -> np.ndarray:
    """Decode a ``sensor_msgs/Image``'s fields (``data``: bytes-like or uint8 array)."""
    if encoding not in _ENCODINGS:
        raise ImageDecodeError(f"unsupported encoding {encoding!r}; supported: "
                               f"{', '.join(SUPPORTED_ENCODINGS)}",
                               kind=f"unsupported encoding {encoding!r}")
    channels, dtype, conversion = _ENCODINGS[encoding]
    itemsize = np.dtype(dtype).itemsize
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"empty image: {width}x{height}", kind="empty image")
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ImageDecodeError(f"step {step} < width*channels*bytes = {row_bytes} for "
                               f"{width}x{height} {encoding}", kind="step too small")
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size < step * (height - 1) + row_bytes:
        raise ImageDecodeError(f"data has {buffer.size} bytes, {width}x{height} {encoding} with "
                               f"step {step} needs {step * (height - 1) + row_bytes}",
                               kind="data too short")
    rows = np.lib.stride_tricks.as_strided(buffer, shape=(height, row_bytes),
                                           strides=(step, 1))
    pixels = rows.view(np.dtype(dtype).newbyteorder(">" if is_bigendian else "<"))
    pixels = pixels.reshape(height, width, channels) if channels > 1 else pixels
    if itemsize == 2:  # 16-bit mono: keep the top 8 bits (detectors take 8-bit input)
        pixels = (pixels.astype(np.uint16) >> 8).astype(np.uint8)
    if conversion is not None:
        pixels = cv2.cvtColor(np.ascontiguousarray(pixels), conversion)
    return pixels


def compressed_image_to_bgr(fmt: str, data) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` to uint8 BGR ``[H, W, 3]`` or mono ``[H, W]``.

    Whatever OpenCV's imdecode reads (jpeg, png, tiff, webp, bmp, ...) with 8- or 16-bit
    unsigned pixels and 1, 3 or 4 channels; anything else raises :class:`ImageDecodeError`.
    """
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageDecodeError(f"empty CompressedImage (format {fmt!r})",
                               kind="empty CompressedImage")
    image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageDecodeError(f"cannot decode CompressedImage with format {fmt!r} "
                               f"({buffer.size} bytes): not an image OpenCV can read (jpeg, png, "
                               "tiff, webp, bmp, ...)",
                               kind=f"undecodable CompressedImage format {fmt!r}")
    if image.dtype == np.uint16:  # 16-bit PNG/TIFF: keep the top 8 bits
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageDecodeError(f"CompressedImage (format {fmt!r}) decodes to {image.dtype} "
                               f"pixels; only 8- and 16-bit unsigned images are supported",
                               kind=f"CompressedImage of {image.dtype} pixels")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif channels == 1 and image.ndim == 3:
        image = image[:, :, 0]
    elif channels not in (1, 3):
        raise ImageDecodeError(f"CompressedImage (format {fmt!r}) has {channels} channels; "
                               "expected 1 (mono), 3 (BGR) or 4 (BGRA)",
                               kind=f"CompressedImage of {channels} channels")
    return image


_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iI")


def _cdr_string(raw, offset: int, what: str = "Image") -> tuple[str, int]:
    """A CDR (little-endian) string at ``offset`` (4-aligned) -> (text, offset after it)."""
    (length,) = _U32.unpack_from(raw, offset)
    offset += 4
    if length == 0 or offset + length > len(raw):
        raise ImageDecodeError(f"serialized {what}: bad string length {length} at {offset - 4}",
                               kind=f"serialized {what}: bad string length")
    return bytes(raw[offset:offset + length - 1]).decode("utf-8", "replace"), offset + length


def _cdr_view(raw, what: str) -> memoryview:
    """``raw`` as bytes, checked to be a little-endian CDR message."""
    view = memoryview(raw).cast("B")
    if len(view) < 32 or view[0] != 0 or view[1] != 1:
        raise ImageDecodeError(f"serialized {what}: not a little-endian CDR message "
                               f"({len(view)} bytes, header {bytes(view[:4]).hex()})",
                               kind=f"serialized {what}: not little-endian CDR")
    return view


def _cdr_align(offset: int) -> int:
    """``offset`` rounded up to 4 (CDR aligns relative to the end of the 4-byte header)."""
    return 4 + ((offset - 4 + 3) & ~3)


def _cdr_data(view, offset: int, what: str) -> memoryview:
    """The uint8 sequence (length, bytes) at 4-aligned ``offset``: a view into ``view``."""
    (size,) = _U32.unpack_from(view, offset)
    start = offset + 4
    if start + size > len(view):
        raise ImageDecodeError(f"serialized {what}: data of {size} bytes at {start} overruns the "
                               f"{len(view)}-byte message", kind=f"serialized {what}: data overrun")
    return view[start:start + size]


def image_cdr_fields(raw) -> dict:
    """The fields of a serialized ``sensor_msgs/Image`` (CDR little endian, as rmw_fastrtps and
    rosbag2 store it), without building the message: ``sec``, ``nanosec``, ``frame_id``,
    ``height``, ``width``, ``encoding``, ``is_bigendian``, ``step`` and ``data``, a zero-copy
    memoryview of the pixels inside ``raw``.

    Written by hand because rclpy's deserialization copies the whole pixel buffer into a Python
    ``array`` (6 MB per 1080p frame) before any conversion can start; this reads the ~60 header
    bytes and points into the buffer. Raises :class:`ImageDecodeError` when ``raw`` is not such
    a message (big-endian encapsulation, truncated, lengths out of range).
    """
    view = _cdr_view(raw, "Image")
    try:
        sec, nanosec = _STAMP.unpack_from(view, 4)
        frame_id, offset = _cdr_string(view, 12)
        offset = _cdr_align(offset)
        height, width = _U32.unpack_from(view, offset)[0], _U32.unpack_from(view, offset + 4)[0]
        encoding, offset = _cdr_string(view, offset + 8)
        is_bigendian = view[offset]
        offset = _cdr_align(offset + 1)
        (step,) = _U32.unpack_from(view, offset)
        data = _cdr_data(view, offset + 4, "Image")
    except struct.error as exc:
        raise ImageDecodeError(f"serialized Image: truncated ({len(view)} bytes)",
                               kind="serialized Image: truncated") from exc
    return {"sec": sec, "nanosec": nanosec, "frame_id": frame_id, "height": height,
            "width": width, "encoding": encoding, "is_bigendian": bool(is_bigendian),
            "step": step, "data": data}


def compressed_image_cdr_fields(raw) -> dict:
    """The fields of a serialized ``sensor_msgs/CompressedImage`` (CDR little endian):
    ``sec``, ``nanosec``, ``frame_id``, ``format`` and ``data``, a zero-copy memoryview of the
    encoded file inside ``raw``. Like :func:`image_cdr_fields`, it spares rclpy's
    deserialization (a Python ``array`` copy of the data and a message object per frame).
    Raises :class:`ImageDecodeError` when ``raw`` is not such a message.
    """
    view = _cdr_view(raw, "CompressedImage")
    try:
        sec, nanosec = _STAMP.unpack_from(view, 4)
        frame_id, offset = _cdr_string(view, 12, "CompressedImage")
        fmt, offset = _cdr_string(view, _cdr_align(offset), "CompressedImage")
        data = _cdr_data(view, _cdr_align(offset), "CompressedImage")
    except struct.error as exc:
        raise ImageDecodeError(f"serialized CompressedImage: truncated ({len(view)} bytes)",
                               kind="serialized CompressedImage: truncated") from exc
    return {"sec": sec, "nanosec": nanosec, "frame_id": frame_id, "format": fmt, "data": data}


def image_cdr_to_bgr(raw) -> tuple[dict, np.ndarray]:
    """(fields, pixels) of a serialized Image: :func:`image_cdr_fields` + :func:`raw_image_to_bgr`
    (the pixels a zero-copy view into ``raw`` where the encoding needs no conversion)."""
    fields = image_cdr_fields(raw)
    return fields, raw_image_to_bgr(fields["encoding"], fields["height"], fields["width"],
                                    fields["step"], fields["data"], fields["is_bigendian"])
