"""The routing header behind a real load balancer: nginx hashing on it in front of two servers.

Two real tritonservers serve copies of ``simple_tracker``; ``LocalProxy`` (Debian's nginx,
``hash $http_x_triton_sequence_id consistent`` for requests with the header, least-connections
for the rest) sits in front. Robots stream the SSD detections of real frames through the proxy
with the client layer's sequence transports. With the routing header every robot's sequence
lives on one server (its log says where it started) and the track ids equal the tracker's
offline reference; without it, unary requests of one sequence are spread over both servers and
the sequence's state is lost.
"""
import re
import threading

import pytest

from triton_ros.client import Endpoint, TritonClient
from triton_ros.sequences import SequenceStream, assign_correlation_id
from triton_ros.tools.local_proxy import LocalProxy, ProxyUnavailable, find_nginx

from helpers import wait_until
from sequence_data import reference_track_ids, robot_streams
from test_sequence_security import END, OUTPUTS, TRACKER, start_server

try:
    find_nginx()
except ProxyUnavailable as exc:
    pytest.skip(f"no nginx: {exc}", allow_module_level=True)

HEADER = "x-triton-sequence-id"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """(proxy, servers): nginx in front of two tracker servers (gRPC and HTTP)."""
    servers = []
    try:
        for i in range(2):
            servers.append(start_server(tmp_path_factory, f"routing{i}", []))
        proxy = LocalProxy([s.grpc_url for s in servers], [s.http_url for s in servers],
                           routing_header=HEADER).start()
    except Exception:
        for server in servers:
            server.cleanup()
        raise
    yield proxy, servers
    proxy.cleanup()
    for server in servers:
        server.cleanup()


@pytest.fixture(scope="module")
def streams(sample_bag):
    return robot_streams(sample_bag)


def started_on(server) -> set[int]:
    """Correlation ids the server's tracker logged as started."""
    return {int(m) for m in re.findall(r"sequence (\d+) started", server.log_path.read_text())}


def drive(endpoint, robot_ids, streams, frames=8):
    """Each robot streams ``frames`` frames (robot r: stream r % 3) in its own thread, all at
    once; returns {robot_id: (SequenceStream, [track ids per frame])}."""
    results, failures = {}, []
    client = TritonClient.from_endpoint(endpoint, TRACKER)

    def run(robot_id):
        stream = SequenceStream(client.sequence_transport(), TRACKER,
                                assign_correlation_id(f"/r{robot_id}", "detections",
                                                      robot_id=robot_id), keepalive_inputs=END)
        try:
            stream.discover()
            ids = [stream.infer(f.tensors(), OUTPUTS).outputs["track_ids"].tolist()
                   for f in streams[robot_id % 3][:frames]]
            stream.end("test done")
            results[robot_id] = (stream, ids)
        except Exception as exc:  # reported below with the robot id
            failures.append((robot_id, repr(exc)))
        finally:
            stream.close()

    threads = [threading.Thread(target=run, args=(r,)) for r in robot_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    client.close()
    assert not failures, failures
    return results


@pytest.mark.parametrize("protocol, transport, first_robot", [
    ("grpc", "unary", 101), ("grpc", "stream", 201), ("http", "unary", 301)])
def test_each_sequence_stays_on_one_server_behind_the_proxy(fleet, streams, protocol,
                                                            transport, first_robot):
    proxy, servers = fleet
    robot_ids = list(range(first_robot, first_robot + 8))
    url = proxy.grpc_url if protocol == "grpc" else proxy.http_url
    endpoint = Endpoint(url, protocol, timeout_s=30.0, routing_header=HEADER,
                        sequence_transport=transport)
    results = drive(endpoint, robot_ids, streams)
    for robot_id, (stream, ids) in results.items():
        assert ids == reference_track_ids(streams[robot_id % 3][:8]), robot_id
        assert stream.counters.state_losses == 0 and stream.counters.sequences_started == 1
    corrids = {256 * r for r in robot_ids}
    assert wait_until(lambda: corrids <= started_on(servers[0]) | started_on(servers[1]), 30)
    placed = [started_on(s) & corrids for s in servers]
    assert not placed[0] & placed[1], f"a sequence started on both servers: {placed}"
    assert placed[0] and placed[1], f"the hash put every sequence on one server: {placed}"


def test_without_the_routing_header_unary_sequences_lose_their_state(fleet, streams):
    """The control: the same requests, no header -> least-connections spreads one sequence's
    requests over both servers, and the server without it asks for START."""
    proxy, _ = fleet
    endpoint = Endpoint(proxy.grpc_url, timeout_s=30.0, routing_header="",
                        sequence_transport="unary")
    results = drive(endpoint, [401], streams, frames=6)
    stream, _ = results[401]
    assert stream.counters.state_losses >= 1
    assert "no longer knows the sequence" in stream.last_loss_reason
