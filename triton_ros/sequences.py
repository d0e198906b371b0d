"""Per-robot Triton sequences for stateful models (trackers, temporal filters, sensor streams).

No ROS here. A stateful model keeps per-stream state on the server, keyed by the Triton
correlation id of the stream's *sequence*. This module:

- maps a stream key (robot id or namespace + source) to a correlation id that is unique across a
  fleet sharing one server (:func:`assign_correlation_id`), and detects collisions
  (:class:`ClaimRegistry`, :func:`check_unique`);
- drives one stream's sequence for its whole life (:class:`SequenceStream`): START on the first
  request, END when the stream ends (shutdown, deactivate, silence), keep-alives so that a live
  but quiet stream outlives the model's ``max_sequence_idle_microseconds`` (discovered), and a
  restart with a new START when the server no longer knows the sequence (idle timeout, server
  restart: "must specify the START flag"), reporting the state loss and carrying on;
- sends the requests of one sequence in order, one at a time, over a gRPC bidirectional stream
  (:class:`GrpcStreamTransport`, ``start_stream``/``async_stream_infer``) or unary HTTP/gRPC
  (:class:`UnaryTransport`, the fallback).

Correlation id layout (UINT64 on the wire, kept below 2**53 so that JSON/HTTP carries it exactly):

- ``robot_id`` R (1 .. 2**31-1): ``R * 256 + stream_index`` (each robot owns 256 ids);
- an id range ``[first, last]`` handed out by whoever manages the fleet: ``first + stream_index``;
- neither: derived from ``namespace|source`` by a 64-bit BLAKE2b hash into
  ``[2**40, 2**40 + 2**44)``, disjoint from every robot-id based id.
"""
import functools
import hashlib
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from triton_ros.model_spec import ModelSpec, model_spec_from_server
from triton_ros.triton_client import infer_inputs

STREAM_BITS = 8                       # stream indices per robot id: 0 .. 255
STREAMS_PER_ROBOT = 1 << STREAM_BITS
MAX_ROBOT_ID = (1 << 31) - 1
DERIVED_BASE = 1 << 40                # namespace-derived ids live in [2**40, 2**40 + 2**44)
DERIVED_SPAN = 1 << 44
MAX_CORRELATION_ID = (1 << 53) - 1    # exact in JSON doubles; gRPC's int64 takes it too
DEFAULT_MAX_IDLE_S = 1.0              # Triton's default max_sequence_idle_microseconds
DROPPED_MARKER = "must specify the START flag"


# --- correlation ids ---------------------------------------------------------------------------


class CorrelationIdError(ValueError):
    """A correlation id cannot be assigned as configured, or two streams share one."""


@dataclass(frozen=True)
class CorrelationAssignment:
    """The correlation id of one stream and how it was chosen."""
    correlation_id: int
    stream_key: str          # "<namespace>|<source>"
    method: str              # "robot_id", "id_range" or "namespace_hash"
    detail: str              # e.g. "robot_id 7, stream_index 0"


def stream_key(namespace: str, source: str) -> str:
    """The key that names a stream: the robot's namespace and the stream's source (a topic)."""
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else "/"
    return f"{namespace}|{source}"


def derived_correlation_id(namespace: str, source: str) -> int:
    """A deterministic id for ``namespace|source`` in the derived range (never 0)."""
    digest = hashlib.blake2b(stream_key(namespace, source).encode(), digest_size=8).digest()
    return DERIVED_BASE + int.from_bytes(digest, "big") % DERIVED_SPAN


def assign_correlation_id(namespace: str, source: str, robot_id: int = 0,
                          id_range: tuple[int, int] | list[int] | None = None,
                          stream_index: int = 0) -> CorrelationAssignment:
    """The correlation id of stream ``source`` of the robot in ``namespace``.

    Precedence: an explicit ``id_range`` (``[first, last]``), else ``robot_id`` (> 0), else an id
    derived from the namespace and source. ``stream_index`` tells apart streams of one robot that
    go to the same model (ids are per model: a tracker and a sensor model may share one).
    """
    key = stream_key(namespace, source)
    if not 0 <= int(stream_index) < STREAMS_PER_ROBOT:
        raise CorrelationIdError(f"stream_index {stream_index} is outside [0, "
                                 f"{STREAMS_PER_ROBOT - 1}]")
    stream_index = int(stream_index)
    if id_range:
        if len(id_range) != 2:
            raise CorrelationIdError(f"correlation id range must be [first, last], got "
                                     f"{list(id_range)}")
        first, last = (int(v) for v in id_range)
        if not 1 <= first <= last <= MAX_CORRELATION_ID:
            raise CorrelationIdError(f"correlation id range [{first}, {last}] must satisfy "
                                     f"1 <= first <= last <= {MAX_CORRELATION_ID}")
        corrid = first + stream_index
        if corrid > last:
            raise CorrelationIdError(f"stream_index {stream_index} does not fit the correlation "
                                     f"id range [{first}, {last}]")
        return CorrelationAssignment(corrid, key, "id_range",
                                     f"range [{first}, {last}], stream_index {stream_index}")
    if robot_id:
        if not 1 <= int(robot_id) <= MAX_ROBOT_ID:
            raise CorrelationIdError(f"robot_id {robot_id} is outside [1, {MAX_ROBOT_ID}]")
        corrid = int(robot_id) * STREAMS_PER_ROBOT + stream_index
        return CorrelationAssignment(corrid, key, "robot_id",
                                     f"robot_id {int(robot_id)}, stream_index {stream_index}")
    corrid = derived_correlation_id(namespace, source)
    return CorrelationAssignment(corrid, key, "namespace_hash",
                                 f"hash of {key!r} (set robot_id to choose it)")


def check_unique(assignments: list[CorrelationAssignment]) -> None:
    """Raise :class:`CorrelationIdError` naming every correlation id used by two streams.

    For ids that go to the same model on the same server (e.g. one fleet's trackers).
    """
    owners: dict[int, list[str]] = {}
    for assignment in assignments:
        owners.setdefault(assignment.correlation_id, []).append(assignment.stream_key)
    clashes = {cid: keys for cid, keys in owners.items() if len(keys) > 1}
    if clashes:
        raise CorrelationIdError("correlation id collision: " + "; ".join(
            f"{cid} used by {', '.join(keys)}" for cid, keys in sorted(clashes.items())))


def normalize_server(url: str) -> str:
    """``grpc://Localhost:8001`` -> ``127.0.0.1:8001`` (for comparing claims)."""
    url = url.strip().lower().split("://", 1)[-1].rstrip("/")
    host, _, port = url.rpartition(":")
    if host in ("localhost", "[::1]", "::1"):
        host = "127.0.0.1"
    return f"{host}:{port}" if host else url


@dataclass(frozen=True)
class Claim:
    """``owner`` (e.g. a node's full name) uses ``correlation_id`` of ``model`` on ``server``.

    ``instance``: a token unique to the claiming node instance (e.g. host, pid and random bits).
    Owner names need not be unique (two processes may run nodes of the same full name), so two
    claims with instances are the same stream exactly when their instances are equal; claims
    without one (older publishers) compare by (owner, stream_key).
    """
    server: str
    model: str
    correlation_id: int
    owner: str
    stream_key: str
    instance: str = ""

    @property
    def slot(self) -> tuple[str, str, int]:
        return normalize_server(self.server), self.model, int(self.correlation_id)

    def same_stream(self, other: "Claim") -> bool:
        if self.instance and other.instance:
            return self.instance == other.instance
        return (self.owner, self.stream_key) == (other.owner, other.stream_key)

    def describe(self) -> str:
        """``owner (stream_key)``, plus ``[instance ...]`` when the claim has one."""
        text = f"{self.owner} ({self.stream_key})"
        return f"{text} [instance {self.instance}]" if self.instance else text


class ClaimRegistry:
    """Which stream uses which correlation id, to detect two streams sharing one sequence.

    Correlation ids are per model and per server. Local claims are this process's streams;
    :meth:`observe` checks a claim seen elsewhere (e.g. in another node's diagnostics) and
    returns the local claim it collides with, or None.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._local: dict[tuple, Claim] = {}
        self.collisions: dict[tuple, tuple[Claim, Claim]] = {}

    def claim(self, claim: Claim) -> None:
        """Register a local stream; raise CorrelationIdError if another local stream has it."""
        with self._lock:
            held = self._local.get(claim.slot)
            if held is not None and not held.same_stream(claim):
                raise CorrelationIdError(collision_text(held, claim))
            self._local[claim.slot] = claim

    def release(self, claim: Claim) -> None:
        with self._lock:
            if self._local.get(claim.slot) == claim:
                del self._local[claim.slot]

    def observe(self, other: Claim) -> Claim | None:
        with self._lock:
            mine = self._local.get(other.slot)
            if mine is None or mine.same_stream(other):
                return None
            self.collisions[(other.slot, other.owner, other.stream_key, other.instance)] = (
                mine, other)
            return mine


def collision_text(mine: Claim, other: Claim) -> str:
    """The message that reports two streams sharing one sequence."""
    return (f"correlation id collision: {mine.correlation_id} of model {mine.model!r} on "
            f"{mine.server} is used by {mine.describe()} and by {other.describe()}; their "
            f"sequences would share server state. Give the robots distinct robot_id values "
            f"(docs/sequences.md)")



# --- errors ------------------------------------------------------------------------------------


class SequenceError(RuntimeError):
    """A sequence request failed. ``kind``: unavailable, timeout, rejected or dropped."""

    def __init__(self, message: str, kind: str = "rejected"):
        super().__init__(message)
        self.kind = kind


def is_sequence_dropped(message: str) -> bool:
    """True for the server's "this sequence is unknown, send START" errors."""
    return DROPPED_MARKER.lower() in str(message).lower()


# --- transports --------------------------------------------------------------------------------


class _Pending:
    def __init__(self, request_id: str):
        self.request_id = request_id
        self.event = threading.Event()
        self.result = None
        self.error = None


class GrpcStreamTransport:
    """Sequence requests over one gRPC bidirectional stream (``start_stream``).

    One request in flight at a time (``send`` blocks until its response), so a sequence's
    requests reach the model in order and every response or error belongs to the request that
    is waiting. A broken stream (server gone, timeout) is torn down and a new one opened on the
    next ``send``; the gRPC channel's reconnect backoff is capped at ``max_reconnect_backoff_s``
    so a restarted server is found again quickly.
    """

    protocol = "grpc"

    def __init__(self, url: str, timeout_s: float = 5.0, max_reconnect_backoff_s: float = 2.0):
        import tritonclient.grpc as grpcclient
        self._module = grpcclient
        self.url, self.timeout_s = url, timeout_s
        backoff_ms = int(max_reconnect_backoff_s * 1000)
        self._client = grpcclient.InferenceServerClient(url, channel_args=[
            ("grpc.max_send_message_length", 2**31 - 1),
            ("grpc.max_receive_message_length", 2**31 - 1),
            ("grpc.initial_reconnect_backoff_ms", min(500, backoff_ms)),
            ("grpc.min_reconnect_backoff_ms", min(500, backoff_ms)),
            ("grpc.max_reconnect_backoff_ms", backoff_ms),
        ])
        self._lock = threading.Lock()
        self._open = False
        self._broken = False
        self._generation = 0
        self._pending: _Pending | None = None
        self._ids = itertools.count(1)
        self.streams_opened = 0
        self.streams_closed = 0

    def __repr__(self) -> str:
        return f"GrpcStreamTransport(grpc://{self.url})"

    def _on_response(self, generation: int, result, error) -> None:
        if generation != self._generation:
            return  # a late response of a stream already torn down
        if error is not None and error.status() is not None:
            self._broken = True  # the stream itself failed (an RpcError), not one request
        pending = self._pending
        if pending is None or pending.event.is_set():
            return
        if result is not None and result.get_response().id != pending.request_id:
            return
        pending.result, pending.error = result, error
        pending.event.set()

    def _start(self) -> None:
        self._generation += 1
        self._broken = False
        self._client.start_stream(callback=functools.partial(self._on_response,
                                                             self._generation))
        self._open = True
        self.streams_opened += 1

    def _teardown(self) -> None:
        if self._open:
            self._generation += 1
            try:
                self._client.stop_stream(cancel_requests=True)
            except Exception:  # the stream is already gone; nothing left to release
                pass
            self._open = False
            self.streams_closed += 1

    def send(self, model_name: str, model_version: str, inputs: dict[str, np.ndarray],
             outputs: list[str] | None, correlation_id: int, start: bool, end: bool,
             timeout_s: float | None = None) -> dict[str, np.ndarray]:
        from tritonclient.utils import InferenceServerException
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        with self._lock:
            if self._broken:
                self._teardown()
            if not self._open:
                self._start()
            pending = _Pending(f"{correlation_id}-{next(self._ids)}")
            self._pending = pending
            requested = ([self._module.InferRequestedOutput(n) for n in outputs]
                         if outputs else None)
            try:
                self._client.async_stream_infer(
                    model_name, infer_inputs(self._module, inputs), model_version=model_version,
                    outputs=requested, request_id=pending.request_id,
                    sequence_id=correlation_id, sequence_start=start, sequence_end=end)
            except InferenceServerException as exc:  # the new stream died at once
                self._teardown()
                raise SequenceError(f"gRPC stream to {self.url} closed (server unreachable): "
                                    f"{exc.message() or exc}", "unavailable") from exc
            if not pending.event.wait(timeout_s):
                self._teardown()
                raise SequenceError(f"no response from {self.url} within {timeout_s:.1f} s "
                                    f"(sequence {correlation_id})", "timeout")
            self._pending = None
            if pending.error is not None:
                message = pending.error.message() or str(pending.error)
                if pending.error.status() is not None:
                    self._teardown()
                    raise SequenceError(f"gRPC stream to {self.url} failed: "
                                        f"{pending.error.status()} {message}", "unavailable")
                raise SequenceError(message, "dropped" if is_sequence_dropped(message)
                                    else "rejected")
            result = pending.result
            names = outputs or [o.name for o in result.get_response().outputs]
            return {name: result.as_numpy(name) for name in names}

    def _call(self, what, fn, *args, **kwargs):
        from tritonclient.utils import InferenceServerException
        try:
            return fn(*args, **kwargs)
        except InferenceServerException as exc:
            raise SequenceError(f"{what} on grpc://{self.url} failed: {exc.message() or exc}",
                                "unavailable") from exc

    def model_config(self, model_name: str, model_version: str = "") -> tuple[dict, dict]:
        """(metadata, config) JSON of the model."""
        kwargs = {"as_json": True, "client_timeout": self.timeout_s}
        metadata = self._call("get_model_metadata", self._client.get_model_metadata,
                              model_name, model_version, **kwargs)
        config = self._call("get_model_config", self._client.get_model_config,
                            model_name, model_version, **kwargs)
        return metadata, config

    def is_model_ready(self, model_name: str, model_version: str = "") -> bool:
        try:
            return bool(self._client.is_model_ready(model_name, model_version,
                                                    client_timeout=self.timeout_s))
        except Exception:  # any transport failure means "not ready"
            return False

    def close(self) -> None:
        with self._lock:
            self._teardown()
            try:
                self._client.close()
            except Exception:  # closing a channel whose server is gone may complain
                pass


class UnaryTransport:
    """The fallback: one unary request per sequence step, over HTTP (or unary gRPC).

    The HTTP client runs on gevent, whose hub belongs to one thread, so each calling thread gets
    its own client. Requests of one stream are still serialized (a lock), hence in order.
    """

    def __init__(self, url: str, protocol: str = "http", timeout_s: float = 5.0):
        if protocol not in ("http", "grpc"):
            raise ValueError(f"protocol {protocol!r} not in ['http', 'grpc']")
        if protocol == "http":
            import tritonclient.http as module
        else:
            import tritonclient.grpc as module
        self._module, self.protocol, self.url, self.timeout_s = module, protocol, url, timeout_s
        self._local = threading.local()
        self._clients = []
        self._lock = threading.Lock()
        self.streams_opened = self.streams_closed = 0

    def __repr__(self) -> str:
        return f"UnaryTransport({self.protocol}://{self.url})"

    @property
    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            if self.protocol == "http":
                client = self._module.InferenceServerClient(
                    self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s)
            else:
                client = self._module.InferenceServerClient(self.url)
            self._local.client = client
            self._clients.append(client)
        return client

    def _call(self, what, fn, *args, **kwargs):
        from tritonclient.utils import InferenceServerException
        try:
            return fn(*args, **kwargs)
        except InferenceServerException as exc:
            message = exc.message() or str(exc)
            if is_sequence_dropped(message):
                raise SequenceError(message, "dropped") from exc
            status = str(exc.status() or "")
            kind = "rejected"
            if status in ("StatusCode.UNAVAILABLE", "StatusCode.CANCELLED", "502", "503", "504"):
                kind = "unavailable"
            elif status == "StatusCode.DEADLINE_EXCEEDED":
                kind = "timeout"
            raise SequenceError(f"{what} on {self.protocol}://{self.url} failed: {message}",
                                kind) from exc
        except Exception as exc:  # socket errors, gevent timeouts, refused connections
            raise SequenceError(f"{what} on {self.protocol}://{self.url} failed: "
                                f"{type(exc).__name__}: {exc}", "unavailable") from exc

    def send(self, model_name: str, model_version: str, inputs: dict[str, np.ndarray],
             outputs: list[str] | None, correlation_id: int, start: bool, end: bool,
             timeout_s: float | None = None) -> dict[str, np.ndarray]:
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        requested = [self._module.InferRequestedOutput(n) for n in outputs] if outputs else None
        kwargs = {"client_timeout": timeout_s} if self.protocol == "grpc" else {}
        with self._lock:
            result = self._call("infer", self._client.infer, model_name,
                                infer_inputs(self._module, inputs), model_version=model_version,
                                outputs=requested, sequence_id=correlation_id,
                                sequence_start=start, sequence_end=end, **kwargs)
        if outputs:
            names = outputs
        elif self.protocol == "http":
            names = [o["name"] for o in result.get_response().get("outputs", [])]
        else:
            names = [o.name for o in result.get_response().outputs]
        return {name: result.as_numpy(name) for name in names}

    def model_config(self, model_name: str, model_version: str = "") -> tuple[dict, dict]:
        kwargs = {"as_json": True} if self.protocol == "grpc" else {}
        metadata = self._call("get_model_metadata", self._client.get_model_metadata,
                              model_name, model_version, **kwargs)
        config = self._call("get_model_config", self._client.get_model_config,
                            model_name, model_version, **kwargs)
        return metadata, config

    def is_model_ready(self, model_name: str, model_version: str = "") -> bool:
        try:
            return bool(self._client.is_model_ready(model_name, model_version))
        except Exception:  # any transport failure means "not ready"
            return False

    def close(self) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception:  # a gevent client closed from another thread may complain
                pass


TRANSPORTS = ("grpc", "http", "grpc_unary")


def make_transport(protocol: str, url: str, timeout_s: float = 5.0):
    """``grpc``: bidirectional stream (default); ``http`` / ``grpc_unary``: unary fallback."""
    if protocol == "grpc":
        return GrpcStreamTransport(url, timeout_s)
    if protocol == "http":
        return UnaryTransport(url, "http", timeout_s)
    if protocol == "grpc_unary":
        return UnaryTransport(url, "grpc", timeout_s)
    raise ValueError(f"protocol {protocol!r} not in {list(TRANSPORTS)}")


def wait_for_model(transport, model_name: str, model_version: str = "",
                   timeout_s: float = 30.0, poll_s: float = 0.25) -> None:
    deadline = time.monotonic() + timeout_s
    while not transport.is_model_ready(model_name, model_version):
        if time.monotonic() >= deadline:
            raise SequenceError(f"model {model_name!r} not ready on {transport!r} after "
                                f"{timeout_s:.1f} s", "unavailable")
        time.sleep(poll_s)


# --- one stream's sequence ---------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceEvent:
    """``kind``: start, end, state_lost, keepalive or error."""
    kind: str
    correlation_id: int
    stream_key: str
    reason: str
    at_s: float


@dataclass
class SequenceCounters:
    requests: int = 0            # every request sent (frames, keep-alives, ENDs)
    frames: int = 0              # successful data requests
    sequences_started: int = 0
    sequences_ended: int = 0
    state_losses: int = 0        # the server lost a live sequence (idle timeout, restart)
    keepalives: int = 0
    errors: int = 0              # failed requests (server unreachable, rejected, timed out)


@dataclass
class SequenceResult:
    outputs: dict[str, np.ndarray]
    started: bool                # this request carried START
    state_lost: str = ""         # why the previous state was lost (this request restarted it)


@dataclass
class SequenceTiming:
    """When a stream needs a keep-alive or an END (pure decisions, no I/O)."""
    max_idle_s: float = DEFAULT_MAX_IDLE_S   # the model's max_sequence_idle_microseconds
    keepalive_fraction: float = 0.5          # keep-alive after this fraction of max_idle_s
    end_after_silence_s: float = 0.0         # END a stream without data this long; 0 = never

    @property
    def keepalive_interval_s(self) -> float:
        return self.keepalive_fraction * self.max_idle_s if self.keepalive_fraction > 0 else 0.0

    def action(self, now: float, last_request: float, last_frame: float,
               can_keepalive: bool) -> str | None:
        """``"end"``, ``"keepalive"`` or None for an active sequence at ``now``."""
        if self.end_after_silence_s > 0 and now - last_frame >= self.end_after_silence_s:
            return "end"
        interval = self.keepalive_interval_s
        if can_keepalive and interval > 0 and now - last_request >= interval:
            return "keepalive"
        return None


class SequenceStream:
    """One stream's Triton sequence, from its first request to its END.

    ``keepalive_inputs``: tensors of a request that keeps the sequence alive without changing its
    state (e.g. the tracker's ``keepalive`` flag); None disables keep-alives. ``end_inputs``:
    tensors sent with the END flag (default: ``keepalive_inputs``); None means the stream cannot
    end its sequence explicitly and the server frees it after its idle timeout. Tensors are given
    without the batch dimension; it is added when the model batches.

    Thread-safe: data requests, :meth:`tick` (keep-alive / silence END) and :meth:`end` are
    serialized, so the server sees the stream's requests in the order they were made.
    """

    def __init__(self, transport, model_name: str, assignment: CorrelationAssignment, *,
                 model_version: str = "", keepalive_inputs: dict | None = None,
                 end_inputs: dict | None = None, keepalive_fraction: float = 0.5,
                 end_after_silence_s: float = 0.0, request_timeout_s: float | None = None,
                 on_event: Callable[[SequenceEvent], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.transport = transport
        self.model_name, self.model_version = model_name, model_version
        self.assignment = assignment
        self.correlation_id = assignment.correlation_id
        self.keepalive_inputs = keepalive_inputs
        self.end_inputs = end_inputs if end_inputs is not None else keepalive_inputs
        self.timing = SequenceTiming(DEFAULT_MAX_IDLE_S, keepalive_fraction, end_after_silence_s)
        self.request_timeout_s = request_timeout_s
        self.on_event = on_event
        self.clock = clock
        self.counters = SequenceCounters()
        self.events: deque[SequenceEvent] = deque(maxlen=100)
        self.last_loss_reason = ""
        self.spec: ModelSpec | None = None
        self._batched = True
        self._lock = threading.RLock()
        self._active = False
        self._last_request = self._last_frame = 0.0   # attempts, monotonic seconds
        self._idle_before_send = 0.0
        self._failed_since_success = False

    # -- discovery

    def discover(self) -> ModelSpec:
        """Read the model's config: sequence batching, max idle, batch dimension."""
        metadata, config = self.transport.model_config(self.model_name, self.model_version)
        spec = model_spec_from_server(metadata, config)
        if not spec.sequence_batching:
            raise SequenceError(f"model {self.model_name!r} has no sequence_batching: it keeps "
                                "no per-stream state; use a stateless node for it", "rejected")
        self.spec = spec
        self._batched = spec.max_batch_size > 0
        self.timing.max_idle_s = (spec.max_sequence_idle_us / 1e6 if spec.max_sequence_idle_us
                                  else DEFAULT_MAX_IDLE_S)
        return spec

    @property
    def max_idle_s(self) -> float:
        return self.timing.max_idle_s

    @property
    def active(self) -> bool:
        return self._active

    @property
    def state(self) -> str:
        return "active" if self._active else "idle"

    # -- internals

    def _event(self, kind: str, reason: str) -> None:
        event = SequenceEvent(kind, self.correlation_id, self.assignment.stream_key, reason,
                              self.clock())
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def _send(self, inputs, outputs, start=False, end=False, timeout_s=None):
        if self._batched:
            inputs = {k: np.asarray(v)[None, ...] for k, v in inputs.items()}
        self.counters.requests += 1
        now = self.clock()
        self._idle_before_send, self._last_request = now - self._last_request, now
        try:
            result = self.transport.send(self.model_name, self.model_version, inputs, outputs,
                                         self.correlation_id, start, end,
                                         timeout_s if timeout_s is not None
                                         else self.request_timeout_s)
        except SequenceError as exc:
            if exc.kind != "dropped":
                self.counters.errors += 1
                self._failed_since_success = True
            raise
        if self._batched:
            result = {k: v[0] for k, v in result.items()}
        return result

    def _loss_reason(self, server_message: str) -> str:
        idle = self._idle_before_send
        if self._failed_since_success:
            return ("the server no longer knows the sequence after failed requests (server "
                    "restarted or connection lost)")
        if idle >= self.timing.max_idle_s:
            return (f"the server dropped the sequence after {idle:.1f} s without requests "
                    f"(max_sequence_idle {self.timing.max_idle_s:.1f} s)")
        return f"the server no longer knows the sequence: {server_message}"

    def _lost(self, exc: SequenceError) -> str:
        reason = self._loss_reason(str(exc))
        self._active = False
        self.counters.state_losses += 1
        self.last_loss_reason = reason
        self._event("state_lost", reason)
        try:  # the server may have been reconfigured while it was away
            self.discover()
        except SequenceError:
            pass
        return reason

    def _started(self, now: float, reason: str) -> None:
        self._active = True
        self.counters.sequences_started += 1
        self._event("start", reason)

    # -- the stream's life

    def infer(self, inputs: dict[str, np.ndarray],
              outputs: list[str] | None = None) -> SequenceResult:
        """One data request of the stream: START if no sequence is active, else a continuation.

        If the server dropped the sequence, the state loss is reported and the same request is
        sent again with START. Raises :class:`SequenceError` if the request fails; the stream
        stays usable (the next request finds out whether the server still has the sequence).
        """
        with self._lock:
            now = self._last_frame = self.clock()
            start = not self._active
            lost = ""
            try:
                result = self._send(inputs, outputs, start=start)
            except SequenceError as exc:
                if exc.kind != "dropped" or start:
                    raise
                lost = self._lost(exc)
                start = True
                result = self._send(inputs, outputs, start=True)
            if start:
                self._started(now, f"restart after state loss: {lost}" if lost
                              else "first request of the stream")
            self._failed_since_success = False
            self.counters.frames += 1
            return SequenceResult(result, start, lost)

    def tick(self) -> str | None:
        """Call periodically: sends a keep-alive or ENDs a silent stream when due.

        Returns ``"keepalive"``, ``"end"``, ``"state_lost"``, ``"error"`` or None.
        """
        with self._lock:
            if not self._active:
                return None
            now = self.clock()
            action = self.timing.action(now, self._last_request, self._last_frame,
                                        self.keepalive_inputs is not None)
            if action == "end":
                self._end_locked(f"stream silent for {now - self._last_frame:.1f} s")
                return "end"
            if action != "keepalive":
                return None
            try:
                self._send(self.keepalive_inputs, None)
            except SequenceError as exc:
                if exc.kind == "dropped":
                    self._lost(exc)  # the next frame starts a new sequence
                    return "state_lost"
                self._event("error", f"keep-alive failed: {exc}")
                return "error"
            self._failed_since_success = False
            self.counters.keepalives += 1
            return "keepalive"

    def end(self, reason: str, timeout_s: float | None = None) -> bool:
        """Send END (if a sequence is active); True if the server took it."""
        with self._lock:
            return self._end_locked(reason, timeout_s)

    def _end_locked(self, reason: str, timeout_s: float | None = None) -> bool:
        if not self._active:
            return False
        self._active = False
        self.counters.sequences_ended += 1
        if self.end_inputs is None:
            self._event("end", f"{reason} (no END request for this model: the server frees "
                               f"the sequence after {self.timing.max_idle_s:.1f} s idle)")
            return False
        try:
            self._send(self.end_inputs, None, end=True, timeout_s=timeout_s)
        except SequenceError as exc:
            note = ("the server had already dropped it" if exc.kind == "dropped"
                    else f"END not delivered: {exc}")
            self._event("end", f"{reason} ({note})")
            return False
        self._event("end", reason)
        return True

    def close(self, reason: str = "stream closed", timeout_s: float | None = None) -> None:
        """END the sequence (if active) and close the transport."""
        try:
            self.end(reason, timeout_s)
        finally:
            self.transport.close()

    def snapshot(self) -> dict:
        """Counters and state for diagnostics."""
        with self._lock:
            values = dict(vars(self.counters))
            values.update(state=self.state, correlation_id=self.correlation_id,
                          stream_key=self.assignment.stream_key,
                          id_method=self.assignment.method,
                          max_idle_s=self.timing.max_idle_s,
                          keepalive_interval_s=self.timing.keepalive_interval_s,
                          last_loss_reason=self.last_loss_reason)
            return values



# --- a fleet on one server ---------------------------------------------------------------------


@dataclass(frozen=True)
class FleetRobot:
    namespace: str     # e.g. "robot1" (relative; pushed by the launch file)
    robot_id: int


def plan_fleet(robots: str, robot_id_base: int = 1, robot_ids: str = "",
               namespace_prefix: str = "robot") -> list[FleetRobot]:
    """Namespaces and robot ids of a fleet sharing one server, checked for collisions.

    ``robots``: a count (``"3"`` -> robot1, robot2, robot3) or comma-separated namespaces
    (``"alpha,bravo"``). ``robot_ids``: comma-separated ids, one per robot; empty = consecutive
    ids from ``robot_id_base``. Raises CorrelationIdError (a ValueError) for duplicate namespaces
    or ids, ids out of range, or a count/id-list mismatch.
    """
    robots = robots.strip()
    if robots.isdigit():
        count = int(robots)
        if count < 1:
            raise CorrelationIdError(f"robots={robots!r}: need at least one robot")
        names = [f"{namespace_prefix}{i}" for i in range(1, count + 1)]
    else:
        names = [n.strip().strip("/") for n in robots.split(",") if n.strip().strip("/")]
        if not names:
            raise CorrelationIdError(f"robots={robots!r}: give a count or namespaces")
    if len(set(names)) != len(names):
        raise CorrelationIdError(f"duplicate robot namespaces in {names}")
    if robot_ids.strip():
        try:
            ids = [int(v) for v in robot_ids.split(",") if v.strip()]
        except ValueError:
            raise CorrelationIdError(f"robot_ids={robot_ids!r}: expected integers "
                                     "separated by commas") from None
        if len(ids) != len(names):
            raise CorrelationIdError(f"{len(ids)} robot_ids for {len(names)} robots {names}")
    else:
        ids = [int(robot_id_base) + i for i in range(len(names))]
    bad = [i for i in ids if not 1 <= i <= MAX_ROBOT_ID]
    if bad:
        raise CorrelationIdError(f"robot ids {bad} are outside [1, {MAX_ROBOT_ID}]")
    fleet = [FleetRobot(name, robot_id) for name, robot_id in zip(names, ids)]
    # Same model, same stream index: the ids must differ (this also range-checks them).
    check_unique([assign_correlation_id(f"/{r.namespace}", "detections", robot_id=r.robot_id)
                  for r in fleet])
    return fleet
