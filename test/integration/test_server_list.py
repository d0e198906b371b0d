"""A client-side server list (``server_url`` with several servers, no load balancer) on three
real tritonservers on 127.0.0.1 (issue 10; docs/fleet.md).

(a) Stateless detection from a ``ServerPool``: frames spread over every server (their own
    inference statistics count it) and the real SSD's detections equal a direct call's.
(b) A real detect node with ``server_url`` given as a list, fed real frames at 20 Hz
    (``null_detector``: the SSD's tensors answered at once, so three servers fit on two cores):
    every server serves; one is killed (kill -9) mid-stream: the node stays up, detections keep
    arriving, /diagnostics names the dead server; restarted, it is used again; every frame is
    accounted for (received = published + dropped by reason).
(c) Sequences of 8 robots over two servers (gRPC stream and unary): each robot's track ids
    equal the tracker's offline reference while both live; killing one restarts exactly the
    sequences that lived there, once, with START on the other server (their ids then equal a
    fresh reference from the restart frame); the others are untouched.
"""
import re
import threading
import time

import numpy as np
import pytest

from triton_ros.client import Endpoint, ServerPool, TritonClient, rendezvous_rank
from triton_ros.detector import Detector, DetectorConfig
from triton_ros.sequences import SequenceStream, assign_correlation_id

from helpers import start_servers, success_count, video_frames, wait_until
from sequence_data import kill_server_hard, reference_track_ids, robot_streams
from test_faults import Probe, counters_add_up
from test_sequence_security import END, OUTPUTS, TRACKER

SSD = "ssd_mobilenet_v2_coco"
NULL = "null_detector"
DETECT = "triton_ros.ros.detect_node"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Three real tritonservers, each with the SSD, the null detector and the tracker."""
    started = start_servers(tmp_path_factory.mktemp("server_list"), 3, [SSD, NULL, TRACKER])
    yield started
    for server in started:
        server.cleanup()


def restart_if_killed(server) -> None:
    """Leave the module's servers whole for the next test."""
    if server.process is None:
        server.start(timeout_s=180)


def endpoints(servers, **options):
    options = {"reconnect_initial_s": 0.2, "reconnect_max_s": 1.0, **options}
    return [Endpoint(s.grpc_url, **options) for s in servers]


# -- (a) -----------------------------------------------------------------------------------------

def test_detection_spreads_over_every_server_and_equals_a_direct_call(servers):
    frames = video_frames([0, 30, 60, 90, 120, 150])
    pool = ServerPool(endpoints(servers, timeout_s=30.0, shared_memory="auto"), SSD)
    direct = Detector(TritonClient(servers[0].grpc_url, SSD), DetectorConfig(score_threshold=0.3))
    try:
        pool.check_ready()
        pooled = Detector(pool, DetectorConfig(score_threshold=0.3))
        expected = direct.detect(frames)
        before = [success_count(s, SSD) for s in servers]
        got = [pooled.detect([frame])[0] for frame in frames]   # one request per frame
        served = [success_count(s, SSD) - b for s, b in zip(servers, before)]
    finally:
        direct.client.close()
        pool.close()
    assert served == [2, 2, 2], f"requests per server {served}: not spread in turn"
    for ours, theirs in zip(got, expected):
        assert list(ours.labels) == list(theirs.labels)
        assert np.allclose(ours.boxes, theirs.boxes, atol=1e-3)
    assert sum(len(d.boxes) for d in got) >= len(frames)   # pedestrians in every frame


# -- (b) -----------------------------------------------------------------------------------------

def test_detect_node_with_a_server_list_survives_a_kill_and_uses_the_server_again(
        servers, ros_node, sample_bag, start_node):
    victim = servers[2]
    probe = Probe(ros_node, sample_bag)
    params = {"server_url": [s.grpc_url for s in servers],   # a YAML list
              "model_name": NULL, "image_reliability": "reliable", "image_qos_depth": 20,
              "queue_size": 4, "max_batch_size": 1, "max_delay_ms": 0.0, "max_in_flight": 2,
              "request_timeout_s": 5.0, "reconnect_initial_s": 0.2, "reconnect_max_s": 1.0,
              "diagnostics_period_s": 0.5}
    node = start_node(DETECT, params, remaps={"image": "/cam/image", "detections": "/cam/dets"})
    try:
        probe.connect(node)
        probe.feed(hz=20)

        def served_by_all():
            return all(int(probe.diag(f"server[{s.grpc_url}].requests", "0")) >= 3
                       for s in servers)
        assert wait_until(served_by_all, 60), (probe.diagnostics, node.output()[-2000:])
        assert probe.diag("servers_ready") == "3/3"
        served_before = [success_count(s, NULL) for s in servers]
        assert all(n >= 3 for n in served_before), served_before   # the servers' own count

        kill_server_hard(victim)
        killed = time.monotonic()
        assert wait_until(lambda: len(probe.arrived_after(killed)) >= 20, 30), node.output()
        first_after = probe.arrived_after(killed)[0] - killed
        assert wait_until(
            lambda: probe.diag(f"server[{victim.grpc_url}].state") == "down", 10), \
            probe.diagnostics
        assert probe.diag("servers_ready") == "2/3"
        assert "1 of 3 servers down" in probe.diag_message
        assert "cannot connect" in probe.diag(f"server[{victim.grpc_url}].last_error")
        assert probe.diag("connection") == "ready"   # the node as a whole still serves
        assert node.alive()
        # arrivals after the kill keep pace with the 20 Hz feed: no outage
        arrivals = probe.arrived_after(killed)
        gaps = np.diff(arrivals[:20])
        assert gaps.max() < 1.5, f"a {gaps.max():.2f} s gap in detections after the kill"

        victim.start(timeout_s=180)
        back = time.monotonic()
        assert wait_until(
            lambda: probe.diag(f"server[{victim.grpc_url}].state") == "ready", 30), \
            probe.diagnostics
        ready_after = time.monotonic() - back
        victim_requests = int(probe.diag(f"server[{victim.grpc_url}].requests"))
        assert wait_until(lambda: int(probe.diag(f"server[{victim.grpc_url}].requests", "0"))
                          >= victim_requests + 3, 30), probe.diagnostics
        assert success_count(victim, NULL) >= 3    # the restarted server's own count
        assert int(probe.diag(f"server[{victim.grpc_url}].outages")) >= 1
        assert int(probe.diag(f"server[{victim.grpc_url}].recoveries")) >= 1
        assert probe.diag("servers_ready") == "3/3"

        probe.stop_feeding()
        assert wait_until(lambda: counters_add_up(probe), 30), (probe.sent, probe.diagnostics)
        dropped = {k: v for k, v in probe.diagnostics.items()
                   if k.startswith("frames_dropped_") and v != "0"}
        # a frame in flight on the victim is retried on another server, not dropped for it
        assert "frames_dropped_server_unavailable" not in dropped, dropped
        assert node.alive()
        print(f"\nserver list of 3, kill -9 of one at 20 Hz: first detection {first_after * 1000:.0f}"
              f" ms after, requests retried {probe.diag('requests_retried')}, dropped {dropped};"
              f" restarted server ready in the list {ready_after:.2f} s after its start")
    finally:
        probe.stop_feeding()
        restart_if_killed(victim)



def test_a_list_never_sticks_to_a_dead_server_and_counts_a_hang_as_an_outage(
        servers, ros_node, sample_bag, start_node):
    """Issue 18 (1-3), one node, one scenario at 15 Hz:
    - one server frozen (SIGSTOP) for 4 s: the frames displaced while its request hung are
      ``server_unavailable`` (the README's promise), not ``stale``;
    - then, three rounds: every live server killed (kill -9; the check that they are gone
      comes first): within seconds /diagnostics calls every server ``down`` (also the one no
      request touched), then all but one come back — the one left dead takes each list position
      in turn — and detections resume within the recovery contract (plus slack for a loaded
      machine), the dead one still ``down``.
    """
    import os
    import signal
    import socket
    from sequence_data import kill_server_hard
    timeout_s, reconnect_max_s = 1.0, 1.0
    probe = Probe(ros_node, sample_bag)
    params = {"server_url": [s.grpc_url for s in servers], "model_name": NULL,
              "image_reliability": "reliable", "image_qos_depth": 20, "queue_size": 4,
              "max_batch_size": 1, "max_delay_ms": 0.0, "max_in_flight": 1,
              "request_timeout_s": timeout_s, "reconnect_initial_s": 0.2,
              "reconnect_max_s": reconnect_max_s, "diagnostics_period_s": 0.25}
    node = start_node(DETECT, params, remaps={"image": "/cam/image", "detections": "/cam/dets"})

    def states():
        return [probe.diag(f"server[{s.grpc_url}].state") for s in servers]

    def port_closed(server) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", int(server.grpc_url.rsplit(":", 1)[1]))) != 0
    report = []
    try:
        probe.connect(node)
        probe.feed(hz=15)
        assert wait_until(lambda: states() == ["ready"] * 3
                          and len(probe.arrived_after(0)) >= 15, 60), \
            (probe.diagnostics, node.output()[-2000:])

        # (3) a hung server: what its request displaced is lost to the outage
        hung = servers[0]
        unavailable = int(probe.diag("frames_dropped_server_unavailable", "0"))
        os.kill(hung.process.pid, signal.SIGSTOP)
        try:
            assert wait_until(lambda: probe.diag(f"server[{hung.grpc_url}].state") == "down",
                              15), probe.diagnostics
            time.sleep(3.0)
        finally:
            os.kill(hung.process.pid, signal.SIGCONT)
        assert wait_until(lambda: states() == ["ready"] * 3, 30), probe.diagnostics
        assert int(probe.diag("requests_retried")) >= 1
        displaced = int(probe.diag("frames_dropped_server_unavailable")) - unavailable
        report.append(f"hang: {displaced} displaced frames counted server_unavailable, stale "
                      f"{probe.diag('frames_dropped_stale')}")
        assert displaced >= 3, (report, probe.diagnostics)

        # (1, 2) all killed, then all but one back, the dead one in every list position
        for stay_dead in range(len(servers)):
            alive = [s for s in servers if s.process is not None]
            for server in alive:
                kill_server_hard(server)
            assert all(s.process is None and port_closed(s) for s in servers)
            killed = time.monotonic()
            assert wait_until(lambda: states() == ["down"] * 3, 10 * timeout_s + 5), \
                (f"round {stay_dead}: a dead server still called ready", probe.diagnostics)
            down_in = time.monotonic() - killed
            assert probe.diag("servers_ready") == "0/3"
            back = [s for i, s in enumerate(servers) if i != stay_dead]
            back[0].start(timeout_s=180)
            returned = time.monotonic()   # the first server back is ready
            back[1].start(timeout_s=180)
            assert wait_until(lambda: probe.arrived_after(returned), 30), \
                (f"round {stay_dead}: no detection after {back[0].grpc_url} returned",
                 probe.diagnostics, node.output()[-3000:])
            first = probe.arrived_after(returned)[0] - returned
            report.append(f"round {stay_dead}: all down in diagnostics {down_in:.2f} s after "
                          f"the kill; first detection {first:.2f} s after the servers' return")
            # the contract is reconnect_max_s + request_timeout_s; slack for a loaded machine
            assert first < reconnect_max_s + timeout_s + 8.0, report
            assert wait_until(lambda: probe.diag(
                f"server[{servers[stay_dead].grpc_url}].state") == "down"
                and probe.diag("servers_ready") == "2/3", 10), probe.diagnostics
        assert node.alive()
        print("\n" + "\n".join(report))
    finally:
        probe.stop_feeding()
        for server in servers:
            restart_if_killed(server)


# -- (c) -----------------------------------------------------------------------------------------

def started_on(server) -> set[int]:
    """Correlation ids the server's tracker logged as started."""
    return {int(m) for m in re.findall(r"sequence (\d+) started", server.log_path.read_text())}


def run_robots(streams_by_robot, frames_by_robot):
    """Each robot sends its frames in its own thread, all at once; {robot: [track ids]}."""
    results, failures = {}, []

    def run(robot):
        try:
            stream = streams_by_robot[robot]
            results[robot] = [stream.infer(f.tensors(), OUTPUTS).outputs["track_ids"].tolist()
                              for f in frames_by_robot[robot]]
        except Exception as exc:  # reported below with the robot
            failures.append((robot, repr(exc)))

    threads = [threading.Thread(target=run, args=(r,)) for r in streams_by_robot]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    return results


def assignment(robot, namespace=None):
    return assign_correlation_id(namespace or f"/r{robot}", "detections", robot_id=robot)


def correlation_id(robot) -> int:
    return assignment(robot).correlation_id


@pytest.fixture(scope="module")
def robot_frames(sample_bag):
    return robot_streams(sample_bag, robots=3, frames=16)


@pytest.mark.parametrize("transport, first_robot", [("stream", 501), ("unary", 601)])
def test_sequences_stay_on_their_server_and_only_the_dead_servers_restart(
        servers, robot_frames, transport, first_robot):
    home, victim = servers[0], servers[1]
    pool = ServerPool(endpoints([home, victim], timeout_s=30.0, sequence_transport=transport),
                      TRACKER)
    # 4 robots whose sequences rank each server first (the ports change every run)
    ranked = {home.grpc_url: [], victim.grpc_url: []}
    for r in range(first_robot, first_robot + 64):
        ranked[rendezvous_rank(correlation_id(r), list(ranked))[0]].append(r)
    robots = ranked[home.grpc_url][:4] + ranked[victim.grpc_url][:4]
    assert len(robots) == 8, ranked
    frames = {r: robot_frames[r % 3] for r in robots}
    streams = {r: SequenceStream(pool.sequence_transport(), TRACKER, assignment(r),
                                 keepalive_inputs=END) for r in robots}
    try:
        pool.check_ready()
        for stream in streams.values():
            stream.discover()
        first = run_robots(streams, {r: f[:8] for r, f in frames.items()})
        placed = {r: streams[r].transport.server.url for r in robots}
        assert placed == {r: url for url, rs in ranked.items() for r in rs[:4]}
        for r in robots:
            assert first[r] == reference_track_ids(frames[r][:8]), r
            assert streams[r].counters.sequences_started == 1
        on_victim = {r for r in robots if placed[r] == victim.grpc_url}
        corrids = {r: streams[r].correlation_id for r in robots}
        assert wait_until(lambda: {corrids[r] for r in on_victim} <= started_on(victim), 30)
        assert not {corrids[r] for r in on_victim} & started_on(home)
        values = pool.diagnostic_values()
        assert set(map(int, values[f"server[{victim.grpc_url}].sequences"].split())) == \
            {corrids[r] for r in on_victim}

        kill_server_hard(victim)
        killed = time.monotonic()
        second = run_robots(streams, {r: f[8:] for r, f in frames.items()})
        moved_in = time.monotonic() - killed
        for r in robots:
            counters = streams[r].counters
            if r in on_victim:   # restarted once, with START, on the other server
                assert (counters.state_losses, counters.sequences_started) == (1, 2), r
                assert victim.grpc_url in streams[r].last_loss_reason
                assert streams[r].transport.server.url == home.grpc_url
                assert second[r] == reference_track_ids(frames[r][8:]), r
            else:                # untouched: the same sequence goes on
                assert (counters.state_losses, counters.sequences_started) == (0, 1), r
                assert second[r] == reference_track_ids(frames[r])[8:], r
            assert counters.errors == 0, r   # no frame failed: the restart carried it
        assert wait_until(lambda: {corrids[r] for r in robots} <= started_on(home), 30)
        values = pool.diagnostic_values()
        assert set(map(int, values[f"server[{home.grpc_url}].sequences"].split())) == \
            set(corrids.values())
        assert values[f"server[{victim.grpc_url}].state"] == "down"
        print(f"\n{transport}: kill -9 of one of 2 servers: {len(on_victim)}/{len(robots)} "
              f"sequences restarted once on the other; 8 frames of all 8 robots in "
              f"{moved_in * 1000:.0f} ms after the kill")
    finally:
        for stream in streams.values():
            stream.close("test done", timeout_s=5.0)
        pool.close()
        restart_if_killed(victim)


def test_track_node_reports_where_its_sequence_lives_and_moves_it(
        servers, robot_frames, ros_node, start_node):
    """A real track_node with a list of two servers: its sequence is on its rendezvous server,
    /diagnostics says so; that server killed, the node restarts the sequence on the other."""
    from test_track_node import Diagnostics, Robot, frame_to_msg, start_tracker, wait_active
    home, victim = servers[0], servers[1]
    urls = [home.grpc_url, victim.grpc_url]
    robot_id = next(r for r in range(701, 764)
                    if rendezvous_rank(correlation_id(r), urls)[0] == victim.grpc_url)
    corrid = correlation_id(robot_id)
    frames = robot_frames[0][:12]
    node = start_tracker(start_node, urls, "/listed", robot_id, reconnect_initial_s=0.2,
                         reconnect_max_s=1.0, diagnostics_period_s=0.5)
    robot = Robot(ros_node, "/listed")
    diagnostics = Diagnostics(ros_node)
    try:
        wait_active(node, robot)
        for frame in frames[:8]:
            robot.publisher.publish(frame_to_msg(frame))
            time.sleep(0.03)
        assert wait_until(lambda: robot.has(frames[:8]), 60), node.output()[-2000:]
        assert robot.ids(frames[:8]) == reference_track_ids(frames[:8])

        def diag():
            return diagnostics.of("/listed/triton_track")[1]
        assert wait_until(lambda: diag().get("sequence_server_now") == victim.grpc_url, 10), diag()
        values = diag()
        assert values[f"server[{victim.grpc_url}].sequences"] == str(corrid)
        assert values[f"server[{home.grpc_url}].sequences"] == ""
        assert values["servers_ready"] == "2/2"

        kill_server_hard(victim)
        for frame in frames[8:]:
            robot.publisher.publish(frame_to_msg(frame))
            time.sleep(0.03)
        assert wait_until(lambda: robot.has(frames[8:]), 60), node.output()[-2000:]
        assert robot.ids(frames[8:]) == reference_track_ids(frames[8:])  # restarted at frame 8
        assert wait_until(lambda: diag().get("sequence_server_now") == home.grpc_url, 10), diag()
        values = diag()
        assert values["state_losses"] == "1" and values["sequences_started"] == "2"
        assert values["sequence_moves"] == "1"
        assert victim.grpc_url in values["last_loss_reason"]
        assert values[f"server[{home.grpc_url}].sequences"] == str(corrid)
        assert values[f"server[{victim.grpc_url}].state"] == "down"
        assert values["frames_failed"] == "0"
        assert node.alive()
    finally:
        restart_if_killed(victim)
