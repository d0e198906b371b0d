"""Isaac ROS ``TensorList`` tensors <-> numpy arrays <-> a Triton model's inputs/outputs. No ROS.

Tensor fields (``isaac_ros_tensor_list_interfaces/msg/Tensor``): ``name``, ``shape.rank``,
``shape.dims`` (outermost first), ``data_type`` (a code of :data:`DATA_TYPES`), ``strides``
(bytes per step of each dimension; empty = C-contiguous) and ``data`` (raw bytes, host order).
Functions here take any object with those attributes (the rclpy message, or a stand-in in tests).

- :func:`tensor_to_array` views ``data`` without copying (``np.frombuffer``; strided layouts
  through ``as_strided``); the view is read-only and lives as long as the message.
- :func:`array_to_fields` gives the field values for one outgoing tensor; ``data`` is
  ``bytes`` (rclpy copies ``bytes`` into a ``uint8[]`` in one memcpy; assigning an ndarray
  would go element by element).
- :class:`Bindings` maps message tensor names to model inputs and model outputs to message
  tensor names, with the parameter names of Isaac ROS's Triton node; :meth:`Bindings.inputs`
  checks names, dtypes and shapes against the model before anything is sent.

Batch dimension: for a model with ``max_batch_size > 0`` a tensor may carry the batch
dimension (shape ``[B, *dims]``, ``1 <= B <= max_batch_size``, as Isaac ROS encoders send
``[1, 3, H, W]``) or not (shape ``dims``: a batch of one is added, and removed again from the
outputs). All inputs of one message must agree. One message is one request: messages are not
batched together.
"""
from dataclasses import dataclass

import numpy as np

from triton_ros.model_spec import ModelSpec, ModelSpecError

# Tensor.data_type codes as Isaac ROS defines them (Tensor.msg; NitrosDataType without
# kCustom/complex types). Float16 and bool have no code: such model tensors cannot travel.
DATA_TYPES: dict[int, np.dtype] = {
    1: np.dtype(np.int8), 2: np.dtype(np.uint8), 3: np.dtype(np.int16),
    4: np.dtype(np.uint16), 5: np.dtype(np.int32), 6: np.dtype(np.uint32),
    7: np.dtype(np.int64), 8: np.dtype(np.uint64), 9: np.dtype(np.float32),
    10: np.dtype(np.float64),
}
DATA_TYPE_CODES: dict[np.dtype, int] = {dtype: code for code, dtype in DATA_TYPES.items()}


class TensorError(ValueError):
    """A tensor (or a whole TensorList) cannot be converted or does not fit the model."""


def dtype_of(code: int) -> np.dtype:
    """The numpy dtype of a ``data_type`` code; TensorError for unknown codes."""
    try:
        return DATA_TYPES[int(code)]
    except (KeyError, TypeError, ValueError):
        raise TensorError(f"data_type {code!r} is not one of the Isaac ROS codes "
                          f"{sorted(DATA_TYPES)} (1 int8 .. 9 float32, 10 float64)") from None


def code_of(dtype) -> int:
    """The ``data_type`` code of a numpy dtype; TensorError when Isaac ROS has none."""
    dtype = np.dtype(dtype)
    try:
        return DATA_TYPE_CODES[dtype.newbyteorder("=")]
    except KeyError:
        raise TensorError(f"dtype {dtype} has no Isaac ROS data_type code "
                          f"(supported: {sorted(str(d) for d in DATA_TYPE_CODES)})") from None


def tensor_to_array(tensor) -> np.ndarray:
    """A read-only ndarray viewing ``tensor.data`` with its dims, dtype and strides (no copy).

    Raises TensorError naming the tensor when rank, dims, strides and data disagree.
    """
    name = tensor.name
    dtype = dtype_of(tensor.data_type)
    dims = tuple(int(d) for d in tensor.shape.dims)
    if int(tensor.shape.rank) != len(dims):
        raise TensorError(f"tensor {name!r}: shape.rank is {tensor.shape.rank} but shape.dims "
                          f"has {len(dims)} entries {list(dims)}")
    buffer = np.frombuffer(tensor.data, np.uint8)
    strides = tuple(int(s) for s in tensor.strides)
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    contiguous = _c_strides(dims, dtype.itemsize)
    if not strides or strides == contiguous:
        if buffer.nbytes != count * dtype.itemsize:
            raise TensorError(f"tensor {name!r}: data has {buffer.nbytes} bytes, dims "
                              f"{list(dims)} of {dtype} need {count * dtype.itemsize}")
        array = buffer.view(dtype).reshape(dims)
    else:
        if len(strides) != len(dims):
            raise TensorError(f"tensor {name!r}: {len(strides)} strides {list(strides)} for "
                              f"{len(dims)} dims {list(dims)}")
        if any(s < 0 or s % dtype.itemsize for s in strides):
            raise TensorError(f"tensor {name!r}: strides {list(strides)} must be non-negative "
                              f"multiples of the {dtype} item size {dtype.itemsize}")
        span = (sum((d - 1) * s for d, s in zip(dims, strides)) + dtype.itemsize
                if count else 0)
        if span > buffer.nbytes:
            raise TensorError(f"tensor {name!r}: dims {list(dims)} with strides {list(strides)} "
                              f"reach byte {span}, data has {buffer.nbytes}")
        if buffer.nbytes % dtype.itemsize:
            buffer = buffer[:buffer.nbytes - buffer.nbytes % dtype.itemsize]
        array = np.lib.stride_tricks.as_strided(buffer.view(dtype), dims, strides,
                                                writeable=False)
    array.flags.writeable = False
    return array


def _c_strides(dims, itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for dim in reversed(dims):
        strides.append(step)
        step *= max(int(dim), 1)
    return tuple(reversed(strides))


@dataclass(frozen=True)
class TensorFields:
    """Field values of one outgoing Tensor message (``data`` is C-contiguous bytes)."""
    name: str
    dims: tuple[int, ...]
    data_type: int
    strides: tuple[int, ...]
    data: bytes

    @property
    def rank(self) -> int:
        return len(self.dims)


def array_to_fields(name: str, array: np.ndarray) -> TensorFields:
    """The Tensor fields carrying ``array`` (copied once into C-contiguous bytes)."""
    array = np.asarray(array)
    code = code_of(array.dtype)
    if any(d > 0xFFFFFFFF for d in array.shape):
        raise TensorError(f"tensor {name!r}: a dim of {list(array.shape)} exceeds uint32")
    # (not np.ascontiguousarray: it turns a 0-d array into shape [1])
    array = array.astype(array.dtype.newbyteorder("="), order="C", copy=False)
    return TensorFields(name, tuple(int(d) for d in array.shape), code,
                        _c_strides(array.shape, array.dtype.itemsize), array.tobytes())


def tensors_by_name(tensors) -> dict[str, np.ndarray]:
    """name -> array view for every tensor of a TensorList (duplicate names are an error)."""
    arrays = {}
    for tensor in tensors:
        if tensor.name in arrays:
            raise TensorError(f"two tensors are named {tensor.name!r}")
        arrays[tensor.name] = tensor_to_array(tensor)
    return arrays


@dataclass(frozen=True)
class Bindings:
    """Message tensor names <-> model tensor names, checked against the model.

    ``inputs``: (message tensor name, model input name) pairs; ``outputs``: (model output
    name, message tensor name) pairs, in the order the outputs are published.
    """
    spec: ModelSpec
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]

    @classmethod
    def create(cls, spec: ModelSpec, input_tensor_names=(), input_binding_names=(),
               output_tensor_names=(), output_binding_names=()) -> "Bindings":
        """Bindings as Isaac ROS's Triton node takes them (``input_tensor_names[i]`` feeds
        ``input_binding_names[i]``; ``output_binding_names[i]`` is published as
        ``output_tensor_names[i]``). Empty lists mean every model input/output under its own
        name. Raises ModelSpecError for lists of unequal length, names the model lacks,
        missing model inputs and output types without an Isaac ROS code.
        """
        inputs = _pairs("input", list(input_tensor_names), list(input_binding_names),
                        [t.name for t in spec.inputs])
        outputs = _pairs("output", list(output_tensor_names), list(output_binding_names),
                         [t.name for t in spec.outputs])
        for _, binding in inputs:
            spec.input(binding)  # raises ModelSpecError naming the model's inputs
        missing = [t.name for t in spec.inputs if t.name not in {b for _, b in inputs}]
        if missing:
            raise ModelSpecError(f"model {spec.name!r} inputs {missing} are not bound: add "
                                 "them to input_binding_names (with the message tensor "
                                 "names in input_tensor_names)")
        for _, binding in outputs:
            output = spec.output(binding)
            try:
                code_of(output.np_dtype)
            except TensorError as exc:
                raise ModelSpecError(f"model output {binding!r} ({output.datatype}): "
                                     f"{exc}") from None
        # (tensor, binding) for inputs; (binding, tensor) for outputs.
        return cls(spec, tuple(inputs), tuple((b, t) for t, b in outputs))

    def model_inputs(self, arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
        """Model input name -> array for one message, and whether a batch dim was added.

        Tensors of the message that no binding names are ignored (as Isaac ROS does).
        Raises TensorError naming the tensor for a missing tensor, wrong dtype or shape.
        """
        request, added = {}, set()
        for tensor_name, binding in self.inputs:
            if tensor_name not in arrays:
                raise TensorError(f"no tensor {tensor_name!r} in the message (it has "
                                  f"{sorted(arrays)}); input_tensor_names expects it for "
                                  f"model input {binding!r}")
            array = arrays[tensor_name]
            model_input = self.spec.input(binding)
            if array.dtype != model_input.np_dtype:
                raise TensorError(f"tensor {tensor_name!r} is {array.dtype}, model input "
                                  f"{binding!r} takes {model_input.datatype} "
                                  f"({model_input.np_dtype})")
            array, batch_added = self._batched(tensor_name, array, model_input)
            added.add(batch_added)
            request[binding] = array
        if len(added) > 1:
            raise TensorError("some input tensors carry the batch dimension and some do not")
        batches = {a.shape[0] for a in request.values()} if self.spec.max_batch_size else set()
        if len(batches) > 1:
            raise TensorError(f"input tensors disagree on the batch size: {sorted(batches)}")
        return request, bool(added and added.pop())

    def _batched(self, tensor_name, array, model_input):
        dims, max_batch = model_input.dims, self.spec.max_batch_size
        expected = (["B"] if max_batch else []) + [d if d >= 0 else "any" for d in dims]
        problem = (f"tensor {tensor_name!r} has shape {list(array.shape)}, model input "
                   f"{model_input.name!r} takes {expected}")
        if max_batch and array.ndim == len(dims) + 1 and _fits(array.shape[1:], dims):
            if not 1 <= array.shape[0] <= max_batch:
                raise TensorError(f"{problem} with 1 <= B <= {max_batch}")
            return array, False
        if _fits(array.shape, dims):
            return (array[np.newaxis], True) if max_batch else (array, False)
        raise TensorError(problem)

    def message_outputs(self, results: dict[str, np.ndarray],
                        batch_added: bool) -> list[tuple[str, np.ndarray]]:
        """(message tensor name, array) per bound output, batch dim removed if it was added."""
        out = []
        for binding, tensor_name in self.outputs:
            array = results[binding]
            if batch_added and array.ndim and array.shape[0] == 1:
                array = array[0]
            out.append((tensor_name, array))
        return out

    @property
    def output_names(self) -> list[str]:
        return [binding for binding, _ in self.outputs]


def _fits(shape, dims) -> bool:
    return len(shape) == len(dims) and all(d < 0 or d == s for s, d in zip(shape, dims))


def _pairs(kind, tensor_names, binding_names, model_names):
    """[(message tensor name, model tensor name)] from the two parameter lists."""
    tensor_names = [n for n in tensor_names if n]
    binding_names = [n for n in binding_names if n]
    if not tensor_names and not binding_names:
        return [(name, name) for name in model_names]
    if len(tensor_names) != len(binding_names):
        raise ModelSpecError(f"{kind}_tensor_names has {len(tensor_names)} names "
                             f"{tensor_names} but {kind}_binding_names has "
                             f"{len(binding_names)} {binding_names}; they pair up one to one")
    for names, what in ((tensor_names, f"{kind}_tensor_names"),
                        (binding_names, f"{kind}_binding_names")):
        if len(set(names)) != len(names):
            raise ModelSpecError(f"{what} has duplicates: {names}")
    return list(zip(tensor_names, binding_names))
