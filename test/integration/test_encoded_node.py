"""detect_node with encoded-image models (issue 19, node side): real server, real ensembles,
real node processes over DDS, the sample bag's JPEG and raw frames.

- zero-config: only model_name set, on both encoded ensembles and on the tensor YOLO model;
- CompressedImage data sent untouched, raw Images encoded on the robot;
- one garbage image in a batch is bad_input with the server's reason, its neighbours published;
- bytes on the wire per frame, counted by a relay between node and server.
"""
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from triton_ros.ros.messages import stamp_to_ns
from triton_ros.tools.tcp_relay import TcpRelay

from helpers import COMPRESSED_TOPIC, IMAGE_TOPIC, bag_messages, unmatched, wait_matched, \
    wait_until
from reference import match_boxes

DETECT = "triton_ros.ros.detect_node"
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


class Run:
    """A detect node on camera ``cam`` (Image and CompressedImage), its detections and status."""

    def __init__(self, start_node, ros_node, params, name):
        self.node = start_node(DETECT, {"subscribe_compressed": True, **params},
                               remaps={"image": f"/{name}/image",
                                       "image/compressed": f"/{name}/image/compressed",
                                       "detections": f"/{name}/dets",
                                       "__node": name})
        self.name = name
        self.by_stamp, self.diag, self.lock = {}, {}, threading.Lock()
        self.subscription = ros_node.create_subscription(Detection2DArray, f"/{name}/dets",
                                                         self._on, RELIABLE)
        ros_node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 20)
        self.raw = ros_node.create_publisher(Image, f"/{name}/image", RELIABLE)
        self.compressed = ros_node.create_publisher(CompressedImage,
                                                    f"/{name}/image/compressed", RELIABLE)
        self.node.wait_for_output("ready:", timeout_s=120)
        endpoints = {"publishers": [self.raw, self.compressed],
                     "subscriptions": [self.subscription]}
        assert wait_matched(ros_node, **endpoints, timeout_s=60), (
            unmatched(ros_node, **endpoints), self.node.output())

    def _on(self, msg):
        with self.lock:
            self.by_stamp[stamp_to_ns(msg.header.stamp)] = msg

    def _on_diag(self, msg):
        for status in msg.status:
            if status.name == f"triton_ros: /{self.name}":
                with self.lock:
                    self.diag = {kv.key: kv.value for kv in status.values}

    def send(self, messages):
        """Publish (Image or CompressedImage) messages one at a time, each after the previous
        one's array arrived (the default queue_size 2 keeps the latest frames only); return the
        arrays."""
        arrays = []
        for msg in messages:
            (self.compressed if isinstance(msg, CompressedImage) else self.raw).publish(msg)
            stamp = stamp_to_ns(msg.header.stamp)
            assert wait_until(lambda: stamp in self.by_stamp, 120), (
                len(self.by_stamp), self.diag, self.node.output()[-3000:])
            arrays.append(self.by_stamp[stamp])
        return arrays


def boxes(array):
    """(labels, [K, 4] x1 y1 x2 y2) of a Detection2DArray."""
    labels, xyxy = [], []
    for det in array.detections:
        cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
        w, h = det.bbox.size_x, det.bbox.size_y
        labels.append(det.results[0].hypothesis.class_id)
        xyxy.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return labels, np.array(xyxy).reshape(-1, 4)


def assert_same_detections(ours, reference, min_iou=0.9):
    for a, b in zip(ours, reference, strict=True):
        (la, ba), (lb, bb) = boxes(a), boxes(b)
        assert sorted(la) == sorted(lb), (la, lb)
        ious = match_boxes(ba, bb)
        assert min(ious, default=1.0) >= min_iou, ious


@pytest.fixture(scope="module")
def jpeg_frames(sample_bag):
    return [msg for _, msg in bag_messages(sample_bag, COMPRESSED_TOPIC, 4, every=25)]


@pytest.mark.parametrize("encoded,tensor,tensor_params", [
    ("ssd_mobilenet_v2_coco_encoded", "ssd_mobilenet_v2_coco", {}),
    # the tensor YOLO model zero-config too: its own triton_ros.* parameters (decoder yolo, v5,
    # letterbox, UNIT scaling) are all it needs
    ("yolov4_tiny_coco_encoded", "yolov4_tiny_coco", {}),
], ids=["ssd", "yolo"])
def test_only_model_name_set_detects_like_the_tensor_path(
        triton_server, jpeg_frames, start_node, ros_node, encoded, tensor, tensor_params):
    """Only model_name given, besides where the server is and how long a first request may
    take on a loaded CI machine: the encoded ensemble's detections equal the tensor model's on
    the same JPEG frames (same classes, IoU >= 0.9)."""
    server = {"server_url": triton_server.grpc_url, "request_timeout_s": 60.0}
    enc = Run(start_node, ros_node, {**server, "model_name": encoded}, "enc")
    ten = Run(start_node, ros_node, {**server, "model_name": tensor, **tensor_params}, "ten")
    ours, reference = enc.send(jpeg_frames), ten.send(jpeg_frames)
    assert_same_detections(ours, reference)
    assert sum(len(a.detections) for a in ours) >= len(jpeg_frames)  # pedestrians everywhere
    log = enc.node.output()
    assert f"model '{encoded}' configures: " in log and "decoder='tfod'" in log, log[-3000:]
    assert "input_kind='encoded_image'" in log
    assert "encoded-image input" in log
    if tensor == "yolov4_tiny_coco":
        assert "yolo_version='v5'" in ten.node.output()
    assert wait_until(lambda: enc.diag.get("input_kind") == "encoded_image", 10), enc.diag
    assert enc.node.alive() and ten.node.alive()


def test_raw_images_encoded_on_the_robot_detect_the_same_persons(
        triton_server, sample_bag, start_node, ros_node):
    frames = [msg for _, msg in bag_messages(sample_bag, IMAGE_TOPIC, 3, every=25)]
    server = {"server_url": triton_server.grpc_url, "image_reliability": "reliable",
              "request_timeout_s": 60.0}
    enc = Run(start_node, ros_node, {**server, "model_name": "ssd_mobilenet_v2_coco_encoded",
                                     "encode_format": "png"}, "enc")
    ten = Run(start_node, ros_node, {**server, "model_name": "ssd_mobilenet_v2_coco"}, "ten")
    ours, reference = enc.send(frames), ten.send(frames)
    # PNG is lossless: the server decodes exactly the pixels the tensor path pre-processed.
    assert_same_detections(ours, reference)
    for msg, array in zip(frames, ours):
        labels, xyxy = boxes(array)
        assert "person" in labels
        assert (xyxy[:, 2] <= msg.width + 1).all() and (xyxy[:, 3] <= msg.height + 1).all()


def test_a_garbage_image_in_a_batch_is_bad_input_and_its_neighbours_published(
        triton_server, jpeg_frames, start_node, ros_node):
    """Frames of two cameras batched into one request, one of them not an image the server
    reads: that one is bad_input with the server's reason, the others are published."""
    node = start_node(DETECT, {
        "server_url": triton_server.grpc_url, "model_name": "yolov4_tiny_coco_encoded",
        "cameras": ["left:compressed", "right:compressed"], "sync_tolerance_ms": 1.0,
        "image_reliability": "reliable", "queue_size": 8, "diagnostics_period_s": 0.5,
        "request_timeout_s": 60.0}, namespace="/mix")
    pubs = {c: ros_node.create_publisher(CompressedImage, f"/mix/{c}/image/compressed",
                                         RELIABLE) for c in ("left", "right")}
    got = {"left": [], "right": []}
    subs = [ros_node.create_subscription(
        Detection2DArray, f"/mix/{c}/detections",
        lambda m, c=c: got[c].append(stamp_to_ns(m.header.stamp)), RELIABLE) for c in got]
    diag = {}
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.update(
        {kv.key: kv.value for s in m.status if s.name == "triton_ros: /mix/triton_detect"
         for kv in s.values}), 20)
    node.wait_for_output("ready:", timeout_s=120)
    assert wait_matched(ros_node, list(pubs.values()), subs, 60), node.output()
    # A real JPEG's header (up to its frame header, so the robot reads a fine size and sends
    # it) followed by garbage instead of tables and scan data: the server cannot decode it.
    real = bytes(jpeg_frames[0].data)
    sof = real.index(b"\xff\xc0")
    garbage = real[:sof + 2 + int.from_bytes(real[sof + 2:sof + 4], "big")] + b"garbage" * 9
    for msg in jpeg_frames[:3]:  # same stamp on both cameras: one synchronized batch each
        pubs["left"].publish(msg)
        bad = CompressedImage(header=msg.header, format="jpeg", data=garbage)
        pubs["right"].publish(bad)
        time.sleep(0.3)
    stamps = sorted(stamp_to_ns(m.header.stamp) for m in jpeg_frames[:3])
    assert wait_until(lambda: sorted(got["left"]) == stamps, 90), (got, node.output()[-3000:])
    assert wait_until(lambda: diag.get("camera[right].dropped_bad_input") == "3", 20), diag
    assert got["right"] == [] and diag.get("frames_dropped_internal_error") == "0"
    sizes = {int(k): int(v) for k, v in (kv.split(":") for kv in diag["batch_sizes"].split())}
    assert sizes == {2: 3}, sizes  # each garbage image went to the server beside a good one
    log = node.output()
    line = next((ln for ln in log.splitlines()
                 if "bad frame from 'camera_optical_frame' (camera right)" in ln), log[-3000:])
    assert "the server could not use it: not an image OpenCV can read" in line, line
    assert node.alive()


@pytest.mark.parametrize("model,bound_kib", [("yolov4_tiny_coco_encoded", 200),
                                             ("ssd_mobilenet_v2_coco_encoded", 200)],
                         ids=["yolo", "ssd"])
def test_bytes_on_the_wire_per_frame(triton_server, jpeg_frames, start_node, ros_node, model,
                                     bound_kib):
    """Through a counting relay (shared memory off): an encoded model's request carries the JPEG
    as received and the answer boxes, far below the tensor path (~2.9 MB per YOLO frame)."""
    with TcpRelay(triton_server.grpc_url) as relay:
        run = Run(start_node, ros_node, {
            # quoted: a bare off would reach the node as YAML false
            "server_url": relay.url, "model_name": model, "shared_memory": "'off'",
            "image_reliability": "reliable", "request_timeout_s": 60.0,
            "diagnostics_period_s": 0.5}, "wire")
        run.send(jpeg_frames[:1])  # connected and warm
        relay.reset()
        run.send(jpeg_frames)
        up, down = relay.counts()
    sizes = [len(m.data) for m in jpeg_frames]
    jpeg_bytes = sum(sizes) / len(sizes)
    per_frame = (up + down) / len(jpeg_frames)
    print(f"\n{model}: JPEG {jpeg_bytes / 1024:.1f} KiB; on the wire per frame "
          f"{up / len(sizes) / 1024:.1f} KiB up + {down / len(sizes) / 1024:.1f} KiB down")
    assert per_frame < bound_kib * 1024, (up, down, len(jpeg_frames))
    assert up / len(jpeg_frames) >= jpeg_bytes  # the whole JPEG went up, untouched
    assert wait_until(lambda: "bytes_sent_per_frame" in run.diag, 10), run.diag
    sent = int(run.diag["bytes_sent_per_frame"])
    assert min(sizes) <= sent <= max(sizes) + 64, (sent, sizes)  # + a length prefix
    assert 0 < int(run.diag["bytes_received_per_frame"]) < 8 * 1024

