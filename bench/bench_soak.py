#!/usr/bin/env python3
"""Soak benchmark: one detect_node, 4 cameras x 15 fps for 10 minutes, a server fault every minute.

Not a CI test (issue 8). One local tritonserver (127.0.0.1, explicit model control,
``ssd_mobilenet_v2_coco`` only) and one ``detect_node`` process with ``cameras:=[cam0..cam3]``,
``shared_memory:=auto``, ``reconnect_max_s:=2``, ``request_timeout_s:=2``. This process publishes
real 640x480 bgr8 frames (``vtest.avi``, else the sample bag; best effort, the node's default QoS)
on the four cameras and, in the middle of every ``--fault-every-s`` period, injects the next fault
of the cycle:

- ``kill``:   kill -9 of the server's whole process group (server + python-backend stub), then a
              restart on the same ports; the fault ends when the server is ready again;
- ``stop``:   SIGSTOP of the server process only (stopping the stub too crashes tritonserver
              2.51) for ``--stop-s``, then SIGCONT; the fault ends at SIGCONT;
- ``unload``: model unload through the repository API, ``--unload-s`` later load again; the
              fault ends when the load returns.

Measured per period (a minute by default): frames offered / received / published / dropped by
reason (the node's ``/diagnostics`` counters, differences between the last reports before the
period's bounds), latency p50/p90/p99 (publish here -> Detection2DArray received here, matched by
camera and stamp), node RSS (``/proc/<pid>/status`` VmRSS, sampled every second), the fault and
its recovery time (fault end -> first detection received after it, and -> first detection of a
frame published after it). At the end the node is stopped with SIGINT and its ``final counters``
line is checked: received == published + sum(dropped_*), and received == frames offered.

Writes ``bench/results/soak.json``, ``bench/results/soak.png`` (RSS and latency over time, faults
marked) and prints a Markdown table. Logs go to ``out/bench/soak_logs/``. Every ROS process uses
the localhost-only Fast DDS profile and a private ROS_DOMAIN_ID; tritonserver binds 127.0.0.1.

    .venv/bin/python bench/bench_soak.py [--duration-s 600] [--fault-every-s 60]
"""
import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

# The camera feed, stamp patching and the probe node are bench_multicamera's (same directory).
from bench_multicamera import (Probe, load_avg, load_frames, serialized_frames,  # noqa: E402
                               with_stamp)
from triton_ros.tools.local_env import apply_localhost_ros_env  # noqa: E402
from triton_ros.tools.node_process import NodeProcess  # noqa: E402

MODEL = "ssd_mobilenet_v2_coco"
CAMERAS = 4
FAULTS = ("kill", "stop", "unload")
STOP = []


def rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB; None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def pct(values, q):
    return round(float(np.percentile(values, q)), 1) if values else None


# -- faults ------------------------------------------------------------------------------------


def kill_and_restart(server) -> None:
    """kill -9 the server's process group (a crash), free its shm regions, start it again on the
    same ports (as test/integration/sequence_data.kill_server_hard + start)."""
    regions = server.shm_regions()
    os.killpg(server.pgid, signal.SIGKILL)
    server.process.wait()
    server.process = None
    server.stop()  # closes the log and stops the watch thread; the scratch directory stays
    for region in regions:  # a crash leaves them behind in /dev/shm
        region.unlink(missing_ok=True)
    server.start(timeout_s=120)


def inject(kind: str, server, args) -> dict:
    """Run one fault; returns wall-clock ns of its start and end (end = server usable again)."""
    import tritonclient.grpc as grpcclient
    event = {"fault": kind, "start_ns": time.time_ns()}
    try:
        if kind == "kill":
            kill_and_restart(server)
        elif kind == "stop":
            pid = server.process.pid
            os.kill(pid, signal.SIGSTOP)  # the server only, not its stub (see module docstring)
            try:
                time.sleep(args.stop_s)
            finally:
                os.kill(pid, signal.SIGCONT)
        elif kind == "unload":
            with grpcclient.InferenceServerClient(server.grpc_url) as admin:
                admin.unload_model(MODEL)
                time.sleep(args.unload_s)
                admin.load_model(MODEL)
        event["error"] = ""
    except Exception as exc:  # reported in the results, the soak goes on
        event["error"] = f"{type(exc).__name__}: {exc}"
    event["end_ns"] = time.time_ns()
    return event


# -- analysis ----------------------------------------------------------------------------------


def counters_at(diags, wall_ns):
    """frames_* counters of the last diagnostics report at or before ``wall_ns`` (zeros before
    the first)."""
    best = None
    for stamp, values in diags:
        if stamp <= wall_ns:
            best = values
        else:
            break
    return {k: int(v) for k, v in (best or {}).items() if k.startswith("frames_")}


def delta(a: dict, b: dict) -> dict:
    return {k: b.get(k, 0) - a.get(k, 0) for k in sorted(set(a) | set(b))}


def parse_final_counters(log: str) -> dict | None:
    """The node's ``final counters: k=v, ...`` line as a dict of ints."""
    found = re.findall(r"final counters: (.*)", log)
    if not found:
        return None
    return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", found[-1])}


def analyse(args, t0_ns, sent, answered, diags, rss, events, final, end_ns):
    period_ns = int(args.fault_every_s * 1e9)
    periods = []
    # the feed ends a few ms after duration_s: no period for that tail (it joins the last one)
    n_periods = max(1, round((end_ns - t0_ns) / period_ns))
    for k in range(n_periods):
        lo = t0_ns + k * period_ns
        hi = end_ns + 1 if k == n_periods - 1 else t0_ns + (k + 1) * period_ns
        offered = sum(1 for cam in sent for s in cam if lo <= s < hi)
        lat = [(answered[c][s] - s) / 1e6 for c, cam in enumerate(sent) for s in cam
               if lo <= s < hi and s in answered[c]]
        d = delta(counters_at(diags, lo), counters_at(diags, hi))
        dropped = {k[len("frames_dropped_"):]: v for k, v in d.items()
                   if k.startswith("frames_dropped_") and v}
        samples = [kib for t, kib in rss if lo <= t < hi]
        fault = [e for e in events if lo <= e["start_ns"] < hi]
        periods.append({
            "period": k, "start_s": round((lo - t0_ns) / 1e9, 1),
            "end_s": round((hi - t0_ns) / 1e9, 1),
            "offered": offered, "received": d.get("frames_received", 0),
            "published": d.get("frames_published", 0), "dropped": dropped,
            "in_flight_at_bounds": d.get("frames_received", 0) - d.get("frames_published", 0)
            - sum(dropped.values()),
            "detections_matched": len(lat),
            "latency_ms_p50": pct(lat, 50), "latency_ms_p90": pct(lat, 90),
            "latency_ms_p99": pct(lat, 99),
            "rss_mib_end": round(samples[-1] / 1024, 1) if samples else None,
            "rss_mib_max": round(max(samples) / 1024, 1) if samples else None,
            "fault": fault[0]["fault"] if fault else "",
            "fault_error": fault[0]["error"] if fault else "",
            "recovery_s": fault[0].get("recovery_s") if fault else None,
            "recovery_fresh_s": fault[0].get("recovery_fresh_s") if fault else None})
    return periods


def recovery(events, answered):
    """Per fault: seconds from its end to the first detection received after it (any frame) and
    to the first detection of a frame published after it."""
    arrivals = sorted((arr, stamp) for cam in answered for stamp, arr in cam.items())
    for e in events:
        end = e["end_ns"]
        after = [a for a, s in arrivals if a >= end]
        fresh = [a for a, s in arrivals if s >= end]
        e["recovery_s"] = round((after[0] - end) / 1e9, 2) if after else None
        e["recovery_fresh_s"] = round((fresh[0] - end) / 1e9, 2) if fresh else None
        e["duration_s"] = round((e["end_ns"] - e["start_ns"]) / 1e9, 2)


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def markdown_table(periods) -> str:
    head = ("| min | fault | fault s | recovery s (any / fresh) | offered | received | published "
            "| dropped stale | dropped unavailable | dropped other | in flight | p50 ms | p90 ms "
            "| p99 ms | node RSS MiB (end) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for p in periods:
        other = {k: v for k, v in p["dropped"].items()
                 if k not in ("stale", "server_unavailable")}
        lines.append("| " + " | ".join([
            f"{p['start_s'] / 60:.0f}-{p['end_s'] / 60:.0f}" if p['end_s'] - p['start_s'] >= 60
            else f"{p['start_s']:.0f}-{p['end_s']:.0f} s",
            p["fault"] + (" (error)" if p["fault_error"] else ""),
            fmt(p.get("fault_s")),
            f"{fmt(p['recovery_s'], 2)} / {fmt(p['recovery_fresh_s'], 2)}",
            str(p["offered"]), str(p["received"]), str(p["published"]),
            str(p["dropped"].get("stale", 0)), str(p["dropped"].get("server_unavailable", 0)),
            ", ".join(f"{k} {v}" for k, v in other.items()) or "0",
            str(p["in_flight_at_bounds"]),
            fmt(p["latency_ms_p50"]), fmt(p["latency_ms_p90"]), fmt(p["latency_ms_p99"]),
            fmt(p["rss_mib_end"])]) + " |")
    return "\n".join(lines)


def plot(path: Path, t0_ns, sent, answered, rss, events, bin_s: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    ts = [(t - t0_ns) / 1e9 for t, _ in rss]
    ax1.plot(ts, [k / 1024 for _, k in rss], color="tab:blue", lw=1)
    ax1.set_ylabel("detect_node RSS (MiB)")
    ax1.grid(alpha=0.3)
    pairs = sorted(((s - t0_ns) / 1e9, (answered[c][s] - s) / 1e6)
                   for c, cam in enumerate(sent) for s in cam if s in answered[c])
    if pairs:
        end = max(t for t, _ in pairs)
        edges = np.arange(0, end + bin_s, bin_s)
        mids, p50, p99 = [], [], []
        for lo in edges:
            vals = [v for t, v in pairs if lo <= t < lo + bin_s]
            if vals:
                mids.append(lo + bin_s / 2)
                p50.append(np.percentile(vals, 50))
                p99.append(np.percentile(vals, 99))
        ax2.plot(mids, p50, label="p50", color="tab:green", marker=".")
        ax2.plot(mids, p99, label="p99", color="tab:red", marker=".")
        ax2.set_ylim(bottom=0)
    ax2.set_ylabel(f"latency ms (per {bin_s:g} s of publish time)")
    ax2.set_xlabel("time since start of the feed (s)")
    ax2.grid(alpha=0.3)
    colours = {"kill": "black", "stop": "tab:purple", "unload": "tab:orange"}
    for e in events:
        for ax in (ax1, ax2):
            ax.axvspan((e["start_ns"] - t0_ns) / 1e9, (e["end_ns"] - t0_ns) / 1e9,
                       color=colours.get(e["fault"], "grey"), alpha=0.25)
        ax1.annotate(e["fault"], ((e["start_ns"] - t0_ns) / 1e9, 1.0),
                     xycoords=("data", "axes fraction"), fontsize=8, va="bottom")
    ax2.legend(loc="upper right")
    fig.suptitle("detect_node soak: 4 cameras x 15 fps, faults shaded")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


# -- main --------------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=600.0)
    parser.add_argument("--fault-every-s", type=float, default=60.0)
    parser.add_argument("--fps", type=float, default=15.0, help="frames/s per camera")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--stop-s", type=float, default=5.0, help="SIGSTOP duration")
    parser.add_argument("--unload-s", type=float, default=5.0, help="unloaded duration")
    parser.add_argument("--out-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--log-dir", type=Path, default=REPO / "out" / "bench" / "soak_logs")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    env = apply_localhost_ros_env()  # before rclpy.init; the node gets the same environment
    args.log_dir.mkdir(parents=True, exist_ok=True)

    def on_term(*_):
        STOP.append(1)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from triton_ros.tools.local_server import LocalTritonServer

    load_start = load_avg()
    print(f"bench_soak: {os.cpu_count()} CPUs, load average {load_start}, "
          f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}", flush=True)
    frames, source = load_frames(32, args.width, args.height)
    raws = serialized_frames(frames, CAMERAS, per_camera=8)
    server = LocalTritonServer(models=[MODEL], log_path=args.log_dir / "tritonserver.log")
    node = probe = executor = spin = None
    namespace = f"/soak_{os.getpid()}"
    sent = [dict() for _ in range(CAMERAS)]   # camera -> {stamp_ns: None}
    rss, events = [], []
    final = None
    try:
        server.start(timeout_s=120)
        print(f"tritonserver on {server.grpc_url} (pid {server.process.pid})", flush=True)
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        executor = SingleThreadedExecutor()
        probe = Probe(namespace, CAMERAS, "soak")
        executor.add_node(probe.node)
        spin = threading.Thread(target=executor.spin, daemon=True)
        spin.start()
        params = {"server_url": server.grpc_url, "protocol": "grpc", "model_name": MODEL,
                  "cameras": [f"cam{i}" for i in range(CAMERAS)],
                  "image_reliability": "best_effort", "shared_memory": "auto",
                  "reconnect_initial_s": 0.2, "reconnect_max_s": 2.0,
                  "request_timeout_s": 2.0, "diagnostics_period_s": 0.5}
        node = NodeProcess("triton_ros.ros.detect_node", params, namespace=namespace,
                           log_path=args.log_dir / "detect_node.log", env=env,
                           new_session=True)
        node.wait_for_output(f"ready: {CAMERAS} camera(s)", timeout_s=90)
        deadline = time.monotonic() + 30
        while not probe.connected():
            if time.monotonic() > deadline or not node.alive():
                raise RuntimeError(f"no DDS match with the node; log {node.log_path}")
            time.sleep(0.05)
        print(f"detect_node pid {node.pid} ready; feeding {CAMERAS} x {args.fps:g} fps of "
              f"{args.width}x{args.height} ({source}) for {args.duration_s:g} s, a fault every "
              f"{args.fault_every_s:g} s ({' -> '.join(FAULTS)})", flush=True)

        t0_ns = time.time_ns()
        start = time.monotonic()
        end = start + args.duration_s
        schedule = [start + k * args.fault_every_s + args.fault_every_s / 2
                    for k in range(int(args.duration_s // args.fault_every_s))]

        def faults():
            for k, at in enumerate(schedule):
                while time.monotonic() < at:
                    if STOP:
                        return
                    time.sleep(0.1)
                kind = FAULTS[k % len(FAULTS)]
                event = inject(kind, server, args)
                events.append(event)
                print(f"[{(event['start_ns'] - t0_ns) / 1e9:6.1f} s] fault {kind}: "
                      f"{(event['end_ns'] - event['start_ns']) / 1e9:.1f} s"
                      + (f" ERROR {event['error']}" if event["error"] else ""), flush=True)
        fault_thread = threading.Thread(target=faults, daemon=True)
        fault_thread.start()

        def sample_rss():
            while not STOP and time.monotonic() < end + 1:
                kib = rss_kib(node.pid)
                if kib is not None:
                    rss.append((time.time_ns(), kib))
                time.sleep(1.0)
        rss_thread = threading.Thread(target=sample_rss, daemon=True)
        rss_thread.start()

        period = 1.0 / args.fps
        due = [start + i * period / CAMERAS for i in range(CAMERAS)]  # phases spread evenly
        seq = [0] * CAMERAS
        next_report = start + 30
        while not STOP:
            now = time.monotonic()
            if now >= end:
                break
            for i in range(CAMERAS):
                if due[i] <= now:
                    stamp = time.time_ns()
                    probe.publishers[i].publish(with_stamp(raws[i][seq[i] % len(raws[i])],
                                                           stamp))
                    sent[i][stamp] = None
                    seq[i] += 1
                    due[i] += period
                    if due[i] < now - period:  # fell behind (CPU busy): no burst, skip ahead
                        due[i] = now
            if now >= next_report:
                last = probe.last_diagnostics()
                v = last[1] if last else {}
                print(f"[{now - start:6.1f} s] offered {sum(map(len, sent))}, node received "
                      f"{v.get('frames_received')}, published {v.get('frames_published')}, "
                      f"connection {v.get('connection')}, RSS "
                      f"{rss[-1][1] / 1024 if rss else 0:.0f} MiB, load {load_avg()[0]}",
                      flush=True)
                next_report += 30
            time.sleep(max(0.0, min(due) - time.monotonic()))
        end_ns = time.time_ns()
        fault_thread.join(timeout=args.stop_s + args.unload_s + 150)

        # Drain: until the node has accounted for every frame it received (or 15 s).
        drain_deadline = time.monotonic() + 15.0
        while time.monotonic() < drain_deadline:
            last = probe.last_diagnostics()
            if last and last[0] > time.time_ns() - 600_000_000 and last[0] > end_ns:
                v = last[1]
                done = int(v["frames_published"]) + sum(
                    int(x) for k, x in v.items() if k.startswith("frames_dropped_"))
                if done >= int(v["frames_received"]):
                    break
            time.sleep(0.1)
        time.sleep(0.5)  # the last detections (reliable) in flight
        node_exit = node.stop()
        final = parse_final_counters(node.output())
    finally:
        if node is not None and node.alive():
            node.stop()
        if executor is not None:
            executor.shutdown(timeout_sec=2)
            rclpy.try_shutdown()
        if spin is not None:
            spin.join(timeout=3)
        server.cleanup()
    if STOP:
        print("interrupted", file=sys.stderr)
        return 130

    with probe.lock:
        answered = [dict(a) for a in probe.answered]
        diags = sorted(probe.diagnostics, key=lambda d: d[0])
    recovery(events, answered)
    periods = analyse(args, t0_ns, sent, answered, diags, rss, events, final, end_ns)
    for p in periods:
        f = [e for e in events if t0_ns + p["start_s"] * 1e9 <= e["start_ns"]
             < t0_ns + p["end_s"] * 1e9]
        p["fault_s"] = f[0]["duration_s"] if f else None
    offered = sum(map(len, sent))
    accounted = None
    if final:
        dropped_total = sum(v for k, v in final.items() if k.startswith("dropped_"))
        accounted = {"offered": offered, "received": final.get("received"),
                     "published": final.get("published"), "dropped_total": dropped_total,
                     "dropped": {k: v for k, v in final.items() if k.startswith("dropped_")},
                     "left_pending": final.get("left_pending"),
                     "received_eq_published_plus_dropped":
                         final.get("received") == final.get("published", 0) + dropped_total,
                     "received_eq_offered": final.get("received") == offered}
    rss_mib = [k / 1024 for _, k in rss]
    rss_summary = {"start_mib": round(rss_mib[0], 1), "end_mib": round(rss_mib[-1], 1),
                   "max_mib": round(max(rss_mib), 1),
                   "first_minute_max_mib": round(max(k / 1024 for t, k in rss
                                                     if t < t0_ns + 60e9), 1)} if rss else {}
    all_lat = [(answered[c][s] - s) / 1e6 for c, cam in enumerate(sent) for s in cam
               if s in answered[c]]
    table = markdown_table(periods)
    load_end = load_avg()
    print()
    print(table)
    print()
    print(f"node RSS: {rss_summary}")
    print(f"final counters: {final}; node exit code {node_exit}")
    print(f"accounting: {accounted}")
    print("faults: " + "; ".join(f"{e['fault']} {e['duration_s']} s -> recovery "
                                 f"{e['recovery_s']} s (fresh frame {e['recovery_fresh_s']} s)"
                                 + (f" ERROR {e['error']}" if e['error'] else "")
                                 for e in events))
    print(f"latency over the run: p50 {pct(all_lat, 50)} p90 {pct(all_lat, 90)} "
          f"p99 {pct(all_lat, 99)} ms over {len(all_lat)} detections; "
          f"load average start {load_start} end {load_end}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    plot(args.out_dir / "soak.png", t0_ns, sent, answered, rss, events,
         bin_s=max(5.0, args.fault_every_s / 6))
    (args.out_dir / "soak.json").write_text(json.dumps({
        "benchmark": "soak", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "load_avg_start": load_start,
                    "load_avg_end": load_end},
        "settings": {"duration_s": args.duration_s, "fault_every_s": args.fault_every_s,
                     "cameras": CAMERAS, "fps_per_camera": args.fps,
                     "image": f"{args.width}x{args.height} bgr8", "frames_source": source,
                     "stop_s": args.stop_s, "unload_s": args.unload_s, "model": MODEL,
                     "node_params": {k: v for k, v in params.items() if k != "server_url"}},
        "periods": periods,
        "faults": [{k: v for k, v in e.items()} | {
            "start_s": round((e["start_ns"] - t0_ns) / 1e9, 2),
            "end_s": round((e["end_ns"] - t0_ns) / 1e9, 2)} for e in events],
        "rss": rss_summary,
        "rss_samples_mib": [[round((t - t0_ns) / 1e9, 1), round(k / 1024, 1)] for t, k in rss],
        "latency_ms_overall": {"p50": pct(all_lat, 50), "p90": pct(all_lat, 90),
                               "p99": pct(all_lat, 99), "count": len(all_lat)},
        "final_counters": final, "accounting": accounted, "node_exit_code": node_exit,
        "markdown_table": table}, indent=1))
    print(f"wrote {args.out_dir / 'soak.json'} and soak.png")
    ok = accounted and accounted["received_eq_published_plus_dropped"] and \
        all(e["recovery_s"] is not None for e in events)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
