"""Debug drawing: detections drawn onto a copy of their frame (OpenCV, no ROS)."""
import cv2
import numpy as np

from triton_ros.detections import Detections

BOX_COLOR = (0, 200, 0)  # BGR


def draw_detections(frame: np.ndarray, dets: Detections) -> np.ndarray:
    """A uint8 BGR [H, W, 3] copy of ``frame`` (BGR or mono, source pixels) with each box and
    ``label score`` drawn; ``frame`` is not modified."""
    canvas = frame.copy() if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    for (x1, y1, x2, y2), score, label in zip(dets.boxes, dets.scores, dets.labels):
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(canvas, p1, p2, BOX_COLOR, 2)
        cv2.putText(canvas, f"{label} {score:.2f}", (p1[0], max(12, p1[1] - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, BOX_COLOR, 1, cv2.LINE_AA)
    return canvas
