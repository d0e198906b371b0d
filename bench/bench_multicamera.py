#!/usr/bin/env python3
"""Multi-camera benchmark: detect_node batched vs per-frame for 1, 2, 4, 8 cameras.

One run starts one local tritonserver (127.0.0.1, ``config/model_repository``,
``ssd_mobilenet_v2_coco``: max_batch_size 8, dynamic batching) and, for each camera count N and
each mode, one ``detect_node`` process:

- ``batched``:   node defaults (``max_batch_size:=0`` = the model's 8, one request in flight)
  with ``max_delay_ms:=10``;
- ``per-frame``: ``max_batch_size:=1``, ``max_delay_ms:=0`` (one frame per request).

This process publishes real 640x480 bgr8 frames (``vtest.avi``, resized) on N cameras at
``--fps`` each (best effort, depth 5 = sensor data QoS, the node's default) for ``--warmup`` s,
then measures for ``--duration`` s: frames published, received / processed / dropped by the node
(its ``/diagnostics`` counters), processed frames/s, end-to-end latency (Detection2DArray received
here minus the frame's publish time, matched by camera and stamp), node / tritonserver / bench CPU
(``/proc/<pid>/stat``), and Triton's own statistics for the window (inference and execution
counts, queue and compute_infer times). Prints one table, the batched/per-frame ratios per N and,
where batching does not pay, why (from Triton's statistics); writes ``out/bench/multicamera.json``.

Everything stays on this machine: every ROS 2 process uses the localhost-only Fast DDS profile and
a private ROS_DOMAIN_ID (``triton_ros.tools.local_env``), tritonserver binds 127.0.0.1. The run is
bounded (``--budget-s``) and stops every process it started, also on Ctrl-C / SIGTERM.

    .venv/bin/python bench/bench_multicamera.py [--cameras 1,2,4,8] [--duration 8] [--warmup 2]
"""
import argparse
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (Probe, check_stamp_patch, cpu_seconds, descendants, fmt,  # noqa: E402
                     group_cpu_seconds, image_raw, load_avg, load_frames, machine, pct, ratio,
                     ros_env, start_node, start_server, with_stamp)

MODEL = "ssd_mobilenet_v2_coco"
OUTPUT_NAMES = ["num_detections", "detection_boxes", "detection_scores", "detection_classes"]
MODES = {
    # mode -> detect_node parameters on top of the common ones
    "batched": {"max_batch_size": 0, "max_delay_ms": 10.0},
    "per-frame": {"max_batch_size": 1, "max_delay_ms": 0.0},
}

def code_snapshot() -> dict:
    """mtimes of the files the node and the server run: the triton_ros modules detect_node
    imports and the model directory (the working tree may be shared and edited meanwhile)."""
    importlib.import_module("triton_ros.ros.detect_node")
    paths = {Path(m.__file__) for name, m in list(sys.modules.items())
             if name.split(".")[0] == "triton_ros" and getattr(m, "__file__", None)}
    paths |= set((REPO / "config" / "model_repository" / MODEL).rglob("*"))
    snapshot = {}
    for path in sorted(paths):
        if path.is_file() and "__pycache__" not in path.parts:
            try:
                snapshot[str(path.resolve().relative_to(REPO))] = path.stat().st_mtime_ns
            except ValueError:  # an installed copy outside the checkout
                snapshot[str(path)] = path.stat().st_mtime_ns
    return snapshot


def changed_files(before: dict, after: dict) -> list[str]:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def git_state() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    watched = list(code_snapshot())
    return {"head": git("rev-parse", "--short", "HEAD"),
            "dirty": [line[3:] for line in git("status", "--porcelain", "--", *watched)
                      .splitlines()]}


def serialized_frames(frames, cameras: int, per_camera: int) -> list[list[bytes]]:
    """Per camera ``per_camera`` serialized Images (own frame_id, different frames per camera)."""
    from sensor_msgs.msg import Image
    out = [[image_raw(frames[(cam * 3 + k) % len(frames)], f"cam{cam}_optical_frame")
            for k in range(per_camera)] for cam in range(cameras)]
    check_stamp_patch(out[0][0], Image)
    return out


# -- Triton statistics --

def triton_snapshot(client) -> dict:
    """Cumulative statistics of the model (summed over versions), ints."""
    stats = client.inference_statistics()
    snap = {"inference_count": 0, "execution_count": 0, "requests": 0, "queue_ns": 0,
            "compute_input_ns": 0, "compute_infer_ns": 0, "compute_output_ns": 0, "batch": {}}
    for model in stats.get("model_stats", []):
        if model.get("name") != MODEL:
            continue
        snap["inference_count"] += int(model.get("inference_count", 0))
        snap["execution_count"] += int(model.get("execution_count", 0))
        inf = model.get("inference_stats", {})
        snap["requests"] += int(inf.get("success", {}).get("count", 0))
        for key in ("queue", "compute_input", "compute_infer", "compute_output"):
            snap[f"{key}_ns"] += int(inf.get(key, {}).get("ns", 0))
        for entry in model.get("batch_stats", []):
            size = int(entry["batch_size"])
            count, ns = snap["batch"].get(size, (0, 0))
            infer = entry.get("compute_infer", {})
            snap["batch"][size] = (count + int(infer.get("count", 0)), ns + int(infer.get("ns", 0)))
    return snap


def triton_window(before: dict, after: dict, seconds: float) -> dict:
    d = {k: after[k] - before[k] for k in before if k != "batch"}
    batch = {}
    for size, (count, ns) in after["batch"].items():
        c0, n0 = before["batch"].get(size, (0, 0))
        if count - c0:
            batch[size] = {"executions": count - c0,
                           "compute_infer_ms_per_exec": (ns - n0) / (count - c0) / 1e6}
    executions = sum(b["executions"] for b in batch.values())
    infer_ns = sum(b["executions"] * b["compute_infer_ms_per_exec"] * 1e6 for b in batch.values())
    inferences = d["inference_count"]
    return {
        "inference_count": inferences, "execution_count": d["execution_count"],
        "requests": d["requests"],
        "inferences_per_s": inferences / seconds if seconds else None,
        "avg_batch_per_execution": inferences / d["execution_count"] if d["execution_count"]
        else None,
        "avg_queue_ms_per_request": d["queue_ns"] / d["requests"] / 1e6 if d["requests"] else None,
        "avg_compute_infer_ms_per_execution": infer_ns / executions / 1e6 if executions else None,
        "compute_infer_ms_per_frame": infer_ns / inferences / 1e6 if inferences else None,
        # share of the window the (single) model instance spent in compute_infer
        "busy_pct": 100 * infer_ns / 1e9 / seconds if seconds else None,
        "avg_compute_input_ms_per_request": d["compute_input_ns"] / d["requests"] / 1e6
        if d["requests"] else None,
        "by_batch_size": {str(k): v for k, v in sorted(batch.items())},
    }


def counters_delta(first: dict, last: dict) -> dict:
    keys = {k for k in last if k.startswith("frames_")}
    return {k: int(last.get(k, 0)) - int(first.get(k, 0)) for k in sorted(keys)}


def batch_hist(text: str) -> dict:
    return {int(k): int(v) for k, v in (kv.split(":") for kv in text.split())} if text else {}


def run_config(n: int, mode: str, args, env, server, client, raws, server_pids, log_dir):
    namespace = f"/bench_mc_{os.getpid()}_n{n}_{mode.replace('-', '')}"
    params = {"server_url": server.grpc_url, "protocol": "grpc", "model_name": MODEL,
              "cameras": [f"cam{i}" for i in range(n)], "image_reliability": "best_effort",
              "diagnostics_period_s": args.diag_period, **MODES[mode]}
    if mode == "batched":
        params["max_delay_ms"] = args.max_delay_ms
    result = {"cameras": n, "mode": mode, "node_params": {k: v for k, v in params.items()
                                                          if k != "server_url"},
              "load_avg_before": load_avg()}
    probe = Probe(namespace, n, f"n{n}_{mode.replace('-', '')}",
                  status_name=f"{namespace}/triton_detect")
    EXECUTOR.add_node(probe.node)
    node = None
    try:
        node = start_node(params, namespace, log_dir / f"node_n{n}_{mode}.log", env, n)
        CURRENT["node"] = node
        probe.wait_connected(node, timeout_s=30)
        time.sleep(0.3)

        period = 1.0 / args.fps
        sent = [dict() for _ in range(n)]   # camera -> {stamp_ns: in measuring window}
        late = 0
        start = time.monotonic()
        warm_end, end = start + args.warmup, start + args.warmup + args.duration
        due = [start + i * period / n for i in range(n)]   # cameras' phases spread evenly
        seq = [0] * n
        measuring = False
        t0 = snap0 = None
        while True:
            now = time.monotonic()
            if not measuring and now >= warm_end:
                measuring = True
                t0 = {"mono": time.monotonic(), "wall_ns": time.time_ns(),
                      "node_cpu": cpu_seconds(node.pid),
                      "server_cpu": group_cpu_seconds(server_pids),
                      "bench_cpu": cpu_seconds(os.getpid())}
                snap0 = triton_snapshot(client)
            if now >= end:
                break
            for i in range(n):
                if due[i] <= now:
                    stamp = time.time_ns()
                    probe.publishers[i].publish(with_stamp(raws[i][seq[i] % len(raws[i])], stamp))
                    sent[i][stamp] = measuring
                    seq[i] += 1
                    due[i] += period
                    if due[i] < now - period:  # fell behind (CPU busy): no burst, skip ahead
                        due[i] = now
                        late += 1
            if STOP:
                raise KeyboardInterrupt
            time.sleep(max(0.0, min(due) - time.monotonic()))
        snap1 = triton_snapshot(client)
        t1 = {"mono": time.monotonic(), "wall_ns": time.time_ns(),
              "node_cpu": cpu_seconds(node.pid), "server_cpu": group_cpu_seconds(server_pids),
              "bench_cpu": cpu_seconds(os.getpid())}
        window_s = t1["mono"] - t0["mono"]

        # Drain: until the node has accounted for every frame it received (or 6 s).
        drain_deadline = time.monotonic() + 6.0
        while time.monotonic() < drain_deadline:
            last = probe.last_diagnostics()
            if last and last[0] > t1["wall_ns"] + 100_000_000:
                values = last[1]
                done = sum(int(v) for k, v in values.items()
                           if k == "frames_published" or k.startswith("frames_dropped_"))
                if done >= int(values.get("frames_received", 0)):
                    break
            time.sleep(0.05)
        time.sleep(0.3)  # the last detections (reliable) in flight
    finally:
        result["node_exit_code"] = node.stop() if node is not None else None
        CURRENT["node"] = None
        EXECUTOR.remove_node(probe.node)
        probe.destroy()
    if node.process.returncode not in (0, None):
        result["node_log_tail"] = node.output()[-1500:]
    # The node's start-up line "waiting up to N s for TritonClient(...)" names its transport.
    described = re.search(r"waiting up to .*? for (TritonClient\(.*\))", node.output())
    result["node_client"] = described.group(1) if described else ""

    # Node counters over the diagnostics span inside the measuring window.
    with probe.lock:
        diags = list(probe.diagnostics)
        answered = [dict(a) for a in probe.answered]
    inside = [d for d in diags if t0["wall_ns"] <= d[0] <= t1["wall_ns"]]
    if len(inside) < 2:
        raise RuntimeError(f"N={n} {mode}: fewer than 2 /diagnostics reports in the window")
    (s0, first), (s1, last) = inside[0], inside[-1]
    span_s = (s1 - s0) / 1e9
    delta = counters_delta(first, last)
    published_in_span = sum(1 for cam in sent for stamp in cam if s0 <= stamp <= s1)
    final = diags[-1][1]
    hist0, hist1 = batch_hist(first.get("batch_sizes", "")), batch_hist(last.get("batch_sizes", ""))
    node_batches = {k: hist1.get(k, 0) - hist0.get(k, 0) for k in hist1
                    if hist1.get(k, 0) - hist0.get(k, 0)}
    requests = sum(node_batches.values())

    # End-to-end latency of the frames published in the measuring window.
    latencies, published_window = [], 0
    for cam, stamps in enumerate(sent):
        for stamp, in_window in stamps.items():
            if in_window:
                published_window += 1
                if stamp in answered[cam]:
                    latencies.append((answered[cam][stamp] - stamp) / 1e6)

    processed = delta.get("frames_published", 0)
    node_cpu = (t1["node_cpu"] - t0["node_cpu"]) / window_s
    server_cpu = (t1["server_cpu"] - t0["server_cpu"]) / window_s
    bench_cpu = (t1["bench_cpu"] - t0["bench_cpu"]) / window_s
    processed_fps = processed / span_s if span_s else 0.0
    triton = triton_window(snap0, snap1, window_s)
    result.update({
        "window_s": round(window_s, 3),
        "published_window": published_window,
        "offered_fps": published_window / window_s,
        "publisher_late_skips": late,
        "diagnostics_span_s": round(span_s, 3),
        "published_in_span": published_in_span,
        "node_received": delta.get("frames_received", 0),
        "not_delivered_by_dds": published_in_span - delta.get("frames_received", 0),
        "processed": processed,
        "processed_fps": processed_fps,
        "drops": {k[len("frames_dropped_"):]: v for k, v in delta.items()
                  if k.startswith("frames_dropped_") and v},
        "node_batch_sizes": {str(k): v for k, v in sorted(node_batches.items())},
        "node_avg_batch": (sum(k * v for k, v in node_batches.items()) / requests)
        if requests else None,
        "answered_window": len(latencies),
        "latency_ms_p50": pct(latencies, 50), "latency_ms_p99": pct(latencies, 99),
        "latency_ms_mean": float(np.mean(latencies)) if latencies else None,
        "node_cpu_pct": 100 * node_cpu, "server_cpu_pct": 100 * server_cpu,
        "bench_cpu_pct": 100 * bench_cpu,
        "node_cpu_ms_per_frame": 1000 * node_cpu / processed_fps if processed_fps else None,
        "node_server_cpu_ms_per_frame": 1000 * (node_cpu + server_cpu) / processed_fps
        if processed_fps else None,
        "triton": triton,
        "node_final_counters": {k: int(v) for k, v in final.items() if k.startswith("frames_")},
        "load_avg_after": load_avg(),
    })
    return result


# -- report --

def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def print_table(results):
    cols = [f"N={r['cameras']} {'batch' if r['mode'] == 'batched' else '1/req'}" for r in results]
    rows = [
        ("offered fps (published)", lambda r: fmt(r["offered_fps"])),
        ("published (window)", lambda r: fmt(r["published_window"])),
        ("published (diag span)", lambda r: fmt(r["published_in_span"])),
        ("node received (diag span)", lambda r: fmt(r["node_received"])),
        ("  not delivered by DDS", lambda r: fmt(r["not_delivered_by_dds"])),
        ("node processed (diag span)", lambda r: fmt(r["processed"])),
        ("processed fps", lambda r: fmt(r["processed_fps"])),
        ("dropped stale (queue)", lambda r: fmt(r["drops"].get("stale", 0))),
        ("dropped other", lambda r: fmt(sum(v for k, v in r["drops"].items() if k != "stale"))),
        ("answered in window %", lambda r: fmt(100 * r["answered_window"] / r["published_window"]
                                               if r["published_window"] else None)),
        ("latency p50 ms", lambda r: fmt(r["latency_ms_p50"])),
        ("latency p99 ms", lambda r: fmt(r["latency_ms_p99"])),
        ("node frames/request", lambda r: fmt(r["node_avg_batch"], 2)),
        ("Triton executions", lambda r: fmt(r["triton"]["execution_count"])),
        ("Triton avg batch/exec", lambda r: fmt(r["triton"]["avg_batch_per_execution"], 2)),
        ("Triton queue ms/request", lambda r: fmt(r["triton"]["avg_queue_ms_per_request"], 2)),
        ("Triton compute ms/exec",
         lambda r: fmt(r["triton"]["avg_compute_infer_ms_per_execution"])),
        ("Triton compute ms/frame", lambda r: fmt(r["triton"]["compute_infer_ms_per_frame"])),
        ("Triton busy % (compute)", lambda r: fmt(r["triton"]["busy_pct"])),
        ("node CPU %", lambda r: fmt(r["node_cpu_pct"])),
        ("tritonserver CPU %", lambda r: fmt(r["server_cpu_pct"])),
        ("bench (publisher) CPU %", lambda r: fmt(r["bench_cpu_pct"])),
        ("node CPU ms/frame", lambda r: fmt(r["node_cpu_ms_per_frame"])),
        ("node+server CPU ms/frame", lambda r: fmt(r["node_server_cpu_ms_per_frame"])),
        ("load avg 1m before", lambda r: fmt(r["load_avg_before"][0], 2)),
    ]
    width = max(9, max(len(c) for c in cols)) + 1
    label = max(len(name) for name, _ in rows) + 1
    print("".ljust(label) + "".join(c.rjust(width) for c in cols))
    for name, get in rows:
        print(name.ljust(label) + "".join(get(r).rjust(width) for r in results))


def compare(results):
    by = {(r["cameras"], r["mode"]): r for r in results}
    out = []
    for n in sorted({r["cameras"] for r in results}):
        b, p = by.get((n, "batched")), by.get((n, "per-frame"))
        if not b or not p:
            continue
        out.append({
            "cameras": n,
            "throughput": ratio(b["processed_fps"], p["processed_fps"]),
            "latency_p50": ratio(b["latency_ms_p50"], p["latency_ms_p50"]),
            "latency_p99": ratio(b["latency_ms_p99"], p["latency_ms_p99"]),
            "node_cpu_per_frame": ratio(b["node_cpu_ms_per_frame"], p["node_cpu_ms_per_frame"]),
            "node_server_cpu_per_frame": ratio(b["node_server_cpu_ms_per_frame"],
                                               p["node_server_cpu_ms_per_frame"]),
            "triton_compute_per_frame": ratio(b["triton"]["compute_infer_ms_per_frame"],
                                              p["triton"]["compute_infer_ms_per_frame"]),
        })
    return out


def explain(results, ratios, unloaded):
    """One line per N where batching does not pay, with the reason from Triton's statistics."""
    by = {(r["cameras"], r["mode"]): r for r in results}
    lines = []
    for rt in ratios:
        n = rt["cameras"]
        b, p = by[(n, "batched")], by[(n, "per-frame")]
        tb, tp = b["triton"], p["triton"]
        pays = (rt["throughput"] or 0) >= 1.10 or (
            (rt["throughput"] or 0) >= 0.95 and (rt["node_server_cpu_per_frame"] or 9) <= 0.90)
        verdict = "pays (throughput/CPU)" if pays else "does not pay"
        head = (f"N={n}: batching {verdict}: throughput x"
                f"{fmt(rt['throughput'], 2)}, p50 latency x{fmt(rt['latency_p50'], 2)}, "
                f"node+server CPU/frame x{fmt(rt['node_server_cpu_per_frame'], 2)}")
        if pays:
            causes = []
            if (rt["triton_compute_per_frame"] or 9) < 0.95:
                causes.append("less Triton compute per frame ("
                              f"{fmt(tb['compute_infer_ms_per_frame'])} vs "
                              f"{fmt(tp['compute_infer_ms_per_frame'])} ms at avg batch "
                              f"{fmt(tb['avg_batch_per_execution'], 2)} vs 1)")
            if (tb["busy_pct"] or 0) >= (tp["busy_pct"] or 0) + 2.0:
                causes.append(f"fewer idle gaps on the model instance (busy {fmt(tb['busy_pct'])}% "
                              f"vs {fmt(tp['busy_pct'])}% of the window; between single-frame "
                              "requests it waits for node pre/post-processing, the gRPC round "
                              f"trip and Triton's queue, {fmt(tp['avg_queue_ms_per_request'], 2)}"
                              " ms/request)")
            if (rt["node_cpu_per_frame"] or 9) < 0.95:
                causes.append(f"less node CPU per frame ({fmt(b['node_cpu_ms_per_frame'])} vs "
                              f"{fmt(p['node_cpu_ms_per_frame'])} ms: fewer requests)")
            lines.append(head + ". From: " + ("; ".join(causes) if causes else
                                               "nothing visible in Triton's statistics") +
                         f". Latency still grows with the execution time "
                         f"({fmt(tb['avg_compute_infer_ms_per_execution'])} vs "
                         f"{fmt(tp['avg_compute_infer_ms_per_execution'])} ms per execution).")
            continue
        why = (f"Triton compute_infer per execution {fmt(tb['avg_compute_infer_ms_per_execution'])}"
               f" ms at avg batch {fmt(tb['avg_batch_per_execution'], 2)} vs "
               f"{fmt(tp['avg_compute_infer_ms_per_execution'])} ms at batch 1, i.e. "
               f"{fmt(tb['compute_infer_ms_per_frame'])} vs {fmt(tp['compute_infer_ms_per_frame'])}"
               f" ms per frame (x{fmt(rt['triton_compute_per_frame'], 2)})")
        if (rt["triton_compute_per_frame"] or 0) >= 0.85:
            why += (": compute per execution grew (at least) about linearly with the batch size "
                    "on this CPU, so the batch saved no per-frame compute")
        why += (f"; latency grows because a frame waits for the running batch and then its own "
                f"whole batch's execution ({fmt(tb['avg_compute_infer_ms_per_execution'])} vs "
                f"{fmt(tp['avg_compute_infer_ms_per_execution'])} ms, one request in flight) and, "
                f"when frames are scarce, up to node max_delay_ms "
                f"{b['node_params']['max_delay_ms']:g} for the batch to fill; "
                f"Triton's own queue time is small in both modes "
                f"({fmt(tb['avg_queue_ms_per_request'], 2)} vs "
                f"{fmt(tp['avg_queue_ms_per_request'], 2)} ms/request")
        if (tp["avg_queue_ms_per_request"] or 0) > (tb["avg_queue_ms_per_request"] or 0) + 1.0:
            why += (f"; single-frame requests sit up to the model's max_queue_delay "
                    f"({QUEUE_DELAY_US[0]} us) in Triton's dynamic batcher waiting for a "
                    "preferred batch that never forms")
        why += ")"
        lines.append(head + ". Why: " + why + ".")
    if unloaded:
        per_frame = {int(k): v["ms_per_frame"] for k, v in unloaded.items()}
        if 1 in per_frame:
            lines.append("Unloaded Triton compute_infer per frame by batch size (direct requests "
                         "before the sweep): " + ", ".join(
                             f"b={k}: {v:.1f} ms" for k, v in sorted(per_frame.items())) +
                         f" (b={max(per_frame)}/b=1 per frame = "
                         f"x{per_frame[max(per_frame)] / per_frame[1]:.2f}).")
    return lines


# -- main --

EXECUTOR = None
CURRENT = {"node": None}
QUEUE_DELAY_US = ["?"]
STOP = []


def warm_and_measure_unloaded(client, frames, rounds: int) -> dict:
    """Warm the model up for batch sizes 1, 2, 4, 8, then measure compute_infer per batch size.

    Sizes are interleaved (1, 2, 4, 8, 1, 2, ...) so that background load drifting during the
    measurement affects every size alike.
    """
    import cv2
    tensors = [cv2.cvtColor(cv2.resize(f, (300, 300)), cv2.COLOR_BGR2RGB) for f in frames[:8]]
    sizes = (1, 2, 4, 8)
    for size in sizes:  # warm-up (first executions of a shape are slower)
        client.infer({"input_tensor": np.stack(tensors[:size])}, OUTPUT_NAMES)
    totals = {size: [0, 0] for size in sizes}  # executions, ns
    for _ in range(rounds):
        for size in sizes:
            before = triton_snapshot(client)["batch"].get(size, (0, 0))
            client.infer({"input_tensor": np.stack(tensors[:size])}, OUTPUT_NAMES)
            after = triton_snapshot(client)["batch"].get(size, (0, 0))
            totals[size][0] += after[0] - before[0]
            totals[size][1] += after[1] - before[1]
    result = {}
    for size, (count, ns) in totals.items():
        if count:
            ms = ns / count / 1e6
            result[str(size)] = {"executions": count, "ms_per_exec": ms,
                                 "ms_per_frame": ms / size}
    return result


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", default="1,2,4,8", help="camera counts, comma separated")
    parser.add_argument("--modes", default="batched,per-frame")
    parser.add_argument("--fps", type=float, default=30.0, help="frames/s per camera")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--duration", type=float, default=8.0, help="measuring window, seconds")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--max-delay-ms", type=float, default=10.0, help="batched mode")
    parser.add_argument("--diag-period", type=float, default=0.5,
                        help="node diagnostics_period_s (counter resolution)")
    parser.add_argument("--unloaded-rounds", type=int, default=6,
                        help="rounds of direct requests of batch 1, 2, 4, 8 before the sweep "
                             "(0 = skip)")
    parser.add_argument("--budget-s", type=float, default=240.0,
                        help="skip the remaining configurations after this many seconds")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bench" / "multicamera.json")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    global EXECUTOR
    args = parse_args(argv)
    counts = [int(c) for c in args.cameras.split(",") if c]
    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        if mode not in MODES:
            raise SystemExit(f"unknown mode {mode!r}; choose from {list(MODES)}")
    started = time.monotonic()
    env = ros_env()  # before rclpy.init; children get the same environment
    log_dir = args.out.parent / "multicamera_logs"
    log_dir.mkdir(parents=True, exist_ok=True)

    def on_term(*_):
        STOP.append(1)
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C stops the run even when started from a shell that ignores SIGINT (background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from triton_ros.client import TritonClient
    # Imported before the code snapshot so that it covers what the harness starts processes with.
    for module in ("triton_ros.tools.local_server", "triton_ros.tools.node_process"):
        importlib.import_module(module)

    machine_start = machine()
    load_start = machine_start["load_avg"]
    code_start, git_start = code_snapshot(), git_state()
    print(f"bench_multicamera: {os.cpu_count()} x {machine_start['cpu_model']}, "
          f"load average {load_start} "
          f"(1/5/15 min), ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, "
          f"FASTDDS profile {Path(env['FASTDDS_DEFAULT_PROFILES_FILE']).name}", flush=True)
    frames, source = load_frames(32, args.width, args.height)
    raws = serialized_frames(frames, max(counts), per_camera=8)
    print(f"frames: {len(frames)} x {args.width}x{args.height} bgr8 from {source}; "
          f"{len(raws[0][0])} bytes/message; {args.fps:g} fps per camera, "
          f"warm-up {args.warmup:g} s + window {args.duration:g} s per configuration", flush=True)

    client = None
    thread = None
    server = None
    results, skipped = [], []
    try:
        # Only this model (explicit model control): other models in the repository stay unloaded.
        server = start_server([MODEL], log_dir / "tritonserver.log")
        client = TritonClient(server.grpc_url, MODEL, "grpc", timeout_s=30.0)
        client.wait_until_ready(60)
        import tritonclient.grpc as grpcclient
        with grpcclient.InferenceServerClient(server.grpc_url) as raw_client:
            config = raw_client.get_model_config(MODEL, as_json=True)["config"]
        batching = config.get("dynamic_batching", {})
        QUEUE_DELAY_US[0] = batching.get("max_queue_delay_microseconds", "0")
        server_info = {"grpc_url": server.grpc_url, "max_batch_size": config.get("max_batch_size"),
                       "dynamic_batching": batching,
                       "instance_group": config.get("instance_group")}
        print(f"tritonserver on {server.grpc_url} (pid {server.process.pid}): {MODEL} "
              f"max_batch_size {config.get('max_batch_size')}, dynamic batching "
              f"{json.dumps(batching)}", flush=True)
        unloaded = warm_and_measure_unloaded(client, frames, args.unloaded_rounds) \
            if args.unloaded_rounds else {}
        if unloaded:
            print("unloaded Triton compute_infer (direct requests from this process, before any "
                  "node runs): " +
                  ", ".join(f"b={k}: {v['ms_per_exec']:.1f} ms/exec = {v['ms_per_frame']:.1f} "
                            f"ms/frame" for k, v in unloaded.items()), flush=True)
        server_pids = [server.process.pid] + descendants(server.process.pid)  # + python stub
        print(f"tritonserver CPU counted over pids {server_pids} (server + backend stub)",
              flush=True)

        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        EXECUTOR = SingleThreadedExecutor()
        thread = threading.Thread(target=EXECUTOR.spin, daemon=True)
        thread.start()
        for n in counts:
            for mode in modes:
                elapsed = time.monotonic() - started
                if elapsed > args.budget_s:
                    skipped.append(f"N={n} {mode}")
                    continue
                changed = changed_files(code_start, code_snapshot())
                if changed:
                    print(f"WARNING: changed since the run started (this and later nodes run the "
                          f"new code): {', '.join(changed)}", flush=True)
                print(f"[{elapsed:5.1f} s] N={n} {mode}: load {load_avg()[0]:.2f} ...",
                      end="", flush=True)
                try:
                    r = run_config(n, mode, args, env, server, client, raws, server_pids,
                                   log_dir)
                except RuntimeError as exc:  # one configuration failed: report it, go on
                    print(f" FAILED: {exc}", flush=True)
                    skipped.append(f"N={n} {mode} (failed: {str(exc).splitlines()[0]})")
                    continue
                r["code_changed_before_start"] = changed
                results.append(r)
                print(f" {r['processed_fps']:.1f} processed frames/s of {r['offered_fps']:.1f} "
                      f"offered, p50 {fmt(r['latency_ms_p50'])} ms, node CPU "
                      f"{r['node_cpu_pct']:.0f}%", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr, flush=True)
        return 130
    finally:
        if CURRENT["node"] is not None:
            CURRENT["node"].stop()
        if EXECUTOR is not None:
            EXECUTOR.shutdown(timeout_sec=2)
            rclpy.try_shutdown()
        if thread is not None:
            thread.join(timeout=3)
        if client is not None:
            client.close()
        if server is not None:
            server.cleanup()

    load_end = load_avg()
    changed_during_run = changed_files(code_start, code_snapshot())
    ratios = compare(results)
    print()
    print_table(results)
    print()
    print("batched / per-frame   throughput  p50 latency  p99 latency  node CPU/frame  "
          "node+server CPU/frame  Triton compute/frame")
    for rt in ratios:
        print(f"N={rt['cameras']:<19}" + "".join(
            fmt(rt[k], 2).rjust(w) for k, w in (
                ("throughput", 11), ("latency_p50", 13), ("latency_p99", 13),
                ("node_cpu_per_frame", 16), ("node_server_cpu_per_frame", 23),
                ("triton_compute_per_frame", 22))))
    lines = explain(results, ratios, unloaded)
    print()
    for line in lines:
        print(line)
    if skipped:
        print(f"not measured (over the {args.budget_s:.0f} s budget or failed): "
              f"{', '.join(skipped)}")
    total = time.monotonic() - started
    clients = sorted({r.get("node_client", "") for r in results})
    print(f"\ncode: git {git_start['head']}"
          + (f" + uncommitted {', '.join(git_start['dirty'])}" if git_start["dirty"] else "")
          + "; node client: " + " | ".join(clients))
    if changed_during_run:
        print("WARNING: code or model files changed during the run, so the configurations did "
              f"not all run the same code: {', '.join(changed_during_run)}")
    print(f"load average: start {load_start}, end {load_end} (1/5/15 min); run took "
          f"{total:.0f} s; node logs and tritonserver.log in {rel(log_dir)}/")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "multicamera", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {**machine_start, "load_avg_start": load_start,
                    "load_avg_end": load_end},
        "settings": {"cameras": counts, "modes": {m: MODES[m] for m in modes},
                     "fps_per_camera": args.fps, "warmup_s": args.warmup,
                     "duration_s": args.duration, "image": f"{args.width}x{args.height} bgr8",
                     "frames_source": source, "batched_max_delay_ms": args.max_delay_ms,
                     "image_qos": "best_effort depth 5",
                     "ros_domain_id": env["ROS_DOMAIN_ID"]},
        "server": server_info, "unloaded_compute_by_batch_size": unloaded,
        "results": results, "ratios_batched_over_per_frame": ratios, "conclusions": lines,
        "code": {"git_at_start": git_start, "changed_during_run": changed_during_run,
                 "node_clients": clients},
        "skipped": skipped, "run_s": round(total, 1)}, indent=2))
    print(f"wrote {rel(args.out)}")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
