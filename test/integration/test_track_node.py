"""track_node on real DDS and a real tritonserver: one tracker sequence per robot namespace.

Robots publish vision_msgs/Detection2DArray built from real frames (SSD detections of the sample
bag, ``sequence_data.py``) or get them from a real detect_node. Each robot's track node keeps its
stream in its own Triton sequence; the track ids must equal the tracker's offline reference for
that robot's stream alone. Server-side evidence of ENDs comes from the tracker model's log lines
("sequence N ended after K frame(s)") and from the server refusing a continuation without START.
"""
import threading
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import (BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesis,
                             ObjectHypothesisWithPose)

from triton_ros.ros.messages import stamp_to_ns
from triton_ros.ros.track_node import detections_to_tensors
from triton_ros.tools.local_server import LocalTritonServer, free_ports

from helpers import IMAGE_TOPIC, bag_messages, unmatched, wait_matched, wait_until
from sequence_data import (Frame, continuation_rejected, kill_server_hard, model_repository,
                           reference_track_ids, robot_streams)

TRACK = "triton_ros.ros.track_node"
DETECT = "triton_ros.ros.detect_node"
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def frame_to_msg(frame: Frame, frame_id="camera_optical_frame") -> Detection2DArray:
    array = Detection2DArray()
    array.header.stamp.sec, array.header.stamp.nanosec = divmod(frame.stamp_ns, 1_000_000_000)
    array.header.frame_id = frame_id
    for (x1, y1, x2, y2), score, label in zip(frame.boxes.tolist(), frame.scores.tolist(),
                                              frame.labels):
        bbox = BoundingBox2D(size_x=x2 - x1, size_y=y2 - y1)
        bbox.center.position.x, bbox.center.position.y = (x1 + x2) / 2, (y1 + y2) / 2
        hypothesis = ObjectHypothesisWithPose(
            hypothesis=ObjectHypothesis(class_id=label, score=score))
        array.detections.append(Detection2D(header=array.header, results=[hypothesis],
                                            bbox=bbox))
    return array


def msg_frame(array) -> Frame:
    """A Detection2DArray as the tracker sees it (what the node sends)."""
    t = detections_to_tensors(array)
    labels = tuple(max(d.results, key=lambda r: r.hypothesis.score).hypothesis.class_id
                   for d in array.detections)
    return Frame(stamp_to_ns(array.header.stamp), t["boxes"], t["scores"], labels)


def track_ids(array) -> list[int]:
    return [int(d.id) if d.id else 0 for d in array.detections]


class Robot:
    """One robot namespace: publishes detections, collects tracked_detections by stamp."""

    def __init__(self, probe, namespace):
        self.namespace, self.probe = namespace, probe
        self.tracked, self.order, self.lock = {}, [], threading.Lock()
        self.publisher = probe.create_publisher(Detection2DArray, f"{namespace}/detections",
                                                RELIABLE)
        self.subscription = probe.create_subscription(
            Detection2DArray, f"{namespace}/tracked_detections", self._on, RELIABLE)

    def _on(self, msg):
        with self.lock:
            self.tracked[stamp_to_ns(msg.header.stamp)] = msg
            self.order.append(stamp_to_ns(msg.header.stamp))

    def has(self, frames) -> bool:
        with self.lock:
            return all(f.stamp_ns in self.tracked for f in frames)

    def ids(self, frames) -> list[list[int]]:
        with self.lock:
            return [track_ids(self.tracked[f.stamp_ns]) for f in frames]


class Diagnostics:
    """The latest /diagnostics status of every node, by status name."""

    def __init__(self, probe):
        self.latest, self.stamps, self.lock = {}, {}, threading.Lock()
        probe.create_subscription(DiagnosticArray, "/diagnostics", self._on, 50)

    def _on(self, msg):
        with self.lock:
            for status in msg.status:
                self.latest[status.name] = status
                self.stamps[status.name] = stamp_to_ns(msg.header.stamp)

    def stamp_of(self, node_name) -> int:
        """When the node published its latest status (its clock, ns; 0 = none yet)."""
        with self.lock:
            return self.stamps.get(f"triton_ros: {node_name}", 0)

    def of(self, node_name):
        with self.lock:
            status = self.latest.get(f"triton_ros: {node_name}")
        if status is None:
            return None, {}
        return status, {kv.key: kv.value for kv in status.values}


def start_tracker(start_node, url, namespace, robot_id, **extra):
    params = {"server_url": url, "robot_id": robot_id, "request_timeout_s": 10.0,
              "queue_size": 100, **extra}
    return start_node(TRACK, params, namespace=namespace)


def wait_active(node, robot, timeout_s=90.0):
    """The node is active and DDS has matched its input and output with the robot's probe."""
    node.wait_for_output("active:", timeout_s=timeout_s)
    endpoints = {"publishers": [robot.publisher], "subscriptions": [robot.subscription]}
    assert wait_matched(robot.probe, **endpoints, timeout_s=30), (
        unmatched(robot.probe, **endpoints), node.output()[-2000:])


def publish_interleaved(robots, streams, steps, pause_s=0.03):
    for step in steps:
        for robot, frames in zip(robots, streams):
            robot.publisher.publish(frame_to_msg(frames[step]))
            time.sleep(pause_s)


def call_lifecycle(probe, node_name, transition_id) -> bool:
    client = probe.create_client(ChangeState, f"{node_name}/change_state")
    assert client.wait_for_service(timeout_sec=30), f"no lifecycle service on {node_name}"
    future = client.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
    assert wait_until(future.done, 30)
    return future.result().success


@pytest.fixture(scope="module")
def streams(sample_bag):
    return robot_streams(sample_bag)


def test_detect_node_to_track_node_publishes_persistent_track_ids(
        triton_server, sample_bag, start_node, ros_node):
    detect = start_node(DETECT, {"server_url": triton_server.grpc_url,
                                 "image_reliability": "reliable", "queue_size": 64,
                                 "image_qos_depth": 64, "request_timeout_s": 30.0},
                      namespace="/robot1")
    track = start_tracker(start_node, triton_server.grpc_url, "/robot1", 1)
    robot = Robot(ros_node, "/robot1")
    diagnostics = Diagnostics(ros_node)
    arrays = {}   # every detection array detect_node published, by stamp
    detections_sub = ros_node.create_subscription(
        Detection2DArray, "/robot1/detections",
        lambda m: arrays.__setitem__(stamp_to_ns(m.header.stamp), m), RELIABLE)
    images = ros_node.create_publisher(Image, "/robot1/image", RELIABLE)
    # Every endpoint the probe publishes to or reads from must be matched before the first image:
    # the probe's own /robot1/detections endpoints satisfy a plain count, so match per node.
    wait_active(track, robot)
    endpoints = {"publishers": [images], "subscriptions": [detections_sub]}
    assert wait_matched(ros_node, **endpoints, timeout_s=90), (
        unmatched(ros_node, **endpoints), detect.output()[-2000:])

    def detect_counts():
        """detect_node's (received, handled = published or dropped, published) frame counts."""
        _, values = diagnostics.of("/robot1/triton_detect")
        handled = sum(int(v) for k, v in values.items() if k == "frames_published" or (
            k.startswith("frames_dropped_") and k != "frames_dropped_dds_lost"))
        return (int(values.get("frames_received", -1)), handled,
                int(values.get("frames_published", 0)))

    def detect_idle(since_ns):
        """detect_node reported after ``since_ns`` that it handled every image it received."""
        received, handled, _ = detect_counts()
        return diagnostics.stamp_of("/robot1/triton_detect") > since_ns and received == handled

    # The probe sees only its own side of each DDS match, and nothing of detect_node -> track_node
    # (two other processes): messages published before a match are lost. So prove the whole chain
    # first with a priming frame (not one under test), re-sent until both its detections and its
    # tracked array reach the probe; then restart the tracker's sequence (deactivate ENDs it, the
    # next frame STARTs a fresh one) so that the frames under test are tracked from a clean state.
    frames_in_bag = bag_messages(sample_bag, IMAGE_TOPIC, 60)
    messages = frames_in_bag[:12]                   # 12 consecutive frames, 10 fps
    priming_raw, priming_msg = frames_in_bag[-1]
    priming = stamp_to_ns(priming_msg.header.stamp)

    def chain_works():
        return priming in robot.tracked and priming in arrays
    primes_sent, deadline = 0, time.monotonic() + 120
    while not chain_works() and time.monotonic() < deadline:
        images.publish(priming_raw)
        primes_sent += 1
        wait_until(chain_works, 10.0)
    assert chain_works(), (primes_sent, diagnostics.of("/robot1/triton_detect"),
                           diagnostics.of("/robot1/triton_track"), track.output()[-2000:])
    primed_at = time.time_ns()   # detect_node counts a frame right after publishing its array
    assert wait_until(lambda: detect_idle(primed_at), 60), detect_counts()
    received_before, _, published_before = detect_counts()
    assert call_lifecycle(ros_node, "/robot1/triton_track", Transition.TRANSITION_DEACTIVATE)
    assert call_lifecycle(ros_node, "/robot1/triton_track", Transition.TRANSITION_ACTIVATE)
    with robot.lock:
        robot.tracked.clear()
        robot.order.clear()

    for raw, _ in messages:
        images.publish(raw)
        time.sleep(0.1)                             # the camera's pace, not a wait
    under_test = {stamp_to_ns(msg.header.stamp) for _, msg in messages}

    # detect_node may drop stale frames under load (newest wins): track what it published,
    # once it has handled all 12 images and all its arrays have arrived.
    def published():
        return {s: m for s, m in list(arrays.items()) if s in under_test}

    def detect_done():
        received, _, count = detect_counts()
        return (detect_idle(0) and received - received_before == len(messages)
                and len(published()) == count - published_before)
    assert wait_until(detect_done, 120), (detect_counts(), received_before, published_before,
                                          len(published()), detect.output()[-2000:])
    detections = published()
    assert len(detections) >= 6, f"{len(detections)} detection arrays:\n{detect.output()}"
    assert wait_until(lambda: set(detections) <= set(robot.tracked), 60), (
        f"{len(robot.tracked)}/{len(detections)} tracked; track log:\n{track.output()[-2000:]}",
        diagnostics.of("/robot1/triton_track"))
    stamps = list(robot.order)   # the order the tracker saw them in
    assert sorted(stamps) == sorted(detections), "each array is tracked once, no priming frame"
    assert wait_until(lambda: diagnostics.of("/robot1/triton_track")[1].get(
        "sequences_started") == "2", 15), diagnostics.of("/robot1/triton_track")

    frames = []
    for stamp in stamps:
        tracked, source = robot.tracked[stamp], detections[stamp]
        assert tracked.header == source.header
        assert len(tracked.detections) == len(source.detections) > 0
        for ours, theirs in zip(tracked.detections, source.detections):
            assert ours.bbox == theirs.bbox and ours.results == theirs.results
            assert ours.id.isdigit(), "every detection gets a track id"
        frames.append(msg_frame(source))
    got = [track_ids(robot.tracked[s]) for s in stamps]
    assert got == reference_track_ids(frames)
    longest = max(sum(t in ids for ids in got) for t in set(sum(got, [])))
    assert longest >= 5, f"pedestrians keep their ids across frames: {got}"
    assert track.alive() and detect.alive()


def test_three_robots_track_independently_stop_and_deactivate(
        triton_server, streams, start_node, ros_node):
    url = triton_server.grpc_url
    names = ["/robot1", "/robot2", "/robot3"]
    robots = [Robot(ros_node, ns) for ns in names]
    diagnostics = Diagnostics(ros_node)
    nodes = [start_tracker(start_node, url, ns, i + 1) for i, ns in enumerate(names)]
    for node, robot in zip(nodes, robots):
        wait_active(node, robot)

    publish_interleaved(robots, streams, range(16))
    assert wait_until(lambda: all(r.has(s[:16]) for r, s in zip(robots, streams)), 60), [
        len(r.tracked) for r in robots]
    for robot, frames in zip(robots, streams):
        assert robot.ids(frames[:16]) == reference_track_ids(frames[:16]), robot.namespace
        for frame in frames[:16]:
            assert robot.tracked[frame.stamp_ns].header == frame_to_msg(frame).header

    def reported(index, key, value):
        _, values = diagnostics.of(f"{names[index]}/triton_track")
        return values.get(key) == value
    for index in range(3):
        assert wait_until(lambda: reported(index, "frames_published", "16"), 15)
        status, values = diagnostics.of(f"{names[index]}/triton_track")
        assert values["correlation_id"] == str(256 * (index + 1))
        assert values["stream_key"] == f"{names[index]}|{names[index]}/detections"
        assert values["sequences_started"] == "1" and values["state_losses"] == "0"
        assert values["collisions"] == "" and status.level == DiagnosticStatus.OK

    # Robot 2 shuts down: its sequence is ended on the server, the others carry on.
    assert nodes[1].stop() == 0
    assert "ended: node shutdown" in nodes[1].log_path.read_text()
    server_log = triton_server.log_path
    assert wait_until(lambda: "sequence 512 ended after 16 frame(s)" in server_log.read_text(),
                      15), server_log.read_text()[-2000:]
    assert "must specify the START flag" in continuation_rejected(url, 512)

    publish_interleaved([robots[0], robots[2]], [streams[0], streams[2]], range(16, 20))
    assert wait_until(lambda: robots[0].has(streams[0][:20]) and robots[2].has(streams[2][:20]),
                      60)
    for index in (0, 2):
        assert robots[index].ids(streams[index][:20]) == reference_track_ids(streams[index][:20])

    # Robot 3 is deactivated (lifecycle): END; while inactive its frames are dropped; after
    # activation its next frame starts a new sequence with fresh tracks.
    assert call_lifecycle(ros_node, "/robot3/triton_track", Transition.TRANSITION_DEACTIVATE)
    assert wait_until(lambda: "sequence 768 ended after 20 frame(s)" in server_log.read_text(),
                      15)
    robots[2].publisher.publish(frame_to_msg(streams[2][20]))
    assert wait_until(lambda: reported(2, "frames_dropped_inactive", "1"), 15)
    assert reported(2, "lifecycle_active", "false")
    assert call_lifecycle(ros_node, "/robot3/triton_track", Transition.TRANSITION_ACTIVATE)
    publish_interleaved([robots[2]], [streams[2]], range(21, 24))
    assert wait_until(lambda: robots[2].has(streams[2][21:24]), 60)
    assert robots[2].ids(streams[2][21:24]) == reference_track_ids(streams[2][21:24])
    assert wait_until(lambda: reported(2, "sequences_started", "2"), 15)
    assert reported(2, "sequences_ended", "1") and reported(2, "state_losses", "0")
    assert nodes[0].alive() and nodes[2].alive()


def test_nodes_survive_a_server_restart_and_report_the_state_loss(
        tmp_path, streams, start_node, ros_node):
    ports = dict(zip(("http_port", "grpc_port", "metrics_port"), free_ports(3)))
    log = tmp_path / "server.log"
    server = LocalTritonServer(model_repository(tmp_path / "repo", models=("simple_tracker",)),
                               log_path=log, **ports)
    server.start(timeout_s=120)
    try:
        names = ["/robot1", "/robot2", "/robot3"]
        robots = [Robot(ros_node, ns) for ns in names]
        diagnostics = Diagnostics(ros_node)
        nodes = [start_tracker(start_node, server.grpc_url, ns, i + 1, request_timeout_s=3.0)
                 for i, ns in enumerate(names)]
        for node, robot in zip(nodes, robots):
            wait_active(node, robot)
        publish_interleaved(robots, streams, range(6))
        assert wait_until(lambda: all(r.has(s[:6]) for r, s in zip(robots, streams)), 60)

        kill_server_hard(server)
        publish_interleaved(robots, streams, range(6, 9))

        def failed(index):
            _, values = diagnostics.of(f"{names[index]}/triton_track")
            return int(values.get("frames_failed", "0")) >= 1
        assert wait_until(lambda: all(failed(i) for i in range(3)), 30), [
            n.output()[-500:] for n in nodes]

        server.start(timeout_s=120)
        # Robots keep streaming; the first frames may still fail while gRPC reconnects.
        step = 9
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            publish_interleaved(robots, streams, [step], pause_s=0.05)
            step += 1
            time.sleep(0.4)
            tracked_after = [[f for f in s[9:] if f.stamp_ns in r.tracked]
                             for r, s in zip(robots, streams)]
            if step >= len(streams[0]) or all(len(t) >= 6 for t in tracked_after):
                break
        assert wait_until(lambda: all(r.has(s[step - 1:step]) for r, s in zip(robots, streams)),
                          30)
        tracked_after = [[f for f in s[9:] if f.stamp_ns in r.tracked]
                         for r, s in zip(robots, streams)]
        assert all(len(t) >= 5 for t in tracked_after), [len(t) for t in tracked_after]
    finally:
        server.cleanup()

    for index, (node, robot) in enumerate(zip(nodes, robots)):
        assert node.alive(), node.output()[-2000:]
        # Fresh server state: ids as for a new stream made of the frames tracked after the
        # restart (frames sent while the server was away never reached it).
        after = tracked_after[index]
        assert robot.ids(after) == reference_track_ids(after), names[index]
        status, values = diagnostics.of(f"{names[index]}/triton_track")
        assert wait_until(lambda: diagnostics.of(f"{names[index]}/triton_track")[1]
                          .get("state_losses") == "1", 15), values
        status, values = diagnostics.of(f"{names[index]}/triton_track")
        assert status.level == DiagnosticStatus.WARN and "state loss" in status.message
        assert "server restarted or connection lost" in values["last_loss_reason"]
        assert values["sequences_started"] == "2"
        output = node.output()
        assert "state lost" in output and "restart after state loss" in output


def test_correlation_id_collision_is_reported(triton_server, start_node, ros_node):
    url = triton_server.grpc_url
    diagnostics = Diagnostics(ros_node)
    clashing = [start_tracker(start_node, url, ns, 7) for ns in ("/robotA", "/robotB")]
    fine = start_tracker(start_node, url, "/robotC", 8)
    for node in clashing + [fine]:
        node.wait_for_output("active:", timeout_s=90)

    def level(ns):
        status, _ = diagnostics.of(f"{ns}/triton_track")
        return status.level if status is not None else None
    assert wait_until(lambda: level("/robotA") == level("/robotB") == DiagnosticStatus.ERROR,
                      30), [diagnostics.of(f"{ns}/triton_track")[0] for ns in ("/robotA",
                                                                             "/robotB")]
    status, values = diagnostics.of("/robotA/triton_track")
    assert "correlation id collision: 1792" in status.message
    assert "/robotB/triton_track" in values["collisions"]
    for node in clashing:
        assert wait_until(lambda: "correlation id collision" in node.output(), 10)
    assert wait_until(lambda: level("/robotC") == DiagnosticStatus.OK, 15)


@pytest.mark.parametrize("params,message", [
    ({"robot_id": -1}, "robot_id"),
    ({"correlation_id_range": [5]}, "must be [first, last]"),
    ({"protocol": "udp"}, "protocol='udp' is not one of"),
    ({"stream_index": 300}, "stream_index"),
])
def test_bad_configuration_exits_with_clear_error(start_node, params, message):
    node = start_node(TRACK, params)
    assert node.process.wait(60) == 2
    assert message in node.output()


def test_track_node_started_before_its_server_keeps_running_says_why_and_connects(
        tmp_path, streams, start_node, ros_node):
    """Issue 18 (8): bringup must not depend on start order. The node starts with no server
    at its url: it stays up (was: exit 2), says why on the log and /diagnostics, counts what
    arrives meanwhile; the server started, tracked detections arrive with the reference ids."""
    ports = dict(zip(("http_port", "grpc_port", "metrics_port"), free_ports(3)))
    server = LocalTritonServer(model_repository(tmp_path / "repo", models=("simple_tracker",)),
                               log_path=tmp_path / "server.log", **ports)
    robot = Robot(ros_node, "/early")
    diagnostics = Diagnostics(ros_node)
    node = start_tracker(start_node, server.grpc_url, "/early", 9, server_wait_timeout_s=1.0,
                         reconnect_initial_s=0.2, reconnect_max_s=1.0, request_timeout_s=3.0,
                         diagnostics_period_s=0.5)

    def diag():
        return diagnostics.of("/early/triton_track")
    try:
        wait_active(node, robot)
        assert "running on and connecting in the background" in node.output()
        assert wait_until(lambda: diag()[1].get("connection") == "unavailable", 30), diag()
        status, values = diag()
        assert status.level == DiagnosticStatus.ERROR
        assert server.grpc_url in values["connection_error"], values   # says why, and where
        frames = streams[0]
        for frame in frames[:3]:   # nothing to send them to: counted, not lost silently
            robot.publisher.publish(frame_to_msg(frame))
        assert wait_until(lambda: diag()[1].get("frames_dropped_server_unavailable") == "3",
                          15), diag()
        assert node.alive(), node.output()[-2000:]

        server.start(timeout_s=120)
        assert wait_until(lambda: diag()[1].get("connection") == "ready", 30), diag()
        assert diag()[0].level != DiagnosticStatus.ERROR
        for frame in frames[3:9]:
            robot.publisher.publish(frame_to_msg(frame))
            time.sleep(0.03)
        assert wait_until(lambda: robot.has(frames[3:9]), 60), node.output()[-2000:]
        assert robot.ids(frames[3:9]) == reference_track_ids(frames[3:9])
        assert "connected: model 'simple_tracker'" in node.output()
        assert node.alive()
    finally:
        server.cleanup()
