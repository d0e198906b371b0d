"""Frames in, detections in source-image pixels out: pre-process -> Triton -> decode -> map back.

No ROS here; the detect node wraps a :class:`Detector`.
"""
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from triton_ros.decoders import (TfodOutputs, YoloOutputs, decode_tfod, decode_yolo,
                                 filter_detections)
from triton_ros.detections import Detections
from triton_ros.labels import LabelMap
from triton_ros.model_spec import ModelSpec, ModelSpecError
from triton_ros.preprocess import PreprocessConfig, Preprocessor
from triton_ros.resources import config_path
from triton_ros.triton_client import TritonClient

DECODERS = ("tfod", "yolo")


@dataclass(frozen=True)
class DetectorConfig:
    """What the user chose; empty/zero values mean "use what the server reports"."""
    score_threshold: float = 0.5
    max_detections: int = 100
    class_filter: frozenset[str] = frozenset()
    labels_file: str = ""
    decoder: str = "tfod"
    tfod: TfodOutputs = field(default_factory=TfodOutputs)
    yolo: YoloOutputs = field(default_factory=YoloOutputs)
    input_name: str = ""
    input_width: int = 0
    input_height: int = 0
    input_layout: str = ""
    color_order: str = "RGB"
    resize: str = "stretch"
    pad_value: int = 114
    scaling: str = "NONE"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def validate(self) -> None:
        problems = []
        if not 0.0 <= self.score_threshold <= 1.0:
            problems.append(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if self.max_detections < 1:
            problems.append(f"max_detections must be >= 1, got {self.max_detections}")
        if self.decoder not in DECODERS:
            problems.append(f"decoder {self.decoder!r} not in {list(DECODERS)}")
        if self.input_layout not in ("", "NHWC", "NCHW"):
            problems.append(f"input_layout {self.input_layout!r} not in ['', 'NHWC', 'NCHW']")
        if problems:
            raise ValueError("invalid detector configuration: " + "; ".join(problems))


def resolve_labels(labels_file: str, spec: ModelSpec) -> LabelMap:
    """The explicit labels file, else ``config/labels/<label_filename from the model config>``."""
    if labels_file:
        return LabelMap.from_file(labels_file)
    if spec.labels_file:
        candidate = config_path("labels", Path(spec.labels_file).name)
        if candidate.is_file():
            return LabelMap.from_file(candidate)
    return LabelMap()


class Detector:
    """Runs one detection model on a Triton server.

    ``detect(frames)`` takes uint8 BGR ``[H, W, 3]`` (or mono ``[H, W]``) frames of any sizes and
    returns one :class:`Detections` per frame with boxes in that frame's pixels.
    """

    def __init__(self, client: TritonClient, cfg: DetectorConfig, spec: ModelSpec | None = None):
        cfg.validate()
        self.client, self.cfg = client, cfg
        self.spec = spec or client.model_spec()
        image = self.spec.image_input(cfg.input_name)
        layout = cfg.input_layout or image.layout
        width = cfg.input_width or image.width
        height = cfg.input_height or image.height
        self.input_name = image.name
        self.preprocess = Preprocessor(PreprocessConfig(
            width=width, height=height, channels=image.channels, layout=layout,
            dtype=self.spec.input(image.name).np_dtype.name, color_order=cfg.color_order,
            resize=cfg.resize, pad_value=cfg.pad_value, scaling=cfg.scaling,
            mean=cfg.mean, std=cfg.std))
        self.output_names = cfg.tfod.names() if cfg.decoder == "tfod" else cfg.yolo.names()
        missing = [n for n in self.output_names if n not in {o.name for o in self.spec.outputs}]
        if missing:
            raise ModelSpecError(
                f"model {self.spec.name!r} lacks the {cfg.decoder} decoder's outputs {missing}; "
                f"it has {[(o.name, o.datatype, list(o.dims)) for o in self.spec.outputs]}")
        self.labels = resolve_labels(cfg.labels_file, self.spec)
        for name in cfg.class_filter:
            self.labels.index(name)  # unknown class names are a configuration error
        self.max_batch = max(1, self.spec.max_batch_size)

    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        results = []
        for start in range(0, len(frames), self.max_batch):
            chunk = frames[start:start + self.max_batch]
            # Pre-process straight into the batch tensor: no per-frame tensor, no stacking copy.
            batch = np.empty((len(chunk), *self.preprocess.output_shape()), self.preprocess.dtype)
            prepared = [self.preprocess(frame, out=slot) for frame, slot in zip(chunk, batch)]
            results += self._run(batch, prepared)
        return results

    def detect_prepared(self, prepared: list) -> list[Detections]:
        """Like :meth:`detect` for frames already run through ``self.preprocess``."""
        results = []
        for start in range(0, len(prepared), self.max_batch):
            chunk = prepared[start:start + self.max_batch]
            # One frame (the common case): a view with a batch dim, not a copy.
            batch = chunk[0][0][None] if len(chunk) == 1 else np.stack([t for t, _ in chunk])
            results += self._run(batch, chunk)
        return results

    def _run(self, batch: np.ndarray, chunk: list) -> list[Detections]:
        """One request for ``batch`` [B, ...]; ``chunk``: the B (tensor, transform) pairs."""
        results = []
        if self.spec.max_batch_size == 0:
            batch = batch[0]
        outputs = self.client.infer({self.input_name: batch}, self.output_names)
        if self.spec.max_batch_size == 0:
            outputs = {k: v[None] for k, v in outputs.items()}
        cfg = self.cfg  # read once: dynamic parameters may replace it meanwhile
        for dets, (_, transform) in zip(self._decode(outputs, cfg), chunk):
            dets = filter_detections(dets, cfg.score_threshold, cfg.max_detections,
                                     cfg.class_filter)
            dets.boxes = transform.boxes_to_source(dets.boxes)
            results.append(dets)
        return results

    def _decode(self, outputs, cfg: DetectorConfig):
        pc = self.preprocess.cfg
        if cfg.decoder == "tfod":
            return decode_tfod(outputs, pc.width, pc.height, cfg.tfod, self.labels)
        # The pre-NMS floor must not cut above a lower user threshold.
        yolo = replace(cfg.yolo, pre_nms_score_threshold=min(
            cfg.yolo.pre_nms_score_threshold, cfg.score_threshold))
        return decode_yolo(outputs, pc.width, pc.height, yolo, self.labels, cfg.score_threshold,
                           cfg.max_detections, class_filter=cfg.class_filter)
