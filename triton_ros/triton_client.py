"""A small synchronous facade over ``tritonclient`` (gRPC or HTTP) for one model.

No ROS here. Errors from the server or the network are raised as :class:`TritonError` with the
endpoint in the message; callers decide whether to retry.

Transport options (all off by default):

- TLS: ``ssl=True`` with optional PEM file paths ``root_certificates`` (CA to trust; default:
  the system/gRPC defaults), ``private_key`` + ``certificate_chain`` (client certificate for
  mutual TLS). tritonserver itself serves TLS on gRPC only (``--grpc-use-ssl``); HTTPS means a
  TLS-terminating proxy (nginx, envoy, an ingress) in front of its HTTP port.
- ``headers``: sent with every request (health, metadata, inference, shared memory), e.g.
  from :func:`triton_ros.credentials.auth_headers`; their values never appear in repr/str/logs.
- ``compression``: ``""``, ``"gzip"`` or ``"deflate"`` for inference requests and responses.
- ``shared_memory``: ``"off"``, ``"on"`` or ``"auto"`` (on when the url's host is loopback,
  127.0.0.0/8, ``localhost`` or ``::1``). Inputs and fixed-size outputs then travel through
  system shared memory (:mod:`triton_ros.shared_memory`); only the server on the same machine
  (same ``/dev/shm``) can use it. ``auto`` falls back to the network (warning once) when a
  live server cannot register a region; ``on`` raises instead. Concurrent ``infer`` calls use
  separate regions; output sizes come from the (cached) model config; regions a restarted
  server forgot are registered again; before the first request, regions left by dead
  ``triton_ros`` processes are removed; ``close()`` unregisters and unlinks this client's.
"""
import ipaddress
import logging
import math
import os
import threading
import time

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype, triton_to_np_dtype
from tritonclient.utils.shared_memory import SharedMemoryException

from triton_ros import shared_memory as shm
from triton_ros.credentials import SecretHeaders, check_headers
from triton_ros.model_spec import ModelSpec, model_spec_from_server

PROTOCOLS = ("grpc", "http")
COMPRESSIONS = ("", "gzip", "deflate")
SHARED_MEMORY_MODES = ("off", "on", "auto")

_log = logging.getLogger(__name__)


class TritonError(RuntimeError):
    """A request to the Triton server failed; ``kind`` says why, in words a user can act on.

    Kinds: ``unreachable`` (refused, unresolvable host), ``unresponsive`` (no answer within the
    request timeout: hung or overloaded server), ``protocol`` (the port speaks another protocol:
    HTTP vs gRPC), ``tls`` (TLS handshake failed), ``auth`` (headers rejected), ``model_missing``
    (not in the server's repository), ``model_not_ready`` (in the repository, not loaded/ready),
    ``rejected`` (the server refused this request, e.g. a wrong shape).
    """

    def __init__(self, message: str, kind: str = "rejected"):
        super().__init__(message)
        self.kind = kind


#: kinds meaning "the server cannot serve us now" (as opposed to "this request was bad")
UNAVAILABLE_KINDS = frozenset({"unreachable", "unresponsive", "protocol", "tls", "auth",
                               "model_missing", "model_not_ready"})
#: kinds after which the connection (channel) is rebuilt before the next attempt
_TRANSPORT_KINDS = frozenset({"unreachable", "unresponsive", "protocol", "tls"})
#: RFC 2606/6761 names used as placeholders (e.g. in the remote_server preset)
_PLACEHOLDER_SUFFIXES = (".example", ".invalid", ".test", "example.com", "example.org",
                         "example.net", ".example.internal")


class _RegistrationFailed(TritonError):
    """The server could not register a shared memory region (e.g. it has another /dev/shm)."""


def url_host(url: str) -> str:
    """The host part of ``host:port`` / ``[v6]:port`` / ``host``."""
    if url.startswith("["):
        return url[1:url.find("]")] if "]" in url else url[1:]
    if url.count(":") > 1:  # bare IPv6 address
        return url
    return url.rsplit(":", 1)[0] if ":" in url else url


def check_url(url: str, protocol: str = "grpc") -> None:
    """Raise ValueError unless ``url`` is ``host:port`` (no scheme) with a real host and port."""
    hint = "gRPC 8001, HTTP 8000"
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise ValueError(f"server_url {url!r}: give host:port without a scheme ({scheme}://); "
                         f"the protocol is set by protocol:=grpc|http")
    host = url_host(url)
    port = url[len(host) + (2 if url.startswith("[") else 0):].lstrip(":") if ":" in url else ""
    if not host or not port:
        raise ValueError(f"server_url {url!r}: expected host:port ({hint})")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"server_url {url!r}: port {port!r} is not a number in 1..65535")
    if host.lower().endswith(_PLACEHOLDER_SUFFIXES):
        raise ValueError(f"server_url {url!r}: {host} is a placeholder host (a preset's example); "
                         f"set server_url:=<your Triton host>:<port>")


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    host = url_host(url).lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def classify_error(what: str, where: str, exc: BaseException,
                   timeout_s: float) -> TritonError:
    """A :class:`TritonError` for ``exc`` raised by tritonclient, saying what to check."""
    if isinstance(exc, InferenceServerException):
        text, status = exc.message() or str(exc), str(exc.status() or "")
    else:
        text, status = f"{type(exc).__name__}: {exc}", ""
    low = text.lower()
    prefix = f"{what} on {where} failed"
    if "deadline" in low or "timed out" in low or "timeout" in low or \
            status == "StatusCode.DEADLINE_EXCEEDED":
        return TritonError(f"{prefix}: no answer within {timeout_s:.1f} s (server hung or "
                           f"overloaded): {text}", "unresponsive")
    if "tls handshake" in low or "ssl" in low or "certificate" in low:
        why = ("the server does not serve TLS here (set ssl:=false)"
               if "wrong_version_number" in low or "wrong version number" in low else
               "check root_certificates / the server's certificate")
        return TritonError(f"{prefix}: TLS handshake failed: {why}: {text}", "tls")
    if "stream removed" in low or "connection reset" in low:
        return TritonError(f"{prefix}: connection lost (server stopped or crashed): {text}",
                           "unreachable")
    if "expected http/" in low or "httpparseerror" in low or "socket closed" in low or \
            "bad status line" in low or "remotedisconnected" in low:
        return TritonError(f"{prefix}: the port does not speak this protocol (gRPC vs HTTP: "
                           f"tritonserver uses 8001 for gRPC, 8000 for HTTP; or a TLS-only "
                           f"endpoint reached without ssl:=true): {text}", "protocol")
    if "connection refused" in low or "errors resolving" in low or \
            "name or service not known" in low or "failed to connect" in low or \
            isinstance(exc, (ConnectionError, OSError)):
        return TritonError(f"{prefix}: cannot connect (is tritonserver running there, and is "
                           f"the host:port right?): {text}", "unreachable")
    if "restricted" in low or "unauthenticated" in low or "permission" in low or \
            "invalid metadata" in low or status in ("401", "403", "StatusCode.UNAUTHENTICATED",
                                                     "StatusCode.PERMISSION_DENIED"):
        return TritonError(f"{prefix}: the server rejected the request's credentials (check "
                           f"auth_token_env/auth_token_file, auth_header, auth_scheme): {text}",
                           "auth")
    if "unknown model" in low or "is not found" in low:
        return TritonError(f"{prefix}: {text}", "model_missing")
    if "unavailable" in low or status in ("StatusCode.UNAVAILABLE", "502", "503", "504"):
        return TritonError(f"{prefix}: {text}", "unreachable")
    return TritonError(f"{prefix}: {text}", "rejected")


def infer_inputs(module, inputs: dict[str, np.ndarray]) -> list:
    """``module.InferInput`` objects (tritonclient.grpc or .http) carrying ``inputs`` in-band."""
    request = []
    for name, array in inputs.items():
        array = np.ascontiguousarray(array)
        tensor = module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        request.append(tensor)
    return request


class TritonClient:
    """Talks to one model on one Triton server.

    ``url``: ``host:port`` (no scheme); ``protocol``: ``grpc`` or ``http``; ``timeout_s``: per
    request (seconds). Keyword-only transport options: see the module docstring.
    ``infer`` may be called from several threads at once.
    """

    def __init__(self, url: str, model_name: str, protocol: str = "grpc",
                 model_version: str = "", timeout_s: float = 5.0, *,
                 ssl: bool = False, root_certificates: str = "", private_key: str = "",
                 certificate_chain: str = "", headers: dict[str, str] | None = None,
                 compression: str = "", shared_memory: str = "off",
                 max_reconnect_backoff_s: float = 2.0):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol {protocol!r} not in {list(PROTOCOLS)}")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression {compression!r} not in {list(COMPRESSIONS)}")
        if shared_memory not in SHARED_MEMORY_MODES:
            raise ValueError(f"shared_memory {shared_memory!r} not in "
                             f"{list(SHARED_MEMORY_MODES)}")
        check_url(url, protocol)
        check_headers(headers or {})
        if bool(private_key) != bool(certificate_chain):
            raise ValueError("private_key and certificate_chain go together (client certificate)")
        for what, path in (("root_certificates", root_certificates),
                           ("private_key", private_key),
                           ("certificate_chain", certificate_chain)):
            if path and not ssl:
                raise ValueError(f"{what} given but ssl is false")
            if path and not os.path.isfile(path):
                raise ValueError(f"{what} file not found: {path}")
        self.url, self.model_name, self.protocol = url, model_name, protocol
        self.model_version, self.timeout_s = model_version, timeout_s
        self.ssl, self.compression = ssl, compression
        self._tls = (root_certificates, private_key, certificate_chain)
        self._headers = SecretHeaders({str(k).lower(): str(v) for k, v in (headers or {}).items()})
        self.shared_memory = shared_memory
        self._shm_enabled = (shared_memory == "on"
                             or (shared_memory == "auto" and is_loopback_url(url)))
        self._shm_pool: shm.RegionPool | None = None
        self._shm_lock = threading.Lock()
        self._spec: ModelSpec | None = None
        self._module = grpcclient if protocol == "grpc" else httpclient
        self.max_reconnect_backoff_s = max_reconnect_backoff_s
        self._local = threading.local()
        self._clients = []
        self._clients_lock = threading.Lock()
        self._generation = 0   # bumped by reset_connections(): thread-local clients are renewed

    # -- connection -------------------------------------------------------------------------

    def _new_client(self):
        root, key, chain = self._tls
        if self.protocol == "grpc":
            # gRPC's default reconnect backoff grows toward two minutes: cap it so a channel
            # finds a restarted server within max_reconnect_backoff_s.
            backoff_ms = max(10, int(self.max_reconnect_backoff_s * 1000))
            return grpcclient.InferenceServerClient(
                self.url, ssl=self.ssl, root_certificates=root or None,
                private_key=key or None, certificate_chain=chain or None, channel_args=[
                    ("grpc.max_send_message_length", 2**31 - 1),
                    ("grpc.max_receive_message_length", 2**31 - 1),
                    ("grpc.initial_reconnect_backoff_ms", min(500, backoff_ms)),
                    ("grpc.min_reconnect_backoff_ms", min(500, backoff_ms)),
                    ("grpc.max_reconnect_backoff_ms", backoff_ms)])
        ssl_options = None
        if self.ssl:
            ssl_options = {}
            if root:
                ssl_options["ca_certs"] = root
            if key:
                ssl_options.update(keyfile=key, certfile=chain)
        return httpclient.InferenceServerClient(
            self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s,
            ssl=self.ssl, ssl_options=ssl_options)

    @property
    def _client(self):
        """The tritonclient object for this thread.

        gRPC clients are thread-safe and shared; the HTTP client runs on gevent, whose hub
        belongs to one thread, so each thread that calls gets its own.
        """
        if self.protocol == "grpc":
            clients = self._clients
            if clients:
                return clients[0]
            with self._clients_lock:
                if not self._clients:
                    self._clients.append(self._new_client())
                return self._clients[0]
        client = getattr(self._local, "client", None)
        if client is None or getattr(self._local, "generation", -1) != self._generation:
            client = self._new_client()
            self._local.client, self._local.generation = client, self._generation
            with self._clients_lock:
                self._clients.append(client)
        return client

    def reset_connections(self) -> None:
        """Drop the channels/connections; the next call opens fresh ones.

        A fresh gRPC channel connects at once, where an old one may still be waiting out its
        reconnect backoff. Requests in flight on the old ones fail.
        """
        with self._clients_lock:
            clients, self._clients = self._clients, []
            self._generation += 1
        for client in clients:
            try:
                client.close()
            except Exception:  # a channel to a dead server, a gevent client of another thread
                pass

    def _kwargs(self) -> dict:
        """Per-call keyword arguments every tritonclient request takes (headers, timeout)."""
        kwargs = {"headers": dict(self._headers) if self._headers else None}
        if self.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout_s
        return kwargs

    def __repr__(self) -> str:
        extras = []
        if self.ssl:
            extras.append("tls")
        if self._headers:
            extras.append(f"headers={sorted(self._headers)}")  # names only, never values
        if self.compression:
            extras.append(f"compression={self.compression}")
        if self.shared_memory != "off":
            extras.append(f"shared_memory={self.shared_memory}")
        scheme = {"grpc": "grpc", "http": "https" if self.ssl else "http"}[self.protocol]
        return (f"TritonClient({scheme}://{self.url}, model={self.model_name!r}"
                + "".join(", " + e for e in extras) + ")")

    __str__ = __repr__

    @property
    def endpoint(self) -> str:
        return f"{self.protocol}://{self.url}"

    def _call(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SharedMemoryException as exc:
            raise TritonError(f"{what} on {self.endpoint} failed: {exc}") from exc
        except Exception as exc:  # tritonclient, socket and gevent errors: classified
            if isinstance(exc, TritonError):
                raise
            raise classify_error(what, self.endpoint, exc, self.timeout_s) from exc

    # -- discovery --------------------------------------------------------------------------

    def _server_live(self) -> bool:
        try:
            return bool(self._client.is_server_live(**self._kwargs()))
        except Exception:  # any transport failure means "not live" here
            return False

    def is_model_ready(self) -> bool:
        kwargs = self._kwargs()
        try:
            return bool(self._client.is_server_live(**kwargs) and
                        self._client.is_model_ready(self.model_name, self.model_version,
                                                    **kwargs))
        except Exception:  # any transport failure means "not ready" here
            return False

    def check_ready(self) -> None:
        """Return if the server is live and the model ready; else raise a TritonError whose
        ``kind`` and message say why (and, for a missing model, which models the server has).

        After a connection-level failure the channels are rebuilt for the next attempt.
        """
        kwargs = self._kwargs()
        try:
            if not self._call("health check", self._client.is_server_live, **kwargs):
                raise TritonError(f"server {self.endpoint} is not live (starting or "
                                  "shutting down)", "unreachable")
            if self._call("model readiness check", self._client.is_model_ready,
                          self.model_name, self.model_version, **kwargs):
                return
        except TritonError as exc:
            if exc.kind in _TRANSPORT_KINDS:
                self.reset_connections()
            raise
        raise self._model_not_ready()

    def _model_not_ready(self) -> TritonError:
        """Why the (live) server's model is not ready: missing, unloaded, or failed to load."""
        kwargs = self._kwargs()
        if self.protocol == "grpc":
            kwargs["as_json"] = True
        try:
            index = self._call("get_model_repository_index",
                               self._client.get_model_repository_index, **kwargs)
        except TritonError as exc:
            return TritonError(f"model {self.model_name!r} is not ready on {self.endpoint} "
                               f"(repository index unavailable: {exc})", "model_not_ready")
        if isinstance(index, dict):  # gRPC JSON
            index = index.get("models", [])
        entries = [m for m in index if m.get("name") == self.model_name]
        if not entries:
            names = sorted({m.get("name", "") for m in index})
            return TritonError(f"model {self.model_name!r} is not in the repository of "
                               f"{self.endpoint}; it has {names}", "model_missing")
        entry = next((m for m in entries if m.get("version") == self.model_version),
                     entries[0])
        state, reason = entry.get("state") or "UNLOADED", entry.get("reason", "")
        return TritonError(f"model {self.model_name!r} is in the repository of {self.endpoint} "
                           f"but not ready (state {state}{': ' + reason if reason else ''}); "
                           "load it (model control mode) or see the server log",
                           "model_not_ready")

    def wait_until_ready(self, timeout_s: float, poll_s: float = 0.25) -> None:
        """Block until the server is live and the model ready; TritonError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not self.is_model_ready():
            if time.monotonic() >= deadline:
                raise TritonError(f"model {self.model_name!r} not ready on {self.protocol}://"
                                  f"{self.url} after {timeout_s:.1f} s")
            time.sleep(poll_s)

    def model_spec(self) -> ModelSpec:
        """Discover the model's inputs, outputs and batching from metadata and config."""
        kwargs = self._kwargs()
        if self.protocol == "grpc":
            kwargs["as_json"] = True
        metadata = self._call("get_model_metadata", self._client.get_model_metadata,
                              self.model_name, self.model_version, **kwargs)
        config = self._call("get_model_config", self._client.get_model_config,
                            self.model_name, self.model_version, **kwargs)
        self._spec = model_spec_from_server(metadata, config)
        return self._spec

    def inference_statistics(self) -> dict:
        kwargs = self._kwargs()
        if self.protocol == "grpc":
            kwargs["as_json"] = True
        return self._call("get_inference_statistics", self._client.get_inference_statistics,
                          self.model_name, self.model_version, **kwargs)

    # -- inference --------------------------------------------------------------------------

    def infer(self, inputs: dict[str, np.ndarray], output_names: list[str]) -> dict[str, np.ndarray]:
        """One inference request; returns output name -> array (batch dim first).

        Returned arrays are the caller's own (never views of a shared memory region).
        """
        if self._shm_enabled:
            pool = self._pool()
            if pool is not None:
                try:
                    return self._infer_shm(pool, inputs, output_names)
                except _RegistrationFailed as exc:
                    # "auto" gives up on shm only when a live server refused it, not in an outage.
                    if self.shared_memory == "on" or not self._server_live():
                        raise
                    self._disable_shm(exc)
        return self._infer_plain(inputs, output_names)

    def _infer_kwargs(self) -> dict:
        kwargs = {"headers": self._kwargs()["headers"]}
        if self.protocol == "grpc":
            kwargs["client_timeout"] = self.timeout_s
            if self.compression:
                kwargs["compression_algorithm"] = self.compression
        elif self.compression:
            kwargs["request_compression_algorithm"] = self.compression
            kwargs["response_compression_algorithm"] = self.compression
        return kwargs

    def _send(self, request_inputs, outputs):
        return self._call("infer", self._client.infer, self.model_name, request_inputs,
                          model_version=self.model_version, outputs=outputs,
                          **self._infer_kwargs())

    def _infer_plain(self, inputs, output_names):
        request_inputs = infer_inputs(self._module, inputs)
        outputs = [self._module.InferRequestedOutput(n) for n in output_names]
        result = self._send(request_inputs, outputs)
        return {name: result.as_numpy(name) for name in output_names}

    # -- system shared memory ---------------------------------------------------------------

    def _pool(self) -> "shm.RegionPool | None":
        """The region pool (created, after removing stale leftovers, on first use)."""
        with self._shm_lock:
            if self._shm_pool is None and self._shm_enabled:
                self.cleanup_stale_shared_memory()
                self._shm_pool = shm.RegionPool(self._register_region, self._unregister_region)
            return self._shm_pool if self._shm_enabled else None

    def _disable_shm(self, exc: Exception) -> None:
        with self._shm_lock:
            if self._shm_enabled:
                self._shm_enabled = False
                _log.warning("%r: shared memory unavailable, using the network instead (%s)",
                             self, exc)

    def _register_region(self, region: "shm.Region") -> None:
        try:
            self._client.register_system_shared_memory(
                region.name, region.key, region.byte_size, **self._kwargs())
        except (InferenceServerException, OSError, ConnectionError) as exc:
            message = exc.message() if isinstance(exc, InferenceServerException) else exc
            raise _RegistrationFailed(
                f"register_system_shared_memory({region.name}) on {self.protocol}://"
                f"{self.url} failed: {message}") from exc

    def _unregister_region(self, name: str) -> None:
        if not name:  # an empty name would unregister every region on the server
            raise ValueError("empty shared memory region name")
        self._call("unregister_system_shared_memory",
                   self._client.unregister_system_shared_memory, name, **self._kwargs())

    def _output_nbytes(self, name: str, batch: int | None) -> int:
        """Byte size of output ``name`` from the model config, 0 when not fixed (no shm)."""
        spec = self._spec or self.model_spec()
        try:
            tensor = spec.output(name)
            itemsize = tensor.np_dtype.itemsize
        except ValueError:  # unknown output or BYTES: let the server answer over the network
            return 0
        if any(d < 0 for d in tensor.dims):
            return 0
        count = math.prod(tensor.dims)
        if spec.max_batch_size > 0:
            if batch is None:
                return 0
            count *= batch
        return count * itemsize

    def _infer_shm(self, pool, inputs, output_names):
        regions = pool.acquire()
        try:
            for attempt in (0, 1):
                try:
                    return self._infer_in(regions, inputs, output_names)
                except _RegistrationFailed:
                    raise
                except TritonError as exc:
                    # A restarted server has forgotten our regions: register fresh ones, once.
                    if attempt or "unable to find shared memory region" not in str(exc).lower():
                        raise
                    _log.warning("%r: the server lost its shared memory registrations (%s); "
                                 "registering again", self, exc)
                    regions.drop_all()
        finally:
            pool.release(regions)

    def _infer_in(self, regions, inputs, output_names):
        """One request with inputs and fixed-size outputs in ``regions``; outputs copied out."""
        request_inputs, outputs, shm_outputs = [], [], {}
        try:
            self._stage_shm(regions, inputs, output_names, request_inputs, outputs, shm_outputs)
        except SharedMemoryException as exc:  # e.g. /dev/shm full
            raise _RegistrationFailed(f"shared memory on this machine failed: {exc}") from exc
        result = self._send(request_inputs, outputs)
        arrays = {}
        for name in output_names:
            region = shm_outputs.get(name)
            if region is None:
                arrays[name] = result.as_numpy(name)
                continue
            info = result.get_output(name)
            if isinstance(info, dict):  # HTTP: JSON
                datatype, shape = info["datatype"], info["shape"]
            else:  # gRPC: protobuf
                datatype, shape = info.datatype, list(info.shape)
            arrays[name] = region.read(triton_to_np_dtype(datatype), shape)
        return arrays

    def _stage_shm(self, regions, inputs, output_names, request_inputs, outputs, shm_outputs):
        """Copy inputs into this request's regions and point inputs/outputs at them."""
        batch = None
        for name, array in inputs.items():
            if batch is None and array.ndim:
                batch = array.shape[0]
            tensor = self._module.InferInput(name, list(array.shape),
                                             np_to_triton_dtype(array.dtype))
            if array.dtype == np.object_ or array.nbytes == 0:
                tensor.set_data_from_numpy(array)
            else:
                region = regions.get("in:" + name, array.nbytes)
                region.write(array)
                tensor.set_shared_memory(region.name, array.nbytes)
            request_inputs.append(tensor)
        for name in output_names:
            output = self._module.InferRequestedOutput(name)
            nbytes = self._output_nbytes(name, batch)
            if nbytes:
                region = regions.get("out:" + name, nbytes)
                output.set_shared_memory(region.name, region.byte_size)
                shm_outputs[name] = region
            outputs.append(output)

    def shared_memory_regions(self) -> list[str]:
        """Names of the shared memory regions this client has registered now."""
        pool = self._shm_pool
        return pool.names() if pool is not None else []

    def shared_memory_status(self) -> list[dict]:
        """The server's registered system shared memory regions: ``[{name, key, byte_size}]``."""
        kwargs = self._kwargs()
        if self.protocol == "grpc":
            kwargs["as_json"] = True
        status = self._call("get_system_shared_memory_status",
                            self._client.get_system_shared_memory_status, **kwargs)
        if isinstance(status, dict):  # gRPC: {"regions": {name: {...}}}
            status = list(status.get("regions", {}).values())
        return [{"name": r["name"], "key": r["key"], "byte_size": int(r.get("byte_size", 0))}
                for r in status]

    def cleanup_stale_shared_memory(self) -> list[str]:
        """Unregister (on this server) and unlink regions left by dead ``triton_ros`` processes.

        Returns the names removed. Runs before this client's first shared memory request.
        """
        removed = set()
        try:
            for region in self.shared_memory_status():
                if shm.is_stale(region["key"]) or shm.is_stale(region["name"]):
                    try:
                        self._unregister_region(region["name"])
                        removed.add(region["name"])
                    except TritonError as exc:
                        _log.warning("could not unregister stale region %s: %s",
                                     region["name"], exc)
        except TritonError as exc:
            _log.debug("shared memory status unavailable: %s", exc)
        for name in shm.stale_files():
            if shm.unlink_file(name):
                removed.add(name)
        if removed:
            _log.info("removed %d shared memory region(s) left by dead processes: %s",
                      len(removed), sorted(removed))
        return sorted(removed)

    # -- shutdown ---------------------------------------------------------------------------

    def close(self) -> None:
        """Unregister and unlink this client's shared memory, then close the connections.

        Call after in-flight ``infer`` calls have returned.
        """
        with self._shm_lock:
            pool, self._shm_pool = self._shm_pool, None
        if pool is not None:
            pool.close()
        self.reset_connections()
