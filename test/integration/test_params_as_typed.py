"""String parameters given on the command line exactly as a user types them in a shell (issue 17).

rcl reads ``-p name:=value`` as YAML: ``off`` is a boolean, ``1`` an integer. Each test starts
the real node process with the words as typed (no quoting) and reads the value the node uses
back over its GetParameters service, as ``ros2 param get`` does. No server is needed: the nodes
wait for lifecycle transitions (``autostart:=false``) and answer parameters at once.
"""
import pytest

from triton_ros.tools.node_process import NodeProcess

from test_detect_lifecycle import get_parameters

UNREACHABLE = "127.0.0.1:1"


def _start(tmp_path, module, typed, name):
    words = ["--ros-args", "-r", f"__node:={name}"]
    for item in typed:
        words += ["-p", item]
    return NodeProcess(module, {}, log_path=tmp_path / f"{name}.log", extra_args=words)


@pytest.mark.parametrize("typed,expected", [
    (["shared_memory:=off", "model_version:=1"], {"shared_memory": "off", "model_version": "1"}),
    (["shared_memory:=on", "model_version:=2.5"], {"shared_memory": "on", "model_version": "2.5"}),
    (["shared_memory:=yes", "model_version:=true"], {"shared_memory": "on",
                                                     "model_version": "true"}),
    (["shared_memory:=auto", "compression:=gzip"],
     {"shared_memory": "auto", "compression": "gzip"}),
], ids=["off-1", "on-2.5", "yes-true", "plain-strings"])
def test_detect_node_takes_string_parameters_as_typed(tmp_path, ros_node, typed, expected):
    name = "typed_" + "_".join(word.split(":=")[1].replace(".", "_") for word in typed)
    node = _start(tmp_path, "triton_ros.ros.detect_node",
                  typed + ["autostart:=false", f"server_url:={UNREACHABLE}"], name)
    try:
        values = get_parameters(ros_node, f"/{name}", list(expected), timeout_s=60.0)
        assert node.alive(), node.output()
        assert values == expected
    finally:
        node.stop()


def test_yes_no_spellings_without_choices_become_true_false(tmp_path, ros_node):
    """labels_file has no choices: YAML's ``no`` arrives as False and is read back 'false'."""
    node = _start(tmp_path, "triton_ros.ros.detect_node",
                  ["model_version:=no", "autostart:=false", f"server_url:={UNREACHABLE}"],
                  "typed_detect_no")
    try:
        values = get_parameters(ros_node, "/typed_detect_no", ["model_version"], timeout_s=60.0)
        assert values == {"model_version": "false"}
    finally:
        node.stop()


def test_a_value_outside_the_choices_still_exits_2_with_one_line(tmp_path):
    """``compression:=no`` (a bool to YAML; no false-like choice): the choices error, exit 2."""
    node = _start(tmp_path, "triton_ros.ros.detect_node",
                  ["compression:=no", f"server_url:={UNREACHABLE}"], "typed_detect_no_zip")
    try:
        assert node.process.wait(60) == 2, node.output()
    finally:
        node.stop()
    assert "[/typed_detect_no_zip] configuration error: invalid parameters: " \
        "compression='false' is not one of ['', 'gzip', 'deflate']" in node.output()


@pytest.mark.parametrize("module,words,expected", [
    ("triton_ros.ros.detect_node", ["-r", "__ns:=/robot1"], "[/robot1/triton_detect]"),
    ("triton_ros.ros.tensor_node", ["-r", "__node:=triton_node"], "[/triton_node]"),
    ("triton_ros.ros.track_node", ["-r", "__ns:=/r2", "-r", "__node:=tracker"], "[/r2/tracker]"),
], ids=["detect-namespaced", "tensor-renamed", "track-both"])
def test_configuration_error_names_the_real_node(tmp_path, module, words, expected):
    """Issue 17: the line carried the default name ([triton_detect] for /robot1/triton_detect)."""
    if module.endswith("tensor_node"):
        pytest.importorskip("isaac_ros_tensor_list_interfaces.msg",
                            reason="isaac_ros_tensor_list_interfaces not built")
    node = NodeProcess(module, {"protocol": "ftp"}, log_path=tmp_path / "node.log",
                       extra_args=["--ros-args", *words])
    try:
        assert node.process.wait(60) == 2, node.output()
    finally:
        node.stop()
    assert f"{expected} configuration error: invalid parameters: protocol='ftp'" \
        in node.output(), node.output()
