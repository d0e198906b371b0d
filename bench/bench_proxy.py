#!/usr/bin/env python3
"""Proxy benchmark (docs/fleet.md): what the nginx hop costs, and how a fleet behind it recovers.

Two local tritonservers (127.0.0.1; SSD-MobileNet-v2, tensor_echo_stats, simple_tracker) behind
``triton_ros.tools.local_proxy.LocalProxy`` (``--kind nginx`` or ``haproxy``). One run, small
counts (2-core machine):

1. Hop cost: one 640x480x3 UINT8 frame to ``tensor_echo_stats`` (moving the tensor dominates),
   direct to server 0 vs through the proxy, request by request in turn, gRPC and HTTP.
   Wall ms: mean, p50, p99; results checked against the locally computed channel means.
2. Detection: a 640x480 frame (vtest.avi) through ``Detector`` (SSD, 300x300 on the wire):
   sequential latency and requests/s, direct vs proxy; then ``--threads`` clients at once,
   direct to one server vs the proxy over two.
3. Recovery: a detection loop and ``--sequences`` tracker sequences through the proxy; server 0
   killed (kill -9): first detection served after it, failed requests, sequences asked for
   START; server 0 restarted: how long until the proxy sends it requests again, and the
   sequences that hash back to it (asked for START a second time).

    .venv/bin/python bench/bench_proxy.py [--kind nginx|haproxy] [--iterations 30] [--threads 4]
        [--sequences 16]
"""
import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test" / "integration"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from triton_ros.detector import Detector, DetectorConfig  # noqa: E402
from triton_ros.tools.local_proxy import LocalProxy  # noqa: E402
from triton_ros.tools.local_server import LocalTritonServer  # noqa: E402
from triton_ros.client import TritonClient  # noqa: E402

VIDEO = REPO / ".cache" / "data" / "vtest.avi"
HEADER = "x-triton-sequence-id"


def frame_640x480():
    capture = cv2.VideoCapture(str(VIDEO))
    for _ in range(60):
        ok, frame = capture.read()
        assert ok
    capture.release()
    return cv2.resize(frame, (640, 480))


def stats(ms):
    ms = sorted(ms)
    return (f"mean {statistics.fmean(ms):7.2f}  p50 {ms[len(ms) // 2]:7.2f}  "
            f"p99 {ms[min(len(ms) - 1, int(len(ms) * 0.99))]:7.2f}")


def hop_cost(servers, proxy, frame, iterations):
    print("\n1. Hop cost, 640x480x3 UINT8 -> tensor_echo_stats (ms)")
    expected = frame.reshape(-1, 3).mean(axis=0)
    for protocol in ("grpc", "http"):
        direct_url = servers[0].grpc_url if protocol == "grpc" else servers[0].http_url
        proxy_url = proxy.grpc_url if protocol == "grpc" else proxy.http_url
        clients = {"direct": TritonClient(direct_url, "tensor_echo_stats", protocol,
                                          shared_memory="off"),
                   "proxy": TritonClient(proxy_url, "tensor_echo_stats", protocol,
                                         shared_memory="off")}
        times = {k: [] for k in clients}
        for i in range(iterations + 3):
            for name, client in clients.items():
                start = time.perf_counter()
                out = client.infer({"frame": frame[None]}, ["channel_mean"])["channel_mean"]
                elapsed = (time.perf_counter() - start) * 1000
                assert np.allclose(out[0], expected, atol=0.05), (out, expected)
                if i >= 3:
                    times[name].append(elapsed)
        for name, client in clients.items():
            client.close()
            print(f"   {protocol:4s} {name:6s} {stats(times[name])}")
        added = statistics.median(times["proxy"]) - statistics.median(times["direct"])
        print(f"   {protocol:4s} added by the proxy hop (p50): {added:+.2f} ms")


def detection(servers, proxy, frame, iterations, threads):
    print("\n2. Detection, 640x480 frame -> SSD (Detector, gRPC)")
    cfg = DetectorConfig(score_threshold=0.3)
    detectors = {"direct": Detector(TritonClient(servers[0].grpc_url, "ssd_mobilenet_v2_coco",
                                                 shared_memory="off"), cfg),
                 "proxy": Detector(TritonClient(proxy.grpc_url, "ssd_mobilenet_v2_coco",
                                                shared_memory="off"), cfg)}
    times = {k: [] for k in detectors}
    for i in range(iterations + 2):
        for name, det in detectors.items():
            start = time.perf_counter()
            det.detect([frame])
            if i >= 2:
                times[name].append((time.perf_counter() - start) * 1000)
    for name in detectors:
        print(f"   sequential {name:6s} {stats(times[name])} ms  "
              f"{1000 / statistics.fmean(times[name]):5.1f} req/s")
    for name, det in detectors.items():
        count = [0]
        lock = threading.Lock()
        per_thread = max(4, iterations // threads * 2)

        def work():
            for _ in range(per_thread):
                det.detect([frame])
                with lock:
                    count[0] += 1

        workers = [threading.Thread(target=work) for _ in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
        where = "1 server" if name == "direct" else "2 servers"
        print(f"   {threads} threads {name:6s} ({where}): {count[0] / elapsed:5.1f} req/s")
    for det in detectors.values():
        det.client.close()


def recovery(servers, proxy, frame, sequences):
    from sequence_data import kill_server_hard
    from test_proxy import TrackerClient, logged, started_sequences
    from tritonclient.utils import InferenceServerException
    health = (f"nginx max_fails={proxy.max_fails} fail_timeout={proxy.fail_timeout_s:g}s"
              if proxy.kind == "nginx" else
              f"haproxy check inter {proxy.check_interval_s:g}s fall 1 rise 1, observe layer4")
    print(f"\n3. Recovery ({health})")
    victim = servers[0]
    det = Detector(TritonClient(proxy.grpc_url, "ssd_mobilenet_v2_coco", shared_memory="off"),
                   DetectorConfig())
    tracker = TrackerClient(proxy.grpc_url)
    ids = list(range(5001, 5001 + sequences))
    results, stop = [], threading.Event()

    def loop():
        while not stop.is_set():
            try:
                det.detect([frame])
                results.append((time.monotonic(), True))
            except Exception:  # noqa: BLE001 - counted
                results.append((time.monotonic(), False))

    for corrid in ids:
        tracker.send(corrid, start=True)
    assert logged(servers, ids)  # log lines may trail the responses
    on_victim = started_sequences(victim) & set(ids)
    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    time.sleep(1.0)
    killed = time.monotonic()
    kill_server_hard(victim)
    while not any(ok for t, ok in results if t > killed):
        time.sleep(0.005)
    first_ok = min(t for t, ok in results if t > killed and ok) - killed
    asked, last_restart = 0, 0.0
    for corrid in ids:
        try:
            tracker.send(corrid)
        except InferenceServerException as exc:
            assert "START" in exc.message(), exc.message()
            asked += 1
            tracker.send(corrid, start=True)
            last_restart = time.monotonic() - killed
    failed = sum(1 for t, ok in results if t > killed and not ok)
    print(f"   kill -9 server 0: first detection served {first_ok * 1000:.0f} ms after; "
          f"{failed} detection request(s) failed; sequences asked for START: {asked}/{len(ids)} "
          f"(were on server 0: {len(on_victim)}); all restarted {last_restart * 1000:.0f} ms "
          f"after the kill")
    # Bring it back; nginx retries it after fail_timeout. Sequences get a frame every 0.3 s
    # meanwhile (the tracker drops a sequence idle for 5 s).
    def feed_sequences():
        asked = 0
        for corrid in ids:
            try:
                tracker.send(corrid)
            except InferenceServerException as exc:
                assert "START" in exc.message(), exc.message()
                asked += 1
                tracker.send(corrid, start=True)
        return asked

    t0 = time.monotonic()
    starter = threading.Thread(target=victim.start, kwargs={"timeout_s": 180})
    starter.start()
    asked_meanwhile = 0
    while starter.is_alive():
        asked_meanwhile += feed_sequences()
        time.sleep(0.3)
    ready = time.monotonic()
    print(f"   server 0 restarted: ready {ready - t0:.1f} s after start "
          f"(sequences asked for START meanwhile: {asked_meanwhile})")
    seen_before = len(proxy.access_records())
    back, asked_back = None, 0
    while time.monotonic() - ready < 60 and (back is None or not asked_back):
        asked_back += feed_sequences()
        records = proxy.access_records()[seen_before:]
        if back is None and any(r["upstream"] == victim.grpc_url and r["status"] == "200"
                                and r["route"] == "" for r in records):
            back = time.monotonic() - ready
        time.sleep(0.3)
    back_text = "never (60 s)" if back is None else f"{back:.1f} s"
    print(f"   proxy sends detection to server 0 again {back_text} after it was ready; "
          f"sequences asked for START again as they hash back to it: {asked_back}/{len(ids)} "
          f"(on server 0 now: {len(started_sequences(victim) & set(ids))})")
    stop.set()
    worker.join()
    tracker.close()
    det.client.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--sequences", type=int, default=16)
    parser.add_argument("--kind", choices=["nginx", "haproxy"], default="nginx")
    parser.add_argument("--parts", default="hop,detection,recovery",
                        help="comma-separated subset of hop,detection,recovery")
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="server logs (default: a fresh temp dir; the tracker's log lines "
                             "tell which server holds which sequence)")
    args = parser.parse_args(argv)
    args.log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="bench_proxy_"))
    print(f"server logs in {args.log_dir}")
    servers = [LocalTritonServer(models=["ssd_mobilenet_v2_coco", "tensor_echo_stats",
                                         "simple_tracker"],
                                 log_path=args.log_dir / f"server{i}.log")
               for i in range(2)]
    proxy = None
    try:
        for server in servers:
            server.start(timeout_s=180)
        proxy = LocalProxy([s.grpc_url for s in servers], [s.http_url for s in servers],
                           routing_header=HEADER, kind=args.kind).start()
        print(f"proxy: {args.kind}")
        frame = frame_640x480()
        parts = args.parts.split(",")
        if "hop" in parts:
            hop_cost(servers, proxy, frame, args.iterations)
        if "detection" in parts:
            detection(servers, proxy, frame, args.iterations, args.threads)
        if "recovery" in parts:
            recovery(servers, proxy, frame, args.sequences)
    finally:
        if proxy is not None:
            proxy.cleanup()
        for server in servers:
            server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
