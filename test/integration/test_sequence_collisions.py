"""Two sequence nodes with the same full name on real DDS and a real tritonserver.

Two ``track_node`` processes in the root namespace are both ``/triton_track``; with the same
``robot_id`` and their topics remapped apart they are two streams on one correlation id, so their
tracker states would mix. Both must report the collision (ERROR on /diagnostics and a log line)
and the duplicate node name.
"""
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from helpers import wait_until
from test_track_node import TRACK


class StatusesByInstance:
    """The latest /diagnostics status of every sequence node instance.

    Keyed by the ``instance`` value (else name and stream key), not by status name alone: both
    nodes publish under the same name.
    """

    def __init__(self, probe):
        self.latest, self.lock = {}, threading.Lock()
        probe.create_subscription(DiagnosticArray, "/diagnostics", self._on, 50)

    def _on(self, msg):
        with self.lock:
            for status in msg.status:
                values = {kv.key: kv.value for kv in status.values}
                if "stream_key" in values:
                    key = values.get("instance") or (status.name, values["stream_key"])
                    self.latest[key] = (status, values)

    def with_stream(self, stream_key):
        """(status, values) of every instance that reports ``stream_key``."""
        with self.lock:
            return [(s, v) for s, v in self.latest.values() if v.get("stream_key") == stream_key]


def test_same_name_nodes_on_one_sequence_both_report_the_collision(
        triton_server, start_node, ros_node):
    statuses = StatusesByInstance(ros_node)
    params = {"server_url": triton_server.grpc_url, "robot_id": 9, "request_timeout_s": 10.0}
    nodes = {}
    for stream in ("dupA", "dupB"):
        nodes[stream] = start_node(TRACK, params, remaps={
            "detections": f"/{stream}/detections",
            "tracked_detections": f"/{stream}/tracked_detections"})
    for node in nodes.values():
        node.wait_for_output("active:", timeout_s=90)
    active_at = time.monotonic()
    keys = {stream: f"/|/{stream}/detections" for stream in nodes}

    def reports_error(stream):
        found = statuses.with_stream(keys[stream])
        return len(found) == 1 and found[0][0].level == DiagnosticStatus.ERROR and (
            "correlation id collision: 2304" in found[0][0].message)
    assert wait_until(lambda: all(reports_error(s) for s in nodes), 30), {
        s: [(st.level, st.message) for st, _ in statuses.with_stream(keys[s])] for s in nodes}
    detected_s = time.monotonic() - active_at
    print(f"collision reported by both nodes {detected_s:.2f} s after both were active")

    (status_a, values_a), = statuses.with_stream(keys["dupA"])
    (status_b, values_b), = statuses.with_stream(keys["dupB"])
    assert status_a.name == status_b.name == "triton_ros: /triton_track"
    assert values_a["owner"] == values_b["owner"] == "/triton_track"
    assert values_a["correlation_id"] == values_b["correlation_id"] == "2304"
    assert values_a["instance"] != values_b["instance"]
    assert keys["dupB"] in values_a["collisions"] and values_b["instance"] in (
        values_a["collisions"])
    assert keys["dupA"] in values_b["collisions"] and values_a["instance"] in (
        values_b["collisions"])
    for values in (values_a, values_b):
        assert "2 nodes named /triton_track" in values["duplicate_node_name"]
    for status in (status_a, status_b):
        assert "2 nodes named /triton_track" in status.message

    for stream, node in nodes.items():
        assert wait_until(lambda: "correlation id collision: 2304" in node.output(), 10), (
            node.output()[-2000:])
        output = node.output()
        assert output.count("2 nodes named /triton_track") == 1, output[-2000:]
        assert node.alive()
