"""Unit tests for triton_ros.model_spec with metadata/config JSON as Triton returns it."""
import copy

import numpy as np
import pytest

from triton_ros.model_spec import (ModelSpec, ModelSpecError, TensorSpec,
                                   model_spec_from_server)

# Real gRPC (as_json=True) answers for the repo's SSD model: int64 fields are strings and the
# config is wrapped in {"config": ...}.
SSD_METADATA_GRPC = {
    "name": "ssd_mobilenet_v2_coco", "versions": ["1"], "platform": "python",
    "inputs": [{"name": "input_tensor", "datatype": "UINT8", "shape": ["-1", "300", "300", "3"]}],
    "outputs": [
        {"name": "num_detections", "datatype": "FP32", "shape": ["-1", "1"]},
        {"name": "detection_boxes", "datatype": "FP32", "shape": ["-1", "100", "4"]},
        {"name": "detection_scores", "datatype": "FP32", "shape": ["-1", "100"]},
        {"name": "detection_classes", "datatype": "FP32", "shape": ["-1", "100"]},
    ],
}
SSD_CONFIG_GRPC = {"config": {
    "name": "ssd_mobilenet_v2_coco", "max_batch_size": 8, "backend": "python",
    "input": [{"name": "input_tensor", "data_type": "TYPE_UINT8", "format": "FORMAT_NHWC",
               "dims": ["300", "300", "3"]}],
    "output": [
        {"name": "num_detections", "data_type": "TYPE_FP32", "dims": ["1"]},
        {"name": "detection_boxes", "data_type": "TYPE_FP32", "dims": ["100", "4"]},
        {"name": "detection_scores", "data_type": "TYPE_FP32", "dims": ["100"]},
        {"name": "detection_classes", "data_type": "TYPE_FP32", "dims": ["100"],
         "label_filename": "coco90.txt"},
    ],
    "dynamic_batching": {"preferred_batch_size": [4, 8], "max_queue_delay_microseconds": "2000"},
    "instance_group": [{"name": "ssd_0", "kind": "KIND_CPU", "count": 1}],
}}


def _http(obj):
    """The HTTP flavour: numeric strings become ints, the config is not wrapped."""
    if isinstance(obj, dict):  # versions stay strings in HTTP metadata too
        return {k: v if k == "versions" else _http(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_http(v) for v in obj]
    if isinstance(obj, str) and obj.lstrip("-").isdigit():
        return int(obj)
    return obj


SSD_METADATA_HTTP = _http(SSD_METADATA_GRPC)
SSD_CONFIG_HTTP = _http(SSD_CONFIG_GRPC["config"])


@pytest.mark.parametrize("metadata,config", [(SSD_METADATA_GRPC, SSD_CONFIG_GRPC),
                                             (SSD_METADATA_HTTP, SSD_CONFIG_HTTP)],
                         ids=["grpc", "http"])
def test_ssd_model_spec(metadata, config):
    spec = model_spec_from_server(metadata, config)
    assert spec.name == "ssd_mobilenet_v2_coco"
    assert spec.version == "1"
    assert spec.platform == "python"
    assert spec.max_batch_size == 8
    assert spec.dynamic_batching is True
    assert spec.sequence_batching is False
    assert spec.max_sequence_idle_us == 0
    assert spec.control_inputs == ()
    assert spec.labels_file == "coco90.txt"
    assert spec.inputs == (TensorSpec("input_tensor", "UINT8", (300, 300, 3), "FORMAT_NHWC"),)
    assert [t.name for t in spec.outputs] == ["num_detections", "detection_boxes",
                                              "detection_scores", "detection_classes"]
    assert spec.output("num_detections").dims == (1,)
    assert spec.output("detection_boxes").dims == (100, 4)
    assert spec.output("detection_scores").dims == (100,)
    assert all(isinstance(d, int) for t in spec.outputs for d in t.dims)
    assert spec.output("detection_boxes").np_dtype == np.float32
    image = spec.image_input()
    assert (image.name, image.datatype, image.layout) == ("input_tensor", "UINT8", "NHWC")
    assert (image.height, image.width, image.channels) == (300, 300, 3)
    assert spec.input("input_tensor").np_dtype == np.uint8
    # The image_input by name gives the same answer.
    assert spec.image_input("input_tensor") == image


def test_grpc_and_http_give_the_same_spec():
    assert (model_spec_from_server(SSD_METADATA_GRPC, SSD_CONFIG_GRPC)
            == model_spec_from_server(SSD_METADATA_HTTP, SSD_CONFIG_HTTP))


def test_unknown_tensor_names_raise_and_list_known():
    spec = model_spec_from_server(SSD_METADATA_GRPC, SSD_CONFIG_GRPC)
    with pytest.raises(ModelSpecError, match="has no output 'boxes'") as err:
        spec.output("boxes")
    assert "detection_boxes" in str(err.value)
    with pytest.raises(ModelSpecError, match="has no input 'images'.*input_tensor"):
        spec.input("images")
    with pytest.raises(ModelSpecError, match="no image input named 'images'"):
        spec.image_input("images")


def _yolo(fmt=None, dims=(3, 640, 640), datatype="FP32", max_batch=4, name="images"):
    metadata = {"name": "yolo", "versions": ["1", "2"], "platform": "onnxruntime_onnx",
                "inputs": [{"name": name, "datatype": datatype,
                            "shape": ([-1] if max_batch else []) + list(dims)}],
                "outputs": [{"name": "output0", "datatype": "FP32",
                             "shape": ([-1] if max_batch else []) + [84, 8400]}]}
    cfg_input = {"name": name, "data_type": "TYPE_" + datatype, "dims": list(dims)}
    if fmt:
        cfg_input["format"] = fmt
    config = {"name": "yolo", "max_batch_size": max_batch, "input": [cfg_input],
              "output": [{"name": "output0", "data_type": "TYPE_FP32", "dims": [84, 8400]}]}
    return metadata, config


def test_fp32_nchw_layout_inferred_without_format():
    spec = model_spec_from_server(*_yolo())
    assert spec.inputs[0].format == "FORMAT_NONE"
    assert spec.version == "2"  # the last listed version
    assert spec.dynamic_batching is False
    assert spec.labels_file == ""
    image = spec.image_input()
    assert (image.layout, image.channels, image.height, image.width) == ("NCHW", 3, 640, 640)
    assert image.datatype == "FP32"
    assert spec.output("output0").dims == (84, 8400)


@pytest.mark.parametrize("dims,layout,hwc", [
    ((640, 480, 3), "NHWC", (640, 480, 3)),
    ((480, 640, 1), "NHWC", (480, 640, 1)),
    ((1, 480, 640), "NCHW", (480, 640, 1)),
    ((-1, -1, 3), "NHWC", (-1, -1, 3)),
    ((3, -1, -1), "NCHW", (-1, -1, 3)),
    ((3, 224, 3), "NCHW", (224, 3, 3)),   # both ends look like channels: channels-first wins
])
def test_layout_inference(dims, layout, hwc):
    image = model_spec_from_server(*_yolo(dims=dims)).image_input()
    assert image.layout == layout
    assert (image.height, image.width, image.channels) == hwc


def test_explicit_format_wins_over_inference():
    # dims (3, 3, 3)-like shapes are ambiguous; FORMAT_NHWC says channels last.
    image = model_spec_from_server(*_yolo(fmt="FORMAT_NHWC", dims=(3, 416, 1))).image_input()
    assert (image.layout, image.height, image.width, image.channels) == ("NHWC", 3, 416, 1)
    image = model_spec_from_server(*_yolo(fmt="FORMAT_NCHW", dims=(3, 416, 3))).image_input()
    assert (image.layout, image.height, image.width, image.channels) == ("NCHW", 416, 3, 3)


def test_max_batch_size_zero_keeps_all_dims():
    spec = model_spec_from_server(*_yolo(max_batch=0, dims=(3, 320, 320)))
    assert spec.max_batch_size == 0
    assert spec.inputs[0].dims == (3, 320, 320)
    assert spec.output("output0").dims == (84, 8400)
    assert spec.image_input().height == 320
    # A fixed batch dim in a max_batch_size 0 model is kept (4 dims: not an image input).
    spec = model_spec_from_server(*_yolo(max_batch=0, dims=(1, 3, 320, 320)))
    assert spec.inputs[0].dims == (1, 3, 320, 320)
    with pytest.raises(ModelSpecError, match="no image input"):
        spec.image_input()


def test_missing_max_batch_size_means_zero():
    metadata, config = _yolo(max_batch=0)
    del config["max_batch_size"]
    spec = model_spec_from_server(metadata, config)
    assert spec.max_batch_size == 0 and spec.inputs[0].dims == (3, 640, 640)


def test_sequence_batching_excludes_control_inputs():
    controls = ["START", "END", "READY", "CORRID"]
    metadata = {"name": "tracker", "versions": ["3"], "platform": "python",
                "inputs": [{"name": "INPUT", "datatype": "UINT8",
                            "shape": ["-1", "720", "1280", "3"]}]
                + [{"name": c, "datatype": "INT32", "shape": ["-1", "1"]} for c in controls],
                "outputs": [{"name": "OUT", "datatype": "FP32", "shape": ["-1", "10"]}]}
    config = {"config": {
        "name": "tracker", "max_batch_size": "2",
        "input": [{"name": "INPUT", "data_type": "TYPE_UINT8", "dims": ["720", "1280", "3"]}],
        "output": [{"name": "OUT", "data_type": "TYPE_FP32", "dims": ["10"]}],
        "sequence_batching": {
            "max_sequence_idle_microseconds": "5000000",
            "control_input": [
                {"name": "START", "control": [{"kind": "CONTROL_SEQUENCE_START",
                                               "int32_false_true": [0, 1]}]},
                {"name": "END", "control": [{"kind": "CONTROL_SEQUENCE_END",
                                             "int32_false_true": [0, 1]}]},
                {"name": "READY", "control": [{"kind": "CONTROL_SEQUENCE_READY",
                                               "int32_false_true": [0, 1]}]},
                {"name": "CORRID", "control": [{"kind": "CONTROL_SEQUENCE_CORRID",
                                                "data_type": "TYPE_UINT64"}]},
            ]}}}
    spec = model_spec_from_server(metadata, config)
    assert spec.sequence_batching is True
    assert spec.dynamic_batching is False
    assert spec.max_sequence_idle_us == 5_000_000
    assert spec.max_batch_size == 2
    assert spec.control_inputs == tuple(controls)
    assert [t.name for t in spec.inputs] == ["INPUT"]
    image = spec.image_input()
    assert (image.layout, image.height, image.width) == ("NHWC", 720, 1280)


def test_sequence_batching_without_idle_or_controls():
    metadata, config = _yolo()
    config["sequence_batching"] = {}
    spec = model_spec_from_server(metadata, config)
    assert spec.sequence_batching is True
    assert spec.max_sequence_idle_us == 0
    assert spec.control_inputs == ()
    assert [t.name for t in spec.inputs] == ["images"]


def test_no_three_dim_input_lists_what_was_found():
    metadata = {"name": "bert", "versions": ["1"], "platform": "onnxruntime_onnx",
                "inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [-1, 128]},
                           {"name": "mask", "datatype": "INT64", "shape": [-1, 128]}],
                "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 2]}]}
    spec = model_spec_from_server(metadata, {"max_batch_size": 16})
    with pytest.raises(ModelSpecError, match="model 'bert' has no image input") as err:
        spec.image_input()
    assert "('input_ids', 'INT64', [128])" in str(err.value)
    assert "('mask', 'INT64', [128])" in str(err.value)
    assert "expected one input with 3 dims" in str(err.value)


def test_five_channel_input_is_rejected():
    spec = model_spec_from_server(*_yolo(fmt="FORMAT_NCHW", dims=(5, 256, 256)))
    with pytest.raises(ModelSpecError, match="has 5 channels") as err:
        spec.image_input()
    assert "expected 1 or 3" in str(err.value)
    spec = model_spec_from_server(*_yolo(fmt="FORMAT_NHWC", dims=(256, 256, 5)))
    with pytest.raises(ModelSpecError, match="has 5 channels"):
        spec.image_input()


@pytest.mark.parametrize("dims", [(224, 224, 224), (-1, -1, -1), (5, 256, 256), (256, 256, 4)])
def test_ambiguous_layout_is_an_error(dims):
    spec = model_spec_from_server(*_yolo(dims=dims))
    with pytest.raises(ModelSpecError, match="cannot tell the layout of input 'images'") as err:
        spec.image_input()
    assert "FORMAT_NHWC/FORMAT_NCHW" in str(err.value)


def test_bad_datatype_is_reported():
    spec = model_spec_from_server(*_yolo(datatype="BYTES"))
    with pytest.raises(ModelSpecError, match="datatype BYTES"):
        spec.image_input()
    assert spec.inputs[0].datatype == "BYTES"


@pytest.mark.parametrize("datatype,np_dtype", [("UINT8", np.uint8), ("FP16", np.float16),
                                               ("FP32", np.float32), ("INT64", np.int64)])
def test_tensor_np_dtype(datatype, np_dtype):
    assert TensorSpec("x", datatype, (1,)).np_dtype == np.dtype(np_dtype)


def test_first_three_dim_input_is_the_image():
    metadata = {"name": "m", "versions": ["1"], "platform": "p",
                "inputs": [{"name": "scale", "datatype": "FP32", "shape": [-1, 2]},
                           {"name": "img", "datatype": "UINT8", "shape": [-1, 480, 640, 3]},
                           {"name": "img2", "datatype": "UINT8", "shape": [-1, 3, 32, 32]}],
                "outputs": []}
    spec = model_spec_from_server(metadata, {"config": {"max_batch_size": 1}})
    assert spec.image_input().name == "img"
    second = spec.image_input("img2")
    assert (second.layout, second.height, second.width) == ("NCHW", 32, 32)


def test_name_and_platform_fall_back_to_config():
    spec = model_spec_from_server({"inputs": [], "outputs": []},
                                  {"name": "cfgname", "backend": "onnxruntime"})
    assert isinstance(spec, ModelSpec)
    assert (spec.name, spec.platform, spec.version) == ("cfgname", "onnxruntime", "")


def test_inputs_do_not_share_state_with_json():
    metadata, config = copy.deepcopy(SSD_METADATA_GRPC), copy.deepcopy(SSD_CONFIG_GRPC)
    spec = model_spec_from_server(metadata, config)
    metadata["inputs"][0]["shape"][1] = "999"
    assert spec.inputs[0].dims == (300, 300, 3)


# An encoded-image ensemble as gRPC (as_json=True) describes it: BYTES input, string parameters.
ENCODED_METADATA_GRPC = {
    "name": "yolov4_tiny_coco_encoded", "versions": ["1"], "platform": "ensemble",
    "inputs": [{"name": "encoded_image", "datatype": "BYTES", "shape": ["-1", "1"]}],
    "outputs": [{"name": "num_detections", "datatype": "INT32", "shape": ["-1", "1"]},
                {"name": "status", "datatype": "BYTES", "shape": ["-1", "1"]}],
}
ENCODED_CONFIG_GRPC = {"config": {
    "name": "yolov4_tiny_coco_encoded", "platform": "ensemble", "max_batch_size": 8,
    "input": [{"name": "encoded_image", "data_type": "TYPE_STRING", "dims": ["1"]}],
    "output": [{"name": "num_detections", "data_type": "TYPE_INT32", "dims": ["1"]},
               {"name": "status", "data_type": "TYPE_STRING", "dims": ["1"]}],
    "parameters": {"triton_ros.input_kind": {"string_value": "encoded_image"},
                   "triton_ros.decoder": {"string_value": "tfod"},
                   "triton_ros.tfod_class_offset": {"string_value": "0"}},
}}


@pytest.mark.parametrize("metadata,config", [
    (ENCODED_METADATA_GRPC, ENCODED_CONFIG_GRPC),
    # HTTP: same nesting, config not wrapped (string_value stays a string on the wire).
    (_http(ENCODED_METADATA_GRPC), {**_http(ENCODED_CONFIG_GRPC["config"]),
                                    "parameters": ENCODED_CONFIG_GRPC["config"]["parameters"]})],
    ids=["grpc", "http"])
def test_parameters_and_encoded_input(metadata, config):
    spec = model_spec_from_server(metadata, config)
    assert spec.parameters == {"triton_ros.input_kind": "encoded_image",
                               "triton_ros.decoder": "tfod", "triton_ros.tfod_class_offset": "0"}
    assert spec.encoded_input == "encoded_image"


def test_tensor_model_has_no_encoded_input_and_its_parameters():
    spec = model_spec_from_server(SSD_METADATA_GRPC, SSD_CONFIG_GRPC)
    assert spec.encoded_input == ""
    assert spec.parameters == {}
    spec = model_spec_from_server(*_yolo())
    assert spec.encoded_input == ""


def test_single_bytes_input_is_encoded_without_the_parameter():
    config = copy.deepcopy(ENCODED_CONFIG_GRPC)
    del config["config"]["parameters"]
    assert model_spec_from_server(ENCODED_METADATA_GRPC, config).encoded_input == "encoded_image"


def test_encoded_input_kind_without_a_bytes_input_is_an_error():
    config = copy.deepcopy(SSD_CONFIG_GRPC)
    config["config"]["parameters"] = {"triton_ros.input_kind": {"string_value": "encoded_image"}}
    spec = model_spec_from_server(SSD_METADATA_GRPC, config)
    with pytest.raises(ModelSpecError, match="input_kind=encoded_image but has 0 BYTES inputs"):
        spec.encoded_input
