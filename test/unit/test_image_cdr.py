"""Unit tests for triton_ros.image_conversion.image_cdr_fields / image_cdr_to_bgr /
compressed_image_cdr_fields (no server).

The CDR bytes are built by hand here (the layout rmw_fastrtps and rosbag2 use) and, where rclpy
is importable, checked against rclpy's own serialization too.
"""
import struct

import numpy as np
import pytest

from triton_ros.image_conversion import (ImageDecodeError, compressed_image_cdr_fields,
                                        image_cdr_fields, image_cdr_to_bgr)


def _pad(buf: bytearray) -> None:
    while (len(buf) - 4) % 4:
        buf.append(0)


def _string(buf: bytearray, text: str) -> None:
    _pad(buf)
    data = text.encode() + b"\0"
    buf += struct.pack("<I", len(data)) + data


def cdr_image(sec, nanosec, frame_id, height, width, encoding, step, data) -> bytes:
    buf = bytearray(b"\x00\x01\x00\x00") + struct.pack("<iI", sec, nanosec)
    _string(buf, frame_id)
    _pad(buf)
    buf += struct.pack("<II", height, width)
    _string(buf, encoding)
    buf.append(0)  # is_bigendian
    _pad(buf)
    buf += struct.pack("<II", step, len(data)) + data
    return bytes(buf)


@pytest.mark.parametrize("frame_id", ["", "a", "ab", "abc", "camera_optical_frame"])
@pytest.mark.parametrize("encoding,channels", [("bgr8", 3), ("mono8", 1), ("rgb8", 3)])
def test_fields_and_pixels_round_trip(frame_id, encoding, channels):
    height, width, step = 3, 4, 4 * channels + 2   # padded rows
    rows = np.arange(height * step, dtype=np.uint8).reshape(height, step)
    raw = cdr_image(12, 345, frame_id, height, width, encoding, step, rows.tobytes())
    fields, pixels = image_cdr_to_bgr(raw)
    assert (fields["sec"], fields["nanosec"], fields["frame_id"], fields["height"],
            fields["width"], fields["encoding"], fields["step"]) == \
        (12, 345, frame_id, height, width, encoding, step)
    expected = rows[:, :width * channels].reshape(height, width, channels)
    if encoding == "rgb8":
        expected = expected[:, :, ::-1]
    np.testing.assert_array_equal(pixels, expected.squeeze())


def test_pixels_are_a_view_into_the_message():
    data = np.arange(2 * 2 * 3, dtype=np.uint8).tobytes()
    raw = bytearray(cdr_image(0, 0, "f", 2, 2, "bgr8", 6, data))
    _, pixels = image_cdr_to_bgr(raw)
    raw[-1] = 200
    assert pixels[1, 1, 2] == 200


@pytest.mark.parametrize("raw", [b"", b"\x01\x00\x00\x00" + bytes(40),  # big endian
                                 cdr_image(0, 0, "f", 2, 2, "bgr8", 6, bytes(12))[:-3]])
def test_malformed_messages_raise(raw):
    with pytest.raises(ImageDecodeError):
        image_cdr_fields(raw)


def test_matches_rclpy_serialization():
    serialization = pytest.importorskip("rclpy.serialization")
    image_module = pytest.importorskip("sensor_msgs.msg")
    msg = image_module.Image(height=5, width=6, encoding="bgr8", step=18,
                             data=np.arange(90, dtype=np.uint8).tobytes())
    msg.header.frame_id = "camera_optical_frame"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1700000000, 123456789
    raw = serialization.serialize_message(msg)  # (its alignment padding is not zeroed)
    fields, pixels = image_cdr_to_bgr(raw)
    assert fields["frame_id"] == "camera_optical_frame" and fields["nanosec"] == 123456789
    np.testing.assert_array_equal(pixels.reshape(-1), np.arange(90, dtype=np.uint8))


def cdr_compressed(sec, nanosec, frame_id, fmt, data) -> bytes:
    buf = bytearray(b"\x00\x01\x00\x00") + struct.pack("<iI", sec, nanosec)
    _string(buf, frame_id)
    _string(buf, fmt)
    _pad(buf)
    buf += struct.pack("<I", len(data)) + data
    return bytes(buf)


@pytest.mark.parametrize("frame_id", ["", "a", "abc", "camera_optical_frame"])
@pytest.mark.parametrize("fmt", ["jpeg", "png", "rgb8; jpeg compressed bgr8"])
def test_compressed_fields_round_trip(frame_id, fmt):
    data = bytes(range(7))
    fields = compressed_image_cdr_fields(cdr_compressed(3, 44, frame_id, fmt, data))
    assert (fields["sec"], fields["nanosec"], fields["frame_id"], fields["format"]) == \
        (3, 44, frame_id, fmt)
    assert bytes(fields["data"]) == data


def test_compressed_data_is_a_view_into_the_message():
    raw = bytearray(cdr_compressed(0, 0, "f", "jpeg", bytes(5)))
    fields = compressed_image_cdr_fields(raw)
    raw[-1] = 9
    assert fields["data"][4] == 9


@pytest.mark.parametrize("raw", [b"", b"\x01\x00\x00\x00" + bytes(40),  # big endian
                                 cdr_compressed(0, 0, "f", "jpeg", bytes(12))[:-3],  # overrun
                                 cdr_compressed(0, 0, "f", "jpeg", bytes(12))[:26]])  # truncated
def test_compressed_malformed_messages_raise(raw):
    with pytest.raises(ImageDecodeError, match="serialized CompressedImage"):
        compressed_image_cdr_fields(raw)


def test_compressed_matches_rclpy_serialization():
    serialization = pytest.importorskip("rclpy.serialization")
    image_module = pytest.importorskip("sensor_msgs.msg")
    data = np.arange(50, dtype=np.uint8).tobytes()
    msg = image_module.CompressedImage(format="png", data=data)
    msg.header.frame_id = "camera_optical_frame"
    msg.header.stamp.sec, msg.header.stamp.nanosec = 1700000000, 123456789
    fields = compressed_image_cdr_fields(serialization.serialize_message(msg))
    assert (fields["sec"], fields["nanosec"], fields["frame_id"], fields["format"]) == \
        (1700000000, 123456789, "camera_optical_frame", "png")
    assert bytes(fields["data"]) == data
