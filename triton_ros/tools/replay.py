"""Replay a rosbag2 (MCAP or sqlite3) into the node(s) under test and record what they answer.

Like ``ros2 bag play --clock`` (``/clock``, remaps, rate, start offset, duration, topic selection;
raw CDR published as recorded), plus:

- ``--lock-step``: the next image is published only when every watched output topic has answered
  the previous one (a Detection2DArray with that image's stamp), or after ``--timeout`` (counted).
  Results then do not depend on machine speed. Paced mode (default) follows bag time / ``--rate``.
- ``--start detect`` / ``--start detect+track``: start the node(s) with NodeProcess against
  ``--server-url`` or a ``--local-server``; without ``--start`` it drives nodes already running.
- ``--out DIR``: ``detections.json`` (schema in :mod:`triton_ros.replay_record`), ``timing.json``
  (per-topic latency, publish to answer), ``summary.json`` and ``outputs/`` (an MCAP bag of the
  detections and input image headers, for Foxglove / ros2 bag).

Exit code: 0 when every image was answered on every watched topic, 2 when some were not (timeouts
or missing answers), 1 on errors, 130 on Ctrl-C. Everything it started is stopped on exit.
"""
import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from triton_ros.replay_record import (array_to_detections, detections_document, dump_json,
                                      header_stamp, write_output_bag)
from triton_ros.tools.local_env import apply_localhost_ros_env

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DETECTIONS = "/camera/detections"
TRACKED = "/camera/tracked_detections"
STARTABLE = ("detect", "detect+track")


def parse_remap(text: str) -> tuple[str, str]:
    src, sep, dst = text.partition(":=")
    if not sep or not src or not dst:
        raise argparse.ArgumentTypeError(f"remap {text!r} is not FROM:=TO")
    return src, dst


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="replay", description=__doc__.splitlines()[0])
    parser.add_argument("bag", type=Path, help="rosbag2 directory (MCAP or sqlite3)")
    parser.add_argument("--out", type=Path, default=None, help="write results here")
    parser.add_argument("--topics", nargs="+", default=None,
                        help="bag topics to play (default: all)")
    parser.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC,
                        help="bag topic whose messages are the frames answered by the nodes "
                             "(gated in lock-step)")
    parser.add_argument("--remap", action="append", type=parse_remap, default=[],
                        metavar="FROM:=TO", help="publish bag topic FROM on TO (repeatable)")
    parser.add_argument("--watch", action="append", default=[], metavar="TOPIC",
                        help="Detection2DArray output topic to wait for / record (repeatable; "
                             "default with --start: the started nodes' outputs)")
    parser.add_argument("--lock-step", action="store_true",
                        help="publish the next image only when every watched topic answered")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="lock-step: seconds to wait for an answer before moving on")
    parser.add_argument("--rate", type=float, default=1.0, help="paced mode: speed factor")
    parser.add_argument("--start-offset", type=float, default=0.0,
                        help="skip this many seconds from the bag start")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="play this many seconds of bag time (0 = to the end)")
    parser.add_argument("--frames", type=int, default=0, help="stop after N images (0 = all)")
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    parser.add_argument("--start", choices=STARTABLE, default=None,
                        help="start these node(s) (use_sim_time, reliable image QoS)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="detect node parameter (repeatable)")
    parser.add_argument("--track-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="track node parameter (repeatable)")
    parser.add_argument("--server-url", default="", help="Triton host:port for started nodes")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    parser.add_argument("--local-server", action="store_true",
                        help="start a local tritonserver (127.0.0.1) for the started nodes")
    parser.add_argument("--model-name", default="ssd_mobilenet_v2_coco")
    parser.add_argument("--node-timeout", type=float, default=120.0,
                        help="seconds to wait for nodes and subscriptions to come up")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    if args.start and not (args.server_url or args.local_server):
        parser.error("--start needs --server-url or --local-server")
    if not args.start and not args.watch:
        parser.error("give --watch TOPIC (nodes already running) or --start")
    return args


def select_messages(reader, topics, start_offset_s: float, duration_s: float):
    """Yield (topic, msgtype, log time ns, raw) of ``topics`` within [offset, offset+duration)."""
    connections = [c for c in reader.connections if topics is None or c.topic in topics]
    if topics is not None:
        missing = set(topics) - {c.topic for c in connections}
        if missing:
            raise ValueError(f"bag has no topic(s) {sorted(missing)}; it has "
                             f"{sorted({c.topic for c in reader.connections})}")
    first = reader.start_time + int(start_offset_s * 1e9)
    stop = first + int(duration_s * 1e9) if duration_s > 0 else None
    for connection, log_ns, raw in reader.messages(connections=connections, start=first,
                                                   stop=stop):
        yield connection.topic, connection.msgtype, log_ns, bytes(raw)


class Answers:
    """Watched topics' answers, keyed by header stamp; thread-safe, with a wait."""

    def __init__(self, topics):
        self.topics = list(topics)
        self.detections = {t: {} for t in self.topics}
        self.raw = {t: [] for t in self.topics}
        self.received_at = {t: {} for t in self.topics}
        self._cond = threading.Condition()

    def add(self, topic: str, stamp: int, detections: list, raw: bytes) -> None:
        with self._cond:
            if stamp not in self.detections[topic]:  # first answer per stamp counts
                self.detections[topic][stamp] = detections
                self.raw[topic].append((stamp, raw))
                self.received_at[topic][stamp] = time.monotonic()
            self._cond.notify_all()

    def answered(self, stamp: int) -> bool:
        return all(stamp in self.detections[t] for t in self.topics)

    def wait(self, stamp: int, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.answered(stamp), timeout_s)

    def wait_all(self, stamps, timeout_s: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: all(self.answered(s) for s in stamps), timeout_s)


class ReplayNode:
    """The rclpy side: publishers for the bag's topics, subscriptions to the watched topics."""

    def __init__(self, watch, reliable: bool, clock: bool):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rclpy.serialization import deserialize_message
        from rosgraph_msgs.msg import Clock
        from vision_msgs.msg import Detection2DArray
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("triton_ros_replay", context=self.context)
        self.answers = Answers(watch)
        self._qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliable
                               else ReliabilityPolicy.BEST_EFFORT)
        self._publishers = {}
        self.subscriptions = []
        for topic in watch:
            def on_answer(raw, topic=topic):
                msg = deserialize_message(raw, Detection2DArray)
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                self.answers.add(topic, stamp, array_to_detections(msg), raw)
            self.subscriptions.append(self.node.create_subscription(
                Detection2DArray, topic, on_answer,
                QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE), raw=True))
        self.clock = self.node.create_publisher(Clock, "/clock", 10) if clock else None
        self._Clock = Clock
        # Single-threaded executor: a multi-threaded one starves the publishing thread (GIL).
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def publisher(self, topic: str, msgtype: str):
        if topic not in self._publishers:
            import importlib
            package, _, name = msgtype.split("/")
            cls = getattr(importlib.import_module(f"{package}.msg"), name)
            self._publishers[topic] = self.node.create_publisher(cls, topic, self._qos)
        return self._publishers[topic]

    def publish_clock(self, stamp_ns: int) -> None:
        if self.clock is not None:
            msg = self._Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(stamp_ns, 1_000_000_000)
            self.clock.publish(msg)

    def wait_matched(self, publisher, min_subscribers: int, watch_publishers: bool,
                     alive, timeout_s: float) -> None:
        """Block until ``publisher`` matched ``min_subscribers`` and every watched topic has a
        publisher matched to our subscription; RuntimeError on timeout or a dead node."""
        deadline = time.monotonic() + timeout_s
        while True:
            ok = publisher.get_subscription_count() >= min_subscribers and (
                not watch_publishers or all(s.get_publisher_count() > 0
                                            for s in self.subscriptions))
            if ok:
                return
            problem = alive()
            if problem:
                raise RuntimeError(problem)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no subscriber on {publisher.topic_name} or no publisher on "
                    f"{[s.topic_name for s in self.subscriptions]} after {timeout_s:.0f} s")
            time.sleep(0.05)

    def close(self) -> None:
        import rclpy
        self.executor.shutdown()
        self.thread.join(timeout=5)  # a still-running spin thread aborts the interpreter at exit
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


class Progress:
    """One progress line on stderr: rewritten in place on a terminal (twice a second at most),
    else a new line every 10 s."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet, self._last = total, quiet, 0.0
        self.tty = sys.stderr.isatty()

    def update(self, done: int, timeouts: int, force: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not force and now - self._last < (0.5 if self.tty else 10.0)):
            return
        self._last = now
        total = f"/{self.total}" if self.total else ""
        text = f"replay: {done}{total} frames, {timeouts} timeout(s)"
        if self.tty:
            print("\r" + text, end="\n" if force else "", file=sys.stderr, flush=True)
        else:
            print(text, file=sys.stderr, flush=True)


def start_nodes(args, out: Path, image_topic: str, server_url: str):
    """NodeProcess(es) for ``--start``; returns (processes, watched topics)."""
    from triton_ros.tools.node_process import NodeProcess
    params = {"server_url": server_url, "protocol": args.protocol, "model_name": args.model_name,
              "use_sim_time": True, "image_reliability": "reliable", "queue_size": 8,
              "publish_debug_image": False}
    leaf = "image/compressed" if image_topic.endswith("/compressed") else "image"
    extra = [a for p in args.param for a in ("-p", p)]
    if leaf == "image/compressed":
        extra += ["-p", "subscribe_compressed:=true"]
    processes = [NodeProcess("triton_ros.ros.detect_node", params,
                             remaps={leaf: image_topic, "detections": DETECTIONS},
                             log_path=out / "detect_node.log", extra_args=extra)]
    watch = [DETECTIONS]
    if args.start == "detect+track":
        processes.append(NodeProcess(
            "triton_ros.ros.track_node",
            {"server_url": server_url, "protocol": "grpc", "use_sim_time": True,
             "queue_size": 100},
            remaps={"detections": DETECTIONS, "tracked_detections": TRACKED},
            log_path=out / "track_node.log",
            extra_args=[a for p in args.track_param for a in ("-p", p)]))
        watch.append(TRACKED)
    return processes, watch


def run(args) -> int:
    import tempfile

    from rosbags.rosbag2 import Reader
    out = args.out or Path(tempfile.mkdtemp(prefix="triton_ros_replay_"))
    out.mkdir(parents=True, exist_ok=True)
    env = apply_localhost_ros_env()
    remap = dict(args.remap)
    image_topic = remap.get(args.image_topic, args.image_topic)
    server = node = None
    processes = []
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append("SIGTERM"))
    # Ctrl-C raises KeyboardInterrupt even where SIGINT was inherited as ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with Reader(args.bag) as reader:
            types = {c.topic: c.msgtype for c in reader.connections}
            if args.image_topic not in types or types[args.image_topic] not in IMAGE_TYPES:
                print(f"replay: bag has no image topic {args.image_topic}; it has "
                      f"{sorted(types)}", file=sys.stderr)
                return 1
            topics = args.topics
            if topics is not None and args.image_topic not in topics:
                topics = [*topics, args.image_topic]
            total = sum(c.msgcount for c in reader.connections if c.topic == args.image_topic)
            if args.frames:
                total = min(total, args.frames)
            watch = list(args.watch)
            if args.start:
                server_url = args.server_url
                if args.local_server:
                    from triton_ros.tools.local_server import LocalTritonServer
                    models = [args.model_name] + (["simple_tracker"]
                                                  if args.start == "detect+track" else [])
                    print(f"replay: starting tritonserver ({', '.join(models)}) ...",
                          file=sys.stderr)
                    server = LocalTritonServer(log_path=out / "tritonserver.log",
                                               models=models).start(120)
                    server_url = server.grpc_url if args.protocol == "grpc" else server.http_url
                print(f"replay: starting {args.start} against {server_url} "
                      f"(ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}) ...", file=sys.stderr)
                processes, started_watch = start_nodes(args, out, image_topic, server_url)
                watch = watch or started_watch
            node = ReplayNode(watch, reliable=True, clock=not args.no_clock)

            def dead() -> str:
                for p in processes:
                    if not p.alive():
                        return f"{p.log_path.name}: node exited:\n{p.output()[-2000:]}"
                return "interrupted" if stopping else ""

            image_pub = node.publisher(image_topic, types[args.image_topic])
            # detect+track: the track node's subscription on the detections topic must match
            # before the first frame too (we subscribe there as well, hence >= 2).
            node.wait_matched(image_pub, 1, True, dead, args.node_timeout)
            if args.start == "detect+track":
                # track_node subscribes at construction but drops input until its lifecycle
                # is active (after the model is discovered): wait for that, as it logs it.
                processes[1].wait_for_output("active: subscribed", args.node_timeout)
                deadline = time.monotonic() + args.node_timeout
                while node.node.count_subscribers(DETECTIONS) < 2:
                    if dead() or time.monotonic() > deadline:
                        raise RuntimeError(dead() or "track node did not subscribe")
                    time.sleep(0.05)
                # Whether detect_node's writer has matched that reader is only visible inside
                # detect_node; discovery on loopback takes milliseconds, this is the margin.
                time.sleep(1.0)
            result = play(args, reader, topics, remap, types, node, total, stopping)
        inputs, sent_at, timeouts = result
        if not args.lock_step:  # paced: give the last frames their chance to be answered
            node.answers.wait_all([s for s, _ in inputs], args.timeout)
        return write_outputs(out, args, image_topic, inputs, sent_at, timeouts, node.answers)
    except KeyboardInterrupt:
        print("\nreplay: interrupted; stopping everything", file=sys.stderr)
        return 130
    except (RuntimeError, ValueError, FileNotFoundError, TimeoutError) as exc:  # NodeStartError too
        print(f"\nreplay: {exc}", file=sys.stderr)
        return 1
    finally:
        for p in processes:
            p.stop()
        if node is not None:
            node.close()
        if server is not None:
            server.cleanup()


def play(args, reader, topics, remap, types, node, total, stopping):
    """Publish the selection; returns (inputs [(stamp, frame_id)], sent_at {stamp: t}, timeouts)."""
    progress = Progress(total, args.quiet)
    inputs, sent_at, timeouts = [], {}, 0
    start_wall = start_bag = None
    for topic, msgtype, log_ns, raw in select_messages(reader, topics, args.start_offset,
                                                       args.duration):
        if stopping or (args.frames and len(inputs) >= args.frames):
            break
        if not args.lock_step:
            if start_wall is None:
                start_wall, start_bag = time.monotonic(), log_ns
            delay = start_wall + (log_ns - start_bag) / 1e9 / args.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        node.publish_clock(log_ns)
        publisher = node.publisher(remap.get(topic, topic), msgtype)
        if topic != args.image_topic:
            publisher.publish(raw)
            continue
        stamp, frame_id = header_stamp(raw)
        inputs.append((stamp, frame_id))
        sent_at[stamp] = time.monotonic()
        publisher.publish(raw)
        if args.lock_step and not node.answers.wait(stamp, args.timeout):
            timeouts += 1
        progress.update(len(inputs), timeouts)
    progress.update(len(inputs), timeouts, force=True)
    return inputs, sent_at, timeouts


def latency_stats(values_ms: list[float]) -> dict:
    import numpy as np
    if not values_ms:
        return {"count": 0}
    v = np.asarray(values_ms)
    return {"count": len(v), "mean_ms": round(float(v.mean()), 2),
            **{f"p{q}_ms": round(float(np.percentile(v, q)), 2) for q in (50, 90, 99)},
            "max_ms": round(float(v.max()), 2)}


def write_outputs(out: Path, args, image_topic, inputs, sent_at, timeouts, answers) -> int:
    with answers._cond:
        detections = {t: dict(d) for t, d in answers.detections.items()}
        raw = {t: sorted(r) for t, r in answers.raw.items()}
        received_at = {t: dict(r) for t, r in answers.received_at.items()}
    stamps = {s for s, _ in inputs}
    dump_json(detections_document(inputs, answers.topics, detections), out / "detections.json")
    timing = {"topics": {}}
    for topic in answers.topics:
        latencies = {str(s): round((received_at[topic][s] - sent_at[s]) * 1000.0, 3)
                     for s, _ in inputs if s in received_at[topic]}
        timing["topics"][topic] = {"latency_ms": latencies,
                                   "stats": latency_stats(list(latencies.values()))}
    (out / "timing.json").write_text(json.dumps(timing, indent=1))
    unanswered = {t: sum(s not in detections[t] for s in stamps) for t in answers.topics}
    summary = {"bag": str(args.bag), "mode": "lock-step" if args.lock_step else "paced",
               "rate": None if args.lock_step else args.rate, "frames": len(inputs),
               "timeouts": timeouts, "unanswered": unanswered,
               "latency": {t: timing["topics"][t]["stats"] for t in answers.topics}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    write_output_bag(out / "outputs", image_topic, inputs,
                     {t: [(s, r) for s, r in raw[t] if s in stamps] for t in answers.topics})
    print(f"replay: {len(inputs)} frames ({summary['mode']}), {timeouts} timeout(s), "
          f"unanswered {unanswered} -> {out}/", file=sys.stderr)
    if not inputs:
        return 1
    return 2 if any(unanswered.values()) else 0


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
