"""Decode raw model outputs into :class:`Detections` in model-input pixels.

Every decoder takes ``outputs`` (name -> array with the batch dim first), the model input size and
returns one :class:`Detections` per batch item. :func:`decode_tfod` returns them before score
threshold / class filter / max-detections, which :func:`filter_detections` applies;
:func:`decode_yolo` must apply score threshold, NMS and max-detections itself (raw YOLO heads have
one candidate per anchor), and its result can still go through :func:`filter_detections`.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from triton_ros.detections import Detections
from triton_ros.labels import LabelMap


@dataclass(frozen=True)
class TfodOutputs:
    """TF Object Detection API / EfficientNMS style outputs."""
    num_detections: str = "num_detections"
    boxes: str = "detection_boxes"
    scores: str = "detection_scores"
    classes: str = "detection_classes"
    box_format: str = "yxyx"      # yxyx (TF-OD) | xyxy (EfficientNMS)
    normalized: bool = True       # boxes in [0, 1] of the model input, else model-input pixels
    class_offset: int = 1         # subtract from class values to get the 0-based label index

    def names(self) -> list[str]:
        return [self.num_detections, self.boxes, self.scores, self.classes]


def label_names(labels: LabelMap, ids: np.ndarray) -> list[str]:
    """``labels.name(i)`` for every id of ``ids`` (one pass over a Python list, no per-id calls)."""
    names, count = labels.names, len(labels.names)
    return [names[i] if 0 <= i < count and names[i] else f"class_{i}" for i in ids.tolist()]


def decode_tfod(outputs: dict[str, np.ndarray], input_width: int, input_height: int,
                spec: TfodOutputs, labels: LabelMap) -> list[Detections]:
    """``num [B] or [B, 1]``, ``boxes [B, K, 4]``, ``scores [B, K]``, ``classes [B, K]``."""
    boxes = np.asarray(outputs[spec.boxes])
    scores = np.asarray(outputs[spec.scores], np.float32)
    classes = np.asarray(outputs[spec.classes])
    counts = np.asarray(outputs[spec.num_detections]).reshape(-1)
    if (boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:2]
            or counts.size != len(boxes)):
        raise ValueError(f"TF-OD outputs have shapes boxes {list(boxes.shape)}, scores "
                         f"{list(scores.shape)}, num_detections {counts.size} values; "
                         "expected [B, K, 4], [B, K] and B values")
    if spec.box_format not in ("yxyx", "xyxy"):
        raise ValueError(f"box_format {spec.box_format!r} not in ['yxyx', 'xyxy']")
    order = [1, 0, 3, 2] if spec.box_format == "yxyx" else [0, 1, 2, 3]
    scale = (np.array([input_width, input_height, input_width, input_height], np.float64)
             if spec.normalized else np.ones(4))  # float64 either way: boxes contract
    results = []
    for item in range(len(boxes)):
        # Only the first n rows are valid: reorder and scale those (one copy, one multiply).
        n = int(min(max(counts[item], 0), boxes.shape[1]))
        ids = np.rint(classes[item, :n]).astype(np.int64) - spec.class_offset
        results.append(Detections(boxes[item, :n][:, order] * scale, scores[item, :n], ids,
                                  label_names(labels, ids)))
    return results


def filter_detections(dets: Detections, score_threshold: float, max_detections: int,
                      class_filter: frozenset[str] = frozenset()) -> Detections:
    """Keep scores >= threshold and (if given) labels in ``class_filter``; best ``max`` first."""
    keep = dets.scores >= score_threshold
    if class_filter:
        keep &= np.array([label in class_filter for label in dets.labels], dtype=bool)
    index = np.flatnonzero(keep)
    index = index[np.argsort(-dets.scores[index], kind="stable")][:max_detections]
    return dets.select(index)


YOLO_VERSIONS = ("v5", "v8")
YOLO_BOX_FORMATS = ("cxcywh", "xyxy")


@dataclass(frozen=True)
class YoloOutputs:
    """Raw (no NMS in the graph) YOLO detection head(s): one output tensor, or several whose
    anchors are concatenated in the order given.

    ``output``: the output name; several names as a tuple or comma-separated (``"a,b"``), for
    exports with one output per detection scale (e.g. YOLOv3/v4 Darknet graphs). Every output is
    ``[B, anchors_i, head + C]`` or ``[B, head + C, anchors_i]`` (each by the layout rule below,
    same B and C for all) and decodes as one ``[B, sum(anchors_i), head + C]`` tensor.

    ``version``: ``v5`` = anchor-based heads with objectness (YOLOv5, YOLOv7 exports, Darknet
    YOLOv3/v4 heads): ``[B, anchors, 5 + C]`` = cx, cy, w, h, objectness, C class probabilities
    *conditional on an object*, and score = objectness x best class probability. ``v8`` =
    anchor-free heads without objectness (Ultralytics YOLOv8 / YOLOv9 / YOLO11 exports):
    ``[B, 4 + C, anchors]`` = cx, cy, w, h, C class probabilities, and score = best class
    probability. (OpenCV's Darknet ``[yolo]`` layer output is v5-like but its class columns
    already include the objectness; the ``yolov4_tiny_coco`` model divides it back out.)

    Layout rule (both versions): of the two non-batch dims, the *smaller* one is the
    ``4 + C`` / ``5 + C`` channel axis, the larger the anchor axis, so ``[B, 84, 8400]`` and
    ``[B, 8400, 84]`` decode alike; when they are equal, the version's native layout is assumed
    (v5 channels last, v8 channels first). This holds for any realistic input size (640x640 gives
    8400 anchors, 320x320 gives 2100) and fails only when anchors < 4 + C (e.g. 80 classes at
    a 64x64 input).

    ``box_format``: ``cxcywh`` (what Ultralytics exports) or ``xyxy``. ``normalized``: boxes in
    [0, 1] of the model input instead of model-input pixels (the Ultralytics default). Boxes are
    decoded in model-input pixels; the pre-processing's inverse maps them back through the
    letterbox / resize to source pixels (``ImageTransform.boxes_to_source`` in
    :mod:`triton_ros.preprocess`, applied by :class:`triton_ros.detector.Detector`).

    NMS is greedy, by :func:`cv2.dnn.NMSBoxesBatched` (per class; ``class_agnostic_nms=False``)
    or :func:`cv2.dnn.NMSBoxes` (all classes together); a box is suppressed when its IoU with a
    kept, higher-scoring box is > ``iou_threshold``. Candidates scoring below
    ``pre_nms_score_threshold`` are dropped before NMS, and of the rest only the best
    ``max_candidates`` go into it (both for speed; a floor under the decoder's score threshold).
    """
    output: str | tuple[str, ...] = "output0"
    version: str = "v8"
    box_format: str = "cxcywh"
    normalized: bool = False
    class_agnostic_nms: bool = False
    iou_threshold: float = 0.45
    pre_nms_score_threshold: float = 0.25
    max_candidates: int = 30000

    def __post_init__(self):
        problems = []
        names = self.names()
        if not names:
            problems.append(f"output {self.output!r} names no output")
        if len(set(names)) != len(names):
            problems.append(f"output {self.output!r} names an output twice")
        if self.version not in YOLO_VERSIONS:
            problems.append(f"version {self.version!r} not in {list(YOLO_VERSIONS)}")
        if self.box_format not in YOLO_BOX_FORMATS:
            problems.append(f"box_format {self.box_format!r} not in {list(YOLO_BOX_FORMATS)}")
        if not 0.0 <= self.iou_threshold <= 1.0:
            problems.append(f"iou_threshold must be in [0, 1], got {self.iou_threshold}")
        if not 0.0 <= self.pre_nms_score_threshold <= 1.0:
            problems.append("pre_nms_score_threshold must be in [0, 1], got "
                            f"{self.pre_nms_score_threshold}")
        if self.max_candidates < 1:
            problems.append(f"max_candidates must be >= 1, got {self.max_candidates}")
        if problems:
            raise ValueError("invalid YOLO decoder settings: " + "; ".join(problems))

    def names(self) -> list[str]:
        """The output names, in concatenation order."""
        names = self.output.split(",") if isinstance(self.output, str) else self.output
        return [name.strip() for name in names if name.strip()]


def _anchors_last_view(raw: np.ndarray, name: str, version: str) -> np.ndarray:
    """One output -> a ``[B, anchors, head + C]`` view, by the layout rule of YoloOutputs."""
    if raw.ndim != 3:
        raise ValueError(f"YOLO output {name!r} has shape {list(raw.shape)}; expected "
                         "[B, anchors, 5 + C] (v5) or [B, 4 + C, anchors] (v8)")
    rows, cols = raw.shape[1:]
    channels_last = cols < rows or (cols == rows and version == "v5")
    return raw if channels_last else raw.transpose(0, 2, 1)


def decode_yolo(outputs: dict[str, np.ndarray], input_width: int, input_height: int,
                spec: YoloOutputs, labels: LabelMap, score_threshold: float,
                max_detections: int, *, class_filter: frozenset[str] = frozenset()
                ) -> list[Detections]:
    """Raw YOLO head(s) ``outputs[name] for name in spec.names()`` (see :class:`YoloOutputs`
    for layouts) -> one :class:`Detections` per batch item: xyxy model-input pixels, 0-based
    class ids (the argmax over the class axis), score >= ``max(score_threshold,
    spec.pre_nms_score_threshold)`` (and > 0), after NMS, best first (ties in anchor order,
    outputs in the order named), at most ``max_detections``.

    ``class_filter`` (label names, as :func:`filter_detections` takes them) drops candidates whose
    best class is not in it *before* NMS and max-detections (as Ultralytics' ``classes=`` does),
    so with class-agnostic NMS an unwanted class cannot suppress a wanted one and unwanted
    classes take none of the ``max_detections`` slots. Running :func:`filter_detections` on the
    result afterwards is harmless (same order, nothing more removed for the same arguments).
    """
    names = spec.names()
    raws = [np.asarray(outputs[name]) for name in names]
    for name, raw in zip(names, raws):
        _anchors_last_view(raw, name, spec.version)  # shape check before anything else
    if len({len(raw) for raw in raws}) > 1:
        raise ValueError(f"YOLO outputs {names} have batch sizes {[len(r) for r in raws]}; "
                         "expected the same B for all")
    # Outputs with no anchors (or no channels) add nothing; all empty -> nothing detected.
    views = [(name, _anchors_last_view(raw, name, spec.version)) for name, raw in zip(names, raws)
             if min(raw.shape[1:]) > 0]
    if not views:
        return [Detections.empty() for _ in range(len(raws[0]))]
    head = 5 if spec.version == "v5" else 4
    for name, view in views:
        if view.shape[2] - head < 1:
            raise ValueError(f"YOLO output {name!r} has shape {list(outputs[name].shape)}: "
                             f"{view.shape[2]} channels on the smaller axis, expected {head} + "
                             f"classes ({spec.version}) with at least one class")
    if len({view.shape[2] for _, view in views}) > 1:
        raise ValueError(f"YOLO outputs {names} have {[v.shape[2] for _, v in views]} channels; "
                         "expected the same number for all")
    # One output: a view, no copy. Several: concatenated along the anchor axis.
    preds = views[0][1] if len(views) == 1 else np.concatenate([v for _, v in views], axis=1)
    num_classes = preds.shape[2] - head
    allowed = None
    if class_filter:
        # Same test as filter_detections (label *names*), so both filters agree.
        allowed = np.array([labels.name(i) in class_filter for i in range(num_classes)])
    threshold = max(float(score_threshold), spec.pre_nms_score_threshold)
    scale = (np.array([input_width, input_height, input_width, input_height], np.float64)
             if spec.normalized else None)
    return [_decode_yolo_item(item, head, spec, labels, threshold, max_detections, allowed,
                              scale) for item in preds]


def _decode_yolo_item(pred: np.ndarray, head: int, spec: YoloOutputs, labels: LabelMap,
                      threshold: float, max_detections: int, allowed: np.ndarray | None,
                      scale: np.ndarray | None) -> Detections:
    """``pred``: [anchors, head + C] (any strides, any float dtype)."""
    class_probs = pred[:, head:]
    class_ids = class_probs.argmax(axis=1)
    scores = np.take_along_axis(class_probs, class_ids[:, None], axis=1)[:, 0]
    scores = scores.astype(np.float32)
    if head == 5:
        scores *= pred[:, 4].astype(np.float32)  # objectness
    keep = scores >= threshold
    if allowed is not None:
        keep &= allowed[class_ids]
    keep = np.flatnonzero(keep)
    if keep.size > spec.max_candidates:
        best = np.argpartition(-scores[keep], spec.max_candidates - 1)[:spec.max_candidates]
        keep = np.sort(keep[best])  # back to anchor order: NMS breaks score ties by position
    if keep.size == 0 or max_detections < 1:
        return Detections.empty()
    scores, class_ids = scores[keep], class_ids[keep].astype(np.int64)
    boxes = pred[keep, :4].astype(np.float64)
    if spec.box_format == "cxcywh":
        half = boxes[:, 2:] / 2
        boxes = np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)
    if scale is not None:
        boxes *= scale
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    # cv2 keeps scores > its threshold and asserts threshold >= 0; ours (>=) is already applied,
    # so 0 only drops zero scores. IoU is translation invariant, and NMSBoxesBatched separates
    # classes by offsetting boxes by class_id * (max coordinate + 1), which only works for
    # coordinates >= 0 (OpenCV 5.0.0 suppresses across classes otherwise), so shift to >= 0.
    if spec.class_agnostic_nms:
        kept = cv2.dnn.NMSBoxes(xywh, scores, 0.0, spec.iou_threshold)
    else:
        xywh[:, :2] -= min(0.0, float(boxes.min()))
        if hasattr(cv2.dnn, "NMSBoxesBatched"):
            kept = cv2.dnn.NMSBoxesBatched(xywh, scores, class_ids.astype(np.int32), 0.0,
                                           spec.iou_threshold)
        else:
            # OpenCV < 4.7 (Ubuntu 22.04/24.04 python3-opencv) lacks NMSBoxesBatched: the same
            # class offset by hand, then plain NMSBoxes.
            offset = class_ids * (float(xywh[:, :2].max() + xywh[:, 2:].max()) + 1.0)
            xywh[:, :2] += offset[:, None]
            kept = cv2.dnn.NMSBoxes(xywh, scores, 0.0, spec.iou_threshold)
    kept = np.asarray(kept, np.int64).reshape(-1)
    kept = kept[np.argsort(-scores[kept], kind="stable")][:max_detections]
    return Detections(boxes[kept], scores[kept], class_ids[kept],
                      label_names(labels, class_ids[kept]))
