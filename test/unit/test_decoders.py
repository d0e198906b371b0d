"""Unit tests for triton_ros.decoders and triton_ros.detections (no ROS, no server)."""
import numpy as np
import pytest

from triton_ros.decoders import TfodOutputs, decode_tfod, filter_detections
from triton_ros.detections import Detections
from triton_ros.labels import LabelMap

LABELS = LabelMap(["person", "bicycle", "car", "dog"])


def _tfod(boxes, scores, classes, num, spec=TfodOutputs()):
    return {spec.boxes: np.asarray(boxes, np.float32), spec.scores: np.asarray(scores, np.float32),
            spec.classes: np.asarray(classes, np.float32), spec.num_detections: np.asarray(num)}


def _padded(rows, k):
    """Pad a list of per-detection rows with zeros up to K (TF-OD pads with zeros)."""
    rows = np.asarray(rows, np.float32)
    out = np.zeros((k,) + rows.shape[1:], np.float32)
    out[:len(rows)] = rows
    return out


def test_yxyx_normalized_to_xyxy_pixels():
    # yxyx normalised of a 640 (w) x 480 (h) input.
    boxes = _padded([[0.1, 0.2, 0.5, 0.75], [0.0, 0.0, 1.0, 1.0]], 5)[None]
    scores = _padded([0.9, 0.4], 5)[None]
    classes = _padded([1, 3], 5)[None]
    (dets,) = decode_tfod(_tfod(boxes, scores, classes, [[2.0]]), 640, 480, TfodOutputs(), LABELS)
    assert len(dets) == 2
    np.testing.assert_allclose(dets.boxes, [[128, 48, 480, 240], [0, 0, 640, 480]], atol=1e-4)
    np.testing.assert_allclose(dets.scores, [0.9, 0.4], atol=1e-6)
    assert dets.scores.dtype == np.float32
    assert dets.class_ids.dtype == np.int64
    np.testing.assert_array_equal(dets.class_ids, [0, 2])
    assert dets.labels == ["person", "car"]


def test_xyxy_pixel_boxes_class_offset_zero():
    spec = TfodOutputs(box_format="xyxy", normalized=False, class_offset=0)
    boxes = [[[10, 20, 110, 220], [5, 6, 7, 8], [0, 0, 0, 0]]]
    (dets,) = decode_tfod(_tfod(boxes, [[0.8, 0.7, 0.0]], [[0, 3, 0]], [2], spec), 640, 640,
                          spec, LABELS)
    np.testing.assert_allclose(dets.boxes, [[10, 20, 110, 220], [5, 6, 7, 8]])
    np.testing.assert_array_equal(dets.class_ids, [0, 3])
    assert dets.labels == ["person", "dog"]


def test_class_values_are_rounded_and_unknown_labels_named_by_index():
    spec = TfodOutputs(box_format="xyxy", normalized=False, class_offset=1)
    boxes = np.zeros((1, 3, 4))
    (dets,) = decode_tfod(_tfod(boxes, [[0.5, 0.5, 0.5]], [[2.9999, 10.0, 0.0]], [3], spec),
                          100, 100, spec, LABELS)
    np.testing.assert_array_equal(dets.class_ids, [2, 9, -1])
    assert dets.labels == ["car", "class_9", "class_-1"]


def test_custom_output_names():
    spec = TfodOutputs(num_detections="num", boxes="b", scores="s", classes="c",
                       box_format="xyxy", normalized=True)
    assert spec.names() == ["num", "b", "s", "c"]
    outputs = {"num": np.array([1], np.int32), "b": np.array([[[0.5, 0.5, 1.0, 1.0]]]),
               "s": np.array([[0.3]]), "c": np.array([[2]], np.int32)}
    (dets,) = decode_tfod(outputs, 200, 100, spec, LABELS)
    np.testing.assert_allclose(dets.boxes, [[100, 50, 200, 100]])
    assert dets.labels == ["bicycle"]


@pytest.mark.parametrize("num_shape", ["[B]", "[B,1]"])
def test_batch_of_two_with_different_counts(num_shape):
    k = 4
    boxes = np.stack([_padded([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1], [0, 0, 1, 1]], k),
                      _padded([[0.25, 0.25, 0.75, 0.75]], k)])
    scores = np.stack([_padded([0.9, 0.8, 0.7], k), _padded([0.6], k)])
    classes = np.stack([_padded([1, 2, 3], k), _padded([4], k)])
    num = np.array([3.0, 1.0], np.float32)
    if num_shape == "[B,1]":
        num = num[:, None]
    result = decode_tfod(_tfod(boxes, scores, classes, num), 100, 100, TfodOutputs(), LABELS)
    assert [len(d) for d in result] == [3, 1]
    np.testing.assert_allclose(result[0].boxes, [[0, 0, 50, 50], [50, 50, 100, 100],
                                                 [0, 0, 100, 100]], atol=1e-4)
    np.testing.assert_allclose(result[1].boxes, [[25, 25, 75, 75]], atol=1e-4)
    assert result[0].labels == ["person", "bicycle", "car"]
    assert result[1].labels == ["dog"]


def test_count_larger_than_k_is_clipped_and_negative_is_zero():
    boxes = np.full((2, 3, 4), 0.5)
    scores = np.full((2, 3), 0.5)
    classes = np.ones((2, 3))
    result = decode_tfod(_tfod(boxes, scores, classes, [[100], [-1]]), 10, 10, TfodOutputs(),
                         LABELS)
    assert [len(d) for d in result] == [3, 0]
    assert result[1].boxes.shape == (0, 4)


def test_zero_detections():
    (dets,) = decode_tfod(_tfod(np.zeros((1, 100, 4)), np.zeros((1, 100)), np.zeros((1, 100)),
                                [0]), 300, 300, TfodOutputs(), LABELS)
    assert len(dets) == 0 and dets.labels == []


@pytest.mark.parametrize("boxes,scores", [
    (np.zeros((1, 5, 5)), np.zeros((1, 5))),     # 5 coordinates
    (np.zeros((1, 5, 4)), np.zeros((1, 4))),     # scores K mismatch
    (np.zeros((1, 5, 4)), np.zeros((5,))),       # scores without batch
    (np.zeros((1, 5, 4, 1)), np.zeros((1, 5))),  # 4-D boxes
])
def test_bad_shapes_raise_value_error(boxes, scores):
    with pytest.raises(ValueError, match="expected"):
        decode_tfod(_tfod(boxes, scores, np.zeros(scores.shape), [1]), 10, 10, TfodOutputs(),
                    LABELS)


def test_boxes_without_batch_dim_raise_value_error():
    with pytest.raises(ValueError):
        decode_tfod(_tfod(np.zeros((5, 4)), np.zeros((1, 5)), np.zeros((1, 5)), [1]), 10, 10,
                    TfodOutputs(), LABELS)


def test_bad_box_format_raises():
    spec = TfodOutputs(box_format="cxcywh")
    with pytest.raises(ValueError, match="box_format 'cxcywh'"):
        decode_tfod(_tfod(np.zeros((1, 2, 4)), np.zeros((1, 2)), np.zeros((1, 2)), [1], spec),
                    10, 10, spec, LABELS)


def test_missing_output_raises_key_error():
    outputs = _tfod(np.zeros((1, 2, 4)), np.zeros((1, 2)), np.zeros((1, 2)), [1])
    del outputs["detection_scores"]
    with pytest.raises(KeyError):
        decode_tfod(outputs, 10, 10, TfodOutputs(), LABELS)


def _dets():
    boxes = np.arange(24, dtype=np.float64).reshape(6, 4)
    scores = np.array([0.3, 0.9, 0.5, 0.05, 0.9, 0.7], np.float32)
    ids = np.array([0, 2, 0, 1, 3, 2], np.int64)
    return Detections(boxes, scores, ids, [LABELS.name(int(i)) for i in ids])


def test_filter_orders_by_score_descending_stable():
    out = filter_detections(_dets(), 0.0, 100)
    np.testing.assert_allclose(out.scores, [0.9, 0.9, 0.7, 0.5, 0.3, 0.05])
    # Ties keep input order (index 1 before 4); boxes/ids/labels move with their score.
    np.testing.assert_array_equal(out.class_ids, [2, 3, 2, 0, 0, 1])
    assert out.labels == ["car", "dog", "car", "person", "person", "bicycle"]
    np.testing.assert_array_equal(out.boxes[0], [4, 5, 6, 7])
    np.testing.assert_array_equal(out.boxes[1], [16, 17, 18, 19])


def test_filter_threshold_is_inclusive():
    out = filter_detections(_dets(), 0.5, 100)
    np.testing.assert_allclose(out.scores, [0.9, 0.9, 0.7, 0.5])
    assert len(filter_detections(_dets(), 0.95, 100)) == 0


def test_filter_max_detections_keeps_the_best():
    out = filter_detections(_dets(), 0.0, 3)
    np.testing.assert_allclose(out.scores, [0.9, 0.9, 0.7])
    out = filter_detections(_dets(), 0.0, 1)
    assert out.labels == ["car"] and out.scores[0] == pytest.approx(0.9)


def test_filter_class_filter():
    out = filter_detections(_dets(), 0.0, 100, frozenset({"person", "dog"}))
    assert out.labels == ["dog", "person", "person"]
    np.testing.assert_allclose(out.scores, [0.9, 0.5, 0.3])
    # Combined with threshold and max.
    out = filter_detections(_dets(), 0.4, 1, frozenset({"person", "dog"}))
    assert out.labels == ["dog"]
    assert len(filter_detections(_dets(), 0.0, 10, frozenset({"zebra"}))) == 0


def test_filter_empty():
    out = filter_detections(Detections.empty(), 0.5, 10, frozenset({"person"}))
    assert len(out) == 0 and out.boxes.shape == (0, 4) and out.labels == []


def test_detections_select_and_centers_sizes():
    dets = Detections(np.array([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 4.0, 2.0]]),
                      np.array([0.5, 0.6], np.float32), np.array([1, 2]), ["a", "b"])
    np.testing.assert_allclose(dets.centers_sizes(), [[20, 40, 20, 40], [2, 1, 4, 2]])
    by_mask = dets.select(np.array([False, True]))
    by_index = dets.select([1])
    for sel in (by_mask, by_index):
        assert len(sel) == 1 and sel.labels == ["b"]
        np.testing.assert_array_equal(sel.boxes, [[0, 0, 4, 2]])
        np.testing.assert_array_equal(sel.class_ids, [2])
    assert Detections.empty().centers_sizes().shape == (0, 4)
