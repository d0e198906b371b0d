"""Unit tests for triton_ros.ensemble_steps: the encoded-image ensembles' steps, no server.

The steps must compute what the client-side path computes (same Preprocessor, decoders and
inverse box mapping), and their config.pbtxt files must describe valid steps.
"""
from pathlib import Path

import cv2
import numpy as np
import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from triton_ros.decoders import YoloOutputs, decode_yolo
from triton_ros.ensemble_steps import (PostprocessStep, PreprocessStep,
                                       row_transform, step_from_config, transform_row)
from triton_ros.labels import LabelMap
from triton_ros.preprocess import PreprocessConfig, Preprocessor

REPOSITORY = Path(__file__).resolve().parents[2] / "config" / "model_repository"
YOLO_PRE = PreprocessConfig(416, 416, layout="NCHW", dtype="float32", resize="letterbox",
                            scaling="UNIT")


def _config(model: str) -> dict:
    """config.pbtxt as the python backend receives it (JSON, proto field names)."""
    message = text_format.Parse((REPOSITORY / model / "config.pbtxt").read_text(),
                                model_config_pb2.ModelConfig())
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _batch(items) -> np.ndarray:
    batch = np.empty((len(items), 1), np.object_)
    batch[:, 0] = items
    return batch


def _frames():
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (480, 640, 3), np.uint8),
            rng.integers(0, 256, (240, 160, 3), np.uint8)]


def test_preprocess_is_the_clients_preprocessor_per_item():
    frames = _frames()
    files = [cv2.imencode(".jpg", frames[0])[1].tobytes(), b"junk",
             cv2.imencode(".png", frames[1])[1].tobytes()]
    out = PreprocessStep(YOLO_PRE)({"encoded_image": _batch(files)})
    assert out["image"].shape == (3, 3, 416, 416) and out["image"].dtype == np.float32
    client = Preprocessor(YOLO_PRE)
    for index in (0, 2):
        decoded = cv2.imdecode(np.frombuffer(files[index], np.uint8), cv2.IMREAD_COLOR)
        tensor, tf = client(decoded)
        np.testing.assert_array_equal(out["image"][index], tensor)
        assert row_transform(out["transform"][index]) == tf
    assert out["status"][:, 0].tolist() == [b"", b"not an image OpenCV can read (4 bytes): "
                                                 b"only JPEG and PNG are accepted", b""]
    assert not out["image"][1].any() and not out["transform"][1].any()


def test_tfod_postprocess_maps_normalised_yxyx_to_source_xyxy():
    # Two items through a stretch to 300x300: a 600x300 source and a failed item.
    pre = PreprocessConfig(300, 300)
    tf = Preprocessor(pre)(np.zeros((300, 600, 3), np.uint8))[1]
    step = step_from_config(_config("ssd_mobilenet_v2_coco_encoded_post"))  # floor 0.05
    boxes = np.zeros((2, 4, 4), np.float32)
    boxes[:, 0] = [0.1, 0.2, 0.5, 0.6]   # ymin, xmin, ymax, xmax
    boxes[:, 1] = [0.0, 0.0, 1.0, 1.0]
    inputs = {"raw_num_detections": np.array([[3], [2]], np.float32),
              "raw_detection_boxes": boxes,
              "raw_detection_scores": np.array([[0.9, 0.5, 0.04, 0], [0.9, 0.8, 0, 0]],
                                               np.float32),
              "raw_detection_classes": np.array([[1, 3, 1, 0], [1, 1, 0, 0]], np.float32),
              "transform": np.stack([transform_row(tf), np.zeros(6)]),
              "status": _batch([b"", b"bad"])}
    out = step(inputs)
    assert out["num_detections"].tolist() == [[2], [0]]  # 0.04 is under the floor
    np.testing.assert_allclose(out["detection_boxes"][0, :2],
                               [[120, 30, 360, 150], [0, 0, 600, 300]])
    assert out["detection_classes"][0, :3].tolist() == [1, 3, 0]  # native ids, then zeros
    assert out["detection_scores"][0, :3].tolist() == pytest.approx([0.9, 0.5, 0])
    assert out["detection_boxes"].shape == (2, 100, 4)
    assert out["source_size"].tolist() == [[300, 600], [0, 0]]
    assert out["status"][:, 0].tolist() == [b"", b"bad"]
    assert not out["detection_boxes"][1].any()


def test_yolo_postprocess_is_the_clients_decoder_then_the_inverse_letterbox():
    step = step_from_config(_config("yolov4_tiny_coco_encoded_post"))
    rng = np.random.default_rng(2)
    heads = np.zeros((1, 2535, 85), np.float32)
    heads[0, :, :4] = rng.uniform(20, 400, (2535, 4))
    heads[0, :, 4] = rng.uniform(0, 1, 2535)
    heads[0, :, 5:] = rng.uniform(0, 0.3, (2535, 80))
    tf = Preprocessor(YOLO_PRE)(np.zeros((480, 640, 3), np.uint8))[1]
    out = step({"output0": heads, "transform": transform_row(tf)[None],
                "status": _batch([b""])})
    want = decode_yolo({"output0": heads}, 416, 416,
                       YoloOutputs("output0", "v5", pre_nms_score_threshold=0.0), LabelMap(),
                       0.05, 100)[0]
    n = int(out["num_detections"][0, 0])
    assert n == len(want) == 100  # random heads: more than 100 survive NMS
    np.testing.assert_allclose(out["detection_boxes"][0, :n], tf.boxes_to_source(want.boxes),
                               rtol=1e-6, atol=1e-3)
    assert out["detection_classes"][0, :n].tolist() == want.class_ids.tolist()
    assert out["source_size"].tolist() == [[480, 640]]


@pytest.mark.parametrize("model,kind", [("ssd_mobilenet_v2_coco_encoded_pre", PreprocessStep),
                                        ("ssd_mobilenet_v2_coco_encoded_post", PostprocessStep),
                                        ("yolov4_tiny_coco_encoded_pre", PreprocessStep),
                                        ("yolov4_tiny_coco_encoded_post", PostprocessStep)])
def test_repository_step_configs(model, kind):
    step = step_from_config(_config(model))
    assert isinstance(step, kind)
    if kind is PreprocessStep:
        pc = step.preprocess.cfg
        if model.startswith("yolo"):
            assert pc == YOLO_PRE
        else:  # what the tensor path's SSD input is: 300x300 RGB UINT8 NHWC, stretched
            assert pc == PreprocessConfig(300, 300)
    else:
        config = _config(model)
        assert step.input_names() == [i["name"] for i in config["input"]]


def test_bad_step_configs_are_refused():
    with pytest.raises(ValueError, match="step='' not in"):
        step_from_config({"parameters": {}})
    with pytest.raises(ValueError, match="decoder 'ssd' not in"):
        step_from_config({"parameters": {"step": {"string_value": "postprocess"},
                                         "decoder": {"string_value": "ssd"},
                                         "input_width": {"string_value": "300"},
                                         "input_height": {"string_value": "300"}},
                          "output": [{"name": "detection_scores", "dims": ["100"]}]})
