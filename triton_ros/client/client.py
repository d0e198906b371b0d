"""A small synchronous facade over ``tritonclient`` (gRPC or HTTP) for one model.

No ROS here. Errors from the server or the network are raised as :class:`TritonError` with the
endpoint in the message; callers decide whether to retry. Connection options (TLS, headers,
compression, timeouts, reconnect backoff, shared memory, sequence transport) are one
:class:`~triton_ros.endpoint.Endpoint`, validated once; :meth:`TritonClient.sequence_transport`
opens a sequence transport (:mod:`triton_ros.client.streams`) with the same options.

Shared memory (``shared_memory`` ``on``, or ``auto`` with a loopback url): inputs and
fixed-size outputs travel through system shared memory (:mod:`triton_ros.shared_memory`); only
the server on the same machine (same ``/dev/shm``) can use it. ``auto`` falls back to the network
(warning once) when a live server cannot register a region, or when a region registered just
now is unknown to the server that gets the request (a proxy in front of several servers);
``on`` raises instead. Concurrent
``infer`` calls use separate regions; output sizes come from the (cached) model config; regions a
restarted server forgot are registered again; before the first request, regions left by dead
``triton_ros`` processes are removed; ``close()`` unregisters and unlinks this client's.
"""
import logging
import math
import threading
import time

import numpy as np
from tritonclient.utils import InferenceServerException, np_to_triton_dtype, triton_to_np_dtype
from tritonclient.utils.shared_memory import SharedMemoryException

from triton_ros import shared_memory as shm
from triton_ros.client.channel import (call_kwargs, infer_inputs, infer_kwargs, module_of,
                                       new_tritonclient)
from triton_ros.client.errors import (TRANSPORT_KINDS, UNAVAILABLE_KINDS, TritonError,
                                      classify_error)
from triton_ros.client.streams import open_sequence_transport
from triton_ros.endpoint import (COMPRESSIONS, PROTOCOLS, SHARED_MEMORY_MODES, Endpoint,
                                 check_url, is_loopback_url, url_host)
from triton_ros.model_spec import ModelSpec, model_spec_from_server

__all__ = ["COMPRESSIONS", "PROTOCOLS", "SHARED_MEMORY_MODES", "UNAVAILABLE_KINDS", "Endpoint",
           "TritonClient", "TritonError", "check_url", "classify_error", "infer_inputs",
           "is_loopback_url", "url_host"]

_TRANSPORT_KINDS = TRANSPORT_KINDS
_log = logging.getLogger(__name__)


class _RegistrationFailed(TritonError):
    """The server could not register a shared memory region (e.g. it has another /dev/shm)."""


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
        self._setup(Endpoint(
            url, protocol, model_version, timeout_s, ssl=ssl,
            root_certificates=root_certificates, private_key=private_key,
            certificate_chain=certificate_chain, headers=headers or {},
            compression=compression, shared_memory=shared_memory,
            reconnect_initial_s=min(0.5, max_reconnect_backoff_s),
            reconnect_max_s=max_reconnect_backoff_s), model_name)

    @classmethod
    def from_endpoint(cls, endpoint: Endpoint, model_name: str) -> "TritonClient":
        """The client of ``model_name`` on ``endpoint`` (options already validated)."""
        client = cls.__new__(cls)
        client._setup(endpoint, model_name)
        return client

    def _setup(self, endpoint: Endpoint, model_name: str) -> None:
        self.endpoint, self.model_name = endpoint, model_name
        self.url, self.protocol = endpoint.url, endpoint.protocol
        self.model_version, self.timeout_s = endpoint.model_version, endpoint.timeout_s
        self.ssl, self.compression = endpoint.ssl, endpoint.compression
        self._headers = endpoint.headers
        self.shared_memory = endpoint.shared_memory
        self._shm_enabled = endpoint.shared_memory_enabled
        self._shm_pool: shm.RegionPool | None = None
        self._shm_lock = threading.Lock()
        self._spec: ModelSpec | None = None
        self.gateway_retries = 0   # requests sent again after a proxy's 502/503/504
        self._module = module_of(endpoint)
        self.max_reconnect_backoff_s = endpoint.reconnect_max_s
        self._local = threading.local()
        self._clients = []
        self._clients_lock = threading.Lock()
        self._generation = 0   # bumped by reset_connections(): thread-local clients are renewed

    def sequence_transport(self):
        """A new transport for one stream's sequence (same server, TLS, headers, compression,
        backoff): a gRPC bidirectional stream or unary requests, as the endpoint says.
        ``model_name`` is given per request. Close it when the stream ends."""
        return open_sequence_transport(self.endpoint)

    # -- connection -------------------------------------------------------------------------

    def _new_client(self):
        return new_tritonclient(self.endpoint)

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
        return call_kwargs(self.endpoint)

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

    def _call(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SharedMemoryException as exc:
            raise TritonError(f"{what} on {self.endpoint.address} failed: {exc}") from exc
        except Exception as exc:  # tritonclient, socket and gevent errors: classified
            if isinstance(exc, TritonError):
                raise
            raise classify_error(what, self.endpoint.address, exc, self.timeout_s) from exc

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
                raise TritonError(f"server {self.endpoint.address} is not live (starting or "
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
            return TritonError(f"model {self.model_name!r} is not ready on "
                               f"{self.endpoint.address} (repository index unavailable: {exc})",
                               "model_not_ready")
        if isinstance(index, dict):  # gRPC JSON
            index = index.get("models", [])
        entries = [m for m in index if m.get("name") == self.model_name]
        if not entries:
            names = sorted({m.get("name", "") for m in index})
            return TritonError(f"model {self.model_name!r} is not in the repository of "
                               f"{self.endpoint.address}; it has {names}", "model_missing")
        entry = next((m for m in entries if m.get("version") == self.model_version),
                     entries[0])
        state, reason = entry.get("state") or "UNLOADED", entry.get("reason", "")
        return TritonError(f"model {self.model_name!r} is in the repository of "
                           f"{self.endpoint.address} but not ready (state {state}"
                           f"{': ' + reason if reason else ''}); "
                           "load it (model control mode) or see the server log",
                           "model_not_ready")

    def wait_until_ready(self, timeout_s: float, poll_s: float = 0.25) -> None:
        """Block until the server is live and the model ready; TritonError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not self.is_model_ready():
            if time.monotonic() >= deadline:
                raise TritonError(f"model {self.model_name!r} not ready on "
                                  f"{self.endpoint.address} after {timeout_s:.1f} s")
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

        Returned arrays are the caller's own (never views of a shared memory region). A request
        a proxy answered 502/503/504 (it gave up on the server it chose, e.g. a hung one) is
        sent once more: inference without a sequence is safe to repeat, and the proxy, having
        marked that server failed, picks another. Sequences never come here (their transports
        are in :mod:`triton_ros.client.streams`). tritonserver itself never answers these, so a
        hung server reached directly still costs one timeout, not two.
        """
        try:
            return self._infer_once(inputs, output_names)
        except TritonError as exc:
            if not exc.gateway:
                raise
            _log.info("%r: %s; sending the request once more", self, exc)
            self.gateway_retries += 1
            return self._infer_once(inputs, output_names)

    def _infer_once(self, inputs, output_names):
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
        return infer_kwargs(self.endpoint)

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
                    if "unable to find shared memory region" not in str(exc).lower():
                        raise
                    if attempt:  # registered just now, still unknown where the request went
                        raise _RegistrationFailed(
                            f"{exc}: the request reached another server than the "
                            "registration (a proxy or load balancer in front of several "
                            "servers?); shared memory needs the server itself") from exc
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
