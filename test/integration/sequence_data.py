"""Robot detection streams from real frames, and the tracker's offline reference.

Each robot's stream is what a camera pipeline would send the tracker: the SSD-MobileNet-v2
detections (the weights the server's detector uses, run with cv2.dnn as in ``reference.py``) of
consecutive frames of the sample bag (pedestrians and cars, 10 fps). Robot ``r`` sees its own
segment of the video, so the streams differ. The reference track ids come from the tracker's own
core (``config/model_repository/simple_tracker/1/tracker_core.py``, with the parameters of its
``config.pbtxt``) run offline, one stream at a time.
"""
import functools
import importlib.util
import re
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from helpers import IMAGE_TOPIC, REPO
from reference import _net

MODELS = REPO / "config" / "model_repository"
TRACKER_DIR = MODELS / "simple_tracker"
LABELS = {1: "person", 3: "car"}      # COCO-90 ids kept in the streams
SCORE_THRESHOLD = 0.4


@dataclass(frozen=True)
class Frame:
    stamp_ns: int
    boxes: np.ndarray      # float32 [N, 4] x1, y1, x2, y2 in source pixels
    scores: np.ndarray     # float32 [N]
    labels: tuple          # N label strings

    @property
    def classes(self) -> np.ndarray:
        return np.array([class_index(label) for label in self.labels], np.int32)

    def tensors(self) -> dict:
        """The tracker's inputs for this frame (no batch dimension)."""
        return {"boxes": self.boxes, "scores": self.scores, "classes": self.classes}


def class_index(label: str) -> int:
    """The label -> class mapping the track node uses (CRC-32, stable across processes)."""
    return zlib.crc32(label.encode()) & 0x7FFFFFFF


def _detect(frame_bgr) -> tuple:
    net = _net()
    net.setInput(cv2.dnn.blobFromImage(frame_bgr, 1.0, (300, 300), swapRB=True, crop=False))
    rows = net.forward().reshape(-1, 7)
    rows = rows[np.isin(rows[:, 1], list(LABELS)) & (rows[:, 2] >= SCORE_THRESHOLD)]
    h, w = frame_bgr.shape[:2]
    boxes = (np.clip(rows[:, 3:7], 0, 1) * [w, h, w, h]).astype(np.float32)
    return boxes, rows[:, 2].astype(np.float32), tuple(LABELS[int(c)] for c in rows[:, 1])


@functools.lru_cache(maxsize=4)
def robot_streams(bag: Path, robots: int = 3, frames: int = 24, spacing: int = 90):
    """``robots`` lists of ``frames`` consecutive Frames; robot r starts at bag frame r*spacing."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from triton_ros.image_conversion import raw_image_to_bgr
    from triton_ros.ros.bag_player import read_bag
    wanted = {r * spacing + i: r for r in range(robots) for i in range(frames)}
    streams = [[] for _ in range(robots)]
    for index, (_, _, _, raw) in enumerate(read_bag(bag, [IMAGE_TOPIC])):
        if index in wanted:
            msg = deserialize_message(raw, Image)
            bgr = raw_image_to_bgr(msg.encoding, msg.height, msg.width, msg.step, msg.data)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            streams[wanted[index]].append(Frame(stamp, *_detect(bgr)))
        if index >= max(wanted):
            break
    assert all(len(s) == frames for s in streams), [len(s) for s in streams]
    return streams


def _tracker_core():
    spec = importlib.util.spec_from_file_location(
        "simple_tracker_core", TRACKER_DIR / "1" / "tracker_core.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tracker_parameters(config: Path = TRACKER_DIR / "config.pbtxt") -> dict:
    return dict(re.findall(r'key:\s*"(\w+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"',
                           config.read_text()))


def reference_track_ids(frames) -> list[list[int]]:
    """Track ids the tracker gives ``frames`` when they are one fresh sequence."""
    tracker = _tracker_core().SequenceTracker.from_parameters(tracker_parameters())
    return [tracker.update(f.boxes, f.scores, f.classes).tolist() for f in frames]


def model_repository(dest: Path, models=("simple_tracker", "imu_motion"), edits=None) -> Path:
    """Copy ``models`` into ``dest``; ``edits``: {model: [(old, new), ...]} for config.pbtxt."""
    dest.mkdir(parents=True, exist_ok=True)
    for model in models:
        target = dest / model
        shutil.copytree(MODELS / model, target, ignore=shutil.ignore_patterns("__pycache__"))
        for old, new in (edits or {}).get(model, []):
            config = target / "config.pbtxt"
            text = config.read_text()
            assert old in text, f"{old!r} not in {model}/config.pbtxt"
            config.write_text(text.replace(old, new))
    return dest


def stub_shm_regions(server_pid: int) -> list[str]:
    """Names of the python-backend shared-memory regions of a server's stub processes."""
    names = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid != server_pid:
                continue
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        names += [a.decode() for a in args if a.startswith(b"triton_python_backend_shm_region")]
    return names


def kill_server_hard(server) -> None:
    """kill -9 the server and its python-backend stubs (a crash), then free their shm regions.

    ``server`` is a started LocalTritonServer; afterwards it can be started again.
    """
    import os
    import signal
    regions = stub_shm_regions(server.process.pid)
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    server.process = None
    server.stop()  # closes its log file; the scratch directory stays for a restart
    for name in regions:  # a crash leaves them behind in /dev/shm
        Path("/dev/shm", name).unlink(missing_ok=True)


def continuation_rejected(grpc_url: str, correlation_id: int, model: str = "simple_tracker") -> str:
    """Send a keep-alive continuation (no START) for ``correlation_id``: the server's error, or ''.

    The server answers "must specify the START flag" exactly when it has no live sequence with
    that id (ended, timed out or never started).
    """
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException
    arrays = {"boxes": np.zeros((1, 0, 4), np.float32), "scores": np.zeros((1, 0), np.float32),
              "classes": np.zeros((1, 0), np.int32), "keepalive": np.array([[True]])}
    client = grpcclient.InferenceServerClient(grpc_url)
    inputs = []
    for name, array in arrays.items():
        tensor = grpcclient.InferInput(name, list(array.shape),
                                       {"f": "FP32", "i": "INT32", "b": "BOOL"}[array.dtype.kind])
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    try:
        client.infer(model, inputs, sequence_id=correlation_id, client_timeout=30)
    except InferenceServerException as exc:
        return exc.message()
    finally:
        client.close()
    return ""
