"""The steps of the encoded-image ensembles (``*_encoded`` in config/model_repository), as
plain functions of numpy batches (no Triton, no ROS here; :mod:`triton_ros.python_backend`
runs them in the server).

A frame's way through an ensemble::

    encoded_image BYTES [B, 1] --PreprocessStep--> image [B, <detector input>], transform, status
    image --the detector model--> raw outputs (TF-OD tensors, or raw YOLO heads)
    raw outputs, transform, status --PostprocessStep--> num_detections, detection_boxes (xyxy,
        source pixels), detection_scores, detection_classes, source_size, status

The math is the client's own, so both paths give the same boxes: decode and size check
(:mod:`triton_ros.image_files`), resize/letterbox and scaling (:class:`~triton_ros.preprocess.
Preprocessor`), output decoding and NMS (:mod:`triton_ros.decoders`) and the inverse box
mapping (:meth:`~triton_ros.preprocess.ImageTransform.boxes_to_source`).

``transform`` FP64 [B, 6] carries each item's :class:`ImageTransform` from the first step to the
last: scale_x, scale_y, offset_x, offset_y, source_width, source_height. ``status`` BYTES [B, 1]
is b"" for an item that was answered, else the reason it was not; such an item gets zero
detections and source_size 0, 0, and never fails its batch.
"""
from dataclasses import dataclass

import numpy as np

from triton_ros.decoders import (TfodOutputs, YoloOutputs, decode_tfod, decode_yolo,
                                 filter_detections)
from triton_ros.detections import Detections
from triton_ros.image_files import DEFAULT_MAX_IMAGE_PIXELS, ImageFileError, decode_image
from triton_ros.labels import LabelMap
from triton_ros.preprocess import ImageTransform, PreprocessConfig, Preprocessor

# Triton config data_type -> numpy dtype name, for the pre-processing step's image output.
_DTYPES = {"TYPE_UINT8": "uint8", "TYPE_FP16": "float16", "TYPE_FP32": "float32"}


def transform_row(tf: ImageTransform) -> np.ndarray:
    """One item's ``transform`` row (see the module docstring)."""
    return np.array([tf.scale_x, tf.scale_y, tf.offset_x, tf.offset_y, tf.source_width,
                     tf.source_height], np.float64)


def row_transform(row: np.ndarray) -> ImageTransform:
    """The inverse of :func:`transform_row`."""
    sx, sy, ox, oy, w, h = (float(v) for v in row)
    return ImageTransform(sx, sy, ox, oy, int(w), int(h))


def _status(n: int) -> np.ndarray:
    status = np.empty((n, 1), np.object_)
    status[:] = b""
    return status


class PreprocessStep:
    """``{"encoded_image": BYTES [B, 1]}`` -> ``{"image": [B, *output_shape], "transform":
    FP64 [B, 6], "status": BYTES [B, 1]}``. A failed item's image is zeros."""

    def __init__(self, cfg: PreprocessConfig, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
        self.preprocess = Preprocessor(cfg)
        self.max_image_pixels = max_image_pixels

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        encoded = inputs["encoded_image"]
        n = len(encoded)
        images = np.zeros((n, *self.preprocess.output_shape()), self.preprocess.dtype)
        transforms = np.zeros((n, 6), np.float64)
        status = _status(n)
        for index, data in enumerate(encoded.reshape(n, -1)[:, 0]):
            try:
                frame = decode_image(bytes(data), self.max_image_pixels)
            except ImageFileError as exc:
                status[index, 0] = str(exc).encode()
                continue
            _, tf = self.preprocess(frame, out=images[index])
            transforms[index] = transform_row(tf)
        return {"image": images, "transform": transforms, "status": status}


@dataclass(frozen=True)
class PostprocessConfig:
    """How to read the detector's outputs. ``decoder``: ``tfod`` (``tfod``'s tensor names and
    box format; class ids kept as the detector gives them) or ``yolo`` (raw heads, class-aware
    NMS at ``yolo.iou_threshold``). ``input_width``/``input_height``: the detector's input in
    pixels. Detections scoring below ``score_floor`` are dropped; at most ``max_detections``."""
    decoder: str
    input_width: int
    input_height: int
    tfod: TfodOutputs = TfodOutputs(class_offset=0)
    yolo: YoloOutputs = YoloOutputs()
    score_floor: float = 0.05
    max_detections: int = 100

    def __post_init__(self):
        if self.decoder not in ("tfod", "yolo"):
            raise ValueError(f"decoder {self.decoder!r} not in ['tfod', 'yolo']")
        if self.input_width <= 0 or self.input_height <= 0:
            raise ValueError(f"input size must be positive, got "
                             f"{self.input_width}x{self.input_height}")


class PostprocessStep:
    """The detector's raw outputs plus ``transform`` and ``status`` -> per item:
    ``num_detections`` INT32 [B, 1], ``detection_boxes`` FP32 [B, K, 4] x1, y1, x2, y2 in
    source pixels, ``detection_scores`` FP32 [B, K] best first, ``detection_classes`` FP32
    [B, K] the detector's class ids, ``source_size`` INT32 [B, 2] (height, width), ``status``
    BYTES [B, 1] (passed through); rows past num_detections are zero. K = max_detections."""

    def __init__(self, cfg: PostprocessConfig):
        self.cfg = cfg
        self._labels = LabelMap()  # ids only: the client names them

    def input_names(self) -> list[str]:
        cfg = self.cfg
        raw = cfg.tfod.names() if cfg.decoder == "tfod" else cfg.yolo.names()
        return raw + ["transform", "status"]

    def _decode(self, inputs) -> list[Detections]:
        cfg = self.cfg
        if cfg.decoder == "tfod":
            return [filter_detections(dets, cfg.score_floor, cfg.max_detections)
                    for dets in decode_tfod(inputs, cfg.input_width, cfg.input_height, cfg.tfod,
                                            self._labels)]
        return decode_yolo(inputs, cfg.input_width, cfg.input_height, cfg.yolo, self._labels,
                           cfg.score_floor, cfg.max_detections)

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        k = self.cfg.max_detections
        status = inputs["status"]
        transforms = inputs["transform"]
        n = len(transforms)
        num = np.zeros((n, 1), np.int32)
        boxes = np.zeros((n, k, 4), np.float32)
        scores = np.zeros((n, k), np.float32)
        classes = np.zeros((n, k), np.float32)
        sizes = np.zeros((n, 2), np.int32)
        for index, dets in enumerate(self._decode(inputs)):
            if status.reshape(n, -1)[index, 0]:
                continue  # not decoded: its (zero) image's detections are meaningless
            tf = row_transform(transforms[index])
            count = min(len(dets), k)
            num[index, 0] = count
            boxes[index, :count] = tf.boxes_to_source(dets.boxes[:count])
            scores[index, :count] = dets.scores[:count]
            classes[index, :count] = dets.class_ids[:count]
            sizes[index] = tf.source_height, tf.source_width
        return {"num_detections": num, "detection_boxes": boxes, "detection_scores": scores,
                "detection_classes": classes, "source_size": sizes,
                "status": status.reshape(n, 1)}


def _params(config: dict) -> dict[str, str]:
    return {key: str((value or {}).get("string_value", ""))
            for key, value in (config.get("parameters") or {}).items()}


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def step_from_config(config: dict):
    """The step a python-backend model's config (Triton's JSON of config.pbtxt) describes, by
    its ``step`` parameter (``preprocess`` | ``postprocess``); the other parameters are in
    config/model_repository/*_encoded_{pre,post}/config.pbtxt. ValueError when invalid."""
    params = _params(config)
    kind = params.get("step", "")
    if kind == "preprocess":
        image = next((o for o in config.get("output", []) if o["name"] == "image"), None)
        if image is None or image["data_type"] not in _DTYPES:
            raise ValueError("the preprocess step needs an output 'image' of "
                             f"{sorted(_DTYPES)}")
        layout = params.get("layout", "NHWC")
        dims = [int(d) for d in image["dims"]]
        height, width = dims[:2] if layout == "NHWC" else dims[1:]
        channels = dims[2] if layout == "NHWC" else dims[0]
        return PreprocessStep(PreprocessConfig(
            width=width, height=height, channels=channels, layout=layout,
            dtype=_DTYPES[image["data_type"]], color_order=params.get("color_order", "RGB"),
            resize=params.get("resize", "stretch"), pad_value=int(params.get("pad_value", 114)),
            scaling=params.get("scaling", "NONE")),
            int(params.get("max_image_pixels", DEFAULT_MAX_IMAGE_PIXELS)))
    if kind == "postprocess":
        scores = next((o for o in config.get("output", [])
                       if o["name"] == "detection_scores"), None)
        if scores is None:
            raise ValueError("the postprocess step needs an output 'detection_scores' [K]")
        yolo_output = params.get("yolo_output", "output0")
        return PostprocessStep(PostprocessConfig(
            decoder=params.get("decoder", "tfod"),
            input_width=int(params.get("input_width", 0)),
            input_height=int(params.get("input_height", 0)),
            tfod=TfodOutputs(num_detections="raw_num_detections", boxes="raw_detection_boxes",
                             scores="raw_detection_scores", classes="raw_detection_classes",
                             box_format=params.get("tfod_box_format", "yxyx"),
                             normalized=_bool(params.get("tfod_normalized_boxes", "true")),
                             class_offset=0),
            yolo=YoloOutputs(output=yolo_output, version=params.get("yolo_version", "v8"),
                             box_format=params.get("yolo_box_format", "cxcywh"),
                             normalized=_bool(params.get("yolo_normalized_boxes", "false")),
                             iou_threshold=float(params.get("yolo_iou_threshold", 0.45)),
                             pre_nms_score_threshold=0.0),
            score_floor=float(params.get("score_floor", 0.05)),
            max_detections=int(scores["dims"][0])))
    raise ValueError(f"parameter step={kind!r} not in ['preprocess', 'postprocess']")
