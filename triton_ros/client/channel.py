"""tritonclient objects and request arguments built from an :class:`~triton_ros.endpoint.Endpoint`.

The one place that turns connection options into tritonclient calls, so that stateless requests
(:class:`~triton_ros.client.client.TritonClient`) and sequences (:mod:`triton_ros.client.streams`)
get the same TLS, headers, compression, timeouts and reconnect backoff.
"""
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import np_to_triton_dtype

from triton_ros.endpoint import Endpoint


def module_of(endpoint: Endpoint):
    """``tritonclient.grpc`` or ``tritonclient.http``."""
    return grpcclient if endpoint.protocol == "grpc" else httpclient


def new_tritonclient(endpoint: Endpoint):
    """A fresh ``InferenceServerClient`` (its own gRPC channel / HTTP connection pool)."""
    if endpoint.protocol == "grpc":
        initial_ms, max_ms = endpoint.grpc_backoff_ms()
        return grpcclient.InferenceServerClient(
            endpoint.url, ssl=endpoint.ssl, root_certificates=endpoint.root_certificates or None,
            private_key=endpoint.private_key or None,
            certificate_chain=endpoint.certificate_chain or None, channel_args=[
                ("grpc.max_send_message_length", 2**31 - 1),
                ("grpc.max_receive_message_length", 2**31 - 1),
                ("grpc.initial_reconnect_backoff_ms", initial_ms),
                ("grpc.min_reconnect_backoff_ms", initial_ms),
                ("grpc.max_reconnect_backoff_ms", max_ms)])
    ssl_options = None
    if endpoint.ssl:
        ssl_options = {}
        if endpoint.root_certificates:
            ssl_options["ca_certs"] = endpoint.root_certificates
        if endpoint.private_key:
            ssl_options.update(keyfile=endpoint.private_key,
                               certfile=endpoint.certificate_chain)
    return httpclient.InferenceServerClient(
        endpoint.url, connection_timeout=endpoint.timeout_s, network_timeout=endpoint.timeout_s,
        ssl=endpoint.ssl, ssl_options=ssl_options)


def call_kwargs(endpoint: Endpoint, headers: dict | None = None,
                timeout_s: float | None = None) -> dict:
    """Keyword arguments of a non-inference call (health, metadata, shared memory)."""
    headers = dict(endpoint.headers) if headers is None else headers
    kwargs = {"headers": headers or None}
    if endpoint.protocol == "grpc":
        kwargs["client_timeout"] = endpoint.timeout_s if timeout_s is None else timeout_s
    return kwargs


def infer_kwargs(endpoint: Endpoint, headers: dict | None = None,
                 timeout_s: float | None = None) -> dict:
    """Keyword arguments of an ``infer`` call: headers, timeout (gRPC), compression."""
    kwargs = call_kwargs(endpoint, headers, timeout_s)
    if endpoint.compression:
        if endpoint.protocol == "grpc":
            kwargs["compression_algorithm"] = endpoint.compression
        else:
            kwargs["request_compression_algorithm"] = endpoint.compression
            kwargs["response_compression_algorithm"] = endpoint.compression
    return kwargs


def infer_inputs(module, inputs: dict[str, np.ndarray]) -> list:
    """``module.InferInput`` objects (tritonclient.grpc or .http) carrying ``inputs`` in-band."""
    request = []
    for name, array in inputs.items():
        array = np.ascontiguousarray(array)
        tensor = module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        request.append(tensor)
    return request
