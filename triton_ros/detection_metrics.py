"""Detection comparison and COCO-style average precision, ROS-free (numpy only).

Boxes here are ``[x1, y1, x2, y2]`` in source pixels. detections.json entries carry
``{"class_id", "score", "bbox": {"cx", "cy", "w", "h"}}``; :func:`entry_box` converts.
"""
from dataclasses import dataclass, field

import numpy as np

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def entry_box(det: dict) -> np.ndarray:
    b = det["bbox"]
    return np.array([b["cx"] - b["w"] / 2, b["cy"] - b["h"] / 2,
                     b["cx"] + b["w"] / 2, b["cy"] + b["h"] / 2], float)


def xywh_box(xywh) -> np.ndarray:
    """COCO ``[x, y, w, h]`` -> ``[x1, y1, x2, y2]``."""
    x, y, w, h = map(float, xywh)
    return np.array([x, y, x + w, y + h])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` [N, 4] with every box in ``b`` [M, 4] -> [N, M]."""
    a = np.asarray(a, float).reshape(-1, 4)
    b = np.asarray(b, float).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass
class FrameMatch:
    """One frame's comparison: matched pairs (golden index, run index) and the leftovers."""
    matched: list = field(default_factory=list)
    golden_only: list = field(default_factory=list)   # indices into the golden detections
    run_only: list = field(default_factory=list)      # indices into the run detections

    @property
    def errors(self) -> int:
        return len(self.golden_only) + len(self.run_only)


def match_frame(golden: list[dict], run: list[dict], iou_threshold: float,
                score_tolerance: float) -> FrameMatch:
    """Greedy one-to-one matching, golden detections by descending score: a run detection
    matches when the class is equal, IoU >= ``iou_threshold`` and |score difference| <=
    ``score_tolerance`` (best IoU wins among candidates)."""
    result = FrameMatch()
    ious = iou_matrix([entry_box(d) for d in golden], [entry_box(d) for d in run]) \
        if golden and run else np.zeros((len(golden), len(run)))
    used = set()
    for gi in sorted(range(len(golden)), key=lambda i: -golden[i]["score"]):
        best, best_iou = None, iou_threshold
        for ri, det in enumerate(run):
            if (ri in used or det["class_id"] != golden[gi]["class_id"]
                    or abs(det["score"] - golden[gi]["score"]) > score_tolerance):
                continue
            if ious[gi, ri] >= best_iou:
                best, best_iou = ri, ious[gi, ri]
        if best is None:
            result.golden_only.append(gi)
        else:
            used.add(best)
            result.matched.append((gi, best))
    result.run_only = [ri for ri in range(len(run)) if ri not in used]
    return result


def average_precision(scores, matched, n_ground_truth: int) -> float:
    """COCO's 101-point interpolated AP for one class at one IoU threshold.

    Written in numpy after pycocotools' COCOeval.accumulate (pycocotools itself is not in the
    environment): precision made monotone from the right, then sampled at recall 0, 0.01, ...,
    1 (the first detection reaching each recall); missing recall levels count 0. NaN when there
    is no ground truth.
    """
    if n_ground_truth == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, float), kind="mergesort")
    tp = np.asarray(matched, bool)[order]
    if tp.size == 0:
        return 0.0
    tps, fps = np.cumsum(tp), np.cumsum(~tp)
    recall = tps / n_ground_truth
    precision = tps / np.maximum(tps + fps, np.finfo(float).eps)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, COCO_RECALL_POINTS, side="left")
    sampled = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(sampled.mean())


def coco_map(ground_truth: dict, detections: dict, iou_thresholds=COCO_IOU_THRESHOLDS) -> dict:
    """mAP over classes with ground truth, per IoU threshold.

    ``ground_truth``: {image key: [(class, box xyxy)]}; ``detections``: {image key:
    [(class, score, box xyxy)]}; only images in ``ground_truth`` count. Per image and class,
    detections by descending score take the best-IoU unmatched ground truth (COCO's rule; all
    areas, up to 100 detections per image, no crowd regions). Returns {"map50", "map50_95",
    "per_class": {class: {"ap50", "ap50_95", "ground_truth"}}}.
    """
    classes = sorted({c for boxes in ground_truth.values() for c, _ in boxes})
    per_class = {}
    for cls in classes:
        aps = []
        n_gt = sum(c == cls for boxes in ground_truth.values() for c, _ in boxes)
        for threshold in iou_thresholds:
            scores, matched = [], []
            for image, gt_all in ground_truth.items():
                gt = [b for c, b in gt_all if c == cls]
                dets = sorted([(s, b) for c, s, b in detections.get(image, []) if c == cls],
                              key=lambda d: -d[0])[:100]
                ious = iou_matrix([b for _, b in dets], gt) if dets and gt else None
                taken = set()
                for di, (score, _) in enumerate(dets):
                    best, best_iou = None, threshold
                    for gi in range(len(gt)):
                        if gi not in taken and ious[di, gi] >= best_iou:
                            best, best_iou = gi, ious[di, gi]
                    if best is not None:
                        taken.add(best)
                    scores.append(score)
                    matched.append(best is not None)
            aps.append(average_precision(scores, matched, n_gt))
        per_class[cls] = {"ap50": aps[0], "ap50_95": float(np.mean(aps)), "ground_truth": n_gt}
    if not per_class:
        return {"map50": float("nan"), "map50_95": float("nan"), "per_class": {}}
    return {"map50": float(np.mean([v["ap50"] for v in per_class.values()])),
            "map50_95": float(np.mean([v["ap50_95"] for v in per_class.values()])),
            "per_class": per_class}
