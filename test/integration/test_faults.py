"""Faults made by the test on real servers and real node processes (the README's fault table).

Each test starts its own tritonserver (only the SSD model, explicit model control) so it can kill,
freeze (SIGSTOP), restart or unload it, and a detect node fed with real frames of the sample bag.
What is checked is what a user sees: detections arriving (or not), the node's /diagnostics
(connection state, the reason, frame counters that add up) and its log.
"""
import os
import signal
import threading
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from triton_ros.ros.messages import stamp_to_ns
from triton_ros.tools.local_server import LocalTritonServer, free_port

from helpers import IMAGE_TOPIC, bag_messages, wait_matched, wait_until
from sequence_data import kill_server_hard

DETECT = "triton_ros.ros.detect_node"
SSD = "ssd_mobilenet_v2_coco"
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
NODE_NAME = "/triton_detect"


@pytest.fixture
def server(tmp_path):
    """A tritonserver of our own (explicit model control, SSD only) that a test may break."""
    srv = LocalTritonServer(models=[SSD], log_path=tmp_path / "server.log")
    try:
        srv.start(timeout_s=120)
    except Exception as exc:
        pytest.fail(f"tritonserver did not start: {exc}")
    yield srv
    if srv.process is not None and srv.process.poll() is None:
        os.killpg(srv.process.pid, signal.SIGCONT)  # a test that failed while it was stopped
    srv.cleanup()


@pytest.fixture
def probe(ros_node, sample_bag):
    made = Probe(ros_node, sample_bag)
    yield made
    made.stop_feeding()


class Probe:
    """Publishes real frames with fresh stamps; collects detections and /diagnostics."""

    def __init__(self, ros_node, sample_bag, image_topic="/cam/image", dets_topic="/cam/dets"):
        self.node = ros_node
        self.frames = [msg for _, msg in bag_messages(sample_bag, IMAGE_TOPIC, 10, every=20)]
        self.publisher = ros_node.create_publisher(Image, image_topic, RELIABLE)
        self.lock = threading.Lock()
        self.detections = {}        # stamp ns -> arrival (monotonic)
        self.diagnostics = {}       # key -> value of the node's latest status
        self.diag_message = ""
        self.sent = 0
        self._stop = threading.Event()
        self._thread = None
        self.subscription = ros_node.create_subscription(Detection2DArray, dets_topic, self._on,
                                                         RELIABLE)
        ros_node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 20)

    def _on(self, msg):
        with self.lock:
            self.detections[stamp_to_ns(msg.header.stamp)] = time.monotonic()

    def _on_diag(self, msg):
        for status in msg.status:
            if status.name == f"triton_ros: {NODE_NAME}":
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    self.diag_message = status.message

    def diag(self, key, default=""):
        with self.lock:
            return self.diagnostics.get(key, default)

    def arrived_after(self, t0):
        with self.lock:
            return sorted(t for t in self.detections.values() if t >= t0)

    def connect(self, node):
        node.wait_for_output("ready:", timeout_s=90)
        assert wait_matched(self.node, [self.publisher], [self.subscription], 60), node.output()

    def publish_one(self):
        msg = self.frames[self.sent % len(self.frames)]
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(
            1_700_000_000_000_000_000 + self.sent * 100_000_000, 1_000_000_000)
        self.publisher.publish(msg)
        self.sent += 1

    def feed(self, hz):
        def run():
            while not self._stop.wait(1.0 / hz):
                self.publish_one()
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop_feeding(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def counters_add_up(probe) -> bool:
    """received == published + every dropped_<reason> (nothing lost silently)."""
    values = dict(probe.diagnostics)
    if not values:
        return False
    dropped = sum(int(v) for k, v in values.items()
                  if k.startswith("frames_dropped_"))
    return int(values["frames_received"]) == int(values["frames_published"]) + dropped \
        == probe.sent


def detect_params(server, **extra):
    return {"server_url": server.grpc_url, "image_reliability": "reliable",
            "queue_size": 2, "image_qos_depth": 20, "max_delay_ms": 0.0,
            "diagnostics_period_s": 0.5, **extra}


def start_detect(start_node, params):
    return start_node(DETECT, params, remaps={"image": "/cam/image", "detections": "/cam/dets"})


# -- recovery-time contract ------------------------------------------------------------------------


def test_publishes_again_within_reconnect_max_after_a_long_outage(
        server, probe, start_node):
    """After a 30 s outage (a default gRPC channel has backed off to ~17 s by then) the node must
    publish within reconnect_max_s + request_timeout_s of the server being ready again."""
    reconnect_max_s, request_timeout_s = 1.0, 2.0
    node = start_detect(start_node, detect_params(
        server, reconnect_initial_s=0.2, reconnect_max_s=reconnect_max_s,
        request_timeout_s=request_timeout_s))
    probe.connect(node)
    probe.feed(hz=5)
    assert wait_until(lambda: len(probe.detections) >= 3, 60), node.output()[-2000:]

    kill_server_hard(server)
    killed = time.monotonic()
    assert wait_until(lambda: probe.diag("connection") == "unavailable", 15), probe.diagnostics
    time.sleep(max(0.0, 30.0 - (time.monotonic() - killed)))
    server.start(timeout_s=120)
    ready = time.monotonic()
    assert wait_until(lambda: probe.arrived_after(ready), 60), node.output()[-3000:]
    recovery_s = probe.arrived_after(ready)[0] - ready
    # + one frame period (0.2 s) and one inference on a 2-core machine
    assert recovery_s <= reconnect_max_s + request_timeout_s + 1.0, (
        f"first detections {recovery_s:.1f} s after the server was ready again")
    assert wait_until(lambda: probe.diag("connection") == "ready", 10)
    probe.stop_feeding()
    assert wait_until(lambda: counters_add_up(probe), 30), (probe.sent, probe.diagnostics)
    assert int(probe.diag("frames_dropped_server_unavailable")) > 0
    assert int(probe.diag("reconnects")) >= 1 and probe.diag("last_error") == ""
    assert node.alive()


# -- hang detection ---------------------------------------------------------------------------------


def test_a_frozen_server_is_reported_unresponsive_and_its_frames_counted_as_unavailable(
        server, probe, start_node):
    request_timeout_s = 2.0
    node = start_detect(start_node, detect_params(
        server, request_timeout_s=request_timeout_s, reconnect_initial_s=0.2,
        reconnect_max_s=1.0))
    probe.connect(node)
    probe.feed(hz=5)
    assert wait_until(lambda: len(probe.detections) >= 3 and probe.diag("connection") == "ready",
                      60), node.output()[-2000:]
    stale_before = int(probe.diag("frames_dropped_stale", "0"))

    # The server process only (its python-backend stub stays up, as in a hung server): the
    # kernel still accepts connections on its ports, nothing answers.
    os.kill(server.process.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        # one request timeout, plus one diagnostics period to be reported
        assert wait_until(lambda: probe.diag("connection") == "unresponsive",
                          request_timeout_s + 3.0), (probe.diag("connection"), node.output()[-2000:])
        assert "no answer within" in probe.diag_message
        time.sleep(max(0.0, 8.0 - (time.monotonic() - stopped)))
        stale = int(probe.diag("frames_dropped_stale")) - stale_before
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    resumed = time.monotonic()
    assert wait_until(lambda: probe.arrived_after(resumed + 0.5), 30), (
        probe.diag_message, probe.diagnostics, node.output()[-2000:])
    assert wait_until(lambda: probe.diag("connection") == "ready", 10)
    probe.stop_feeding()
    assert wait_until(lambda: counters_add_up(probe), 30), (probe.sent, probe.diagnostics)
    unavailable = int(probe.diag("frames_dropped_server_unavailable"))
    assert unavailable >= 20, probe.diagnostics   # ~40 frames offered while it was frozen
    assert stale <= 3, f"{stale} frames of the outage counted as stale: {probe.diagnostics}"
    assert node.alive()


# -- model unloaded through the repository API ------------------------------------------------------


def test_model_unloaded_and_loaded_again(server, probe, start_node):
    import tritonclient.grpc as grpcclient
    node = start_detect(start_node, detect_params(server, reconnect_initial_s=0.2,
                                                  reconnect_max_s=1.0))
    probe.connect(node)
    probe.feed(hz=5)
    assert wait_until(lambda: len(probe.detections) >= 3, 60), node.output()[-2000:]
    admin = grpcclient.InferenceServerClient(server.grpc_url)
    admin.unload_model(SSD)
    assert wait_until(lambda: probe.diag("connection") == "unavailable", 20), probe.diagnostics
    assert wait_until(lambda: "not ready (state" in probe.diag_message, 20), probe.diag_message
    admin.load_model(SSD)
    loaded = time.monotonic()
    assert wait_until(lambda: probe.arrived_after(loaded), 60), node.output()[-2000:]
    probe.stop_feeding()
    assert wait_until(lambda: counters_add_up(probe), 30), (probe.sent, probe.diagnostics)
    assert int(probe.diag("frames_dropped_server_unavailable")) > 0
    assert int(probe.diag("frames_dropped_internal_error", "0")) == 0
    admin.close()


# -- start-up errors a person can act on ------------------------------------------------------------


@pytest.mark.parametrize("case", ["refused", "tls_to_plain", "http_on_grpc_port",
                                  "grpc_on_http_port", "missing_model"])
def test_each_connection_failure_reads_differently(case, server, start_node, ros_node):
    params = {"server_url": server.grpc_url, "server_wait_timeout_s": 2.0,
              "request_timeout_s": 2.0}
    expected = {
        "refused": ("cannot connect", {"server_url": f"127.0.0.1:{free_port()}"}),
        "tls_to_plain": ("TLS handshake failed", {"ssl": True}),
        "http_on_grpc_port": ("does not speak this protocol", {"protocol": "http"}),
        "grpc_on_http_port": ("does not speak this protocol",
                              {"server_url": server.http_url}),
        "missing_model": (f"'no_such_model' is not in the repository of "
                          f"grpc://{server.grpc_url}; it has [", {"model_name": "no_such_model"}),
    }[case]
    text, extra = expected
    node = start_node(DETECT, {**params, **extra})
    node.wait_for_output("running on and reconnecting", timeout_s=60)
    assert text in node.output(), node.output()
    if case == "missing_model":
        assert f"'{SSD}'" in node.output()   # the models the server does have
    assert node.alive()


@pytest.mark.parametrize("params, words", [
    ({"cameras": ["front cam"]}, "cameras entry 'front cam'"),
    ({"cameras": ["1front"]}, "cameras entry '1front'"),
    ({"server_url": "http://127.0.0.1:8000"}, "without a scheme"),
    ({"server_url": "notaurl"}, "expected host:port"),
    ({"server_url": "triton.example.internal:8001"}, "placeholder host"),
    ({"auth_token_env": "TRITON_ROS_TEST_BAD_TOKEN"}, "cannot carry"),
])
def test_bad_configuration_exits_2_with_one_clear_line(params, words, start_node, monkeypatch):
    monkeypatch.setenv("TRITON_ROS_TEST_BAD_TOKEN", "abc\ndef")
    node = start_node(DETECT, {"server_wait_timeout_s": 0.0, **params})
    assert node.process.wait(60) == 2, node.output()
    output = node.output()
    assert "configuration error" in output and words in output, output
    assert "Traceback" not in output, output
    assert "abc" not in output, "the token must never be printed"


# -- one bad frame never costs another camera's good frame ------------------------------------------


def test_a_bad_frame_in_a_batch_drops_only_itself(triton_server, sample_bag, start_node,
                                                   ros_node):
    import cv2
    import numpy as np
    node = start_node(DETECT, {
        "server_url": triton_server.grpc_url, "cameras": ["left", "right:compressed"],
        "sync_tolerance_ms": 1.0, "image_reliability": "reliable", "queue_size": 8,
        "diagnostics_period_s": 0.5}, remaps={})
    left = ros_node.create_publisher(Image, "/left/image", RELIABLE)
    right = ros_node.create_publisher(CompressedImage, "/right/image/compressed", RELIABLE)
    got = {"left": [], "right": []}
    subs = [ros_node.create_subscription(
        Detection2DArray, f"/{cam}/detections",
        lambda m, c=cam: got[c].append(stamp_to_ns(m.header.stamp)), RELIABLE)
        for cam in got]
    diag = {}
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.update(
        {kv.key: kv.value for s in m.status if s.name == f"triton_ros: {NODE_NAME}"
         for kv in s.values}), 20)
    node.wait_for_output("ready:", timeout_s=90)
    assert wait_matched(ros_node, [left, right], subs, 60), node.output()
    frames = [msg for _, msg in bag_messages(sample_bag, IMAGE_TOPIC, 3, every=30)]
    float_tiff = cv2.imencode(".tiff", np.zeros((48, 64, 3), np.float32))[1].tobytes()
    for msg in frames:   # same stamps on both cameras: synchronized into one batch
        bad = CompressedImage(header=msg.header, format="tiff", data=float_tiff)
        right.publish(bad)
        left.publish(msg)
        time.sleep(0.3)
    stamps = [stamp_to_ns(m.header.stamp) for m in frames]
    assert wait_until(lambda: sorted(got["left"]) == sorted(stamps), 60), (got, node.output())
    assert wait_until(lambda: diag.get("camera[right].dropped_bad_input") == "3", 10), diag
    assert diag.get("frames_dropped_internal_error") == "0", diag
    assert got["right"] == []
    assert "float32" in node.output() and node.alive()
