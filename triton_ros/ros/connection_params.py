"""The connection parameters every node declares (one table, same names, same meaning).

detect_node, tensor_node, track_node and sensor_sequence_node declare :data:`CONNECTION_PARAMETERS`
and build their one client with :func:`client_from_params`; the values become validated
:class:`~triton_ros.endpoint.Endpoint` s (:func:`triton_ros.endpoint.endpoints_from_params`), one per
server of ``server_url``.
"""
from collections.abc import Callable

from triton_ros.client import TritonClient
from triton_ros.client.pool import ServerPool
from triton_ros.endpoint import (COMPRESSIONS, DEFAULT_ROUTING_HEADER, PROTOCOLS,
                                 SEQUENCE_TRANSPORTS, SHARED_MEMORY_MODES, endpoints_from_params)
from triton_ros.ros.params import ParameterError, ParamSpec

CONNECTION_PARAMETERS = [
    ParamSpec("server_url", "127.0.0.1:8001",
              "Triton endpoint host:port (gRPC 8001, HTTP 8000); several servers of the same "
              "model as a list or comma-separated: requests spread over them, sequences "
              "placed by rendezvous hashing (docs/fleet.md)", string_list=True),
    ParamSpec("protocol", "grpc", "Triton protocol", choices=PROTOCOLS),
    ParamSpec("model_version", "", "model version; empty = the server's latest"),
    ParamSpec("request_timeout_s", 5.0, "per-request timeout, seconds", min_value=0.01,
              max_value=600.0),
    ParamSpec("server_wait_timeout_s", 30.0,
              "how long start-up (sequence nodes: configure) waits for the server and model, "
              "seconds", min_value=0.0, max_value=3600.0),
    ParamSpec("shared_memory", "auto",
              "system shared memory for tensors of stateless requests: on, off, auto (= on for "
              "a loopback server); sequence requests travel in-band",
              choices=SHARED_MEMORY_MODES),
    ParamSpec("compression", "", "request/response compression (remote servers)",
              choices=COMPRESSIONS),
    ParamSpec("ssl", False, "TLS to the server (gRPC TLS / HTTPS)"),
    ParamSpec("root_certificates", "", "PEM file of the CA that signed the server's certificate"),
    ParamSpec("private_key", "", "PEM client key for mutual TLS"),
    ParamSpec("certificate_chain", "", "PEM client certificate for mutual TLS"),
    ParamSpec("auth_token_env", "",
              "name of an environment variable holding an auth token (never the token itself)"),
    ParamSpec("auth_token_file", "", "file holding an auth token"),
    ParamSpec("auth_header", "authorization",
              "header carrying the token (tritonserver restricted APIs: "
              "triton-grpc-protocol-<key> over gRPC, <key> over HTTP)"),
    ParamSpec("auth_scheme", "Bearer", "token prefix in the header; empty = the bare token"),
    ParamSpec("reconnect_initial_s", 0.5, "first reconnect delay, seconds (doubles, jittered)",
              min_value=0.01, max_value=60.0),
    ParamSpec("reconnect_max_s", 10.0,
              "largest reconnect delay, seconds (also caps gRPC's channel backoff)",
              min_value=0.01, max_value=600.0),
    ParamSpec("routing_header", DEFAULT_ROUTING_HEADER,
              "header whose value is a sequence's correlation id, on every request of the "
              "sequence (for a load balancer that keeps a sequence on one server); empty = "
              "none; stateless requests never carry it"),
]

#: sequence nodes only: how a sequence's requests travel
SEQUENCE_TRANSPORT = ParamSpec(
    "sequence_transport", "stream",
    "stream = one gRPC bidirectional stream per sequence; unary = one request per step (always "
    "with protocol http)", choices=SEQUENCE_TRANSPORTS)

#: sequence nodes also accept protocol grpc_unary (= grpc with sequence_transport unary)
SEQUENCE_PROTOCOLS = PROTOCOLS + ("grpc_unary",)


def connection_parameters(sequence: bool = False) -> list[ParamSpec]:
    """The connection table; for sequence nodes with ``sequence_transport`` and the
    ``grpc_unary`` protocol value (kept for existing launch files)."""
    if not sequence:
        return list(CONNECTION_PARAMETERS)
    specs = [ParamSpec("protocol", "grpc", "Triton protocol (grpc_unary = grpc with "
                       "sequence_transport unary)", choices=SEQUENCE_PROTOCOLS)
             if spec.name == "protocol" else spec for spec in CONNECTION_PARAMETERS]
    return specs + [SEQUENCE_TRANSPORT]


def client_from_params(p: dict, model_name: str | None = None, *,
                       on_server_change: Callable[[str, str, str], None] | None = None
                       ) -> TritonClient | ServerPool:
    """The client the connection parameters ``p`` describe, for ``model_name`` (default
    ``p["model_name"]``): a :class:`TritonClient`, or a :class:`ServerPool` when ``server_url``
    lists several servers (``on_server_change(url, state, detail)`` then reports each server
    going down or coming back). Bad values (file not found, bad header, ...) raise
    ParameterError."""
    try:
        endpoints = endpoints_from_params(p)
    except ValueError as exc:
        raise ParameterError(str(exc)) from None
    model = model_name or p["model_name"]
    if len(endpoints) == 1:
        return TritonClient.from_endpoint(endpoints[0], model)
    return ServerPool(endpoints, model, on_change=on_server_change)
