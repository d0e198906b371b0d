"""Helpers for integration tests: node processes, bag messages, waiting."""
import json
import os
import signal
import subprocess
import sys
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


class NodeProcess:
    """A node started as its own process (``python -m module --ros-args ...``), output logged."""

    def __init__(self, module: str, params: dict, remaps: dict | None = None,
                 namespace: str = "", log_path: Path | None = None):
        args = [sys.executable, "-m", module, "--ros-args"]
        for key, value in params.items():
            if isinstance(value, bool):
                value = str(value).lower()
            elif isinstance(value, (list, tuple)):
                value = "[" + ",".join(json.dumps(v) for v in value) + "]"  # YAML flow list
            args += ["-p", f"{key}:={value}"]
        for src, dst in (remaps or {}).items():
            args += ["-r", f"{src}:={dst}"]
        if namespace:
            args += ["-r", f"__ns:={namespace}"]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
        self.process = subprocess.Popen(args, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT, cwd=REPO)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not seen (exit code {self.process.poll()}); "
                             f"output:\n{self.output()[-3000:]}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 15.0) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


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
