"""Decode raw model outputs into :class:`Detections` in model-input pixels.

Every decoder takes ``outputs`` (name -> array with the batch dim first), the model input size and
returns one :class:`Detections` per batch item, before score threshold / class filter /
max-detections are applied by :func:`filter_detections`.
"""
from dataclasses import dataclass

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


def decode_tfod(outputs: dict[str, np.ndarray], input_width: int, input_height: int,
                spec: TfodOutputs, labels: LabelMap) -> list[Detections]:
    """``num [B] or [B, 1]``, ``boxes [B, K, 4]``, ``scores [B, K]``, ``classes [B, K]``."""
    boxes = np.asarray(outputs[spec.boxes], np.float64)
    scores = np.asarray(outputs[spec.scores], np.float32)
    classes = np.asarray(outputs[spec.classes])
    counts = np.asarray(outputs[spec.num_detections]).reshape(-1)
    if (boxes.ndim != 3 or boxes.shape[-1] != 4 or scores.shape != boxes.shape[:2]
            or counts.size != len(boxes)):
        raise ValueError(f"TF-OD outputs have shapes boxes {list(boxes.shape)}, scores "
                         f"{list(scores.shape)}, num_detections {counts.size} values; "
                         "expected [B, K, 4], [B, K] and B values")
    if spec.box_format == "yxyx":
        boxes = boxes[..., [1, 0, 3, 2]]
    elif spec.box_format != "xyxy":
        raise ValueError(f"box_format {spec.box_format!r} not in ['yxyx', 'xyxy']")
    if spec.normalized:
        boxes = boxes * np.array([input_width, input_height, input_width, input_height])
    results = []
    for item in range(len(boxes)):
        n = int(min(max(counts[item], 0), boxes.shape[1]))
        ids = np.rint(classes[item, :n]).astype(np.int64) - spec.class_offset
        results.append(Detections(boxes[item, :n], scores[item, :n], ids,
                                  [labels.name(int(i)) for i in ids]))
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
