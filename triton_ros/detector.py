"""Frames in, detections in source-image pixels out: pre-process -> Triton -> decode -> map back.

Models that take encoded images (``ModelSpec.encoded_input``, e.g. the ``*_encoded`` ensembles)
get whole JPEG/PNG files instead (:meth:`Detector.detect_encoded`): the server decodes,
pre-processes, decodes the detector's output and maps boxes to source pixels itself.

No ROS here; the detect node wraps a :class:`Detector`.
"""
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from triton_ros.decoders import (TfodOutputs, YoloOutputs, decode_tfod, decode_yolo,
                                 filter_detections)
from triton_ros.detections import Detections, ItemError
from triton_ros.labels import LabelMap
from triton_ros.model_spec import ModelSpec, ModelSpecError
from triton_ros.preprocess import PreprocessConfig, Preprocessor
from triton_ros.resources import config_path
from triton_ros.client import TritonClient

DECODERS = ("tfod", "yolo")
# Per-item outputs of an encoded-image model besides the TF-OD ones (docs/encoded_path.md).
STATUS_OUTPUT = "status"


def payload_bytes(arrays) -> int:
    """Tensor bytes of ``arrays`` as Triton carries them: ``nbytes``, or for BYTES (object)
    tensors each element's length plus its 4-byte length prefix."""
    total = 0
    for array in arrays:
        if array.dtype == np.object_:
            total += sum(4 + len(item) for item in array.reshape(-1))
        else:
            total += array.nbytes
    return total


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

    For a model with an encoded-image input (:attr:`encoded_input`), ``detect_encoded(images)``
    takes whole image files instead; ``preprocess`` is then None and ``detect`` unavailable.
    ``cfg.tfod`` must then describe the model's TF-OD outputs (for the ``*_encoded`` ensembles:
    xyxy, source pixels, their class offset: what their ``triton_ros.*`` parameters say).
    """

    def __init__(self, client: TritonClient, cfg: DetectorConfig, spec: ModelSpec | None = None):
        cfg.validate()
        self.client, self.cfg = client, cfg
        self.spec = spec or client.model_spec()
        self.last_request_bytes = (0, 0)  # payload (sent, received) of the last request
        self.max_batch = max(1, self.spec.max_batch_size)
        self.input_name = self.spec.encoded_input
        if self.input_name:
            if cfg.decoder != "tfod":
                raise ModelSpecError(f"model {self.spec.name!r} takes encoded images and "
                                     f"returns TF-OD outputs; decoder {cfg.decoder!r} does not "
                                     "apply (use decoder tfod)")
            self.preprocess = None
            self.output_names = cfg.tfod.names()
            if STATUS_OUTPUT in {o.name for o in self.spec.outputs}:
                self.output_names = self.output_names + [STATUS_OUTPUT]
            self._check_outputs()
            self._setup_labels()
            return
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
        self._check_outputs()
        self._setup_labels()

    @property
    def encoded_input(self) -> bool:
        """True when the model takes encoded image files (use :meth:`detect_encoded`)."""
        return bool(self.spec.encoded_input)

    def _check_outputs(self) -> None:
        missing = [n for n in self.output_names if n not in {o.name for o in self.spec.outputs}]
        if missing:
            raise ModelSpecError(
                f"model {self.spec.name!r} lacks the {self.cfg.decoder} decoder's outputs "
                f"{missing}; it has "
                f"{[(o.name, o.datatype, list(o.dims)) for o in self.spec.outputs]}")

    def _setup_labels(self) -> None:
        self.labels = resolve_labels(self.cfg.labels_file, self.spec)
        for name in self.cfg.class_filter:
            self.labels.index(name)  # unknown class names are a configuration error

    def detect_encoded(self, images: list[bytes]) -> list[Detections | ItemError]:
        """Whole image files (JPEG, PNG, ...: what the server's decoder reads) -> one
        :class:`Detections` per image with boxes in that image's pixels, or an
        :class:`ItemError` with the server's reason for an image it could not answer.
        Chunked by the model's max batch size; score threshold, max detections and class
        filter applied as in :meth:`detect`."""
        if not self.input_name or self.preprocess is not None:
            raise ModelSpecError(f"model {self.spec.name!r} takes image tensors, not encoded "
                                 "images: use detect()")
        results = []
        for start in range(0, len(images), self.max_batch):
            chunk = images[start:start + self.max_batch]
            batch = np.empty((len(chunk), 1), np.object_)
            for slot, data in zip(batch, chunk):
                slot[0] = bytes(data)
            if self.spec.max_batch_size == 0:
                batch = batch[0]
            outputs = self._infer({self.input_name: batch})
            cfg = self.cfg  # read once: dynamic parameters may replace it meanwhile
            status = outputs.get(STATUS_OUTPUT)
            for item, dets in enumerate(decode_tfod(outputs, 1, 1, cfg.tfod, self.labels)):
                reason = b"" if status is None else status.reshape(len(chunk), -1)[item][0]
                if reason:
                    results.append(ItemError(reason.decode("utf-8", "replace")))
                    continue
                results.append(filter_detections(dets, cfg.score_threshold, cfg.max_detections,
                                                 cfg.class_filter))
        return results

    def _infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One request; outputs with a batch dim; ``last_request_bytes`` updated."""
        outputs = self.client.infer(inputs, self.output_names)
        self.last_request_bytes = (payload_bytes(inputs.values()),
                                   payload_bytes(outputs.values()))
        if self.spec.max_batch_size == 0:
            outputs = {k: v[None] for k, v in outputs.items()}
        return outputs

    def _require_tensor_model(self) -> None:
        if self.preprocess is None:
            raise ModelSpecError(f"model {self.spec.name!r} takes encoded images, not image "
                                 "tensors: use detect_encoded()")

    def detect(self, frames: list[np.ndarray]) -> list[Detections]:
        self._require_tensor_model()
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
        self._require_tensor_model()
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
        outputs = self._infer({self.input_name: batch})
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
