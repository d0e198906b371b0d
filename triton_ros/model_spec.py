"""What a Triton model looks like, discovered from the server (no ROS, no network here).

:func:`model_spec_from_server` turns the JSON of ``get_model_metadata`` and ``get_model_config``
(gRPC ``as_json=True`` or HTTP, which differ in nesting and number types) into a
:class:`ModelSpec`, including the config's ``parameters`` (string values; keys starting with
``triton_ros.`` configure a node, see :mod:`triton_ros.model_parameters`). Layout inference
follows Triton's ``image_client.py``: the config's ``format`` wins, otherwise a 3-dim image
input with 1 or 3 channels first is NCHW and last is NHWC.
"""
from dataclasses import dataclass, field

import numpy as np

# Triton datatype string -> numpy dtype (tritonclient.utils.triton_to_np_dtype, without BYTES).
TRITON_DTYPES = {
    "BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
    "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
    "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
}


class ModelSpecError(ValueError):
    """The model on the server cannot be driven the way it was asked to."""


@dataclass(frozen=True)
class TensorSpec:
    """One model input/output: name, Triton datatype and dims *without* the batch dim (-1 = any)."""
    name: str
    datatype: str
    dims: tuple[int, ...]
    format: str = "FORMAT_NONE"

    @property
    def np_dtype(self):
        try:
            return np.dtype(TRITON_DTYPES[self.datatype])
        except KeyError:
            raise ModelSpecError(f"tensor {self.name!r} has datatype {self.datatype}, "
                                 f"expected one of {sorted(TRITON_DTYPES)}") from None


@dataclass(frozen=True)
class ImageInputSpec:
    """The image input as the pre-processor needs it: layout, size in pixels, channels, dtype."""
    name: str
    datatype: str
    layout: str          # "NHWC" or "NCHW"
    height: int          # -1 when the model takes any height
    width: int
    channels: int


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    platform: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int              # 0: the model takes no batch dimension
    dynamic_batching: bool = False
    sequence_batching: bool = False
    max_sequence_idle_us: int = 0    # 0: not a sequence model / server default
    labels_file: str = ""            # label_filename of the first output that has one
    control_inputs: tuple[str, ...] = field(default_factory=tuple)
    parameters: dict[str, str] = field(default_factory=dict)  # config.pbtxt `parameters`

    @property
    def encoded_input(self) -> str:
        """Name of the input taking whole encoded image files (BYTES ``[1]`` per item: JPEG,
        PNG, ...), or "" for a model that takes image tensors.

        Set by ``triton_ros.input_kind = "encoded_image"`` in the config (its only BYTES input),
        or found without it when the model's only input is BYTES with dims ``[1]``.
        """
        byte_inputs = [t for t in self.inputs if t.datatype == "BYTES"]
        if self.parameters.get("triton_ros.input_kind") == "encoded_image":
            if len(byte_inputs) != 1:
                raise ModelSpecError(
                    f"model {self.name!r} says triton_ros.input_kind=encoded_image but has "
                    f"{len(byte_inputs)} BYTES inputs: "
                    f"{[(t.name, t.datatype, list(t.dims)) for t in self.inputs]}; expected one")
            return byte_inputs[0].name
        if len(self.inputs) == 1 and byte_inputs and byte_inputs[0].dims in ((1,), (-1,)):
            return byte_inputs[0].name
        return ""

    def input(self, name: str) -> TensorSpec:
        return _find(self.inputs, name, "input", self.name)

    def output(self, name: str) -> TensorSpec:
        return _find(self.outputs, name, "output", self.name)

    def image_input(self, name: str = "") -> ImageInputSpec:
        """The image input (``name`` or the only/first 3-dim input) with its layout resolved."""
        candidates = [t for t in self.inputs if not name or t.name == name]
        images = [t for t in candidates if len(t.dims) == 3]
        if not images:
            raise ModelSpecError(
                f"model {self.name!r} has no image input"
                + (f" named {name!r}" if name else "")
                + f": found {[(t.name, t.datatype, list(t.dims)) for t in self.inputs]}, "
                "expected one input with 3 dims (HWC or CHW) besides the batch dimension")
        tensor = images[0]
        layout = _layout(tensor)
        if layout == "NHWC":
            height, width, channels = tensor.dims
        else:
            channels, height, width = tensor.dims
        if channels not in (1, 3):
            raise ModelSpecError(f"image input {tensor.name!r} has {channels} channels "
                                 f"(dims {list(tensor.dims)}, layout {layout}); expected 1 or 3")
        tensor.np_dtype  # validates the datatype
        return ImageInputSpec(tensor.name, tensor.datatype, layout, height, width, channels)


def _find(tensors, name, kind, model):
    for tensor in tensors:
        if tensor.name == name:
            return tensor
    raise ModelSpecError(f"model {model!r} has no {kind} {name!r}; "
                         f"its {kind}s are {[t.name for t in tensors]}")


def _layout(tensor: TensorSpec) -> str:
    if tensor.format in ("FORMAT_NHWC", "FORMAT_NCHW"):
        return tensor.format[len("FORMAT_"):]
    first, last = tensor.dims[0], tensor.dims[-1]
    if last in (1, 3) and first not in (1, 3):
        return "NHWC"
    if first in (1, 3):
        return "NCHW"
    raise ModelSpecError(f"cannot tell the layout of input {tensor.name!r} with dims "
                         f"{list(tensor.dims)}: set FORMAT_NHWC/FORMAT_NCHW in config.pbtxt "
                         "or the input_layout parameter")


def _dims(values) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


def model_spec_from_server(metadata: dict, config: dict) -> ModelSpec:
    """Build a ModelSpec from metadata/config JSON as returned by gRPC (as_json) or HTTP."""
    config = config.get("config", config)  # gRPC wraps the config in {"config": ...}
    max_batch = int(config.get("max_batch_size", 0))
    formats = {i["name"]: i.get("format", "FORMAT_NONE") for i in config.get("input", [])}
    strip = 1 if max_batch > 0 else 0

    def tensors(entries):
        return tuple(TensorSpec(e["name"], e["datatype"], _dims(e["shape"])[strip:],
                                formats.get(e["name"], "FORMAT_NONE")) for e in entries)

    sequence = config.get("sequence_batching")
    controls = []
    if sequence is not None:
        controls = [c["name"] for c in sequence.get("control_input", [])]
    labels = next((o["label_filename"] for o in config.get("output", [])
                   if o.get("label_filename")), "")
    inputs = tuple(t for t in tensors(metadata.get("inputs", [])) if t.name not in controls)
    versions = metadata.get("versions") or [""]
    # Both protocols: {"key": {"string_value": "..."}}; Triton parameters are strings.
    parameters = {key: str((value or {}).get("string_value", ""))
                  for key, value in (config.get("parameters") or {}).items()}
    return ModelSpec(
        name=metadata.get("name", config.get("name", "")),
        version=str(versions[-1]),
        platform=metadata.get("platform", config.get("backend", "")),
        inputs=inputs,
        outputs=tensors(metadata.get("outputs", [])),
        max_batch_size=max_batch,
        dynamic_batching="dynamic_batching" in config,
        sequence_batching=sequence is not None,
        max_sequence_idle_us=int((sequence or {}).get("max_sequence_idle_microseconds", 0)),
        labels_file=labels,
        control_inputs=tuple(controls),
        parameters=parameters,
    )
