"""Unit tests for triton_ros.image_files (header sizes, size-checked decode)."""
import struct
import zlib

import cv2
import numpy as np
import pytest

from triton_ros.image_files import ImageFileError, decode_image, image_format, image_size


def _frame(w=64, h=48):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), np.uint8)


@pytest.mark.parametrize("ext,params", [(".png", []), (".jpg", []),
                                        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])],
                         ids=["png", "jpeg", "progressive-jpeg"])
def test_size_from_header_and_decode(ext, params):
    frame = _frame(65, 33)
    data = cv2.imencode(ext, frame, params)[1].tobytes()
    assert image_format(data) == ("png" if ext == ".png" else "jpeg")
    assert image_size(data) == (65, 33)
    decoded = decode_image(data)
    np.testing.assert_array_equal(decoded, cv2.imdecode(np.frombuffer(data, np.uint8),
                                                        cv2.IMREAD_COLOR))


def test_grey_png_decodes_to_bgr():
    data = cv2.imencode(".png", _frame()[:, :, 0])[1].tobytes()
    assert decode_image(data).shape == (48, 64, 3)


def _png_header_only(width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))


def test_over_the_limit_is_refused_before_decoding():
    data = _png_header_only(16000, 16000)
    with pytest.raises(ImageFileError, match=r"^image 16000x16000 is over max_image_pixels "
                                             r"33177600$"):
        decode_image(data)
    small = cv2.imencode(".png", _frame())[1].tobytes()
    with pytest.raises(ImageFileError, match="image 64x48 is over max_image_pixels 3000"):
        decode_image(small, max_pixels=3000)
    assert decode_image(small, max_pixels=64 * 48).shape == (48, 64, 3)


@pytest.mark.parametrize("data,why", [
    (b"", "only JPEG and PNG"), (b"GIF89a......", "only JPEG and PNG"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG without a frame header"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "PNG without an IHDR header")])
def test_not_images(data, why):
    with pytest.raises(ImageFileError, match=rf"not an image OpenCV can read \({len(data)} "
                                             rf"bytes\): {why}"):
        decode_image(data)


def test_truncated_file_is_refused():
    data = cv2.imencode(".jpg", _frame(640, 480))[1].tobytes()
    with pytest.raises(ImageFileError, match=rf"^not an image OpenCV can read \({len(data) // 3} "
                                             r"bytes\)$"):
        decode_image(data[:len(data) // 3])
