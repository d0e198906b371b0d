"""Unit tests for triton_ros.decoders.decode_yolo (no ROS, no server).

Every tensor is built by hand: realistic sizes (8400 x (4 + 80) for v8, 25200 x (5 + 80) for
v5), random background boxes scoring below every threshold used, and a few planted boxes whose
decoded boxes, scores and labels are known by construction.
"""
import cv2
import numpy as np
import pytest

from triton_ros.decoders import YoloOutputs, decode_yolo, filter_detections
from triton_ros.detections import Detections
from triton_ros.labels import LabelMap

CLASSES = 80
LABELS = LabelMap(["person", "bicycle", "car", "dog"])  # classes >= 4 are named class_<i>
BACKGROUND = 0.05  # background class scores are uniform in [0, BACKGROUND)


def _v8(items, anchors=8400, classes=CLASSES, seed=0):
    """``[B, 4 + C, anchors]``; ``items[b]``: planted (anchor, (cx, cy, w, h), class, score)."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(items), 4 + classes, anchors), np.float32)
    out[:, :4] = rng.uniform(1, 640, (len(items), 4, anchors))
    out[:, 4:] = rng.uniform(0, BACKGROUND, (len(items), classes, anchors))
    for b, planted in enumerate(items):
        for anchor, box, cls, score in planted:
            out[b, :4, anchor] = box
            out[b, 4 + cls, anchor] = score
    return out


def _v5(items, anchors=25200, classes=CLASSES, seed=0):
    """``[B, anchors, 5 + C]``; ``items[b]`` = planted
    ``(anchor, (cx, cy, w, h), class, objectness, class probability)``. Background objectness is
    below 0.2 and class probabilities below 1, so background scores stay below 0.2."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(items), anchors, 5 + classes), np.float32)
    out[..., :4] = rng.uniform(1, 640, (len(items), anchors, 4))
    out[..., 4] = rng.uniform(0, 0.2, (len(items), anchors))
    out[..., 5:] = rng.uniform(0, 1, (len(items), anchors, classes))
    for b, planted in enumerate(items):
        for anchor, box, cls, objectness, prob in planted:
            out[b, anchor, :4] = box
            out[b, anchor, 4] = objectness
            out[b, anchor, 5:] = 0.0
            out[b, anchor, 5 + cls] = prob
    return out


def _decode(tensor, spec=YoloOutputs(), width=640, height=640, score_threshold=0.25,
            max_detections=100, **kwargs):
    return decode_yolo({spec.output: tensor}, width, height, spec, LABELS, score_threshold,
                       max_detections, **kwargs)


def _assert(dets, boxes, scores, class_ids):
    assert isinstance(dets, Detections)
    assert dets.boxes.dtype == np.float64 and dets.boxes.shape == (len(scores), 4)
    assert dets.scores.dtype == np.float32 and dets.class_ids.dtype == np.int64
    np.testing.assert_array_equal(dets.boxes, np.reshape(np.asarray(boxes, np.float64), (-1, 4)))
    np.testing.assert_array_equal(dets.scores, np.asarray(scores, np.float32))
    np.testing.assert_array_equal(dets.class_ids, class_ids)
    assert dets.labels == [LABELS.name(int(i)) for i in class_ids]


# Planted v8 scene (cx, cy, w, h in model-input pixels):
#  A  anchor  100: person 0.90 at [100, 100, 200, 200]
#  A' anchor 8000: person 0.80, same box shifted by 10 px (IoU 0.82) -> suppressed by A
#  B  anchor   50: person 0.95 at [400, 400, 500, 500]; B' anchor 51: person 0.70 duplicate -> gone
#  D  anchor 3000: dog 0.60 over A's box shifted 5 px (another class): class-aware keeps it
#  E  anchor 4000: car 0.20 (below 0.25) -> dropped
SCENE = [(100, (150, 150, 100, 100), 0, 0.9), (8000, (160, 150, 100, 100), 0, 0.8),
         (50, (450, 450, 100, 100), 0, 0.95), (51, (452, 449, 100, 100), 0, 0.7),
         (3000, (155, 150, 100, 100), 3, 0.6), (4000, (300, 50, 20, 40), 2, 0.2)]


def test_v8_class_aware_nms_threshold_and_order():
    (dets,) = _decode(_v8([SCENE]))
    _assert(dets, [[400, 400, 500, 500], [100, 100, 200, 200], [105, 100, 205, 200]],
            np.float32([0.95, 0.9, 0.6]), [0, 0, 3])
    assert dets.labels == ["person", "person", "dog"]


def test_v8_class_agnostic_nms_drops_the_overlapping_other_class():
    (dets,) = _decode(_v8([SCENE]), YoloOutputs(class_agnostic_nms=True))
    _assert(dets, [[400, 400, 500, 500], [100, 100, 200, 200]], np.float32([0.95, 0.9]), [0, 0])


def test_nms_keeps_the_higher_score_whatever_the_anchor_order():
    # The better box sits at the later anchor.
    planted = [(10, (150, 150, 100, 100), 2, 0.5), (8399, (152, 150, 100, 100), 2, 0.75)]
    (dets,) = _decode(_v8([planted]))
    _assert(dets, [[102, 100, 202, 200]], np.float32([0.75]), [2])


def test_iou_threshold_is_honoured():
    # Same size, shifted by half the width: IoU = 50 * 100 / (2 * 100 * 100 - 50 * 100) = 1/3.
    planted = [(0, (150, 150, 100, 100), 1, 0.9), (1, (200, 150, 100, 100), 1, 0.8)]
    (dets,) = _decode(_v8([planted]), YoloOutputs(iou_threshold=0.45))
    _assert(dets, [[100, 100, 200, 200], [150, 100, 250, 200]], np.float32([0.9, 0.8]), [1, 1])
    (dets,) = _decode(_v8([planted]), YoloOutputs(iou_threshold=0.3))
    _assert(dets, [[100, 100, 200, 200]], np.float32([0.9]), [1])


def _grid(n, cls=0, first_anchor=0):
    """n non-overlapping boxes, scores 0.30, 0.35, ... (anchor order = ascending score)."""
    return [(first_anchor + i, (20 + 60 * (i % 10), 20 + 60 * (i // 10), 40, 40), cls,
             0.3 + 0.05 * i) for i in range(n)]


def test_max_detections_keeps_the_best():
    (dets,) = _decode(_v8([_grid(10)]), max_detections=3)
    _assert(dets, [[540, 0, 580, 40], [480, 0, 520, 40], [420, 0, 460, 40]],
            np.float32([0.3 + 0.05 * 9, 0.3 + 0.05 * 8, 0.3 + 0.05 * 7]), [0, 0, 0])
    assert len(_decode(_v8([_grid(10)]), max_detections=100)[0]) == 10
    assert len(_decode(_v8([_grid(10)]), max_detections=0)[0]) == 0


def test_score_threshold_is_inclusive_and_floored_by_pre_nms_threshold():
    planted = [(0, (50, 50, 20, 20), 0, 0.5), (1, (150, 50, 20, 20), 1, 0.2),
               (2, (250, 50, 20, 20), 2, 0.125)]
    tensor = _v8([planted])
    (dets,) = _decode(tensor, score_threshold=0.5)
    _assert(dets, [[40, 40, 60, 60]], np.float32([0.5]), [0])
    (dets,) = _decode(tensor, score_threshold=0.1)  # the 0.25 pre-NMS floor still applies
    _assert(dets, [[40, 40, 60, 60]], np.float32([0.5]), [0])
    (dets,) = _decode(tensor, YoloOutputs(pre_nms_score_threshold=0.1), score_threshold=0.1)
    _assert(dets, [[40, 40, 60, 60], [140, 40, 160, 60], [240, 40, 260, 60]],
            np.float32([0.5, 0.2, 0.125]), [0, 1, 2])
    (dets,) = _decode(tensor, YoloOutputs(pre_nms_score_threshold=0.2), score_threshold=0.0)
    _assert(dets, [[40, 40, 60, 60], [140, 40, 160, 60]], np.float32([0.5, 0.2]), [0, 1])


def test_max_candidates_limits_what_enters_nms():
    # Candidates 0.9 and 0.8 overlap; 0.7 stands alone. With only two candidates allowed into
    # NMS, 0.7 never enters (although its anchor comes first) and 0.8 is suppressed by 0.9.
    planted = [(5, (150, 150, 100, 100), 0, 0.9), (9, (155, 150, 100, 100), 0, 0.8),
               (0, (450, 450, 100, 100), 0, 0.7)]
    (dets,) = _decode(_v8([planted]))
    _assert(dets, [[100, 100, 200, 200], [400, 400, 500, 500]], np.float32([0.9, 0.7]), [0, 0])
    (dets,) = _decode(_v8([planted]), YoloOutputs(max_candidates=2))
    _assert(dets, [[100, 100, 200, 200]], np.float32([0.9]), [0])


def test_equal_scores_keep_anchor_order():
    planted = [(7, (50, 50, 20, 20), 1, 0.5), (3, (150, 50, 20, 20), 2, 0.5),
               (5, (250, 50, 20, 20), 0, 0.5)]
    (dets,) = _decode(_v8([planted]))
    np.testing.assert_array_equal(dets.class_ids, [2, 0, 1])


def test_one_detection_per_anchor_with_its_best_class():
    tensor = _v8([[(9, (50, 50, 20, 20), 2, 0.9)]])
    tensor[0, 4 + 0, 9] = 0.8  # the same anchor's second-best class is not a detection
    (dets,) = _decode(tensor)
    _assert(dets, [[40, 40, 60, 60]], np.float32([0.9]), [2])


def test_normalized_boxes_scaled_to_a_non_square_input():
    spec = YoloOutputs(normalized=True)
    planted = [(0, (0.5, 0.5, 0.25, 0.5), 0, 0.9), (1, (0.125, 0.75, 0.25, 0.5), 3, 0.8)]
    tensor = _v8([planted])
    tensor[:, :4] /= 640  # keep the background boxes normalised too
    tensor[0, :4, :2] = np.float32(planted[0][1] + planted[1][1]).reshape(2, 4).T
    (dets,) = _decode(tensor, spec, width=640, height=480)
    _assert(dets, [[240, 120, 400, 360], [0, 240, 160, 480]], np.float32([0.9, 0.8]), [0, 3])


def test_xyxy_box_format():
    spec = YoloOutputs(box_format="xyxy")
    planted = [(0, (10, 20, 110, 220), 1, 0.9), (1, (12, 20, 110, 222), 1, 0.6),
               (2, (300, 300, 310, 330), 79, 0.4)]
    (dets,) = _decode(_v8([planted]), spec)
    _assert(dets, [[10, 20, 110, 220], [300, 300, 310, 330]], np.float32([0.9, 0.4]), [1, 79])
    assert dets.labels == ["bicycle", "class_79"]


def test_batch_of_two_with_different_contents():
    second = [(1234, (320, 240, 64, 32), 42, 0.55), (20, (322, 240, 64, 32), 42, 0.35),
              (21, (100, 100, 10, 10), 1, 0.3)]
    result = _decode(_v8([SCENE, second]))
    assert len(result) == 2
    _assert(result[0], [[400, 400, 500, 500], [100, 100, 200, 200], [105, 100, 205, 200]],
            np.float32([0.95, 0.9, 0.6]), [0, 0, 3])
    _assert(result[1], [[288, 224, 352, 256], [95, 95, 105, 105]], np.float32([0.55, 0.3]),
            [42, 1])
    assert result[1].labels == ["class_42", "bicycle"]
    # An item with nothing above threshold is empty, next to one that is not.
    empty, full = _decode(_v8([[], SCENE]))
    assert len(empty) == 0 and empty.boxes.shape == (0, 4) and empty.labels == []
    assert len(full) == 3


def test_v8_transposed_layout_decodes_alike():
    tensor = _v8([SCENE, _grid(5, cls=2)])
    transposed = np.ascontiguousarray(tensor.transpose(0, 2, 1))  # [B, 8400, 84]
    for expected, got in zip(_decode(tensor), _decode(transposed)):
        _assert(got, expected.boxes, expected.scores, expected.class_ids)
    assert len(_decode(transposed)[1]) == 5


def test_v5_objectness_times_class_probability():
    planted = [(100, (150, 150, 100, 100), 0, 0.9, 0.5),      # 0.45
               (25000, (152, 150, 100, 100), 0, 1.0, 0.4),    # 0.40, duplicate of the above
               (7, (450, 450, 100, 100), 2, 0.5, 1.0),        # 0.50
               (8, (453, 450, 100, 100), 3, 0.75, 0.5),       # 0.375, other class, overlapping
               (9, (300, 300, 20, 20), 1, 0.9, 0.25),         # 0.225: both parts >= 0.25, dropped
               (10, (300, 100, 20, 20), 1, 0.2, 1.0)]         # 0.2, dropped
    spec = YoloOutputs(version="v5")
    tensor = _v5([planted])
    assert tensor.shape == (1, 25200, 85)
    f = np.float32
    (dets,) = _decode(tensor, spec)
    _assert(dets, [[400, 400, 500, 500], [100, 100, 200, 200], [403, 400, 503, 500]],
            [f(0.5) * f(1.0), f(0.9) * f(0.5), f(0.75) * f(0.5)], [2, 0, 3])
    (dets,) = _decode(tensor, YoloOutputs(version="v5", class_agnostic_nms=True))
    _assert(dets, [[400, 400, 500, 500], [100, 100, 200, 200]],
            [f(0.5) * f(1.0), f(0.9) * f(0.5)], [2, 0])


def test_v5_batch_normalized_and_transposed():
    spec = YoloOutputs(version="v5", normalized=True)
    f = np.float32
    items = [[(0, (0.5, 0.5, 0.5, 0.5), 1, 0.8, 0.75)],
             [(24000, (0.25, 0.25, 0.5, 0.5), 0, 0.5, 0.5)]]
    tensor = _v5(items)
    tensor[..., :4] /= 640
    tensor[0, 0, :4], tensor[1, 24000, :4] = items[0][0][1], items[1][0][1]
    for t in (tensor, np.ascontiguousarray(tensor.transpose(0, 2, 1))):  # [B, 85, 25200] too
        first, second = _decode(t, spec, width=320, height=160)
        _assert(first, [[80, 40, 240, 120]], [f(0.8) * f(0.75)], [1])
        _assert(second, [[0, 0, 160, 80]], [f(0.5) * f(0.5)], [0])


def test_half_precision_output():
    (dets,) = _decode(_v8([SCENE]).astype(np.float16))
    np.testing.assert_array_equal(dets.class_ids, [0, 0, 3])
    np.testing.assert_allclose(dets.scores, [0.95, 0.9, 0.6], atol=1e-3)
    np.testing.assert_array_equal(dets.boxes, [[400, 400, 500, 500], [100, 100, 200, 200],
                                               [105, 100, 205, 200]])


def test_class_aware_nms_with_negative_coordinates():
    # OpenCV's NMSBoxesBatched separates classes by offsetting boxes by class * (max coord + 1),
    # which breaks for negative coordinates: here class 1's box would land exactly on class 0's.
    # The boxes overlap with IoU 0.28, so both must survive, class-aware or not.
    planted = [(0, (-25, -25, 150, 150), 0, 0.9), (1, (-76, -76, 150, 150), 1, 0.8)]
    for spec in (YoloOutputs(), YoloOutputs(class_agnostic_nms=True)):
        (dets,) = _decode(_v8([planted], anchors=100), spec)
        _assert(dets, [[-100, -100, 50, 50], [-151, -151, -1, -1]], np.float32([0.9, 0.8]),
                [0, 1])


def test_class_aware_nms_without_nms_boxes_batched(monkeypatch):
    """OpenCV < 4.7 (Ubuntu's python3-opencv) has no NMSBoxesBatched; the fallback agrees."""
    negative = [(0, (-25, -25, 150, 150), 0, 0.9), (1, (-76, -76, 150, 150), 1, 0.8)]
    tensors = [_v8([SCENE, negative, _grid(10, cls=5)]),
               _v5([[(100, (150, 150, 100, 100), 0, 0.9, 0.5),
                     (7, (155, 150, 100, 100), 2, 1.0, 0.5),
                     (8, (152, 150, 100, 100), 0, 0.5, 1.0)]], anchors=2000)]
    specs = [YoloOutputs(), YoloOutputs(version="v5")]
    expected = [_decode(t, s) for t, s in zip(tensors, specs)]
    monkeypatch.delattr(cv2.dnn, "NMSBoxesBatched", raising=False)
    for tensor, spec, want in zip(tensors, specs, expected):
        for dets, ref in zip(_decode(tensor, spec), want):
            _assert(dets, ref.boxes, ref.scores, ref.class_ids)
    # Anchors 7 and 8 tie at 0.5 (anchor order); 8 suppresses 100 (0.45, same class).
    _assert(expected[1][0], [[105, 100, 205, 200], [102, 100, 202, 200]], np.float32([0.5, 0.5]),
            [2, 0])


def test_filter_detections_after_decode_yolo():
    (dets,) = _decode(_v8([SCENE]))
    out = filter_detections(dets, 0.25, 100, frozenset({"dog"}))
    _assert(out, [[105, 100, 205, 200]], np.float32([0.6]), [3])
    out = filter_detections(dets, 0.91, 100)
    _assert(out, [[400, 400, 500, 500]], np.float32([0.95]), [0])
    # Nothing more to remove for the same threshold / max.
    out = filter_detections(dets, 0.25, 100)
    _assert(out, dets.boxes, dets.scores, dets.class_ids)


def test_class_filter_applies_before_nms():
    spec = YoloOutputs(class_agnostic_nms=True)
    tensor = _v8([SCENE])
    # After the fact, the dog was already suppressed by the person box it overlaps.
    (dets,) = _decode(tensor, spec)
    assert len(filter_detections(dets, 0.25, 100, frozenset({"dog"}))) == 0
    # Filtered before NMS, persons cannot suppress it.
    (dets,) = _decode(tensor, spec, class_filter=frozenset({"dog"}))
    _assert(dets, [[105, 100, 205, 200]], np.float32([0.6]), [3])
    # Unwanted classes take none of the max_detections slots.
    (dets,) = _decode(tensor, max_detections=1, class_filter=frozenset({"dog", "car"}))
    _assert(dets, [[105, 100, 205, 200]], np.float32([0.6]), [3])
    # class_<i> names work like filter_detections' labels do; unknown names select nothing.
    tensor = _v8([[(5, (50, 50, 20, 20), 42, 0.5), (6, (150, 50, 20, 20), 1, 0.9)]])
    (dets,) = _decode(tensor, class_filter=frozenset({"class_42"}))
    _assert(dets, [[40, 40, 60, 60]], np.float32([0.5]), [42])
    assert len(_decode(tensor, class_filter=frozenset({"zebra"}))[0]) == 0


def test_empty_inputs():
    for shape in [(1, 84, 0), (2, 0, 84), (1, 0, 0)]:
        result = _decode(np.zeros(shape, np.float32))
        assert len(result) == shape[0]
        assert all(len(d) == 0 and d.boxes.shape == (0, 4) and d.labels == [] for d in result)
        assert len({id(d) for d in result}) == len(result)  # separate, mutable objects
    assert _decode(np.zeros((0, 84, 8400), np.float32)) == []
    (dets,) = _decode(np.zeros((1, 84, 8400), np.float32), score_threshold=0.0,
                      spec=YoloOutputs(pre_nms_score_threshold=0.0))
    assert len(dets) == 0  # zero scores never count


@pytest.mark.parametrize("shape,version", [
    ((8400, 84), "v8"),        # no batch dim
    ((1, 84, 8400, 1), "v8"),  # 4-D
    ((1, 4, 8400), "v8"),      # boxes but no classes
    ((1, 8400, 5), "v5"),      # boxes + objectness but no classes
])
def test_bad_shapes_raise_value_error(shape, version):
    with pytest.raises(ValueError, match="expected"):
        _decode(np.zeros(shape, np.float32), YoloOutputs(version=version))


def test_missing_output_raises_key_error():
    with pytest.raises(KeyError):
        decode_yolo({"other": np.zeros((1, 84, 8400))}, 640, 640, YoloOutputs(), LABELS, 0.5, 10)


@pytest.mark.parametrize("kwargs,match", [
    ({"version": "v11"}, "version 'v11'"),
    ({"box_format": "yxyx"}, "box_format 'yxyx'"),
    ({"iou_threshold": 1.5}, "iou_threshold"),
    ({"pre_nms_score_threshold": -0.1}, "pre_nms_score_threshold"),
    ({"max_candidates": 0}, "max_candidates"),
])
def test_spec_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        YoloOutputs(**kwargs)


def test_spec_defaults_and_names():
    spec = YoloOutputs()
    assert (spec.output, spec.version, spec.box_format, spec.normalized) == \
        ("output0", "v8", "cxcywh", False)
    assert (spec.class_agnostic_nms, spec.iou_threshold, spec.pre_nms_score_threshold,
            spec.max_candidates) == (False, 0.45, 0.25, 30000)
    assert YoloOutputs(output="out").names() == ["out"]
    assert YoloOutputs(output="a, b").names() == ["a", "b"]
    assert YoloOutputs(output=("a", "b")).names() == ["a", "b"]


# -- several output heads (e.g. YOLOv4-tiny: 13x13x3 = 507 and 26x26x3 = 2028 anchors) --

def _two_heads(planted_coarse, planted_fine, seed=0):
    """v5 heads ``[1, 507, 85]`` and ``[1, 2028, 85]``, planted as in :func:`_v5`."""
    return _v5([planted_coarse], anchors=507, seed=seed), _v5([planted_fine], anchors=2028,
                                                              seed=seed + 1)


def test_several_heads_decode_as_their_concatenation():
    f = np.float32
    coarse, fine = _two_heads(
        [(10, (150, 150, 100, 100), 0, 0.9, 0.5)],            # 0.45, suppressed by the fine one
        [(2000, (152, 150, 100, 100), 0, 1.0, 0.75),          # 0.75
         (3, (300, 300, 20, 20), 2, 0.8, 0.5)])               # 0.40
    for output in ("p13,p26", " p13 , p26 ", ("p13", "p26")):
        spec = YoloOutputs(output=output, version="v5")
        assert spec.names() == ["p13", "p26"]
        (dets,) = decode_yolo({"p13": coarse, "p26": fine, "unused": np.zeros(1)}, 640, 640,
                              spec, LABELS, 0.25, 100)
        _assert(dets, [[102, 100, 202, 200], [290, 290, 310, 310]],
                [f(1.0) * f(0.75), f(0.8) * f(0.5)], [0, 2])
    # Exactly what the one concatenated tensor gives, whatever each head's layout.
    joined = np.concatenate([coarse, fine], axis=1)
    (want,) = _decode(joined, YoloOutputs(version="v5"))
    spec = YoloOutputs(output="a,b", version="v5")
    for a, b in [(coarse, fine), (coarse, np.ascontiguousarray(fine.transpose(0, 2, 1)))]:
        (got,) = decode_yolo({"a": a, "b": b}, 640, 640, spec, LABELS, 0.25, 100)
        _assert(got, want.boxes, want.scores, want.class_ids)


def test_several_heads_ties_keep_the_named_order():
    coarse, fine = _two_heads([(5, (50, 50, 20, 20), 1, 1.0, 0.5)],
                              [(0, (150, 50, 20, 20), 2, 1.0, 0.5)])
    for names, first in (("c,f", 1), ("f,c", 2)):
        (dets,) = decode_yolo({"c": coarse, "f": fine}, 640, 640,
                              YoloOutputs(output=names, version="v5"), LABELS, 0.25, 100)
        assert dets.class_ids[0] == first and len(dets) == 2


def test_several_heads_with_an_empty_one_and_a_batch():
    items = [[(0, (0.5, 0.5, 0.5, 0.5), 1, 0.8, 0.75)], [(9, (0.25, 0.25, 0.5, 0.5), 0, 1, 0.5)]]
    head = _v5(items, anchors=100)  # > 85: the layout rule needs anchors > channels
    head[..., :4] = np.clip(head[..., :4] / 640, 0, 1)
    head[0, 0, :4], head[1, 9, :4] = items[0][0][1], items[1][0][1]
    spec = YoloOutputs(output="a,b", version="v5", normalized=True)
    first, second = decode_yolo({"a": np.zeros((2, 0, 85), np.float32), "b": head}, 320, 160,
                                spec, LABELS, 0.5, 100)
    _assert(first, [[80, 40, 240, 120]], [np.float32(0.8) * np.float32(0.75)], [1])
    _assert(second, [[0, 0, 160, 80]], [np.float32(0.5)], [0])
    both_empty = {"a": np.zeros((2, 0, 85), np.float32), "b": np.zeros((2, 0, 85), np.float32)}
    assert [len(d) for d in decode_yolo(both_empty, 320, 160, spec, LABELS, 0.5, 100)] == [0, 0]


@pytest.mark.parametrize("b_shape,match", [((2, 2028, 85), "batch sizes"),
                                           ((1, 2028, 84), "channels"),
                                           ((1, 2028), "expected")])
def test_several_heads_that_do_not_fit_together_raise(b_shape, match):
    outputs = {"a": np.zeros((1, 507, 85), np.float32), "b": np.zeros(b_shape, np.float32)}
    with pytest.raises(ValueError, match=match):
        decode_yolo(outputs, 416, 416, YoloOutputs(output="a,b", version="v5"), LABELS, 0.5, 10)
    with pytest.raises(KeyError):
        decode_yolo(outputs, 416, 416, YoloOutputs(output="a,c", version="v5"), LABELS, 0.5, 10)


@pytest.mark.parametrize("output,match", [("", "names no output"), (" , ", "names no output"),
                                          ("a,b,a", "names an output twice"),
                                          ((), "names no output")])
def test_output_names_validation(output, match):
    with pytest.raises(ValueError, match=match):
        YoloOutputs(output=output)


def test_letterboxed_boxes_map_back_to_source_pixels():
    """A 1280x480 frame letterboxed into 416x416: scale 0.325, 130 px bars above and below.
    Boxes decoded in model-input pixels land in source pixels through the transform's inverse."""
    from triton_ros.preprocess import PreprocessConfig, Preprocessor

    pre = Preprocessor(PreprocessConfig(416, 416, layout="NCHW", dtype="float32",
                                        resize="letterbox", scaling="UNIT"))
    tensor, transform = pre(np.full((480, 1280, 3), 200, np.uint8))
    assert tensor.shape == (3, 416, 416)
    assert (transform.scale_x, transform.scale_y, transform.offset_x, transform.offset_y) == \
        (0.325, 0.325, 0.0, 130.0)
    np.testing.assert_array_equal(tensor[:, :130], np.float32(114 / 255))  # top bar
    np.testing.assert_array_equal(tensor[:, 130:286], np.float32(200 / 255))  # the frame
    np.testing.assert_array_equal(tensor[:, 286:], np.float32(114 / 255))  # bottom bar
    # Source boxes (x1, y1, x2, y2): a person at [640, 80, 800, 400] and a car at [0, 240,
    # 320, 480] -> model input: x * 0.325, y * 0.325 + 130 (cx, cy, w, h below).
    planted = [(100, (234, 208, 52, 104), 0, 0.9, 1.0), (2500, (52, 247, 104, 78), 2, 0.8, 1.0)]
    coarse, fine = _two_heads([], [])
    joined = np.concatenate([coarse, fine], axis=1)
    joined[..., :4] = 1.0  # tiny background boxes
    for anchor, box, cls, objectness, prob in planted:
        joined[0, anchor, :4], joined[0, anchor, 4] = box, objectness
        joined[0, anchor, 5:] = 0.0
        joined[0, anchor, 5 + cls] = prob
    (dets,) = _decode(joined, YoloOutputs(version="v5"), width=416, height=416)
    np.testing.assert_allclose(transform.boxes_to_source(dets.boxes),
                               [[640, 80, 800, 400], [0, 240, 320, 480]], atol=1e-9)
    assert dets.labels == ["person", "car"]
