"""Model discovery on a real tritonserver, and the Detector driving differently shaped models.

``ssd_mobilenet_v2_coco`` takes UINT8 NHWC (``format`` set); ``ssd_mobilenet_v2_coco_fp32_nchw``
runs the same weights on FP32 NCHW INCEPTION-scaled input (no ``format``: layout inferred);
``tensor_echo_stats`` (any-size UINT8 HWC in, channel means out) is no detector.
"""
import pytest

from helpers import video_frames
from reference import match_boxes
from triton_ros.detector import Detector, DetectorConfig
from triton_ros.model_spec import ModelSpecError
from triton_ros.client import TritonClient, TritonError

UINT8_MODEL = "ssd_mobilenet_v2_coco"
FP32_MODEL = "ssd_mobilenet_v2_coco_fp32_nchw"
ECHO = "tensor_echo_stats"
PROTOCOLS = ["grpc", "http"]


@pytest.fixture(scope="module")
def frames():
    return video_frames([10, 80, 160, 240])


def client_for(server, model, protocol="grpc"):
    url = server.grpc_url if protocol == "grpc" else server.http_url
    client = TritonClient(url, model, protocol, timeout_s=60)
    client.wait_until_ready(60)
    return client


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_discovery_of_differently_shaped_models(triton_server, protocol):
    found = {}
    for model in (UINT8_MODEL, FP32_MODEL, ECHO):
        client = client_for(triton_server, model, protocol)
        try:
            spec = client.model_spec()
        finally:
            client.close()
        found[model] = (spec, spec.image_input())
    spec, image = found[UINT8_MODEL]
    assert (image.name, image.datatype, image.layout) == ("input_tensor", "UINT8", "NHWC")
    assert (image.height, image.width, image.channels) == (300, 300, 3)
    assert spec.max_batch_size == 8 and spec.dynamic_batching
    assert spec.labels_file == "coco90.txt"
    spec, image = found[FP32_MODEL]
    assert spec.input("images").format == "FORMAT_NONE"  # layout inferred from the dims
    assert (image.name, image.datatype, image.layout) == ("images", "FP32", "NCHW")
    assert (image.height, image.width, image.channels) == (300, 300, 3)
    assert spec.output("detection_boxes").dims == (100, 4)
    assert spec.max_batch_size == 8 and not spec.dynamic_batching
    spec, image = found[ECHO]
    assert (image.name, image.datatype, image.layout) == ("frame", "UINT8", "NHWC")
    assert (image.height, image.width) == (-1, -1)
    assert [(o.name, o.datatype, o.dims) for o in spec.outputs] == \
        [("channel_mean", "FP32", (3,))]


def persons(detections):
    return detections.boxes[[label == "person" for label in detections.labels]]


def test_detector_drives_uint8_nhwc_and_fp32_nchw_models_alike(triton_server, frames):
    uint8_client = client_for(triton_server, UINT8_MODEL)
    fp32_client = client_for(triton_server, FP32_MODEL, "http")
    try:
        uint8 = Detector(uint8_client, DetectorConfig())
        fp32 = Detector(fp32_client, DetectorConfig(scaling="INCEPTION"))
        assert (uint8.preprocess.cfg.layout, uint8.preprocess.cfg.dtype) == ("NHWC", "uint8")
        assert (fp32.preprocess.cfg.layout, fp32.preprocess.cfg.dtype) == ("NCHW", "float32")
        tensor, _ = fp32.preprocess(frames[0])
        assert tensor.shape == (3, 300, 300) and -1.0 <= tensor.min() < tensor.max() <= 1.0
        a, b = uint8.detect(frames), fp32.detect(frames)
    finally:
        uint8_client.close()
        fp32_client.close()
    total = 0
    for ours, theirs in zip(b, a):
        theirs_persons, ours_persons = persons(theirs), persons(ours)
        assert len(ours_persons) == len(theirs_persons)
        assert all(v >= 0.9 for v in match_boxes(ours_persons, theirs_persons))
        total += len(ours_persons)
    assert total >= len(frames)  # the frames do show pedestrians


def test_fp32_model_without_its_scaling_sees_something_else(triton_server, frames):
    """The parameters matter: raw 0..255 floats into the INCEPTION model change the result."""
    client = client_for(triton_server, FP32_MODEL)
    try:
        right = Detector(client, DetectorConfig(scaling="INCEPTION")).detect(frames[:2])
        wrong = Detector(client, DetectorConfig(scaling="NONE")).detect(frames[:2])
    finally:
        client.close()
    assert sum(len(persons(d)) for d in right) > 0

    def same(x, y):
        return len(x) == len(y) and all(v >= 0.9 for v in match_boxes(x, y))

    assert not all(same(persons(w), persons(r)) for w, r in zip(wrong, right))


def test_model_the_detector_cannot_drive_is_a_clear_error(triton_server):
    client = client_for(triton_server, ECHO)
    try:
        with pytest.raises(ModelSpecError) as outputs_error:
            Detector(client, DetectorConfig(input_width=320, input_height=240))
        with pytest.raises(ModelSpecError) as input_error:
            Detector(client, DetectorConfig(input_name="image"))
    finally:
        client.close()
    text = str(outputs_error.value)
    assert ECHO in text
    for expected in ("num_detections", "detection_boxes", "detection_scores",
                     "detection_classes"):
        assert expected in text                      # what the decoder needs
    assert "channel_mean" in text and "FP32" in text  # what the model has
    text = str(input_error.value)
    assert "'image'" in text and "frame" in text and "UINT8" in text and "3 dims" in text


def test_explicit_overrides_win_over_discovery(triton_server, frames):
    client = client_for(triton_server, UINT8_MODEL)
    try:
        sized = Detector(client, DetectorConfig(input_width=320, input_height=240))
        assert (sized.preprocess.cfg.width, sized.preprocess.cfg.height) == (320, 240)
        assert sized.preprocess(frames[0])[0].shape == (240, 320, 3)
        transposed = Detector(client, DetectorConfig(input_layout="NCHW"))
        assert transposed.preprocess.cfg.layout == "NCHW"
        assert transposed.preprocess(frames[0])[0].shape == (3, 300, 300)
        # The overrides reach the server: the model's fixed [300, 300, 3] refuses both.
        for detector in (sized, transposed):
            with pytest.raises(TritonError, match="input_tensor"):
                detector.detect(frames[:1])
    finally:
        client.close()
