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
import threading
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
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        offset = np.array([self.offset_x, self.offset_y, self.offset_x, self.offset_y])
        scale = np.array([self.scale_x, self.scale_y, self.scale_x, self.scale_y])
        limit = np.array([self.source_width, self.source_height] * 2, np.float64)
        out = np.subtract(boxes, offset)  # a new array: the input is never modified
        out /= scale
        return np.clip(out, 0.0, limit, out=out)


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
        self._local = threading.local()  # per-thread scratch images (callers may be threads)

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

    def _resize(self, frame: np.ndarray, tf: ImageTransform, dst=None) -> np.ndarray:
        """The resized frame; for stretch mode written into ``dst`` when given (same shape)."""
        cfg = self.cfg
        new_w = round(tf.source_width * tf.scale_x)
        new_h = round(tf.source_height * tf.scale_y)
        if cfg.resize == "stretch":
            if (new_w, new_h) == (frame.shape[1], frame.shape[0]):
                return frame
            return cv2.resize(frame, (new_w, new_h), dst=dst, interpolation=cv2.INTER_LINEAR)
        if (new_w, new_h) != (frame.shape[1], frame.shape[0]):
            frame = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        ox, oy = int(tf.offset_x), int(tf.offset_y)
        if cfg.resize == "letterbox":
            return cv2.copyMakeBorder(frame, oy, cfg.height - new_h - oy, ox,
                                      cfg.width - new_w - ox, cv2.BORDER_CONSTANT,
                                      value=(cfg.pad_value,) * 3)
        return frame[-oy:-oy + cfg.height, -ox:-ox + cfg.width]

    def output_shape(self) -> tuple[int, int, int]:
        """Shape of one pre-processed tensor (no batch dim); its dtype is ``self.dtype``."""
        cfg = self.cfg
        if cfg.layout == "NCHW":
            return (cfg.channels, cfg.height, cfg.width)
        return (cfg.height, cfg.width, cfg.channels)

    def __call__(self, frame: np.ndarray, out: np.ndarray | None = None
                 ) -> tuple[np.ndarray, ImageTransform]:
        """Pre-process one BGR/mono uint8 frame; returns (tensor without batch dim, transform).

        ``out``: an array of :meth:`output_shape` and ``self.dtype`` (e.g. one slot of a batch or
        a view of a shared memory region) to write the tensor into; it is then the tensor
        returned. Without it the tensor is a new array. ``frame`` is never modified.

        Passes over the pixels: the resize (into a per-thread scratch image, reused), then one
        pass that writes the result: the channel swap (uint8 RGB), or subtract/divide straight
        into the result's layout (float32, NHWC or NCHW; one more pass for each of mean and std).
        """
        if (frame.dtype != np.uint8 or frame.ndim not in (2, 3) or frame.size == 0
                or frame.shape[2:] not in ((), (3,))):
            raise ValueError(f"expected a non-empty uint8 [H, W] or [H, W, 3] frame, got "
                             f"{frame.dtype} {list(frame.shape)}")
        cfg = self.cfg
        shape = self.output_shape()
        if out is not None and (out.shape != shape or out.dtype != self.dtype):
            raise ValueError(f"out must be {self.dtype} {list(shape)}, got {out.dtype} "
                             f"{list(out.shape)}")
        src_h, src_w = frame.shape[:2]
        tf = plan_transform(src_w, src_h, cfg)
        scratch = None
        if cfg.resize == "stretch":
            scratch = self._scratch((cfg.height, cfg.width) + frame.shape[2:])
        image = self._resize(frame, tf, dst=scratch)
        if cfg.channels == 1:
            if image.ndim == 3:
                image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            image = image[:, :, None]
        elif image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        swap = cfg.channels == 3 and cfg.color_order == "RGB"
        floating = self._mean is not None or self._std is not None or self.dtype != np.uint8
        if floating and self.dtype != np.float32:  # e.g. float16: compute in float32, cast
            image = self._normalise(cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if swap else image,
                                    np.empty(image.shape, np.float32)).astype(self.dtype)
            floating = swap = False
        result = out if out is not None else np.empty(shape, self.dtype)
        hwc = result.transpose(1, 2, 0) if cfg.layout == "NCHW" else result  # a view of it
        if floating:  # float32: written straight into the result, whatever its layout
            self._normalise(image[:, :, ::-1] if swap else image, hwc)
        elif swap and cfg.layout == "NHWC" and result.flags.c_contiguous:
            cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=result)  # cv2 writes it in place
        else:
            np.copyto(hwc, image[:, :, ::-1] if swap else image)
        return result, tf

    def _normalise(self, image: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """``(image - mean) / std`` (each when set) into ``dst`` (float32 HWC, any strides)."""
        if self._mean is not None:
            np.subtract(image, self._mean, out=dst, dtype=np.float32)
        else:
            np.copyto(dst, image, casting="unsafe")
        if self._std is not None:
            np.divide(dst, self._std, out=dst)
        return dst

    def _scratch(self, shape: tuple) -> np.ndarray:
        """This thread's reusable uint8 image of ``shape`` (the resize target)."""
        buffers = self._local.__dict__.setdefault("buffers", {})
        buffer = buffers.get(shape)
        if buffer is None:
            buffer = buffers[shape] = np.empty(shape, np.uint8)
        return buffer
