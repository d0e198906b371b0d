"""Triton python-backend model: YOLOv4-tiny COCO (Darknet weights) run with OpenCV DNN.

Input ``images`` FP32 [B, 3, H, W] RGB in 0..1, already letterboxed by the client (416x416 in
config.pbtxt). Outputs (see config.pbtxt), rows of 85 values per anchor:
cx, cy, w, h in input pixels, objectness, 80 conditional class probabilities (YOLOv5-style).

What OpenCV's Darknet ``[yolo]`` layer gives, and what is changed here:
- boxes are normalised to the input size: scaled to input pixels;
- each class column is already ``objectness x class probability``, and values not above the
  layer's ``thresh`` (0.2 unless the cfg says otherwise) are set to 0. The cfg is read with
  ``thresh=0`` added to every [yolo] section (nothing zeroed; an in-memory edit, the file is
  untouched), and the class columns are divided by the objectness, so that the output carries
  what a YOLOv5/v7 export does and ``objectness x class probability`` is OpenCV's own score.

Weights: the directory named by TRITON_ROS_YOLO_DIR, else ``.cache/models/yolov4_tiny`` (written
by scripts/bootstrap.sh) beside the model repository's checkout or the server's venv.
"""
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import triton_python_backend_utils as pb_utils

CFG = "yolov4-tiny.cfg"
WEIGHTS = "yolov4-tiny.weights"
CACHE_SUBDIR = Path(".cache") / "models" / "yolov4_tiny"


def _weights_dir(model_dir: str) -> Path:
    explicit = os.environ.get("TRITON_ROS_YOLO_DIR")
    if explicit:
        return Path(explicit)
    candidates = [parent / CACHE_SUBDIR for parent in Path(model_dir).resolve().parents]
    candidates.append(Path(sys.prefix).parent / CACHE_SUBDIR)  # <repo>/.venv-server -> <repo>
    for candidate in candidates:
        if (candidate / WEIGHTS).is_file():
            return candidate
    raise pb_utils.TritonModelException(
        f"YOLOv4-tiny weights ({WEIGHTS}) not found in {[str(c) for c in candidates]}: run "
        "scripts/bootstrap.sh or set TRITON_ROS_YOLO_DIR")


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.input_name = config["input"][0]["name"]
        self.output_names = [o["name"] for o in config["output"]]
        weights = _weights_dir(args["model_repository"])
        cfg = (weights / CFG).read_bytes().replace(b"[yolo]", b"[yolo]\nthresh=0")
        self.net = cv2.dnn.readNetFromDarknet(np.frombuffer(cfg, np.uint8),
                                              np.fromfile(weights / WEIGHTS, np.uint8))
        self.heads = self.net.getUnconnectedOutLayersNames()
        cv2.setNumThreads(max(1, (os.cpu_count() or 1)))
        dims = config["input"][0]["dims"]
        # Warm-up (the first run is ~10x slower) and a check that the heads match the config.
        got = [head.shape[1] for head in self._forward(np.zeros((1, *dims), np.float32))]
        want = {o["name"]: o["dims"][0] for o in config["output"]}
        if got != [want["head_13"], want["head_26"]] or sum(got) != want["output0"]:
            raise pb_utils.TritonModelException(f"heads have {got} anchors; config says {want}")

    def _forward(self, blob):
        """[B, 3, H, W] 0..1 RGB -> list of [B, anchors, 85] per head (see the module doc)."""
        self.net.setInput(blob)
        height, width = blob.shape[2:]
        heads = []
        for out in self.net.forward(self.heads):
            out = out.reshape(len(blob), -1, out.shape[-1]).copy()
            out[..., :4] *= np.array([width, height, width, height], np.float32)
            objectness = out[..., 4:5]
            np.divide(out[..., 5:], objectness, out=out[..., 5:], where=objectness > 0)
            heads.append(out)
        return sorted(heads, key=lambda head: head.shape[1])  # coarse (13x13) grid first

    def execute(self, requests):
        batches = [pb_utils.get_input_tensor_by_name(r, self.input_name).as_numpy()
                   for r in requests]
        sizes = [b.shape[0] for b in batches]
        heads = self._forward(np.ascontiguousarray(np.concatenate(batches, axis=0),
                                                   dtype=np.float32))
        outputs = {"output0": np.concatenate(heads, axis=1), "head_13": heads[0],
                   "head_26": heads[1]}
        responses, start = [], 0
        for request, size in zip(requests, sizes):
            part = slice(start, start + size)
            start += size
            wanted = request.requested_output_names() or self.output_names
            responses.append(pb_utils.InferenceResponse(output_tensors=[
                pb_utils.Tensor(name, np.ascontiguousarray(outputs[name][part]))
                for name in wanted]))
        return responses
