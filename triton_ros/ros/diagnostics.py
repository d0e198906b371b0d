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
