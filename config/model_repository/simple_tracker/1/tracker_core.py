"""A small multi-object tracker: greedy IoU association with a constant-velocity prediction.

Pure numpy, no Triton: ``model.py`` keeps one :class:`SequenceTracker` per Triton sequence
(correlation id), and the tests run the same class offline as the reference.

Per frame, :meth:`SequenceTracker.update` takes the frame's detections (``boxes`` x1, y1, x2, y2
in any consistent unit, ``scores``, integer ``classes``) and returns one track id per detection:

1. every live track predicts its box (last box + smoothed per-frame motion);
2. detection/track pairs of the same class are matched greedily, highest IoU first, while the IoU
   is at least ``iou_threshold`` (ties broken by track age, then detection order: deterministic);
3. a matched track takes the detection's box and keeps its id; an unmatched detection scoring at
   least ``min_score`` starts a new track with the next id of this sequence (1, 2, 3, ...);
   a weaker unmatched detection gets id 0 (untracked);
4. a track missed for more than ``max_misses`` frames is dropped; its id is never reused.
"""
from dataclasses import dataclass

import numpy as np

DEFAULTS = {"iou_threshold": 0.3, "max_misses": 5, "min_score": 0.0, "velocity_smoothing": 0.5}


@dataclass
class Track:
    track_id: int
    box: np.ndarray          # float64 [4] x1, y1, x2, y2
    cls: int
    velocity: np.ndarray     # float64 [4] per-frame change of the box
    hits: int = 1
    misses: int = 0

    def predicted(self) -> np.ndarray:
        return self.box + self.velocity


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` [N, 4] with every box in ``b`` [M, 4] -> [N, M]."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


class SequenceTracker:
    """The tracks of one sequence (one robot's stream)."""

    def __init__(self, iou_threshold=DEFAULTS["iou_threshold"], max_misses=DEFAULTS["max_misses"],
                 min_score=DEFAULTS["min_score"],
                 velocity_smoothing=DEFAULTS["velocity_smoothing"]):
        self.iou_threshold = float(iou_threshold)
        self.max_misses = int(max_misses)
        self.min_score = float(min_score)
        self.velocity_smoothing = float(velocity_smoothing)
        self.tracks: list[Track] = []
        self.next_id = 1
        self.frames = 0

    @classmethod
    def from_parameters(cls, parameters: dict) -> "SequenceTracker":
        """``parameters``: name -> value (strings as in config.pbtxt are fine)."""
        kwargs = {k: float(parameters.get(k, v)) for k, v in DEFAULTS.items()}
        kwargs["max_misses"] = int(kwargs["max_misses"])
        return cls(**kwargs)

    def update(self, boxes, scores, classes) -> np.ndarray:
        """One frame: returns INT64 track ids [N] aligned with ``boxes`` (0 = untracked)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        classes = np.asarray(classes, np.int64).reshape(-1)
        if not len(boxes) == len(scores) == len(classes):
            raise ValueError(f"boxes ({len(boxes)}), scores ({len(scores)}) and classes "
                             f"({len(classes)}) must have one row per detection")
        self.frames += 1
        ids = np.zeros(len(boxes), np.int64)
        predicted = (np.stack([t.predicted() for t in self.tracks]) if self.tracks
                     else np.zeros((0, 4)))
        ious = iou_matrix(predicted, boxes)
        if ious.size:
            same_class = np.array([t.cls for t in self.tracks])[:, None] == classes[None, :]
            ious = np.where(same_class, ious, 0.0)
        matched_tracks, matched_dets = set(), set()
        # Greedy: all candidate pairs, best IoU first; older tracks win ties (stable sort order).
        pairs = [(-ious[t, d], t, d) for t in range(ious.shape[0]) for d in range(ious.shape[1])
                 if ious[t, d] >= self.iou_threshold and ious[t, d] > 0]
        for _, t, d in sorted(pairs):
            if t in matched_tracks or d in matched_dets:
                continue
            matched_tracks.add(t)
            matched_dets.add(d)
            track = self.tracks[t]
            delta = boxes[d] - track.box
            a = self.velocity_smoothing
            track.velocity = a * track.velocity + (1.0 - a) * delta
            track.box = boxes[d].copy()
            track.hits += 1
            track.misses = 0
            ids[d] = track.track_id
        survivors = []
        for index, track in enumerate(self.tracks):
            if index not in matched_tracks:
                track.misses += 1
                track.box = track.predicted()
            if track.misses <= self.max_misses:
                survivors.append(track)
        self.tracks = survivors
        for d in range(len(boxes)):
            if d in matched_dets or scores[d] < self.min_score:
                continue
            self.tracks.append(Track(self.next_id, boxes[d].copy(), int(classes[d]),
                                     np.zeros(4)))
            ids[d] = self.next_id
            self.next_id += 1
        return ids
