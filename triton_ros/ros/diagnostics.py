"""The /diagnostics plumbing every node of this package shares (one status per node)."""
import collections

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


def latency_values(latencies_ms) -> dict[str, str]:
    """``latency_ms_p50`` / ``latency_ms_p99`` of the recent latencies (ms); {} when none."""
    if not len(latencies_ms):
        return {}
    p50, p99 = np.percentile(latencies_ms, (50, 99))
    return {"latency_ms_p50": f"{p50:.1f}", "latency_ms_p99": f"{p99:.1f}"}


# Frame counters every detect_node report carries, 0 until counted.
FRAME_KEYS = ("received", "published", "pending", "dropped_stale", "dropped_unsynced",
              "dropped_server_unavailable", "dropped_bad_input", "dropped_inference_failed",
              "dropped_dds_lost", "dropped_dds_gap", "dropped_internal_error")


def frame_values(per_camera: dict) -> dict[str, str]:
    """``frames_<counter>`` (summed over cameras; every FRAME_KEYS key present) and
    ``camera[<name>].<counter>`` from each camera's frame counters (name -> {counter: count}).
    The totals are the sum of exactly these per-camera counts: where each camera's counts add
    up (received == published + dropped + pending), so do the totals."""
    totals = collections.Counter()
    for counters in per_camera.values():
        totals.update(counters)
    values = {f"frames_{key}": str(totals.get(key, 0)) for key in FRAME_KEYS}
    values.update({f"frames_{key}": str(count) for key, count in sorted(totals.items())})
    for name, counters in per_camera.items():
        values.update({f"camera[{name}].{key}": str(count)
                       for key, count in sorted(counters.items())})
    return values


def bytes_per_frame_values(recent) -> dict[str, str]:
    """``bytes_sent_per_frame`` / ``bytes_received_per_frame``: request payload bytes (tensors
    or image files) per frame over ``recent`` (sent, received, frames) requests; {} when none."""
    frames = sum(n for _, _, n in recent)
    if not frames:
        return {}
    return {"bytes_sent_per_frame": str(round(sum(s for s, _, _ in recent) / frames)),
            "bytes_received_per_frame": str(round(sum(r for _, r, _ in recent) / frames))}


def make_status(node, level, message: str, values: dict[str, str],
                hardware_id: str) -> DiagnosticStatus:
    """A node's status, named ``triton_ros: <full node name>`` (what tests and tools key on)."""
    return DiagnosticStatus(level=level, name=f"triton_ros: {node.get_fully_qualified_name()}",
                            message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])


def publish_status(node, publisher, status: DiagnosticStatus) -> None:
    """Publish ``status`` alone in a DiagnosticArray stamped with the node's clock."""
    array = DiagnosticArray(status=[status])
    array.header.stamp = node.get_clock().now().to_msg()
    publisher.publish(array)


def server_change_reporter(node, report_error):
    """An ``on_change(url, state, detail)`` for a ServerPool (a ``server_url`` list): a server
    coming back is logged, one going down is reported with ``report_error(text, kind, every_s)``
    (the node's throttled error log, which also sets its ``last_error``)."""
    def changed(url: str, state: str, detail: str) -> None:
        if state == "ready":
            node.get_logger().info(f"server {url} ready")
        else:
            report_error(f"server {url} taken out of the list (probed again with backoff): "
                         f"{detail}", kind="server" + url, every_s=10.0)
    return changed
