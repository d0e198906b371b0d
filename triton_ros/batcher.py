"""Client-side batching of frames from several cameras (and successive frames) into one request.

The contract mirrors Triton's dynamic batcher, on the robot side: a batch is released when
``max_batch`` frames are pending, or when the oldest pending frame has waited ``max_delay_s``.

Real-time policy: each camera has a bounded slot (``depth`` frames, default 1 = "latest frame
wins"); a newer frame pushes the oldest pending one of the same camera out, counted per camera as
``stale`` (or as ``evict_reason`` while the owner sets another, e.g. ``server_unavailable`` during
an outage). Nothing queues without bound.

Synchronized mode (``sync_tolerance_s`` set, for stereo/surround rigs): a batch takes exactly one
frame per camera whose stamps lie within the tolerance; frames too old to ever match are dropped
and counted as ``unsynced``.

Thread-safe, no ROS. Items are opaque; each ``put`` gives a camera name and a stamp (ns).
"""
import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Pending:
    """A frame in a slot or in a batch; ``settled`` is the owner's mark once it is counted
    (published or dropped) after :meth:`CameraBatcher.next_batch` handed it out."""
    camera: str
    stamp_ns: int
    item: Any
    enqueued: float = field(default_factory=time.monotonic)
    settled: bool = False


class CameraBatcher:
    def __init__(self, cameras: list[str], max_batch: int, max_delay_s: float, depth: int = 1,
                 sync_tolerance_s: float | None = None):
        if not cameras or len(set(cameras)) != len(cameras):
            raise ValueError(f"cameras must be unique and non-empty, got {cameras}")
        if max_batch < 1 or depth < 1 or max_delay_s < 0:
            raise ValueError(f"need max_batch >= 1, depth >= 1, max_delay_s >= 0; got "
                             f"{max_batch}, {depth}, {max_delay_s}")
        self.cameras = list(cameras)
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.depth = depth
        self.sync_tolerance_ns = None if sync_tolerance_s is None else int(sync_tolerance_s * 1e9)
        self._slots = {camera: collections.deque() for camera in cameras}
        self._cond = threading.Condition()
        self._closed = False
        self._next_camera = 0
        self.dropped = {camera: collections.Counter() for camera in cameras}
        self.taken = collections.Counter()   # frames handed out in batches, per camera
        self.batch_sizes = collections.Counter()
        self.evict_reason = "stale"   # the reason displaced frames are counted under

    def set_max_batch(self, max_batch: int) -> None:
        """Follow the model's max_batch_size once it is discovered."""
        with self._cond:
            self.max_batch = max(1, max_batch)
            self._cond.notify_all()

    def put(self, camera: str, stamp_ns: int, item: Any) -> Pending | None:
        """Offer a frame; returns the frame it displaced (counted as ``evict_reason``), if any."""
        with self._cond:
            slot = self._slots[camera]
            evicted = None
            if len(slot) >= self.depth:
                evicted = slot.popleft()
                self.dropped[camera][self.evict_reason] += 1
            slot.append(Pending(camera, stamp_ns, item))
            self._cond.notify_all()
            return evicted

    def dropped_counts(self, camera: str) -> dict[str, int]:
        """Frames of ``camera`` this batcher dropped, by reason (stale, unsynced)."""
        with self._cond:
            return dict(self.dropped[camera])

    def camera_state(self, camera: str) -> tuple[int, int, dict[str, int]]:
        """(frames in the slot, frames handed out in batches so far, drops by reason) of
        ``camera``, read at one moment: received = slot + taken + dropped for what was put."""
        with self._cond:
            return len(self._slots[camera]), self.taken[camera], dict(self.dropped[camera])

    def drop_snapshot(self, reason: str) -> dict[str, int]:
        """Per-camera count of drops for ``reason`` now (see :meth:`reclassify`)."""
        with self._cond:
            return {camera: counts[reason] for camera, counts in self.dropped.items()}

    def reclassify(self, since: dict[str, int], old: str, new: str) -> int:
        """Count the ``old`` drops made after snapshot ``since`` as ``new`` instead.

        E.g. frames displaced while a request hung were lost to the outage, not to a slow
        model. Returns how many were moved.
        """
        moved = 0
        with self._cond:
            for camera, counts in self.dropped.items():
                n = max(0, min(counts[old] - since.get(camera, 0), counts[old]))
                if n:
                    counts[old] -= n
                    counts[new] += n
                    moved += n
        return moved

    def pending(self) -> int:
        with self._cond:
            return sum(len(s) for s in self._slots.values())

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- batch assembly (called with the lock held) --

    def _take_dynamic(self, now: float, force: bool) -> list[Pending]:
        pending = sum(len(s) for s in self._slots.values())
        if pending == 0:
            return []
        oldest = min(s[0].enqueued for s in self._slots.values() if s)
        if pending < self.max_batch and now - oldest < self.max_delay_s and not force:
            return []
        batch = []
        # Round-robin over cameras, oldest frame of each first, so no camera starves.
        while len(batch) < self.max_batch and any(self._slots.values()):
            camera = self.cameras[self._next_camera % len(self.cameras)]
            self._next_camera += 1
            if self._slots[camera]:
                batch.append(self._slots[camera].popleft())
        return batch

    def _take_synced(self) -> list[Pending]:
        tolerance = self.sync_tolerance_ns
        while all(self._slots.values()):
            reference = max(s[0].stamp_ns for s in self._slots.values())
            stale = False
            for camera, slot in self._slots.items():
                while slot and slot[0].stamp_ns < reference - tolerance:
                    slot.popleft()
                    self.dropped[camera]["unsynced"] += 1
                    stale = True
            if stale:
                continue  # heads changed: re-check with the new heads
            return [self._slots[camera].popleft() for camera in self.cameras]
        return []

    def next_batch(self, timeout_s: float) -> list[Pending]:
        """Block up to ``timeout_s`` for a batch; [] on timeout or after close()."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                now = time.monotonic()
                if self.sync_tolerance_ns is not None:
                    batch = self._take_synced()
                else:
                    batch = self._take_dynamic(now, force=self._closed)
                if batch:
                    self.batch_sizes[len(batch)] += 1
                    self.taken.update(pending.camera for pending in batch)
                    return batch
                if self._closed or now >= deadline:
                    return []
                wait = deadline - now
                if self.sync_tolerance_ns is None and any(self._slots.values()):
                    oldest = min(s[0].enqueued for s in self._slots.values() if s)
                    wait = min(wait, max(0.0, oldest + self.max_delay_s - now))
                self._cond.wait(wait)
