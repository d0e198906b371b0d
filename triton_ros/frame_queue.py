"""A bounded "latest frames win" queue between a subscription callback and the inference worker.

Real-time policy: when the queue is full the *oldest* frame is dropped and counted, so the worker
always works on the newest frames and memory stays bounded. Thread-safe; no ROS.
"""
import collections
import threading
from typing import Any


class FrameQueue:
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, item: Any) -> Any | None:
        """Add ``item``; returns the frame it pushed out (counted in ``dropped``) or None."""
        with self._cond:
            evicted = None
            if len(self._items) >= self.capacity:
                evicted = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()
            return evicted

    def take(self, max_items: int, timeout_s: float) -> list:
        """Wait up to ``timeout_s`` for a frame; return up to ``max_items`` oldest-first."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout_s)
            batch = []
            while self._items and len(batch) < max_items:
                batch.append(self._items.popleft())
            return batch

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
