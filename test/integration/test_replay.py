"""Replay testing on real parts: the sample bag (MCAP and sqlite3) played in lock-step through a
real detect_node (and track_node) against a real tritonserver, recorded, and compared.

Lock-step makes results independent of machine speed: two replays, one of them with a CPU
burner running, must give byte-identical detections.json; a real change (a higher
score_threshold) must be caught by ``compare`` with a diff and a non-zero exit.
"""
import json
import os
import signal
import subprocess
import sys

import pytest

from helpers import REPO, VIDEO
from triton_ros.testing import assert_matches_golden, run_replay, triton_replay  # noqa: F401

FRAMES = 30
COCO = REPO / "test" / "data" / "sample_bag_persons_coco.json"


def replay(tmp_path_factory, name, bag, server, **kwargs):
    result = run_replay(bag, tmp_path_factory.mktemp(name), server_url=server.grpc_url,
                        frames=FRAMES, **kwargs)
    assert result.returncode == 0, failure_report(result)
    return result


def failure_report(result) -> str:
    """The replay's output, unanswered frames per topic and the node logs' tails."""
    text = [result.log[-3000:]]
    if result.detections_path.is_file():
        doc = result.detections
        for topic, frames in doc.get("topics", {doc["topic"]: doc["frames"]}).items():
            text.append(f"{topic} unanswered frame indices: "
                        f"{[i for i, f in enumerate(frames) if not f['processed']]}")
    for log in sorted(result.out.glob("*.log")):
        text.append(f"--- {log.name}:\n{log.read_text(errors='replace')[-2500:]}")
    return "\n".join(text)


@pytest.fixture(scope="module")
def golden(tmp_path_factory, sample_bag, triton_server):
    return replay(tmp_path_factory, "golden", sample_bag, triton_server)


def test_lock_step_replay_records_every_frame(golden):
    doc = golden.detections
    assert doc["topic"] == "/camera/detections"
    assert len(doc["frames"]) == FRAMES
    assert all(f["processed"] for f in doc["frames"])
    assert golden.summary["timeouts"] == 0
    persons = sum(d["class_id"] == "person" for f in doc["frames"] for d in f["detections"])
    assert persons >= FRAMES  # vtest.avi shows several pedestrians in every one of these frames
    stamps = [f["stamp_ns"] for f in doc["frames"]]
    assert stamps == sorted(stamps) and len(set(stamps)) == FRAMES


def test_output_bag_holds_detections_and_image_headers(golden):
    from rosbags.rosbag2 import Reader

    from triton_ros.replay_record import vision_msgs_typestore
    typestore = vision_msgs_typestore()
    frames = {f["stamp_ns"]: f for f in golden.detections["frames"]}
    seen = {}
    with Reader(golden.out / "outputs") as reader:
        assert any((golden.out / "outputs").glob("*.mcap"))
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics == {"/camera/image_raw/header": "std_msgs/msg/Header",
                          "/camera/detections": "vision_msgs/msg/Detection2DArray"}
        for connection, _, raw in reader.messages():
            msg = typestore.deserialize_cdr(raw, connection.msgtype)
            if connection.topic == "/camera/detections":
                stamp = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec
                seen[stamp] = [d.results[0].hypothesis.class_id for d in msg.detections]
    assert seen == {s: [d["class_id"] for d in f["detections"]] for s, f in frames.items()}


def test_second_replay_is_byte_identical(tmp_path_factory, sample_bag, triton_server, golden):
    again = replay(tmp_path_factory, "again", sample_bag, triton_server)
    assert again.detections_path.read_bytes() == golden.detections_path.read_bytes()
    assert_matches_golden(again, golden.detections_path)


def test_replay_under_cpu_load_is_byte_identical(tmp_path_factory, sample_bag, triton_server,
                                                 golden):
    burner = subprocess.Popen(["nice", "-n", "10", sys.executable, "-c", "while True: pass"])
    try:
        loaded = replay(tmp_path_factory, "loaded", sample_bag, triton_server)
        assert burner.poll() is None, "the CPU burner was not running during the replay"
    finally:
        os.kill(burner.pid, signal.SIGKILL)
        burner.wait()
    assert loaded.detections_path.read_bytes() == golden.detections_path.read_bytes()


@pytest.fixture(scope="module")
def higher_threshold(tmp_path_factory, sample_bag, triton_server):
    return replay(tmp_path_factory, "threshold", sample_bag, triton_server,
                  params={"score_threshold": 0.7})


def test_compare_catches_a_higher_score_threshold(golden, higher_threshold, tmp_path):
    report = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "triton_ros.tools.compare", str(golden.out),
                           str(higher_threshold.out), "--report", str(report),
                           "--ground-truth", str(COCO)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "result: FAIL" in out and "recall" in out
    # The diff names detections the golden has and the run lost: all below the new threshold.
    lost = [line for line in out.splitlines() if line.strip().startswith("- ")]
    assert lost and all(float(line.split()[2]) < 0.7 for line in lost), out
    assert "precision 1.0000" in out  # nothing new appears with a higher threshold
    assert "mAP@0.5" in out
    for name in ("report.md", "detections_per_frame.png", "scores.png", "latency.png"):
        assert (report / name).stat().st_size > 0
    with pytest.raises(AssertionError, match=r"(?s)differs from golden.*- person"):
        assert_matches_golden(higher_threshold, golden.detections_path)


def test_compare_passes_identical_runs(golden):
    proc = subprocess.run([sys.executable, "-m", "triton_ros.tools.compare", str(golden.out),
                           str(golden.out)], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert "precision 1.0000 recall 1.0000" in proc.stdout and "result: PASS" in proc.stdout


@pytest.fixture(scope="module")
def sqlite3_bag(sample_bag, tmp_path_factory):
    """The bootstrap's sqlite3 copy of the sample bag, else the first frames written here."""
    bag = sample_bag.parent / "sample_bag_sqlite3"
    if (bag / "metadata.yaml").is_file():
        return bag
    from triton_ros.tools.make_sample_bag import write_bag
    bag = tmp_path_factory.mktemp("sqlite3") / "sample_bag_sqlite3"
    assert write_bag(VIDEO, bag, FRAMES, 1_700_000_000_000_000_000, "sqlite3") == FRAMES
    return bag


def test_sqlite3_bag_gives_the_same_results(sqlite3_bag, triton_server, golden, triton_replay):
    assert any(sqlite3_bag.glob("*.db3"))
    result = triton_replay(sqlite3_bag, server_url=triton_server.grpc_url, frames=FRAMES)
    assert result.detections_path.read_bytes() == golden.detections_path.read_bytes()


def test_detect_and_track(tmp_path_factory, sample_bag, triton_server, golden):
    result = replay(tmp_path_factory, "track", sample_bag, triton_server,
                    start="detect+track")
    doc = result.detections
    assert set(doc["topics"]) == {"/camera/detections", "/camera/tracked_detections"}
    assert doc["topics"]["/camera/detections"] == golden.detections["frames"]
    tracked = doc["topics"]["/camera/tracked_detections"]
    assert all(f["processed"] for f in tracked)
    ids = {d["track_id"] for f in tracked for d in f["detections"] if "track_id" in d}
    # Persistent tracks: far fewer ids than detections over 30 frames.
    n = sum(len(f["detections"]) for f in tracked)
    assert ids and len(ids) < n / 3, (len(ids), n)


def write_restamped_bag(source, out, frames: int, stamps: list[int]):
    """The first ``frames`` images of ``source``'s image topic, header stamps replaced by
    ``stamps`` (bytes 4..12 of the CDR: sec, nanosec), log times kept (distinct, in order)."""
    import struct

    from rosbags.rosbag2 import Reader, StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    typestore = get_typestore(Stores.ROS2_KILTED)
    with Reader(source) as reader, Writer(out, version=9,
                                          storage_plugin=StoragePlugin.MCAP) as writer:
        conns = [c for c in reader.connections if c.topic == "/camera/image_raw"]
        conn = writer.add_connection("/camera/image_raw", conns[0].msgtype, typestore=typestore)
        for index, (_, log_ns, raw) in enumerate(reader.messages(connections=conns)):
            if index >= frames:
                break
            raw = bytearray(raw)
            endian = "<" if raw[1] & 1 else ">"
            struct.pack_into(endian + "iI", raw, 4, *divmod(stamps[index], 10**9))
            writer.write(conn, log_ns, bytes(raw))
    return out


STAMP_FRAMES = 8


@pytest.mark.parametrize("kind", ["duplicate", "zero"])
def test_repeated_stamps_get_each_frames_own_detections(kind, sample_bag, triton_server,
                                                        tmp_path):
    """Frames that share a header stamp (pairs, or all 0) must get the detections of their own
    image, the same as with distinct stamps; the replay warns about the repeated stamps."""
    base = 1_700_000_000_000_000_000
    distinct = [base + i * 100_000_000 for i in range(STAMP_FRAMES)]
    repeated = ([distinct[i - i % 2] for i in range(STAMP_FRAMES)] if kind == "duplicate"
                else [0] * STAMP_FRAMES)
    results = {}
    for name, stamps in (("distinct", distinct), (kind, repeated)):
        bag = write_restamped_bag(sample_bag, tmp_path / f"bag_{name}", STAMP_FRAMES, stamps)
        result = run_replay(bag, tmp_path / f"out_{name}", server_url=triton_server.grpc_url)
        assert result.returncode == 0, failure_report(result)
        results[name] = result
    want = [f["detections"] for f in results["distinct"].detections["frames"]]
    got = [f["detections"] for f in results[kind].detections["frames"]]
    assert len(want) == STAMP_FRAMES and all(want)
    assert got == want
    summary = results[kind].summary
    assert summary["repeated_stamps"] == (STAMP_FRAMES // 2 if kind == "duplicate"
                                          else STAMP_FRAMES - 1)
    assert "repeated" in results[kind].log and "stamp" in results[kind].log
    assert results["distinct"].summary["repeated_stamps"] == 0


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_ends_a_replay_non_zero_with_an_interrupted_summary(signum, code, sample_bag,
                                                                   triton_server, tmp_path):
    """A replay stopped by SIGTERM (a CI runner's kill) or SIGINT mid-run exits 128+signal and
    says interrupted in summary.json; the frames it played are recorded."""
    from triton_ros.tools.local_env import localhost_ros_env
    out = tmp_path / "out"
    env = localhost_ros_env(None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "triton_ros.tools.replay", str(sample_bag), "--start", "detect",
         "--server-url", triton_server.grpc_url, "--lock-step", "--out", str(out)],
        env=env, stderr=subprocess.PIPE, text=True, cwd=REPO,
        # A background job of a non-interactive shell inherits SIGINT ignored; a terminal's
        # Ctrl-C reaches a process with the default disposition.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    try:
        for line in proc.stderr:  # the first progress line comes after the first frame
            seen.append(line)
            if line.startswith("replay: 1/"):
                break
        assert proc.poll() is None, "".join(seen)
        proc.send_signal(signum)
        rest = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = "".join(seen) + rest
    assert proc.returncode == code, log
    assert "Traceback" not in log, log
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True, summary
    assert summary["signal"] == signal.Signals(signum).name, summary
    assert 1 <= summary["frames"] < 300, summary
    assert len(json.loads((out / "detections.json").read_text())["frames"]) == summary["frames"]
