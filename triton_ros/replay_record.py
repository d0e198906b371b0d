"""What a replay records, ROS-free: input stamps, detections.json entries, the output MCAP bag.

``detections.json`` (the demo's schema, extended)::

    {"topic": "/camera/detections",            # the first watched topic
     "frames": [{"stamp_ns": int, "frame_id": str, "processed": bool,
                 "detections": [{"class_id": str, "score": float (4 decimals),
                                 "bbox": {"cx", "cy", "w", "h"} (pixels, 2 decimals),
                                 "track_id": str (only on tracked topics)}]}],
     "topics": {topic: [frames as above]}}     # only when more than one topic is watched

One entry per input image, in publish order; ``processed`` is false when the topic never answered
that image. Nothing time-dependent is in it (latencies go to ``timing.json``), so two lock-step
replays of the same bag against the same model give byte-identical files.
"""
import json
import struct
from pathlib import Path

from triton_ros.resources import share_dir

DETECTION_ARRAY = "vision_msgs/msg/Detection2DArray"
HEADER = "std_msgs/msg/Header"


def header_stamp(raw: bytes) -> tuple[int, str]:
    """(stamp ns, frame_id) of a CDR-serialized message whose first field is std_msgs/Header.

    Read straight from the bytes (4-byte encapsulation header, int32 sec, uint32 nanosec,
    uint32 length + frame_id with its NUL) instead of deserializing a whole Image: microseconds
    instead of a copy of the pixels. Raises ValueError for a buffer too short to hold a header.
    """
    if len(raw) < 16:
        raise ValueError(f"{len(raw)} bytes cannot hold a CDR std_msgs/Header")
    endian = "<" if raw[1] & 1 else ">"  # encapsulation id: 0x0001 CDR_LE, 0x0000 CDR_BE
    sec, nanosec, length = struct.unpack_from(endian + "iII", raw, 4)
    frame_id = bytes(raw[16:16 + max(0, length - 1)]).decode("utf-8", errors="replace")
    return sec * 1_000_000_000 + nanosec, frame_id


def array_to_detections(array) -> list[dict]:
    """A Detection2DArray (rclpy or rosbags message) -> detections.json's detection dicts.

    The best hypothesis of each detection gives class and score; ``track_id`` appears when the
    Detection2D's ``id`` is set (track_node's output).
    """
    out = []
    for det in array.detections:
        if det.results:
            best = max(det.results, key=lambda r: r.hypothesis.score)
            class_id, score = best.hypothesis.class_id, best.hypothesis.score
        else:
            class_id, score = "", 0.0
        entry = {"class_id": class_id, "score": round(float(score), 4),
                 "bbox": {"cx": round(det.bbox.center.position.x, 2),
                          "cy": round(det.bbox.center.position.y, 2),
                          "w": round(det.bbox.size_x, 2), "h": round(det.bbox.size_y, 2)}}
        if det.id:
            entry["track_id"] = det.id
        out.append(entry)
    return out


def detections_document(inputs: list[tuple[int, str]], topics: list[str],
                        results: dict[str, list[list[dict] | None]]) -> dict:
    """detections.json's content: ``inputs`` = (stamp ns, frame_id) per published image,
    ``results[topic][i]`` = that topic's detection dicts for image ``i`` (None: unanswered).

    Results are per frame, not per stamp: frames that share a header stamp keep their own."""
    per_topic = {}
    for topic in topics:
        answered = results.get(topic, [])
        per_topic[topic] = [{"stamp_ns": stamp, "frame_id": frame_id,
                             "processed": i < len(answered) and answered[i] is not None,
                             "detections": (answered[i] if i < len(answered) else None) or []}
                            for i, (stamp, frame_id) in enumerate(inputs)]
    doc = {"topic": topics[0], "frames": per_topic[topics[0]]}
    if len(topics) > 1:
        doc["topics"] = per_topic
    return doc


def dump_json(doc, path: Path) -> None:
    """Stable bytes: sorted keys, no whitespace variance, trailing newline."""
    Path(path).write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")


def load_detections(path: Path) -> dict[str, list[dict]]:
    """{topic: frames} from a detections.json (or a directory holding one); demo files too."""
    path = Path(path)
    if path.is_dir():
        path = path / "detections.json"
    doc = json.loads(path.read_text())
    if "topics" in doc:
        return doc["topics"]
    return {doc.get("topic", "detections"): doc["frames"]}


def vision_msgs_msg_dir() -> Path:
    """The vision_msgs .msg files: the repository's interfaces/, else an installed package's."""
    local = share_dir() / "interfaces" / "vision_msgs" / "msg"
    if local.is_dir():
        return local
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory("vision_msgs")) / "msg"


def vision_msgs_typestore():
    """A rosbags typestore (ROS 2 Kilted) with every vision_msgs message registered from .msg."""
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg
    typestore = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for msg in sorted(vision_msgs_msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(msg.read_text(), f"vision_msgs/msg/{msg.stem}"))
    typestore.register(types)
    return typestore


def write_output_bag(path: Path, image_topic: str, inputs: list[tuple[int, str]],
                     raw_outputs: dict[str, list[tuple[int, bytes]]]) -> None:
    """An MCAP rosbag2 at ``path`` (a directory, replaced): ``<image_topic>/header``
    (std_msgs/Header of every input image) and each watched topic's Detection2DArray CDR as
    received, all logged at their header stamps (so the bag is the same for the same replay)."""
    import shutil

    from rosbags.rosbag2 import StoragePlugin, Writer
    typestore = vision_msgs_typestore()
    Header = typestore.types[HEADER]
    Time = typestore.types["builtin_interfaces/msg/Time"]
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(f"{image_topic.rstrip('/')}/header", HEADER,
                                     typestore=typestore)
        for stamp, frame_id in inputs:
            header = Header(stamp=Time(sec=stamp // 10**9, nanosec=stamp % 10**9),
                            frame_id=frame_id)
            writer.write(conn, stamp, typestore.serialize_cdr(header, HEADER))
        for topic, messages in raw_outputs.items():
            conn = writer.add_connection(topic, DETECTION_ARRAY, typestore=typestore)
            for stamp, raw in messages:
                writer.write(conn, stamp, raw)
