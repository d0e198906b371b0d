"""Sequences through the one client layer: TLS, mutual TLS, auth headers and the routing header.

Real tritonservers serve a copy of the repository's ``simple_tracker``; a robot streams the SSD
detections of real frames (``sequence_data.py``) into it. Track ids must equal the tracker's
offline reference, which proves the secured stream carried every request of the sequence, in
order, to one server state.

- TLS / mTLS servers also restrict every gRPC API but shared memory to an ``infer-key`` header
  (``--grpc-restricted-protocol``), so a stream works only with the CA, the client certificate
  (mTLS) and the auth header, each given once as connection options.
- The routing header is checked on the wire: a gRPC relay (a real grpcio server forwarding raw
  bytes to the real tritonserver) records the metadata of every call it relays.
"""
import http.client
import http.server
import os
import threading
from concurrent import futures

import grpc
import numpy as np
import pytest

from helpers import video_frames, wait_until
from sequence_data import model_repository, reference_track_ids, robot_streams
from test_transport import _tls_args, pki  # noqa: F401 (pki is a fixture)
from test_track_node import Diagnostics, Robot, frame_to_msg, start_tracker, wait_active
from triton_ros.client import Endpoint, SequenceError, TritonClient
from triton_ros.credentials import auth_headers
from triton_ros.sequences import SequenceStream, assign_correlation_id
from triton_ros.tools.local_server import LocalTritonServer

TRACKER = "simple_tracker"
ECHO = "tensor_echo_stats"
OUTPUTS = ["track_ids"]
KEY_HEADER = "triton-grpc-protocol-infer-key"   # tritonserver's gRPC restricted-API prefix
RESTRICTED = "--grpc-restricted-protocol=health,metadata,inference,model-config:infer-key=s3cret"
ROUTING = "x-triton-sequence-id"
END = {"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32),
       "classes": np.zeros(0, np.int32), "keepalive": np.array([True])}


def start_server(tmp_path_factory, name, extra_args, models=(TRACKER,)):
    tmp = tmp_path_factory.mktemp(name)
    log = tmp / "server.log"
    server = LocalTritonServer(model_repository(tmp / "repo", models), log_path=log,
                               extra_args=extra_args)
    try:
        server.start(timeout_s=120)
    except Exception as exc:
        server.cleanup()
        pytest.fail(f"tritonserver ({name}) did not start: {exc}\n{log.read_text()[-3000:]}")
    return server


@pytest.fixture(scope="module")
def secure_servers(tmp_path_factory, pki):  # noqa: F811 (the imported fixture)
    """{"tls": server TLS + infer-key, "mtls": server mutual TLS + infer-key}."""
    servers = {}
    try:
        for name, mutual in (("tls", False), ("mtls", True)):
            servers[name] = start_server(tmp_path_factory, f"seq_{name}",
                                         _tls_args(pki, mutual) + [RESTRICTED])
        yield servers
    finally:
        for server in servers.values():
            server.cleanup()


@pytest.fixture(scope="module")
def streams(sample_bag):
    return robot_streams(sample_bag)


def key_file(tmp_path, key="s3cret"):
    path = tmp_path / "infer_key"
    path.write_text(key + "\n")
    os.chmod(path, 0o600)
    return str(path)


def tracker_stream(endpoint, robot_id):
    client = TritonClient.from_endpoint(endpoint, TRACKER)
    return client, SequenceStream(
        client.sequence_transport(), TRACKER,
        assign_correlation_id(f"/robot{robot_id}", "detections", robot_id=robot_id),
        keepalive_inputs=END)


def run_stream(endpoint, frames, robot_id=1):
    """Track ``frames`` as one sequence over ``endpoint``: the track ids per frame."""
    client, stream = tracker_stream(endpoint, robot_id)
    try:
        stream.discover()
        results = [stream.infer(frame.tensors(), OUTPUTS) for frame in frames]
        assert stream.end("test done")
    finally:
        stream.close()
        client.close()
    assert [r.started for r in results] == [True] + [False] * (len(frames) - 1)
    return [r.outputs["track_ids"].tolist() for r in results]


def first_error(endpoint, frames):
    """The SequenceError that discovering or streaming over ``endpoint`` raises (or fail)."""
    client, stream = tracker_stream(endpoint, 9)
    try:
        stream.discover()
        stream.infer(frames[0].tensors(), OUTPUTS)
    except SequenceError as exc:
        return exc
    finally:
        stream.close(timeout_s=2.0)
        client.close()
    pytest.fail(f"{endpoint!r} worked where it must not")


# -- TLS, mutual TLS, auth headers --------------------------------------------------------------

@pytest.mark.parametrize("transport", ["stream", "unary"])
@pytest.mark.parametrize("kind", ["tls", "mtls"])
def test_secured_sequence_keeps_the_reference_track_ids(secure_servers, pki, streams, tmp_path,
                                                        kind, transport):
    server = secure_servers[kind]
    frames = streams[0][:12]
    client_cert = {"private_key": pki["client_key"], "certificate_chain": pki["client"]}
    endpoint = Endpoint(
        server.grpc_url, timeout_s=30.0, ssl=True, root_certificates=pki["ca"],
        headers=auth_headers(token_file=key_file(tmp_path), header=KEY_HEADER, scheme=""),
        routing_header=ROUTING, sequence_transport=transport,
        **(client_cert if kind == "mtls" else {}))
    assert "s3cret" not in repr(endpoint)
    assert run_stream(endpoint, frames) == reference_track_ids(frames)


def test_secured_sequence_needs_every_credential(secure_servers, pki, streams, tmp_path):
    frames = streams[0][:1]
    key = auth_headers(token_file=key_file(tmp_path), header=KEY_HEADER, scheme="")
    url = secure_servers["mtls"].grpc_url
    client_cert = {"private_key": pki["client_key"], "certificate_chain": pki["client"]}
    for what, endpoint in {
        "no TLS": Endpoint(url, timeout_s=10.0, headers=key),
        "untrusted server CA": Endpoint(url, timeout_s=10.0, ssl=True, headers=key,
                                        root_certificates=pki["other_ca"], **client_cert),
        "no client certificate": Endpoint(url, timeout_s=10.0, ssl=True, headers=key,
                                          root_certificates=pki["ca"]),
    }.items():
        error = first_error(endpoint, frames)
        # the handshake fails: "tls", or the server closing the socket ("protocol")
        assert error.kind == "unavailable" and error.cause in ("tls", "protocol"), (what, error)
    tls_url = secure_servers["tls"].grpc_url
    for headers in ({}, {KEY_HEADER: "not-the-key"}):
        for transport in ("stream", "unary"):
            endpoint = Endpoint(tls_url, timeout_s=10.0, ssl=True, root_certificates=pki["ca"],
                                headers=headers, sequence_transport=transport)
            error = first_error(endpoint, frames)
            assert error.cause == "auth" and "restricted" in str(error), (headers, error)


def test_track_node_streams_over_mutual_tls_with_an_auth_token(secure_servers, pki, streams,
                                                               start_node, ros_node, tmp_path):
    frames = streams[1][:12]
    robot = Robot(ros_node, "/robot2")
    diagnostics = Diagnostics(ros_node)
    node = start_tracker(
        start_node, secure_servers["mtls"].grpc_url, "/robot2", 2, ssl=True,
        root_certificates=pki["ca"], private_key=pki["client_key"],
        certificate_chain=pki["client"], auth_token_file=key_file(tmp_path),
        auth_header=KEY_HEADER, auth_scheme='""')  # YAML for an empty string
    wait_active(node, robot)
    for frame in frames:
        robot.publisher.publish(frame_to_msg(frame))
    assert wait_until(lambda: robot.has(frames), 60), (len(robot.tracked), node.output())
    assert robot.ids(frames) == reference_track_ids(frames)
    assert wait_until(lambda: diagnostics.of("/robot2/triton_track")[1].get(
        "frames_published") == str(len(frames)), 15)
    values = diagnostics.of("/robot2/triton_track")[1]
    assert (values["tls"], values["sequence_transport"]) == ("true", "stream")
    assert values["state_losses"] == "0" and values["frames_failed"] == "0"
    assert "s3cret" not in node.output() and "s3cret" not in str(values)


# -- the routing header, seen on the wire --------------------------------------------------------

class GrpcRelay:
    """A grpcio server on 127.0.0.1 relaying every call to ``upstream`` as raw bytes.

    Records ``(method, metadata)`` of each call. Forwards the caller's metadata (so auth still
    works) and the upstream status of failed unary calls.
    """

    def __init__(self, upstream: str):
        self.calls: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self._channel = grpc.insecure_channel(upstream)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self._server.add_generic_rpc_handlers([_RelayHandler(self)])
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.url = f"127.0.0.1:{self.port}"
        self._server.start()

    def record(self, method, metadata) -> list:
        forwarded = [(k, v) for k, v in metadata if not k.startswith((":", "grpc-"))
                     and k != "user-agent"]
        with self._lock:
            self.calls.append((method.rsplit("/", 1)[-1], dict(forwarded)))
        return forwarded

    def headers_of(self, method: str) -> list[dict]:
        with self._lock:
            return [h for m, h in self.calls if m == method]

    def close(self):
        self._server.stop(grace=None)
        self._channel.close()


class _RelayHandler(grpc.GenericRpcHandler):
    def __init__(self, relay: GrpcRelay):
        self.relay = relay

    def service(self, details):
        method, relay = details.method, self.relay
        if method.endswith("/ModelStreamInfer"):
            upstream = relay._channel.stream_stream(method)

            def stream(requests, context):
                call = upstream(requests, metadata=relay.record(method,
                                                                context.invocation_metadata()))
                context.add_callback(call.cancel)
                yield from call
            return grpc.stream_stream_rpc_method_handler(stream)
        upstream = relay._channel.unary_unary(method)

        def unary(request, context):
            try:
                return upstream(request, metadata=relay.record(method,
                                                               context.invocation_metadata()))
            except grpc.RpcError as exc:
                context.abort(exc.code(), exc.details())
        return grpc.unary_unary_rpc_method_handler(unary)


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    server = start_server(tmp_path_factory, "seq_routing", [], models=(TRACKER, ECHO))
    yield server
    server.cleanup()


@pytest.fixture
def relay(plain_server):
    relay = GrpcRelay(plain_server.grpc_url)
    yield relay
    relay.close()


@pytest.mark.parametrize("transport", ["stream", "unary"])
def test_every_sequence_request_carries_its_correlation_id(relay, streams, transport):
    robots = {1: streams[0][:8], 3: streams[2][:8]}
    endpoint = Endpoint(relay.url, timeout_s=30.0, routing_header=ROUTING,
                        headers={"authorization": "Bearer t0ken"}, sequence_transport=transport)
    for robot_id, frames in robots.items():
        assert run_stream(endpoint, frames, robot_id) == reference_track_ids(frames)
    method = "ModelStreamInfer" if transport == "stream" else "ModelInfer"
    seen = relay.headers_of(method)
    # stream: one stream per sequence (headers at stream start); unary: one call per request
    # (8 frames + the END).
    assert len(seen) == (2 if transport == "stream" else 18), seen
    assert [h[ROUTING] for h in seen] == (["256", "768"] if transport == "stream"
                                          else ["256"] * 9 + ["768"] * 9)
    assert all(h["authorization"] == "Bearer t0ken" for h in seen)
    # Discovery calls are not sequence requests: auth only, no routing header.
    config_calls = relay.headers_of("ModelConfig")
    assert config_calls and all(ROUTING not in h and "authorization" in h for h in config_calls)


def test_no_routing_header_when_disabled_or_stateless(relay, streams):
    frames = streams[0][:4]
    endpoint = Endpoint(relay.url, timeout_s=30.0, routing_header="")
    assert run_stream(endpoint, frames) == reference_track_ids(frames)
    assert relay.headers_of("ModelStreamInfer") == [{}]
    # A stateless request of a client whose endpoint has a routing header carries none.
    client = TritonClient.from_endpoint(Endpoint(relay.url, timeout_s=30.0,
                                                 routing_header=ROUTING), ECHO)
    try:
        frame = video_frames([10])[0][None]
        mean = client.infer({"frame": frame}, ["channel_mean"])["channel_mean"]
        assert np.allclose(mean, [frame[0].reshape(-1, 3).mean(axis=0)], rtol=1e-4)
    finally:
        client.close()
    assert relay.headers_of("ModelInfer") == [{}]


class HttpRelay:
    """A stdlib HTTP/1.1 server on 127.0.0.1 relaying every request to ``upstream`` (host:port),
    recording ``(method, path, headers)``; hop-by-hop headers aside, requests and responses
    pass unchanged."""

    def __init__(self, upstream: str):
        self.calls: list[tuple[str, str, dict]] = []
        relay, host, port = self, *upstream.rsplit(":", 1)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "keep-alive", "host")}
                relay.calls.append((self.command, self.path, headers))
                upstream = http.client.HTTPConnection(host, int(port), timeout=30)
                try:
                    upstream.request(self.command, self.path, body, headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _relay

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def infer_headers(self) -> list[dict]:
        return [h for m, path, h in self.calls if m == "POST" and path.endswith("/infer")]

    def close(self):
        self._server.shutdown()
        self._server.server_close()


def test_http_sequence_requests_carry_the_correlation_id(plain_server, streams):
    relay = HttpRelay(plain_server.http_url)
    try:
        frames = streams[1][:6]
        endpoint = Endpoint(relay.url, "http", timeout_s=30.0, routing_header=ROUTING,
                            headers={"authorization": "Bearer t0ken"})
        assert run_stream(endpoint, frames, robot_id=5) == reference_track_ids(frames)
        seen = relay.infer_headers()
        assert [h.get(ROUTING) for h in seen] == [str(5 * 256)] * 7  # 6 frames + END
        assert all(h["authorization"] == "Bearer t0ken" for h in seen)
        others = [h for m, path, h in relay.calls if not path.endswith("/infer")]
        assert others and all(ROUTING not in h for h in others)
    finally:
        relay.close()
