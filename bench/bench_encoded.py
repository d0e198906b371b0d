"""Tensor path vs encoded path (issue 19): bytes on the wire, client CPU, latency, server CPU,
and frames/s through a rate-limited link, for SSD and YOLOv4-tiny, two resolutions, raw Image
and CompressedImage input, all in one run against one local tritonserver.

    .venv/bin/python bench/bench_encoded.py            # ~6 min; bench/results/encoded.{json,md}

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


def node_lockstep(ctx, relays, rate, server, model, source, raws, duration_s, tag, stats=None):
    """The node variant of :func:`lockstep`: a detect_node on the relay of ``rate``, one frame
    in flight (the probe waits for each answer), for ``duration_s``."""
    import harness as h
    from bench_bridge import NodeUnderTest, node_params
    params = node_params(server, model, ["cam0" + (":compressed" if source == "compressed"
                                                   else "")], in_flight=1, batch=1, queue=1)
    params.update(server_url=relays.urls[rate], shared_memory="'off'",  # YAML: a string
                  request_timeout_s=60.0)
    with NodeUnderTest(ctx, tag, params, 1, compressed=source == "compressed") as nut:
        h.feed_window(nut.probe, [raws], 1, 2.0, stop_after_s=30.0)  # warm-up
        relays.reset(rate)
        before = compute_ms(*stats) if stats else {}
        pids = server_pids(server)
        cpu, server_cpu = nut.cpu(), group_cpu_seconds(pids)
        window = h.feed_window(nut.probe, [raws], 1, duration_s, stop_after_s=30.0)
        cpu, server_cpu = nut.cpu() - cpu, group_cpu_seconds(pids) - server_cpu
        up, down = relays.counts(rate)
    n = max(1, window["answered"])
    steps = {}
    for model_name, (ms, requests) in (compute_ms(*stats) if stats else {}).items():
        done = requests - before[model_name][1]
        steps[model_name] = (ms - before[model_name][0]) / done if done else None
    lat = window["latencies_ms"]
    return {"steps_ms": steps, "frames": window["answered"], "lost": window["lost"],
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
    args = parser.parse_args(argv)
    if args.tables_from:
        import json
        write_tables(json.loads(Path(args.tables_from).read_text()), args.out)
        return
    report = {"machine_start": machine(), "cases": []}
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
