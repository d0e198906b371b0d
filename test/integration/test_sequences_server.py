"""Per-robot Triton sequences on a real tritonserver (no ROS): triton_ros.sequences end to end.

Robots stream detections of real frames (SSD on the sample bag, ``sequence_data.py``) into the
``simple_tracker`` model, which keeps its tracks on the server per sequence. Expected track ids
come from the tracker's core run offline per robot: equal ids prove the server kept one state per
robot, in order, untouched by the other robots' interleaved requests.

Servers here serve copies of the repository's sequence models only (fast start); the
slot test uses a copy with fewer slots and a long idle time, the restart test its own server on
fixed ports so that it comes back where the clients expect it.
"""
import threading
import time

import numpy as np
import pytest

from triton_ros.sequences import (STREAMS_PER_ROBOT, SequenceError, SequenceStream,
                                  assign_correlation_id, make_transport)
from triton_ros.tools.local_server import LocalTritonServer, free_ports

from helpers import wait_until
from sequence_data import (continuation_rejected, kill_server_hard, model_repository,
                           reference_track_ids, robot_streams)

TRACKER = "simple_tracker"
OUTPUTS = ["track_ids", "sequence_frame"]
KEEPALIVE = {"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32),
             "classes": np.zeros(0, np.int32), "keepalive": np.array([True])}


def start_server(repo, log, **ports) -> LocalTritonServer:
    server = LocalTritonServer(repo, log_path=log, **ports)
    try:
        server.start(timeout_s=120)
    except Exception as exc:
        server.cleanup()
        pytest.fail(f"tritonserver did not start ({exc}); log:\n{log.read_text()[-3000:]}")
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The repository's sequence models (tracker: 2 instances, 5 s max idle)."""
    tmp = tmp_path_factory.mktemp("seq_server")
    server = start_server(model_repository(tmp / "repo"), tmp / "server.log")
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def streams(sample_bag):
    return robot_streams(sample_bag)


def tracker_stream(server, robot_id, protocol="grpc", keepalive=True, **kwargs):
    url = server.http_url if protocol == "http" else server.grpc_url
    stream = SequenceStream(
        make_transport(protocol, url, timeout_s=kwargs.pop("timeout_s", 30.0)), TRACKER,
        assign_correlation_id(f"/robot{robot_id}", "detections", robot_id=robot_id),
        keepalive_inputs=KEEPALIVE if keepalive else None, **kwargs)
    stream.discover()
    return stream


def ids_of(result) -> list[int]:
    return result.outputs["track_ids"].tolist()


def frame_no(result) -> int:
    return int(result.outputs["sequence_frame"][0])


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_three_robots_interleaved_keep_stable_independent_track_ids(server, streams, protocol):
    robots = [tracker_stream(server, r + 1, protocol) for r in range(3)]
    results = [[] for _ in robots]
    windows = [[0.0, 0.0] for _ in robots]
    failures = []
    barrier = threading.Barrier(len(robots))

    def drive(index):
        rng = np.random.default_rng(index)
        try:
            barrier.wait(timeout=30)
            windows[index][0] = time.monotonic()
            for frame in streams[index]:
                results[index].append(robots[index].infer(frame.tensors(), OUTPUTS))
                time.sleep(float(rng.uniform(0.0, 0.01)))
            windows[index][1] = time.monotonic()
        except Exception as exc:  # reported below with the robot's index
            failures.append((index, repr(exc)))

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(len(robots))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    # The robots really streamed at the same time.
    assert max(w[0] for w in windows) < min(w[1] for w in windows), windows

    for index, robot in enumerate(robots):
        got = [ids_of(r) for r in results[index]]
        assert got == reference_track_ids(streams[index]), f"robot {index + 1}"
        assert [frame_no(r) for r in results[index]] == list(range(1, len(streams[index]) + 1))
        assert [r.started for r in results[index]] == [True] + [False] * (len(got) - 1)
        assert robot.counters.state_losses == 0 and robot.counters.sequences_started == 1
        # Persistent ids: some pedestrian keeps one id for many frames, and every robot's
        # numbering is its own (starts at 1, not continuing another robot's).
        longest = max(sum(track in ids for ids in got) for track in set(sum(got, [])))
        assert longest >= 8, got
        assert min(sum(got, [])) == 1
        assert robot.correlation_id == (index + 1) * STREAMS_PER_ROBOT
    for robot in robots:
        assert robot.end("test over")
        robot.close()


def test_stopping_a_robot_ends_its_sequence_and_frees_its_slot(tmp_path, streams):
    """4 slots (2 instances x 2 candidate sequences), 60 s max idle: only an END frees one."""
    repo = model_repository(tmp_path / "repo", models=(TRACKER,), edits={TRACKER: [
        ("max_candidate_sequences: 16", "max_candidate_sequences: 2"),
        ("max_sequence_idle_microseconds: 5000000", "max_sequence_idle_microseconds: 60000000"),
    ]})
    log = tmp_path / "server.log"
    server = start_server(repo, log)
    try:
        robots = [tracker_stream(server, r) for r in (1, 2, 3, 4)]  # robot 4 fills the 4th slot
        for step in range(3):
            for index, robot in enumerate(robots):
                robot.infer(streams[index % 3][step].tensors(), OUTPUTS)
        newcomer = tracker_stream(server, 5)
        admitted = {}

        def join_fleet():
            admitted["result"] = newcomer.infer(streams[0][0].tensors(), OUTPUTS)

        thread = threading.Thread(target=join_fleet)
        thread.start()
        # While every slot is held, the newcomer's START waits in the server's backlog while the
        # others keep being served.
        for step in range(3, 6):
            for index in (1, 2):
                assert frame_no(robots[index].infer(streams[index][step].tensors(),
                                                    OUTPUTS)) == step + 1
        assert "result" not in admitted, "a 5th sequence got in although 4 slots were held"

        assert robots[0].end("robot stopped")
        thread.join(30)  # well below the 60 s idle timeout that would free a slot otherwise
        assert "result" in admitted, "the stopped robot's slot was not freed"
        assert admitted["result"].started and frame_no(admitted["result"]) == 1

        # Server-side: robot 1's sequence is gone, robots 2 and 3 carry on where they were.
        assert "must specify the START flag" in continuation_rejected(server.grpc_url, 256)
        assert continuation_rejected(server.grpc_url, 512) == ""
        assert frame_no(robots[2].infer(streams[2][6].tensors(), OUTPUTS)) == 7
        assert wait_until(lambda: "sequence 256 ended after 3 frame(s)" in log.read_text(), 10)
        for robot in robots[1:] + [newcomer]:
            robot.close()
    finally:
        server.cleanup()


def test_server_killed_and_restarted_mid_stream(tmp_path, streams):
    """kill -9 the server while 3 gRPC-stream robots and 1 HTTP robot stream; restart it."""
    ports = dict(zip(("http_port", "grpc_port", "metrics_port"), free_ports(3)))
    repo = model_repository(tmp_path / "repo", models=(TRACKER,))
    server = start_server(repo, tmp_path / "server.log", **ports)
    protocols = ["grpc", "grpc", "grpc", "http"]
    robots = [tracker_stream(server, i + 1, p, timeout_s=5.0) for i, p in enumerate(protocols)]
    log = [[] for _ in robots]        # per robot: (frame index, result or SequenceError)
    crashes = []
    stop = threading.Event()

    def drive(index):
        frames = streams[index % 3]
        step = 0
        while not stop.is_set():
            frame = frames[step % len(frames)]
            try:
                log[index].append((step, robots[index].infer(frame.tensors(), OUTPUTS)))
            except SequenceError as exc:   # what a node does: count, report, carry on
                log[index].append((step, exc))
                time.sleep(0.1)
            except Exception as exc:  # anything else would crash a node
                crashes.append((index, repr(exc)))
                return
            step += 1
            time.sleep(0.02)

    def successes(index, after=0):
        return [entry for entry in log[index][after:] if not isinstance(entry[1], Exception)]

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(len(robots))]
    try:
        for thread in threads:
            thread.start()
        assert wait_until(lambda: all(len(successes(i)) >= 5 for i in range(len(robots))), 60)
        kill_server_hard(server)
        killed_at = [len(entries) for entries in log]
        assert wait_until(lambda: all(
            any(isinstance(e[1], SequenceError) for e in log[i][killed_at[i]:])
            for i in range(len(robots))), 30), "requests did not fail while the server was down"
        server.start(timeout_s=120)
        restarted_at = [len(entries) for entries in log]
        assert wait_until(lambda: all(len(successes(i, restarted_at[i])) >= 6
                                      for i in range(len(robots))), 60), [
            [type(e[1]).__name__ for e in entries[-3:]] for entries in log]
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        server.cleanup()
    assert not crashes, crashes

    for index, robot in enumerate(robots):
        after = successes(index, killed_at[index])
        if after and not after[0][1].started:  # a response that beat the kill to the log
            after = after[1:]
        first = after[0][1]
        assert first.started and first.state_lost, "the first request after the restart STARTs"
        assert "server restarted or connection lost" in first.state_lost
        assert all(not r.started for _, r in after[1:])
        assert robot.counters.state_losses == 1 and robot.counters.errors >= 1
        assert robot.counters.sequences_started == 2
        assert [e.kind for e in robot.events].count("state_lost") == 1
        # The new sequence starts from scratch: ids as for a fresh stream of those frames.
        frames = streams[index % 3]
        assert [ids_of(r) for _, r in after] == reference_track_ids(
            [frames[step % len(frames)] for step, _ in after]), f"robot {index + 1}"
        assert [frame_no(r) for _, r in after] == list(range(1, len(after) + 1))
        robot.close(timeout_s=1.0)


def test_idle_stream_past_the_timeout_is_restarted(server, streams):
    frames = streams[0]
    robot = tracker_stream(server, 11, keepalive=False)
    before = [robot.infer(f.tensors(), OUTPUTS) for f in frames[:4]]
    assert robot.max_idle_s == 5.0, "discovered from the model config"
    time.sleep(robot.max_idle_s * 1.6)
    after = [robot.infer(f.tensors(), OUTPUTS) for f in frames[4:8]]
    assert not before[-1].started and after[0].started
    assert "after" in after[0].state_lost and "without requests" in after[0].state_lost
    assert robot.counters.state_losses == 1
    assert [frame_no(r) for r in after] == [1, 2, 3, 4], "fresh state after the restart"
    assert [ids_of(r) for r in after] == reference_track_ids(frames[4:8])
    robot.close()


def test_keepalives_hold_a_quiet_stream_and_silence_ends_it(server, streams):
    frames = streams[1]
    robot = tracker_stream(server, 12, keepalive_fraction=0.3, end_after_silence_s=0.0)
    first = [robot.infer(f.tensors(), OUTPUTS) for f in frames[:4]]
    quiet_until = time.monotonic() + robot.max_idle_s * 1.6
    while time.monotonic() < quiet_until:   # what the node's worker does between frames
        robot.tick()
        time.sleep(0.1)
    assert robot.counters.keepalives >= 2
    later = [robot.infer(f.tensors(), OUTPUTS) for f in frames[4:8]]
    assert robot.counters.state_losses == 0 and not any(r.started for r in later)
    assert [frame_no(r) for r in later] == [5, 6, 7, 8], "keep-alives are not frames"
    assert [ids_of(r) for r in first + later] == reference_track_ids(frames[:8])

    # The robot's input goes silent: the stream ENDs its sequence, then starts a new one.
    robot.timing.end_after_silence_s = 0.5
    assert wait_until(lambda: robot.tick() == "end", 10)
    assert not robot.active
    assert "must specify the START flag" in continuation_rejected(server.grpc_url,
                                                                  robot.correlation_id)
    again = robot.infer(frames[8].tensors(), OUTPUTS)
    assert again.started and not again.state_lost, "a clean new sequence, not a state loss"
    assert frame_no(again) == 1
    robot.close()


def test_sensor_streams_keep_separate_windows(server):
    """imu_motion: two robots' IMU streams interleaved, one still and one shaking."""
    rng = np.random.default_rng(3)
    gravity = np.array([0, 0, 9.81, 0, 0, 0], np.float32)
    keepalive = {"samples": np.zeros((0, 0), np.float32)}
    robots = [SequenceStream(make_transport("grpc", server.grpc_url), "imu_motion",
                             assign_correlation_id(f"/robot{r}", "imu", robot_id=r),
                             keepalive_inputs=keepalive) for r in (1, 2)]
    for robot in robots:
        robot.discover()
    scores = {0: [], 1: []}
    for step in range(6):
        for index, robot in enumerate(robots):
            noise = 0.01 if index == 0 else (0.01 if step < 3 else 2.0)
            samples = (gravity + rng.normal(0, noise, (10, 6))).astype(np.float32)
            out = robot.infer({"samples": samples}).outputs
            scores[index].append((float(out["motion"][0]), float(out["anomaly"][0]),
                                  int(out["window_fill"][0]), int(out["sequence_samples"][0])))
    still, shaken = scores[0], scores[1]
    assert [s[3] for s in still] == [s[3] for s in shaken] == [10, 20, 30, 40, 50, 60]
    assert [s[2] for s in still] == [9, 19, 29, 39, 49, 50]  # window of 50 changes
    assert max(s[0] for s in still) < 0.05, "the still robot is unaffected by the other one"
    assert shaken[2][0] < 0.05 < 0.5 < shaken[5][0]
    assert shaken[3][1] > 10, "the start of the shaking is an anomaly"
    for robot in robots:
        robot.close()
