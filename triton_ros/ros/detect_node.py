"""detect_node: camera images -> Triton detection model -> vision_msgs/Detection2DArray.

Topics (relative, remap them): subscribes ``image`` (sensor_msgs/Image) and
``image/compressed`` (sensor_msgs/CompressedImage, only if ``subscribe_compressed``); publishes
``detections`` (vision_msgs/Detection2DArray, reliable) and ``/diagnostics``.

Threading: subscription callbacks only enqueue (bounded, oldest dropped and counted); one worker
thread takes up to ``max_batch_size`` frames, runs one Triton request and publishes. Boxes are in
the source image's pixels and each array carries its source header (stamp, frame_id).
"""
import dataclasses
import sys
import threading
import time

import numpy as np
import rclpy
from rcl_interfaces.msg import SetParametersResult
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

try:  # Iron and newer
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

from triton_ros.decoders import TfodOutputs
from triton_ros.detector import Detector, DetectorConfig
from triton_ros.frame_queue import FrameQueue
from triton_ros.preprocess import COLOR_ORDERS, RESIZE_MODES, SCALING_MODES
from triton_ros.ros.messages import detections_to_msg, image_msg_to_bgr
from triton_ros.ros.params import ParameterError, ParamSpec, declare_all
from triton_ros.triton_client import PROTOCOLS, TritonClient, TritonError

PARAMETERS = [
    ParamSpec("server_url", "127.0.0.1:8001", "Triton endpoint host:port (gRPC 8001, HTTP 8000)"),
    ParamSpec("protocol", "grpc", "Triton protocol", choices=PROTOCOLS),
    ParamSpec("model_name", "ssd_mobilenet_v2_coco", "model name in the Triton repository"),
    ParamSpec("model_version", "", "model version; empty = the server's latest"),
    ParamSpec("request_timeout_s", 5.0, "per-request timeout, seconds", min_value=0.01,
              max_value=600.0),
    ParamSpec("server_wait_timeout_s", 30.0,
              "how long to wait at start for the server and model to be ready, seconds",
              min_value=0.0, max_value=3600.0),
    ParamSpec("score_threshold", 0.5, "minimum detection score", read_only=False,
              min_value=0.0, max_value=1.0),
    ParamSpec("max_detections", 100, "at most this many detections per image (best first)",
              read_only=False, min_value=1, max_value=10000),
    ParamSpec("class_filter", Parameter.Type.STRING_ARRAY,
              "labels to keep (e.g. [person, car]); unset = all classes"),
    ParamSpec("labels_file", "",
              "class labels, one per line; empty = config/labels/<label_filename of the model>"),
    ParamSpec("decoder", "tfod", "output decoder", choices=("tfod",)),
    ParamSpec("tfod_box_format", "yxyx", "TF-OD box order", choices=("yxyx", "xyxy")),
    ParamSpec("tfod_normalized_boxes", True, "TF-OD boxes are in [0, 1] (else input pixels)"),
    ParamSpec("tfod_class_offset", 1, "subtract from class ids to get 0-based label indices",
              min_value=-1000, max_value=1000),
    ParamSpec("input_name", "", "image input tensor; empty = discovered"),
    ParamSpec("input_width", 0, "model input width in pixels; 0 = discovered",
              min_value=0, max_value=16384),
    ParamSpec("input_height", 0, "model input height in pixels; 0 = discovered",
              min_value=0, max_value=16384),
    ParamSpec("input_layout", "", "NHWC or NCHW; empty = discovered",
              choices=("", "NHWC", "NCHW")),
    ParamSpec("color_order", "RGB", "channel order the model expects", choices=COLOR_ORDERS),
    ParamSpec("resize", "stretch", "resize mode", choices=RESIZE_MODES),
    ParamSpec("pad_value", 114, "letterbox fill value", min_value=0, max_value=255),
    ParamSpec("scaling", "NONE", "pixel scaling (as Triton's image_client.py)",
              choices=SCALING_MODES),
    ParamSpec("queue_size", 8, "frames buffered before the oldest is dropped",
              min_value=1, max_value=1000),
    ParamSpec("subscribe_compressed", False, "also subscribe to image/compressed"),
    ParamSpec("image_reliability", "best_effort",
              "image subscription reliability (REP-2003 sensor data: best_effort)",
              choices=("best_effort", "reliable")),
    ParamSpec("image_qos_depth", 5, "image subscription history depth", min_value=1,
              max_value=1000),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics reports, seconds",
              min_value=0.1, max_value=60.0),
]


class DetectNode(Node):
    def __init__(self, **kwargs):
        super().__init__("triton_detect", **kwargs)
        p = declare_all(self, PARAMETERS)
        self.params = p
        self.client = TritonClient(p["server_url"], p["model_name"], p["protocol"],
                                   p["model_version"], p["request_timeout_s"])
        self.get_logger().info(f"waiting up to {p['server_wait_timeout_s']:.0f} s for "
                               f"{self.client}")
        self.client.wait_until_ready(p["server_wait_timeout_s"])
        self.detector = Detector(self.client, self._detector_config(p))
        image = self.detector.preprocess.cfg
        self.get_logger().info(
            f"model {self.detector.spec.name!r}: input {self.detector.input_name!r} "
            f"{image.layout} {image.width}x{image.height} {image.dtype}, max_batch_size "
            f"{self.detector.spec.max_batch_size}, {len(self.detector.labels)} labels")

        self.counters = {"received": 0, "processed": 0, "published": 0, "dropped_queue_full": 0,
                         "dropped_by_dds": 0, "bad_input": 0, "inference_failed": 0}
        self.latencies_ms: list[float] = []
        self.last_error = ""
        self._last_logged: dict[str, float] = {}
        self._lock = threading.Lock()
        self.queue = FrameQueue(p["queue_size"])
        self.publisher = self.create_publisher(
            Detection2DArray, "detections",
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                       history=HistoryPolicy.KEEP_LAST))
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        image_qos = QoSProfile(
            depth=p["image_qos_depth"], history=HistoryPolicy.KEEP_LAST,
            reliability=(ReliabilityPolicy.BEST_EFFORT if p["image_reliability"] == "best_effort"
                         else ReliabilityPolicy.RELIABLE),
            durability=qos_profile_sensor_data.durability)
        self.create_subscription(Image, "image", self._on_image, image_qos,
                                 event_callbacks=self._qos_events("image"))
        if p["subscribe_compressed"]:
            self.create_subscription(CompressedImage, "image/compressed", self._on_image,
                                     image_qos, event_callbacks=self._qos_events("image/compressed"))
        # Steady clock: under use_sim_time a ROS-time timer stops with /clock (end of a replay).
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._running = True
        self._worker = threading.Thread(target=self._work, name="triton_infer", daemon=True)
        self._worker.start()
        self.get_logger().info(f"subscribed to {self.resolve_topic_name('image')}, publishing "
                               f"{self.resolve_topic_name('detections')}")

    @staticmethod
    def _detector_config(p) -> DetectorConfig:
        return DetectorConfig(
            score_threshold=p["score_threshold"], max_detections=p["max_detections"],
            class_filter=frozenset(c for c in p["class_filter"] if c),
            labels_file=p["labels_file"], decoder=p["decoder"],
            tfod=TfodOutputs(box_format=p["tfod_box_format"],
                             normalized=p["tfod_normalized_boxes"],
                             class_offset=p["tfod_class_offset"]),
            input_name=p["input_name"], input_width=p["input_width"],
            input_height=p["input_height"], input_layout=p["input_layout"],
            color_order=p["color_order"], resize=p["resize"], pad_value=p["pad_value"],
            scaling=p["scaling"])

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Apply the dynamic parameters (score_threshold, max_detections) between requests."""
        changes = {}
        specs = {spec.name: spec for spec in PARAMETERS}
        for param in params:
            spec = specs.get(param.name)
            if spec is None or spec.read_only:
                continue
            problem = spec.problem(param.value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
            changes[param.name] = param.value
        if changes:
            self.detector.cfg = dataclasses.replace(self.detector.cfg, **changes)
            self.get_logger().info(f"updated {changes}")
        return SetParametersResult(successful=True)

    def _qos_events(self, topic: str) -> SubscriptionEventCallbacks:
        """Count frames DDS reports lost; explain QoS mismatches (a silent failure otherwise)."""
        name = self.resolve_topic_name(topic)

        def lost(info):
            self._count("dropped_by_dds", info.total_count_change)
            self.get_logger().warning(f"DDS lost {info.total_count_change} frame(s) on {name} "
                                   f"({info.total_count} so far)", throttle_duration_sec=5.0)

        def incompatible(info):
            self.get_logger().error(
                f"a publisher on {name} has QoS incompatible with this subscription "
                f"(policy id {info.last_policy_kind}); no frames will arrive from it. Hint: "
                f"image_reliability is {self.params['image_reliability']!r} — a best_effort "
                "camera needs image_reliability:=best_effort; check durability too")
        return SubscriptionEventCallbacks(message_lost=lost, incompatible_qos=incompatible)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] += n

    def _on_image(self, msg) -> None:
        self._count("received")
        if self.queue.put((time.monotonic(), msg)) is not None:
            self._count("dropped_queue_full")
            self.get_logger().warning("inference is behind: dropped the oldest queued frame "
                                   f"({self.counters['dropped_queue_full']} so far)",
                                   throttle_duration_sec=5.0)

    def _work(self) -> None:
        while self._running:
            batch = self.queue.take(self.detector.max_batch, timeout_s=0.2)
            if batch:
                self._process(batch)

    def _process(self, batch) -> None:
        frames, items = [], []
        for received_at, msg in batch:
            try:
                frames.append(image_msg_to_bgr(msg))
                items.append((received_at, msg))
            except ValueError as exc:
                self._count("bad_input")
                self._report_error(f"bad frame from {msg.header.frame_id!r}: {exc}",
                                   kind=type(exc).__name__ + str(exc)[:20])
        if not frames:
            return
        try:
            results = self.detector.detect(frames)
        except (TritonError, ValueError) as exc:
            self._count("inference_failed", len(frames))
            self._report_error(f"inference failed for {len(frames)} frame(s): {exc}",
                               kind="inference")
            return
        self._count("processed", len(frames))
        now = time.monotonic()
        for (received_at, msg), dets in zip(items, results):
            self.publisher.publish(detections_to_msg(dets, msg.header))
            with self._lock:
                self.counters["published"] += 1
                self.latencies_ms.append((now - received_at) * 1000.0)
                del self.latencies_ms[:-1000]

    def _report_error(self, text: str, kind: str, every_s: float = 2.0) -> None:
        """Log ``text`` unless an error of the same ``kind`` was logged in the last ``every_s``.

        (rclpy's throttling is per call site, which would hide a second, different problem.)
        """
        self.last_error = text
        now = time.monotonic()
        if now - self._last_logged.get(kind, -every_s) >= every_s:
            self._last_logged[kind] = now
            self.get_logger().error(text)

    def status(self) -> DiagnosticStatus:
        with self._lock:
            counters = dict(self.counters)
            latencies = list(self.latencies_ms)
        lost = (counters["dropped_queue_full"] + counters["dropped_by_dds"] + counters["bad_input"]
                + counters["inference_failed"])
        level = DiagnosticStatus.OK if not lost else DiagnosticStatus.WARN
        message = "ok" if not lost else f"{lost} frame(s) not processed"
        if counters["inference_failed"] and not counters["processed"]:
            level, message = DiagnosticStatus.ERROR, "no successful inference"
        values = {**{f"frames_{k}": str(v) for k, v in counters.items()},
                  "server": f"{self.client.protocol}://{self.client.url}",
                  "model": self.client.model_name, "last_error": self.last_error}
        if latencies:
            values["latency_ms_p50"] = f"{np.percentile(latencies, 50):.1f}"
            values["latency_ms_p99"] = f"{np.percentile(latencies, 99):.1f}"
        return DiagnosticStatus(
            level=level, name=f"triton_ros: {self.get_fully_qualified_name()}", message=message,
            hardware_id=self.client.url,
            values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray(status=[self.status()])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics.publish(array)

    def shutdown(self) -> None:
        """Stop the worker and log the final counters (nothing is lost silently)."""
        self._running = False
        self.queue.close()
        self._worker.join(timeout=5.0)
        with self._lock:
            unprocessed = len(self.queue)
            summary = ", ".join(f"{k}={v}" for k, v in self.counters.items())
        self.get_logger().info(f"final counters: {summary}, left_in_queue={unprocessed}")
        self.client.close()


def main(args=None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = DetectNode()
        rclpy.spin(node)
    except (ParameterError, TritonError, ValueError, FileNotFoundError) as exc:
        # Configuration problems: one clear line and a non-zero exit.
        print(f"[triton_detect] configuration error: {exc}", file=sys.stderr, flush=True)
        return 2
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        if node is not None and hasattr(node, "_worker"):
            node.shutdown()
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
