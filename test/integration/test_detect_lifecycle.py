"""detect_node as a managed node; layering and `ros2 param dump` on the real node (issue 9).

Every test starts the real detect node process; values are read back over its GetParameters
service, as `ros2 param get/dump` does.
"""
import math

import pytest
import yaml
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import GetState
from rcl_interfaces.srv import GetParameters, ListParameters
from rclpy.parameter import parameter_value_to_python
from sensor_msgs.msg import Image

from triton_ros.param_layers import layer
from triton_ros.resources import config_path
from triton_ros.ros.detect_node import PARAMETERS

from helpers import IMAGE_TOPIC, bag_messages, wait_until
from test_detect_node import RELIABLE, Collector

DETECT = "triton_ros.ros.detect_node"
NAMES = [spec.name for spec in PARAMETERS]


def call(probe, srv_type, name, request, timeout_s=10.0):
    client = probe.create_client(srv_type, name)
    try:
        assert client.wait_for_service(timeout_sec=timeout_s), f"no service {name}"
        future = client.call_async(request)
        assert wait_until(future.done, timeout_s), f"{name} did not answer in {timeout_s} s"
        return future.result()
    finally:
        probe.destroy_client(client)


def get_parameters(probe, node, names, timeout_s=10.0) -> dict:
    """name -> value over the node's GetParameters service; fails if any value is missing."""
    reply = call(probe, GetParameters, f"{node}/get_parameters",
                 GetParameters.Request(names=names), timeout_s)
    assert len(reply.values) == len(names), f"GetParameters answered {len(reply.values)} of " \
                                            f"{len(names)} values"
    return {n: parameter_value_to_python(v) for n, v in zip(names, reply.values)}


def dump(probe, node) -> dict:
    """What `ros2 param dump` builds: ListParameters, then GetParameters of every name."""
    names = list(call(probe, ListParameters, f"{node}/list_parameters",
                      ListParameters.Request()).result.names)
    reply = call(probe, GetParameters, f"{node}/get_parameters",
                 GetParameters.Request(names=names))
    assert len(reply.values) == len(names), "GetParameters answered an empty list"
    for name, value in zip(names, reply.values):
        assert value.type != 0, f"{name} has no value (NOT_SET)"
    return {node: {"ros__parameters": {n: parameter_value_to_python(v)
                                       for n, v in zip(names, reply.values)}}}


def same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def lifecycle(probe, node, transition_id) -> bool:
    from lifecycle_msgs.srv import ChangeState
    reply = call(probe, ChangeState, f"{node}/change_state",
                 ChangeState.Request(transition=Transition(id=transition_id)), 30.0)
    return reply.success


def state(probe, node, timeout_s=10.0) -> str:
    return call(probe, GetState, f"{node}/get_state", GetState.Request(),
                timeout_s).current_state.label


def test_node_without_server_answers_parameters_at_once_and_its_dump_reloads(
        start_node, ros_node, tmp_path):
    """Defects 2 and 3: no server; parameter services answer; the dump is complete and reloads."""
    from triton_ros.tools.local_server import free_port
    node = start_node(DETECT, {"server_url": f"127.0.0.1:{free_port()}",
                               "server_wait_timeout_s": 600.0, "class_filter": ["person"]})
    node.wait_for_output("waiting up to 600 s", timeout_s=60)
    values = get_parameters(ros_node, "/triton_detect", NAMES, timeout_s=15.0)
    assert values["class_filter"] == ["person"]
    assert values["cameras"] == [""] and math.isnan(values["mean"][0])  # documented "unset"
    assert values["server_wait_timeout_s"] == 600.0
    assert state(ros_node, "/triton_detect") == "unconfigured"  # still waiting for the server
    dumped = dump(ros_node, "/triton_detect")
    path = tmp_path / "dump.yaml"
    path.write_text(yaml.safe_dump(dumped))
    node.stop()

    from triton_ros.tools.node_process import NodeProcess
    again = NodeProcess(DETECT, {}, log_path=tmp_path / "again.log",
                        extra_args=["--params-file", str(path)])
    try:
        again.wait_for_output("waiting up to 600 s", timeout_s=60)
        reloaded = dump(ros_node, "/triton_detect")
    finally:
        again.stop()
    before = dumped["/triton_detect"]["ros__parameters"]
    after = reloaded["/triton_detect"]["ros__parameters"]
    assert set(before) == set(after)
    different = {k: (before[k], after[k]) for k in before if not same(before[k], after[k])}
    assert not different, different


def write_params(path, key, params):
    path.write_text(yaml.safe_dump({key: {"ros__parameters": params}}))
    return str(path)


@pytest.mark.parametrize("user_key", ["/robot1/triton_detect", "/**", "robot1/triton_detect",
                                      "/**/triton_detect"])
def test_layering_defaults_params_file_preset_arguments(user_key, ros_node, tmp_path):
    """Defect 1: user file (any key) < preset < explicit arguments, read back from the node."""
    from triton_ros.tools.node_process import NodeProcess
    user = write_params(tmp_path / "my.yaml", user_key, {
        "server_url": "127.0.0.1:1111", "score_threshold": 0.7, "max_detections": 7,
        "input_width": 320})
    preset = str(config_path("presets") / "jetson.yaml")
    explicit = {"server_url": "127.0.0.1:18251"}
    # What detect.launch.py passes: one dict, written by launch_ros keyed by the full name.
    merged = write_params(tmp_path / "launch_params.yaml", "/robot1/triton_detect",
                          layer([user, preset], "/robot1/triton_detect", explicit))
    node = NodeProcess(DETECT, {"autostart": False}, namespace="/robot1",
                       log_path=tmp_path / "node.log", extra_args=["--params-file", merged])
    try:
        values = get_parameters(ros_node, "/robot1/triton_detect",
                                ["server_url", "score_threshold", "max_detections",
                                 "input_width", "queue_size", "request_timeout_s", "decoder"],
                                timeout_s=30.0)
    finally:
        node.stop()
    assert values == {
        "server_url": "127.0.0.1:18251",   # explicit beats preset and user file
        "score_threshold": 0.5,            # preset beats user file
        "max_detections": 50,              # preset beats user file
        "input_width": 320,                # user file beats defaults
        "queue_size": 1,                   # preset beats defaults
        "request_timeout_s": 2.0,          # preset
        "decoder": "tfod",                 # default
    }


def test_lifecycle_transitions_against_the_real_server(sample_bag, ros_node, tmp_path):
    """Configure without server -> error with reason; server up -> configure -> activate ->
    detections; deactivate -> no subscriptions; cleanup -> shared memory released."""
    import tritonclient.grpc as grpcclient

    from triton_ros.tools.local_server import LocalTritonServer, free_ports
    from triton_ros.tools.node_process import NodeProcess
    ports = dict(zip(("http_port", "grpc_port", "metrics_port"), free_ports(3)))
    url = f"127.0.0.1:{ports['grpc_port']}"
    node = NodeProcess(DETECT, {"server_url": url, "autostart": False, "shared_memory": "auto",
                                "reconnect_initial_s": 0.05, "reconnect_max_s": 0.1,
                                "image_reliability": "reliable", "queue_size": 64,
                                "image_qos_depth": 64, "max_delay_ms": 0.0},
                       remaps={"image": "/lc/image", "detections": "/lc/dets"},
                       log_path=tmp_path / "node.log")
    server = LocalTritonServer(log_path=tmp_path / "server.log",
                               models=["ssd_mobilenet_v2_coco"], **ports)
    name = "/triton_detect"
    try:
        assert state(ros_node, name, timeout_s=60.0) == "unconfigured"
        assert not lifecycle(ros_node, name, Transition.TRANSITION_CONFIGURE)
        assert wait_until(lambda: "configure failed: " in node.output(), 10), node.output()
        assert "cannot connect" in node.output(), node.output()
        assert state(ros_node, name) == "unconfigured"

        server.start(120)
        assert wait_until(lambda: lifecycle(ros_node, name, Transition.TRANSITION_CONFIGURE),
                          30, poll_s=0.5), node.output()
        assert state(ros_node, name) == "inactive"
        assert ros_node.count_publishers("/lc/dets") == 0  # inactive: no topics yet
        assert lifecycle(ros_node, name, Transition.TRANSITION_ACTIVATE)

        collector = Collector(ros_node, "/lc/dets")
        images = ros_node.create_publisher(Image, "/lc/image", RELIABLE)
        assert wait_until(lambda: images.get_subscription_count() > 0
                          and ros_node.count_publishers("/lc/dets") > 0, 30), node.output()
        for raw, _ in bag_messages(sample_bag, IMAGE_TOPIC, 3, every=10):
            images.publish(raw)
        assert wait_until(lambda: len(collector.by_stamp) == 3, 60), node.output()
        regions = grpcclient.InferenceServerClient(url).get_system_shared_memory_status(
            as_json=True).get("regions", {})
        assert regions, "shared_memory:=auto (loopback) registered no region"

        assert lifecycle(ros_node, name, Transition.TRANSITION_DEACTIVATE)
        assert wait_until(lambda: images.get_subscription_count() == 0
                          and ros_node.count_publishers("/lc/dets") == 0, 30), node.output()
        assert lifecycle(ros_node, name, Transition.TRANSITION_CLEANUP)
        assert state(ros_node, name) == "unconfigured"
        status = grpcclient.InferenceServerClient(url).get_system_shared_memory_status(
            as_json=True)
        assert not status.get("regions"), status
        # ... and the node can be configured and activated again after a cleanup.
        assert lifecycle(ros_node, name, Transition.TRANSITION_CONFIGURE)
        assert lifecycle(ros_node, name, Transition.TRANSITION_ACTIVATE)
        assert wait_until(lambda: images.get_subscription_count() > 0, 30), node.output()
        raw, _ = bag_messages(sample_bag, IMAGE_TOPIC, 4, every=10)[3]  # a new stamp
        images.publish(raw)
        assert wait_until(lambda: len(collector.by_stamp) == 4, 60), node.output()
        assert node.alive()
    finally:
        code = node.stop()
        server.cleanup()
    output = node.output()
    assert code == 0 and "Traceback" not in output, output
    assert "Failed to publish log message to rosout" not in output, output
    (line,) = [ln for ln in output.splitlines() if "final counters:" in ln]
    fields = line.split("final counters: ", 1)[1].split(", ")
    assert all(f.count("=") == 1 and f.split("=")[0] for f in fields), line  # no stray ", "
    assert "published=4" in fields and "received=4" in fields, line


def test_bad_ros_arguments_exit_2_without_traceback(tmp_path):
    """Defect 5: --log-level verbose is one clear line and exit code 2, not an RCLError."""
    from triton_ros.tools.node_process import NodeProcess
    node = NodeProcess(DETECT, {}, log_path=tmp_path / "node.log",
                       extra_args=["--log-level", "verbose"])
    assert node.process.wait(60) == 2, node.output()
    assert "[triton_detect] invalid ROS arguments:" in node.output(), node.output()
    assert "Traceback" not in node.output(), node.output()
