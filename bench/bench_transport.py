#!/usr/bin/env python3
"""Transport benchmark: request round trip over HTTP, gRPC and system shared memory, and the
pre-processing cost of each resize/dtype/layout mode. One run, one table each, side by side.

Round trip: one local tritonserver (127.0.0.1, only the ``tensor_echo_stats`` model: UINT8
``[B, H, W, 3]`` in, per-channel FP32 mean out, so moving the tensor dominates). For each input
size (640x640x3 and 1920x1080x3 UINT8, batch 1) the modes HTTP, gRPC, gRPC+shm and HTTP+shm take
turns request by request (so background load hits them alike); each result is checked against
the locally computed means. Times are ``TritonClient.infer`` wall times (shm modes include the
copy into the region), ms: mean, p50, p99, and mean relative to HTTP.

Pre-processing: ``triton_ros.preprocess.Preprocessor`` on one real 1920x1080 BGR frame
(vtest.avi upscaled) to 640x640, for stretch/letterbox/center_crop x uint8/float32 x NHWC/NCHW;
ms mean and p50, and mean relative to stretch/uint8/NHWC.

    .venv/bin/python bench/bench_transport.py [--iterations 40] [--warmup 5]
"""
import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import load_avg, load_frames, machine, markdown_table, start_server  # noqa: E402
from triton_ros.preprocess import PreprocessConfig, Preprocessor  # noqa: E402
from triton_ros.client import TritonClient  # noqa: E402

MODEL = "tensor_echo_stats"
SIZES = {"640x640x3": (640, 640), "1920x1080x3": (1080, 1920)}  # name -> (H, W)
MODES = {  # name -> (protocol, shared_memory)
    "HTTP": ("http", "off"),
    "gRPC": ("grpc", "off"),
    "gRPC+shm": ("grpc", "on"),
    "HTTP+shm": ("http", "on"),
}


def source_frame(height: int, width: int) -> np.ndarray:
    """A real BGR frame (vtest.avi's first, resized)."""
    return load_frames(1, width, height)[0][0]


def stats_ms(seconds: list[float]) -> tuple[float, float, float]:
    ms = np.asarray(seconds) * 1e3
    return float(ms.mean()), float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def bench_round_trip(server, iterations: int, warmup: int) -> list[tuple]:
    clients = {}
    for mode, (protocol, shm) in MODES.items():
        url = server.grpc_url if protocol == "grpc" else server.http_url
        clients[mode] = TritonClient(url, MODEL, protocol, timeout_s=60, shared_memory=shm)
        clients[mode].wait_until_ready(60)
    rows = []
    try:
        for size, (height, width) in SIZES.items():
            frame = source_frame(height, width)[None]
            expected = np.array([cv2.mean(frame[0])[:3]], np.float32)
            times = {mode: [] for mode in MODES}
            for i in range(warmup + iterations):
                for mode, client in clients.items():
                    start = time.perf_counter()
                    got = client.infer({"frame": frame}, ["channel_mean"])["channel_mean"]
                    elapsed = time.perf_counter() - start
                    if i == 0 and not np.allclose(got, expected, rtol=1e-4):
                        raise SystemExit(f"{mode}: wrong result {got} != {expected}")
                    if i >= warmup:
                        times[mode].append(elapsed)
            for mode in MODES:
                protocol, shm = MODES[mode]
                if shm == "on" and not clients[mode].shared_memory_regions():
                    raise SystemExit(f"{mode}: shared memory was not used")
                rows.append((size, mode, *stats_ms(times[mode])))
    finally:
        for client in clients.values():
            client.close()
    return rows


def bench_preprocess(iterations: int, warmup: int) -> list[tuple]:
    frame = source_frame(1080, 1920)
    rows = []
    for resize in ("stretch", "letterbox", "center_crop"):
        for dtype in ("uint8", "float32"):
            for layout in ("NHWC", "NCHW"):
                prep = Preprocessor(PreprocessConfig(width=640, height=640, layout=layout,
                                                     dtype=dtype, resize=resize))
                times = []
                for i in range(warmup + iterations):
                    start = time.perf_counter()
                    tensor, _ = prep(frame)
                    if i >= warmup:
                        times.append(time.perf_counter() - start)
                shape = (640, 640, 3) if layout == "NHWC" else (3, 640, 640)
                assert tensor.shape == shape and tensor.dtype == np.dtype(dtype)
                mean, p50, _ = stats_ms(times)
                rows.append((resize, dtype, layout, mean, p50))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40, help="measured requests per cell")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured requests first")
    args = parser.parse_args(argv)

    described = machine()
    print(f"bench_transport: {described['cpus']} x {described['cpu_model']}, load average "
          f"{described['load_avg']} (1/5/15 min)")
    server = start_server([MODEL], REPO / "out" / "bench" / "transport_tritonserver.log")
    try:
        trips = bench_round_trip(server, args.iterations, args.warmup)
    finally:
        server.cleanup()
    print(f"Round trip, batch 1 UINT8, {args.iterations} requests per cell "
          f"(modes interleaved), ms")
    print(f"{'input':<12} {'mode':<9} {'mean':>8} {'p50':>8} {'p99':>8} {'vs HTTP':>8}")
    http = {size: mean for size, mode, mean, _, _ in trips if mode == "HTTP"}
    for size, mode, mean, p50, p99 in trips:
        print(f"{size:<12} {mode:<9} {mean:8.2f} {p50:8.2f} {p99:8.2f} "
              f"{mean / http[size]:7.2f}x")

    preps = bench_preprocess(args.iterations, args.warmup)
    base = preps[0][3]
    print()
    print(f"Pre-processing 1920x1080 BGR -> 640x640, {args.iterations} frames per cell, ms")
    print(f"{'resize':<12} {'dtype':<8} {'layout':<6} {'mean':>8} {'p50':>8} {'vs first':>9}")
    for resize, dtype, layout, mean, p50 in preps:
        print(f"{resize:<12} {dtype:<8} {layout:<6} {mean:8.2f} {p50:8.2f} {mean / base:8.2f}x")
    print()
    print(markdown_table(["input", "mode", "mean ms", "p50 ms", "p99 ms", "vs HTTP"],
                         [[size, mode, f"{mean:.2f}", f"{p50:.2f}", f"{p99:.2f}",
                           f"{mean / http[size]:.2f}x"] for size, mode, mean, p50, p99 in trips]))
    print(f"\nload average at end: {load_avg()} (1/5/15 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
