"""Two real tritonservers behind a real proxy (triton_ros.tools.local_proxy) on 127.0.0.1.

Each check runs behind nginx and behind HAProxy (HAProxy skipped where its binary is missing);
the detect node only behind nginx (it uses the same client as the TritonClient check).

What is checked (issue 10, the load-balancer half; docs/fleet.md):
(a) stateless detection through the proxy spreads over both servers (their own inference
    statistics count it) and gives what a direct call gives, from a TritonClient and from a
    real detect node;
(b) every request of a sequence (START, continuations, END), routed by the
    ``x-triton-sequence-id`` header, lands on one server: the tracker's state survives between
    its requests (``sequence_frame`` counts up, a wrong server would ask for START) and each
    server's log shows the sequences it started; both servers get some;
(c) a server killed (kill -9) while detection and sequences run: detection continues on the
    other server, and the sequences that lived on the dead one are asked for START once and
    restart there.
"""
import re
import threading
import time

import numpy as np
import pytest

from triton_ros.tools.local_proxy import LocalProxy, ProxyUnavailable, find_haproxy, find_nginx

import helpers
from helpers import IMAGE_TOPIC, bag_messages, start_servers, video_frames, wait_until
from sequence_data import kill_server_hard

try:
    find_nginx()
except ProxyUnavailable as exc:
    pytest.skip(f"no proxy binary: {exc}", allow_module_level=True)

SSD = "ssd_mobilenet_v2_coco"
TRACKER = "simple_tracker"
HEADER = "x-triton-sequence-id"
FRAMES = [0, 40, 80, 120, 160, 200]
ID_BASE = {"nginx": 0, "haproxy": 50_000}  # the servers outlive each proxy: ids never repeat
BOTH = pytest.mark.parametrize("fleet", ["nginx", "haproxy"], indirect=True)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Two real tritonservers, SSD + tracker each."""
    started = start_servers(tmp_path_factory.mktemp("fleet"), 2, [SSD, TRACKER])
    yield started
    for server in started:
        server.cleanup()


@pytest.fixture(scope="module")
def fleet(request, servers):
    """(proxy, servers, id base): the proxy (nginx or HAProxy, by parameter) in front of both."""
    kind = request.param
    if kind == "haproxy":
        try:
            find_haproxy()
        except ProxyUnavailable as exc:
            pytest.skip(f"no HAProxy: {exc}")
    proxy = LocalProxy([s.grpc_url for s in servers], [s.http_url for s in servers],
                       routing_header=HEADER, kind=kind).start()
    yield proxy, servers, ID_BASE[kind]
    proxy.cleanup()


def success_count(server, model=SSD) -> int:
    return helpers.success_count(server, model)


def detector(url):
    from triton_ros.detector import Detector, DetectorConfig
    from triton_ros.client import TritonClient
    client = TritonClient(url, SSD, shared_memory="off")
    return Detector(client, DetectorConfig(score_threshold=0.3))


def same_detections(a, b) -> bool:
    return (len(a.boxes) == len(b.boxes) and list(a.labels) == list(b.labels)
            and np.allclose(a.boxes, b.boxes, atol=1e-3) and np.allclose(a.scores, b.scores,
                                                                          atol=1e-5))


# -- sequences ----------------------------------------------------------------------------------

class TrackerClient:
    """Sequence requests to the tracker through the proxy, each with the routing header."""

    def __init__(self, url):
        import tritonclient.grpc as grpcclient
        self.grpc = grpcclient
        self.client = grpcclient.InferenceServerClient(url)

    def send(self, corrid: int, start=False, end=False, timeout_s: float = 30) -> int:
        """One (empty) frame of sequence ``corrid``; returns the tracker's ``sequence_frame``."""
        arrays = {"boxes": np.zeros((1, 0, 4), np.float32), "scores": np.zeros((1, 0), np.float32),
                  "classes": np.zeros((1, 0), np.int32)}
        inputs = []
        for name, array in arrays.items():
            tensor = self.grpc.InferInput(name, list(array.shape),
                                          {"f": "FP32", "i": "INT32"}[array.dtype.kind])
            tensor.set_data_from_numpy(array)
            inputs.append(tensor)
        result = self.client.infer(TRACKER, inputs, sequence_id=corrid, sequence_start=start,
                                   sequence_end=end, headers={HEADER: str(corrid)},
                                   client_timeout=timeout_s)
        return int(result.as_numpy("sequence_frame").reshape(-1)[0])

    def close(self):
        self.client.close()


def started_sequences(server) -> set[int]:
    """Correlation ids the server's tracker logged as started."""
    return {int(m) for m in re.findall(r"sequence (\d+) started", server.log_path.read_text())}


def logged(servers, ids, what=started_sequences) -> bool:
    """Wait until the servers' logs name every one of ``ids`` (``what``: started or ended).

    The python backend hands log lines to the server asynchronously: they may trail the
    responses by a moment.
    """
    return wait_until(lambda: set().union(*(set(what(s)) for s in servers)) >= set(ids), 30)


def ended_after(server) -> dict[int, int]:
    """Correlation id -> frames the tracker had seen when the sequence ended on ``server``."""
    return {int(c): int(n) for c, n in
            re.findall(r"sequence (\d+) ended after (\d+) frame", server.log_path.read_text())}


def test_shipped_nginx_config_is_accepted(tmp_path):
    """config/proxy/nginx-triton.conf passes ``nginx -t`` (paths and hosts made local)."""
    import subprocess

    from helpers import REPO
    text = (REPO / "config" / "proxy" / "nginx-triton.conf").read_text()
    assert "hash $http_x_triton_sequence_id consistent;" in text
    local = (text.replace("/var/log/nginx/triton-access.log", str(tmp_path / "access.log"))
             .replace("http {", f"pid {tmp_path}/nginx.pid;\nhttp {{\n"
                      f"client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/p;\n"
                      f"fastcgi_temp_path {tmp_path}/f; uwsgi_temp_path {tmp_path}/u; "
                      f"scgi_temp_path {tmp_path}/s;", 1)
             .replace(".example.internal", "").replace("listen 800", "listen 127.0.0.1:800"))
    local = re.sub(r"triton-(\d)", r"127.0.0.\1", local)  # resolvable upstream hosts
    (tmp_path / "nginx.conf").write_text(local)
    check = subprocess.run([str(find_nginx()), "-t", "-p", f"{tmp_path}/", "-c",
                            str(tmp_path / "nginx.conf"), "-e", str(tmp_path / "error.log")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    broken = local.replace("grpc_pass grpc://triton_grpc;", "grpc_pass;")
    (tmp_path / "broken.conf").write_text(broken)
    check = subprocess.run([str(find_nginx()), "-t", "-p", f"{tmp_path}/", "-c",
                            str(tmp_path / "broken.conf"), "-e", str(tmp_path / "error.log")],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode != 0  # the check itself can fail


def test_shipped_haproxy_config_is_accepted(tmp_path):
    """config/proxy/haproxy-triton.cfg passes ``haproxy -c`` (hosts made local)."""
    import subprocess

    from helpers import REPO
    try:
        haproxy, env = find_haproxy()
    except ProxyUnavailable as exc:
        pytest.skip(f"no HAProxy: {exc}")
    text = (REPO / "config" / "proxy" / "haproxy-triton.cfg").read_text()
    assert "balance hdr(x-triton-sequence-id)" in text and "hash-type consistent" in text
    local = re.sub(r"triton-(\d)\.example\.internal", r"127.0.0.\1", text)
    for name, conf in (("ok", local), ("broken", local.replace("balance leastconn",
                                                                "balance nosuchpolicy"))):
        (tmp_path / f"{name}.cfg").write_text(conf)
        check = subprocess.run([str(haproxy), "-c", "-f", str(tmp_path / f"{name}.cfg")],
                               capture_output=True, text=True, timeout=30, env=env)
        assert (check.returncode == 0) == (name == "ok"), (name, check.stdout, check.stderr)


# -- (a) detection spreads and equals a direct call --------------------------------------------

@BOTH
def test_detection_spreads_over_both_servers_and_equals_direct(fleet):
    proxy, servers, _ = fleet
    frames = video_frames(FRAMES)
    direct = detector(servers[0].grpc_url)
    through = detector(proxy.grpc_url)
    try:
        expected = direct.detect(frames)
        before = [success_count(s) for s in servers]
        got = [through.detect([frame])[0] for frame in frames]  # one request per frame
        after = [success_count(s) for s in servers]
    finally:
        direct.client.close()
        through.client.close()
    served = [a - b for a, b in zip(after, before)]
    assert sum(served) == len(frames), served
    assert all(n > 0 for n in served), f"requests per server {served}: not spread"
    for ours, theirs in zip(got, expected):
        assert same_detections(ours, theirs), (ours, theirs)
    assert sum(len(d.boxes) for d in got) >= len(frames)  # pedestrians in every frame
    records = [r for r in proxy.access_records() if r["uri"].endswith("/ModelInfer")]
    assert {r["upstream"] for r in records[-len(frames):]} == {s.grpc_url for s in servers}
    assert all(r["route"] == "" for r in records[-len(frames):])


@pytest.mark.parametrize("fleet", ["nginx"], indirect=True)  # same client path as above
def test_detect_node_through_proxy_matches_direct(fleet, sample_bag, start_node, ros_node):
    from test_detect_node import boxes_xyxy, node_params, start_and_connect

    from triton_ros.image_conversion import raw_image_to_bgr
    from triton_ros.ros.messages import stamp_to_ns
    proxy, servers, _ = fleet
    # shared memory off: a region registered through the proxy lives on one server only.
    # One frame per request (max_batch_size 1), so the node's requests can spread.
    params = {**node_params(servers[0], score_threshold=0.5, max_batch_size=1),
              "server_url": proxy.grpc_url, "shared_memory": '"off"'}  # quoted: YAML "off" = false
    node, collector, publisher = start_and_connect(start_node, ros_node, params)
    messages = bag_messages(sample_bag, IMAGE_TOPIC, 6, every=25)
    before = [success_count(s) for s in servers]
    for raw, _ in messages:
        publisher.publish(raw)
    stamps = [stamp_to_ns(msg.header.stamp) for _, msg in messages]
    assert wait_until(lambda: all(s in collector.by_stamp for s in stamps), 90), (
        f"got {len(collector.by_stamp)}/{len(stamps)}; node log:\n{node.output()[-2000:]}")
    served = [success_count(s) - b for s, b in zip(servers, before)]
    assert all(n > 0 for n in served), f"inferences per server {served}: not spread"
    direct = detector(servers[1].grpc_url)
    try:
        for _, msg in messages:
            frame = raw_image_to_bgr(msg.encoding, msg.height, msg.width, msg.step, msg.data)
            expected = direct.detect([frame])[0]
            expected_persons = expected.boxes[[lbl == "person" and s >= 0.5 for lbl, s in
                                               zip(expected.labels, expected.scores)]]
            ours = boxes_xyxy(collector.by_stamp[stamp_to_ns(msg.header.stamp)], "person")
            assert ours.shape == expected_persons.shape, (ours, expected_persons)
            assert np.allclose(np.sort(ours, axis=0), np.sort(expected_persons, axis=0),
                               atol=1e-2)
    finally:
        direct.client.close()
    assert node.alive()


@pytest.mark.parametrize("fleet", ["nginx"], indirect=True)
def test_shared_memory_auto_through_a_local_proxy_falls_back_to_the_network(fleet, caplog):
    """``auto`` turns shared memory on for a loopback URL, a local proxy included; a region is
    registered on one server and the request may reach the other. The client must notice and
    send tensors over the network instead (before: 10 of 10 requests failed)."""
    from triton_ros.detector import Detector, DetectorConfig
    from triton_ros.client import TritonClient
    proxy, servers, _ = fleet
    frame = video_frames([60])[0]
    direct = detector(servers[0].grpc_url)
    client = TritonClient(proxy.grpc_url, SSD, shared_memory="auto")
    try:
        expected = direct.detect([frame])[0]
        through = Detector(client, DetectorConfig(score_threshold=0.3))
        got = [through.detect([frame])[0] for _ in range(10)]   # none may fail
    finally:
        direct.client.close()
        client.close()
    assert all(same_detections(g, expected) for g in got)
    assert not client._shm_enabled, "shared memory stayed on behind a balancing proxy"
    assert "shared memory unavailable, using the network instead" in caplog.text
    assert "reached another server than the registration" in caplog.text


# -- (b) sequences are sticky -------------------------------------------------------------------

@BOTH
def test_sequences_stay_on_one_server(fleet):
    proxy, servers, base = fleet
    ids = list(range(base + 1001, base + 1033))  # 32: each server gets some, whatever the ring
    tracker = TrackerClient(proxy.grpc_url)
    try:
        for corrid in ids:
            assert tracker.send(corrid, start=True) == 1
        for step in range(2, 5):  # continuations, interleaved across sequences
            for corrid in ids:
                assert tracker.send(corrid) == step, corrid
        for corrid in ids:
            assert tracker.send(corrid, end=True) == 5
    finally:
        tracker.close()
    assert logged(servers, ids, ended_after), "the tracker did not log every sequence's end"
    started = [started_sequences(s) & set(ids) for s in servers]
    assert started[0] | started[1] == set(ids)
    assert not started[0] & started[1], "a sequence started on both servers"
    assert started[0] and started[1], f"one server got every sequence: {started}"
    for server, mine in zip(servers, started):
        ended = ended_after(server)
        assert {c: ended.get(c) for c in mine} == {c: 5 for c in mine}
    upstreams = {}
    for record in proxy.access_records():
        if record["route"] and int(record["route"]) in ids:
            upstreams.setdefault(int(record["route"]), set()).add(record["upstream"])
    assert all(len(u) == 1 for u in upstreams.values()), upstreams
    assert len(upstreams) == len(ids)


# -- (c) a server dies --------------------------------------------------------------------------

@BOTH
def test_server_killed_detection_continues_and_its_sequences_restart(fleet):
    proxy, servers, base = fleet
    victim, survivor = servers
    ids = list(range(base + 2001, base + 2017))
    tracker = TrackerClient(proxy.grpc_url)
    through = detector(proxy.grpc_url)
    frame = video_frames([60])[0]
    expected = through.detect([frame])[0]
    results, stop = [], threading.Event()

    def detect_loop():
        while not stop.is_set():
            try:
                through.detect([frame])
                results.append((time.monotonic(), True))
            except Exception:  # noqa: BLE001 - counted: requests in flight on the victim fail
                results.append((time.monotonic(), False))

    worker = threading.Thread(target=detect_loop, daemon=True)
    try:
        for corrid in ids:
            assert tracker.send(corrid, start=True) == 1
        assert logged(servers, ids), "the tracker did not log every sequence's start"
        on_victim = started_sequences(victim) & set(ids)
        on_survivor = started_sequences(survivor) & set(ids)
        assert on_victim and on_survivor, (on_victim, on_survivor)
        worker.start()
        assert wait_until(lambda: sum(ok for _, ok in results) >= 4, 60)

        killed_at = time.monotonic()
        kill_server_hard(victim)
        assert wait_until(lambda: sum(ok for t, ok in results if t > killed_at) >= 6, 60), results

        # Sequences on the survivor go on; those on the victim are asked for START once.
        restarted_at = {}
        for corrid in ids:
            if corrid in on_survivor:
                assert tracker.send(corrid) == 2
                continue
            from tritonclient.utils import InferenceServerException
            with pytest.raises(InferenceServerException, match="must specify the START flag"):
                tracker.send(corrid)
            assert tracker.send(corrid, start=True) == 1
            restarted_at[corrid] = time.monotonic() - killed_at
            assert tracker.send(corrid) == 2
        for corrid in ids:
            assert tracker.send(corrid, end=True) == 3
    finally:
        stop.set()
        worker.join(timeout=60)
        tracker.close()
        through.client.close()
        if victim.process is None:
            victim.start(timeout_s=180)  # leave the fleet whole for any later test

    after = [(t, ok) for t, ok in results if t > killed_at]
    failed = [t for t, ok in after if not ok]
    first_ok = min(t for t, ok in after if ok) - killed_at
    assert len(failed) <= 2, f"{len(failed)} detection requests failed after the kill"
    # The proxy needs a moment to take the dead server out (nginx: the refused connection;
    # HAProxy: its 1 s health check), so a request may still fail just after the first one
    # served by the survivor - but only within that window, never later.
    late = [round(t - killed_at, 2) for t in failed if t - killed_at > 5.0]
    assert not late, f"detection requests failed {late} s after the kill"
    assert logged([survivor], ids, ended_after), "the survivor did not log every sequence's end"
    ended = ended_after(survivor)
    assert all(ended.get(c) == 3 for c in ids), {c: ended.get(c) for c in ids}
    assert set(restarted_at) == on_victim
    # The detections served by the survivor alone are still the same.
    again = detector(proxy.grpc_url)
    try:
        assert same_detections(again.detect([frame])[0], expected)
    finally:
        again.client.close()
    print(f"\n{proxy.kind}: kill -9 of one of 2 servers: first detection served "
          f"{first_ok * 1000:.0f} ms after, "
          f"{len(failed)} detection request(s) failed, {len(on_victim)}/{len(ids)} sequences "
          f"restarted (last at {max(restarted_at.values()) * 1000:.0f} ms)")


# -- (d) a server hangs -------------------------------------------------------------------------

HANG_S = 8.0


def stopped(pid: int) -> bool:
    """Whether the process is stopped (SIGSTOP): state T in /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


@BOTH
def test_a_hung_server_costs_one_upstream_timeout_then_the_other_serves(fleet):
    """Issue 18 (4): one server frozen (SIGSTOP) for 8 s behind the proxy, stateless detection
    running: the proxy gives up on it after ``upstream_timeout_s`` and retries on the other
    server, which then serves alone (was: no detection for the whole hang, the shipped configs
    waited 1 h); resumed, the frozen server is used again."""
    import os
    import signal
    proxy, servers, base = fleet
    from triton_ros.detector import Detector, DetectorConfig
    from triton_ros.client import TritonClient
    # a request timeout longer than the hang: what bounds the gap must be the proxy
    through = Detector(TritonClient(proxy.grpc_url, SSD, shared_memory="off", timeout_s=10.0),
                       DetectorConfig(score_threshold=0.3))
    frame = video_frames([60])[0]
    results, errors, stop = [], [], threading.Event()

    def detect_loop():
        while not stop.is_set():
            try:
                through.detect([frame])
                results.append((time.monotonic(), True))
            except Exception as exc:  # noqa: BLE001 - counted below
                results.append((time.monotonic(), False))
                errors.append(f"{time.monotonic() - hung_at if hung_at else 0:.2f} s: {exc}")

    hung_at = 0.0
    worker = threading.Thread(target=detect_loop, daemon=True)
    tracker = TrackerClient(proxy.grpc_url)
    ids = list(range(base + 3001, base + 3017))
    sequence_back = None
    try:
        worker.start()
        # both serve (after test (c) nginx may still skip the restarted one for fail_timeout)
        assert wait_until(lambda: all(success_count(s) > 0 for s in servers), 60), \
            "a server serves nothing"
        for corrid in ids:
            assert tracker.send(corrid, start=True) == 1
        assert logged(servers, ids)
        # the server to freeze: one that holds sequences (the ring may favour one)
        victim = max(servers, key=lambda s: len(started_sequences(s) & set(ids)))
        survivor = next(s for s in servers if s is not victim)
        on_victim = sorted(started_sequences(victim) & set(ids))
        served_before = success_count(victim)
        os.kill(victim.process.pid, signal.SIGSTOP)
        hung_at = time.monotonic()
        try:
            assert wait_until(lambda: stopped(victim.process.pid), 5)
            survivor_before = success_count(survivor)
            # measured, not asserted: when does a sequence that lived there answer again
            # (its continuation times out, then a START through the proxy)?
            while sequence_back is None and time.monotonic() < hung_at + HANG_S - 2.0:
                try:
                    tracker.send(on_victim[0], timeout_s=1.0)
                except Exception:  # noqa: BLE001 - timed out on the hung server
                    try:
                        tracker.send(on_victim[0], start=True, timeout_s=1.0)
                        sequence_back = time.monotonic() - hung_at
                    except Exception:  # noqa: BLE001 - routed to the hung server again
                        pass
            time.sleep(max(0.0, hung_at + HANG_S - time.monotonic()))
            assert stopped(victim.process.pid)
            survivor_served = success_count(survivor) - survivor_before
        finally:
            os.kill(victim.process.pid, signal.SIGCONT)
        resumed_at = time.monotonic()
        # used again: more than the request that was in flight when it froze
        assert wait_until(lambda: success_count(victim) >= served_before + 3, 30), \
            "the resumed server is not used again"
        back_in = time.monotonic() - resumed_at
    finally:
        stop.set()
        worker.join(timeout=60)
        through.client.close()
        tracker.close()
    retried = through.client.gateway_retries
    served = [t for t, ok in results if ok and hung_at <= t <= resumed_at]
    failed = [t for t, ok in results if not ok and hung_at <= t <= resumed_at + 5]
    gaps = np.diff([hung_at, *served, resumed_at])
    print(f"\n{proxy.kind}: SIGSTOP of one of 2 servers for {HANG_S:.0f} s: longest gap in "
          f"detections {gaps.max():.2f} s, {len(served)} detections during the hang "
          f"({survivor_served} by the other server), {len(failed)} failed; the resumed server "
          f"served again {back_in:.2f} s after SIGCONT; {retried} request(s) sent again by the "
          f"client after the proxy's 504; a sequence that lived there answered again (START) "
          + (f"{sequence_back:.2f} s after SIGSTOP" if sequence_back is not None
             else f"not within {HANG_S - 2:.0f} s of the hang"))
    assert survivor_served >= 3, "the healthy server stayed idle during the hang"
    # one upstream timeout (2 s) plus the retry, with slack for a loaded machine; was the
    # whole hang (8 s)
    assert gaps.max() < proxy.upstream_timeout_s + 3.0, gaps.max()
    assert not failed, f"{len(failed)} requests failed during the hang: {errors}"
    if errors:
        print(f"failed (seconds after SIGSTOP): {errors}")


@BOTH
@pytest.mark.parametrize("routing_header", [HEADER, ""])
def test_a_quiet_sequence_stream_outlives_the_stateless_timeout(fleet, routing_header):
    """The stateless routes give a server 2 s (``upstream_timeout_s``) and resend; a gRPC
    sequence stream must never get those rules, even without the routing header: frames 3 s
    apart on one stream continue one sequence (the tracker counts them), nothing is resent."""
    from triton_ros.client import Endpoint, TritonClient
    from triton_ros.sequences import SequenceStream, assign_correlation_id
    from sequence_data import robot_streams
    from helpers import SAMPLE_BAG
    proxy, _, base = fleet
    frames = robot_streams(SAMPLE_BAG, robots=1, frames=3)[0]
    robot = base // 256 + (11 if routing_header else 12)
    client = TritonClient.from_endpoint(Endpoint(proxy.grpc_url, timeout_s=10.0,
                                                 sequence_transport="stream",
                                                 routing_header=routing_header), TRACKER)
    stream = SequenceStream(client.sequence_transport(), TRACKER,
                            assign_correlation_id("/quiet", "detections", robot_id=robot))
    try:
        stream.discover()
        counted = []
        for frame in frames:
            counted.append(int(stream.infer(frame.tensors(), ["sequence_frame"])
                               .outputs["sequence_frame"].reshape(-1)[0]))
            time.sleep(proxy.upstream_timeout_s + 1.0)
        assert counted == [1, 2, 3], counted
        assert stream.counters.state_losses == 0
    finally:
        stream.close("test done", timeout_s=5.0)
        client.close()
