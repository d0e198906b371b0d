"""track_node: vision_msgs/Detection2DArray -> a stateful Triton tracker -> tracked detections.

Topics (relative, remap them): subscribes ``detections`` (vision_msgs/Detection2DArray, reliable);
publishes ``tracked_detections`` (the same arrays, same headers and boxes, each Detection2D's
``id`` set to its persistent track id; "" = untracked) and ``/diagnostics``.

The robot's detection stream is one Triton sequence on the tracker model (default
``simple_tracker``): the tracks live on the server, so each robot needs a correlation id of its
own (``robot_id``; see docs/sequences.md). Arrays are tracked one per request, in arrival order.
Lifecycle node, active at start (``autostart``); deactivate / shutdown END the sequence.
"""
import sys
import zlib

import numpy as np
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from vision_msgs.msg import Detection2DArray

from triton_ros.ros.params import ParamSpec
from triton_ros.ros.sequence_node import SequenceNode, run

NODE_NAME = "triton_track"


def class_index(class_id: str) -> int:
    """A stable INT32 for a class label (equal labels associate; same value in every process)."""
    return zlib.crc32(class_id.encode()) & 0x7FFFFFFF


def detections_to_tensors(array) -> dict[str, np.ndarray]:
    """Detection2DArray -> the tracker's boxes [N, 4] (x1, y1, x2, y2), scores [N], classes [N]."""
    n = len(array.detections)
    boxes = np.zeros((n, 4), np.float32)
    scores = np.zeros(n, np.float32)
    classes = np.zeros(n, np.int32)
    for i, det in enumerate(array.detections):
        cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
        w, h = det.bbox.size_x, det.bbox.size_y
        if not (np.isfinite([cx, cy, w, h]).all() and w >= 0 and h >= 0):
            raise ValueError(f"detection {i} has an invalid bbox (center {cx}, {cy}, size {w}x{h})")
        boxes[i] = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        if det.results:
            best = max(det.results, key=lambda r: r.hypothesis.score)
            scores[i] = best.hypothesis.score
            classes[i] = class_index(best.hypothesis.class_id)
    return {"boxes": boxes, "scores": scores, "classes": classes}


def with_track_ids(array, track_ids) -> Detection2DArray:
    """A copy of ``array`` (same header, detections) with Detection2D.id = track id."""
    track_ids = np.asarray(track_ids).reshape(-1)
    if len(track_ids) != len(array.detections):
        raise ValueError(f"the tracker returned {len(track_ids)} ids for "
                         f"{len(array.detections)} detections")
    out = Detection2DArray(header=array.header)
    for det, track_id in zip(array.detections, track_ids):
        tracked = type(det)(header=det.header, results=det.results, bbox=det.bbox)
        tracked.id = str(int(track_id)) if track_id > 0 else ""
        out.detections.append(tracked)
    return out


class TrackNode(SequenceNode):
    NODE_NAME = NODE_NAME
    DEFAULT_MODEL = "simple_tracker"
    NODE_PARAMETERS = [
        ParamSpec("boxes_input", "boxes", "tracker input: boxes [N, 4] x1, y1, x2, y2"),
        ParamSpec("scores_input", "scores", "tracker input: scores [N]"),
        ParamSpec("classes_input", "classes", "tracker input: class indices [N]"),
        ParamSpec("keepalive_input", "keepalive",
                  "optional BOOL input meaning 'no frame, keep alive'; empty = the model has "
                  "none (no keep-alives, the server frees ended sequences after its idle time)"),
        ParamSpec("track_ids_output", "track_ids", "tracker output: track id per detection"),
    ]

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)

    def input_type(self):
        return Detection2DArray

    def input_topic(self) -> str:
        return "detections"

    def input_qos(self):
        return QoSProfile(depth=self.params["queue_size"], history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.RELIABLE)

    def setup_outputs(self) -> None:
        self.publisher = self.create_publisher(
            Detection2DArray, "tracked_detections",
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                       history=HistoryPolicy.KEEP_LAST))

    def check_model(self, spec) -> None:
        names = {t.name for t in spec.inputs}
        wanted = [self.params[k] for k in ("boxes_input", "scores_input", "classes_input")]
        if self.params["keepalive_input"]:
            wanted.append(self.params["keepalive_input"])
        missing = [n for n in wanted if n not in names]
        if missing:
            raise ValueError(f"model {spec.name!r} has no input(s) {missing}; its inputs are "
                             f"{sorted(names)}")
        spec.output(self.params["track_ids_output"])

    def _tensors(self, boxes, scores, classes) -> dict:
        p = self.params
        return {p["boxes_input"]: boxes, p["scores_input"]: scores, p["classes_input"]: classes}

    def keepalive_inputs(self) -> dict | None:
        name = self.params["keepalive_input"]
        if not name:
            return None
        inputs = self._tensors(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                               np.zeros(0, np.int32))
        inputs[name] = np.array([True])
        return inputs

    def to_inputs(self, messages: list) -> dict:
        (array,) = messages
        t = detections_to_tensors(array)
        return self._tensors(t["boxes"], t["scores"], t["classes"])

    def output_names(self) -> list[str]:
        return [self.params["track_ids_output"]]

    def publish_result(self, messages: list, outputs: dict) -> int:
        (array,) = messages
        self.publisher.publish(with_track_ids(array, outputs[self.params["track_ids_output"]]))
        return 1


def main(args=None) -> int:
    return run(TrackNode, args)


if __name__ == "__main__":
    sys.exit(main())
