"""Triton python-backend model: a multi-object tracker with per-sequence state on the server.

Contract (see config.pbtxt; B = batch of requests from different sequences, 1 per request):
  boxes            FP32  [B, N, 4]  x1, y1, x2, y2 of the frame's detections (any pixel unit)
  scores           FP32  [B, N]
  classes          INT32 [B, N]     class index (equal classes associate)
  keepalive        BOOL  [B, 1]     optional; true = no frame, only keep the sequence alive
  START/END/READY  INT32 [B, 1]     sequence batcher control inputs
  CORRID           UINT64 [B, 1]    correlation id of the request's sequence
 ->
  track_ids          INT64 [B, N]   persistent id per detection within the sequence (0 untracked)
  sequence_frame     INT64 [B, 1]   frames this sequence has seen, this one included (1 after START)
  instance_sequences INT32 [B, 1]   sequences whose state this model instance holds

One :class:`tracker_core.SequenceTracker` per correlation id, in this instance's memory (the
python backend ignores ``state`` in config.pbtxt; the sequence batcher keeps every request of a
sequence on the same instance). START resets the sequence's tracks, END drops them. Triton does
not tell the model when it drops an idle sequence, so state untouched for longer than
``state_gc_factor`` x max_sequence_idle_microseconds is freed at the next request. A continuation
request for a sequence this instance has no state for (the instance was restarted) fails with a
message that, like Triton's own, asks for the START flag: clients restart the sequence.
"""
import json
import os
import sys
import time

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracker_core import DEFAULTS, SequenceTracker  # noqa: E402


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
        self.tracker_params = {k: params.get(k, v) for k, v in DEFAULTS.items()}
        idle_us = int(config.get("sequence_batching", {})
                      .get("max_sequence_idle_microseconds", 1_000_000) or 1_000_000)
        self.gc_after_s = float(params.get("state_gc_factor", "2")) * idle_us / 1e6
        self.instance = args.get("model_instance_name", "simple_tracker")
        self.sequences = {}   # correlation id -> [SequenceTracker, last request (monotonic s)]
        self.logger = getattr(pb_utils, "Logger", None)

    def _log(self, text):
        if self.logger is not None:
            self.logger.log_info(f"{self.instance}: {text}")

    def _collect_garbage(self, now):
        stale = [c for c, (_, seen) in self.sequences.items() if now - seen > self.gc_after_s]
        for corrid in stale:
            del self.sequences[corrid]
            self._log(f"sequence {corrid} freed after {self.gc_after_s:.1f} s without requests "
                      f"(dropped by the server's idle timeout); {len(self.sequences)} held")

    def _one(self, request, now):
        corrid = _correlation_id(request)
        start, end = _flag(request, "START"), _flag(request, "END")
        keepalive = _flag(request, "keepalive")
        if start:
            self.sequences[corrid] = [SequenceTracker.from_parameters(self.tracker_params), now]
            self._log(f"sequence {corrid} started; {len(self.sequences)} held")
        entry = self.sequences.get(corrid)
        if entry is None:
            raise ValueError(
                f"sequence {corrid} has no state on {self.instance} (instance restarted or state "
                "freed): inference request must specify the START flag to start it again")
        tracker = entry[0]
        entry[1] = now
        if keepalive:
            ids = np.zeros(0, np.int64)
        else:
            boxes = pb_utils.get_input_tensor_by_name(request, "boxes").as_numpy()
            scores = pb_utils.get_input_tensor_by_name(request, "scores").as_numpy()
            classes = pb_utils.get_input_tensor_by_name(request, "classes").as_numpy()
            ids = tracker.update(boxes.reshape(-1, 4), scores.reshape(-1), classes.reshape(-1))
        frames = tracker.frames
        if end:
            del self.sequences[corrid]
            self._log(f"sequence {corrid} ended after {frames} frame(s); "
                      f"{len(self.sequences)} held")
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor("track_ids", ids.reshape(1, -1).astype(np.int64)),
            pb_utils.Tensor("sequence_frame", np.array([[frames]], np.int64)),
            pb_utils.Tensor("instance_sequences", np.array([[len(self.sequences)]], np.int32)),
        ])

    def execute(self, requests):
        now = time.monotonic()
        self._collect_garbage(now)
        responses = []
        for request in requests:
            try:
                responses.append(self._one(request, now))
            except Exception as exc:  # one bad request must not fail the others in the batch
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[], error=pb_utils.TritonError(str(exc))))
        return responses

    def finalize(self):
        self._log(f"unloading with {len(self.sequences)} sequence(s) held")
        self.sequences.clear()
