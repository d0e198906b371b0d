"""Replay a rosbag2 (MCAP or sqlite3) into live topics with ``/clock``, like ``ros2 bag play --clock``.

rosbag2's player is not on PyPI, so this uses ``rosbags`` to read the bag and publishes each
message's raw CDR as stored (no decode/encode). Timing follows the bag's receive timestamps scaled
by ``rate``; ``/clock`` carries the bag time of the message about to be published.
"""
import importlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader
from rosgraph_msgs.msg import Clock


def message_class(msgtype: str):
    """``pkg/msg/Type`` -> the generated Python class (what rosidl_runtime_py's get_message does)."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def read_bag(path: Path, topics: list[str]) -> Iterator[tuple[str, str, int, bytes]]:
    """Yield (topic, msgtype, bag time ns, raw CDR) in bag order for ``topics``."""
    with Reader(path) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        missing = set(topics) - {c.topic for c in connections}
        if missing:
            raise ValueError(f"bag {path} has no topic(s) {sorted(missing)}; it has "
                             f"{sorted({c.topic for c in reader.connections})}")
        for connection, timestamp, raw in reader.messages(connections=connections):
            yield connection.topic, connection.msgtype, timestamp, bytes(raw)


class BagPlayer:
    """Publishes a bag's messages on ``remap.get(topic, topic)`` from ``node``.

    ``reliable``: publisher reliability (a best-effort subscriber accepts either).
    """

    def __init__(self, node: Node, bag: Path, topics: list[str], remap: dict | None = None,
                 rate: float = 1.0, publish_clock: bool = True, reliable: bool = True,
                 depth: int = 10):
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.node, self.bag, self.topics = node, Path(bag), list(topics)
        self.remap, self.rate = dict(remap or {}), rate
        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        self.clock = node.create_publisher(Clock, "/clock", 10) if publish_clock else None
        self._qos = qos
        self._publishers = {}

    def _publisher(self, topic: str, msgtype: str):
        if topic not in self._publishers:
            self._publishers[topic] = self.node.create_publisher(
                message_class(msgtype), self.remap.get(topic, topic), self._qos)
        return self._publishers[topic]

    def play(self, max_messages: int | None = None,
             on_message: Callable[[str, int, bytes], None] | None = None,
             should_stop: Callable[[], bool] = lambda: False) -> int:
        """Publish in bag order, paced by bag time / rate; returns messages published.

        ``on_message(topic, bag_time_ns, raw)`` is called just before each publish.
        """
        start_wall = start_bag = None
        published = 0
        for topic, msgtype, stamp_ns, raw in read_bag(self.bag, self.topics):
            if should_stop() or (max_messages is not None and published >= max_messages):
                break
            publisher = self._publisher(topic, msgtype)
            if start_wall is None:
                start_wall, start_bag = time.monotonic(), stamp_ns
            due = start_wall + (stamp_ns - start_bag) / 1e9 / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if self.clock is not None:
                clock = Clock()
                clock.clock.sec, clock.clock.nanosec = divmod(stamp_ns, 1_000_000_000)
                self.clock.publish(clock)
            if on_message is not None:
                on_message(topic, stamp_ns, raw)
            publisher.publish(raw)
            published += 1
        return published
