"""sensor_sequence_node: a non-camera sensor topic -> a stateful Triton sequence model -> scores.

Generic over the message type (``message_type``): each message becomes one feature vector,

- ``sensor_msgs/msg/Imu``: linear acceleration x, y, z and angular velocity x, y, z (6 features);
- ``sensor_msgs/msg/LaserScan``: the ranges (non-finite or out-of-range readings -> range_max);
- ``sensor_msgs/msg/JointState``: positions then velocities (missing velocities -> 0),

and up to ``max_samples_per_request`` queued messages go out as one request ``[n, F]`` on the
robot's sequence (default model ``imu_motion``: windowed motion/anomaly scores kept on the
server). Every single-value output in ``output_names`` is published as std_msgs/Float32 on
``~/<output name>`` (e.g. ``/robot1/imu_motion/motion``), once per request.
Lifecycle node, active at start (``autostart``); deactivate / shutdown END the sequence.
"""
import sys

import numpy as np
from diagnostic_msgs.msg import KeyValue
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Imu, JointState, LaserScan
from std_msgs.msg import Float32

from triton_ros.ros.params import ParameterError, ParamSpec
from triton_ros.ros.sequence_node import SequenceNode, run

NODE_NAME = "triton_sensor_sequence"


def imu_features(msg) -> np.ndarray:
    a, w = msg.linear_acceleration, msg.angular_velocity
    return np.array([a.x, a.y, a.z, w.x, w.y, w.z], np.float32)


def laser_scan_features(msg) -> np.ndarray:
    ranges = np.asarray(msg.ranges, np.float32)
    if ranges.size == 0:
        raise ValueError("LaserScan without ranges")
    top = msg.range_max if np.isfinite(msg.range_max) and msg.range_max > 0 else 0.0
    bad = ~np.isfinite(ranges) | (ranges < msg.range_min) | (ranges > top)
    return np.where(bad, np.float32(top), ranges).astype(np.float32)


def joint_state_features(msg) -> np.ndarray:
    position = np.asarray(msg.position, np.float32)
    velocity = np.zeros_like(position)
    given = np.asarray(msg.velocity, np.float32)[:len(position)]
    velocity[:len(given)] = given
    if position.size == 0:
        raise ValueError("JointState without positions")
    return np.concatenate([position, velocity])


# message type name -> (class, features function)
MESSAGE_TYPES = {
    "sensor_msgs/msg/Imu": (Imu, imu_features),
    "sensor_msgs/msg/LaserScan": (LaserScan, laser_scan_features),
    "sensor_msgs/msg/JointState": (JointState, joint_state_features),
}


def features(messages: list, to_features) -> np.ndarray:
    """Messages of one stream -> samples [n, F] (FP32). ValueError if F differs between them."""
    rows = [to_features(m) for m in messages]
    sizes = {len(r) for r in rows}
    if len(sizes) != 1:
        raise ValueError(f"messages with different feature counts {sorted(sizes)} in one batch")
    samples = np.stack(rows).astype(np.float32)
    if not np.isfinite(samples).all():
        raise ValueError("non-finite values in the samples")
    return samples


class SensorSequenceNode(SequenceNode):
    NODE_NAME = NODE_NAME
    DEFAULT_MODEL = "imu_motion"
    NODE_PARAMETERS = [
        ParamSpec("message_type", "sensor_msgs/msg/Imu", "input message type",
                  choices=tuple(MESSAGE_TYPES)),
        ParamSpec("input_name", "samples", "model input taking the samples [n, F]"),
        ParamSpec("output_names", Parameter.Type.STRING_ARRAY,
                  "single-value model outputs to publish as std_msgs/Float32 on ~/<name>; "
                  "unset = [motion, anomaly]"),
        ParamSpec("max_samples_per_request", 20, "queued messages sent in one request",
                  min_value=1, max_value=10000),
        ParamSpec("input_reliability", "best_effort",
                  "input subscription reliability (REP-2003 sensor data: best_effort)",
                  choices=("best_effort", "reliable")),
    ]

    def __init__(self, **kwargs):
        self._features = None   # F of the running sequence
        super().__init__(NODE_NAME, **kwargs)

    def validate_parameters(self, params: dict) -> None:
        params["output_names"] = [n for n in params["output_names"] if n] or ["motion",
                                                                               "anomaly"]
        if params["queue_size"] < params["max_samples_per_request"]:
            raise ParameterError(f"queue_size={params['queue_size']} is below "
                                 f"max_samples_per_request={params['max_samples_per_request']}")
        self.message_class, self.to_features = MESSAGE_TYPES[params["message_type"]]

    def input_type(self):
        return self.message_class

    def input_topic(self) -> str:
        return "input"

    def input_qos(self):
        return QoSProfile(depth=self.params["queue_size"], history=HistoryPolicy.KEEP_LAST,
                          reliability=(ReliabilityPolicy.BEST_EFFORT
                                       if self.params["input_reliability"] == "best_effort"
                                       else ReliabilityPolicy.RELIABLE))

    def setup_outputs(self) -> None:
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         history=HistoryPolicy.KEEP_LAST)
        self.publishers_by_output = {name: self.create_publisher(Float32, f"~/{name}", qos)
                                     for name in self.params["output_names"]}
        self.last_values: dict[str, float] = {}

    def check_model(self, spec) -> None:
        spec.input(self.params["input_name"])
        for name in self.params["output_names"]:
            spec.output(name)

    def max_messages_per_request(self) -> int:
        return self.params["max_samples_per_request"]

    def keepalive_inputs(self) -> dict:
        return {self.params["input_name"]: np.zeros((0, 0), np.float32)}

    def to_inputs(self, messages: list) -> dict:
        samples = features(messages, self.to_features)
        if self._features is not None and samples.shape[1] != self._features:
            # A new layout (e.g. a scan with another number of beams) is a new stream.
            self.stream.end(f"feature count changed from {self._features} to "
                            f"{samples.shape[1]}")
        self._features = samples.shape[1]
        return {self.params["input_name"]: samples}

    def output_names(self) -> list[str]:
        return list(self.params["output_names"])

    def publish_result(self, messages: list, outputs: dict) -> int:
        for name, publisher in self.publishers_by_output.items():
            value = np.asarray(outputs[name]).reshape(-1)
            if value.size != 1:
                raise ValueError(f"output {name!r} has {value.size} values, expected 1")
            self.last_values[name] = float(value[0])
            publisher.publish(Float32(data=float(value[0])))
        return len(messages)

    def status(self):
        status = super().status()
        status.values.extend(KeyValue(key=f"last_{k}", value=f"{v:.6g}")
                             for k, v in self.last_values.items())
        status.values.append(KeyValue(key="message_type", value=self.params["message_type"]))
        return status


def main(args=None) -> int:
    return run(SensorSequenceNode, args)


if __name__ == "__main__":
    sys.exit(main())
