"""Replay's ROS-free parts: CDR header parsing, detections.json, matching and COCO AP."""
import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from triton_ros.detection_metrics import average_precision, coco_map, iou_matrix, match_frame
from triton_ros.replay_record import detections_document, header_stamp, vision_msgs_typestore


def det(cls, score, cx, cy, w=10.0, h=20.0):
    return {"class_id": cls, "score": score, "bbox": {"cx": cx, "cy": cy, "w": w, "h": h}}


def test_header_stamp_reads_a_serialized_image():
    ts = get_typestore(Stores.ROS2_KILTED)
    Image, Header, Time = (ts.types[t] for t in ("sensor_msgs/msg/Image", "std_msgs/msg/Header",
                                                 "builtin_interfaces/msg/Time"))
    msg = Image(header=Header(stamp=Time(sec=1700000001, nanosec=500), frame_id="cam"),
                height=1, width=2, encoding="mono8", is_bigendian=0, step=2,
                data=np.zeros(2, np.uint8))
    raw = bytes(ts.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    assert header_stamp(raw) == (1700000001 * 10**9 + 500, "cam")
    with pytest.raises(ValueError):
        header_stamp(raw[:8])


def test_detections_document_marks_unanswered_frames():
    doc = detections_document([(1, "a"), (2, "a")], ["/d", "/t"],
                              {"/d": [[det("person", 0.9, 5, 5)], None], "/t": []})
    assert doc["topic"] == "/d"
    assert [f["processed"] for f in doc["frames"]] == [True, False]
    assert doc["frames"][1]["detections"] == []
    assert [f["processed"] for f in doc["topics"]["/t"]] == [False, False]


def test_detections_document_keeps_frames_that_share_a_stamp_apart():
    doc = detections_document([(0, "a"), (0, "a"), (0, "a")], ["/d"],
                              {"/d": [[det("person", 0.9, 5, 5)], [], [det("car", 0.5, 9, 9)]]})
    assert [[d["class_id"] for d in f["detections"]] for f in doc["frames"]] == [
        ["person"], [], ["car"]]
    assert all(f["processed"] for f in doc["frames"])


def test_vision_msgs_registered_from_msg_files():
    ts = vision_msgs_typestore()
    cls = ts.types["vision_msgs/msg/Detection2DArray"]
    raw = ts.serialize_cdr(cls(header=ts.types["std_msgs/msg/Header"](
        stamp=ts.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="f"),
        detections=[]), "vision_msgs/msg/Detection2DArray")
    assert ts.deserialize_cdr(raw, "vision_msgs/msg/Detection2DArray").header.stamp.nanosec == 2


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    assert iou_matrix(a, b) == pytest.approx(np.array([[1.0, 1 / 3, 0.0]]))


def test_match_frame_needs_class_iou_and_score():
    golden = [det("person", 0.9, 50, 50), det("car", 0.8, 100, 100), det("person", 0.6, 10, 10)]
    run = [det("person", 0.88, 51, 50),      # matches golden 0
           det("truck", 0.8, 100, 100),      # wrong class
           det("person", 0.3, 10, 10)]       # score off by 0.3
    m = match_frame(golden, run, iou_threshold=0.5, score_tolerance=0.05)
    assert m.matched == [(0, 0)]
    assert sorted(m.golden_only) == [1, 2] and m.run_only == [1, 2] and m.errors == 4


def test_average_precision_101_point():
    assert average_precision([0.9, 0.8], [True, True], 2) == pytest.approx(1.0)
    # one of two found, at rank 1: precision 1 up to recall 0.5 -> 51 of 101 points
    assert average_precision([0.9, 0.8], [True, False], 2) == pytest.approx(51 / 101)
    # a false positive ranked first: precision 0.5 at recall 0.5 and 2/3 at recall 1
    assert average_precision([0.9, 0.8, 0.7], [False, True, True], 2) == pytest.approx(2 / 3)
    assert np.isnan(average_precision([], [], 0))


def test_coco_map_perfect_and_shifted():
    gt = {1: [("person", np.array([0, 0, 10, 20.0]))]}
    assert coco_map(gt, {1: [("person", 0.9, np.array([0, 0, 10, 20.0]))]})["map50_95"] == 1.0
    shifted = {1: [("person", 0.9, np.array([0, 2, 10, 22.0]))]}  # IoU 18/22 = 0.82
    result = coco_map(gt, shifted)
    assert result["map50"] == 1.0
    assert result["map50_95"] == pytest.approx(0.7)  # thresholds 0.50 .. 0.80 pass: 7 of 10
