"""Unit tests for triton_ros.preprocess (no ROS, no server)."""
import numpy as np
import pytest

from triton_ros.preprocess import (RESIZE_MODES, VGG_MEAN_RGB, ImageTransform, PreprocessConfig,
                                   Preprocessor, plan_transform)

SOURCE_SIZES = [(768, 576), (1920, 1080), (300, 300), (480, 640), (301, 299)]
MODEL_SIZES = [(300, 300), (640, 640), (512, 384)]


def _frame_with_rect(width, height):
    """Black BGR frame with a filled white, off-centre rectangle; returns (frame, rect xyxy)."""
    s = min(width, height)
    cx, cy = width // 2, height // 2
    x1, y1 = cx - int(0.2 * s) + 3, cy - int(0.15 * s) + 1
    x2, y2 = cx + int(0.17 * s), cy + int(0.21 * s)
    frame = np.zeros((height, width, 3), np.uint8)
    frame[y1:y2, x1:x2] = 255
    return frame, np.array([x1, y1, x2, y2], float)


def _bbox(mask):
    """x1, y1, x2, y2 (pixel edges, x2/y2 exclusive) of the True pixels of a 2-D mask."""
    ys, xs = np.nonzero(mask)
    assert xs.size, "rectangle not found in the output"
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("model_wh", MODEL_SIZES, ids=lambda s: f"model{s[0]}x{s[1]}")
@pytest.mark.parametrize("source_wh", SOURCE_SIZES, ids=lambda s: f"src{s[0]}x{s[1]}")
def test_rectangle_round_trips_through_resize(mode, model_wh, source_wh):
    (sw, sh), (mw, mh) = source_wh, model_wh
    frame, rect = _frame_with_rect(sw, sh)
    pre = Preprocessor(PreprocessConfig(mw, mh, resize=mode, pad_value=0))
    out, tf = pre(frame)
    assert out.shape == (mh, mw, 3)
    assert (tf.source_width, tf.source_height) == (sw, sh)
    found = _bbox(out[..., 0] > 127)
    back = tf.boxes_to_source(found)
    assert back.shape == (1, 4)
    # Linear-interpolated edges are good to about half a model pixel; allow 3/4 of one.
    tol = max(1.0, 0.75 / min(tf.scale_x, tf.scale_y))
    np.testing.assert_allclose(back[0], rect, atol=tol)


@pytest.mark.parametrize("source_wh,model_wh,offsets", [
    ((1920, 1080), (640, 640), (0, 140)),     # 640x360 content, 140 rows each side
    ((480, 640), (640, 640), (80, 0)),        # portrait: 480x640 content, 80 columns each side
    ((768, 576), (300, 300), (0, 37)),        # 300x225 content: (300-225)//2 = 37 on top
])
def test_letterbox_pads_with_pad_value(source_wh, model_wh, offsets):
    (sw, sh), (mw, mh), (ox, oy) = source_wh, model_wh, offsets
    frame = np.full((sh, sw, 3), 200, np.uint8)
    out, tf = Preprocessor(PreprocessConfig(mw, mh, resize="letterbox", pad_value=114))(frame)
    assert (tf.offset_x, tf.offset_y) == (ox, oy)
    new_w, new_h = round(sw * tf.scale_x), round(sh * tf.scale_y)
    content = out[oy:oy + new_h, ox:ox + new_w]
    assert (content == 200).all()
    pad = np.ones(out.shape[:2], bool)
    pad[oy:oy + new_h, ox:ox + new_w] = False
    assert pad.any()
    assert (out[pad] == 114).all()
    # A box covering the whole model input maps back to the whole source frame (pad clipped).
    np.testing.assert_allclose(tf.boxes_to_source([[0, 0, mw, mh]])[0], [0, 0, sw, sh], atol=1e-6)


@pytest.mark.parametrize("source_wh", SOURCE_SIZES + [(640, 480), (1280, 720)])
@pytest.mark.parametrize("model_wh", MODEL_SIZES)
def test_center_crop_shape_and_centre(source_wh, model_wh):
    (sw, sh), (mw, mh) = source_wh, model_wh
    tf = plan_transform(sw, sh, PreprocessConfig(mw, mh, resize="center_crop"))
    # The crop fills the input: no offset is positive and one axis fits exactly.
    assert tf.offset_x <= 0 and tf.offset_y <= 0
    assert round(sw * tf.scale_x) >= mw and round(sh * tf.scale_y) >= mh
    out, _ = Preprocessor(PreprocessConfig(mw, mh, resize="center_crop", layout="NCHW"))(
        np.zeros((sh, sw, 3), np.uint8))
    assert out.shape == (3, mh, mw)
    # The source centre lands on the model-input centre (within a pixel).
    cx, cy = sw / 2 * tf.scale_x + tf.offset_x, sh / 2 * tf.scale_y + tf.offset_y
    assert abs(cx - mw / 2) <= 1 and abs(cy - mh / 2) <= 1


def test_center_crop_cuts_the_overhang():
    # 1920x1080 -> 300x300: scale 300/1080, the left/right overhang is cut away.
    frame = np.zeros((1080, 1920, 3), np.uint8)
    frame[:, :300] = 255          # left stripe: outside the central crop
    frame[:, 900:1020] = 255      # centre stripe: inside
    out, tf = Preprocessor(PreprocessConfig(300, 300, resize="center_crop"))(frame)
    assert tf.offset_y == 0 and tf.offset_x < 0
    assert (out[:, :5] == 0).all()
    assert (out[:, 150] == 255).all()
    back = tf.boxes_to_source([[0, 0, 300, 300]])[0]
    np.testing.assert_allclose(back, [420, 0, 1500, 1080], atol=4)


def test_stretch_transform_is_exact_scale():
    tf = plan_transform(1920, 1080, PreprocessConfig(640, 640))
    assert tf == ImageTransform(640 / 1920, 640 / 1080, 0.0, 0.0, 1920, 1080)
    np.testing.assert_allclose(tf.boxes_to_source([[64, 64, 320, 320]]),
                               [[192, 108, 960, 540]])


def test_boxes_to_source_clips_and_keeps_input():
    tf = ImageTransform(0.5, 0.5, 10.0, 20.0, 100, 50)
    boxes = np.array([[0.0, 0.0, 200.0, 200.0], [20.0, 30.0, 40.0, 35.0]])
    out = tf.boxes_to_source(boxes)
    np.testing.assert_allclose(out, [[0, 0, 100, 50], [20, 20, 60, 30]])
    np.testing.assert_array_equal(boxes[1], [20, 30, 40, 35])  # input not modified


def test_layout_nchw_is_transpose_of_nhwc():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    nhwc, _ = Preprocessor(PreprocessConfig(160, 120, layout="NHWC"))(frame)
    nchw, _ = Preprocessor(PreprocessConfig(160, 120, layout="NCHW"))(frame)
    assert nhwc.shape == (120, 160, 3)
    assert nchw.shape == (3, 120, 160)
    np.testing.assert_array_equal(nchw, nhwc.transpose(2, 0, 1))
    assert nchw.flags["C_CONTIGUOUS"] and nhwc.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("order,expected", [("RGB", [0, 0, 255]), ("BGR", [255, 0, 0])])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_colour_order_pure_blue(order, expected, layout):
    blue = np.zeros((50, 60, 3), np.uint8)
    blue[..., 0] = 255  # BGR frame: blue is channel 0
    out, _ = Preprocessor(PreprocessConfig(30, 20, color_order=order, layout=layout))(blue)
    pixels = out.reshape(3, -1).T if layout == "NCHW" else out.reshape(-1, 3)
    assert (pixels == expected).all()


def test_identity_size_keeps_pixels():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    out, tf = Preprocessor(PreprocessConfig(48, 64, color_order="BGR"))(frame)
    np.testing.assert_array_equal(out, frame)
    assert (tf.scale_x, tf.scale_y, tf.offset_x, tf.offset_y) == (1, 1, 0, 0)


@pytest.mark.parametrize("dtype", ["uint8", "float16", "float32"])
def test_dtype(dtype):
    frame = np.full((10, 10, 3), 77, np.uint8)
    out, _ = Preprocessor(PreprocessConfig(10, 10, dtype=dtype))(frame)
    assert out.dtype == np.dtype(dtype)
    assert (out == 77).all()  # NONE scaling keeps raw 0..255 values


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_inception_scaling(dtype):
    frame = np.zeros((4, 8, 3), np.uint8)
    frame[:, 4:] = 255
    frame[0, 0] = 127  # ~0
    out, _ = Preprocessor(PreprocessConfig(8, 4, dtype=dtype, scaling="INCEPTION"))(frame)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out[1:, :4].astype(np.float32), -1.0, atol=1e-6)
    np.testing.assert_allclose(out[:, 4:].astype(np.float32), 1.0, atol=1e-6)
    np.testing.assert_allclose(out[0, 0].astype(np.float32), 127 / 127.5 - 1, atol=1e-3)


@pytest.mark.parametrize("order", ["RGB", "BGR"])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_vgg_subtracts_mean_in_colour_order(order, layout):
    bgr = (10, 20, 30)
    frame = np.empty((6, 6, 3), np.uint8)
    frame[:] = bgr
    out, _ = Preprocessor(PreprocessConfig(6, 6, dtype="float32", scaling="VGG",
                                           color_order=order, layout=layout))(frame)
    r_mean, g_mean, b_mean = VGG_MEAN_RGB
    if order == "RGB":
        expected = [30 - r_mean, 20 - g_mean, 10 - b_mean]
    else:
        expected = [10 - b_mean, 20 - g_mean, 30 - r_mean]
    pixels = out.reshape(3, -1).T if layout == "NCHW" else out.reshape(-1, 3)
    np.testing.assert_allclose(pixels, np.broadcast_to(expected, pixels.shape), atol=1e-4)


def test_vgg_mono_uses_mean_of_means():
    frame = np.full((4, 4), 100, np.uint8)
    out, _ = Preprocessor(PreprocessConfig(4, 4, channels=1, dtype="float32", scaling="VGG"))(frame)
    np.testing.assert_allclose(out, 100 - sum(VGG_MEAN_RGB) / 3, atol=1e-4)


def test_explicit_mean_std_in_model_colour_order():
    frame = np.empty((4, 4, 3), np.uint8)
    frame[:] = (0, 128, 255)  # BGR -> RGB (255, 128, 0)
    cfg = PreprocessConfig(4, 4, dtype="float32", mean=(255.0, 128.0, 10.0),
                           std=(2.0, 4.0, 5.0), scaling="INCEPTION")  # mean/std override scaling
    out, _ = Preprocessor(cfg)(frame)
    np.testing.assert_allclose(out.reshape(-1, 3), np.broadcast_to([0.0, 0.0, -2.0], (16, 3)))


def test_explicit_std_only_and_mean_only():
    frame = np.full((2, 2, 3), 100, np.uint8)
    out, _ = Preprocessor(PreprocessConfig(2, 2, dtype="float32", std=(50.0, 25.0, 100.0)))(frame)
    np.testing.assert_allclose(out.reshape(-1, 3)[0], [2.0, 4.0, 1.0])
    out, _ = Preprocessor(PreprocessConfig(2, 2, dtype="float32", mean=(1.0, 2.0, 3.0)))(frame)
    np.testing.assert_allclose(out.reshape(-1, 3)[0], [99.0, 98.0, 97.0])


def test_letterbox_pad_is_scaled_like_pixels():
    frame = np.full((100, 200, 3), 255, np.uint8)
    out, tf = Preprocessor(PreprocessConfig(200, 200, dtype="float32", resize="letterbox",
                                            pad_value=0, scaling="INCEPTION"))(frame)
    assert tf.offset_y == 50
    np.testing.assert_allclose(out[:50], -1.0)
    np.testing.assert_allclose(out[50:150], 1.0)
    np.testing.assert_allclose(out[150:], -1.0)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(width=0, height=300), "input size must be positive"),
    (dict(width=300, height=-1), "input size must be positive"),
    (dict(layout="NWHC"), "layout 'NWHC'"),
    (dict(resize="crop"), "resize mode 'crop'"),
    (dict(color_order="RGBA"), "color order 'RGBA'"),
    (dict(scaling="IMAGENET", dtype="float32"), "scaling 'IMAGENET'"),
    (dict(channels=4), "channels must be 1 or 3"),
    (dict(dtype="float32", mean=(1.0, 2.0)), "mean needs 3 values"),
    (dict(dtype="float32", std=(1.0,)), "std needs 3 values"),
    (dict(dtype="float32", std=(1.0, 0.0, 1.0)), "std values must be non-zero"),
    (dict(scaling="INCEPTION"), "uint8 input cannot carry"),
    (dict(mean=(1.0, 1.0, 1.0)), "uint8 input cannot carry"),
    (dict(pad_value=256), "pad_value must be in [0, 255]"),
    (dict(pad_value=-1), "pad_value must be in [0, 255]"),
])
def test_validate_names_the_problem(kwargs, needle):
    cfg = PreprocessConfig(**{"width": 300, "height": 300, **kwargs})
    with pytest.raises(ValueError, match="invalid pre-processing") as err:
        cfg.validate()
    assert needle in str(err.value)
    with pytest.raises(ValueError):
        Preprocessor(cfg)


def test_validate_reports_all_problems():
    cfg = PreprocessConfig(300, 300, layout="X", resize="Y")
    with pytest.raises(ValueError) as err:
        cfg.validate()
    assert "layout 'X'" in str(err.value) and "resize mode 'Y'" in str(err.value)


def test_valid_configs_pass():
    PreprocessConfig(300, 300).validate()
    PreprocessConfig(640, 640, channels=1, layout="NCHW", dtype="float16", scaling="VGG",
                     resize="letterbox", color_order="BGR", pad_value=0).validate()


@pytest.mark.parametrize("frame", [
    np.zeros((10, 10, 3), np.float32),
    np.zeros((10, 10, 3), np.uint16),
    np.zeros((0, 10, 3), np.uint8),
    np.zeros((10, 0), np.uint8),
    np.zeros((10,), np.uint8),
    np.zeros((1, 10, 10, 3), np.uint8),
    np.zeros((10, 10, 4), np.uint8),
    np.zeros((10, 10, 1), np.uint8),
], ids=["float32", "uint16", "empty-h", "empty-w", "1d", "4d", "4-channel", "1-channel-3d"])
@pytest.mark.parametrize("order", ["BGR", "RGB"])
def test_bad_frames_raise_value_error(frame, order):
    # Only [H, W] and [H, W, 3] are accepted: a BGRA frame must not become a 4-channel tensor.
    with pytest.raises(ValueError, match="expected a non-empty uint8"):
        Preprocessor(PreprocessConfig(10, 10, color_order=order))(frame)


@pytest.mark.parametrize("layout,shape", [("NHWC", (20, 30, 3)), ("NCHW", (3, 20, 30))])
def test_mono_frame_to_three_channel_model(layout, shape):
    frame = np.full((40, 60), 90, np.uint8)
    out, _ = Preprocessor(PreprocessConfig(30, 20, layout=layout))(frame)
    assert out.shape == shape
    assert (out == 90).all()


@pytest.mark.parametrize("resize", RESIZE_MODES)
def test_mono_frame_letterbox_and_crop(resize):
    frame = np.full((40, 80), 90, np.uint8)
    out, tf = Preprocessor(PreprocessConfig(40, 40, resize=resize, pad_value=7))(frame)
    assert out.shape == (40, 40, 3)
    if resize == "letterbox":
        assert (out[:10] == 7).all() and (out[10:30] == 90).all() and (out[30:] == 7).all()
    else:
        assert (out == 90).all()


@pytest.mark.parametrize("layout,shape", [("NHWC", (8, 8, 1)), ("NCHW", (1, 8, 8))])
def test_colour_frame_to_one_channel_model(layout, shape):
    frame = np.zeros((8, 8, 3), np.uint8)
    frame[:4] = (255, 0, 0)    # blue -> gray 0.114*255 ~ 29
    frame[4:] = (0, 255, 0)    # green -> gray 0.587*255 ~ 150
    out, _ = Preprocessor(PreprocessConfig(8, 8, channels=1, layout=layout))(frame)
    assert out.shape == shape
    plane = out.reshape(8, 8)
    assert abs(int(plane[0, 0]) - 29) <= 1
    assert abs(int(plane[7, 7]) - 150) <= 1


def test_mono_frame_to_one_channel_model():
    frame = np.arange(64, dtype=np.uint8).reshape(8, 8)
    out, _ = Preprocessor(PreprocessConfig(8, 8, channels=1))(frame)
    assert out.shape == (8, 8, 1)
    np.testing.assert_array_equal(out[..., 0], frame)


def test_preprocessor_does_not_modify_input():
    frame = np.full((30, 40, 3), 50, np.uint8)
    frame[0, 0] = (1, 2, 3)
    before = frame.copy()
    cfg = PreprocessConfig(20, 20, dtype="float32", scaling="VGG", resize="letterbox")
    Preprocessor(cfg)(frame)
    Preprocessor(PreprocessConfig(40, 30, color_order="RGB"))(frame)  # no-resize path
    np.testing.assert_array_equal(frame, before)
