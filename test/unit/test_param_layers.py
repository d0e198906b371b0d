"""triton_ros.param_layers: which sections apply to a node, and in what order (no ROS needed)."""
import pytest
import yaml

from triton_ros.param_layers import ParamFileError, full_name, layer, node_parameters

NODE = "/robot1/triton_detect"


def section(**params):
    return {"ros__parameters": params}


@pytest.mark.parametrize("key, applies", [
    ("/**", True), ("/**/triton_detect", True), ("/robot1/triton_detect", True),
    ("robot1/triton_detect", True), ("/robot1/*", True), ("/*/triton_detect", True),
    ("/robot2/triton_detect", False), ("/triton_detect", False), ("/robot1/triton_track", False),
    ("/**/robot1/**", True), ("/**/robot2/**", False), ("/robot1/**", True),
])
def test_keys_match_like_rcl(key, applies):
    assert (node_parameters({key: section(a=1)}, NODE) == {"a": 1}) is applies


def test_nested_namespaces_and_parameter_groups():
    data = {"robot1": {"triton_detect": {"ros__parameters": {"a": 1, "group": {"b": 2}}}}}
    assert node_parameters(data, NODE) == {"a": 1, "group.b": 2}


def test_exact_name_beats_wildcard_whatever_the_order_in_the_file():
    data = {NODE: section(a="exact"), "/**": section(a="wild", b="wild")}
    assert node_parameters(data, NODE) == {"a": "exact", "b": "wild"}


def test_later_files_then_overrides_win(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text(yaml.safe_dump({NODE: section(a=1, b=1, c=1)}))
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump({"/**": section(b=2, c=2)}))
    assert layer([str(user), str(preset)], NODE, {"c": 3}) == {"a": 1, "b": 2, "c": 3}


def test_missing_or_broken_file_is_an_error(tmp_path):
    with pytest.raises(ParamFileError, match="does not exist"):
        layer([str(tmp_path / "nope.yaml")], NODE)
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**: [1, 2]\n")
    with pytest.raises(ParamFileError, match="bad.yaml"):
        layer([str(bad)], NODE)


def test_full_name():
    assert full_name("/", "n") == "/n"
    assert full_name("robot1/", "n") == "/robot1/n"
