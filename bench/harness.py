"""What every benchmark here needs: server and node start, real frames, feeding, timing, reports.

- :func:`machine` describes the machine (cores, CPU model, load average) for the report.
- :func:`load_frames` gives real BGR frames (``.cache/data/vtest.avi``, resized); :func:`image_raw`
  and :func:`compressed_raw` serialize them once as sensor_msgs/Image or CompressedImage, and
  :func:`with_stamp` re-stamps serialized bytes (so feeding costs one copy, no serialization).
- :func:`start_server` starts a LocalTritonServer with the named models (127.0.0.1);
  :func:`start_node` a node process (NodeProcess) in its own namespace and waits until it is ready.
- :class:`Probe` is the bench-side rclpy node: camera publishers, Detection2DArray subscriptions
  matched to what was sent by (camera, header stamp), optional /diagnostics collection.
- :func:`cpu_seconds` reads utime + stime from ``/proc/<pid>/stat``; CPU per frame is its
  difference over a window divided by the frames answered in it.
- :func:`markdown_table`, :func:`write_json` and :func:`plot_bars` write the results.

Every ROS 2 process uses the localhost-only Fast DDS profile and a private ROS_DOMAIN_ID
(:func:`ros_env`), tritonserver binds 127.0.0.1: nothing leaves the machine.
"""
import json
import os
import platform
import struct
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

VIDEO = REPO / ".cache" / "data" / "vtest.avi"
SAMPLE_BAG = REPO / ".cache" / "data" / "sample_bag"
RESULTS = REPO / "bench" / "results"
RESOLUTIONS = {"640x480": (640, 480), "1280x720": (1280, 720), "1920x1080": (1920, 1080)}
CLK_TCK = os.sysconf("SC_CLK_TCK")

# -- machine and /proc ---------------------------------------------------------------------------


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict:
    """Cores, CPU model, kernel, Python and the load average now (1/5/15 min)."""
    return {"cpus": os.cpu_count(), "cpu_model": cpu_model(), "kernel": platform.release(),
            "python": platform.python_version(), "load_avg": load_avg()}


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` (all its threads), seconds; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # fields[0] is field 3 (state)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid: int) -> list[int]:
    """Pids of every process below ``pid`` (children, grandchildren, ...)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def group_cpu_seconds(pids: list[int]) -> float:
    return sum(c for c in (cpu_seconds(p) for p in pids) if c is not None)


# -- statistics ----------------------------------------------------------------------------------


def pct(values, q):
    return float(np.percentile(values, q)) if len(values) else None


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# -- frames --------------------------------------------------------------------------------------


def load_frames(count: int, width: int, height: int, every: int = 3) -> tuple[list, str]:
    """``count`` distinct real BGR frames resized to width x height (video, else the bag)."""
    import cv2
    frames = []
    capture = cv2.VideoCapture(str(VIDEO))
    index = 0
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        if index % every == 0:  # every n-th frame: more varied content
            frames.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
        index += 1
    capture.release()
    if frames:
        return frames, f"{VIDEO.relative_to(REPO)} (every {every}th frame, resized)"
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    from triton_ros.image_conversion import raw_image_to_bgr
    from triton_ros.ros.bag_player import read_bag
    for _, _, _, raw in read_bag(SAMPLE_BAG, ["/camera/image_raw"]):
        msg = deserialize_message(raw, Image)
        bgr = raw_image_to_bgr(msg.encoding, msg.height, msg.width, msg.step, msg.data)
        frames.append(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA))
        if len(frames) >= count:
            break
    if not frames:
        raise FileNotFoundError(f"no frames in {VIDEO} or {SAMPLE_BAG}; run scripts/bootstrap.sh")
    return frames, f"{SAMPLE_BAG.relative_to(REPO)} /camera/image_raw (resized)"


# sensor_msgs/Image and CompressedImage serialized by rmw_fastrtps (CDR, little endian) both start
#   bytes 0..3   encapsulation header 00 01 00 00 (CDR_LE)
#   bytes 4..7   header.stamp.sec      int32
#   bytes 8..11  header.stamp.nanosec  uint32
# Each distinct frame is serialized once; a message is the same bytes with the stamp replaced.
STAMP = struct.Struct("<iI")


def with_stamp(raw: bytes, stamp_ns: int) -> bytes:
    """``raw`` (a serialized Image/CompressedImage) with header.stamp = ``stamp_ns``."""
    return b"".join((raw[:4], STAMP.pack(stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000),
                     memoryview(raw)[12:]))


def image_raw(frame: np.ndarray, frame_id: str) -> bytes:
    """One BGR frame as a serialized bgr8 sensor_msgs/Image (stamp patched by with_stamp)."""
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image
    h, w = frame.shape[:2]
    msg = Image(height=h, width=w, encoding="bgr8", is_bigendian=0, step=w * 3,
                data=frame.tobytes())
    msg.header.frame_id = frame_id
    return serialize_message(msg)


def compressed_raw(frame: np.ndarray, frame_id: str, quality: int = 90) -> bytes:
    """One BGR frame as a serialized JPEG sensor_msgs/CompressedImage."""
    import cv2
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CompressedImage
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    msg = CompressedImage(format="jpeg", data=jpeg.tobytes())
    msg.header.frame_id = frame_id
    return serialize_message(msg)


def check_stamp_patch(raw: bytes, msg_type) -> None:
    """Self-check of :func:`with_stamp`'s byte offsets on one serialized message."""
    from rclpy.serialization import deserialize_message
    assert raw[:2] == b"\x00\x01", "expected CDR little-endian encapsulation"
    probe = deserialize_message(with_stamp(raw, 1_234_000_000_567), msg_type)
    assert (probe.header.stamp.sec, probe.header.stamp.nanosec) == (1234, 567)


# -- processes -----------------------------------------------------------------------------------


def ros_env() -> dict:
    """Localhost-only DDS and a private domain id for this process and its children."""
    from triton_ros.tools.local_env import apply_localhost_ros_env
    return apply_localhost_ros_env()


def start_server(models: list[str], log_path: Path, timeout_s: float = 120.0):
    """A started LocalTritonServer (127.0.0.1) with only ``models`` loaded."""
    from triton_ros.tools.local_server import LocalTritonServer
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server = LocalTritonServer(log_path=log_path, extra_args=[
        "--model-control-mode=explicit", *(f"--load-model={m}" for m in models)])
    server.start(timeout_s=timeout_s)
    return server


def server_pids(server) -> list[int]:
    """The server and its python-backend stubs (for CPU accounting)."""
    return [server.process.pid] + descendants(server.process.pid)


def start_node(params: dict, namespace: str, log_path: Path, env: dict, cameras: int,
               module: str = "triton_ros.ros.detect_node", timeout_s: float = 60.0):
    """A detect node process in ``namespace``, returned once it logged ``ready``."""
    from triton_ros.tools.node_process import NodeProcess
    node = NodeProcess(module, params, namespace=namespace, log_path=log_path, env=env,
                       new_session=True)
    try:
        node.wait_for_output(f"ready: {cameras} camera(s)", timeout_s=timeout_s)
    except Exception:
        node.stop()
        raise
    return node


class Executor:
    """rclpy initialised here, with one executor spinning on a daemon thread."""

    def __enter__(self):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        self.executor = SingleThreadedExecutor()
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        return self.executor

    def __exit__(self, *exc):
        import rclpy
        self.executor.shutdown(timeout_sec=2)
        rclpy.try_shutdown()
        self.thread.join(timeout=3)


class Probe:
    """Bench-side rclpy node for one node under test: ``cameras`` publishers of ``msg_type`` on
    ``<namespace>/cam<i>/<leaf>``, Detection2DArray subscriptions on ``.../detections`` (answers
    recorded by camera and stamp), and, with ``status_name``, /diagnostics of that status.
    Callbacks run on the executor thread; ``answered`` and ``diagnostics`` are read under ``lock``.
    """

    def __init__(self, namespace: str, cameras: int, tag: str, compressed: bool = False,
                 status_name: str | None = None):
        import rclpy
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image
        from vision_msgs.msg import Detection2DArray
        self.namespace = namespace
        self.node = rclpy.create_node(f"bench_probe_{os.getpid()}_{tag}")
        sensor = QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST,
                            reliability=ReliabilityPolicy.BEST_EFFORT)
        reliable = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                              reliability=ReliabilityPolicy.RELIABLE)
        self.lock = threading.Lock()
        self.answer_event = threading.Condition(self.lock)
        self.answered = [dict() for _ in range(cameras)]   # camera -> {stamp_ns: receive ns}
        self.detection_counts = [dict() for _ in range(cameras)]  # camera -> {stamp: boxes}
        self.diagnostics = []                              # (stamp_ns, values) of this node
        msg_type, leaf = (CompressedImage, "image/compressed") if compressed else (Image, "image")
        self.msg_type = msg_type
        self.publishers = [self.node.create_publisher(msg_type, f"{namespace}/cam{i}/{leaf}",
                                                      sensor) for i in range(cameras)]
        self.detection_topics = [f"{namespace}/cam{i}/detections" for i in range(cameras)]
        for i, topic in enumerate(self.detection_topics):
            self.node.create_subscription(Detection2DArray, topic,
                                          lambda m, i=i: self._on_detections(i, m), reliable)
        self._status_name = status_name
        if status_name:
            from diagnostic_msgs.msg import DiagnosticArray
            self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics,
                                          50)

    def _on_detections(self, camera, msg):
        now = time.time_ns()
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.answered[camera][stamp] = now
            self.detection_counts[camera][stamp] = len(msg.detections)
            self.answer_event.notify_all()

    def _on_diagnostics(self, msg):
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        for status in msg.status:
            if status.name.endswith(self._status_name):
                values = {kv.key: kv.value for kv in status.values}
                with self.lock:
                    self.diagnostics.append((stamp, values))

    def last_diagnostics(self):
        with self.lock:
            return self.diagnostics[-1] if self.diagnostics else None

    def connected(self) -> bool:
        return (all(p.get_subscription_count() > 0 for p in self.publishers) and
                all(self.node.count_publishers(t) > 0 for t in self.detection_topics) and
                (not self._status_name or self.last_diagnostics() is not None))

    def wait_connected(self, node, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.connected():
            if time.monotonic() > deadline or not node.alive():
                raise RuntimeError(f"no DDS match with the node within {timeout_s:g} s; "
                                   f"log {node.log_path}")
            time.sleep(0.05)

    def publish(self, camera: int, raw: bytes) -> int:
        """Publish ``raw`` re-stamped with the wall clock now; returns the stamp (ns)."""
        stamp = time.time_ns()
        self.publishers[camera].publish(with_stamp(raw, stamp))
        return stamp

    def wait_answer(self, camera: int, stamp: int, timeout_s: float) -> int | None:
        """Receive time (ns) of the answer to ``stamp``, or None after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while stamp not in self.answered[camera]:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.answer_event.wait(left)
            return self.answered[camera][stamp]

    def answers(self) -> int:
        with self.lock:
            return sum(len(a) for a in self.answered)

    def destroy(self):
        self.node.destroy_node()


def feed_window(probe: Probe, raws: list[list[bytes]], window: int, duration_s: float,
                stop_after_s: float = 2.0) -> dict:
    """Closed-loop feeding: keep ``window`` frames per camera unanswered, for ``duration_s``.

    A frame counts as lost (and its slot is freed) when no answer came within ``stop_after_s``.
    Returns published / answered counts, the window's length, and per-frame latencies (ms).
    """
    cameras = len(raws)
    outstanding = [dict() for _ in range(cameras)]   # stamp -> publish monotonic
    latencies, lost, published, seq = [], 0, 0, [0] * cameras
    start = time.monotonic()
    end = start + duration_s
    while time.monotonic() < end:
        now = time.monotonic()
        with probe.lock:
            for cam in range(cameras):
                for stamp in [s for s in outstanding[cam] if s in probe.answered[cam]]:
                    latencies.append((probe.answered[cam][stamp] - stamp) / 1e6)
                    del outstanding[cam][stamp]
                for stamp in [s for s, t in outstanding[cam].items() if now - t > stop_after_s]:
                    lost += 1
                    del outstanding[cam][stamp]
        for cam in range(cameras):
            while len(outstanding[cam]) < window:
                stamp = probe.publish(cam, raws[cam][seq[cam] % len(raws[cam])])
                outstanding[cam][stamp] = time.monotonic()
                seq[cam] += 1
                published += 1
        with probe.lock:
            probe.answer_event.wait(0.05)
    elapsed = time.monotonic() - start
    return {"published": published, "answered": len(latencies), "lost": lost,
            "window_s": elapsed, "latencies_ms": latencies}


# -- output --------------------------------------------------------------------------------------


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub Markdown table; floats with one decimal unless already strings."""
    cells = [[c if isinstance(c, str) else fmt(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                for i, (c, w) in enumerate(zip(row, widths))) + " |"
              for row in cells]
    return "\n".join(lines)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=float))


def plot_bars(path: Path, title: str, groups: list[str], series: dict[str, list],
              ylabel: str) -> None:
    """Grouped bar chart (one group per label, one bar per series) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(1, len(series)) / 2), 4))
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    for k, (name, values) in enumerate(series.items()):
        ax.bar(x + k * width - 0.4 + width / 2, [v if v is not None else 0 for v in values],
               width, label=name)
    ax.set_xticks(x, groups, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
