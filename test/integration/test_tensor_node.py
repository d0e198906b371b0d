"""End to end: an Isaac ROS style TensorList -> tensor_node (real DDS) -> real tritonserver."""
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from diagnostic_msgs.msg import DiagnosticArray
from isaac_ros_tensor_list_interfaces.msg import Tensor, TensorList, TensorShape
from rclpy.qos import QoSProfile, ReliabilityPolicy

from triton_ros.ros.messages import stamp_to_ns
from triton_ros.tensors import tensors_by_name

from helpers import video_frames, wait_matched, wait_until

TENSOR = "triton_ros.ros.tensor_node"
MODEL = "ssd_mobilenet_v2_coco_fp32_nchw"
RELIABLE = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
# model output (binding) -> name published, as a DetectNet/SSD decoder would be configured.
OUTPUTS = {"detection_boxes": "boxes", "detection_scores": "scores",
           "detection_classes": "classes", "num_detections": "count"}
COCO_PERSON = 1


def encoded_frame(frame_bgr: np.ndarray) -> np.ndarray:
    """What Isaac ROS's DNN image encoder makes of a frame for this model: RGB, resized to
    300x300, (x / 255 - mean) / stddev with mean = stddev = 0.5, NCHW float32 [1, 3, 300, 300]."""
    rgb = cv2.cvtColor(cv2.resize(frame_bgr, (300, 300), interpolation=cv2.INTER_LINEAR),
                       cv2.COLOR_BGR2RGB)
    normalised = (rgb.astype(np.float32) / 255.0 - 0.5) / 0.5
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[np.newaxis])


def tensor_msg(name, array, *, data_type=None, dims=None, data=None) -> Tensor:
    """A Tensor as the encoder fills it (C-contiguous, byte strides); overrides make it bad."""
    dims = list(array.shape) if dims is None else dims
    strides = [s for s in np.empty(dims, array.dtype).strides] if dims is not None else []
    tensor = Tensor(name=name, shape=TensorShape(rank=len(dims), dims=dims),
                    data_type=9 if data_type is None else data_type, strides=strides)
    tensor.data = array.tobytes() if data is None else data
    return tensor


def tensor_list(stamp_s: int, tensors, frame_id="camera") -> TensorList:
    msg = TensorList(tensors=tensors)
    msg.header.stamp.sec = stamp_s
    msg.header.frame_id = frame_id
    return msg


class Collector:
    def __init__(self, node, topic):
        self.by_stamp, self.lock = {}, threading.Lock()
        self.subscription = node.create_subscription(TensorList, topic, self._on, RELIABLE)

    def _on(self, msg):
        with self.lock:
            self.by_stamp[stamp_to_ns(msg.header.stamp)] = msg


def start(start_node, ros_node, server, **params):
    """A tensor_node on /enc/tensor_pub -> /dec/tensor_sub, matched with the test's endpoints."""
    node = start_node(TENSOR, {
        "server_url": server.grpc_url, "model_name": MODEL,
        "input_tensor_names": ["input_tensor"], "input_binding_names": ["images"],
        "output_binding_names": list(OUTPUTS), "output_tensor_names": list(OUTPUTS.values()),
        **params}, remaps={"tensor_pub": "/enc/tensor_pub", "tensor_sub": "/dec/tensor_sub"})
    collector = Collector(ros_node, "/dec/tensor_sub")
    publisher = ros_node.create_publisher(TensorList, "/enc/tensor_pub", RELIABLE)
    node.wait_for_output("ready:", timeout_s=90)
    assert wait_matched(ros_node, [publisher], [collector.subscription], 60), node.output()
    return node, collector, publisher


def direct_outputs(server, image: np.ndarray) -> dict[str, np.ndarray]:
    """The same tensor sent straight to the server with tritonclient."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        request = grpcclient.InferInput("images", list(image.shape), "FP32")
        request.set_data_from_numpy(image)
        result = client.infer(MODEL, [request],
                              outputs=[grpcclient.InferRequestedOutput(n) for n in OUTPUTS])
        return {n: result.as_numpy(n) for n in OUTPUTS}
    finally:
        client.close()


# '"off"': quoted, or the command line's YAML reads a bool.
@pytest.mark.parametrize("shared_memory", ["auto", '"off"'], ids=["shm", "network"])
def test_encoder_tensors_give_the_same_outputs_as_a_direct_call(
        triton_server, start_node, ros_node, shared_memory):
    node, collector, publisher = start(start_node, ros_node, triton_server,
                                       shared_memory=shared_memory)
    frames = video_frames([0, 60, 120])
    images = [encoded_frame(f) for f in frames]
    for index, image in enumerate(images):
        publisher.publish(tensor_list(100 + index, [tensor_msg("input_tensor", image)],
                                      frame_id=f"cam{index}"))
    stamps = [(100 + i) * 1_000_000_000 for i in range(len(images))]
    assert wait_until(lambda: all(s in collector.by_stamp for s in stamps), 60), (
        f"got {len(collector.by_stamp)}/{len(stamps)}; log:\n{node.output()[-2000:]}")

    persons = 0
    for index, (stamp, image) in enumerate(zip(stamps, images)):
        out = collector.by_stamp[stamp]
        assert out.header.frame_id == f"cam{index}"
        assert [t.name for t in out.tensors] == list(OUTPUTS.values())
        arrays = tensors_by_name(out.tensors)
        expected = direct_outputs(triton_server, image)
        for binding, name in OUTPUTS.items():
            tensor = next(t for t in out.tensors if t.name == name)
            assert tensor.data_type == 9  # float32
            assert list(tensor.shape.dims) == list(expected[binding].shape)
            assert tensor.shape.rank == expected[binding].ndim
            assert list(tensor.strides) == list(expected[binding].strides)
            assert arrays[name].dtype == np.float32
            assert np.array_equal(arrays[name], expected[binding]), binding
        scores, classes = arrays["scores"][0], arrays["classes"][0]
        persons += int(np.sum((scores >= 0.5) & (classes == COCO_PERSON)))
    assert persons >= 3, "vtest.avi shows pedestrians in each of these frames"
    assert node.alive()
    regions = list(Path("/dev/shm").glob(f"triton_ros_*_{node.process.pid}_*"))
    assert bool(regions) == (shared_memory == "auto"), regions  # auto: on for loopback
    assert node.stop() == 0
    assert "published=3" in node.output()


def test_tensor_without_batch_dim_is_answered_without_one(triton_server, start_node, ros_node):
    node, collector, publisher = start(start_node, ros_node, triton_server)
    image = encoded_frame(video_frames([30])[0])
    publisher.publish(tensor_list(7, [tensor_msg("input_tensor", image[0])]))
    assert wait_until(lambda: 7_000_000_000 in collector.by_stamp, 60), node.output()
    arrays = tensors_by_name(collector.by_stamp[7_000_000_000].tensors)
    expected = direct_outputs(triton_server, image)
    assert arrays["boxes"].shape == (100, 4)
    assert np.array_equal(arrays["boxes"], expected["detection_boxes"][0])


def diagnostics_values(statuses, name="/triton_tensor"):
    for status in reversed(statuses):
        if name in status.name:
            return {kv.key: kv.value for kv in status.values}
    return {}


def test_bad_tensor_lists_are_counted_and_the_node_keeps_running(
        triton_server, start_node, ros_node):
    node, collector, publisher = start(start_node, ros_node, triton_server)
    statuses = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: statuses.extend(m.status), 10)
    image = encoded_frame(video_frames([0])[0])
    bad = [
        [tensor_msg("not_the_input", image)],                              # unknown tensor
        [tensor_msg("input_tensor", image.astype(np.float64), data_type=10)],  # wrong dtype
        [tensor_msg("input_tensor", image, dims=[1, 300, 300, 3])],       # wrong shape (NHWC)
        [tensor_msg("input_tensor", image, data=image.tobytes()[:-8])],   # data too short
        [tensor_msg("input_tensor", image, data_type=42)],                 # no such code
    ]
    for index, tensors in enumerate(bad):
        publisher.publish(tensor_list(200 + index, tensors, frame_id=f"bad{index}"))
    publisher.publish(tensor_list(300, [tensor_msg("input_tensor", image)]))
    assert wait_until(lambda: 300_000_000_000 in collector.by_stamp, 60), node.output()
    assert node.alive()
    # A report counts a message only after it was published: wait for one that counts them all.
    expected = {"messages_dropped_bad_input": str(len(bad)), "messages_published": "1",
                "messages_received": "6"}
    assert wait_until(lambda: expected.items() <= diagnostics_values(statuses).items(), 15), (
        diagnostics_values(statuses))
    assert len(collector.by_stamp) == 1
    log = node.output()
    assert "no tensor 'input_tensor' in the message" in log
    assert "is float64, model input 'images' takes FP32" in log
    assert "has shape [1, 300, 300, 3]" in log
    assert "data_type 42" in log


def test_bindings_the_model_lacks_are_a_configuration_error(triton_server, start_node):
    node = start_node(TENSOR, {"server_url": triton_server.grpc_url, "model_name": MODEL,
                               "input_tensor_names": ["input_tensor"],
                               "input_binding_names": ["input_1:0"]})
    assert node.process.wait(60) == 2
    assert "no input 'input_1:0'" in node.output()
