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
