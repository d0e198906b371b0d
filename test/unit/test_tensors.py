"""triton_ros.tensors: TensorList tensors <-> numpy, and bindings checked against a model."""
from types import SimpleNamespace

import numpy as np
import pytest

from triton_ros.model_spec import ModelSpec, ModelSpecError, TensorSpec
from triton_ros.tensors import (DATA_TYPES, Bindings, TensorError, array_to_fields, code_of,
                                dtype_of, tensor_to_array, tensors_by_name)


def fake_tensor(name, array=None, *, dims=None, data_type=None, strides=(), data=None,
                rank=None):
    """An object with the fields of isaac_ros_tensor_list_interfaces/msg/Tensor."""
    if array is not None:
        fields = array_to_fields(name, array)
        dims, data_type, data = fields.dims, fields.data_type, fields.data
        strides = fields.strides if strides == () else strides
    return SimpleNamespace(name=name, data_type=data_type, strides=list(strides), data=data,
                           shape=SimpleNamespace(rank=len(dims) if rank is None else rank,
                                                 dims=list(dims)))


def test_codes_are_the_isaac_ros_ones():
    assert {code: str(dtype) for code, dtype in DATA_TYPES.items()} == {
        1: "int8", 2: "uint8", 3: "int16", 4: "uint16", 5: "int32", 6: "uint32",
        7: "int64", 8: "uint64", 9: "float32", 10: "float64"}
    assert code_of(np.float32) == 9 and code_of(np.dtype(">f4")) == 9
    assert dtype_of(2) == np.uint8
    for bad in (0, 11, -1):
        with pytest.raises(TensorError, match="data_type"):
            dtype_of(bad)
    for dtype in (np.float16, np.bool_, np.complex64):
        with pytest.raises(TensorError, match="no Isaac ROS data_type"):
            code_of(dtype)


@pytest.mark.parametrize("dtype", [np.dtype(d) for d in DATA_TYPES.values()])
def test_round_trip_every_dtype(dtype):
    rng = np.random.default_rng(3)
    array = (rng.standard_normal((2, 3, 4)) * 100).astype(dtype)
    fields = array_to_fields("t", array)
    assert fields.dims == (2, 3, 4) and fields.rank == 3
    assert fields.strides == (12 * dtype.itemsize, 4 * dtype.itemsize, dtype.itemsize)
    assert len(fields.data) == array.nbytes
    back = tensor_to_array(fake_tensor("t", array))
    assert back.dtype == dtype and np.array_equal(back, array)


def test_view_is_zero_copy_and_read_only():
    data = bytearray(np.arange(6, dtype=np.float32).tobytes())
    view = tensor_to_array(fake_tensor("t", dims=(2, 3), data_type=9, data=data))
    assert not view.flags.writeable
    data[0:4] = np.float32(42).tobytes()  # the view sees the message's own buffer
    assert view[0, 0] == 42


def test_big_endian_arrays_are_sent_in_host_order():
    array = np.arange(4, dtype=">i4")
    back = tensor_to_array(fake_tensor("t", array))
    assert back.dtype == np.int32 and list(back) == [0, 1, 2, 3]


def test_non_contiguous_strides_are_honoured():
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    transposed = base.T  # strides (4, 24) bytes over the same buffer
    tensor = fake_tensor("t", dims=(6, 4), data_type=9, strides=transposed.strides,
                         data=base.tobytes())
    assert np.array_equal(tensor_to_array(tensor), transposed)
    # Sending a strided view: the fields are C-contiguous again.
    fields = array_to_fields("t", transposed)
    assert fields.strides == (16, 4)
    assert np.array_equal(np.frombuffer(fields.data, np.float32).reshape(6, 4), transposed)


def test_scalar_and_empty_tensors():
    assert tensor_to_array(fake_tensor("s", np.float64(2.5))).shape == ()
    empty = tensor_to_array(fake_tensor("e", np.zeros((0, 4), np.int32)))
    assert empty.shape == (0, 4)


@pytest.mark.parametrize("tensor,match", [
    (fake_tensor("a", dims=(2, 3), data_type=9, data=b"\0" * 20), "data has 20 bytes"),
    (fake_tensor("b", dims=(2, 3), data_type=9, data=b"\0" * 24, rank=3), "shape.rank is 3"),
    (fake_tensor("c", dims=(2,), data_type=12, data=b"\0" * 8), "data_type 12"),
    (fake_tensor("d", dims=(2, 3), data_type=9, strides=(4,), data=b"\0" * 24), "1 strides"),
    (fake_tensor("e", dims=(2, 3), data_type=9, strides=(24, 6), data=b"\0" * 48),
     "multiples"),
    (fake_tensor("f", dims=(2, 3), data_type=9, strides=(24, 8), data=b"\0" * 24),
     "reach byte 44"),
])
def test_malformed_tensors_name_the_problem(tensor, match):
    with pytest.raises(TensorError, match=match):
        tensor_to_array(tensor)


def test_duplicate_names_rejected():
    tensors = [fake_tensor("x", np.zeros(2, np.uint8)), fake_tensor("x", np.zeros(2, np.uint8))]
    with pytest.raises(TensorError, match="two tensors are named 'x'"):
        tensors_by_name(tensors)


def spec(max_batch=8):
    return ModelSpec(
        name="ssd", version="1", platform="python",
        inputs=(TensorSpec("images", "FP32", (3, 300, 300)),),
        outputs=(TensorSpec("num_detections", "FP32", (1,)),
                 TensorSpec("detection_boxes", "FP32", (100, 4)),
                 TensorSpec("mask", "BOOL", (4,))),
        max_batch_size=max_batch)


def ssd_bindings(max_batch=8):
    return Bindings.create(spec(max_batch), ["input_tensor"], ["images"],
                           ["boxes", "count"], ["detection_boxes", "num_detections"])


def test_bindings_pair_names_like_isaac_ros():
    bindings = ssd_bindings()
    assert bindings.inputs == (("input_tensor", "images"),)
    assert bindings.outputs == (("detection_boxes", "boxes"), ("num_detections", "count"))
    assert bindings.output_names == ["detection_boxes", "num_detections"]


def test_empty_binding_lists_mean_identity():
    bindings = Bindings.create(
        ModelSpec("m", "1", "python", (TensorSpec("x", "INT32", (-1,)),),
                  (TensorSpec("y", "FP64", (-1,)),), 0))
    assert bindings.inputs == (("x", "x"),) and bindings.outputs == (("y", "y"),)


@pytest.mark.parametrize("args,match", [
    ((["a", "b"], ["images"]), "pair up one to one"),
    ((["input_tensor"], ["images"], [], ["num_detections"]), "pair up one to one"),
    ((["input_tensor"], ["image"]), "no input 'image'"),
    ((["input_tensor"], ["images"], ["m"], ["mask"]), "BOOL"),
    ((["input_tensor"], ["images"], ["a", "b"], ["num_detections", "nope"]), "no output 'nope'"),
    ((["t", "t"], ["images", "images"]), "duplicates"),
])
def test_bad_bindings_are_configuration_errors(args, match):
    with pytest.raises(ModelSpecError, match=match):
        Bindings.create(spec(), *args)


def test_unbound_model_input_is_an_error():
    two = ModelSpec("m", "1", "python", (TensorSpec("a", "FP32", (2,)),
                                         TensorSpec("b", "FP32", (2,))),
                    (TensorSpec("y", "FP32", (2,)),), 0)
    with pytest.raises(ModelSpecError, match=r"inputs \['b'\] are not bound"):
        Bindings.create(two, ["t"], ["a"])


def test_encoder_tensor_with_batch_dim_is_sent_as_is():
    bindings = ssd_bindings()
    image = np.zeros((1, 3, 300, 300), np.float32)
    inputs, added = bindings.model_inputs({"input_tensor": image, "ignored": np.zeros(1)})
    assert not added and inputs["images"] is image
    results = {"detection_boxes": np.ones((1, 100, 4), np.float32),
               "num_detections": np.full((1, 1), 3, np.float32)}
    out = bindings.message_outputs(results, added)
    assert [(n, a.shape) for n, a in out] == [("boxes", (1, 100, 4)), ("count", (1, 1))]


def test_tensor_without_batch_dim_gets_one_and_loses_it_again():
    bindings = ssd_bindings()
    inputs, added = bindings.model_inputs({"input_tensor": np.zeros((3, 300, 300), np.float32)})
    assert added and inputs["images"].shape == (1, 3, 300, 300)
    out = dict(bindings.message_outputs({"detection_boxes": np.ones((1, 100, 4), np.float32),
                                         "num_detections": np.ones((1, 1), np.float32)}, added))
    assert out["boxes"].shape == (100, 4) and out["count"].shape == (1,)


def test_model_without_batching_takes_exact_dims():
    bindings = ssd_bindings(max_batch=0)
    inputs, added = bindings.model_inputs({"input_tensor": np.zeros((3, 300, 300), np.float32)})
    assert not added and inputs["images"].shape == (3, 300, 300)
    with pytest.raises(TensorError, match=r"takes \[3, 300, 300\]"):
        bindings.model_inputs({"input_tensor": np.zeros((1, 3, 300, 300), np.float32)})


@pytest.mark.parametrize("arrays,match", [
    ({"other": np.zeros((1, 3, 300, 300), np.float32)}, "no tensor 'input_tensor'"),
    ({"input_tensor": np.zeros((1, 3, 300, 300), np.float64)}, "is float64, model input"),
    ({"input_tensor": np.zeros((1, 300, 300, 3), np.float32)}, r"has shape \[1, 300, 300, 3\]"),
    ({"input_tensor": np.zeros((9, 3, 300, 300), np.float32)}, "1 <= B <= 8"),
    ({"input_tensor": np.zeros((1, 1, 3, 300, 300), np.float32)}, "has shape"),
])
def test_inputs_that_do_not_fit_the_model(arrays, match):
    with pytest.raises(TensorError, match=match):
        ssd_bindings().model_inputs(arrays)


def test_inputs_must_agree_on_batch():
    two = ModelSpec("m", "1", "python", (TensorSpec("a", "FP32", (2,)),
                                         TensorSpec("b", "FP32", (2,))),
                    (TensorSpec("y", "FP32", (2,)),), 4)
    bindings = Bindings.create(two)
    with pytest.raises(TensorError, match="batch size"):
        bindings.model_inputs({"a": np.zeros((2, 2), np.float32),
                               "b": np.zeros((3, 2), np.float32)})
    with pytest.raises(TensorError, match="some input tensors carry the batch"):
        bindings.model_inputs({"a": np.zeros((1, 2), np.float32),
                               "b": np.zeros(2, np.float32)})


def test_real_message_round_trip():
    msgs = pytest.importorskip("isaac_ros_tensor_list_interfaces.msg",
                               reason="isaac_ros_tensor_list_interfaces not built")
    from std_msgs.msg import Header

    from triton_ros.ros.tensor_node import list_msg
    header = Header(frame_id="cam")
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    msg = list_msg(header, [("out", array), ("ids", np.array([7, 8], np.int64))])
    assert isinstance(msg, msgs.TensorList) and msg.header.frame_id == "cam"
    tensor = msg.tensors[0]
    assert (tensor.name, tensor.shape.rank, list(tensor.shape.dims), tensor.data_type,
            list(tensor.strides)) == ("out", 3, [2, 3, 4], 9, [48, 16, 4])
    arrays = tensors_by_name(msg.tensors)
    assert np.array_equal(arrays["out"], array) and list(arrays["ids"]) == [7, 8]
    # np.frombuffer over the message's own array: no copy.
    assert np.shares_memory(tensor_to_array(tensor), np.frombuffer(tensor.data, np.uint8))
