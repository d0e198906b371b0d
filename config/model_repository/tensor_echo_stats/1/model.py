"""Triton python-backend model: per-channel mean of UINT8 images (a transport probe).

Contract (see config.pbtxt):
  frame         UINT8 [B, H, W, 3]  any H, W
  channel_mean  FP32  [B, 3]        mean of each channel over H and W
"""
import cv2
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        cv2.setNumThreads(1)

    def execute(self, requests):
        responses = []
        for request in requests:
            frames = pb_utils.get_input_tensor_by_name(request, "frame").as_numpy()
            means = np.array([cv2.mean(np.ascontiguousarray(f))[:3] for f in frames],
                             dtype=np.float32).reshape(len(frames), 3)
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("channel_mean", means)]))
        return responses
