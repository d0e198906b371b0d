"""Shared rclpy adapter for nodes that stream one topic into one Triton sequence.

A :class:`SequenceNode` is a lifecycle node (``autostart`` configures and activates it at start)
that owns one :class:`triton_ros.sequences.SequenceStream`:

- one client from the connection parameters shared by every node
  (:mod:`triton_ros.ros.connection_params`: TLS, auth, compression, routing header); the
  stream's transport comes from it (``client.sequence_transport()``); with a ``server_url``
  list the sequence is placed on one server by rendezvous hashing and moves (restarting with
  START) only when that server goes away;
- the correlation id comes from ``robot_id`` / ``correlation_id_range`` / the namespace
  (``stream_index`` and ``stream_name`` tell apart streams of one robot);
- configure: waits up to ``server_wait_timeout_s`` for the server and discovers the model
  (sequence batching, max idle); a server still away then is no configuration error: the node
  activates anyway (a robot's bringup must not depend on start order), says why on the log and
  ``/diagnostics`` (``connection``, ``connection_error``), counts the messages that arrive
  meanwhile as ``dropped_server_unavailable`` and connects in the background with the
  reconnect backoff (``reconnect_initial_s`` .. ``reconnect_max_s``); a model that cannot
  serve the node (no sequence batching, missing inputs) still fails configure;
- active: the subscription callback only enqueues; one worker thread sends the queued messages in
  order (START on the stream's first request) and publishes the result;
- a steady timer sends keep-alives while the stream is live but quiet and ENDs the sequence when
  the input is silent for ``stream_timeout_s``; deactivate and shutdown END it too;
- a sequence the server lost (idle timeout, restart) is restarted with START, logged as a warning
  and counted in ``/diagnostics`` (``state_losses``, ``last_loss_reason``);
- ``/diagnostics`` also carries the stream's claim (server, model, correlation id, stream key and
  a random ``instance`` token made at start); every sequence node compares the claims it hears
  with its own by instance, so nodes of the same full name still see each other, and reports a
  collision (two streams sharing one sequence) as an ERROR;
- a node whose full name appears more than once in the ROS graph reports that as an ERROR too
  (and logs it once): its parameters, lifecycle services and status name are ambiguous.

Subclasses define the input type and topic, the message -> tensor mapping and the publishing.
"""
import os
import secrets
import socket
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter

from triton_ros.client.pool import ServerPool
from triton_ros.connection import Backoff, ModelConnection
from triton_ros.frame_queue import FrameQueue
from triton_ros.ros.runner import run_node
from triton_ros.ros.diagnostics import make_status, publish_status, server_change_reporter
from triton_ros.ros.params import ParameterError, ParamSpec, declare_all
from triton_ros.ros.connection_params import client_from_params, connection_parameters
from triton_ros.sequences import (MAX_ROBOT_ID, STREAMS_PER_ROBOT, Claim, ClaimRegistry,
                                  CorrelationIdError, SequenceError, SequenceStream,
                                  assign_correlation_id, collision_text, wait_for_model)

RECENT_S = 30.0          # a state loss or failure this recent makes the status WARN
CLAIM_STALE_S = 5.0      # a colliding claim not heard for this long no longer counts

SEQUENCE_PARAMETERS = [
    *connection_parameters(sequence=True),
    ParamSpec("robot_id", 0, "this robot's id, unique in the fleet (correlation ids "
              "robot_id*256 + stream_index); 0 = derive the id from the namespace",
              min_value=0, max_value=MAX_ROBOT_ID),
    ParamSpec("correlation_id_range", Parameter.Type.INTEGER_ARRAY,
              "[first, last] correlation ids assigned to this robot (wins over robot_id); "
              "unset = none"),
    ParamSpec("stream_index", 0, "tells apart streams of one robot that use the same model",
              min_value=0, max_value=STREAMS_PER_ROBOT - 1),
    ParamSpec("stream_name", "", "source part of the stream key; empty = the input topic"),
    ParamSpec("keepalive_fraction", 0.5,
              "send a keep-alive after this fraction of the model's max_sequence_idle without "
              "requests; 0 = never", min_value=0.0, max_value=0.95),
    ParamSpec("stream_timeout_s", 10.0,
              "END the sequence when the input is silent this long, seconds; 0 = never",
              min_value=0.0, max_value=86400.0),
    ParamSpec("queue_size", 32, "messages buffered before the oldest is dropped",
              min_value=1, max_value=10000),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics reports, seconds",
              min_value=0.1, max_value=60.0),
    ParamSpec("autostart", True, "configure and activate at start (else wait for lifecycle "
              "transitions)"),
]


class SequenceNode(LifecycleNode):
    """Base class: one input topic -> one Triton sequence -> published results."""

    #: subclasses: parameters of their own, the default model
    NODE_PARAMETERS: list[ParamSpec] = []
    DEFAULT_MODEL = ""

    def __init__(self, node_name: str, **kwargs):
        super().__init__(node_name, **kwargs)
        specs = ([ParamSpec("model_name", self.DEFAULT_MODEL, "sequence model in the Triton "
                            "repository")] + SEQUENCE_PARAMETERS + self.NODE_PARAMETERS)
        self.params = p = declare_all(self, specs)
        self.validate_parameters(p)
        self.source = p["stream_name"] or self.resolve_topic_name(self.input_topic())
        try:
            self.assignment = assign_correlation_id(
                self.get_namespace(), self.source, robot_id=p["robot_id"],
                id_range=list(p["correlation_id_range"]), stream_index=p["stream_index"])
        except CorrelationIdError as exc:
            raise ParameterError(str(exc)) from None
        self.counters = {"received": 0, "processed": 0, "published": 0, "dropped_queue_full": 0,
                         "dropped_inactive": 0, "dropped_server_unavailable": 0,
                         "bad_input": 0, "failed": 0}
        self.last_error = ""
        self._last_logged: dict[str, float] = {}
        self._last_failure = self._last_loss = -1e9
        self._lock = threading.Lock()
        # One client (connection options validated once); the stream's transport comes from it.
        self.client = client_from_params(
            p, on_server_change=server_change_reporter(self, self.report_error))
        self.transport = self.client.sequence_transport()
        self.stream = SequenceStream(
            self.transport, p["model_name"], self.assignment, model_version=p["model_version"],
            keepalive_inputs=self.keepalive_inputs(), end_inputs=self.end_inputs(),
            keepalive_fraction=p["keepalive_fraction"],
            end_after_silence_s=p["stream_timeout_s"], request_timeout_s=p["request_timeout_s"],
            on_event=self._on_sequence_event)
        # Discovery of the model, retried with backoff while the server is away.
        self.connection = ModelConnection(
            self._connect, Backoff(p["reconnect_initial_s"], p["reconnect_max_s"]),
            on_change=self._on_connection_change, fatal=(ValueError,))
        self.instance = new_instance_id()
        self.claim = Claim(p["server_url"], p["model_name"], self.assignment.correlation_id,
                           self.get_fully_qualified_name(), self.assignment.stream_key,
                           instance=self.instance)
        self.claims = ClaimRegistry()
        self.claims.claim(self.claim)
        self._collisions: dict[tuple, tuple[float, str]] = {}  # other's identity -> (seen, text)
        self.duplicate_name = ""   # set while the graph has other nodes of this full name
        self._running = False
        self._active = False
        self.queue = FrameQueue(p["queue_size"])
        self.diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.create_subscription(self.input_type(), self.input_topic(), self._on_message,
                                 self.input_qos())
        self.setup_outputs()
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics, clock=steady)
        self._worker = threading.Thread(target=self._work, name="triton_sequence", daemon=True)
        self._running = True
        self._worker.start()
        self.get_logger().info(
            f"stream {self.assignment.stream_key}: correlation id "
            f"{self.assignment.correlation_id} ({self.assignment.detail}), model "
            f"{p['model_name']!r} on {self.transport!r}")

    # -- subclass interface

    def validate_parameters(self, params: dict) -> None:
        """Raise ParameterError for invalid combinations (after the per-parameter checks)."""

    def input_type(self):
        raise NotImplementedError

    def input_topic(self) -> str:
        raise NotImplementedError

    def input_qos(self):
        raise NotImplementedError

    def setup_outputs(self) -> None:
        raise NotImplementedError

    def max_messages_per_request(self) -> int:
        return 1

    def to_inputs(self, messages: list) -> dict[str, np.ndarray]:
        """Messages (oldest first) -> the request's tensors (no batch dim). ValueError = bad."""
        raise NotImplementedError

    def publish_result(self, messages: list, outputs: dict[str, np.ndarray]) -> int:
        """Publish what the model returned for ``messages``; returns messages published."""
        raise NotImplementedError

    def keepalive_inputs(self) -> dict | None:
        return None

    def end_inputs(self) -> dict | None:
        return self.keepalive_inputs()

    def output_names(self) -> list[str] | None:
        return None

    # -- lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        p = self.params
        self.get_logger().info(f"waiting up to {p['server_wait_timeout_s']:.0f} s for model "
                               f"{p['model_name']!r} on {self.transport!r}")
        try:
            wait_for_model(self.transport, p["model_name"], p["model_version"],
                           p["server_wait_timeout_s"])
        except SequenceError as exc:   # away now: keep running, connect when it comes
            self.last_error = str(exc)
            self.get_logger().error(f"{exc}; running on and connecting in the background")
            return TransitionCallbackReturn.SUCCESS
        try:
            self.connection.get()
        except ValueError as exc:
            self.last_error = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _connect(self):
        """Discover the model and check it can serve this node. ValueError: it cannot (a
        configuration error); SequenceError: the server is away (retried with backoff)."""
        try:
            spec = self.stream.discover()
        except SequenceError as exc:
            if exc.kind == "rejected":   # e.g. no sequence batching: no retry helps
                raise ValueError(str(exc)) from exc
            raise
        self.check_model(spec)
        self.get_logger().info(
            f"model {spec.name!r}: sequence batching, max idle {self.stream.max_idle_s:.1f} s, "
            f"keep-alive every {self.stream.timing.keepalive_interval_s:.1f} s, END after "
            f"{self.params['stream_timeout_s']:.1f} s of silence")
        return spec

    def _on_connection_change(self, state: str, detail: str) -> None:
        if state == "ready":
            self.get_logger().info(f"connected: model {self.params['model_name']!r} on "
                                   f"{self.transport!r}")
        else:
            self.report_error(f"Triton {state}: {detail}", kind="connection", every_s=10.0)

    def check_model(self, spec) -> None:
        """Raise ValueError if the discovered model cannot serve this node."""

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = True
        self.get_logger().info(
            f"active: subscribed to {self.resolve_topic_name(self.input_topic())}, correlation "
            f"id {self.assignment.correlation_id}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self.stream.end("lifecycle deactivate")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stream.end("lifecycle cleanup")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self.stream.end("lifecycle shutdown")
        return TransitionCallbackReturn.SUCCESS

    # -- data path

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] += n

    def _on_message(self, msg) -> None:
        self._count("received")
        if not self._active:
            self._count("dropped_inactive")
            return
        if self.queue.put(msg) is not None:
            self._count("dropped_queue_full")
            self.get_logger().warning("the model is behind: dropped the oldest queued message",
                                      throttle_duration_sec=5.0)

    def _work(self) -> None:
        """All of the stream's requests go out from here: data, keep-alives, silence ENDs."""
        while self._running:
            messages = self.queue.take(self.max_messages_per_request(), timeout_s=0.2)
            if not self._active:
                if messages:  # queued before a deactivate: counted, not sent
                    self._count("dropped_inactive", len(messages))
                continue
            try:
                connected = self.connection.get() is not None
            except ValueError as exc:   # the model that came cannot serve this node
                connected = False
                self.report_error(f"model cannot be used: {exc}", kind="model", every_s=10.0)
            if not connected:
                if messages:
                    self._count("dropped_server_unavailable", len(messages))
                continue
            if messages:
                self._process(messages)
            self.stream.tick()

    def _process(self, messages: list) -> None:
        try:
            inputs = self.to_inputs(messages)
        except ValueError as exc:
            self._count("bad_input", len(messages))
            self.report_error(f"bad input: {exc}", kind="bad_input")
            return
        try:
            result = self.stream.infer(inputs, self.output_names())
        except SequenceError as exc:
            self._count("failed", len(messages))
            self._last_failure = time.monotonic()
            self.report_error(f"sequence request failed ({exc.kind}): {exc}",
                              kind=f"infer_{exc.kind}")
            return
        self._count("processed", len(messages))
        try:
            published = self.publish_result(messages, result.outputs)
        except ValueError as exc:
            self._count("failed", len(messages))
            self.report_error(f"unexpected model output: {exc}", kind="output")
            return
        self._count("published", published)

    def _on_sequence_event(self, event) -> None:
        logger = self.get_logger()
        text = f"sequence {event.correlation_id} ({event.stream_key})"
        if event.kind == "start":
            logger.info(f"{text} started: {event.reason}")
        elif event.kind == "end":
            logger.info(f"{text} ended: {event.reason}")
        elif event.kind == "state_lost":
            self._last_loss = time.monotonic()
            logger.warning(f"{text} state lost: {event.reason}; the model's state for this "
                           "stream starts over")
        else:
            self._last_failure = time.monotonic()
            self.report_error(f"{text}: {event.reason}", kind="sequence_event")

    def report_error(self, text: str, kind: str, every_s: float = 2.0) -> None:
        """Log ``text`` unless an error of the same ``kind`` was logged in the last ``every_s``."""
        self.last_error = text
        now = time.monotonic()
        if now - self._last_logged.get(kind, -every_s) >= every_s:
            self._last_logged[kind] = now
            self.get_logger().error(text)

    # -- diagnostics and claims

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        # Not filtered by status name: another node may have this node's full name. Its own
        # status is recognised by its instance token (ClaimRegistry.observe).
        for status in array.status:
            values = {kv.key: kv.value for kv in status.values}
            try:
                other = Claim(values["sequence_server"], values["sequence_model"],
                              int(values["correlation_id"]), values["owner"],
                              values["stream_key"], instance=values.get("instance", ""))
            except (KeyError, ValueError):
                continue
            if self.claims.observe(other) is None:
                continue
            text = collision_text(self.claim, other)
            identity = (other.instance,) if other.instance else (other.owner, other.stream_key)
            if identity not in self._collisions:
                self.get_logger().error(text)
            self._collisions[identity] = (time.monotonic(), text)

    def _check_node_name(self) -> None:
        """Report (ERROR, one log line) while other nodes in the graph have this full name."""
        me = self.get_fully_qualified_name()
        count = sum(1 for name, namespace in self.get_node_names_and_namespaces()
                    if f"{namespace.rstrip('/')}/{name}" == me)
        if count > 1:
            if not self.duplicate_name:
                self.duplicate_name = (
                    f"{count} nodes named {me} in the ROS graph: node names must be unique "
                    "(their parameters, lifecycle services and /diagnostics names are "
                    "ambiguous); give each node its own namespace or name")
                self.get_logger().error(self.duplicate_name)
        elif self.duplicate_name:
            self.duplicate_name = ""
            self.get_logger().info(f"node name {me} is unique in the ROS graph again")

    def status_name(self) -> str:
        return f"triton_ros: {self.get_fully_qualified_name()}"

    def status(self) -> DiagnosticStatus:
        with self._lock:
            counters = dict(self.counters)
        seq = self.stream.snapshot()
        now = time.monotonic()
        level, message = DiagnosticStatus.OK, f"sequence {seq['state']}"
        if now - self._last_failure < RECENT_S:
            level, message = DiagnosticStatus.WARN, f"requests failing: {self.last_error}"
        if now - self._last_loss < RECENT_S:
            level = DiagnosticStatus.WARN
            message = (f"{seq['state_losses']} sequence state loss(es), last: "
                       f"{seq['last_loss_reason']}")
        for owner, (seen, _) in list(self._collisions.items()):
            if now - seen > CLAIM_STALE_S:
                del self._collisions[owner]
        if self.connection.state != "ready":
            level = DiagnosticStatus.ERROR
            message = f"Triton {self.connection.state}: {self.connection.last_error}"
        errors = [text for _, text in list(self._collisions.values())[:1]]
        if self.duplicate_name:
            errors.append(self.duplicate_name)
        if errors:
            level, message = DiagnosticStatus.ERROR, "; ".join(errors)
        values = {f"frames_{k}": str(v) for k, v in counters.items()}
        values.update({
            "owner": self.claim.owner, "instance": self.instance,
            "sequence_server": self.claim.server,
            "sequence_model": self.claim.model, "correlation_id": str(self.claim.correlation_id),
            "stream_key": self.claim.stream_key, "id_method": seq["id_method"],
            "protocol": self.params["protocol"], "lifecycle_active": str(self._active).lower(),
            "sequence_transport": "stream" if self.client.endpoint.uses_stream else "unary",
            "tls": str(self.client.endpoint.ssl).lower(),
            "connection": self.connection.state,
            "connection_error": self.connection.last_error,
            "sequence_state": seq["state"], "sequences_started": str(seq["sequences_started"]),
            "sequences_ended": str(seq["sequences_ended"]),
            "state_losses": str(seq["state_losses"]), "keepalives": str(seq["keepalives"]),
            "sequence_requests": str(seq["requests"]), "request_errors": str(seq["errors"]),
            "max_sequence_idle_s": f"{seq['max_idle_s']:.3f}",
            "last_loss_reason": seq["last_loss_reason"], "last_error": self.last_error,
            "collisions": "; ".join(t for _, t in self._collisions.values()),
            "duplicate_node_name": self.duplicate_name,
        })
        if isinstance(self.client, ServerPool):  # a server list: where the sequence lives now
            server = self.transport.server
            values["sequence_server_now"] = server.url if server is not None else ""
            values["sequence_moves"] = str(self.transport.moves)
            values.update(self.client.diagnostic_values())
        return make_status(self, level, message, values, self.params["server_url"])

    def _publish_diagnostics(self) -> None:
        self._check_node_name()
        publish_status(self, self.diagnostics, self.status())

    # -- teardown

    def shutdown(self) -> None:
        """Stop the worker, END the sequence and log the final counters."""
        self._active = False
        self._running = False
        self.queue.close()
        self._worker.join(timeout=10.0)
        timeout = min(2.0, self.params["request_timeout_s"])
        self.stream.close("node shutdown", timeout_s=timeout)
        self.client.close()
        self.claims.release(self.claim)
        with self._lock:
            summary = ", ".join(f"{k}={v}" for k, v in self.counters.items())
        seq = self.stream.snapshot()
        self.get_logger().info(
            f"final counters: {summary}, sequences_started={seq['sequences_started']}, "
            f"sequences_ended={seq['sequences_ended']}, state_losses={seq['state_losses']}")


def new_instance_id() -> str:
    """``host:pid:random``: unique per node instance, and tells where to find the process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _autostart(node) -> None:
    if node.params["autostart"]:
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise ValueError(node.last_error or "configure failed")
        node.trigger_activate()


def run(node_class, args=None) -> int:
    """main() of a sequence node: configuration errors exit 2 with one clear line."""
    return run_node(node_class, args, start=_autostart)
