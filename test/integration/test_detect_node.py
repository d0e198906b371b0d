"""End to end: real frames from the sample bag -> detect node (real DDS) -> real tritonserver."""
import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from triton_ros.image_conversion import raw_image_to_bgr
from triton_ros.ros.messages import stamp_to_ns

from helpers import (COMPRESSED_TOPIC, IMAGE_TOPIC, bag_messages, unmatched, wait_matched,
                     wait_until)
from reference import match_boxes, reference_boxes

DETECT = "triton_ros.ros.detect_node"
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
PERSON = 1  # COCO-90 id


class Collector:
    """Keeps every Detection2DArray received, keyed by source stamp (ns)."""

    def __init__(self, node, topic):
        self.by_stamp, self.lock = {}, threading.Lock()
        self.subscription = node.create_subscription(Detection2DArray, topic, self._on, RELIABLE)

    def _on(self, msg):
        with self.lock:
            self.by_stamp[stamp_to_ns(msg.header.stamp)] = msg


def node_params(server, protocol="grpc", **extra):
    url = server.grpc_url if protocol == "grpc" else server.http_url
    # request_timeout_s: a first batch on a loaded 2-core machine can take longer than the 5 s
    # default; a timed-out request drops its frames, which these tests count.
    return {"server_url": url, "protocol": protocol, "image_reliability": "reliable",
            "queue_size": 64, "image_qos_depth": 64, "max_delay_ms": 0.0, "score_threshold": 0.5,
            "request_timeout_s": 30.0, **extra}


def start_and_connect(start_node, ros_node, params, image_type=Image, image_topic="/cam/image"):
    """Start a detect node and wait until its subscription and publisher are matched."""
    remaps = {"detections": "/cam/dets"}
    remaps["image/compressed" if image_type is CompressedImage else "image"] = image_topic
    node = start_node(DETECT, params, remaps=remaps)
    collector = Collector(ros_node, "/cam/dets")
    publisher = ros_node.create_publisher(image_type, image_topic, RELIABLE)
    node.wait_for_output("ready:", timeout_s=90)
    endpoints = {"publishers": [publisher], "subscriptions": [collector.subscription]}
    assert wait_matched(ros_node, **endpoints, timeout_s=60), (
        unmatched(ros_node, **endpoints), node.output())
    return node, collector, publisher


def boxes_xyxy(array, label):
    boxes = []
    for det in array.detections:
        if det.results[0].hypothesis.class_id == label:
            cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
            w, h = det.bbox.size_x, det.bbox.size_y
            boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return np.array(boxes).reshape(-1, 4)


YOLO_HEAD = {"model_name": "ssd_mobilenet_v2_coco_yolo_head", "decoder": "yolo",
             "yolo_iou_threshold": 0.6}  # SSD's own NMS threshold: the decoder must keep all


@pytest.mark.parametrize("protocol,frames,extra", [("grpc", 16, {}), ("http", 4, {}),
                                                   ("grpc", 6, YOLO_HEAD)],
                         ids=["grpc", "http", "yolo-head"])
def test_persons_match_direct_opencv_run(triton_server, sample_bag, start_node, ros_node,
                                         protocol, frames, extra):
    node, collector, publisher = start_and_connect(
        start_node, ros_node, node_params(triton_server, protocol, **extra))
    messages = bag_messages(sample_bag, IMAGE_TOPIC, frames, every=15)
    for raw, _ in messages:
        publisher.publish(raw)
        time.sleep(0.05)
    stamps = [stamp_to_ns(msg.header.stamp) for _, msg in messages]
    assert wait_until(lambda: all(s in collector.by_stamp for s in stamps), 90), (
        f"got {len(collector.by_stamp)}/{len(stamps)} arrays; node log:\n{node.output()[-2000:]}")

    persons_total = 0
    for _, msg in messages:
        result = collector.by_stamp[stamp_to_ns(msg.header.stamp)]
        assert result.header.frame_id == msg.header.frame_id == "camera_optical_frame"
        assert result.header.stamp == msg.header.stamp
        frame = raw_image_to_bgr(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        expected = reference_boxes(frame, PERSON, 0.5)
        ours = boxes_xyxy(result, "person")
        assert len(ours) == len(expected), (len(ours), len(expected))
        ious = match_boxes(ours, expected)
        assert min(ious, default=1.0) >= 0.9, ious
        for det in result.detections:
            score = det.results[0].hypothesis.score
            assert 0.5 <= score <= 1.0
            assert 0 <= det.bbox.center.position.x <= msg.width
            assert 0 <= det.bbox.center.position.y <= msg.height
        persons_total += len(ours)
    assert persons_total >= frames, "the sample frames show pedestrians in nearly every frame"
    assert node.alive()
    # shared_memory defaults to auto (on for this loopback server): regions are removed at exit.
    pid = node.process.pid
    assert list(Path("/dev/shm").glob(f"triton_ros_*_{pid}_*")), "shared memory was not used"
    assert node.stop() == 0
    assert not list(Path("/dev/shm").glob(f"triton_ros_*_{pid}_*")), "leaked shm regions"


def test_compressed_images_are_detected(triton_server, sample_bag, start_node, ros_node):
    node, collector, publisher = start_and_connect(
        start_node, ros_node, node_params(triton_server, subscribe_compressed=True),
        image_type=CompressedImage, image_topic="/cam/image_c")
    messages = bag_messages(sample_bag, COMPRESSED_TOPIC, 3, every=20)
    for raw, _ in messages:
        publisher.publish(raw)
        time.sleep(0.05)
    stamps = [stamp_to_ns(msg.header.stamp) for _, msg in messages]
    assert wait_until(lambda: all(s in collector.by_stamp for s in stamps), 60), node.output()
    for _, msg in messages:
        result = collector.by_stamp[stamp_to_ns(msg.header.stamp)]
        assert result.header.frame_id == msg.header.frame_id
        assert len(boxes_xyxy(result, "person")) >= 1


def test_malformed_images_are_reported_and_node_keeps_running(
        triton_server, sample_bag, start_node, ros_node):
    node, collector, publisher = start_and_connect(start_node, ros_node,
                                                   node_params(triton_server))
    statuses = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: statuses.extend(m.status), 10)
    bad = [Image(encoding="bgr8", height=10, width=10, step=30, data=b"\x00" * 20),
           Image(encoding="32FC1", height=2, width=2, step=16, data=b"\x00" * 16),
           Image(encoding="bgr8", height=0, width=0, step=0, data=b""),
           # OpenCV itself rejects this (odd width for 4:2:2): must not stop the worker
           Image(encoding="yuv422", height=2, width=3, step=6, data=b"\x00" * 12)]
    for index, msg in enumerate(bad):
        msg.header.frame_id = f"bad{index}"
        publisher.publish(msg)
    (raw, good), = bag_messages(sample_bag, IMAGE_TOPIC, 1)
    publisher.publish(raw)
    stamp = stamp_to_ns(good.header.stamp)
    assert wait_until(lambda: stamp in collector.by_stamp, 60), node.output()
    assert len(boxes_xyxy(collector.by_stamp[stamp], "person")) >= 1
    assert node.alive()

    def bad_count():
        for status in reversed(statuses):
            values = {kv.key: kv.value for kv in status.values}
            if "frames_dropped_bad_input" in values and "/triton_detect" in status.name:
                return int(values["frames_dropped_bad_input"])
        return -1
    assert wait_until(lambda: bad_count() == 4, 30), statuses[-1:] or "no diagnostics"
    log = node.output()
    assert "unsupported encoding '32FC1'" in log
    assert "data has 20 bytes" in log


def test_bad_configuration_exits_with_clear_error(start_node):
    node = start_node(DETECT, {"protocol": "ftp"})
    assert node.process.wait(60) == 2
    assert "protocol='ftp' is not one of ['grpc', 'http']" in node.output()


def diagnostics_values(statuses, name="/triton_detect"):
    for status in reversed(statuses):
        if name in status.name:
            return status.level, {kv.key: kv.value for kv in status.values}
    return None, {}


def test_node_waits_for_server_then_reconnects_after_restart(sample_bag, start_node, ros_node,
                                                             tmp_path):
    """Node started before the server runs on, connects when it appears, and survives a restart."""
    from diagnostic_msgs.msg import DiagnosticStatus

    from triton_ros.tools.local_server import LocalTritonServer, free_ports
    ports = dict(zip(("http_port", "grpc_port", "metrics_port"), free_ports(3)))
    node = start_node(DETECT, {"server_url": f"127.0.0.1:{ports['grpc_port']}",
                               "server_wait_timeout_s": 0.5, "reconnect_initial_s": 0.2,
                               "reconnect_max_s": 1.0, "image_reliability": "reliable",
                               "request_timeout_s": 2.0},
                      remaps={"image": "/rc/image", "detections": "/rc/dets"})
    collector = Collector(ros_node, "/rc/dets")
    statuses = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: statuses.extend(m.status), 10)
    publisher = ros_node.create_publisher(Image, "/rc/image", RELIABLE)
    node.wait_for_output("running on and reconnecting", timeout_s=60)
    endpoints = {"publishers": [publisher], "subscriptions": [collector.subscription]}
    assert wait_matched(ros_node, **endpoints, timeout_s=60), (
        unmatched(ros_node, **endpoints), node.output())
    messages = bag_messages(sample_bag, IMAGE_TOPIC, 40, every=3)
    frames = itertools.cycle(messages)  # a re-sent frame is published again (same stamp)

    def feed_until_published(timeout_s):
        """Publish one frame every 0.2 s until a detection array for one of them arrives."""
        collector.by_stamp.clear()
        sent = set()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            raw, msg = next(frames)
            sent.add(stamp_to_ns(msg.header.stamp))
            publisher.publish(raw)
            if wait_until(lambda: sent & set(collector.by_stamp), 0.2):
                return True
        return False

    publisher.publish(messages[0][0])
    assert wait_until(lambda: int(diagnostics_values(statuses)[1].get(
        "frames_dropped_server_unavailable", 0)) >= 1, 15), node.output()
    level, values = diagnostics_values(statuses)
    assert level == DiagnosticStatus.ERROR and values["connection"] == "unavailable"
    assert node.alive()

    server = LocalTritonServer(log_path=tmp_path / "server.log", models=["ssd_mobilenet_v2_coco"],
                               **ports)
    try:
        server.start(120)
        assert feed_until_published(60), node.output()
        server.stop()                     # the server goes away while the node runs
        time.sleep(1.0)
        for _ in range(3):
            publisher.publish(next(frames)[0])
            time.sleep(0.2)
        assert node.alive()
        server.start(120)                 # ... and comes back on the same ports
        assert feed_until_published(60), node.output()
        # Checked while the server still runs: once cleanup() stops it, the node rightly
        # reports the connection lost again.
        assert wait_until(lambda: diagnostics_values(statuses)[1].get("connection") == "ready",
                          30), diagnostics_values(statuses)
        values = diagnostics_values(statuses)[1]
        assert int(values["reconnects"]) >= 1
    finally:
        server.cleanup()
    assert node.alive()
    assert "connected to" in node.output()


def test_model_the_node_cannot_drive_exits_with_clear_error(triton_server, start_node):
    node = start_node(DETECT, {"server_url": triton_server.grpc_url,
                               "input_name": "no_such_input"})
    assert node.process.wait(60) == 2
    assert "has no image input named 'no_such_input'" in node.output()


# -- decompression bombs (issue 18 item 5) ---------------------------------------------------------


def png_bomb(width: int, height: int) -> bytes:
    """A valid RGB PNG of zeros, compressed row by row (never held decoded here): 16000x16000
    is a 747 KB file that decodes to 768 MB."""
    import struct
    import zlib

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    compressor, row = zlib.compressobj(9), b"\0" * (1 + 3 * width)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM in /proc/<pid>/status), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_decompression_bombs_are_refused_before_decoding(triton_server, sample_bag, start_node,
                                                         ros_node):
    """A 747 KB PNG and a 3 MB JPEG that decode to 16000x16000 are bad_input (the reason
    logged), the node's peak memory does not grow by a decoded image, the next frame is
    published. Before max_image_pixels the node decoded them (RSS peak 1746 MB, issue 18)."""
    import cv2
    node, collector, publisher = start_and_connect(
        start_node, ros_node, node_params(triton_server, subscribe_compressed=True,
                                          diagnostics_period_s=0.5),
        image_type=CompressedImage, image_topic="/cam/image_c")
    assert f"-m {DETECT}" in " ".join(Path(f"/proc/{node.pid}/cmdline").read_text()
                                       .split("\0")), "pid is not the node itself"
    diag = {}
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.update(
        {kv.key: kv.value for s in m.status if s.name == "triton_ros: /triton_detect"
         for kv in s.values}), 20)
    good = [msg for _, msg in bag_messages(sample_bag, COMPRESSED_TOPIC, 2, every=20)]
    publisher.publish(good[0])
    assert wait_until(lambda: stamp_to_ns(good[0].header.stamp) in collector.by_stamp, 60), \
        node.output()
    before = peak_rss_mb(node.pid)

    bombs = [CompressedImage(format="png", data=png_bomb(16000, 16000)),
             CompressedImage(format="jpeg", data=cv2.imencode(
                 ".jpg", np.zeros((16000, 16000), np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 10])[1]
                 .tobytes())]
    for index, bomb in enumerate(bombs):
        bomb.header.frame_id = f"bomb{index}"
        bomb.header.stamp.sec = 1000 + index
        publisher.publish(bomb)
        time.sleep(0.5)
    publisher.publish(good[1])
    assert wait_until(lambda: stamp_to_ns(good[1].header.stamp) in collector.by_stamp, 90), \
        node.output()[-3000:]
    after = peak_rss_mb(node.pid)
    assert after - before < 150, f"peak RSS {before:.0f} -> {after:.0f} MB: a bomb was decoded"
    assert wait_until(lambda: diag.get("frames_dropped_bad_input") == "2", 30), diag
    assert not {1000 * 10**9, 1001 * 10**9} & set(collector.by_stamp), "a bomb was published"
    log = node.output()
    assert "16000x16000" in log or "256000000 pixels" in log, log[-3000:]
    assert "over max_image_pixels" in log and node.alive()


# -- every distinct problem is logged (issue 18 item 6) --------------------------------------------


def test_each_kind_of_bad_frame_is_logged_once_per_throttle_period(triton_server, sample_bag,
                                                                   start_node, ros_node):
    """13 different bad frames within ~2 s: each is logged (before, errors were throttled by
    their first 20 characters and 5 of 13 were counted but never logged); the same 13 sent
    again right after are counted but not logged again within the 2 s throttle period."""
    import re
    import struct
    node, collector, publisher = start_and_connect(
        start_node, ros_node, node_params(triton_server, subscribe_compressed=True,
                                          diagnostics_period_s=0.5))
    # start_and_connect remapped "image" only: the compressed subscription is /image/compressed
    compressed = ros_node.create_publisher(CompressedImage, "/image/compressed", RELIABLE)
    assert wait_matched(ros_node, [compressed], timeout_s=60), node.output()
    diag = {}
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.update(
        {kv.key: kv.value for s in m.status if s.name == "triton_ros: /triton_detect"
         for kv in s.values}), 20)
    import cv2
    png_bytes = cv2.imencode(".png", np.zeros((4, 4), np.uint16))[1].tobytes()
    float_tiff = cv2.imencode(".tiff", np.zeros((8, 8, 3), np.float32))[1].tobytes()
    bad = [  # (message, the words its log line must carry)
        (Image(encoding="nv24", height=2, width=2, step=6, data=b"\0" * 12), "'nv24'"),
        (Image(encoding="bgr16", height=2, width=2, step=12, data=b"\0" * 24), "'bgr16'"),
        (Image(encoding="64FC1", height=2, width=2, step=16, data=b"\0" * 32), "'64FC1'"),
        (Image(encoding="", height=2, width=2, step=6, data=b"\0" * 12), "encoding ''"),
        (Image(encoding="32FC1", height=2, width=2, step=8, data=b"\0" * 16), "'32FC1'"),
        (Image(encoding="bgr8", height=10, width=10, step=30, data=b"\0" * 20), "data has 20"),
        (Image(encoding="bgr8", height=2, width=4, step=6, data=b"\0" * 12), "step 6 <"),
        (Image(encoding="bgr8", height=0, width=0, step=0, data=b""), "empty image"),
        (Image(encoding="mono8", height=60000, width=60000, step=60000, data=b"\0"),
         "over max_image_pixels"),
        (Image(encoding="yuv422", height=2, width=3, step=6, data=b"\0" * 12), "error"),
        (CompressedImage(format="16UC1; compressedDepth png",
                         data=struct.pack("<iff", 0, 0.0, 0.0) + png_bytes), "compressedDepth"),
        (CompressedImage(format="jpeg", data=b"\xff\xd8 not really a jpeg"), "cannot decode"),
        (CompressedImage(format="tiff", data=float_tiff), "float32"),
    ]
    assert len(bad) == 13
    for round_ in ("a", "b"):   # the second round: the same problems again at once
        for index, (msg, _) in enumerate(bad):
            msg.header.frame_id = f"{round_}{index}"
            (compressed if isinstance(msg, CompressedImage) else publisher).publish(msg)
    (raw, good), = bag_messages(sample_bag, IMAGE_TOPIC, 1)
    publisher.publish(raw)
    assert wait_until(lambda: stamp_to_ns(good.header.stamp) in collector.by_stamp, 60), \
        node.output()[-3000:]
    assert wait_until(lambda: diag.get("frames_dropped_bad_input") == "26", 30), diag
    log = node.output()

    def logged(frame_id):  # ROS log times (s) of the lines about this frame
        return [float(m.group(1)) for m in re.finditer(
            rf"\[ERROR\] \[([0-9.]+)\] \[triton_detect\]: bad frame from '{frame_id}'", log)]
    for index, (_, words) in enumerate(bad):
        first = logged(f"a{index}")
        assert len(first) == 1, (index, words, log[-4000:])
        line = next(ln for ln in log.splitlines() if f"bad frame from 'a{index}'" in ln)
        assert words in line, (words, line)
        # Repeats are throttled per kind: logged again only once 2 s have passed.
        assert all(t - first[0] >= 2.0 for t in logged(f"b{index}")), (index, log[-4000:])
    assert node.alive()


# -- frames that never reached the node (issue 18 item 12) -----------------------------------------


def test_frames_skipped_in_the_publishers_sequence_are_counted(triton_server, start_node,
                                                               ros_node):
    """A burst of small frames over best-effort into a 1-deep subscription queue: most are
    overwritten before the node takes them, which DDS does not report as lost. The publisher's
    sequence numbers show them: received (incl. the gaps) == what the publisher sent."""
    from rclpy.qos import HistoryPolicy
    node = start_node(DETECT, {"server_url": triton_server.grpc_url,
                               "image_reliability": "best_effort", "image_qos_depth": 1,
                               "queue_size": 1, "diagnostics_period_s": 0.5,
                               "request_timeout_s": 30.0},
                      remaps={"image": "/gap/image", "detections": "/gap/dets"})
    publisher = ros_node.create_publisher(Image, "/gap/image", QoSProfile(
        depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT))
    dets = Collector(ros_node, "/gap/dets")
    diag = {}
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diag.update(
        {kv.key: kv.value for s in m.status if s.name == "triton_ros: /triton_detect"
         for kv in s.values}), 20)
    node.wait_for_output("ready:", timeout_s=90)
    assert wait_matched(ros_node, [publisher], [dets.subscription], 60), node.output()
    pixels = np.random.default_rng(3).integers(0, 256, (48, 64, 3), np.uint8).tobytes()
    sent = 0

    def frame():
        nonlocal sent
        msg = Image(encoding="bgr8", height=48, width=64, step=192, data=pixels)
        msg.header.stamp.sec, msg.header.frame_id = 100 + sent, "gap"
        sent += 1
        return msg
    # Frames one by one until one is answered: the first frame taken is this publisher's
    # baseline (what it sent before that is invisible to the node, see README).
    while not dets.by_stamp:
        assert sent < 60, ("no frame answered", diag, node.output()[-2000:])
        publisher.publish(frame())
        wait_until(lambda: dets.by_stamp, 0.5)
    invisible = min(dets.by_stamp) // 10**9 - 100  # frames sent before the first one taken
    for _ in range(300):  # as fast as rclpy publishes: far faster than one queue slot drains
        publisher.publish(frame())
    for _ in range(5):    # a slow tail, so the burst's last frames are followed by a taken one
        time.sleep(0.3)
        publisher.publish(frame())

    def received():
        return int(diag.get("frames_received", 0))
    assert wait_until(lambda: received() >= sent - invisible
                      and diag.get("frames_pending") == "0", 60), (diag, sent, invisible)
    time.sleep(1.0)  # a last report
    assert int(diag["frames_dropped_dds_gap"]) > 0, diag
    print(f"\nsent {sent - invisible} after the baseline, dds_gap "
          f"{diag['frames_dropped_dds_gap']}, dds_lost_reported "
          f"{diag.get('camera[].dds_lost_reported', '0')}")
    assert received() == sent - invisible, (diag, sent, invisible)
    dropped = sum(int(v) for k, v in diag.items() if k.startswith("frames_dropped_"))
    assert received() == int(diag["frames_published"]) + dropped
    assert node.alive()
