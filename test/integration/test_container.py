"""container: detect_node + track_node in one process (MultiThreadedExecutor), real server.

Also the measurement quoted in the README (processes, RSS, detect -> track latency), printed with
``-s``; the assertions are on behaviour only (speed targets live in bench/).
"""
import statistics
import threading
import time

from rclpy.qos import QoSProfile, ReliabilityPolicy
from vision_msgs.msg import Detection2DArray

from triton_ros.ros.messages import stamp_to_ns

from helpers import IMAGE_TOPIC, bag_messages, wait_until

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
FRAMES = 20


class Timed:
    """Arrival time (monotonic) of each array on a topic, by source stamp."""

    def __init__(self, probe, topic):
        self.at, self.lock = {}, threading.Lock()
        probe.create_subscription(Detection2DArray, topic, self._on, RELIABLE)

    def _on(self, msg):
        with self.lock:
            self.at.setdefault(stamp_to_ns(msg.header.stamp), (time.monotonic(), msg))


def rss_mib(pids) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as status:
            total += next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    return total / 1024.0


def run_robot(probe, ns, frames, processes):
    """Feed frames one at a time; return (detect->track latencies ms, tracked arrays)."""
    from sensor_msgs.msg import Image
    dets, tracked = Timed(probe, f"{ns}/detections"), Timed(probe, f"{ns}/tracked_detections")
    images = probe.create_publisher(Image, f"{ns}/image", RELIABLE)
    assert wait_until(lambda: images.get_subscription_count() > 0, 60), \
        [p.output()[-2000:] for p in processes]
    assert wait_until(lambda: probe.count_subscribers(f"{ns}/detections") >= 2, 60)
    for raw, msg in frames:
        stamp = stamp_to_ns(msg.header.stamp)
        deadline = time.monotonic() + 60
        while True:
            images.publish(raw)
            # DDS discovery is pairwise: the probe seeing both subscribers of detections does
            # not mean detect's publisher has matched track's reader yet. Seen on a loaded
            # machine: detect published the first frame's array, track never received it. A
            # frame not tracked within 10 s is sent again (the arrays are keyed by stamp).
            if wait_until(lambda: stamp in tracked.at, 10):
                break
            assert time.monotonic() < deadline, [p.output()[-2000:] for p in processes]
    latencies = [(tracked.at[s][0] - dets.at[s][0]) * 1000.0 for s in tracked.at if s in dets.at]
    return latencies, [m for _, m in tracked.at.values()]


def test_container_runs_detect_and_track_in_one_process(triton_server, sample_bag, ros_node,
                                                        tmp_path):
    from triton_ros.tools.node_process import NodeProcess
    frames = bag_messages(sample_bag, IMAGE_TOPIC, FRAMES, every=3)
    common = {"server_url": triton_server.grpc_url, "image_reliability": "reliable",
              "image_qos_depth": 64, "queue_size": 64, "max_delay_ms": 0.0,
              "request_timeout_s": 10.0}
    results = {}

    container = NodeProcess("triton_ros.ros.container", dict(common, robot_id=11),
                            namespace="/cont", log_path=tmp_path / "container.log",
                            extra_args=["--", "detect", "track"])
    try:
        container.wait_for_output("active:", 90)
        container.wait_for_output("ready:", 90)
        def names():
            return {n for n, ns in ros_node.get_node_names_and_namespaces() if ns == "/cont"}
        assert wait_until(lambda: {"triton_detect", "triton_track"} <= names(), 30), names()
        latencies, tracked = run_robot(ros_node, "/cont", frames, [container])
        results["container"] = (1, rss_mib([container.pid]), latencies)
        assert len(tracked) == FRAMES
        assert any(d.id for m in tracked for d in m.detections), "no detection got a track id"
    finally:
        code = container.stop()
    output = container.output()
    assert code == 0 and "Traceback" not in output, output
    assert "[/cont/triton_detect] final counters:" in output and "[cont.triton_track]: final counters:" \
        in output, output
    assert "Failed to publish log message to rosout" not in output, output

    detect = NodeProcess("triton_ros.ros.detect_node", common, namespace="/sep",
                         log_path=tmp_path / "detect.log")
    track = NodeProcess("triton_ros.ros.track_node", dict(common, robot_id=12), namespace="/sep",
                        log_path=tmp_path / "track.log")
    try:
        detect.wait_for_output("ready:", 90)
        track.wait_for_output("active:", 90)
        latencies, tracked = run_robot(ros_node, "/sep", frames, [detect, track])
        results["separate"] = (2, rss_mib([detect.pid, track.pid]), latencies)
        assert len(tracked) == FRAMES
    finally:
        detect.stop()
        track.stop()
    for process in (detect, track):
        assert "Failed to publish log message to rosout" not in process.output(), process.output()
    for how, (processes, rss, latencies) in results.items():
        print(f"\n{how}: {processes} process(es), RSS {rss:.0f} MiB, detect->track latency "
              f"median {statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms "
              f"({len(latencies)} frames)")


def test_container_gives_each_node_its_own_parameter_section(ros_node, tmp_path):
    """What tracking.launch.py container:=true writes: one file, a section per full node name."""
    import yaml

    from triton_ros.tools.node_process import NodeProcess
    from test_detect_lifecycle import get_parameters
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({
        "/r9/triton_detect": {"ros__parameters": {"server_url": "127.0.0.1:1111",
                                                  "max_detections": 9, "autostart": False}},
        "/r9/triton_track": {"ros__parameters": {"server_url": "127.0.0.1:2222", "robot_id": 9,
                                                 "autostart": False}}}))
    container = NodeProcess("triton_ros.ros.container", {}, namespace="/r9",
                            log_path=tmp_path / "container.log",
                            extra_args=["--params-file", str(path), "--", "detect", "track"])
    try:
        detect = get_parameters(ros_node, "/r9/triton_detect", ["server_url", "max_detections"],
                                timeout_s=60.0)
        track = get_parameters(ros_node, "/r9/triton_track", ["server_url", "robot_id"],
                               timeout_s=30.0)
    finally:
        code = container.stop()
    assert detect == {"server_url": "127.0.0.1:1111", "max_detections": 9}
    assert track == {"server_url": "127.0.0.1:2222", "robot_id": 9}
    assert code == 0, container.output()


def test_container_configuration_error_exits_2(tmp_path):
    from triton_ros.tools.node_process import NodeProcess
    container = NodeProcess("triton_ros.ros.container", {"protocol": "ftp"},
                            namespace="/robot3", log_path=tmp_path / "container.log",
                            extra_args=["--", "detect", "track"])
    assert container.process.wait(60) == 2, container.output()
    # the node's real (namespaced) name, not the kind or the default name (issue 17)
    assert "[container] configuration error in /robot3/triton_detect: invalid parameters: " \
        "protocol='ftp'" in container.output(), container.output()
    assert "Traceback" not in container.output()
