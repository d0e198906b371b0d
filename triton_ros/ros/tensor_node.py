"""tensor_node: Isaac ROS TensorList -> any model on a (remote) Triton server -> TensorList.

A drop-in for Isaac ROS's in-process Triton node (``isaac_ros_triton``) in an Isaac ROS graph
(encoder -> Triton -> decoder): subscribes ``tensor_pub`` and publishes ``tensor_sub``
(``isaac_ros_tensor_list_interfaces/msg/TensorList``, relative names as upstream), with
upstream's binding parameters: ``input_tensor_names[i]`` (a tensor of the incoming message)
feeds model input ``input_binding_names[i]``; model output ``output_binding_names[i]`` is
published as ``output_tensor_names[i]``. Empty lists bind every model input/output under its
own name. Dtypes and shapes come from model discovery; tensors are sent as they are (no cast).

Each message is one request (no batching across messages); outputs carry the input's header.
Batch dimension rules: :mod:`triton_ros.tensors`. Connection (TLS, auth, shared memory,
compression, reconnect with backoff) as detect_node, with the same parameters. A message that
does not fit the model is dropped with one error line and counted (``dropped_bad_input``) on
``/diagnostics``; the node keeps running. ``input_tensor_formats``/``output_tensor_formats``
are accepted for compatibility and not used (they name NITROS GPU layouts; a remote server
receives plain host tensors).
"""
import collections
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from isaac_ros_tensor_list_interfaces.msg import Tensor, TensorList, TensorShape
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, qos_profile_sensor_data

from triton_ros.connection import Backoff, ModelConnection
from triton_ros.frame_queue import FrameQueue
from triton_ros.model_spec import ModelSpecError
from triton_ros.ros import detect_node
from triton_ros.ros.connection_params import CONNECTION_PARAMETERS, client_from_params
from triton_ros.ros.diagnostics import latency_values, make_status, publish_status
from triton_ros.ros.params import ParameterError, ParamSpec, declare_all
from triton_ros.ros.runner import run_node
from triton_ros.tensors import Bindings, TensorError, array_to_fields, tensors_by_name
from triton_ros.client import TritonError

NODE_NAME = "triton_tensor"
QOS_PRESETS = ("DEFAULT", "SENSOR_DATA")

# The connection table shared by every node, then detect_node's model_name and diagnostics period.
_DETECT = {spec.name: spec for spec in detect_node.PARAMETERS}

PARAMETERS = [*CONNECTION_PARAMETERS, _DETECT["model_name"], _DETECT["diagnostics_period_s"],
    ParamSpec("input_tensor_names", Parameter.Type.STRING_ARRAY,
              "message tensors fed to the model, paired with input_binding_names; "
              "unset = every model input under its own name"),
    ParamSpec("input_binding_names", Parameter.Type.STRING_ARRAY,
              "model inputs fed by input_tensor_names (same order)"),
    ParamSpec("output_tensor_names", Parameter.Type.STRING_ARRAY,
              "names the outputs are published under, paired with output_binding_names; "
              "unset = every model output under its own name"),
    ParamSpec("output_binding_names", Parameter.Type.STRING_ARRAY,
              "model outputs published as output_tensor_names (same order)"),
    ParamSpec("input_tensor_formats", Parameter.Type.STRING_ARRAY,
              "accepted for isaac_ros_triton compatibility; not used (NITROS layouts)"),
    ParamSpec("output_tensor_formats", Parameter.Type.STRING_ARRAY,
              "accepted for isaac_ros_triton compatibility; not used (NITROS layouts)"),
    ParamSpec("input_qos", "DEFAULT", "tensor_pub subscription QoS (DEFAULT = reliable)",
              choices=QOS_PRESETS),
    ParamSpec("output_qos", "DEFAULT", "tensor_sub publisher QoS (DEFAULT = reliable)",
              choices=QOS_PRESETS),
    ParamSpec("input_queue_size", 10,
              "messages kept before the oldest is dropped (stale); also the QoS depth",
              min_value=1, max_value=1000),
    ParamSpec("output_queue_size", 10, "tensor_sub QoS depth", min_value=1, max_value=1000),
]

COUNTERS = ("received", "published", "dropped_stale", "dropped_bad_input",
            "dropped_server_unavailable", "dropped_inference_failed", "dropped_internal_error")


def qos(preset: str, depth: int) -> QoSProfile:
    """DEFAULT: reliable, volatile, keep last ``depth``; SENSOR_DATA: best effort."""
    profile = QoSProfile(depth=depth)
    if preset == "SENSOR_DATA":
        profile.reliability = qos_profile_sensor_data.reliability
    return profile


def list_msg(header, outputs) -> TensorList:
    """TensorList with ``header`` and one Tensor per (name, array)."""
    msg = TensorList(header=header)
    for name, array in outputs:
        fields = array_to_fields(name, array)
        tensor = Tensor(name=fields.name, data_type=fields.data_type,
                        shape=TensorShape(rank=fields.rank, dims=list(fields.dims)),
                        strides=list(fields.strides))
        tensor.data = fields.data  # bytes: one memcpy (an ndarray is copied element-wise)
        msg.tensors.append(tensor)
    return msg


class TensorNode(Node):
    NODE_NAME = NODE_NAME

    def __init__(self, **kwargs):
        super().__init__(self.NODE_NAME, **kwargs)
        self.full_name = self.get_fully_qualified_name()  # for lines printed after rclpy shutdown
        p = declare_all(self, PARAMETERS)
        self.params = p
        self._lock = threading.Lock()
        self.counters = collections.Counter()
        self.requests = 0
        self.latencies_ms = collections.deque(maxlen=2000)
        self.last_error = ""
        self._last_logged: dict[str, float] = {}
        self.bindings: Bindings | None = None
        if p["input_tensor_formats"] or p["output_tensor_formats"]:
            self.get_logger().info("input/output_tensor_formats are not used: the server "
                                   "receives host tensors in their message layout")
        self.client = client_from_params(p)
        self.connection = ModelConnection(
            self._connect, Backoff(p["reconnect_initial_s"], p["reconnect_max_s"]),
            on_change=self._on_connection_change, fatal=(ModelSpecError, ValueError))
        try:
            self._wait_for_server(p["server_wait_timeout_s"])
        except Exception:
            self.client.close()
            raise
        self.queue = FrameQueue(p["input_queue_size"])
        self.publisher = self.create_publisher(
            TensorList, "tensor_sub", qos(p["output_qos"], p["output_queue_size"]))
        self.create_subscription(TensorList, "tensor_pub", self._on_tensors,
                                 qos(p["input_qos"], p["input_queue_size"]))
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._running = True
        self._worker = threading.Thread(target=self._work, name="triton_tensor", daemon=True)
        self._worker.start()
        self.get_logger().info(f"ready: {self.resolve_topic_name('tensor_pub')} -> "
                               f"{self.client} -> {self.resolve_topic_name('tensor_sub')}")

    # -- connection --

    def _connect(self) -> Bindings:
        if not self.client.is_model_ready():
            raise TritonError(f"model {self.client.model_name!r} not ready on "
                              f"{self.client.protocol}://{self.client.url}")
        p = self.params
        bindings = Bindings.create(self.client.model_spec(), p["input_tensor_names"],
                                   p["input_binding_names"], p["output_tensor_names"],
                                   p["output_binding_names"])
        spec = bindings.spec
        self.get_logger().info(
            f"model {spec.name!r} (max_batch_size {spec.max_batch_size}): inputs "
            + ", ".join(f"{t} -> {b}{list(spec.input(b).dims)} {spec.input(b).datatype}"
                        for t, b in bindings.inputs)
            + "; outputs " + ", ".join(f"{b} -> {t}" for b, t in bindings.outputs))
        self.bindings = bindings
        return bindings

    def _wait_for_server(self, timeout_s: float) -> None:
        self.get_logger().info(f"waiting up to {timeout_s:.0f} s for {self.client}")
        deadline = time.monotonic() + timeout_s
        while self.connection.get() is None:
            if time.monotonic() >= deadline:
                self.get_logger().error(
                    f"{self.client} not ready after {timeout_s:.0f} s "
                    f"({self.connection.last_error}); running on and reconnecting")
                return
            time.sleep(0.2)

    def _on_connection_change(self, state: str, detail: str) -> None:
        if state == "ready":
            self.get_logger().info(f"connected to {self.client}")
        else:
            self._report_error(f"Triton unavailable: {detail}", kind="connection", every_s=10.0)

    # -- data path --

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] += n

    def _on_tensors(self, msg: TensorList) -> None:
        self._count("received")
        if self.queue.put((time.monotonic(), msg)) is not None:
            self._count("dropped_stale")

    def _work(self) -> None:
        while self._running:
            for received_at, msg in self.queue.take(1, timeout_s=0.2):
                try:
                    self._process(received_at, msg)
                except Exception as exc:  # never let one message stop the worker
                    self._count("dropped_internal_error")
                    self._report_error(f"unexpected error: {type(exc).__name__}: {exc}",
                                       kind="internal")

    def _process(self, received_at: float, msg: TensorList) -> None:
        try:
            bindings = self.connection.get()
        except (ModelSpecError, ValueError) as exc:
            bindings = None
            self._report_error(f"model cannot be used: {exc}", kind="model")
        if bindings is None:
            self._count("dropped_server_unavailable")
            return
        try:
            inputs, batch_added = bindings.model_inputs(tensors_by_name(msg.tensors))
        except TensorError as exc:
            self._count("dropped_bad_input")
            self._report_error(f"bad TensorList (frame_id {msg.header.frame_id!r}): {exc}",
                               kind="bad_input:" + str(exc)[:30])
            return
        try:
            results = self.client.infer(inputs, bindings.output_names)
        except TritonError as exc:
            self._count("dropped_inference_failed")
            self._report_error(f"inference failed: {exc}", kind="inference")
            if not self.client.is_model_ready():
                self.connection.failed(exc)
            return
        out = list_msg(msg.header, bindings.message_outputs(results, batch_added))
        self.publisher.publish(out)
        with self._lock:
            self.requests += 1
            self.counters["published"] += 1
            self.latencies_ms.append((time.monotonic() - received_at) * 1000.0)

    # -- reporting --

    def _report_error(self, text: str, kind: str, every_s: float = 2.0) -> None:
        """Log ``text`` unless an error of the same ``kind`` was logged in the last ``every_s``."""
        self.last_error = text
        now = time.monotonic()
        if now - self._last_logged.get(kind, -every_s) >= every_s:
            self._last_logged[kind] = now
            self.get_logger().error(text)

    def status(self) -> DiagnosticStatus:
        with self._lock:
            counters = collections.Counter(self.counters)
            latencies = list(self.latencies_ms)
            requests = self.requests
        lost = sum(v for k, v in counters.items() if k.startswith("dropped_"))
        level, message = DiagnosticStatus.OK, "ok"
        if lost:
            level, message = DiagnosticStatus.WARN, f"{lost} message(s) not processed"
        if self.connection.state != "ready":
            level, message = DiagnosticStatus.ERROR, f"Triton {self.connection.state}"
        values = {f"messages_{key}": str(counters[key]) for key in COUNTERS}
        values.update({
            "server": f"{self.client.protocol}://{self.client.url}",
            "model": self.client.model_name, "connection": self.connection.state,
            "reconnects": str(max(0, self.connection.connects - 1)),
            "connection_losses": str(self.connection.losses),
            "requests": str(requests), "last_error": self.last_error})
        values.update(latency_values(latencies))
        return make_status(self, level, message, values, self.client.url)

    def _publish_diagnostics(self) -> None:
        publish_status(self, self.diagnostics, self.status())

    def shutdown(self) -> None:
        """Stop the worker and print the final counters."""
        self._running = False
        self.queue.close()
        self._worker.join(timeout=5.0)
        with self._lock:
            summary = ", ".join(f"{k}={self.counters[k]}" for k in COUNTERS)
        print(f"[{self.full_name}] final counters: {summary}, requests={self.requests}, "
              f"left_pending={len(self.queue)}", file=sys.stderr, flush=True)
        self.client.close()


def main(args=None) -> int:
    return run_node(TensorNode, args, config_errors=(ParameterError, ModelSpecError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
