"""A small synchronous facade over ``tritonclient`` (gRPC or HTTP) for one model.

No ROS here. Errors from the server or the network are raised as :class:`TritonError` with the
endpoint in the message; callers decide whether to retry.
"""
import threading
import time

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from triton_ros.model_spec import ModelSpec, model_spec_from_server

PROTOCOLS = ("grpc", "http")


class TritonError(RuntimeError):
    """A request to the Triton server failed (unreachable, model not ready, bad request)."""


class TritonClient:
    """Talks to one model on one Triton server.

    ``url``: ``host:port`` (no scheme); ``protocol``: ``grpc`` or ``http``; ``timeout_s``: per
    request (seconds).
    """

    def __init__(self, url: str, model_name: str, protocol: str = "grpc",
                 model_version: str = "", timeout_s: float = 5.0):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol {protocol!r} not in {list(PROTOCOLS)}")
        self.url, self.model_name, self.protocol = url, model_name, protocol
        self.model_version, self.timeout_s = model_version, timeout_s
        self._module = grpcclient if protocol == "grpc" else httpclient
        self._local = threading.local()
        self._clients = []
        self._clients_lock = threading.Lock()

    @property
    def _client(self):
        """The tritonclient object for this thread.

        gRPC clients are thread-safe and shared; the HTTP client runs on gevent, whose hub
        belongs to one thread, so each thread that calls gets its own.
        """
        if self.protocol == "grpc" and self._clients:
            return self._clients[0]
        client = getattr(self._local, "client", None)
        if client is None:
            if self.protocol == "grpc":
                client = grpcclient.InferenceServerClient(self.url)
            else:
                client = httpclient.InferenceServerClient(
                    self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s)
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    def __repr__(self) -> str:
        return f"TritonClient({self.protocol}://{self.url}, model={self.model_name!r})"

    def _call(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InferenceServerException as exc:
            raise TritonError(f"{what} on {self.protocol}://{self.url} failed: "
                              f"{exc.message() or exc}") from exc
        except (OSError, ConnectionError) as exc:
            raise TritonError(f"{what} on {self.protocol}://{self.url} failed: {exc}") from exc

    def is_model_ready(self) -> bool:
        try:
            return bool(self._client.is_server_live() and
                        self._client.is_model_ready(self.model_name, self.model_version))
        except Exception:  # any transport failure means "not ready" here
            return False

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
        kwargs = {"as_json": True} if self.protocol == "grpc" else {}
        metadata = self._call("get_model_metadata", self._client.get_model_metadata,
                              self.model_name, self.model_version, **kwargs)
        config = self._call("get_model_config", self._client.get_model_config,
                            self.model_name, self.model_version, **kwargs)
        return model_spec_from_server(metadata, config)

    def infer(self, inputs: dict[str, np.ndarray], output_names: list[str]) -> dict[str, np.ndarray]:
        """One inference request; returns output name -> array (batch dim first)."""
        request_inputs = []
        for name, array in inputs.items():
            tensor = self._module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            tensor.set_data_from_numpy(array)
            request_inputs.append(tensor)
        outputs = [self._module.InferRequestedOutput(n) for n in output_names]
        kwargs = ({"client_timeout": self.timeout_s} if self.protocol == "grpc" else {})
        result = self._call("infer", self._client.infer, self.model_name, request_inputs,
                            model_version=self.model_version, outputs=outputs, **kwargs)
        return {name: result.as_numpy(name) for name in output_names}

    def inference_statistics(self) -> dict:
        kwargs = {"as_json": True} if self.protocol == "grpc" else {}
        return self._call("get_inference_statistics", self._client.get_inference_statistics,
                          self.model_name, self.model_version, **kwargs)

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception:  # closing a gevent client from another thread may complain
                pass
