"""Helpers for integration tests: bag messages, video frames, waiting."""
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLE_BAG = REPO / ".cache" / "data" / "sample_bag"
VIDEO = REPO / ".cache" / "data" / "vtest.avi"
IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"


def bag_messages(bag: Path, topic: str, count: int, every: int = 1):
    """The first ``count`` (every ``every``-th) messages of ``topic``: list of (raw CDR, msg)."""
    from rclpy.serialization import deserialize_message

    from triton_ros.ros.bag_player import message_class, read_bag
    picked = []
    for index, (_, msgtype, _, raw) in enumerate(read_bag(bag, [topic])):
        if index % every == 0:
            picked.append((raw, deserialize_message(raw, message_class(msgtype))))
        if len(picked) >= count:
            break
    return picked


def wait_until(predicate, timeout_s: float, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return predicate()


def wait_matched(node, publishers=(), subscriptions=(), timeout_s: float = 60.0) -> bool:
    """True once DDS has matched each of ``node``'s endpoints with its peers on other nodes.

    Publishers and subscriptions are volatile: a message published before the subscription on the
    other side has matched is lost for good. So before a probe publishes inputs, every publisher it
    feeds a node with and every subscription it reads the node's outputs with must be matched.
    An endpoint counts as matched when (1) the ROS graph lists at least one endpoint of the other
    kind on its topic belonging to another node (the probe's own endpoints on the same topic would
    otherwise satisfy a plain count), and (2) its matched count (``get_subscription_count`` /
    ``get_publisher_count``) covers every endpoint of the other kind the graph lists on the topic,
    the probe's own included - so all of them must be QoS-compatible, or this times out.
    Waits on matching, never on time; returns False (after ``timeout_s``) if that never happens.

    Limit: DDS matches each side on its own and a probe sees only its side. A link between two
    other processes (detect_node -> track_node) is invisible here: prove it end to end (a priming
    message whose result arrives) before sending what a test counts.
    """
    me = (node.get_name(), node.get_namespace())

    def matched(endpoint, listed, count) -> bool:
        infos = listed(endpoint.topic_name)
        others = [i for i in infos if (i.node_name, i.node_namespace) != me]
        return bool(others) and count() >= len(infos)

    def all_matched() -> bool:
        return (all(matched(p, node.get_subscriptions_info_by_topic, p.get_subscription_count)
                    for p in publishers)
                and all(matched(s, node.get_publishers_info_by_topic, s.get_publisher_count)
                        for s in subscriptions))
    return wait_until(all_matched, timeout_s)


def unmatched(node, publishers=(), subscriptions=()) -> str:
    """What :func:`wait_matched` is still waiting for (for assertion messages)."""
    def graph(infos):
        return [f"{i.node_namespace.rstrip('/')}/{i.node_name}" for i in infos]
    lines = [f"publisher {p.topic_name}: {p.get_subscription_count()} matched, graph "
             f"{graph(node.get_subscriptions_info_by_topic(p.topic_name))}" for p in publishers]
    lines += [f"subscription {s.topic_name}: {s.get_publisher_count()} matched, graph "
              f"{graph(node.get_publishers_info_by_topic(s.topic_name))}" for s in subscriptions]
    return "\n".join(lines)


def video_frames(indices) -> list:
    """BGR uint8 frames of vtest.avi at these indices."""
    import cv2
    assert VIDEO.is_file(), f"{VIDEO} missing: run scripts/bootstrap.sh"
    capture = cv2.VideoCapture(str(VIDEO))
    frames, index = [], 0
    try:
        while len(frames) < len(indices):
            ok, frame = capture.read()
            assert ok, f"vtest.avi ended before frame {index}"
            if index in indices:
                frames.append(frame)
            index += 1
    finally:
        capture.release()
    return frames


def start_servers(log_dir: Path, count: int, models) -> list:
    """``count`` real tritonservers on 127.0.0.1 serving ``models``, logs in ``log_dir``;
    all cleaned up (and the test failed) if one does not start."""
    import pytest

    from triton_ros.tools.local_server import LocalTritonServer
    started = [LocalTritonServer(models=list(models), log_path=log_dir / f"server{i}.log")
               for i in range(count)]
    try:
        for server in started:
            server.start(timeout_s=180)
    except Exception as exc:
        for server in started:
            server.cleanup()
        pytest.fail(f"tritonservers did not start: {exc}")
    return started


def success_count(server, model: str) -> int:
    """Successful inferences of ``model`` that ``server`` itself counted (its statistics)."""
    from triton_ros.client import TritonClient
    client = TritonClient(server.grpc_url, model)
    try:
        stats = client.inference_statistics()
    finally:
        client.close()
    return sum(int(m["inference_stats"]["success"].get("count", 0))
               for m in stats["model_stats"])
