"""Unit tests for triton_ros.image_conversion (sensor_msgs payloads -> BGR, no ROS types)."""
import cv2
import numpy as np
import pytest

from triton_ros.image_conversion import (SUPPORTED_ENCODINGS, ImageDecodeError,
                                         compressed_image_to_bgr, raw_image_to_bgr)

RNG = np.random.default_rng(42)
BGR = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def _msg(array, step=None):
    """(height, width, step, bytes) of a C-contiguous array, like a sensor_msgs/Image."""
    h, w = array.shape[:2]
    row = array[0].nbytes
    return h, w, row if step is None else step, array.tobytes()


@pytest.mark.parametrize("encoding", ["bgr8", "8UC3"])
def test_bgr8(encoding):
    out = raw_image_to_bgr(encoding, *_msg(BGR))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, BGR)


def test_rgb8_swaps_channels():
    rgb = BGR[..., ::-1].copy()
    out = raw_image_to_bgr("rgb8", *_msg(rgb))
    np.testing.assert_array_equal(out, BGR)
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255  # red in RGB
    assert (raw_image_to_bgr("rgb8", *_msg(red)) == [0, 0, 255]).all()


@pytest.mark.parametrize("encoding,to_msg", [
    ("bgra8", lambda bgr, a: np.dstack([bgr, a])),
    ("rgba8", lambda bgr, a: np.dstack([bgr[..., ::-1], a])),
])
def test_four_channel_drops_alpha(encoding, to_msg):
    alpha = RNG.integers(0, 256, BGR.shape[:2], dtype=np.uint8)
    msg = np.ascontiguousarray(to_msg(BGR, alpha))
    out = raw_image_to_bgr(encoding, *_msg(msg))
    assert out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, BGR)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8(encoding):
    mono = RNG.integers(0, 256, (4, 9), dtype=np.uint8)
    out = raw_image_to_bgr(encoding, *_msg(mono))
    assert out.shape == (4, 9) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, mono)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
def test_mono16_keeps_top_8_bits(encoding):
    mono = np.array([[0x0000, 0x00FF, 0x0100, 0xABCD], [0xFFFF, 0x7F80, 0x8000, 0x1234]],
                    dtype="<u2")
    out = raw_image_to_bgr(encoding, *_msg(mono))
    assert out.shape == (2, 4) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[0x00, 0x00, 0x01, 0xAB], [0xFF, 0x7F, 0x80, 0x12]])


def test_mono16_big_endian():
    values = np.array([[0x0102, 0xA0B0, 0xFF00]], dtype=np.uint16)
    h, w, step, data = _msg(values.astype(">u2"))
    out = raw_image_to_bgr("mono16", h, w, step, data, is_bigendian=True)
    np.testing.assert_array_equal(out, [[0x01, 0xA0, 0xFF]])
    # Same bytes read as little-endian give the low bytes as the top 8 bits.
    out_le = raw_image_to_bgr("mono16", h, w, step, data, is_bigendian=False)
    np.testing.assert_array_equal(out_le, [[0x02, 0xB0, 0x00]])


@pytest.mark.parametrize("encoding,code", [
    ("uyvy", cv2.COLOR_YUV2BGR_UYVY), ("yuv422", cv2.COLOR_YUV2BGR_UYVY),
    ("yuyv", cv2.COLOR_YUV2BGR_YUY2), ("yuv422_yuy2", cv2.COLOR_YUV2BGR_YUY2),
])
def test_yuv422_shape_and_values(encoding, code):
    h, w = 4, 6
    packed = RNG.integers(16, 236, (h, w, 2), dtype=np.uint8)
    out = raw_image_to_bgr(encoding, h, w, w * 2, packed.tobytes())
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, cv2.cvtColor(packed, code))


def test_uyvy_gray_decodes_to_gray():
    # U = V = 128, Y = 128 everywhere -> mid-gray BGR.
    packed = np.full((2, 4, 2), 128, np.uint8)
    out = raw_image_to_bgr("uyvy", 2, 4, 8, packed.tobytes())
    assert np.abs(out.astype(int) - 128).max() <= 2


@pytest.mark.parametrize("encoding,array", [
    ("bgr8", BGR),
    ("rgb8", BGR[..., ::-1]),
    ("mono8", BGR[..., 1]),
    ("mono16", BGR[..., 1].astype(np.uint16) << 8),
])
def test_padded_step(encoding, array):
    array = np.ascontiguousarray(array)
    h, w = array.shape[:2]
    row = array[0].nbytes
    step = row + 5
    padded = np.full((h, step), 0xEE, np.uint8)  # padding bytes are garbage
    padded[:, :row] = array.view(np.uint8).reshape(h, row)
    data = padded.tobytes()[:step * (h - 1) + row]  # last row may omit its padding
    out = raw_image_to_bgr(encoding, h, w, step, data)
    expected = BGR if array.ndim == 3 else BGR[..., 1]
    np.testing.assert_array_equal(out, expected)


def test_accepts_numpy_array_and_bytearray():
    h, w, step, data = _msg(BGR)
    np.testing.assert_array_equal(raw_image_to_bgr("bgr8", h, w, step, bytearray(data)), BGR)
    np.testing.assert_array_equal(
        raw_image_to_bgr("bgr8", h, w, step, np.frombuffer(data, np.uint8)), BGR)


def test_supported_encodings_listed():
    for enc in ("bgr8", "rgb8", "bgra8", "rgba8", "mono8", "mono16", "yuv422", "uyvy"):
        assert enc in SUPPORTED_ENCODINGS


def test_unsupported_encoding():
    with pytest.raises(ImageDecodeError, match="unsupported encoding 'bayer_rggb8'") as err:
        raw_image_to_bgr("bayer_rggb8", 2, 2, 2, bytes(4))
    assert "bgr8" in str(err.value)  # lists what is supported
    assert isinstance(err.value, ValueError)


def test_data_too_short():
    h, w, step, data = _msg(BGR)
    with pytest.raises(ImageDecodeError, match=f"data has {len(data) - 1} bytes"):
        raw_image_to_bgr("bgr8", h, w, step, data[:-1])
    with pytest.raises(ImageDecodeError, match="data has 0 bytes"):
        raw_image_to_bgr("mono8", 1, 1, 1, b"")
    # With a padded step the last row needs no padding: 4 rows * 26 + 21 = 125 bytes.
    np.testing.assert_array_equal(raw_image_to_bgr("bgr8", 5, 7, 26, bytes(125)), 0)
    with pytest.raises(ImageDecodeError, match="data has 124 bytes.*step 26 needs 125$"):
        raw_image_to_bgr("bgr8", 5, 7, 26, bytes(124))


def test_step_too_small():
    with pytest.raises(ImageDecodeError, match=r"step 20 < width\*channels\*bytes = 21"):
        raw_image_to_bgr("bgr8", 5, 7, 20, bytes(200))
    with pytest.raises(ImageDecodeError, match="step 7 < .* = 8"):
        raw_image_to_bgr("mono16", 2, 4, 7, bytes(100))


@pytest.mark.parametrize("h,w", [(0, 4), (4, 0), (-1, 4)])
def test_zero_size(h, w):
    with pytest.raises(ImageDecodeError, match="empty image"):
        raw_image_to_bgr("bgr8", h, w, 12, bytes(100))


def test_compressed_png_round_trip_exact():
    ok, png = cv2.imencode(".png", BGR)
    assert ok
    out = compressed_image_to_bgr("png", png.tobytes())
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, BGR)


def test_compressed_jpeg_round_trip_close():
    # Smooth image so JPEG error is small.
    yy, xx = np.mgrid[0:64, 0:96]
    img = np.dstack([xx * 2, yy * 3, (xx + yy)]).astype(np.uint8)
    ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    out = compressed_image_to_bgr("jpeg", jpg.tobytes())
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img).mean() < 2.0
    # Channel order preserved (a colour swap would blow the error up).
    assert np.abs(out.astype(int) - img[..., ::-1]).mean() > 20


def test_compressed_gray_png_is_mono():
    gray = RNG.integers(0, 256, (6, 8), dtype=np.uint8)
    ok, png = cv2.imencode(".png", gray)
    out = compressed_image_to_bgr("png", png.tobytes())
    assert out.shape == (6, 8)
    np.testing.assert_array_equal(out, gray)


def test_compressed_png_16bit_and_alpha():
    deep = (BGR.astype(np.uint16) << 8) | 0x77
    ok, png = cv2.imencode(".png", deep)
    out = compressed_image_to_bgr("png", png.tobytes())
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, BGR)
    bgra = np.dstack([BGR, np.full(BGR.shape[:2], 9, np.uint8)])
    ok, png = cv2.imencode(".png", bgra)
    out = compressed_image_to_bgr("png", png.tobytes())
    assert out.shape == BGR.shape
    np.testing.assert_array_equal(out, BGR)


def test_compressed_garbage_raises():
    with pytest.raises(ImageDecodeError, match="cannot decode CompressedImage with format 'jpeg'"):
        compressed_image_to_bgr("jpeg", b"definitely not an image" * 10)


def test_compressed_empty_raises():
    with pytest.raises(ImageDecodeError, match="empty CompressedImage"):
        compressed_image_to_bgr("png", b"")


# -- every CompressedImage format: decoded, or refused with ImageDecodeError (never another error)

def _encoded(ext, image, params=()):
    ok, buffer = cv2.imencode(ext, image, list(params))
    assert ok, ext
    return buffer.tobytes()


_BGR = np.dstack([np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))] * 3)
_BGR[:, :, 1] = 90
_COMPRESSED_SUPPORTED = {
    "jpeg": lambda: _encoded(".jpg", _BGR),
    "png8": lambda: _encoded(".png", _BGR),
    "png16": lambda: _encoded(".png", _BGR.astype(np.uint16) * 257),
    "png_gray": lambda: _encoded(".png", _BGR[:, :, 0]),
    "png_bgra": lambda: _encoded(".png", np.dstack([_BGR, np.full((48, 64), 255, np.uint8)])),
    "tiff8": lambda: _encoded(".tiff", _BGR),
    "tiff16": lambda: _encoded(".tiff", _BGR.astype(np.uint16) * 257),
    "tiff_gray16": lambda: _encoded(".tiff", _BGR[:, :, 0].astype(np.uint16) * 257),
    "webp": lambda: _encoded(".webp", _BGR, (cv2.IMWRITE_WEBP_QUALITY, 100)),
    "bmp": lambda: _encoded(".bmp", _BGR),
}
_COMPRESSED_REFUSED = {
    "tiff_float32": lambda: _encoded(".tiff", _BGR.astype(np.float32) / 255.0),
    "tiff_float64": lambda: _encoded(".tiff", _BGR.astype(np.float64)),
    "tiff_int16": lambda: _encoded(".tiff", _BGR.astype(np.int16)),
    "garbage": lambda: bytes(range(256)) * 4,
    "truncated_jpeg": lambda: _encoded(".jpg", _BGR)[:40],
    "empty": lambda: b"",
    "text": lambda: b"this is not an image",
}


@pytest.mark.parametrize("kind", sorted(_COMPRESSED_SUPPORTED))
def test_compressed_formats_decode_to_uint8(kind):
    image = compressed_image_to_bgr(kind, _COMPRESSED_SUPPORTED[kind]())
    assert image.dtype == np.uint8 and image.shape[:2] == (48, 64)
    assert image.ndim == 2 or image.shape[2] == 3
    # lossless formats keep the pixels (16-bit ones their top byte)
    if kind in ("png8", "png16", "tiff8", "tiff16", "bmp", "png_bgra"):
        assert np.array_equal(image, _BGR), kind
    if kind in ("png_gray", "tiff_gray16"):
        assert np.array_equal(image if image.ndim == 2 else image[:, :, 0], _BGR[:, :, 0])


@pytest.mark.parametrize("kind", sorted(_COMPRESSED_REFUSED))
def test_compressed_formats_refused_with_a_reason(kind):
    with pytest.raises(ImageDecodeError) as info:
        compressed_image_to_bgr(kind, _COMPRESSED_REFUSED[kind]())
    assert kind in str(info.value) or "format" in str(info.value)
