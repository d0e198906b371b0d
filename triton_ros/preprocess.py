"""Turn camera frames into model input tensors, and map boxes back to source pixels.

Contract:
- Input frames are ``uint8`` arrays ``[H, W, 3]`` in **BGR** (OpenCV order) or ``[H, W]`` mono.
- Output is one array per frame, ``[C, h, w]`` (NCHW) or ``[h, w, C]`` (NHWC) without the batch
  dim, in the model's dtype; stack them for a batch.
- Every resize mode is an axis-aligned scale + offset, recorded in :class:`ImageTransform`:
  ``model_xy = source_xy * scale + offset`` (pixels, x right, y down). Its inverse maps boxes
  from the model input back to the source image.

Scaling modes follow Triton's ``image_client.py``: NONE (raw 0..255), INCEPTION (x/127.5 - 1),
VGG (x - per-channel mean, BGR means ordered to the colour order); plus UNIT (x/255, what
Ultralytics YOLO exports expect); explicit mean/std override.
"""
from dataclasses import dataclass

import cv2
import numpy as np

RESIZE_MODES = ("stretch", "letterbox", "center_crop")
COLOR_ORDERS = ("RGB", "BGR")
SCALING_MODES = ("NONE", "UNIT", "INCEPTION", "VGG")
VGG_MEAN_RGB = (123.68, 116.78, 103.94)


@dataclass(frozen=True)
class ImageTransform:
    """Source->model mapping of one frame: model = source * scale + offset (per axis, pixels)."""
    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    source_width: int
    source_height: int

    def boxes_to_source(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """Map ``[K, 4]`` x1, y1, x2, y2 boxes in model-input pixels to source pixels (clipped)."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4).copy()
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.offset_x) / self.scale_x
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.offset_y) / self.scale_y
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, self.source_width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, self.source_height)
        return boxes


@dataclass(frozen=True)
class PreprocessConfig:
    width: int
    height: int
    channels: int = 3
    layout: str = "NHWC"              # NHWC | NCHW
    dtype: str = "uint8"              # numpy dtype name: uint8, float16, float32
    color_order: str = "RGB"          # channel order the model expects
    resize: str = "stretch"           # stretch | letterbox | center_crop
    pad_value: int = 114              # letterbox fill, 0..255 before scaling
    scaling: str = "NONE"             # NONE | UNIT | INCEPTION | VGG
    mean: tuple[float, ...] = ()      # explicit per-channel mean (model colour order), 0..255
    std: tuple[float, ...] = ()       # explicit per-channel std

    def validate(self) -> None:
        problems = []
        if self.width <= 0 or self.height <= 0:
            problems.append(f"input size must be positive, got {self.width}x{self.height} "
                            "(a model with dynamic H/W needs input_width/input_height set)")
        if self.layout not in ("NHWC", "NCHW"):
            problems.append(f"layout {self.layout!r} not in ['NHWC', 'NCHW']")
        if self.resize not in RESIZE_MODES:
            problems.append(f"resize mode {self.resize!r} not in {list(RESIZE_MODES)}")
        if self.color_order not in COLOR_ORDERS:
            problems.append(f"color order {self.color_order!r} not in {list(COLOR_ORDERS)}")
        if self.scaling not in SCALING_MODES:
            problems.append(f"scaling {self.scaling!r} not in {list(SCALING_MODES)}")
        if self.channels not in (1, 3):
            problems.append(f"channels must be 1 or 3, got {self.channels}")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values and len(values) != self.channels:
                problems.append(f"{name} needs {self.channels} values, got {list(values)}")
        if self.std and any(v == 0 for v in self.std):
            problems.append("std values must be non-zero")
        if np.dtype(self.dtype) == np.uint8 and (self.scaling != "NONE" or self.mean or self.std):
            problems.append("uint8 input cannot carry INCEPTION/VGG scaling or mean/std")
        if not 0 <= self.pad_value <= 255:
            problems.append(f"pad_value must be in [0, 255], got {self.pad_value}")
        if problems:
            raise ValueError("invalid pre-processing: " + "; ".join(problems))


def plan_transform(src_w: int, src_h: int, cfg: PreprocessConfig) -> ImageTransform:
    """Scale and offset that the configured resize mode applies to a ``src_w`` x ``src_h`` frame."""
    if cfg.resize == "stretch":
        return ImageTransform(cfg.width / src_w, cfg.height / src_h, 0.0, 0.0, src_w, src_h)
    if cfg.resize == "letterbox":
        scale = min(cfg.width / src_w, cfg.height / src_h)
    else:  # center_crop: fill the input, cut the overhang on one axis
        scale = max(cfg.width / src_w, cfg.height / src_h)
    new_w, new_h = round(src_w * scale), round(src_h * scale)
    offset_x = (cfg.width - new_w) // 2
    offset_y = (cfg.height - new_h) // 2
    # Use the realised per-axis scale so the inverse matches the pixels actually produced.
    return ImageTransform(new_w / src_w, new_h / src_h, float(offset_x), float(offset_y),
                          src_w, src_h)


class Preprocessor:
    """Stateless per-frame pre-processing for one model input (see the module contract)."""

    def __init__(self, cfg: PreprocessConfig):
        cfg.validate()
        self.cfg = cfg
        self.dtype = np.dtype(cfg.dtype)
        mean, std = self._normalisation()
        self._mean = None if mean is None else np.asarray(mean, np.float32)
        self._std = None if std is None else np.asarray(std, np.float32)

    def _normalisation(self):
        cfg = self.cfg
        if cfg.mean or cfg.std:
            return (cfg.mean or (0.0,) * cfg.channels), (cfg.std or (1.0,) * cfg.channels)
        if cfg.scaling == "UNIT":
            return (0.0,) * cfg.channels, (255.0,) * cfg.channels
        if cfg.scaling == "INCEPTION":
            return (127.5,) * cfg.channels, (127.5,) * cfg.channels
        if cfg.scaling == "VGG":
            if cfg.channels == 1:
                return (sum(VGG_MEAN_RGB) / 3,), None
            mean = VGG_MEAN_RGB if cfg.color_order == "RGB" else VGG_MEAN_RGB[::-1]
            return mean, None
        return None, None

    def _resize(self, frame: np.ndarray, tf: ImageTransform) -> np.ndarray:
        cfg = self.cfg
        new_w = round(tf.source_width * tf.scale_x)
        new_h = round(tf.source_height * tf.scale_y)
        if (new_w, new_h) != (frame.shape[1], frame.shape[0]):
            frame = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        if cfg.resize == "stretch":
            return frame
        ox, oy = int(tf.offset_x), int(tf.offset_y)
        if cfg.resize == "letterbox":
            return cv2.copyMakeBorder(frame, oy, cfg.height - new_h - oy, ox,
                                      cfg.width - new_w - ox, cv2.BORDER_CONSTANT,
                                      value=(cfg.pad_value,) * 3)
        return frame[-oy:-oy + cfg.height, -ox:-ox + cfg.width]

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, ImageTransform]:
        """Pre-process one BGR/mono uint8 frame; returns (tensor without batch dim, transform)."""
        if (frame.dtype != np.uint8 or frame.ndim not in (2, 3) or frame.size == 0
                or frame.shape[2:] not in ((), (3,))):
            raise ValueError(f"expected a non-empty uint8 [H, W] or [H, W, 3] frame, got "
                             f"{frame.dtype} {list(frame.shape)}")
        cfg = self.cfg
        src_h, src_w = frame.shape[:2]
        tf = plan_transform(src_w, src_h, cfg)
        image = self._resize(frame, tf)
        if cfg.channels == 1:
            if image.ndim == 3:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            image = image[:, :, None]
        else:
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            if cfg.color_order == "RGB":
                image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        if self._mean is not None or self._std is not None or self.dtype != np.uint8:
            image = image.astype(np.float32)
            if self._mean is not None:
                image -= self._mean
            if self._std is not None:
                image /= self._std
            image = image.astype(self.dtype, copy=False)
        if cfg.layout == "NCHW":
            image = image.transpose(2, 0, 1)
        return np.ascontiguousarray(image), tf
