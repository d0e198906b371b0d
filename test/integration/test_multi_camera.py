"""Several cameras into one detect node: batched requests, per-camera topics and headers."""
import copy
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from helpers import (COMPRESSED_TOPIC, IMAGE_TOPIC, bag_messages, unmatched, wait_matched,
                     wait_until)
from triton_ros.ros.messages import stamp_to_ns

DETECT = "triton_ros.ros.detect_node"
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
BEST_EFFORT = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)


class PerCamera:
    """Collects (frame_id, stamp_ns) of every array on each camera's detections topic."""

    def __init__(self, node, cameras, prefix):
        self.got = {camera: [] for camera in cameras}
        self.lock = threading.Lock()
        self.subscriptions = [
            node.create_subscription(Detection2DArray, f"{prefix}/{camera}/detections",
                                     lambda m, c=camera: self._on(c, m), RELIABLE)
            for camera in cameras]

    def _on(self, camera, msg):
        with self.lock:
            self.got[camera].append((msg.header.frame_id, stamp_to_ns(msg.header.stamp),
                                     len(msg.detections)))


def restamped(msg, camera, index):
    """A copy of a real frame as camera ``camera``'s ``index``-th image (own frame_id/stamp)."""
    out = copy.copy(msg)
    out.header = copy.deepcopy(msg.header)
    out.header.frame_id = f"{camera}_optical_frame"
    out.header.stamp.sec = 1_800_000_000 + index
    out.header.stamp.nanosec = hash(camera) % 1000 * 1000
    return out


def latest_diagnostics(statuses):
    for status in reversed(statuses):
        if "/multi/triton_detect" in status.name:
            return {kv.key: kv.value for kv in status.values}
    return {}


def test_four_cameras_at_different_rates_are_batched(triton_server, sample_bag, start_node,
                                                     ros_node):
    cameras = ["cam0", "cam1", "cam2", "cam3:compressed"]
    names = [c.split(":")[0] for c in cameras]
    node = start_node(DETECT, {"server_url": triton_server.grpc_url, "cameras": cameras,
                               "max_delay_ms": 30.0, "queue_size": 2,
                               "image_reliability": "reliable",
                               "request_timeout_s": 30.0}, namespace="/multi")
    results = PerCamera(ros_node, names, "/multi")
    statuses = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: statuses.extend(m.status), 10)
    publishers = {c: ros_node.create_publisher(Image, f"/multi/{c}/image", RELIABLE)
                  for c in names[:3]}
    publishers["cam3"] = ros_node.create_publisher(CompressedImage,
                                                   "/multi/cam3/image/compressed", RELIABLE)
    node.wait_for_output("ready: 4 camera(s)", timeout_s=90)
    endpoints = {"publishers": list(publishers.values()), "subscriptions": results.subscriptions}
    assert wait_matched(ros_node, **endpoints, timeout_s=60), unmatched(ros_node, **endpoints)

    raw_frames = [m for _, m in bag_messages(sample_bag, IMAGE_TOPIC, 12, every=5)]
    jpeg_frames = [m for _, m in bag_messages(sample_bag, COMPRESSED_TOPIC, 12, every=5)]
    periods = {"cam0": 1 / 20, "cam1": 1 / 10, "cam2": 1 / 5, "cam3": 1 / 8}
    sent = {c: set() for c in names}
    next_due = {c: 0.0 for c in names}
    count = {c: 0 for c in names}
    start = time.monotonic()
    while time.monotonic() - start < 4.0:
        now = time.monotonic() - start
        for camera in names:
            if now >= next_due[camera]:
                frames = jpeg_frames if camera == "cam3" else raw_frames
                msg = restamped(frames[count[camera] % len(frames)], camera, count[camera])
                publishers[camera].publish(msg)
                sent[camera].add(stamp_to_ns(msg.header.stamp))
                count[camera] += 1
                next_due[camera] += periods[camera]
        time.sleep(0.005)

    def accounted():
        values = latest_diagnostics(statuses)
        done = sum(int(v) for k, v in values.items()
                   if k == "frames_published" or k.startswith("frames_dropped_"))
        return done >= sum(count.values())
    assert wait_until(accounted, 60), (count, latest_diagnostics(statuses), node.output()[-2000:])
    values = latest_diagnostics(statuses)

    for camera in names:
        got = results.got[camera]
        assert got, f"no detections for {camera}"
        for frame_id, stamp, _ in got:
            assert frame_id == f"{camera}_optical_frame"      # its own header ...
            assert stamp in sent[camera]                       # ... and one of its own stamps
        assert sum(n for _, _, n in got) >= len(got)           # pedestrians in every frame
        published = int(values.get(f"camera[{camera}].published", 0))
        dropped = sum(int(v) for k, v in values.items()
                      if k.startswith(f"camera[{camera}].dropped_"))
        assert published == len(got)
        assert published + dropped == int(values[f"camera[{camera}].received"]) == count[camera]

    sizes = {int(k): int(v) for k, v in (kv.split(":") for kv in values["batch_sizes"].split())}
    assert max(sizes) > 1, sizes                               # requests really carried batches
    assert int(values["frames_inferred"]) > int(values["requests"])
    assert node.alive()


def test_synchronized_stereo_pairs(triton_server, sample_bag, start_node, ros_node):
    node = start_node(DETECT, {"server_url": triton_server.grpc_url, "cameras": ["left", "right"],
                               "sync_tolerance_ms": 10.0, "queue_size": 4,
                               "image_reliability": "reliable",
                               "request_timeout_s": 30.0}, namespace="/stereo")
    results = PerCamera(ros_node, ["left", "right"], "/stereo")
    statuses = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: statuses.extend(m.status), 10)
    pubs = {c: ros_node.create_publisher(Image, f"/stereo/{c}/image", RELIABLE)
            for c in ("left", "right")}
    node.wait_for_output("ready: 2 camera(s)", timeout_s=90)
    endpoints = {"publishers": list(pubs.values()), "subscriptions": results.subscriptions}
    assert wait_matched(ros_node, **endpoints, timeout_s=60), unmatched(ros_node, **endpoints)
    frames = [m for _, m in bag_messages(sample_bag, IMAGE_TOPIC, 4, every=10)]
    plan = [("left", 0), ("right", 0), ("left", 1),  # left 1 never gets a partner
            ("left", 2), ("right", 2), ("left", 3), ("right", 3)]
    for camera, index in plan:
        msg = restamped(frames[index], "stereo", index)  # both eyes share the stamp
        msg.header.frame_id = f"{camera}_optical_frame"
        pubs[camera].publish(msg)
        time.sleep(0.1)
    assert wait_until(lambda: len(results.got["left"]) == 3 and len(results.got["right"]) == 3,
                      60), (results.got, node.output()[-2000:])
    left = sorted(s for _, s, _ in results.got["left"])
    right = sorted(s for _, s, _ in results.got["right"])
    assert left == right  # every published pair has the same stamp on both cameras
    unsynced_stamp = stamp_to_ns(restamped(frames[1], "stereo", 1).header.stamp)
    assert unsynced_stamp not in left

    def stereo_counters():
        for status in reversed(statuses):
            if "/stereo/triton_detect" in status.name:
                return {kv.key: kv.value for kv in status.values}
        return {}
    # The unpaired left frame is reported, and every frame is accounted for. Diagnostics are
    # periodic: wait for a report that already counts every frame, not just the first change.
    expected = {"camera[left].dropped_unsynced": "1", "frames_received": "7",
                "frames_published": "6", "frames_dropped_unsynced": "1"}
    assert wait_until(lambda: all(stereo_counters().get(k) == v for k, v in expected.items()),
                      30), stereo_counters()


def test_debug_image_and_qos_mismatch_hint(triton_server, sample_bag, start_node, ros_node):
    node = start_node(DETECT, {"server_url": triton_server.grpc_url, "cameras": ["front"],
                               "image_reliability": "reliable",
                               "request_timeout_s": 30.0}, namespace="/dbg")
    debug = []
    debug_sub = ros_node.create_subscription(Image, "/dbg/front/debug_image", debug.append, 5)
    best_effort_camera = ros_node.create_publisher(Image, "/dbg/front/image", BEST_EFFORT)
    node.wait_for_output("ready: 1 camera(s)", timeout_s=90)
    # A best-effort camera cannot feed a reliable subscription: the node says so, with a hint.
    node.wait_for_output("incompatible", timeout_s=30)
    assert "image_reliability:=best_effort" in node.output()
    ros_node.destroy_publisher(best_effort_camera)

    camera = ros_node.create_publisher(Image, "/dbg/front/image", RELIABLE)
    endpoints = {"publishers": [camera], "subscriptions": [debug_sub]}
    assert wait_matched(ros_node, **endpoints, timeout_s=60), unmatched(ros_node, **endpoints)
    (_, frame), = bag_messages(sample_bag, IMAGE_TOPIC, 1)
    for _ in range(20):
        camera.publish(frame)
        if wait_until(lambda: debug, 1.0):
            break
    assert debug, node.output()
    image = debug[0]
    assert (image.width, image.height, image.encoding) == (frame.width, frame.height, "bgr8")
    assert image.header.stamp == frame.header.stamp
    assert bytes(image.data) != bytes(frame.data)  # boxes were drawn


def test_every_report_adds_up_mid_stream(triton_server, sample_bag, start_node, ros_node):
    """received == published + dropped + pending in every /diagnostics report while frames
    flow (issue 18 item 7: there was no pending, so the sum could only be checked at rest)."""
    names = ["a", "b"]
    node = start_node(DETECT, {"server_url": triton_server.grpc_url, "cameras": names,
                               "max_delay_ms": 20.0, "queue_size": 6,
                               "image_reliability": "reliable", "diagnostics_period_s": 0.1,
                               "request_timeout_s": 30.0}, namespace="/acct")
    results = PerCamera(ros_node, names, "/acct")
    reports, lock = [], threading.Lock()

    def on_diag(msg):
        for status in msg.status:
            if "/acct/triton_detect" in status.name:
                with lock:
                    reports.append({kv.key: kv.value for kv in status.values})
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 50)
    pubs = {c: ros_node.create_publisher(Image, f"/acct/{c}/image", RELIABLE) for c in names}
    node.wait_for_output("ready: 2 camera(s)", timeout_s=90)
    endpoints = {"publishers": list(pubs.values()), "subscriptions": results.subscriptions}
    assert wait_matched(ros_node, **endpoints, timeout_s=60), unmatched(ros_node, **endpoints)
    frames = [m for _, m in bag_messages(sample_bag, IMAGE_TOPIC, 6, every=7)]
    with lock:
        reports.clear()
    sent = 0
    start = time.monotonic()
    while time.monotonic() - start < 5.0:  # 2 x 30 fps: more than SSD keeps up with here
        for camera in names:
            pubs[camera].publish(restamped(frames[sent % len(frames)], camera, sent))
        sent += 1
        time.sleep(1 / 30)
    with lock:
        during = list(reports)
    assert len(during) >= 10, f"only {len(during)} reports in 5 s"

    def adds_up(values, prefix):  # a camera's keys appear with its first count
        dropped = sum(int(v) for k, v in values.items()
                      if k.startswith(prefix + "dropped_"))
        count = {key: int(values.get(prefix + key, 0))
                 for key in ("received", "published", "pending")}
        return count["received"] == count["published"] + dropped + count["pending"]
    for values in during:
        assert adds_up(values, "frames_"), values
        for camera in names:
            assert adds_up(values, f"camera[{camera}]."), values
    assert any(int(v["frames_pending"]) > 0 for v in during), "never caught a frame pending"
    assert any(int(v["frames_published"]) > 0 for v in during)
    # At rest: nothing pending, every frame sent counted.
    assert wait_until(lambda: reports and reports[-1]["frames_pending"] == "0" and int(
        reports[-1]["frames_received"]) == 2 * sent, 60), (sent, reports[-1:])
    assert adds_up(reports[-1], "frames_")
    assert node.alive()
