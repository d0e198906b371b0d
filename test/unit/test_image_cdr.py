"""Unit tests for triton_ros.image_conversion.image_cdr_fields / image_cdr_to_bgr (no server).

The CDR bytes are built by hand here (the layout rmw_fastrtps and rosbag2 use) and, where rclpy
is importable, checked against rclpy's own serialization too.
"""
import struct

import numpy as np
import pytest

from triton_ros.image_conversion import ImageDecodeError, image_cdr_fields, image_cdr_to_bgr


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
