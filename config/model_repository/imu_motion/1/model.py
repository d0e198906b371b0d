"""Triton python-backend model: windowed motion/anomaly scores per sensor stream (sequence).

Contract (see config.pbtxt; B = batch of requests from different sequences):
  samples          FP32   [B, n, F]  n samples (n may be 0: keep-alive / END without data) of F
                                     features (IMU: ax, ay, az, wx, wy, wz; LaserScan: ranges)
  START/END/READY  INT32  [B, 1]     sequence batcher control inputs
  CORRID           UINT64 [B, 1]
 ->
  motion           FP32  [B, 1]   mean per-sample change over the window
  anomaly          FP32  [B, 1]   largest z-like score of this request's samples vs the window
  window_fill      INT32 [B, 1]   changes in the window (grows from 0 after START)
  sequence_samples INT64 [B, 1]   samples this sequence has seen

One :class:`motion_core.MotionWindow` per correlation id in this instance's memory; START resets
it, END drops it, state idle for ``state_gc_factor`` x max idle is freed (Triton does not tell the
model about idle timeouts). A continuation for an unknown sequence asks for the START flag.
"""
import json
import os
import sys
import time

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from motion_core import DEFAULTS, MotionWindow  # noqa: E402


def _flag(request, name) -> bool:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return tensor is not None and bool(np.asarray(tensor.as_numpy()).reshape(-1)[0])


def _correlation_id(request) -> int:
    tensor = pb_utils.get_input_tensor_by_name(request, "CORRID")
    if tensor is not None:
        return int(np.asarray(tensor.as_numpy()).reshape(-1)[0])
    return int(request.correlation_id())


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        self.window_params = {k: params.get(k, v) for k, v in DEFAULTS.items()}
        idle_us = int(config.get("sequence_batching", {})
                      .get("max_sequence_idle_microseconds", 1_000_000) or 1_000_000)
        self.gc_after_s = float(params.get("state_gc_factor", "2")) * idle_us / 1e6
        self.instance = args.get("model_instance_name", "imu_motion")
        self.sequences = {}   # correlation id -> [MotionWindow, last request (monotonic s)]
        self.logger = getattr(pb_utils, "Logger", None)

    def _log(self, text):
        if self.logger is not None:
            self.logger.log_info(f"{self.instance}: {text}")

    def _one(self, request, now):
        corrid = _correlation_id(request)
        if _flag(request, "START"):
            self.sequences[corrid] = [MotionWindow.from_parameters(self.window_params), now]
            self._log(f"sequence {corrid} started; {len(self.sequences)} held")
        entry = self.sequences.get(corrid)
        if entry is None:
            raise ValueError(
                f"sequence {corrid} has no state on {self.instance} (instance restarted or state "
                "freed): inference request must specify the START flag to start it again")
        window = entry[0]
        entry[1] = now
        samples = pb_utils.get_input_tensor_by_name(request, "samples").as_numpy()
        motion, anomaly = window.update(samples.reshape(-1, samples.shape[-1])
                                        if samples.size else samples)
        if _flag(request, "END"):
            del self.sequences[corrid]
            self._log(f"sequence {corrid} ended after {window.samples} sample(s); "
                      f"{len(self.sequences)} held")
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("motion", np.array([[motion]], np.float32)),
            pb_utils.Tensor("anomaly", np.array([[anomaly]], np.float32)),
            pb_utils.Tensor("window_fill", np.array([[len(window.changes)]], np.int32)),
            pb_utils.Tensor("sequence_samples", np.array([[window.samples]], np.int64)),
        ])

    def execute(self, requests):
        now = time.monotonic()
        for corrid in [c for c, (_, seen) in self.sequences.items()
                       if now - seen > self.gc_after_s]:
            del self.sequences[corrid]
            self._log(f"sequence {corrid} freed after {self.gc_after_s:.1f} s without requests")
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request, now))
            except Exception as exc:  # one bad request must not fail the others in the batch
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(str(exc))))
        return responses

    def finalize(self):
        self.sequences.clear()
