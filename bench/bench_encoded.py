"""Tensor path vs encoded path (issue 19): bytes on the wire, client CPU, latency, server CPU,
and frames/s through a rate-limited link, for SSD and YOLOv4-tiny, two resolutions, raw Image
and CompressedImage input, all in one run against one local tritonserver.

    .venv/bin/python bench/bench_encoded.py            # ~6 min; bench/results/encoded.{json,md}
    .venv/bin/python bench/bench_encoded.py --node-ab DIR   # node CPU, this tree vs DIR, ~4 min

Paths (per frame, lock-step: one request in flight):
- tensor: the robot decodes a CompressedImage's JPEG (a raw Image is used as is), resizes and
  scales it (``Preprocessor``), sends the tensor, gets raw outputs back and decodes them
  (TF-OD, or YOLO heads + NMS) — what ``detect_node`` does with ``ssd_mobilenet_v2_coco`` /
  ``yolov4_tiny_coco``.
- encoded: a CompressedImage's JPEG is sent untouched; a raw Image is JPEG-encoded first
  (quality 90, the node's default); the ``*_encoded`` ensemble answers final boxes.
Clients (``--client``): ``direct`` = :class:`triton_ros.detector.Detector` in this process (the
code the node runs for the inference part, without ROS); ``node`` = a ``detect_node`` process fed
over DDS by a probe (``bench_bridge.NodeUnderTest``), with only ``model_name`` set besides the
connection (the model's ``triton_ros.*`` parameters do the rest), ``max_batch_size:=1
max_in_flight:=1``. Shared memory is off (a remote server); gRPC.

Measured:
- bytes up / down per frame: counted on the wire by :mod:`triton_ros.tools.tcp_relay` between
  client and server (gRPC/HTTP2 framing included), over the lock-step window.
- client CPU per frame: ``direct``: this process's CPU time (``time.process_time``) over the
  window / frames (the relays run in a child process, so they are not in it); ``node``: the
  node process's utime + stime over the window / frames answered.
- server CPU per frame: utime + stime of tritonserver and its python-backend stubs.
- latency p50 / p99 (ms), lock-step, unshaped link.
- server time per frame by model (Triton's own statistics, ``compute_infer``): the pre- and
  post-processing steps and the detector.
- frames/s through a link limited to 100 and 20 Mbit/s each way: the relay's token bucket
  (not tc: no namespace needed), lock-step.
"""
import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (RESULTS, fmt, group_cpu_seconds, load_frames, machine,  # noqa: E402
                     markdown_table, pct, ratio, server_pids, start_server, write_json)

MODELS = {"ssd": ("ssd_mobilenet_v2_coco", "ssd_mobilenet_v2_coco_encoded"),
          "yolo": ("yolov4_tiny_coco", "yolov4_tiny_coco_encoded")}
RATES_MBIT = (0, 100, 20)
CAMERA_JPEG_QUALITY = 80    # what the camera driver publishes (the baseline: q80)
ROBOT_JPEG_QUALITY = 90     # what the robot encodes raw Images with (node default)
LOGS = RESULTS.parents[1] / "out" / "bench" / "encoded_logs"


def _relay_process(upstream: str, rates, conn) -> None:
    """Child process: one TcpRelay per rate; answers ("urls"|"counts"|"reset", rate) on conn."""
    from triton_ros.tools.tcp_relay import TcpRelay
    relays = {rate: TcpRelay(upstream, rate_mbit=rate) for rate in rates}
    while True:
        command, rate = conn.recv()
        if command == "stop":
            break
        if command == "urls":
            conn.send({r: relay.url for r, relay in relays.items()})
        elif command == "counts":
            conn.send(relays[rate].counts())
        elif command == "reset":
            relays[rate].reset()
            conn.send(None)
    for relay in relays.values():
        relay.close()


class Relays:
    def __init__(self, upstream: str):
        self.conn, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(target=_relay_process,
                                               args=(upstream, RATES_MBIT, child), daemon=True)
        self.process.start()
        self.urls = self._ask("urls")

    def _ask(self, command, rate=0):
        self.conn.send((command, rate))
        return self.conn.recv()

    def counts(self, rate):
        return self._ask("counts", rate)

    def reset(self, rate):
        self._ask("reset", rate)

    def close(self):
        self.conn.send(("stop", 0))
        self.process.join(5)


def make_detector(url: str, model: str):
    from triton_ros.client.client import TritonClient
    from triton_ros.decoders import TfodOutputs, YoloOutputs
    from triton_ros.detector import Detector, DetectorConfig
    from triton_ros.model_parameters import merge_model_parameters
    client = TritonClient(url, model, timeout_s=120.0, shared_memory="off")
    spec = client.model_spec()
    # What a node with only model_name set runs: node defaults + the model's triton_ros.*.
    values = {"decoder": "tfod", "tfod_box_format": "yxyx", "tfod_normalized_boxes": True,
              "tfod_class_offset": 1, "input_kind": "", "yolo_version": "v8",
              "resize": "stretch", "scaling": "NONE", "yolo_iou_threshold": 0.45}
    v, _ = merge_model_parameters(values, set(), spec.parameters, model)
    cfg = DetectorConfig(decoder=v["decoder"], resize=v["resize"], scaling=v["scaling"],
                         tfod=TfodOutputs(box_format=v["tfod_box_format"],
                                          normalized=v["tfod_normalized_boxes"],
                                          class_offset=v["tfod_class_offset"]),
                         yolo=YoloOutputs(version=v["yolo_version"],
                                          iou_threshold=v["yolo_iou_threshold"]))
    return Detector(client, cfg, spec)


def one_frame(detector, path: str, source: str, frame, jpeg: bytes):
    """What the robot does for one frame on ``path`` given a ``source`` (image|compressed)."""
    import cv2
    import numpy as np
    if path == "tensor":
        if source == "compressed":
            frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        return detector.detect([frame])[0]
    if source == "image":
        jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, ROBOT_JPEG_QUALITY])[1]
        jpeg = jpeg.tobytes()
    return detector.detect_encoded([jpeg])[0]


def compute_ms(stats_client, models) -> dict:
    """Triton's cumulative compute_infer time (ms) and request count per model."""
    out = {}
    for model in models:
        stats_client.model_name = model
        for entry in stats_client.inference_statistics()["model_stats"]:
            infer = entry["inference_stats"]["compute_infer"]
            out[model] = (int(infer.get("ns", 0)) / 1e6, int(infer.get("count", 0)))
    return out


def lockstep(detector, path, source, frames, jpegs, relays, rate, server, count=None,
             max_s=None, stats=None):
    """Run frames one at a time through the relay of ``rate``; returns the window's figures.
    ``stats``: (a TritonClient for statistics, model names) to report server time per model."""
    relays.reset(rate)
    before = compute_ms(*stats) if stats else {}
    pids = server_pids(server)
    server_cpu, cpu = group_cpu_seconds(pids), time.process_time()
    latencies, start, n = [], time.monotonic(), 0
    while (count is None or n < count) and (max_s is None or time.monotonic() - start < max_s):
        index = n % len(frames)
        t0 = time.perf_counter()
        one_frame(detector, path, source, frames[index], jpegs[index])
        latencies.append((time.perf_counter() - t0) * 1000)
        n += 1
    elapsed = time.monotonic() - start
    cpu = time.process_time() - cpu
    server_cpu = group_cpu_seconds(pids) - server_cpu
    up, down = relays.counts(rate)
    steps = {}
    for model, (ms, requests) in (compute_ms(*stats) if stats else {}).items():
        done = requests - before[model][1]
        steps[model] = (ms - before[model][0]) / done if done else None
    return {"steps_ms": steps, "frames": n, "fps": n / elapsed, "up_kib": up / n / 1024, "down_kib": down / n / 1024,
            "client_cpu_ms": cpu / n * 1000, "server_cpu_ms": server_cpu / n * 1000,
            "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99)}


def thread_cpu(pid: int) -> dict:
    """CPU seconds (utime + stime) per thread name of process ``pid`` (threads of one name
    summed): where a node's CPU goes below Python too (DDS, gRPC and executor threads)."""
    import harness as h
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        if task.name == str(pid):
            name += " (main thread: rclpy executor)"
        fields = text[text.rindex(")") + 2:].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / h.CLK_TCK
    return out


def node_lockstep(ctx, relays, rate, server, model, source, raws, duration_s, tag, stats=None,
                  module="triton_ros.ros.detect_node", spy=None):
    """The node variant of :func:`lockstep`: a detect_node (``module``) on the relay of
    ``rate``, one frame in flight (the probe waits for each answer), for ``duration_s``.
    ``spy``: (py-spy executable, output path): the node profiled over the window as well."""
    import harness as h
    from bench_bridge import NodeUnderTest, node_params
    params = node_params(server, model, ["cam0" + (":compressed" if source == "compressed"
                                                   else "")], in_flight=1, batch=1, queue=1)
    params.update(server_url=relays.urls[rate], shared_memory="'off'",  # YAML: a string
                  request_timeout_s=60.0)
    with NodeUnderTest(ctx, tag, params, 1, compressed=source == "compressed",
                       module=module) as nut:
        h.feed_window(nut.probe, [raws], 1, 2.0, stop_after_s=30.0)  # warm-up
        relays.reset(rate)
        before = compute_ms(*stats) if stats else {}
        pids = server_pids(server)
        spying = spy and subprocess.Popen(
            [spy[0], "record", "--pid", str(nut.node.pid), "--rate", "200", "--duration",
             str(int(duration_s)), "--format", "raw", "--nonblocking", "-o", str(spy[1])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu, server_cpu, threads = nut.cpu(), group_cpu_seconds(pids), thread_cpu(nut.node.pid)
        window = h.feed_window(nut.probe, [raws], 1, duration_s, stop_after_s=30.0)
        cpu, server_cpu = nut.cpu() - cpu, group_cpu_seconds(pids) - server_cpu
        threads = {name: seconds - threads.get(name, 0.0)
                   for name, seconds in thread_cpu(nut.node.pid).items()}
        up, down = relays.counts(rate)
        if spying:
            spying.wait(timeout=60)
    n = max(1, window["answered"])
    steps = {}
    for model_name, (ms, requests) in (compute_ms(*stats) if stats else {}).items():
        done = requests - before[model_name][1]
        steps[model_name] = (ms - before[model_name][0]) / done if done else None
    lat = window["latencies_ms"]
    return {"steps_ms": steps, "frames": window["answered"], "lost": window["lost"],
            "thread_cpu_ms": {k: v / n * 1000 for k, v in threads.items()},
            "fps": window["answered"] / window["window_s"], "up_kib": up / n / 1024,
            "down_kib": down / n / 1024, "client_cpu_ms": cpu / n * 1000,
            "server_cpu_ms": server_cpu / n * 1000, "p50_ms": pct(lat, 50),
            "p99_ms": pct(lat, 99)}


def run_nodes(args, server, relays, stats_client, report):
    """``--client node``: every case with a detect_node process per (case, link rate)."""
    import cv2
    import harness as h
    env = h.ros_env()
    log_dir = LOGS
    log_dir.mkdir(parents=True, exist_ok=True)

    class Context:
        pass
    with h.Executor() as executor:
        ctx = Context()
        ctx.env, ctx.executor, ctx.log_dir = env, executor, log_dir
        for res in args.resolutions.split(","):
            w, h_ = (int(v) for v in res.split("x"))
            frames, report["frames"] = load_frames(10, w, h_)
            raw = {"image": [h.image_raw(f, "cam0") for f in frames],
                   "compressed": [h.compressed_raw(f, "cam0", CAMERA_JPEG_QUALITY)
                                  for f in frames]}
            jpeg_kib = sum(len(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY,
                                                        CAMERA_JPEG_QUALITY])[1])
                           for f in frames) / len(frames) / 1024
            for kind in args.models.split(","):
                for source in ("image", "compressed"):
                    for path, model in zip(("tensor", "encoded"), MODELS[kind]):
                        steps = ([MODELS[kind][0]] if path == "tensor" else
                                 [MODELS[kind][1] + "_pre", MODELS[kind][0],
                                  MODELS[kind][1] + "_post"])
                        tag = f"{kind}_{res}_{source}_{path}"
                        case = {"model": kind, "resolution": res, "input": source,
                                "path": path, "client": "node", "jpeg_kib": jpeg_kib}
                        case.update(node_lockstep(ctx, relays, 0, server, model, source,
                                                  raw[source], args.node_s, tag,
                                                  (stats_client, steps)))
                        for rate in RATES_MBIT[1:]:
                            shaped = node_lockstep(ctx, relays, rate, server, model, source,
                                                   raw[source], args.link_s,
                                                   f"{tag}_{rate}")
                            case[f"fps_{rate}mbit"] = shaped["fps"]
                        print(case, flush=True)
                        report["cases"].append(case)


def run_node_ab(args, server, relays, report):
    """``--node-ab DIR``: node CPU per frame for one case (``--ab-case``, default the 1080p
    CompressedImage -> YOLO encoded ensemble), this tree's node and the one in DIR (a copy of
    another commit, run through ``node_from_source``) alternating, ``--ab-pairs`` pairs of
    ``--node-s`` windows each, so both see the same load. ``--spy``: py-spy one more window of
    each (collapsed stacks in bench/results/encoded_profile_<variant>.txt)."""
    import harness as h
    from bench_bridge import top_functions
    kind, res, source = args.ab_case.split(",")
    w, h_ = (int(v) for v in res.split("x"))
    frames, report["frames"] = load_frames(10, w, h_)
    raws = ([h.compressed_raw(f, "cam0", CAMERA_JPEG_QUALITY) for f in frames]
            if source == "compressed" else [h.image_raw(f, "cam0") for f in frames])
    env = h.ros_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(Path(__file__).resolve().parent),
                                                    env.get("PYTHONPATH", "")) if p)
    variants = {"after": ("triton_ros.ros.detect_node",
                          dict(env, **dict(kv.split("=", 1) for kv in args.ab_env))),
                "before": ("node_from_source", dict(env, TRITON_ROS_NODE_SOURCE=args.node_ab))}
    LOGS.mkdir(parents=True, exist_ok=True)
    model = MODELS[kind][1]
    runs = {name: [] for name in variants}
    with h.Executor() as executor:
        ctx = type("Context", (), {})()
        ctx.executor, ctx.log_dir = executor, LOGS
        for pair in range(args.ab_pairs):
            order = list(variants) if pair % 2 == 0 else list(reversed(variants))
            for name in order:
                ctx.env = variants[name][1]
                result = node_lockstep(ctx, relays, 0, server, model, source, raws, args.node_s,
                                       f"ab_{name}_{pair}", module=variants[name][0])
                result["load_avg"] = list(os.getloadavg())
                runs[name].append(result)
                print(name, pair, {k: result[k] for k in ("frames", "client_cpu_ms", "p50_ms",
                                                          "load_avg")}, flush=True)
        profiles = {}
        if args.spy:
            for name, (module, env_) in variants.items():
                ctx.env = env_
                path = RESULTS / f"encoded_profile_{name}.txt"
                node_lockstep(ctx, relays, 0, server, model, source, raws, args.node_s,
                              f"ab_{name}_spy", module=module, spy=(args.spy, path))
                profiles[name] = top_functions(path.read_text(), limit=25)
    report["ab"] = {"case": args.ab_case, "model": model, "before_source": "--node-ab copy",
                    "runs": runs, "profiles": profiles}


def ab_table(report) -> str:
    """Markdown: per variant, node CPU ms/frame per window (median, min-max) and latency."""
    ab = report["ab"]
    rows = []
    for name, runs in ab["runs"].items():
        cpu = [r["client_cpu_ms"] for r in runs]
        rows.append([name, len(runs), sum(r["frames"] for r in runs),
                     f"{statistics.median(cpu):.2f}", f"{min(cpu):.2f}-{max(cpu):.2f}",
                     " ".join(f"{c:.2f}" for c in cpu),
                     fmt(statistics.median([r["p50_ms"] for r in runs if r["p50_ms"]] or [0])),
                     f"{statistics.median(r['load_avg'][0] for r in runs):.2f}"])
    text = (f"Case: {ab['case']} ({ab['model']}), one frame in flight, node CPU = utime + stime "
            f"of the node process over each window / frames answered. Machine: "
            f"{report['machine_start']}; load at end {report['machine_end']['load_avg']}\n\n")
    text += markdown_table(["node", "windows", "frames", "node CPU ms/frame (median)",
                            "min-max", "per window", "p50 ms (median)", "load avg 1 min"],
                           rows)
    names = sorted({t for runs in ab["runs"].values() for r in runs for t in r["thread_cpu_ms"]})
    text += ("\n\nNode CPU ms/frame by thread (median over the windows; threads named by "
             "/proc/<pid>/task/*/comm, CPU time has 10 ms ticks):\n\n" + markdown_table(
                 ["thread", *ab["runs"]],
                 [[t, *(f"{statistics.median(r['thread_cpu_ms'].get(t, 0.0) for r in runs):.2f}"
                        for runs in ab["runs"].values())] for t in names]))
    for name, top in ab.get("profiles", {}).items():
        text += (f"\n\npy-spy, {name} (share of samples of non-idle threads; top by self):\n\n"
                 + markdown_table(["function", "self %", "inclusive %"],
                                  [[t["function"], f"{t['self_pct']:.1f}",
                                    f"{t['inclusive_pct']:.1f}"] for t in top]))
    return text + "\n"


def main(argv=None):
    import cv2
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="lock-step frames per case")
    parser.add_argument("--link-s", type=float, default=6.0, help="seconds per shaped window")
    parser.add_argument("--models", default="ssd,yolo")
    parser.add_argument("--resolutions", default="640x480,1920x1080")
    parser.add_argument("--out", default=str(RESULTS / "encoded"))
    parser.add_argument("--client", choices=("direct", "node"), default="direct")
    parser.add_argument("--node-s", type=float, default=8.0, help="node mode: unshaped window")
    parser.add_argument("--tables-from", default="", help="only rewrite the tables of a JSON")
    parser.add_argument("--node-ab", default="", metavar="DIR",
                        help="node CPU, this tree vs the source tree DIR, alternating")
    parser.add_argument("--ab-case", default="yolo,1920x1080,compressed",
                        help="--node-ab: model,resolution,image|compressed (encoded path)")
    parser.add_argument("--ab-pairs", type=int, default=4, help="--node-ab: window pairs")
    parser.add_argument("--ab-env", action="append", default=[], metavar="KEY=VALUE",
                        help="--node-ab: environment of this tree's node only")
    parser.add_argument("--spy", default="", help="--node-ab: py-spy executable to profile with")
    args = parser.parse_args(argv)
    if args.tables_from:
        import json
        write_tables(json.loads(Path(args.tables_from).read_text()), args.out)
        return
    report = {"machine_start": machine(), "cases": []}
    if args.node_ab:
        return node_ab_main(args, report)
    models = [m for kind in args.models.split(",") for m in MODELS[kind]]
    server = start_server(models, LOGS / "tritonserver.log")
    relays = Relays(server.grpc_url)
    from triton_ros.client.client import TritonClient
    stats_client = TritonClient(server.grpc_url, "", timeout_s=30.0)
    try:
        if args.client == "node":
            run_nodes(args, server, relays, stats_client, report)
            return
        detectors = {(kind, path, rate): make_detector(relays.urls[rate], model)
                     for kind in args.models.split(",")
                     for path, model in zip(("tensor", "encoded"), MODELS[kind])
                     for rate in RATES_MBIT}
        for res in args.resolutions.split(","):
            w, h = (int(v) for v in res.split("x"))
            frames, origin = load_frames(10, w, h)
            jpegs = [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY,
                                              CAMERA_JPEG_QUALITY])[1].tobytes() for f in frames]
            report["frames"] = origin
            for kind in args.models.split(","):
                for source in ("image", "compressed"):
                    for path in ("tensor", "encoded"):
                        detector = detectors[(kind, path, 0)]
                        lockstep(detector, path, source, frames, jpegs, relays, 0, server,
                                 count=3)  # warm-up
                        case = {"model": kind, "resolution": res, "input": source, "path": path,
                                "jpeg_kib": sum(map(len, jpegs)) / len(jpegs) / 1024}
                        steps = ([MODELS[kind][0]] if path == "tensor" else
                                 [MODELS[kind][1] + "_pre", MODELS[kind][0],
                                  MODELS[kind][1] + "_post"])
                        case.update(lockstep(detector, path, source, frames, jpegs, relays, 0,
                                             server, count=args.frames,
                                             stats=(stats_client, steps)))
                        for rate in RATES_MBIT[1:]:
                            shaped = lockstep(detectors[(kind, path, rate)], path, source,
                                              frames, jpegs, relays, rate, server,
                                              max_s=args.link_s)
                            case[f"fps_{rate}mbit"] = shaped["fps"]
                        case["client"] = "direct"
                        print(case, flush=True)
                        report["cases"].append(case)
    finally:
        relays.close()
        server.cleanup()
        report["machine_end"] = machine()
        if report["cases"]:
            write_tables(report, args.out)


def node_ab_main(args, report) -> None:
    """``--node-ab``: one server with the case's ensemble; results in ``<out>_ab.{json,md}``."""
    kind = args.ab_case.split(",")[0]
    models = [MODELS[kind][0], MODELS[kind][1]]
    server = start_server(models, LOGS / "tritonserver.log")
    relays = Relays(server.grpc_url)
    try:
        run_node_ab(args, server, relays, report)
    finally:
        relays.close()
        server.cleanup()
        report["machine_end"] = machine()
    write_json(Path(args.out + "_ab.json"), report)
    Path(args.out + "_ab.md").write_text(ab_table(report))
    print(ab_table(report))


def link_fps(case, mbit) -> float:
    """Frames/s one link of ``mbit`` carries (computed from the counted bytes; up and down
    share it, as on Wi-Fi)."""
    return mbit * 1e6 / 8 / ((case["up_kib"] + case["down_kib"]) * 1024)


def sizing_table(report, camera_fps: float = 15.0, link_mbit: float = 100.0) -> str:
    """Cameras at ``camera_fps`` that one link and one server (this machine's cores) carry."""
    cores = report["machine_start"]["cpus"]
    rows = []
    for case in report["cases"]:
        link = link_fps(case, link_mbit) / camera_fps
        server = cores * 1000.0 / case["server_cpu_ms"] / camera_fps
        rows.append([case["model"], case["resolution"], case["input"], case["path"],
                     fmt(case["up_kib"] + case["down_kib"]), fmt(link), fmt(server),
                     fmt(min(link, server))])
    return (f"Cameras at {camera_fps:g} frames/s per {link_mbit:g} Mbit/s link (up + down "
            f"sharing it) and per server ({cores} CPU cores, from the server CPU per frame):\n\n"
            + markdown_table(["model", "frames", "input", "path", "KiB/frame", "cameras per link",
                              "cameras per server", "cameras (both)"], rows))


def write_tables(report, out):
    rows = []
    cases = report["cases"]
    for case in cases:
        tensor = next(c for c in cases if c["path"] == "tensor" and all(
            c[k] == case[k] for k in ("model", "resolution", "input")))
        total = case["up_kib"] + case["down_kib"]
        rows.append([case["model"], case["resolution"], case["input"], case["path"],
                     fmt(case["up_kib"]), fmt(case["down_kib"], 2),
                     fmt(ratio(tensor["up_kib"] + tensor["down_kib"], total)) + "x",
                     fmt(case["client_cpu_ms"]), fmt(case["p50_ms"]), fmt(case["p99_ms"]),
                     fmt(case["server_cpu_ms"]),
                     " / ".join(fmt(v) for v in case.get("steps_ms", {}).values()) or "-",
                     fmt(link_fps(case, 100)), fmt(case["fps"]),
                     fmt(case["fps_100mbit"]), fmt(case["fps_20mbit"])])
    table = markdown_table(
        ["model", "frames", "input", "path", "KiB up/frame", "KiB down/frame",
         "fewer bytes", "client CPU ms/frame", "p50 ms", "p99 ms", "server CPU ms/frame",
         "server ms/frame by step (pre / detector / post)", "link-bound fps @100 Mbit/s",
         "fps (link unshaped)", "fps @100 Mbit/s", "fps @20 Mbit/s"], rows)
    client = report["cases"][0].get("client", "direct")
    text = (f"Client: {client}. Machine: {report['machine_start']}; load at end "
            f"{report['machine_end']['load_avg']}"
            f"\nFrames: {report.get('frames')}\n\n{table}\n\n{sizing_table(report)}\n")
    print(text)
    Path(out + ".md").write_text(text)
    write_json(Path(out + ".json"), report)


if __name__ == "__main__":
    main()
