"""The main job on the embedded default: local Triton + bundled SSD model + sample bag replay.

Starts tritonserver (127.0.0.1) with config/model_repository, starts the detect node with
``use_sim_time``, replays the sample bag into it with ``/clock``, and writes to ``--out``:
``detections.json`` (one entry per input frame, boxes in source pixels), ``annotated.mp4`` plus
PNG snapshots, ``summary.json``; prints a one-line summary. Everything it started is stopped on
exit, Ctrl-C or failure. All ROS 2 traffic stays on loopback (localhost-only Fast DDS profile).
"""
import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from triton_ros.resources import share_dir
from triton_ros.tools.local_env import apply_localhost_ros_env
from triton_ros.tools.node_process import NodeProcess

IMAGE_TOPIC = "/camera/image_raw"
INFO_TOPIC = "/camera/camera_info"
DETECTIONS_TOPIC = "/camera/detections"

def parse_args(argv):
    root = share_dir()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bag", type=Path, default=root / ".cache/data/sample_bag")
    parser.add_argument("--out", type=Path, default=root / "out/demo")
    parser.add_argument("--rate", type=float, default=1.0, help="replay speed factor")
    parser.add_argument("--frames", type=int, default=0, help="stop after N frames (0 = all)")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--server-url", default="",
                        help="use this Triton server instead of starting a local one")
    parser.add_argument("--model", "--model-name", dest="model_name",
                        default="ssd_mobilenet_v2_coco",
                        help="model to run; the node configures itself from the model's "
                             "triton_ros.* config parameters (e.g. yolov4_tiny_coco, "
                             "yolov4_tiny_coco_encoded)")
    parser.add_argument("--snapshot-every", type=int, default=50)
    parser.add_argument("-p", "--node-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra detect node parameter (repeatable)")
    parser.add_argument("--warmup", type=int, default=5,
                        help="frames sent through the node (and answered) before the replay; "
                             "not timed, not in the outputs")
    parser.add_argument("--queue-size", type=int, default=8,
                        help="node queue_size: a replay may burst after a stall; frames beyond "
                             "this are dropped (and counted)")
    return parser.parse_args(argv)


class DemoProbe:
    """rclpy side of the demo: plays the bag and records detections and diagnostics."""

    def __init__(self):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from vision_msgs.msg import Detection2DArray
        from triton_ros.ros.messages import stamp_to_ns
        self._stamp_to_ns = stamp_to_ns
        rclpy.init()
        self.node = rclpy.create_node("triton_ros_demo")
        self.results, self.received_at, self.diagnostics = {}, {}, {}
        self.lock = threading.Lock()
        self.node.create_subscription(Detection2DArray, DETECTIONS_TOPIC, self._on_detections,
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        # Single-threaded: a MultiThreadedExecutor here starved the replay thread (GIL), stalling
        # the player by up to ~1 s (measured: publish gaps p99 579 ms vs 101 ms).
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _on_detections(self, msg):
        stamp = self._stamp_to_ns(msg.header.stamp)
        with self.lock:
            self.results[stamp] = msg
            self.received_at[stamp] = time.monotonic()

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name.startswith("triton_ros"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def accounted_frames(self) -> int:
        """Frames the node reports as published, dropped, bad or failed (from /diagnostics)."""
        counters = self.diagnostics
        return sum(int(v) for k, v in counters.items()
                   if k == "frames_published" or k.startswith("frames_dropped_"))

    def wait_for(self, stamp_ns: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if stamp_ns in self.results:
                    return True
            time.sleep(0.01)
        return False

    def close(self):
        import rclpy
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


def warm_up(probe: DemoProbe, player, bag: Path, count: int, deserialize_message, Image) -> dict:
    """Send the bag's first frame ``count`` times through the node, one at a time, and wait for
    each answer, so that the timed replay starts warm (model's first executions, the node's
    first request and shared memory registration, the publisher matched with the node).

    The warm-up frames carry stamps 1..count ns (before any bag stamp) and are removed from the
    results; returns the node counters after them (the baseline for the replay's counters).
    """
    from triton_ros.ros.bag_player import read_bag
    topic, msgtype, _, raw = next(iter(read_bag(bag, [IMAGE_TOPIC])))
    publisher = player._publisher(topic, msgtype)  # the replay's own publisher, matched now
    deadline = time.monotonic() + 30
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    msg = deserialize_message(raw, Image)
    for stamp_ns in range(1, count + 1):
        msg.header.stamp.sec, msg.header.stamp.nanosec = 0, stamp_ns
        for _ in range(3):  # the image topic may be best effort: resend a lost frame
            publisher.publish(msg)
            if probe.wait_for(stamp_ns, 20.0):
                break
        else:
            raise RuntimeError(f"no detections for warm-up frame {stamp_ns} within 60 s")
    deadline = time.monotonic() + 5  # until /diagnostics has counted the warm-up frames
    while probe.accounted_frames() < count and time.monotonic() < deadline:
        time.sleep(0.05)
    with probe.lock:
        for stamp_ns in range(1, count + 1):
            probe.results.pop(stamp_ns, None)
            probe.received_at.pop(stamp_ns, None)
        return dict(probe.diagnostics)


def draw(frame, detections):
    for det in detections:
        cx, cy = det["bbox"]["cx"], det["bbox"]["cy"]
        w, h = det["bbox"]["w"], det["bbox"]["h"]
        p1 = (int(cx - w / 2), int(cy - h / 2))
        p2 = (int(cx + w / 2), int(cy + h / 2))
        color = (0, 200, 0) if det["class_id"] == "person" else (0, 160, 255)
        cv2.rectangle(frame, p1, p2, color, 2)
        cv2.putText(frame, f"{det['class_id']} {det['score']:.2f}", (p1[0], max(12, p1[1] - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
    return frame


def run(args) -> int:
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image
    from tqdm import tqdm

    from triton_ros.image_conversion import raw_image_to_bgr
    from triton_ros.ros.bag_player import BagPlayer, read_bag
    from triton_ros.tools.local_server import LocalTritonServer
    from triton_ros.tools.server_venv import ServerVenvNotFound

    if not (args.bag / "metadata.yaml").is_file():
        print(f"no bag at {args.bag}; run scripts/bootstrap.sh", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("frame_*.png"):
        old.unlink()
    env = apply_localhost_ros_env()
    server = node = probe = None
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("SIGTERM"))
    try:
        if args.server_url:
            url = args.server_url
        else:
            print("starting tritonserver on 127.0.0.1 ...", file=sys.stderr)
            server = LocalTritonServer(log_path=args.out / "tritonserver.log",
                                       models=[args.model_name]).start(120)
            url = server.grpc_url if args.protocol == "grpc" else server.http_url
        print(f"starting detect node against {args.protocol}://{url} "
              f"(ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}) ...", file=sys.stderr)
        node = NodeProcess(
            "triton_ros.ros.detect_node",
            {"server_url": url, "protocol": args.protocol, "model_name": args.model_name,
             "use_sim_time": True, "queue_size": args.queue_size},
            remaps={"image": IMAGE_TOPIC, "detections": DETECTIONS_TOPIC},
            log_path=args.out / "detect_node.log",
            extra_args=[arg for param in args.node_param for arg in ("-p", param)])
        probe = DemoProbe()
        player = BagPlayer(probe.node, args.bag, [IMAGE_TOPIC, INFO_TOPIC], rate=args.rate)
        deadline = time.monotonic() + 120
        while probe.node.count_subscribers(IMAGE_TOPIC) == 0:
            if not node.alive() or time.monotonic() > deadline:
                raise RuntimeError("detect node did not come up; see "
                                   f"{args.out / 'detect_node.log'}")
            time.sleep(0.1)
        while probe.node.count_publishers(DETECTIONS_TOPIC) == 0:
            if not node.alive() or time.monotonic() > deadline:
                raise RuntimeError("detect node publishes no detections topic; see "
                                   f"{args.out / 'detect_node.log'}")
            time.sleep(0.05)
        time.sleep(0.5)  # let discovery settle before the first frame
        baseline = {}
        if args.warmup:
            print(f"warming up with {args.warmup} frame(s) ...", file=sys.stderr)
            baseline = warm_up(probe, player, args.bag, args.warmup, deserialize_message, Image)
        warm = sum(int(v) for k, v in baseline.items()
                   if k == "frames_published" or k.startswith("frames_dropped_"))

        frames, sent_at = [], {}
        total = sum(1 for _ in read_bag(args.bag, [IMAGE_TOPIC]))
        if args.frames:
            total = min(total, args.frames)
        bar = tqdm(total=total, unit="frame", desc="replaying", file=sys.stderr, mininterval=1.0)

        def on_message(topic, stamp_ns, raw):
            if topic == IMAGE_TOPIC:
                frames.append((stamp_ns, raw))
                sent_at[stamp_ns] = time.monotonic()
                bar.update(1)

        player.play(max_messages=None, on_message=on_message,
                    should_stop=lambda: bool(stopping) or (args.frames and
                                                          len(frames) >= args.frames))
        bar.close()
        # Wait until the node has accounted for every frame (published, dropped or failed).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and probe.accounted_frames() - warm < len(frames):
            time.sleep(0.1)
        return write_outputs(args, frames, sent_at, probe, deserialize_message, Image,
                             raw_image_to_bgr, baseline)
    except KeyboardInterrupt:
        print("interrupted; stopping everything", file=sys.stderr)
        return 130
    except ServerVenvNotFound as exc:  # one line: where it looked, how to fix it
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.stop()
        if probe is not None:
            probe.close()
        if server is not None:
            server.cleanup()


def write_outputs(args, frames, sent_at, probe, deserialize_message, Image, raw_image_to_bgr,
                  baseline=None):
    """``baseline``: node counters before the replay (after the warm-up), subtracted."""
    baseline = baseline or {}
    with probe.lock:
        results = dict(probe.results)
        received_at = dict(probe.received_at)
    entries, latencies = [], []
    writer = None
    persons = with_detections = 0
    for index, (stamp, raw) in enumerate(frames):
        msg = deserialize_message(raw, Image)
        result = results.get(stamp)
        detections = []
        if result is not None:
            latencies.append((received_at[stamp] - sent_at[stamp]) * 1000.0)
            for det in result.detections:
                hyp = det.results[0].hypothesis
                detections.append({"class_id": hyp.class_id, "score": round(hyp.score, 4),
                                   "bbox": {"cx": round(det.bbox.center.position.x, 2),
                                            "cy": round(det.bbox.center.position.y, 2),
                                            "w": round(det.bbox.size_x, 2),
                                            "h": round(det.bbox.size_y, 2)}})
        with_detections += bool(detections)
        persons += sum(d["class_id"] == "person" for d in detections)
        entries.append({"stamp_ns": stamp, "frame_id": msg.header.frame_id,
                        "processed": result is not None, "detections": detections})
        frame = raw_image_to_bgr(msg.encoding, msg.height, msg.width, msg.step, msg.data).copy()
        draw(frame, detections)
        if writer is None:
            writer = cv2.VideoWriter(str(args.out / "annotated.mp4"),
                                     cv2.VideoWriter_fourcc(*"mp4v"), 10.0,
                                     (frame.shape[1], frame.shape[0]))
        writer.write(frame)
        if args.snapshot_every and index % args.snapshot_every == 0:
            cv2.imwrite(str(args.out / f"frame_{index:04d}.png"), frame)
    if writer is not None:
        writer.release()
    (args.out / "detections.json").write_text(json.dumps({"frames": entries}))
    processed = sum(e["processed"] for e in entries)
    span = (max(received_at.values()) - min(sent_at.values())) if received_at else 0.0
    summary = {
        "frames_in": len(frames), "frames_processed": processed,
        "frames_unprocessed": len(frames) - processed,
        "frames_with_detections": with_detections, "persons_found": persons,
        "throughput_fps": round(processed / span, 2) if span > 0 else 0.0,
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 1) if latencies else None,
        "replay_rate": args.rate, "protocol": args.protocol, "warmup_frames": args.warmup,
        "node_counters": {k: int(v) - int(baseline.get(k, 0))
                          for k, v in probe.diagnostics.items()
                          if k.startswith("frames_") or k == "requests"},
        "batch_sizes": probe.diagnostics.get("batch_sizes", ""),
        "node_latency_ms_p50": probe.diagnostics.get("latency_ms_p50"),
        "node_latency_ms_p99": probe.diagnostics.get("latency_ms_p99"),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"demo: {summary['frames_in']} frames in, {processed} processed "
          f"({summary['frames_unprocessed']} dropped/failed), {with_detections} with detections, "
          f"{persons} persons found, {summary['throughput_fps']} frames/s, latency p50 "
          f"{summary['latency_ms_p50']} ms p99 {summary['latency_ms_p99']} ms -> {args.out}/")
    return 0 if processed else 1


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
