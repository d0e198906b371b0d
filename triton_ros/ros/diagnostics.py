"""The /diagnostics plumbing every node of this package shares (one status per node)."""
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue


def latency_values(latencies_ms) -> dict[str, str]:
    """``latency_ms_p50`` / ``latency_ms_p99`` of the recent latencies (ms); {} when none."""
    if not len(latencies_ms):
        return {}
    p50, p99 = np.percentile(latencies_ms, (50, 99))
    return {"latency_ms_p50": f"{p50:.1f}", "latency_ms_p99": f"{p99:.1f}"}


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
