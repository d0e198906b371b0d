"""One stream's Triton sequence for its whole life (:class:`SequenceStream`).

No ROS here. START on the first request, END when the stream ends (shutdown, deactivate,
silence), keep-alives so that a live but quiet stream outlives the model's
``max_sequence_idle_microseconds`` (discovered), and a restart with a new START when the server
no longer knows the sequence (idle timeout, server restart: "must specify the START flag"),
or when its server left a server list (:class:`~triton_ros.client.pool.PooledSequenceTransport`),
reporting the state loss and carrying on. Requests go through a transport from
:mod:`triton_ros.client.streams` (e.g. ``TritonClient.sequence_transport()``).
"""
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from triton_ros.client.errors import SequenceError
from triton_ros.model_spec import ModelSpec, model_spec_from_server
from triton_ros.sequences.ids import CorrelationAssignment

DEFAULT_MAX_IDLE_S = 1.0              # Triton's default max_sequence_idle_microseconds


def wait_for_model(transport, model_name: str, model_version: str = "",
                   timeout_s: float = 30.0, poll_s: float = 0.25) -> None:
    """Block until ``transport`` reports the model ready; SequenceError (``unavailable``) after
    ``timeout_s``, saying why (the error of asking the server for the model's config)."""
    deadline = time.monotonic() + timeout_s
    while not transport.is_model_ready(model_name, model_version):
        if time.monotonic() >= deadline:
            try:
                transport.model_config(model_name, model_version)
                why = "the server does not call it ready"
            except Exception as exc:  # noqa: BLE001 - its text is the reason we report
                why = str(exc)
            raise SequenceError(f"model {model_name!r} not ready on {transport!r} after "
                                f"{timeout_s:.1f} s: {why}", "unavailable")
        time.sleep(poll_s)


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
        self._loss_to_restart = ""
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

    def _loss_reason(self, exc: SequenceError) -> str:
        idle, server_message = self._idle_before_send, str(exc)
        if exc.cause == "moved":  # a server list: the sequence's server went away
            return server_message
        if self._failed_since_success:
            return ("the server no longer knows the sequence after failed requests (server "
                    "restarted or connection lost)")
        if idle >= self.timing.max_idle_s:
            return (f"the server dropped the sequence after {idle:.1f} s without requests "
                    f"(max_sequence_idle {self.timing.max_idle_s:.1f} s)")
        return f"the server no longer knows the sequence: {server_message}"

    def _lost(self, exc: SequenceError) -> str:
        reason = self._loss_reason(exc)
        self._active = False
        self.counters.state_losses += 1
        self.last_loss_reason = reason
        self._loss_to_restart = reason   # the next START restarts after this loss
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
                # A loss found by a keep-alive (tick) is restarted by this request.
                lost = lost or self._loss_to_restart
                self._loss_to_restart = ""
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
