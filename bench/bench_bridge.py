#!/usr/bin/env python3
"""Bridge benchmark: what detect_node costs on top of the model, side by side in one run.

One local tritonserver (127.0.0.1) serves ``ssd_mobilenet_v2_coco`` (the real model) and
``null_detector`` (same tensors, answers at once with fixed detections). Every comparison uses
the same server, model, batch size (1) and transport (gRPC, ``shared_memory=auto`` = system shared
memory on loopback, as the node's default), on real frames (``vtest.avi`` resized).

1. **Bridge vs direct** (SSD model, 640x480 and 1920x1080 bgr8 Image):
   - *lock-step*: one frame at a time, bridge and direct interleaved frame by frame. Bridge =
     publish a sensor_msgs/Image, wait for its Detection2DArray (matched by stamp) from a
     ``detect_node`` process over DDS (``max_batch_size:=1 max_delay_ms:=0 max_in_flight:=1``);
     direct = the node's own ``Preprocessor`` + ``TritonClient.infer`` in this process (a plain
     tritonclient loop with the same pre-processing and transport, no ROS). Latency p50/p99 and
     the bridge's p50 overhead in ms.
   - *open-loop*: ``--in-flight`` requests in flight on both sides (node ``max_in_flight``; that
     many client threads), frames offered faster than the model runs (the bench keeps twice as
     many frames unanswered as there are requests in flight), alternating bridge / direct windows;
     throughput ratio bridge / direct.
2. **Ceiling** (null model): frames/s one node carries when the model costs nothing, per
   resolution (640x480, 1280x720, 1920x1080), input type (Image, CompressedImage JPEG q90) and
   1 or 4 cameras, fed closed-loop (``--window`` frames unanswered per camera).
3. **Node CPU per frame**: utime + stime of the node process over each window / frames answered.
4. ``--profile``: py-spy on the node during extra null-model windows (640x480 and 1920x1080
   Image); writes ``bench/results/profile_<res>.svg`` (flame graph) and the top functions table;
   ``--profile native`` adds C/C++ frames (``profile_native_<res>.*``).

Writes ``bench/results/bridge.json``, ``bridge.md`` (the tables) and PNG plots next to them.

    .venv/bin/python bench/bench_bridge.py [--frames 40] [--window-s 4] [--profile]
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

SSD, NULL = "ssd_mobilenet_v2_coco", "null_detector"
LOCKSTEP_RES = ("640x480", "1920x1080")
PYSPY = Path(sys.executable).parent / "py-spy"


def node_params(server, model: str, cameras: list[str], in_flight: int, batch: int,
                queue: int) -> dict:
    return {"server_url": server.grpc_url, "protocol": "grpc", "model_name": model,
            "cameras": cameras, "image_reliability": "best_effort", "shared_memory": "auto",
            "max_batch_size": batch, "max_delay_ms": 0.0, "max_in_flight": in_flight,
            "queue_size": queue, "publish_debug_image": False, "diagnostics_period_s": 1.0}


class NodeUnderTest:
    """A detect node plus the probe that feeds it; a context manager that stops both."""

    def __init__(self, ctx, tag: str, params: dict, cameras: int, compressed: bool = False,
                 module: str = "triton_ros.ros.detect_node"):
        self.ctx, self.tag = ctx, tag
        namespace = f"/bench_br_{os.getpid()}_{tag}"
        self.probe = h.Probe(namespace, cameras, tag, compressed=compressed)
        ctx.executor.add_node(self.probe.node)
        try:
            self.node = h.start_node(params, namespace, ctx.log_dir / f"node_{tag}.log",
                                     ctx.env, cameras, module=module)
            self.probe.wait_connected(self.node)
        except Exception:
            self.close()
            raise

    def close(self):
        if getattr(self, "node", None) is not None:
            self.node.stop()
        self.ctx.executor.remove_node(self.probe.node)
        self.probe.destroy()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def cpu(self) -> float:
        return h.cpu_seconds(self.node.pid)


class Direct:
    """The direct client: the node's pre-processing and client class, in this process."""

    def __init__(self, server, model: str):
        from triton_ros.detector import Detector, DetectorConfig
        from triton_ros.client import TritonClient
        self.client = TritonClient(server.grpc_url, model, "grpc", timeout_s=30.0,
                                   shared_memory="auto")
        self.client.wait_until_ready(60)
        detector = Detector(self.client, DetectorConfig())
        self.preprocess, self.input_name = detector.preprocess, detector.input_name
        self.outputs = detector.output_names

    def __call__(self, frame) -> dict:
        tensor, _ = self.preprocess(frame)
        return self.client.infer({self.input_name: tensor[None]}, self.outputs)

    def close(self):
        self.client.close()


def lockstep(ctx, server, res: str, frames: list, n: int, warmup: int) -> dict:
    raws = [[h.image_raw(f, "cam0_optical_frame") for f in frames]]
    direct = Direct(server, SSD)
    params = node_params(server, SSD, ["cam0"], in_flight=1, batch=1, queue=1)
    bridge, plain, lost = [], [], 0
    with NodeUnderTest(ctx, f"lock_{res}", params, 1) as nut:
        cpu0 = None
        for i in range(warmup + n):
            if i == warmup:
                cpu0, t0 = nut.cpu(), time.monotonic()
            frame_i = i % len(frames)
            stamp = nut.probe.publish(0, raws[0][frame_i])
            got = nut.probe.wait_answer(0, stamp, 10.0)
            if got is None:
                lost += 1
            elif i >= warmup:
                bridge.append((got - stamp) / 1e6)
            start = time.perf_counter()
            out = direct(frames[frame_i])
            if i >= warmup:
                plain.append((time.perf_counter() - start) * 1e3)
            assert out["detection_boxes"].shape[0] == 1
        cpu = nut.cpu() - cpu0
        elapsed = time.monotonic() - t0
    direct.close()
    answered = len(bridge)
    return {"resolution": res, "frames": n, "lost": lost,
            "bridge_p50_ms": h.pct(bridge, 50), "bridge_p99_ms": h.pct(bridge, 99),
            "direct_p50_ms": h.pct(plain, 50), "direct_p99_ms": h.pct(plain, 99),
            "overhead_p50_ms": h.pct(bridge, 50) - h.pct(plain, 50),
            "node_cpu_ms_per_frame": 1e3 * cpu / answered if answered else None,
            "node_cpu_pct": 100 * cpu / elapsed}


def direct_open_loop(direct: Direct, frames: list, threads: int, duration_s: float) -> dict:
    counts, stop = [0] * threads, threading.Event()

    def loop(k):
        i = k
        while not stop.is_set():
            direct(frames[i % len(frames)])
            counts[k] += 1
            i += threads
    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    start = time.monotonic()
    for w in workers:
        w.start()
    time.sleep(duration_s)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - start
    return {"answered": sum(counts), "window_s": elapsed}


def open_loop(ctx, server, res: str, frames: list, in_flight: int, duration_s: float,
              rounds: int) -> dict:
    raws = [[h.image_raw(f, "cam0_optical_frame") for f in frames]]
    direct = Direct(server, SSD)
    params = node_params(server, SSD, ["cam0"], in_flight=in_flight, batch=1,
                         queue=2 * in_flight)
    bridge_fps, direct_fps = [], []
    with NodeUnderTest(ctx, f"open_{res}", params, 1) as nut:
        h.feed_window(nut.probe, raws, 2 * in_flight, 1.5)              # warm-up
        direct_open_loop(direct, frames, in_flight, 1.0)
        for _ in range(rounds):  # alternate, so background load hits both alike
            r = h.feed_window(nut.probe, raws, 2 * in_flight, duration_s)
            bridge_fps.append(r["answered"] / r["window_s"])
            r = direct_open_loop(direct, frames, in_flight, duration_s)
            direct_fps.append(r["answered"] / r["window_s"])
    direct.close()
    b, d = sum(bridge_fps) / rounds, sum(direct_fps) / rounds
    return {"resolution": res, "in_flight": in_flight, "bridge_fps": b, "direct_fps": d,
            "ratio": h.ratio(b, d), "bridge_fps_rounds": bridge_fps,
            "direct_fps_rounds": direct_fps}


def measure_window(nut: NodeUnderTest, raws, window: int, duration_s: float) -> dict:
    h.feed_window(nut.probe, raws, window, 1.0)  # warm-up (new resolution: new shapes)
    cpu0 = nut.cpu()
    r = h.feed_window(nut.probe, raws, window, duration_s)
    cpu = nut.cpu() - cpu0
    fps = r["answered"] / r["window_s"]
    return {"fps": fps, "answered": r["answered"], "lost": r["lost"],
            "p50_ms": h.pct(r["latencies_ms"], 50), "p99_ms": h.pct(r["latencies_ms"], 99),
            "node_cpu_ms_per_frame": 1e3 * cpu / r["answered"] if r["answered"] else None,
            "node_cpu_pct": 100 * cpu / r["window_s"]}


def profile(nut: NodeUnderTest, raws, window: int, duration_s: float, res: str,
            native: bool = False) -> dict:
    """py-spy on the node while it carries the null model's ceiling: SVG + collapsed stacks.

    ``native``: with C/C++ frames (``py-spy --native``, which pauses the process per sample):
    ``profile_native_<res>.*``, to see where time goes below Python (rmw, Fast DDS, libc)."""
    out = {}
    for fmt_name, suffix in (("flamegraph", "svg"), ("raw", "txt")):
        path = h.RESULTS / f"profile{'_native' if native else ''}_{res}.{suffix}"
        spy = subprocess.Popen([str(PYSPY), "record", "--pid", str(nut.node.pid), "--rate", "200",
                                "--duration", str(int(duration_s)), "--format", fmt_name,
                                "--native" if native else "--nonblocking", "-o", str(path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        h.feed_window(nut.probe, raws, window, duration_s + 1.0)
        _, err = spy.communicate(timeout=60)
        if spy.returncode != 0:
            raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
        out[suffix] = path
    return {"svg": str(out["svg"].relative_to(h.REPO)),
            "top": top_functions(out["txt"].read_text())}


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def top_functions(collapsed: str, limit: int = 20) -> list[dict]:
    """Inclusive and self share of samples per function from py-spy's collapsed stacks."""
    inclusive, own, total = collections.Counter(), collections.Counter(), 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        count = int(count)
        total += count
        names = []
        for frame in stack.split(";"):
            m = _FRAME.match(frame.strip())
            name = (f"{m['func']} ({Path(m['file']).name})" if m else frame.strip())
            names.append(name)
        for name in set(names[1:] if names[0].startswith("process ") else names):
            inclusive[name] += count
        own[names[-1]] += count
    # Sorted by self time: where the samples actually are (wrappers have ~0 self time).
    return [{"function": name, "self_pct": 100 * n / total,
             "inclusive_pct": 100 * inclusive[name] / total} for name, n in own.most_common(limit)]


def ceiling(ctx, server, frames_by_res, window: int, duration_s: float, cams: list[int],
            do_profile: str, inputs=("image", "compressed")) -> tuple[list, dict]:
    rows, profiles = [], {}
    for compressed in [kind == "compressed" for kind in inputs]:
        for n in cams:
            kind = "CompressedImage" if compressed else "Image"
            params = node_params(server, NULL, [f"cam{i}" + (":compressed" if compressed else "")
                                                for i in range(n)],
                                 in_flight=2, batch=0, queue=window)
            tag = f"ceil_{'c' if compressed else 'i'}{n}"
            with NodeUnderTest(ctx, tag, params, n, compressed=compressed) as nut:
                for res, frames in frames_by_res.items():
                    make = h.compressed_raw if compressed else h.image_raw
                    raws = [[make(frames[(c * 3 + k) % len(frames)], f"cam{c}_optical_frame")
                             for k in range(6)] for c in range(n)]
                    h.check_stamp_patch(raws[0][0], nut.probe.msg_type)
                    r = measure_window(nut, raws, window, duration_s)
                    r.update({"resolution": res, "input": kind, "cameras": n,
                              "load_1m": h.load_avg()[0]})
                    rows.append(r)
                    print(f"  ceiling {kind} x{n} {res}: {r['fps']:.0f} frames/s, node CPU "
                          f"{h.fmt(r['node_cpu_ms_per_frame'], 2)} ms/frame, p50 "
                          f"{h.fmt(r['p50_ms'])} ms", flush=True)
                    if do_profile and not compressed and n == 1 and res in LOCKSTEP_RES:
                        profiles[res] = profile(nut, raws, window, duration_s, res,
                                                native=do_profile == "native")
    return rows, profiles


def report(result: dict) -> str:
    m = result["machine"]
    out = [f"Machine: {m['cpus']} x {m['cpu_model']}, load average {m['load_avg']} at start, "
           f"{result['load_avg_end']} at end (1/5/15 min). Run took {result['run_s']:.0f} s.", ""]
    out += ["Bridge vs direct, lock-step (SSD model, batch 1, one frame at a time, interleaved), "
            "latency ms:", ""]
    out.append(h.markdown_table(
        ["input", "bridge p50", "direct p50", "overhead p50", "bridge p99", "direct p99",
         "node CPU ms/frame"],
        [[r["resolution"], r["bridge_p50_ms"], r["direct_p50_ms"], r["overhead_p50_ms"],
          r["bridge_p99_ms"], r["direct_p99_ms"], h.fmt(r["node_cpu_ms_per_frame"], 2)]
         for r in result["lockstep"]]))
    out += ["", "Bridge vs direct, open-loop (SSD model, same requests in flight), frames/s:", ""]
    out.append(h.markdown_table(
        ["input", "in flight", "bridge", "direct", "bridge / direct"],
        [[r["resolution"], str(r["in_flight"]), r["bridge_fps"], r["direct_fps"],
          h.fmt(r["ratio"], 2)] for r in result["open_loop"]]))
    out += ["", "Ceiling with the null model (closed-loop feeding), per node:", ""]
    out.append(h.markdown_table(
        ["input", "cameras", "resolution", "frames/s", "p50 ms", "node CPU ms/frame",
         "node CPU %", "load 1m"],
        [[r["input"], str(r["cameras"]), r["resolution"], r["fps"], r["p50_ms"],
          h.fmt(r["node_cpu_ms_per_frame"], 2), r["node_cpu_pct"], h.fmt(r["load_1m"], 2)]
         for r in result["ceiling"]]))
    for res, prof in result.get("profiles", {}).items():
        out += ["", f"Profile of the node, null model, {res} Image, 1 camera ({prof['svg']}); "
                "share of py-spy samples of non-idle threads (a thread blocked in C, e.g. gRPC or "
                "the executor's wait, counts as busy), top functions by self time:", ""]
        out.append(h.markdown_table(["function", "self %", "inclusive %"],
                                    [[p["function"], p["self_pct"], p["inclusive_pct"]]
                                     for p in prof["top"]]))
    return "\n".join(out)


def plots(result: dict) -> list[str]:
    paths = []
    ceil = result["ceiling"]
    groups = [f"{r['input'][:5]} x{r['cameras']}" for r in ceil if r["resolution"] == "640x480"]
    series = {res: [r["fps"] for r in ceil if r["resolution"] == res]
              for res in h.RESOLUTIONS if any(r["resolution"] == res for r in ceil)}
    p = h.RESULTS / "bridge_ceiling.png"
    h.plot_bars(p, "Null-model ceiling of one detect_node", groups, series, "frames/s")
    paths.append(p)
    series = {res: [r["node_cpu_ms_per_frame"] for r in ceil if r["resolution"] == res]
              for res in series}
    p = h.RESULTS / "bridge_node_cpu.png"
    h.plot_bars(p, "Node CPU per frame (null model)", groups, series, "ms CPU / frame")
    paths.append(p)
    lock = result["lockstep"]
    p = h.RESULTS / "bridge_lockstep.png"
    h.plot_bars(p, "Lock-step latency p50, SSD model", [r["resolution"] for r in lock],
                {"direct": [r["direct_p50_ms"] for r in lock],
                 "bridge": [r["bridge_p50_ms"] for r in lock]}, "ms")
    paths.append(p)
    return [str(p.relative_to(h.REPO)) for p in paths]


class Context:
    def __init__(self, env, executor, log_dir):
        self.env, self.executor, self.log_dir = env, executor, log_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="lock-step frames per resolution")
    parser.add_argument("--warmup", type=int, default=5, help="lock-step warm-up frames")
    parser.add_argument("--in-flight", type=int, default=2, help="open-loop requests in flight")
    parser.add_argument("--open-s", type=float, default=4.0, help="open-loop window, s")
    parser.add_argument("--rounds", type=int, default=2, help="open-loop bridge/direct rounds")
    parser.add_argument("--window-s", type=float, default=4.0, help="ceiling window, s")
    parser.add_argument("--window", type=int, default=4, help="unanswered frames per camera")
    parser.add_argument("--cameras", default="1,4")
    parser.add_argument("--resolutions", default=",".join(h.RESOLUTIONS))
    parser.add_argument("--inputs", default="image,compressed", help="ceiling input types")
    parser.add_argument("--skip", default="", help="parts to skip: lockstep,open,ceiling")
    parser.add_argument("--profile", nargs="?", const="python", default="",
                        choices=("python", "native"),
                        help="py-spy the node (ceiling); 'native' adds C/C++ frames")
    parser.add_argument("--out", type=Path, default=h.RESULTS / "bridge.json")
    args = parser.parse_args(argv)
    started = time.monotonic()
    skip = set(filter(None, args.skip.split(",")))
    env = h.ros_env()
    log_dir = h.REPO / "out" / "bench" / "bridge_logs"
    result = {"benchmark": "bridge", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "machine": h.machine(), "settings": vars(args) | {"out": str(args.out)}}
    print(f"bench_bridge: {result['machine']}", flush=True)
    resolutions = [r for r in args.resolutions.split(",") if r]
    frames_by_res = {res: h.load_frames(12, *h.RESOLUTIONS[res])[0] for res in resolutions}
    server = h.start_server([SSD, NULL], log_dir / "tritonserver.log")
    try:
        with h.Executor() as executor:
            ctx = Context(env, executor, log_dir)
            result["lockstep"], result["open_loop"] = [], []
            for res in LOCKSTEP_RES:
                if res not in frames_by_res:
                    continue
                if "lockstep" not in skip:
                    r = lockstep(ctx, server, res, frames_by_res[res], args.frames, args.warmup)
                    print(f"  lock-step {res}: bridge p50 {r['bridge_p50_ms']:.1f} ms, direct "
                          f"{r['direct_p50_ms']:.1f} ms, node CPU "
                          f"{h.fmt(r['node_cpu_ms_per_frame'], 2)} ms/frame", flush=True)
                    result["lockstep"].append(r)
                if "open" not in skip:
                    r = open_loop(ctx, server, res, frames_by_res[res], args.in_flight,
                                  args.open_s, args.rounds)
                    print(f"  open-loop {res}: bridge {r['bridge_fps']:.1f} frames/s, direct "
                          f"{r['direct_fps']:.1f} (x{r['ratio']:.2f})", flush=True)
                    result["open_loop"].append(r)
            result["ceiling"], result["profiles"] = ([], {}) if "ceiling" in skip else ceiling(
                ctx, server, frames_by_res, args.window, args.window_s,
                [int(c) for c in args.cameras.split(",")], args.profile,
                [i for i in args.inputs.split(",") if i])
    finally:
        server.cleanup()
    result["load_avg_end"] = h.load_avg()
    result["run_s"] = time.monotonic() - started
    if result["ceiling"] and result["lockstep"] and result["open_loop"]:
        result["plots"] = plots(result)
    text = report(result)
    print()
    print(text)
    h.write_json(args.out, result)
    args.out.with_suffix(".md").write_text(text + "\n")
    print(f"\nwrote {args.out} and {args.out.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
