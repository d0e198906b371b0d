"""Windowed motion and anomaly scores of a sensor stream (pure numpy, no Triton).

A stream is a sequence of feature vectors (an IMU sample: linear acceleration and angular
velocity; a laser scan: its ranges; any fixed-length vector). Per sample the change from the
previous one is its RMS difference ``d``. :class:`MotionWindow` keeps the last ``window`` changes:

- ``motion``: the mean change over the window (0 while the sensor is still);
- ``anomaly``: for the samples of the last update, the largest ``(d - mean) / (std + 0.05 mean
  + 1e-3)`` against the window *before* that sample (a jolt in a steady stream scores high);
  0 until ``min_history`` changes are known.
"""
from collections import deque

import numpy as np

DEFAULTS = {"window": 50, "min_history": 5}


class MotionWindow:
    """The state of one sequence (one sensor stream)."""

    def __init__(self, window=DEFAULTS["window"], min_history=DEFAULTS["min_history"]):
        self.changes = deque(maxlen=int(window))
        self.min_history = int(min_history)
        self.previous = None
        self.features = None
        self.samples = 0
        self.motion = 0.0

    @classmethod
    def from_parameters(cls, parameters: dict) -> "MotionWindow":
        return cls(**{k: int(parameters.get(k, v)) for k, v in DEFAULTS.items()})

    def update(self, samples) -> tuple[float, float]:
        """``samples`` [n, F] (n may be 0: no data, scores unchanged) -> (motion, anomaly)."""
        samples = np.asarray(samples, np.float64)
        if samples.size == 0:
            return self.motion, 0.0
        samples = samples.reshape(len(samples), -1)
        if self.features is None:
            self.features = samples.shape[1]
        elif samples.shape[1] != self.features:
            raise ValueError(f"this sequence started with {self.features} features per sample, "
                             f"got {samples.shape[1]}: start a new sequence for a new layout")
        anomaly = 0.0
        for sample in samples:
            if not np.all(np.isfinite(sample)):
                raise ValueError("samples must be finite (map inf/nan before sending)")
            if self.previous is not None:
                change = float(np.sqrt(np.mean((sample - self.previous) ** 2)))
                if len(self.changes) >= self.min_history:
                    history = np.asarray(self.changes)
                    mean = float(history.mean())
                    score = (change - mean) / (float(history.std()) + 0.05 * mean + 1e-3)
                    anomaly = max(anomaly, score)
                self.changes.append(change)
            self.previous = sample
            self.samples += 1
        self.motion = float(np.mean(self.changes)) if self.changes else 0.0
        return self.motion, anomaly
