"""Unit tests for triton_ros.model_parameters (a model's triton_ros.* config parameters)."""
import pytest

from triton_ros.model_parameters import merge_model_parameters
from triton_ros.model_spec import ModelSpecError

VALUES = {"decoder": "tfod", "tfod_normalized_boxes": True, "tfod_class_offset": 1,
          "score_threshold": 0.5, "class_filter": ["person"], "mean": [0.0, 0.0, 0.0],
          "scaling": "NONE"}


def test_model_values_apply_and_are_reported_converted_to_the_parameter_type():
    merged, taken = merge_model_parameters(VALUES, set(), {
        "triton_ros.decoder": "yolo", "triton_ros.tfod_normalized_boxes": "false",
        "triton_ros.tfod_class_offset": "0", "triton_ros.score_threshold": "0.25",
        "triton_ros.mean": "1, 2.5,3", "input_layout": "NHWC"})  # not ours: ignored
    assert taken == {"decoder": "yolo", "tfod_normalized_boxes": False, "tfod_class_offset": 0,
                     "score_threshold": 0.25, "mean": [1.0, 2.5, 3.0]}
    assert merged == {**VALUES, **taken}
    assert type(merged["tfod_class_offset"]) is int and type(merged["score_threshold"]) is float
    assert VALUES["decoder"] == "tfod"  # the input dict is not modified


def test_explicit_parameters_win():
    merged, taken = merge_model_parameters(VALUES, {"decoder", "scaling"}, {
        "triton_ros.decoder": "yolo", "triton_ros.scaling": "UNIT",
        "triton_ros.tfod_class_offset": "0"})
    assert taken == {"tfod_class_offset": 0}
    assert merged["decoder"] == "tfod" and merged["scaling"] == "NONE"


@pytest.mark.parametrize("word,value", [("true", True), ("1", True), ("Yes", True), ("on", True),
                                        ("false", False), ("0", False), ("no", False),
                                        ("OFF", False)])
def test_booleans(word, value):
    _, taken = merge_model_parameters(VALUES, set(), {"triton_ros.tfod_normalized_boxes": word})
    assert taken == {"tfod_normalized_boxes": value}


def test_unknown_name_names_the_model_and_key():
    with pytest.raises(ModelSpecError, match="model 'm'.*'triton_ros.decodr'"):
        merge_model_parameters(VALUES, set(), {"triton_ros.decodr": "yolo"}, model="m")


@pytest.mark.parametrize("key,text", [("triton_ros.tfod_class_offset", "one"),
                                      ("triton_ros.tfod_normalized_boxes", "maybe"),
                                      ("triton_ros.score_threshold", "high")])
def test_bad_values_name_the_model_and_key(key, text):
    with pytest.raises(ModelSpecError, match=f"model 'm'.*{key}.*{text}"):
        merge_model_parameters(VALUES, set(), {key: text}, model="m")
    # Bad even when the user overrides it: the model's config is wrong either way.
    with pytest.raises(ModelSpecError):
        merge_model_parameters(VALUES, {key[len("triton_ros."):]}, {key: text}, model="m")
