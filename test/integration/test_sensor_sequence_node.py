"""sensor_sequence_node on real DDS and a real tritonserver: Imu and LaserScan streams of one robot.

Both nodes use the ``imu_motion`` model (windowed motion/anomaly state per sequence on the
server), as two streams of one robot (robot_id 1, stream indices 0 and 1). The IMU is still,
then shaken; the scan sees a static room, then something moving through it. The scores the nodes
publish must follow (low, then high), each stream in its own sequence.
"""
import threading
import time

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Imu, JointState, LaserScan
from std_msgs.msg import Float32

from triton_ros.ros.sensor_sequence_node import (features, imu_features, joint_state_features,
                                                 laser_scan_features)

from helpers import unmatched, wait_matched, wait_until

SENSOR = "triton_ros.ros.sensor_sequence_node"
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
BEAMS = 180


# --- message -> features (no server) -----------------------------------------------------------


def test_imu_features():
    msg = Imu()
    msg.linear_acceleration.x, msg.linear_acceleration.z = 0.5, 9.81
    msg.angular_velocity.y = -0.25
    assert imu_features(msg).tolist() == pytest.approx([0.5, 0, 9.81, 0, -0.25, 0])


def test_laser_scan_features_map_invalid_readings_to_range_max():
    msg = LaserScan(range_min=0.1, range_max=10.0,
                    ranges=[1.0, float("inf"), float("nan"), 0.05, 12.0, 3.5])
    assert laser_scan_features(msg).tolist() == pytest.approx([1.0, 10, 10, 10, 10, 3.5])
    with pytest.raises(ValueError, match="without ranges"):
        laser_scan_features(LaserScan(range_max=10.0))


def test_joint_state_features_pad_missing_velocities():
    msg = JointState(name=["a", "b"], position=[0.5, -1.0], velocity=[0.25])
    assert joint_state_features(msg).tolist() == [0.5, -1.0, 0.25, 0.0]


def test_features_refuse_mixed_layouts_in_one_request():
    scans = [LaserScan(range_max=5.0, ranges=[1.0] * 4), LaserScan(range_max=5.0, ranges=[1.0])]
    with pytest.raises(ValueError, match="different feature counts"):
        features(scans, laser_scan_features)
    assert features(scans[:1], laser_scan_features).shape == (1, 4)


# --- nodes -------------------------------------------------------------------------------------


class Scores:
    def __init__(self, probe, topic):
        self.values, self.lock = [], threading.Lock()
        self.subscription = probe.create_subscription(Float32, topic, self._on, RELIABLE)

    def _on(self, msg):
        with self.lock:
            self.values.append(msg.data)

    def snapshot(self):
        with self.lock:
            return list(self.values)


def imu_msg(rng, shake: float) -> Imu:
    msg = Imu()
    msg.header.frame_id = "imu_link"
    a = np.array([0.0, 0.0, 9.81]) + rng.normal(0, 0.01 + shake, 3)
    w = rng.normal(0, 0.002 + shake / 4, 3)
    msg.linear_acceleration.x, msg.linear_acceleration.y, msg.linear_acceleration.z = a.tolist()
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = w.tolist()
    return msg


def room_scan(rng, obstacle_at: int | None) -> LaserScan:
    """A rectangular room seen from its middle; an obstacle 1 m away spanning 10 beams."""
    angles = np.linspace(-np.pi, np.pi, BEAMS, endpoint=False)
    ranges = np.minimum(4.0 / np.maximum(np.abs(np.cos(angles)), 1e-6),
                        3.0 / np.maximum(np.abs(np.sin(angles)), 1e-6))
    ranges = ranges + rng.normal(0, 0.005, BEAMS)
    ranges[::45] = np.inf                      # a few beams with no return
    if obstacle_at is not None:
        ranges[obstacle_at:obstacle_at + 10] = 1.0
    msg = LaserScan(angle_min=-np.pi, angle_max=np.pi, angle_increment=2 * np.pi / BEAMS,
                    range_min=0.1, range_max=8.0, ranges=ranges.astype(np.float32).tolist())
    msg.header.frame_id = "laser"
    return msg


def test_imu_and_scan_streams_of_one_robot(triton_server, start_node, ros_node):
    # queue_size well above the 80 messages sent: this test is about the scores, and under CPU
    # load a shorter queue may (rightly) drop samples, which would change processed counts.
    common = {"server_url": triton_server.grpc_url, "robot_id": 1, "queue_size": 200,
              "max_samples_per_request": 10, "input_reliability": "reliable"}
    imu_node = start_node(SENSOR, dict(common, message_type="sensor_msgs/msg/Imu"),
                          remaps={"__node": "imu_motion", "input": "imu"}, namespace="/robot1")
    scan_node = start_node(SENSOR, dict(common, message_type="sensor_msgs/msg/LaserScan",
                                        stream_index=1),
                           remaps={"__node": "scan_motion", "input": "scan"},
                           namespace="/robot1")
    imu_motion = Scores(ros_node, "/robot1/imu_motion/motion")
    imu_anomaly = Scores(ros_node, "/robot1/imu_motion/anomaly")
    scan_motion = Scores(ros_node, "/robot1/scan_motion/motion")
    statuses = {}
    ros_node.create_subscription(
        DiagnosticArray, "/diagnostics",
        lambda m: statuses.update({s.name: s for s in m.status}), 50)

    def values(name):
        status = statuses.get(f"triton_ros: /robot1/{name}")
        return (status.level, {kv.key: kv.value for kv in status.values}) if status else (None, {})
    imu_pub = ros_node.create_publisher(Imu, "/robot1/imu", RELIABLE)
    scan_pub = ros_node.create_publisher(LaserScan, "/robot1/scan", RELIABLE)
    for node in (imu_node, scan_node):
        node.wait_for_output("active:", timeout_s=90)
    endpoints = {"publishers": [imu_pub, scan_pub],
                 "subscriptions": [s.subscription for s in (imu_motion, imu_anomaly, scan_motion)]}
    assert wait_matched(ros_node, **endpoints, timeout_s=60), unmatched(ros_node, **endpoints)

    rng = np.random.default_rng(5)
    for _ in range(40):                      # both sensors at rest, interleaved
        imu_pub.publish(imu_msg(rng, 0.0))
        scan_pub.publish(room_scan(rng, None))
        time.sleep(0.01)
    # Every still sample published (the node counts after publishing), not a fixed pause.
    assert wait_until(lambda: values("imu_motion")[1].get("frames_published") == "40"
                      and values("scan_motion")[1].get("frames_published") == "40", 60), (
        values("imu_motion"), values("scan_motion"))
    assert wait_until(lambda: len(imu_motion.snapshot()) >= 3
                      and len(scan_motion.snapshot()) >= 3, 30)
    still_imu, still_scan = imu_motion.snapshot(), scan_motion.snapshot()
    assert max(still_imu) < 0.05, still_imu
    for step in range(40):                   # the robot is shaken; something walks by the laser
        imu_pub.publish(imu_msg(rng, 2.0))
        scan_pub.publish(room_scan(rng, 20 + 2 * step))
        time.sleep(0.01)
    assert wait_until(lambda: imu_motion.snapshot()[-1] > 0.5, 30), imu_motion.snapshot()[-5:]
    assert max(imu_anomaly.snapshot()) > 10, "the first shakes stand out against the rest"
    assert wait_until(lambda: scan_motion.snapshot()[-1] > 5 * max(still_scan), 30), (
        still_scan, scan_motion.snapshot()[-5:])

    assert wait_until(lambda: values("imu_motion")[1].get("frames_processed") == "80"
                      and values("scan_motion")[1].get("frames_processed") == "80", 20), (
        values("imu_motion"), values("scan_motion"))
    for name, corrid, msg_type in (("imu_motion", "256", "Imu"), ("scan_motion", "257",
                                                                   "LaserScan")):
        level, v = values(name)
        assert v["correlation_id"] == corrid and v["sequence_model"] == "imu_motion"
        assert v["message_type"] == f"sensor_msgs/msg/{msg_type}"
        assert v["sequences_started"] == "1" and v["collisions"] == ""
        assert level == DiagnosticStatus.OK

    assert imu_node.stop() == 0
    assert wait_until(lambda: "sequence 256 ended after 80 sample(s)"
                      in triton_server.log_path.read_text(), 15)
    assert scan_node.alive()


def test_unknown_message_type_exits_with_clear_error(start_node):
    node = start_node(SENSOR, {"message_type": "sensor_msgs/msg/Foo"})
    assert node.process.wait(30) == 2
    assert "message_type='sensor_msgs/msg/Foo' is not one of" in node.output()


def test_sensor_node_started_before_its_server_keeps_running_and_connects(
        tmp_path, start_node, ros_node):
    """Issue 18 (8): started with no server at its url, the node stays up (was: exit 2), says
    why on /diagnostics, counts what arrives meanwhile; the server started, scores arrive."""
    from sequence_data import model_repository
    from triton_ros.tools.local_server import LocalTritonServer, free_ports
    ports = dict(zip(("http_port", "grpc_port", "metrics_port"), free_ports(3)))
    server = LocalTritonServer(model_repository(tmp_path / "repo", models=("imu_motion",)),
                               log_path=tmp_path / "server.log", **ports)
    node = start_node(SENSOR, {"server_url": server.grpc_url, "robot_id": 3,
                               "message_type": "sensor_msgs/msg/Imu", "queue_size": 200,
                               "max_samples_per_request": 10, "input_reliability": "reliable",
                               "server_wait_timeout_s": 1.0, "reconnect_initial_s": 0.2,
                               "reconnect_max_s": 1.0, "diagnostics_period_s": 0.5},
                      remaps={"__node": "imu_motion", "input": "imu"}, namespace="/robot3")
    motion = Scores(ros_node, "/robot3/imu_motion/motion")
    statuses = {}
    ros_node.create_subscription(
        DiagnosticArray, "/diagnostics",
        lambda m: statuses.update({s.name: s for s in m.status}), 50)

    def values():
        status = statuses.get("triton_ros: /robot3/imu_motion")
        return (status.level, {kv.key: kv.value for kv in status.values}) if status else (None, {})
    imu_pub = ros_node.create_publisher(Imu, "/robot3/imu", RELIABLE)
    try:
        node.wait_for_output("active:", timeout_s=90)
        assert wait_matched(ros_node, [imu_pub], [motion.subscription], 60)
        assert wait_until(lambda: values()[1].get("connection") == "unavailable", 30), values()
        level, v = values()
        assert level == DiagnosticStatus.ERROR and server.grpc_url in v["connection_error"]
        rng = np.random.default_rng(7)
        for _ in range(5):
            imu_pub.publish(imu_msg(rng, 0.0))
        assert wait_until(lambda: values()[1].get("frames_dropped_server_unavailable") == "5",
                          15), values()
        assert node.alive()

        server.start(timeout_s=120)
        assert wait_until(lambda: values()[1].get("connection") == "ready", 30), values()
        for _ in range(20):
            imu_pub.publish(imu_msg(rng, 0.0))
            time.sleep(0.01)
        assert wait_until(lambda: values()[1].get("frames_published") == "20", 60), values()
        assert motion.snapshot()
        assert node.alive()
    finally:
        server.cleanup()
