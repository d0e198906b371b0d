"""Start-up and connection errors a person can act on: URL and header checks, error kinds."""
import pytest
from tritonclient.utils import InferenceServerException

from triton_ros.batcher import CameraBatcher
from triton_ros.connection import ModelConnection
from triton_ros.credentials import check_headers
from triton_ros.client import TritonError, check_url, classify_error


@pytest.mark.parametrize("url", ["127.0.0.1:8001", "localhost:8000", "[::1]:8001",
                                 "triton.fleet.local:443"])
def test_good_urls_pass(url):
    check_url(url)


@pytest.mark.parametrize("url, words", [
    ("http://127.0.0.1:8000", "without a scheme"),
    ("grpc://127.0.0.1:8001", "without a scheme"),
    ("notaurl", "expected host:port"),
    ("127.0.0.1:", "expected host:port"),
    ("127.0.0.1:http", "not a number"),
    ("127.0.0.1:70000", "not a number"),
    ("triton.example.internal:8001", "placeholder host"),
    ("server.invalid:8001", "placeholder host"),
])
def test_bad_urls_are_explained(url, words):
    with pytest.raises(ValueError, match=words):
        check_url(url)


@pytest.mark.parametrize("value", ["Bearer abc\ndef", "Bearer abc\r", " lead", "tökén",
                                   "a\x00b"])
def test_headers_a_request_cannot_carry_are_refused_without_the_value(value):
    with pytest.raises(ValueError) as info:
        check_headers({"authorization": value})
    assert value.strip() not in str(info.value) or not value.strip()
    assert "authorization" in str(info.value)


def test_good_headers_pass():
    check_headers({"authorization": "Bearer abc.DEF-123_~+/=", "triton-grpc-protocol-k": "v"})


def _ise(msg, status):
    return InferenceServerException(msg, status=status)


@pytest.mark.parametrize("exc, kind", [
    (_ise("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Failed "
          "to connect to remote host: Connection refused", "StatusCode.UNAVAILABLE"),
     "unreachable"),
    (ConnectionRefusedError(111, "Connection refused"), "unreachable"),
    (_ise("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:2: "
          "Socket closed", "StatusCode.UNAVAILABLE"), "protocol"),
    (Exception("HTTPParseError: ('Expected HTTP/, RTSP/ or ICE/', 8)"), "protocol"),
    (_ise("failed to connect to all addresses; last error: UNKNOWN: Tls handshake failed "
          "(TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: WRONG_VERSION_NUMBER", "StatusCode.UNAVAILABLE"),
     "tls"),
    (_ise("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED"), "unresponsive"),
    (TimeoutError("timed out"), "unresponsive"),
    (_ise("This protocol is restricted, expecting header 'triton-grpc-protocol-infer-key'",
          "StatusCode.UNAVAILABLE"), "auth"),
    (_ise("Request for unknown model: 'nope' is not found", "StatusCode.NOT_FOUND"),
     "model_missing"),
    (_ise("unexpected shape for input 'x'", "StatusCode.INVALID_ARGUMENT"), "rejected"),
])
def test_errors_are_classified(exc, kind):
    error = classify_error("infer", "grpc://127.0.0.1:1", exc, 2.0)
    assert isinstance(error, TritonError) and error.kind == kind, str(error)
    assert "grpc://127.0.0.1:1" in str(error)


def test_unresponsive_errors_make_the_connection_unresponsive_and_ready_clears_last_error():
    attempts = []

    def connect():
        attempts.append(1)
        if len(attempts) == 1:
            raise TritonError("no answer within 2.0 s", "unresponsive")
        return "detector"

    changes = []
    conn = ModelConnection(connect, on_change=lambda s, d: changes.append(s))
    conn.backoff.initial_s = conn.backoff.max_s = 0.01
    assert conn.get() is None and conn.state == "unresponsive"
    assert conn.last_error == "no answer within 2.0 s"
    import time
    time.sleep(0.02)
    assert conn.get() == "detector" and conn.state == "ready" and conn.last_error == ""
    conn.failed(TritonError("refused", "unreachable"))
    assert conn.state == "unavailable" and changes == ["unresponsive", "ready", "unavailable"]


def test_batcher_counts_displaced_frames_under_the_current_reason_and_reclassifies():
    batcher = CameraBatcher(["a", "b"], max_batch=1, max_delay_s=0.0, depth=1)
    before = batcher.drop_snapshot("stale")
    for i in range(3):
        batcher.put("a", i, i)
    assert batcher.dropped_counts("a") == {"stale": 2}
    assert batcher.reclassify(before, "stale", "server_unavailable") == 2
    assert batcher.dropped_counts("a") == {"stale": 0, "server_unavailable": 2}
    batcher.evict_reason = "server_unavailable"
    batcher.put("a", 9, 9)
    assert batcher.dropped_counts("a")["server_unavailable"] == 3


@pytest.mark.parametrize("exc, gateway", [
    # what tritonclient raised when nginx and HAProxy gave up on a hung server (test_proxy.py)
    (_ise("Received http2 header with status: 504", "StatusCode.UNAVAILABLE"), True),
    (_ise("502 Bad Gateway", "502"), True),
    (_ise("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED"), False),
    (_ise("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Failed "
          "to connect to remote host: Connection refused", "StatusCode.UNAVAILABLE"), False),
])
def test_a_proxys_gateway_errors_are_told_apart(exc, gateway):
    """A proxy's 502/503/504 is worth one more try through it (TritonClient.infer); a timeout
    or a refused connection to the server itself is not."""
    error = classify_error("infer", "grpc://127.0.0.1:1", exc, 2.0)
    assert error.gateway is gateway and error.kind != "rejected", str(error)
