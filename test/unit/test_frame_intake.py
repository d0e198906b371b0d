"""Unit tests for triton_ros.frame_intake (message payload -> BGR frame or encoded file, no ROS)."""
import struct
import zlib

import cv2
import numpy as np
import pytest

from triton_ros.frame_intake import (DEFAULT_MAX_IMAGE_PIXELS, CompressedPayload, FrameIntake,
                                     RawPayload, encoded_size)
from triton_ros.image_conversion import ImageDecodeError

RNG = np.random.default_rng(7)
BGR = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)


def raw(array, encoding="bgr8"):
    h, w = array.shape[:2]
    return RawPayload(encoding, h, w, array[0].nbytes, array.tobytes())


def png_with_size(width: int, height: int) -> bytes:
    """A small real PNG whose IHDR is rewritten (CRC too) to say ``width`` x ``height``.
    (The decodable 747 KB bomb of issue 18 is fed to a real node in test_detect_node.py.)"""
    data = bytearray(cv2.imencode(".png", BGR)[1].tobytes())
    struct.pack_into(">II", data, 16, width, height)        # IHDR data starts at byte 16
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF0 header is rewritten to say ``width`` x ``height``."""
    data = bytearray(cv2.imencode(".jpg", BGR)[1].tobytes())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def test_default_limit_fits_8k():
    assert DEFAULT_MAX_IMAGE_PIXELS == 7680 * 4320
    FrameIntake().check(RawPayload("bgr8", 4320, 7680, 7680 * 3, b""))


def test_raw_payload_to_bgr():
    np.testing.assert_array_equal(FrameIntake().to_bgr(raw(BGR)), BGR)
    rgb = raw(np.ascontiguousarray(BGR[..., ::-1]), "rgb8")
    np.testing.assert_array_equal(FrameIntake().to_bgr(rgb), BGR)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_header_size_read_without_decoding(ext):
    data = cv2.imencode(ext, BGR)[1].tobytes()
    assert encoded_size(data) == (64, 48)
    assert encoded_size(bytearray(data)) == (64, 48)


@pytest.mark.parametrize("ext", [".webp", ".bmp", ".tiff"])
def test_other_formats_have_no_header_size_and_are_checked_after_decoding(ext):
    data = cv2.imencode(ext, BGR)[1].tobytes()
    assert encoded_size(data) is None
    with pytest.raises(ImageDecodeError) as err:
        FrameIntake(max_image_pixels=64 * 47).to_bgr(CompressedPayload(ext[1:], data))
    assert err.value.kind == "image over max_image_pixels"
    assert FrameIntake().to_bgr(CompressedPayload(ext[1:], data)).shape == BGR.shape


def test_unreadable_header_is_bad_input():
    with pytest.raises(ImageDecodeError) as err:
        encoded_size(b"\xff\xd8\xff\xe0")  # a JPEG that ends before its frame header
    assert err.value.kind == "unreadable JPEG/PNG header"


def test_compressed_png_round_trip():
    data = cv2.imencode(".png", BGR)[1].tobytes()
    np.testing.assert_array_equal(FrameIntake().to_bgr(CompressedPayload("png", data)), BGR)


def test_raw_image_over_the_limit_refused_before_its_data_is_read():
    intake = FrameIntake(max_image_pixels=1000)
    # data far too short: the size check comes first, from the fields
    with pytest.raises(ImageDecodeError) as err:
        intake.to_bgr(RawPayload("bgr8", 100, 100, 300, b"\0" * 10))
    assert err.value.kind == "image over max_image_pixels"
    assert "100x100 (10000 pixels) is over max_image_pixels 1000" in str(err.value)
    intake.to_bgr(raw(BGR[:10, :10].copy()))  # 100 pixels: fine


def test_png_bomb_refused_from_its_header():
    bomb = png_with_size(16000, 16000)
    with pytest.raises(ImageDecodeError) as err:
        FrameIntake().to_bgr(CompressedPayload("png", bomb))
    assert err.value.kind == "image over max_image_pixels"
    with pytest.raises(ImageDecodeError):
        FrameIntake().to_encoded(CompressedPayload("png", bomb))


def test_png_over_the_limit_reports_its_size():
    with pytest.raises(ImageDecodeError) as err:
        FrameIntake(max_image_pixels=64 * 47).to_bgr(CompressedPayload("png", png_with_size(
            64, 48)))
    assert "CompressedImage (png) 64x48 (3072 pixels) is over max_image_pixels 3008" in str(
        err.value)


def test_jpeg_over_the_limit_refused_from_its_header():
    data = jpeg_with_size(9000, 5000)  # 45 MP
    assert encoded_size(data) == (9000, 5000)
    with pytest.raises(ImageDecodeError) as err:
        FrameIntake().to_bgr(CompressedPayload("jpeg", data))
    assert "9000x5000 (45000000 pixels) is over max_image_pixels 33177600" in str(err.value)
    FrameIntake(max_image_pixels=0).check(CompressedPayload("jpeg", data))  # 0 = no limit


def test_compressed_data_sent_untouched():
    data = cv2.imencode(".jpg", BGR)[1].tobytes()
    assert FrameIntake().to_encoded(CompressedPayload("jpeg", memoryview(data))) == data


def test_other_formats_refused_for_an_encoded_model():
    data = cv2.imencode(".bmp", BGR)[1].tobytes()
    with pytest.raises(ImageDecodeError) as err:
        FrameIntake().to_encoded(CompressedPayload("bmp", data))
    assert "not a JPEG or PNG file" in str(err.value)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_raw_image_encoded_on_the_robot(fmt):
    encoded = FrameIntake(encode_format=fmt, jpeg_quality=95).to_encoded(raw(BGR))
    decoded = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == BGR.shape
    if fmt == "png":
        np.testing.assert_array_equal(decoded, BGR)  # lossless
        assert encoded[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert encoded[:2] == b"\xff\xd8"


def test_empty_compressed_refused_for_sending():
    with pytest.raises(ImageDecodeError) as err:
        FrameIntake().to_encoded(CompressedPayload("jpeg", b""))
    assert err.value.kind == "empty CompressedImage"


def test_bad_settings_refused():
    with pytest.raises(ValueError):
        FrameIntake(encode_format="bmp")
    with pytest.raises(ValueError):
        FrameIntake(max_image_pixels=-1)


def test_kinds_separate_problems_not_frames():
    intake = FrameIntake()
    kinds = set()
    for encoding in ("nv24", "bgr16", "64FC1", ""):
        with pytest.raises(ImageDecodeError) as err:
            intake.to_bgr(RawPayload(encoding, 2, 2, 6, b"\0" * 12))
        kinds.add(err.value.kind)
    assert len(kinds) == 4
    short = set()
    for size in (3, 5):  # the same problem with different numbers: one kind
        with pytest.raises(ImageDecodeError) as err:
            intake.to_bgr(RawPayload("bgr8", size, size, size * 3, b"\0"))
        short.add(err.value.kind)
    assert short == {"data too short"}
