"""Detections of one frame, as plain arrays (no ROS types)."""
from dataclasses import dataclass

import numpy as np


@dataclass
class Detections:
    """``boxes``: float64 [K, 4] x1, y1, x2, y2 in pixels (x right, y down);
    ``scores``: float32 [K] in [0, 1]; ``class_ids``: int64 [K], 0-based label index;
    ``labels``: K label strings. Coordinates are model-input pixels straight from a decoder and
    source-image pixels after :meth:`ImageTransform.boxes_to_source`.
    """
    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: list[str]

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4)), np.zeros(0, np.float32), np.zeros(0, np.int64), [])

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, keep) -> "Detections":
        keep = np.asarray(keep)
        if keep.dtype == bool:
            keep = np.flatnonzero(keep)
        return Detections(self.boxes[keep], self.scores[keep], self.class_ids[keep],
                          [self.labels[i] for i in keep])

    def centers_sizes(self) -> np.ndarray:
        """[K, 4] cx, cy, w, h (the vision_msgs BoundingBox2D form)."""
        b = self.boxes
        return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2,
                         b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


@dataclass(frozen=True)
class ItemError:
    """One batch item the model could not answer (e.g. bytes no decoder reads, an image over
    the size limit); ``reason`` says why, for the user. Its neighbours are answered."""
    reason: str
