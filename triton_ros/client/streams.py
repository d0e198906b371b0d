"""Sequence transports: how one stream's sequence requests reach Triton, in order.

No ROS here. Both transports are built from an :class:`~triton_ros.endpoint.Endpoint`, so a
sequence gets the same TLS/mTLS, auth headers, compression, timeouts and capped reconnect backoff
as stateless requests (:class:`~triton_ros.client.client.TritonClient`), plus the
``routing_header`` (value: the sequence's correlation id) on every request of the sequence:

- :class:`GrpcStreamTransport`: one gRPC bidirectional stream (``start_stream`` /
  ``async_stream_infer``) per sequence; gRPC sends headers once, at stream start, so a request of
  another correlation id opens a new stream;
- :class:`UnaryTransport`: one unary request per step, over HTTP or gRPC (the fallback).

Interface (what :class:`triton_ros.sequences.SequenceStream` calls): ``send(model_name,
model_version, inputs, outputs, correlation_id, start, end, timeout_s)`` -> output name -> array;
``model_config(model_name, model_version)`` -> (metadata, config) JSON; ``is_model_ready``;
``close``. Failures raise :class:`~triton_ros.client.errors.SequenceError` (``kind``:
unavailable, timeout, rejected, dropped; ``cause``: the classified reason, e.g. ``tls``/``auth``).
After a connection failure the channel is rebuilt, so a restarted server is found at once.
"""
import functools
import itertools
import threading

import numpy as np
from tritonclient.utils import InferenceServerException

from triton_ros.client.channel import (call_kwargs, infer_inputs, infer_kwargs, module_of,
                                       new_tritonclient)
from triton_ros.client.errors import SequenceError, sequence_error
from triton_ros.endpoint import Endpoint

#: values of the sequence nodes' older ``protocol`` parameter
TRANSPORTS = ("grpc", "http", "grpc_unary")


class _Pending:
    def __init__(self, request_id: str):
        self.request_id = request_id
        self.event = threading.Event()
        self.result = None
        self.error = None


class _Transport:
    """What both transports share: the endpoint, JSON discovery calls, error mapping."""

    def __init__(self, endpoint: Endpoint):
        self.endpoint = endpoint
        self.url, self.timeout_s = endpoint.url, endpoint.timeout_s
        self._module = module_of(endpoint)
        self.streams_opened = self.streams_closed = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.endpoint!r})"

    def _call(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # tritonclient, socket and gevent errors: classified
            error = sequence_error(what, self.endpoint.address, exc, self.timeout_s)
            if error.kind in ("unavailable", "timeout"):
                self._reset()
            raise error from exc

    def _reset(self) -> None:
        """Drop the connection(s) so that the next request opens fresh ones."""

    def model_config(self, model_name: str, model_version: str = "") -> tuple[dict, dict]:
        """(metadata, config) JSON of the model."""
        kwargs = call_kwargs(self.endpoint)
        if self.endpoint.protocol == "grpc":
            kwargs["as_json"] = True
        client = self._client
        metadata = self._call("get_model_metadata", client.get_model_metadata,
                              model_name, model_version, **kwargs)
        config = self._call("get_model_config", client.get_model_config,
                            model_name, model_version, **kwargs)
        return metadata, config

    def is_model_ready(self, model_name: str, model_version: str = "") -> bool:
        try:
            return bool(self._client.is_model_ready(model_name, model_version,
                                                    **call_kwargs(self.endpoint)))
        except Exception:  # any transport failure means "not ready"
            return False


class GrpcStreamTransport(_Transport):
    """Sequence requests over one gRPC bidirectional stream (``start_stream``).

    One request in flight at a time (``send`` blocks until its response), so a sequence's
    requests reach the model in order and every response or error belongs to the request that
    is waiting. The stream carries the auth headers and the routing header (the correlation id
    of its sequence) from its start; a broken stream (server gone, timeout) is torn down, its
    channel rebuilt, and a new stream opened on the next ``send``.
    """

    def __init__(self, endpoint: Endpoint):
        if endpoint.protocol != "grpc":
            raise ValueError(f"a gRPC stream needs protocol grpc, not {endpoint.protocol!r}")
        super().__init__(endpoint)
        self._client = new_tritonclient(endpoint)
        self._lock = threading.RLock()   # send() resets the channel while holding it
        self._open = False
        self._broken = False
        self._stream_id: int | None = None   # correlation id whose headers the stream carries
        self._generation = 0
        self._pending: _Pending | None = None
        self._ids = itertools.count(1)

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

    def _start(self, correlation_id: int) -> None:
        self._generation += 1
        self._broken = False
        self._client.start_stream(
            callback=functools.partial(self._on_response, self._generation),
            headers=self.endpoint.sequence_headers(correlation_id) or None,
            compression_algorithm=self.endpoint.compression or None)
        self._open, self._stream_id = True, correlation_id
        self.streams_opened += 1

    def _teardown(self) -> None:
        if self._open:
            self._generation += 1
            try:
                self._client.stop_stream(cancel_requests=True)
            except Exception:  # the stream is already gone; nothing left to release
                pass
            self._open, self._stream_id = False, None
            self.streams_closed += 1

    def _reset(self) -> None:
        # A fresh channel connects at once, where the old one may wait out its backoff.
        with self._lock:
            self._teardown()
            old, self._client = self._client, new_tritonclient(self.endpoint)
        try:
            old.close()
        except Exception:  # closing a channel whose server is gone may complain
            pass

    def send(self, model_name: str, model_version: str, inputs: dict[str, np.ndarray],
             outputs: list[str] | None, correlation_id: int, start: bool, end: bool,
             timeout_s: float | None = None) -> dict[str, np.ndarray]:
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        where = self.endpoint.address
        with self._lock:
            if self._broken or (self._open and self._stream_id != correlation_id):
                self._teardown()
            if not self._open:
                self._start(correlation_id)
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
                self._reset()
                raise SequenceError(f"gRPC stream to {where} closed (server unreachable): "
                                    f"{exc.message() or exc}", "unavailable",
                                    "unreachable") from exc
            if not pending.event.wait(timeout_s):
                self._reset()
                raise SequenceError(f"no response from {where} within {timeout_s:.1f} s "
                                    f"(sequence {correlation_id})", "timeout", "unresponsive")
            self._pending = None
            if pending.error is not None:
                error = sequence_error("stream infer", where, pending.error, timeout_s)
                if pending.error.status() is not None:  # the stream broke: not this request
                    self._reset()
                    if error.kind == "rejected":
                        error = SequenceError(str(error), "unavailable", error.cause)
                raise error
            result = pending.result
            names = outputs or [o.name for o in result.get_response().outputs]
            return {name: result.as_numpy(name) for name in names}

    def close(self) -> None:
        with self._lock:
            self._teardown()
            try:
                self._client.close()
            except Exception:  # closing a channel whose server is gone may complain
                pass


class UnaryTransport(_Transport):
    """The fallback: one unary request per sequence step, over HTTP (or unary gRPC).

    Every request carries the auth headers and the routing header. The HTTP client runs on
    gevent, whose hub belongs to one thread, so each calling thread gets its own client.
    Requests of one stream are still serialized (a lock), hence in order.
    """

    def __init__(self, endpoint: Endpoint):
        super().__init__(endpoint)
        self.protocol = endpoint.protocol
        self._local = threading.local()
        self._clients = []
        self._generation = 0
        self._lock = threading.Lock()
        self._clients_lock = threading.Lock()

    @property
    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None or getattr(self._local, "generation", -1) != self._generation:
            client = new_tritonclient(self.endpoint)
            self._local.client, self._local.generation = client, self._generation
            with self._clients_lock:
                self._clients.append(client)
        return client

    def _reset(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
            self._generation += 1
        for client in clients:
            try:
                client.close()
            except Exception:  # a gevent client of another thread may complain
                pass

    def send(self, model_name: str, model_version: str, inputs: dict[str, np.ndarray],
             outputs: list[str] | None, correlation_id: int, start: bool, end: bool,
             timeout_s: float | None = None) -> dict[str, np.ndarray]:
        requested = [self._module.InferRequestedOutput(n) for n in outputs] if outputs else None
        kwargs = infer_kwargs(self.endpoint, self.endpoint.sequence_headers(correlation_id),
                              timeout_s)
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

    def close(self) -> None:
        self._reset()


def open_sequence_transport(endpoint: Endpoint):
    """The transport ``endpoint`` asks for: a gRPC stream, or unary gRPC/HTTP requests."""
    return GrpcStreamTransport(endpoint) if endpoint.uses_stream else UnaryTransport(endpoint)


def make_transport(protocol: str, url: str, timeout_s: float = 5.0, **options):
    """Shorthand: ``grpc`` (bidirectional stream), ``http`` or ``grpc_unary`` (unary), with
    further :class:`~triton_ros.endpoint.Endpoint` options as keywords."""
    if protocol not in TRANSPORTS:
        raise ValueError(f"protocol {protocol!r} not in {list(TRANSPORTS)}")
    transport = "unary" if protocol == "grpc_unary" else options.pop("sequence_transport",
                                                                      "stream")
    return open_sequence_transport(Endpoint(
        url, "grpc" if protocol == "grpc_unary" else protocol, timeout_s=timeout_s,
        sequence_transport=transport, **options))
