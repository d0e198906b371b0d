"""The connection description (Endpoint): validation once, parameters, headers per request kind."""
import pytest

from triton_ros.client import (Endpoint, GrpcStreamTransport, SequenceError, TritonClient,
                               UnaryTransport, make_transport)
from triton_ros.client.channel import infer_kwargs
from triton_ros.client.errors import sequence_error
from triton_ros.endpoint import endpoint_from_params
from tritonclient.utils import InferenceServerException


def params(**overrides):
    """Every connection parameter at its declared default (connection_params.py), overridden."""
    values = {"server_url": "127.0.0.1:8001", "protocol": "grpc", "model_version": "",
              "request_timeout_s": 5.0, "server_wait_timeout_s": 30.0, "shared_memory": "auto",
              "compression": "", "ssl": False, "root_certificates": "", "private_key": "",
              "certificate_chain": "", "auth_token_env": "", "auth_token_file": "",
              "auth_header": "authorization", "auth_scheme": "Bearer",
              "reconnect_initial_s": 0.5, "reconnect_max_s": 10.0,
              "routing_header": "x-triton-sequence-id"}
    values.update(overrides)
    return values


def test_the_parameter_defaults_match_the_declared_table():
    from triton_ros.ros.connection_params import CONNECTION_PARAMETERS, connection_parameters
    assert {s.name: s.default for s in CONNECTION_PARAMETERS} == params()
    sequence = {s.name: s for s in connection_parameters(sequence=True)}
    assert "grpc_unary" in sequence["protocol"].choices
    assert sequence["sequence_transport"].choices == ("stream", "unary")


def test_routing_header_carries_the_correlation_id_of_sequence_requests_only(monkeypatch):
    monkeypatch.setenv("TRITON_ROS_TEST_TOKEN", "hunter2")
    endpoint = endpoint_from_params(params(auth_token_env="TRITON_ROS_TEST_TOKEN",
                                           routing_header="X-Triton-Sequence-Id"))
    assert endpoint.sequence_headers(256) == {"authorization": "Bearer hunter2",
                                              "x-triton-sequence-id": "256"}
    # stateless requests: auth only
    assert infer_kwargs(endpoint)["headers"] == {"authorization": "Bearer hunter2"}
    # a sequence request: what the unary transport hands to tritonclient
    kwargs = infer_kwargs(endpoint, endpoint.sequence_headers(2**40 + 7), 3.0)
    assert kwargs["headers"]["x-triton-sequence-id"] == str(2**40 + 7)
    assert kwargs["client_timeout"] == 3.0
    assert endpoint_from_params(params(routing_header="")).sequence_headers(9) == {}
    assert "hunter2" not in repr(endpoint) and "hunter2" not in str(endpoint)


@pytest.mark.parametrize("protocol, transport, expected", [
    ("grpc", "stream", GrpcStreamTransport),
    ("grpc", "unary", UnaryTransport),
    ("http", "stream", UnaryTransport),      # HTTP has no stream: always unary
    ("grpc_unary", "stream", UnaryTransport),
])
def test_the_client_opens_the_transport_the_parameters_ask_for(protocol, transport, expected):
    p = params(protocol=protocol, sequence_transport=transport,
               server_url="127.0.0.1:8000" if protocol == "http" else "127.0.0.1:8001")
    client = TritonClient.from_endpoint(endpoint_from_params(p), "simple_tracker")
    sequence = client.sequence_transport()
    try:
        assert type(sequence) is expected
        assert sequence.endpoint is client.endpoint
    finally:
        sequence.close()
        client.close()


@pytest.mark.parametrize("overrides, message", [
    ({"protocol": "udp"}, "protocol"),
    ({"server_url": "grpc://host:8001"}, "without a scheme"),
    ({"server_url": "triton.example:8001"}, "placeholder"),
    ({"routing_header": "bad header"}, "invalid header name"),
    ({"routing_header": "authorization", "auth_token_env": "TRITON_ROS_TEST_TOKEN"},
     "also an auth header"),
    ({"reconnect_initial_s": 5.0, "reconnect_max_s": 1.0}, "reconnect_initial_s"),
    ({"ssl": True, "private_key": "/k"}, "go together"),
    ({"root_certificates": "/etc/hostname"}, "ssl is false"),
    ({"sequence_transport": "udp"}, "sequence_transport"),
])
def test_bad_connection_settings_are_rejected_once(overrides, message, monkeypatch):
    monkeypatch.setenv("TRITON_ROS_TEST_TOKEN", "t")
    with pytest.raises(ValueError, match=message):
        endpoint_from_params(params(**overrides))


def test_make_transport_keeps_its_old_shorthand():
    assert type(make_transport("grpc", "127.0.0.1:8001")) is GrpcStreamTransport
    unary = make_transport("grpc_unary", "127.0.0.1:8001", ssl=True)
    assert type(unary) is UnaryTransport and unary.endpoint.ssl
    assert Endpoint("127.0.0.1:8001", reconnect_initial_s=0.2,
                    reconnect_max_s=1.0).grpc_backoff_ms() == (200, 1000)


@pytest.mark.parametrize("exc, kind, cause", [
    (InferenceServerException("inference request for sequence 256 to model 'simple_tracker' "
                              "must specify the START flag on the first request"), "dropped", ""),
    (InferenceServerException("This protocol is restricted, expecting header "
                              "'triton-grpc-protocol-infer-key'", "StatusCode.UNAVAILABLE"),
     "unavailable", "auth"),
    (InferenceServerException("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED"),
     "timeout", "unresponsive"),
    (InferenceServerException("unexpected shape for input 'boxes'"), "rejected", "rejected"),
    (ConnectionRefusedError(111, "Connection refused"), "unavailable", "unreachable"),
])
def test_sequence_errors_keep_their_kinds_and_say_why(exc, kind, cause):
    error = sequence_error("infer", "grpc://127.0.0.1:8001", exc, 5.0)
    assert isinstance(error, SequenceError)
    assert (error.kind, error.cause) == (kind, cause)
