"""detect_node: camera images -> Triton detection model -> vision_msgs/Detection2DArray.

Cameras: ``cameras`` lists camera names (unset = one unnamed camera). For camera ``c`` the node
subscribes ``c/image`` (sensor_msgs/Image) — or ``c/image/compressed`` (CompressedImage) for an
entry written ``c:compressed`` — and publishes ``c/detections`` (reliable) and, only while someone
subscribes, ``c/debug_image`` (boxes drawn). The unnamed camera uses ``image``/``detections``.
All topics are relative: remap them or push a namespace.

Batching: callbacks only put frames into per-camera slots (``queue_size`` deep, newest wins, drops
counted); ``max_in_flight`` workers each take a batch of up to the model's ``max_batch_size``
frames (across cameras and time), flushed when full or after ``max_delay_ms``, or — with
``sync_tolerance_ms`` — one frame per camera with stamps within the tolerance.

Frame intake (``triton_ros.frame_intake``): a tensor model gets frames decoded and pre-processed
here; a model that takes encoded images (``*_encoded`` ensembles) gets CompressedImage JPEG/PNG
bytes untouched and raw Images encoded here (``encode_format``). Either way the size is checked
against ``max_image_pixels`` before decoding. On connect, the model's ``triton_ros.*`` config
parameters fill every parameter not given explicitly (``triton_ros.model_parameters``).

Lifecycle (a managed node, like the sequence nodes): constructing never blocks (parameter
services and ``/diagnostics`` work at once); ``configure`` connects and discovers the model,
failing with the reason (``TritonClient.check_ready``) while the server is absent; ``activate``
creates the subscriptions and publishers; ``deactivate`` removes them; ``cleanup`` stops the
workers and releases server resources (shared memory regions). ``autostart`` (default true)
configures and activates by itself: it retries ``configure`` for up to ``server_wait_timeout_s``,
then activates anyway and keeps reconnecting in the background (frames counted as
``dropped_server_unavailable``), with exponential backoff and jitter. Every frame is accounted
for on ``/diagnostics`` (received == published + dropped + pending, frames a publisher sent
that never arrived counted from its sequence numbers). Boxes are in source image pixels and
each array carries its source header (stamp, frame_id).
"""
import collections
import dataclasses
import re
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy)
from rclpy.subscription import Subscription
from rclpy.validate_topic_name import InvalidTopicNameException, validate_topic_name
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray

from triton_ros.batcher import CameraBatcher
from triton_ros.client.pool import ServerPool
from triton_ros.connection import Backoff, ModelConnection
from triton_ros.decoders import YOLO_BOX_FORMATS, YOLO_VERSIONS, TfodOutputs, YoloOutputs
from triton_ros.detections import ItemError
from triton_ros.detector import DECODERS, Detector, DetectorConfig
from triton_ros.drawing import draw_detections
from triton_ros.frame_intake import DEFAULT_MAX_IMAGE_PIXELS, ENCODE_FORMATS, FrameIntake
from triton_ros.model_parameters import merge_model_parameters
from triton_ros.model_spec import ModelSpecError
from triton_ros.preprocess import COLOR_ORDERS, RESIZE_MODES, SCALING_MODES
from triton_ros.publisher_gaps import PublisherGaps
from triton_ros.ros.connection_params import CONNECTION_PARAMETERS, client_from_params
from triton_ros.ros.messages import (bgr_to_image_msg, detections_to_msg, parse_serialized,
                                     payload_of, stamp_to_ns)
from triton_ros.ros.diagnostics import (bytes_per_frame_values, frame_values, latency_values,
                                        make_status, publish_status, server_change_reporter)
from triton_ros.ros.params import ParameterError, ParamSpec, declare_all
from triton_ros.ros.runner import reuse_large_buffers, run_node
from triton_ros.client import UNAVAILABLE_KINDS, TritonError

try:  # Iron and newer
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

# Iron and newer pass rclpy's MessageInfo (sequence numbers, publisher GID) to a callback that
# takes two arguments; Humble passes the message only (no dds_gap counting there).
MESSAGE_INFO = hasattr(Subscription, "CallbackType")

PARAMETERS = [
    *CONNECTION_PARAMETERS,
    ParamSpec("model_name", "ssd_mobilenet_v2_coco", "model name in the Triton repository"),
    ParamSpec("score_threshold", 0.5, "minimum detection score", read_only=False,
              min_value=0.0, max_value=1.0),
    ParamSpec("max_detections", 100, "at most this many detections per image (best first)",
              read_only=False, min_value=1, max_value=10000),
    ParamSpec("class_filter", Parameter.Type.STRING_ARRAY,
              "labels to keep (e.g. [person, car]); unset = all classes"),
    ParamSpec("labels_file", "",
              "class labels, one per line; empty = config/labels/<label_filename of the model>"),
    ParamSpec("decoder", "tfod", "output decoder: TF-OD/EfficientNMS or raw YOLO",
              choices=DECODERS),
    ParamSpec("tfod_box_format", "yxyx", "TF-OD box order", choices=("yxyx", "xyxy")),
    ParamSpec("tfod_normalized_boxes", True, "TF-OD boxes are in [0, 1] (else input pixels)"),
    ParamSpec("tfod_class_offset", 1, "subtract from class ids to get 0-based label indices",
              min_value=-1000, max_value=1000),
    ParamSpec("yolo_output", "output0",
              "YOLO output tensor name; several heads comma-separated (anchors concatenated)"),
    ParamSpec("yolo_version", "v8", "v5 ([N, anchors, 5+C]) or v8/YOLO11 ([N, 4+C, anchors])",
              choices=YOLO_VERSIONS),
    ParamSpec("yolo_box_format", "cxcywh", "YOLO box encoding", choices=YOLO_BOX_FORMATS),
    ParamSpec("yolo_normalized_boxes", False, "YOLO boxes in [0, 1] (else input pixels)"),
    ParamSpec("yolo_class_agnostic_nms", False, "NMS across classes (else per class)"),
    ParamSpec("yolo_iou_threshold", 0.45, "NMS IoU threshold", min_value=0.0, max_value=1.0),
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
    ParamSpec("mean", Parameter.Type.DOUBLE_ARRAY,
              "per-channel mean subtracted (model colour order, 0..255 units); unset = none"),
    ParamSpec("std", Parameter.Type.DOUBLE_ARRAY, "per-channel std divided by; unset = none"),
    ParamSpec("cameras", Parameter.Type.STRING_ARRAY,
              "camera names, 'name' (Image) or 'name:compressed'; unset = one unnamed camera"),
    ParamSpec("subscribe_compressed", False,
              "also subscribe <camera>/image/compressed for Image cameras"),
    ParamSpec("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS,
              "largest width x height accepted, checked from the header before decoding "
              "(larger: dropped as bad_input); default 7680x4320 (8K)",
              min_value=1, max_value=2**31 - 1),
    ParamSpec("input_kind", "",
              "what the model takes: tensor (pre-processed on the robot) or encoded_image (JPEG/"
              "PNG files, decoded on the server); empty = as the model says",
              choices=("", "tensor", "encoded_image")),
    ParamSpec("encode_format", "jpeg",
              "encoded-image models: how raw Images are encoded on the robot (png = lossless); "
              "CompressedImage data are sent as received", choices=ENCODE_FORMATS),
    ParamSpec("jpeg_quality", 90, "encoded-image models: JPEG quality for raw Images",
              min_value=1, max_value=100),
    ParamSpec("max_batch_size", 0, "frames per request; 0 = the model's max_batch_size",
              min_value=0, max_value=1024),
    ParamSpec("max_delay_ms", 5.0, "longest a frame waits for a fuller batch, milliseconds",
              min_value=0.0, max_value=10000.0),
    ParamSpec("max_in_flight", 1,
              "concurrent requests (workers); >1 may publish batches out of stamp order",
              min_value=1, max_value=64),
    ParamSpec("queue_size", 2, "frames kept per camera before the oldest is dropped (stale)",
              min_value=1, max_value=1000),
    ParamSpec("sync_tolerance_ms", 0.0,
              "synchronized mode: batch one frame per camera with stamps within this; 0 = off",
              min_value=0.0, max_value=10000.0),
    ParamSpec("image_reliability", "best_effort",
              "image subscription reliability (REP-2003 sensor data: best_effort)",
              choices=("best_effort", "reliable")),
    ParamSpec("image_durability", "volatile", "image subscription durability",
              choices=("volatile", "transient_local")),
    ParamSpec("image_qos_depth", 5, "image subscription history depth", min_value=1,
              max_value=1000),
    ParamSpec("publish_debug_image", True,
              "publish <camera>/debug_image with boxes drawn (only while subscribed)"),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics reports, seconds",
              min_value=0.1, max_value=60.0),
    ParamSpec("autostart", True, "configure and activate at start, waiting for the server in the "
              "background (else wait for lifecycle transitions)"),
]

# What a model's triton_ros.* config parameters may set: how to drive that model (inputs,
# decoding, labels), not the node's topics, queues or connection.
MODEL_SETTABLE = frozenset({
    "input_kind", "decoder", "tfod_box_format", "tfod_normalized_boxes", "tfod_class_offset",
    "yolo_output", "yolo_version", "yolo_box_format", "yolo_normalized_boxes",
    "yolo_class_agnostic_nms", "yolo_iou_threshold", "input_name", "input_width",
    "input_height", "input_layout", "color_order", "resize", "pad_value", "scaling", "mean",
    "std", "labels_file", "score_threshold", "max_detections", "class_filter"})

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                      history=HistoryPolicy.KEEP_LAST)


def parse_cameras(entries: list[str]) -> list[tuple[str, bool]]:
    """['front', 'rear:compressed'] -> [('front', False), ('rear', True)]; [] -> [('', False)]."""
    cameras = []
    for entry in entries or [""]:
        name, _, transport = entry.partition(":")
        if transport not in ("", "compressed"):
            raise ParameterError(f"cameras entry {entry!r}: transport must be empty or "
                                 "'compressed'")
        name = name.strip("/")
        if name or entries:
            try:  # the camera name becomes a topic prefix: rcl's own rules decide
                validate_topic_name(f"{name}/image")
            except InvalidTopicNameException as exc:
                raise ParameterError(
                    f"cameras entry {entry!r}: {name!r} cannot start a topic name (use letters, "
                    f"digits and '_', not starting with a digit): {exc}") from None
        cameras.append((name, transport == "compressed"))
    names = [name for name, _ in cameras]
    if len(set(names)) != len(names):
        raise ParameterError(f"cameras has duplicate names: {names}")
    return cameras


def reason_kind(problem) -> str:
    """The kind of problem a refused frame had, what its log is throttled by: the same for every
    frame with that problem, different for different problems. ImageDecodeError carries it
    (e.g. "unsupported encoding 'nv24'"); otherwise the type and message (an ItemError: the
    server's reason) with numbers masked ("... (12 bytes)" and "... (13 bytes)" are one kind)."""
    kind = getattr(problem, "kind", "")
    if isinstance(kind, str) and kind:
        return kind
    text = problem.reason if isinstance(problem, ItemError) else str(problem)
    return f"{type(problem).__name__}: {re.sub(r'[0-9]+', '#', text)[:120]}"


class Camera:
    """One camera's topics and counters."""

    def __init__(self, name: str):
        self.name = name
        self.counters = collections.Counter()
        self.settled = 0   # frames handed out by the batcher and counted since (see pending)
        self.gaps = PublisherGaps()
        self.publisher = None
        self.debug_publisher = None

    def topic(self, leaf: str) -> str:
        return f"{self.name}/{leaf}" if self.name else leaf


class DetectNode(LifecycleNode):
    NODE_NAME = "triton_detect"
    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        self.full_name = self.get_fully_qualified_name()  # for lines printed after rclpy shutdown
        p = declare_all(self, PARAMETERS)
        self.params = p
        self.detector_config = self._detector_config(p)
        self.detector_config.validate()
        camera_specs = parse_cameras(p["cameras"])
        self._lock = threading.Lock()
        self.requests = 0          # Triton requests that succeeded
        self.frames_inferred = 0   # frames those requests carried
        self.latencies_ms = collections.deque(maxlen=2000)
        self.last_error = ""
        self._last_error_at = 0.0
        self._last_logged: dict[str, float] = {}

        self.client = client_from_params(
            p, on_server_change=server_change_reporter(self, self._report_error))
        self.connection = ModelConnection(
            self._connect, Backoff(p["reconnect_initial_s"], p["reconnect_max_s"]),
            on_change=self._on_connection_change,
            fatal=(ModelSpecError, ValueError, FileNotFoundError))
        self.detector: Detector | None = None
        self.intake = FrameIntake(max_image_pixels=p["max_image_pixels"],
                                  encode_format=p["encode_format"],
                                  jpeg_quality=p["jpeg_quality"])
        # Parameters given explicitly (command line, params file, launch) win over a model's
        # triton_ros.* parameters. No public rclpy API lists them; _parameter_overrides is what
        # declare_parameter itself reads.
        self._explicit = set(getattr(self, "_parameter_overrides", {}))
        self.request_bytes = collections.deque(maxlen=100)  # (sent, received, frames)

        self._camera_specs = camera_specs
        self.cameras = {name: Camera(name) for name, _ in camera_specs}
        self.batcher = CameraBatcher(
            list(self.cameras), max_batch=self._max_batch(), max_delay_s=p["max_delay_ms"] / 1e3,
            depth=p["queue_size"],
            sync_tolerance_s=(p["sync_tolerance_ms"] / 1e3) if p["sync_tolerance_ms"] else None)
        self._image_subscriptions = []
        self._active = False
        self._running = False
        self._workers: list[threading.Thread] = []
        self._fatal: Exception | None = None     # a configuration error found by configure
        self._run_on = False                    # autostart: server wait over, run without it
        self._autostart_timer = None
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # Steady clock: under use_sim_time a ROS-time timer stops with /clock (end of a replay).
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.add_on_set_parameters_callback(self._on_set_parameters)

    # -- lifecycle --

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Connect and discover the model; FAILURE with the reason while that is not possible."""
        try:
            detector = self.connection.get()
        except (ModelSpecError, ValueError, FileNotFoundError) as exc:
            self._fatal = exc
            self.last_error = f"model cannot be used: {exc}"
            self.get_logger().error(f"configure failed: {self.last_error}")
            return TransitionCallbackReturn.FAILURE
        if detector is None and not self._run_on:
            self.last_error = self.connection.last_error
            if not self.params["autostart"]:  # autostart reports the wait itself
                self.get_logger().error(f"configure failed: {self.connection.last_error}")
            return TransitionCallbackReturn.FAILURE
        self._running = True
        self._workers = [threading.Thread(target=self._work, name=f"triton_infer_{i}",
                                          daemon=True)
                         for i in range(self.params["max_in_flight"])]
        for worker in self._workers:
            worker.start()
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Create publishers and subscriptions; frames flow from now on."""
        p = self.params
        image_qos = QoSProfile(
            depth=p["image_qos_depth"], history=HistoryPolicy.KEEP_LAST,
            reliability=(ReliabilityPolicy.BEST_EFFORT if p["image_reliability"] == "best_effort"
                         else ReliabilityPolicy.RELIABLE),
            durability=(DurabilityPolicy.VOLATILE if p["image_durability"] == "volatile"
                        else DurabilityPolicy.TRANSIENT_LOCAL))
        for name, compressed in self._camera_specs:
            camera = self.cameras[name]
            camera.publisher = self.create_publisher(Detection2DArray, camera.topic("detections"),
                                                     RELIABLE)
            if p["publish_debug_image"]:
                camera.debug_publisher = self.create_publisher(
                    Image, camera.topic("debug_image"), 2)
            subscriptions = [(CompressedImage, "image/compressed")] if compressed else (
                [(Image, "image")] + ([(CompressedImage, "image/compressed")]
                                      if p["subscribe_compressed"] else []))
            for msg_type, leaf in subscriptions:
                topic = camera.topic(leaf)
                # Images and CompressedImages come serialized (raw=True): the pixels or the
                # encoded file are read in place, not copied into a message first.
                packed = msg_type is CompressedImage
                callback = ((lambda msg, info, c=camera, z=packed: self._on_image(c, msg, info, z))
                            if MESSAGE_INFO else
                            (lambda msg, c=camera, z=packed: self._on_image(c, msg, {}, z)))
                self._image_subscriptions.append(self.create_subscription(
                    msg_type, topic, callback, image_qos,
                    event_callbacks=self._qos_events(camera, topic), raw=True))
                self.get_logger().info(f"camera {name or '(default)'}: "
                                       f"{self.resolve_topic_name(topic)} -> "
                                       f"{self.resolve_topic_name(camera.topic('detections'))}")
        self._active = True
        self.get_logger().info(f"ready: {len(self.cameras)} camera(s), "
                               f"{p['max_in_flight']} request(s) in flight")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Remove subscriptions and publishers (frames still in flight: ``dropped_inactive``)."""
        self._active = False
        self._release_topics()
        self.get_logger().info("deactivated: no subscriptions")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop the workers and release server resources (shared memory, connections)."""
        self._stop_workers()
        self.client.close()  # unregisters and unlinks this node's shared memory regions
        self.get_logger().info("cleaned up: server resources released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._release_topics()
        return TransitionCallbackReturn.SUCCESS

    def _release_topics(self) -> None:
        for subscription in self._image_subscriptions:
            self.destroy_subscription(subscription)
        self._image_subscriptions = []
        for camera in self.cameras.values():
            for publisher in (camera.publisher, camera.debug_publisher):
                if publisher is not None:
                    self.destroy_publisher(publisher)
            camera.publisher = camera.debug_publisher = None

    def _stop_workers(self) -> None:
        self._running = False  # workers poll the batcher every 0.2 s and see this
        for worker in self._workers:
            worker.join(timeout=5.0)
        self._workers = []

    def autostart(self) -> None:
        """Configure and activate now, or keep retrying configure in the background."""
        if not self.params["autostart"]:
            self.get_logger().info("autostart false: waiting for lifecycle transitions")
            return
        timeout_s = self.params["server_wait_timeout_s"]
        self.get_logger().info(f"waiting up to {timeout_s:.0f} s for {self.client}")
        self._wait_deadline = time.monotonic() + timeout_s
        if not self._autostart_step():
            self._autostart_timer = self.create_timer(
                0.2, self._autostart_step, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _autostart_step(self) -> bool:
        """One autostart attempt (timer callback); True once active. Raises a fatal error."""
        if self._state_id() == 1:  # unconfigured
            self.trigger_configure()
            if self._fatal is not None:
                raise self._fatal  # exits 2 from main, as a bad parameter does
            if self._state_id() == 1 and time.monotonic() >= self._wait_deadline:
                self._run_on = True
                self.get_logger().error(
                    f"{self.client} not ready after {self.params['server_wait_timeout_s']:.0f} s "
                    f"({self.connection.last_error}); running on and reconnecting")
                self.trigger_configure()
        if self._state_id() == 2:  # inactive
            self.trigger_activate()
        done = self._state_id() == 3
        if done and self._autostart_timer is not None:
            self._autostart_timer.cancel()
            self.destroy_timer(self._autostart_timer)
            self._autostart_timer = None
        return done

    def _state_id(self) -> int:
        """lifecycle_msgs/State id (1 unconfigured, 2 inactive, 3 active)."""
        return self._state_machine.current_state[0]  # what LifecycleNode itself reads

    # -- configuration and connection --

    def _detector_config(self, p) -> DetectorConfig:
        return DetectorConfig(
            score_threshold=p["score_threshold"], max_detections=p["max_detections"],
            class_filter=frozenset(c for c in p["class_filter"] if c),
            labels_file=p["labels_file"], decoder=p["decoder"],
            tfod=TfodOutputs(box_format=p["tfod_box_format"],
                             normalized=p["tfod_normalized_boxes"],
                             class_offset=p["tfod_class_offset"]),
            yolo=YoloOutputs(output=p["yolo_output"], version=p["yolo_version"],
                             box_format=p["yolo_box_format"],
                             normalized=p["yolo_normalized_boxes"],
                             class_agnostic_nms=p["yolo_class_agnostic_nms"],
                             iou_threshold=p["yolo_iou_threshold"]),
            input_name=p["input_name"], input_width=p["input_width"],
            input_height=p["input_height"], input_layout=p["input_layout"],
            color_order=p["color_order"], resize=p["resize"], pad_value=p["pad_value"],
            scaling=p["scaling"], mean=tuple(p["mean"]), std=tuple(p["std"]))

    def _connect(self) -> Detector:
        """Check readiness, discover the model, take the model's triton_ros.* parameters where
        none was given explicitly, build the Detector (raises when not possible)."""
        self.client.check_ready()  # raises with the reason (refused, TLS, missing model, ...)
        spec = self.client.model_spec()
        values, taken = merge_model_parameters(self.params, self._explicit, spec.parameters,
                                               spec.name)
        not_settable = sorted(set(taken) - MODEL_SETTABLE)
        if not_settable:
            raise ModelSpecError(f"model {spec.name!r}: config parameters "
                                 f"{['triton_ros.' + n for n in not_settable]} set node "
                                 "parameters a model may not set (only how to drive the model: "
                                 f"{sorted(MODEL_SETTABLE)})")
        config = self._detector_config(values)
        detector = Detector(self.client, config, spec)
        kind = "encoded_image" if detector.encoded_input else "tensor"
        if values["input_kind"] and values["input_kind"] != kind:
            raise ModelSpecError(f"input_kind {values['input_kind']!r}, but model {spec.name!r} "
                                 f"takes {kind} input")
        if taken:
            self.get_logger().info(
                f"model {spec.name!r} configures: "
                + ", ".join(f"{name}={value!r}" for name, value in sorted(taken.items()))
                + " (its triton_ros.* parameters; explicit parameters override them)")
        if detector.encoded_input:
            self.get_logger().info(
                f"model {spec.name!r}: encoded-image input {detector.input_name!r} (JPEG/PNG "
                f"decoded on the server; raw Images sent as {self.intake.encode_format}), "
                f"max_batch_size {spec.max_batch_size}, {len(detector.labels)} labels")
        else:
            image = detector.preprocess.cfg
            self.get_logger().info(
                f"model {spec.name!r}: input {detector.input_name!r} {image.layout} "
                f"{image.width}x{image.height} {image.dtype}, max_batch_size "
                f"{spec.max_batch_size}, {len(detector.labels)} labels")
        self.detector_config = config
        self.detector = detector
        if hasattr(self, "batcher"):
            self.batcher.set_max_batch(self._max_batch())
        return detector

    def _max_batch(self) -> int:
        if self.params["max_batch_size"]:
            return self.params["max_batch_size"]
        return self.detector.max_batch if self.detector is not None else 1

    def _on_connection_change(self, state: str, detail: str) -> None:
        if hasattr(self, "batcher"):  # frames displaced during an outage are lost to it
            self.batcher.evict_reason = "stale" if state == "ready" else "server_unavailable"
        if state == "ready":
            self.last_error = ""
            self.get_logger().info(f"connected to {self.client}")
        else:
            self._report_error(f"Triton {state}: {detail}", kind="connection" + state,
                               every_s=10.0)

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
            self.params.update(changes)  # a reconnect rebuilds the detector from these ...
            self._explicit.update(changes)  # ... and the model's values must not undo them
            self.detector_config = dataclasses.replace(self.detector_config, **changes)
            if self.detector is not None:
                self.detector.cfg = dataclasses.replace(self.detector.cfg, **changes)
            self.get_logger().info(f"updated {changes}")
        return SetParametersResult(successful=True)

    def _qos_events(self, camera: Camera, topic: str) -> SubscriptionEventCallbacks:
        """Count frames DDS reports lost; explain QoS mismatches (a silent failure otherwise)."""
        name = self.resolve_topic_name(topic)

        def lost(info):
            with self._lock:
                if camera.gaps.supported:
                    # The same frames show as sequence gaps (dropped_dds_gap) once a later frame
                    # of that publisher arrives: reported here, counted there, not twice.
                    camera.counters["dds_lost_reported"] += info.total_count_change
                else:  # sent to this node but never delivered: received and dropped
                    camera.counters["received"] += info.total_count_change
                    camera.counters["dropped_dds_lost"] += info.total_count_change
            self._report_error(f"DDS lost {info.total_count_change} frame(s) on {name}",
                               kind=f"lost{name}", every_s=5.0)

        def incompatible(info):
            self._report_error(
                f"a publisher on {name} offers QoS incompatible with this subscription "
                f"(policy id {info.last_policy_kind}); no frames will arrive from it. Hint: this "
                f"node asks image_reliability={self.params['image_reliability']!r}, "
                f"image_durability={self.params['image_durability']!r}; a best_effort camera "
                "needs image_reliability:=best_effort, a volatile one "
                "image_durability:=volatile", kind=f"qos{name}", every_s=10.0)
        return SubscriptionEventCallbacks(message_lost=lost, incompatible_qos=incompatible)

    # -- data path --

    def _settle(self, pending, counter: str) -> None:
        """Count a frame the batcher handed out as ``counter`` (published, dropped_<reason>)."""
        camera = self.cameras[pending.camera]
        with self._lock:
            camera.counters[counter] += 1
            camera.settled += 1
            pending.settled = True

    def _on_image(self, camera: Camera, msg, info, compressed: bool = False) -> None:
        """A frame taken from DDS, serialized (``compressed``: a CompressedImage, else an Image;
        ``info``: rclpy's MessageInfo, {} where rclpy has none).
        Frames its publisher sent since its previous one and never arrived are counted received
        and dropped_dds_gap."""
        gid = info.get("publisher_gid") or {}
        with self._lock:
            gap = camera.gaps.observe(bytes(gid.get("data", b"")),
                                      info.get("publication_sequence_number"))
            if gap:
                camera.counters["received"] += gap
                camera.counters["dropped_dds_gap"] += gap
        if gap:
            self._report_error(f"{gap} frame(s) of camera {camera.name or '(default)'} never "
                               "arrived (publisher sequence numbers skipped: lost or overwritten "
                               "in the subscription queue, see image_qos_depth)",
                               kind=f"gap/{camera.name}", every_s=5.0)
        if isinstance(msg, bytes):  # as subscribed: serialized
            try:
                msg = parse_serialized(msg, compressed)
            except ValueError as exc:
                with self._lock:
                    camera.counters["received"] += 1
                    camera.counters["dropped_bad_input"] += 1
                self._bad_input(camera, "", exc)
                return
        # Counted and queued in one step, so received == published + dropped + pending holds at
        # every moment. A frame this displaces is counted by the batcher as "stale".
        with self._lock:
            camera.counters["received"] += 1
            self.batcher.put(camera.name, stamp_to_ns(msg.header.stamp), (time.monotonic(), msg))

    def _work(self) -> None:
        while self._running:
            batch = self.batcher.next_batch(timeout_s=0.2)
            if not batch:
                continue
            try:
                self._process(batch)
            except Exception as exc:  # never let one batch stop the worker; count it instead
                for pending in batch:
                    if not pending.settled:
                        self._settle(pending, "dropped_internal_error")
                self._report_error(f"unexpected error on a batch of {len(batch)}: "
                                   f"{type(exc).__name__}: {exc}", kind="internal")

    def _process(self, batch) -> None:
        try:
            detector = self.connection.get()
        except (ModelSpecError, ValueError, FileNotFoundError) as exc:
            detector = None
            self._report_error(f"model cannot be used: {exc}", kind="model")
        if detector is None:
            for pending in batch:
                self._settle(pending, "dropped_server_unavailable")
            return
        encoded = detector.encoded_input
        inputs, items = [], []   # per frame: a tensor (prepared) or one encoded image file
        for pending in batch:
            received_at, msg = pending.item
            payload = payload_of(msg)
            try:  # a frame that cannot be converted or pre-processed fails alone, whatever why
                if encoded:
                    inputs.append(self.intake.to_encoded(payload))
                    frame = None
                else:
                    frame = self.intake.to_bgr(payload)
                    inputs.append(detector.preprocess(frame))
                items.append((pending, received_at, msg, payload, frame))
            except Exception as exc:
                self._settle(pending, "dropped_bad_input")
                self._bad_input(self.cameras[pending.camera], msg.header.frame_id, exc)
        if not items:
            return
        stale_before = self.batcher.drop_snapshot("stale")
        try:
            results = (detector.detect_encoded(inputs) if encoded
                       else detector.detect_prepared(inputs))
        except (TritonError, ValueError, IndexError, KeyError) as exc:
            unavailable = isinstance(exc, TritonError) and exc.kind in UNAVAILABLE_KINDS
            for pending, *_ in items:
                self._settle(pending, "dropped_server_unavailable" if unavailable
                             else "dropped_inference_failed")
            self._report_error(f"inference failed for {len(items)} frame(s): {exc}",
                               kind="inference")
            if unavailable:
                # Frames displaced while this request waited were lost to the outage too.
                self.batcher.reclassify(stale_before, "stale", "server_unavailable")
                self.connection.failed(exc)
            return
        if isinstance(self.client, ServerPool) and self.client.last_failover() is not None:
            # answered only by the retry on another server: what was displaced while the
            # first server hung was lost to its outage too, not to a slow model
            self.batcher.reclassify(stale_before, "stale", "server_unavailable")
        now = time.monotonic()
        with self._lock:
            self.requests += 1
            self.frames_inferred += len(items)
            if len(items) <= detector.max_batch:  # one request: its byte counts are the batch's
                self.request_bytes.append((*detector.last_request_bytes, len(items)))
        for (pending, received_at, msg, payload, frame), dets in zip(items, results):
            camera = self.cameras[pending.camera]
            if isinstance(dets, ItemError):  # the server could not use this one image
                self._settle(pending, "dropped_bad_input")
                self._bad_input(camera, msg.header.frame_id, dets)
                continue
            publisher = camera.publisher
            if publisher is None:  # deactivated while this batch was in flight
                self._settle(pending, "dropped_inactive")
                continue
            publisher.publish(detections_to_msg(dets, msg.header))
            self._settle(pending, "published")
            with self._lock:
                self.latencies_ms.append((now - received_at) * 1000.0)
            if camera.debug_publisher is not None and \
                    camera.debug_publisher.get_subscription_count() > 0:
                if frame is None:  # encoded path: decoded here only for a debug viewer
                    frame = self.intake.to_bgr(payload)
                camera.debug_publisher.publish(
                    bgr_to_image_msg(draw_detections(frame, dets), msg.header))

    def _bad_input(self, camera: Camera, frame_id: str, problem) -> None:
        """Log a refused frame (an exception, or the server's ItemError), throttled per camera
        and kind of problem (see reason_kind)."""
        text = (f"the server could not use it: {problem.reason}" if isinstance(problem, ItemError)
                else f"{type(problem).__name__}: {problem}")
        self._report_error(
            f"bad frame from {frame_id!r} (camera {camera.name or '(default)'}): {text}",
            kind=f"bad_input/{camera.name}/{reason_kind(problem)}")

    # -- reporting --

    def _report_error(self, text: str, kind: str, every_s: float = 2.0) -> None:
        """Log ``text`` unless an error of the same ``kind`` was logged in the last ``every_s``.

        (rclpy's throttling is per call site, which would hide a second, different problem.)
        """
        self.last_error = text
        now = self._last_error_at = time.monotonic()
        if now - self._last_logged.get(kind, -every_s) >= every_s:
            self._last_logged[kind] = now
            self.get_logger().error(text)

    def camera_counters(self, camera: Camera) -> collections.Counter:
        """received, published, dropped_<reason> (incl. the batcher's drops) and pending (in
        the batcher's slot or in a request) of one camera, read at one moment:
        received == published + sum(dropped_*) + pending."""
        with self._lock:  # _on_image counts and queues under this lock: nothing in between
            counters = collections.Counter(camera.counters)
            in_slot, taken, dropped = self.batcher.camera_state(camera.name)
            in_flight = taken - camera.settled
        for reason, count in dropped.items():
            counters[f"dropped_{reason}"] += count
        counters["pending"] = in_slot + in_flight
        return counters

    def totals(self) -> collections.Counter:
        """Frame counters summed over cameras (received, published, dropped_<reason>)."""
        total = collections.Counter()
        for camera in self.cameras.values():
            total.update(self.camera_counters(camera))
        return total

    def status(self) -> DiagnosticStatus:
        per_camera = {camera.name: self.camera_counters(camera)
                      for camera in self.cameras.values()}
        values = frame_values(per_camera)
        lost = sum(sum(v for k, v in counters.items() if k.startswith("dropped_"))
                   for counters in per_camera.values())
        level, message = DiagnosticStatus.OK, "ok"
        if lost:
            level, message = DiagnosticStatus.WARN, f"{lost} frame(s) not processed"
        servers_down = self.client.summary() if isinstance(self.client, ServerPool) else ""
        if servers_down:
            level, message = DiagnosticStatus.WARN, servers_down
        if self.connection.state != "ready":
            level = DiagnosticStatus.ERROR
            message = f"Triton {self.connection.state}: {self.connection.last_error}"
        with self._lock:
            latencies = list(self.latencies_ms)
            recent_bytes = list(self.request_bytes)
        batch_sizes = dict(self.batcher.batch_sizes)
        values.update({
            "server": f"{self.client.protocol}://{self.client.url}",
            "model": self.client.model_name, "connection": self.connection.state,
            "lifecycle_state": self._state_machine.current_state[1],
            "reconnects": str(max(0, self.connection.connects - 1)),
            "connection_losses": str(self.connection.losses),
            "requests": str(self.requests), "frames_inferred": str(self.frames_inferred),
            "batch_sizes": " ".join(f"{k}:{v}" for k, v in sorted(batch_sizes.items())),
            "last_error": self.last_error,
            "last_error_age_s": (f"{time.monotonic() - self._last_error_at:.1f}"
                                 if self.last_error else "")})
        values.update(latency_values(latencies))
        values.update(bytes_per_frame_values(recent_bytes))
        if self.detector is not None:
            values["input_kind"] = ("encoded_image" if self.detector.encoded_input
                                    else "tensor")
        if isinstance(self.client, ServerPool):
            values.update(self.client.diagnostic_values())
        return make_status(self, level, message, values, self.client.url)

    def _publish_diagnostics(self) -> None:
        publish_status(self, self.diagnostics, self.status())

    def shutdown(self) -> None:
        """Stop the workers and print the final counters (nothing is lost silently)."""
        self._active = False
        self._running = False
        self.batcher.close()
        for worker in self._workers:
            worker.join(timeout=5.0)
        totals = self.totals()
        totals.update({k: 0 for k in ("received", "published") if k not in totals})
        fields = [f"{k}={v}" for k, v in sorted(totals.items())]
        fields += [f"requests={self.requests}", f"frames_inferred={self.frames_inferred}"]
        # stderr, not the logger: at Ctrl-C the ROS context (and /rosout) is already shut down.
        print(f"[{self.full_name}] final counters: {', '.join(fields)}", file=sys.stderr,
              flush=True)
        self.client.close()


def main(args=None) -> int:
    reuse_large_buffers()  # images arrive in fresh multi-MB buffers: reuse heap memory
    return run_node(DetectNode, args, config_errors=(ParameterError, ModelSpecError, ValueError,
                                                     FileNotFoundError),
                    start=DetectNode.autostart)


if __name__ == "__main__":
    sys.exit(main())
