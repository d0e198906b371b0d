"""Replay a rosbag2 (MCAP or sqlite3) into the node(s) under test and record what they answer.

Like ``ros2 bag play --clock`` (``/clock``, remaps, rate, start offset, duration, topic selection;
raw CDR published as recorded), plus:

- ``--lock-step``: the next image is published only when every watched output topic has answered
  the one just sent (a Detection2DArray with its stamp), or after ``--timeout`` (counted). The
  answer is recorded for the frame that was sent, not looked up by stamp, so frames that share a
  header stamp (or all have stamp 0) each get their own detections. Results then do not depend
  on machine speed. Paced mode (default) follows bag time / ``--rate``; there, answers to frames
  that share a stamp are matched in publish order (a frame the node dropped shifts them: use
  lock-step for such bags). Repeated stamps are warned about and counted in ``summary.json``.
- ``--start detect`` / ``--start detect+track``: start the node(s) with NodeProcess against
  ``--server-url`` or a ``--local-server``; without ``--start`` it drives nodes already running.
- ``--out DIR``: ``detections.json`` (schema in :mod:`triton_ros.replay_record`), ``timing.json``
  (per-frame latency, publish to answer), ``summary.json`` and ``outputs/`` (an MCAP bag of the
  detections and input image headers, for Foxglove / ros2 bag).
"""
import argparse
import json
import sys
import threading
import time
from pathlib import Path

from triton_ros.replay_record import (array_to_detections, detections_document, dump_json,
                                      header_stamp, write_output_bag)
from triton_ros.tools.local_env import apply_localhost_ros_env
from triton_ros.tools.stop_signals import Interrupted, StopSignals

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
DEFAULT_IMAGE_TOPIC = "/camera/image_raw"
DETECTIONS = "/camera/detections"
TRACKED = "/camera/tracked_detections"
STARTABLE = ("detect", "detect+track")

# Exit codes (also in --help and docs/replay.md).
OK, UNANSWERED, INPUT_ERROR, RUN_ERROR = 0, 1, 2, 3
EPILOG = """\
outputs (in --out, default a new temporary directory):
  detections.json  per input image: stamp_ns, frame_id, processed, detections (per topic)
  timing.json      per topic: latency per frame (publish -> answer, ms) and statistics
  summary.json     frames, timeouts, unanswered per topic, repeated_stamps, interrupted, signal
  outputs/         MCAP bag: input image headers and the detections as received
  *.log            started nodes' and tritonserver's logs

exit codes:
  0    every image was answered on every watched topic
  1    some images were not answered (timeouts, missing answers) or no image was played
  2    input error (arguments, bag, topics, no server venv): one line; nothing started, no --out
  3    the run failed (server or node did not start or died)
  130  interrupted by SIGINT, 143 by SIGTERM (summary.json says interrupted: true)
"""


class InputError(Exception):
    """Bad arguments or bag content: one line, exit 2, found before anything starts."""


def parse_remap(text: str) -> tuple[str, str]:
    src, sep, dst = text.partition(":=")
    if not sep or not src or not dst:
        raise argparse.ArgumentTypeError(f"remap {text!r} is not FROM:=TO")
    return src, dst


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in each option's help, and the epilog's layout kept."""


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="replay", description=__doc__.splitlines()[0],
                                     epilog=EPILOG, formatter_class=_HelpFormatter)
    parser.add_argument("bag", type=Path, help="rosbag2 directory (MCAP or sqlite3)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write results here (default: a new temporary directory)")
    parser.add_argument("--topics", nargs="+", default=None,
                        help="bag topics to play (default: all); the image topic is always "
                             "played")
    parser.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC,
                        help="bag topic (sensor_msgs/Image or CompressedImage) whose messages "
                             "are the frames answered by the nodes (gated in lock-step)")
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
    parser.add_argument("--server-venv", type=Path, default=None,
                        help="--local-server: venv with nvidia-pytriton (default: "
                             "$TRITON_ROS_SERVER_VENV, then the path scripts/bootstrap.sh "
                             "recorded, then the checkout's .venv-server)")
    parser.add_argument("--model-name", default="ssd_mobilenet_v2_coco",
                        help="--start: the detect node's model_name (a model of the server's "
                             "repository; --local-server loads only it, plus simple_tracker for "
                             "detect+track)")
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


def check_bag(reader, args) -> dict[str, str]:
    """{topic: msgtype} of the bag; InputError (one line) for an unusable image topic or a
    ``--topics`` entry the bag lacks."""
    types = {c.topic: c.msgtype for c in reader.connections}
    images = sorted(t for t, m in types.items() if m in IMAGE_TYPES)
    topic = args.image_topic
    if topic not in types:
        raise InputError(f"bag has no topic {topic} (--image-topic, default "
                         f"{DEFAULT_IMAGE_TOPIC}); its image topics: {images or 'none'}; pass "
                         f"one with --image-topic")
    if types[topic] not in IMAGE_TYPES:
        raise InputError(f"--image-topic {topic} is a {types[topic]} topic, not an image "
                         f"({' or '.join(IMAGE_TYPES)}); image topics in this bag: "
                         f"{images or 'none'}")
    missing = sorted(set(args.topics or ()) - set(types))
    if missing:
        raise InputError(f"bag has no topic(s) {missing} (--topics); it has {sorted(types)} "
                         f"(the image topic is chosen with --image-topic)")
    return types


def select_messages(reader, topics, start_offset_s: float, duration_s: float):
    """Yield (topic, msgtype, log time ns, raw) of ``topics`` within [offset, offset+duration)."""
    connections = [c for c in reader.connections if topics is None or c.topic in topics]
    first = reader.start_time + int(start_offset_s * 1e9)
    stop = first + int(duration_s * 1e9) if duration_s > 0 else None
    for connection, log_ns, raw in reader.messages(connections=connections, start=first,
                                                   stop=stop):
        yield connection.topic, connection.msgtype, log_ns, bytes(raw)


class Answers:
    """Watched topics' answers in arrival order, and which input frame each one answers.

    Thread-safe (answers arrive on the executor thread). Lock-step: :meth:`wait_for_frame`
    takes, for the frame just sent, the first answer with its stamp that arrived after it was
    sent. Paced (and late lock-step answers): :meth:`match_remaining` gives each unanswered
    frame the earliest unused answer with its stamp, in publish order.
    """

    def __init__(self, topics):
        self.topics = list(topics)
        self.arrivals = {t: [] for t in self.topics}  # (stamp, detections, raw, monotonic time)
        self.frame_answer = {t: {} for t in self.topics}  # frame index -> arrival index
        self._used = {t: set() for t in self.topics}
        self._cond = threading.Condition()

    def add(self, topic: str, stamp: int, detections: list, raw: bytes) -> None:
        with self._cond:
            self.arrivals[topic].append((stamp, detections, raw, time.monotonic()))
            self._cond.notify_all()

    def marks(self) -> dict[str, int]:
        """Arrival counts now (call just before sending a frame)."""
        with self._cond:
            return {t: len(a) for t, a in self.arrivals.items()}

    def _first_new(self, topic: str, stamp: int, mark: int) -> int | None:
        for index in range(mark, len(self.arrivals[topic])):
            if self.arrivals[topic][index][0] == stamp and index not in self._used[topic]:
                return index
        return None

    def wait_for_frame(self, frame: int, stamp: int, marks: dict[str, int],
                       timeout_s: float) -> bool:
        """Lock-step: wait until every topic answered ``stamp`` after ``marks``; record those
        answers for ``frame``. False (nothing recorded for a topic that did not) on timeout."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: all(self._first_new(t, stamp, marks[t]) is not None
                            for t in self.topics), timeout_s)
            for topic in self.topics:
                index = self._first_new(topic, stamp, marks[topic])
                if index is not None:
                    self._used[topic].add(index)
                    self.frame_answer[topic][frame] = index
            return ok

    def match_remaining(self, stamps: list[int]) -> None:
        """Give each frame still without an answer the earliest unused answer with its stamp."""
        with self._cond:
            for topic in self.topics:
                for frame, stamp in enumerate(stamps):
                    if frame in self.frame_answer[topic]:
                        continue
                    index = self._first_new(topic, stamp, 0)
                    if index is not None:
                        self._used[topic].add(index)
                        self.frame_answer[topic][frame] = index

    def wait_all(self, stamps: list[int], timeout_s: float) -> bool:
        """Paced: wait until every topic has at least as many answers per stamp as frames."""
        from collections import Counter
        wanted = Counter(stamps)

        def done():
            return all(Counter(a[0] for a in self.arrivals[t]) >= wanted for t in self.topics)

        with self._cond:
            return self._cond.wait_for(done, timeout_s)

    def per_frame(self, topic: str, frames: int) -> list:
        """[(stamp, detections, raw, received_at) or None] for frames 0..frames-1."""
        with self._cond:
            return [self.arrivals[topic][self.frame_answer[topic][f]]
                    if f in self.frame_answer[topic] else None for f in range(frames)]

    def unused(self, topic: str) -> int:
        with self._cond:
            return len(self.arrivals[topic]) - len(self._used[topic])


class ReplayNode:
    """The rclpy side: publishers for the bag's topics, subscriptions to the watched topics."""

    def __init__(self, watch, reliable: bool, clock: bool):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rclpy.serialization import deserialize_message
        from rosgraph_msgs.msg import Clock
        from vision_msgs.msg import Detection2DArray
        from rclpy.signals import SignalHandlerOptions
        self.context = rclpy.Context()
        # SIGINT/SIGTERM are the tool's (StopSignals): results are written before rclpy stops.
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
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


class Playback:
    """What has been played so far (kept when a signal stops the replay half-way)."""

    def __init__(self):
        self.inputs: list[tuple[int, str]] = []  # (stamp ns, frame_id) per published image
        self.sent_at: list[float] = []           # monotonic publish time per image
        self.timeouts = 0


def open_bag(path: Path):
    """A rosbags Reader, opened; InputError (one line) when ``path`` is not a readable bag."""
    from rosbags.rosbag2 import Reader, ReaderError
    try:
        reader = Reader(path)
        reader.open()
    except (FileNotFoundError, ReaderError) as exc:
        raise InputError(f"cannot read bag {path}: {exc}") from None
    return reader


def run(args) -> int:
    import tempfile
    signals = StopSignals().install()
    server = node = reader = None
    processes = []
    out = None
    playback = Playback()
    remap = dict(args.remap)
    try:
        reader = open_bag(args.bag)
        types = check_bag(reader, args)
        server_venv = None
        if args.start and args.local_server:
            from triton_ros.tools.server_venv import ServerVenvNotFound, find_server_venv
            try:
                server_venv = find_server_venv(args.server_venv)
            except ServerVenvNotFound as exc:
                raise InputError(str(exc)) from None
        # Inputs are fine: from here on the run has an output directory.
        out = args.out or Path(tempfile.mkdtemp(prefix="triton_ros_replay_"))
        out.mkdir(parents=True, exist_ok=True)
        env = apply_localhost_ros_env()
        image_topic = remap.get(args.image_topic, args.image_topic)
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
                server = LocalTritonServer(server_venv=server_venv, models=models,
                                           log_path=out / "tritonserver.log",
                                           die_with_parent=True).start(120)
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
            return ""

        image_pub = node.publisher(image_topic, types[args.image_topic])
        node.wait_matched(image_pub, 1, True, dead, args.node_timeout)
        if args.start == "detect+track":
            # track_node subscribes at construction but drops input until its lifecycle
            # is active (after the model is discovered): wait for that, as it logs it.
            processes[1].wait_for_output("active: subscribed", args.node_timeout)
            deadline = time.monotonic() + args.node_timeout
            # Its subscription on the detections topic must match before the first frame too
            # (we subscribe there as well, hence >= 2).
            while node.node.count_subscribers(DETECTIONS) < 2:
                if dead() or time.monotonic() > deadline:
                    raise RuntimeError(dead() or "track node did not subscribe")
                time.sleep(0.05)
            # Whether detect_node's writer has matched that reader is only visible inside
            # detect_node; discovery on loopback takes milliseconds, this is the margin.
            time.sleep(1.0)
        play(args, reader, topics, remap, node, total, playback)
        if not args.lock_step:  # paced: give the last frames their chance to be answered
            node.answers.wait_all([s for s, _ in playback.inputs], args.timeout)
        signals.disarm()
        return write_outputs(out, args, image_topic, playback, node.answers, None)
    except InputError as exc:
        signals.disarm()
        print(f"replay: {exc}", file=sys.stderr)
        return INPUT_ERROR
    except Interrupted as stop:
        signals.disarm()  # a second signal must not cut the results or the cleanup short
        print(f"\nreplay: interrupted by {stop.name}; stopping everything", file=sys.stderr)
        if out is not None:
            try:
                write_outputs(out, args, remap.get(args.image_topic, args.image_topic), playback,
                              node.answers if node is not None else Answers([]), stop.name)
            except Exception as exc:  # the exit code must still say "interrupted"
                print(f"replay: could not write the partial results: {exc}", file=sys.stderr)
        return stop.exit_code
    except (RuntimeError, ValueError, FileNotFoundError, TimeoutError) as exc:  # NodeStartError too
        signals.disarm()
        print(f"\nreplay: {exc}", file=sys.stderr)
        return RUN_ERROR
    finally:
        signals.disarm()
        for p in processes:
            p.stop()
        if node is not None:
            node.close()
        if server is not None:
            server.cleanup()
        if reader is not None:
            reader.close()


def play(args, reader, topics, remap, node, total, playback: Playback) -> None:
    """Publish the selection, recording into ``playback`` as it goes."""
    progress = Progress(total, args.quiet)
    start_wall = start_bag = None
    for topic, msgtype, log_ns, raw in select_messages(reader, topics, args.start_offset,
                                                       args.duration):
        if args.frames and len(playback.inputs) >= args.frames:
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
        frame = len(playback.inputs)
        marks = node.answers.marks()
        playback.inputs.append((stamp, frame_id))
        playback.sent_at.append(time.monotonic())
        publisher.publish(raw)
        if args.lock_step and not node.answers.wait_for_frame(frame, stamp, marks, args.timeout):
            playback.timeouts += 1
        progress.update(len(playback.inputs), playback.timeouts)
    progress.update(len(playback.inputs), playback.timeouts, force=True)


def repeated_stamps(inputs: list[tuple[int, str]]) -> list[int]:
    """Indices of frames whose header stamp an earlier frame already had."""
    seen, repeated = set(), []
    for index, (stamp, _) in enumerate(inputs):
        if stamp in seen:
            repeated.append(index)
        seen.add(stamp)
    return repeated


def latency_stats(values_ms: list[float]) -> dict:
    import numpy as np
    if not values_ms:
        return {"count": 0}
    v = np.asarray(values_ms)
    return {"count": len(v), "mean_ms": round(float(v.mean()), 2),
            **{f"p{q}_ms": round(float(np.percentile(v, q)), 2) for q in (50, 90, 99)},
            "max_ms": round(float(v.max()), 2)}


def write_outputs(out: Path, args, image_topic, playback: Playback, answers: Answers,
                  interrupted: str | None) -> int:
    """Write detections.json, timing.json, summary.json, outputs/; return the exit code."""
    inputs = playback.inputs
    stamps = [s for s, _ in inputs]
    answers.match_remaining(stamps)
    answered = {t: answers.per_frame(t, len(inputs)) for t in answers.topics}
    repeated = repeated_stamps(inputs)
    if answers.topics:
        dump_json(detections_document(inputs, answers.topics,
                                      {t: [a[1] if a else None for a in answered[t]]
                                       for t in answers.topics}),
                  out / "detections.json")
        write_output_bag(out / "outputs", image_topic, inputs,
                         {t: [(a[0], a[2]) for a in answered[t] if a] for t in answers.topics})
    timing = {"topics": {}}
    for topic in answers.topics:
        latencies = [round((a[3] - playback.sent_at[f]) * 1000.0, 3) if a else None
                     for f, a in enumerate(answered[topic])]
        timing["topics"][topic] = {
            "latency_ms": latencies,  # per input frame, publish order; null = unanswered
            "stats": latency_stats([v for v in latencies if v is not None])}
    (out / "timing.json").write_text(json.dumps(timing, indent=1))
    unanswered = {t: sum(a is None for a in answered[t]) for t in answers.topics}
    summary = {"bag": str(args.bag), "mode": "lock-step" if args.lock_step else "paced",
               "rate": None if args.lock_step else args.rate, "frames": len(inputs),
               "timeouts": playback.timeouts, "unanswered": unanswered,
               "unmatched_answers": {t: answers.unused(t) for t in answers.topics},
               "repeated_stamps": len(repeated),
               "interrupted": interrupted is not None, "signal": interrupted,
               "latency": {t: timing["topics"][t]["stats"] for t in answers.topics}}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    if repeated:
        how = ("each answer is recorded for the frame that was sent" if args.lock_step else
               "answers are matched to them in publish order (wrong if the node dropped one; "
               "use --lock-step)")
        print(f"replay: warning: {len(repeated)} frame(s) repeat an earlier frame's header "
              f"stamp (first: frame {repeated[0]}, stamp_ns {stamps[repeated[0]]}); {how}",
              file=sys.stderr)
    print(f"replay: {len(inputs)} frames ({summary['mode']}), {playback.timeouts} timeout(s), "
          f"unanswered {unanswered}" + (f", interrupted by {interrupted}" if interrupted else "")
          + f" -> {out}/", file=sys.stderr)
    if not inputs:
        return UNANSWERED
    return UNANSWERED if any(unanswered.values()) else OK


def main(argv=None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
