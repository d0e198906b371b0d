"""Triton python-backend model: a null detector (no computation, fixed answer).

Contract (see config.pbtxt; the same tensors as ssd_mobilenet_v2_coco):
  input_tensor       UINT8 [B, 300, 300, 3]  not read
  num_detections     FP32  [B, 1]            3
  detection_boxes    FP32  [B, 100, 4]       normalised ymin, xmin, ymax, xmax; rows >= 3 zero
  detection_scores   FP32  [B, 100]          0.9, 0.8, 0.7, then 0
  detection_classes  FP32  [B, 100]          1 (person), 3 (car), 1 (person), then 0

Imports only numpy so that it loads in well under a second (the integration tests' session
server loads every model of the repository).
"""
import numpy as np
import triton_python_backend_utils as pb_utils

K = 100
BOXES = np.zeros((K, 4), np.float32)
BOXES[:3] = [[0.10, 0.20, 0.60, 0.40], [0.50, 0.55, 0.90, 0.95], [0.15, 0.60, 0.70, 0.75]]
SCORES = np.zeros(K, np.float32)
SCORES[:3] = [0.9, 0.8, 0.7]
CLASSES = np.zeros(K, np.float32)
CLASSES[:3] = [1, 3, 1]


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            batch = pb_utils.get_input_tensor_by_name(request, "input_tensor").as_numpy().shape[0]
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("num_detections", np.full((batch, 1), 3, np.float32)),
                pb_utils.Tensor("detection_boxes", np.broadcast_to(BOXES, (batch, K, 4)).copy()),
                pb_utils.Tensor("detection_scores", np.broadcast_to(SCORES, (batch, K)).copy()),
                pb_utils.Tensor("detection_classes",
                                np.broadcast_to(CLASSES, (batch, K)).copy()),
            ]))
        return responses
