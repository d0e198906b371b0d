"""Unit tests for triton_ros.frame_queue.FrameQueue (drop-oldest, thread-safe)."""
import threading
import time

import pytest

from triton_ros.frame_queue import FrameQueue


@pytest.mark.parametrize("capacity", [0, -1])
def test_capacity_must_be_positive(capacity):
    with pytest.raises(ValueError, match=f"capacity must be >= 1, got {capacity}"):
        FrameQueue(capacity)


def test_put_within_capacity_evicts_nothing():
    q = FrameQueue(3)
    assert [q.put(i) for i in range(3)] == [None, None, None]
    assert len(q) == 3 and q.dropped == 0 and q.capacity == 3


def test_drop_oldest_returns_evicted_and_counts():
    q = FrameQueue(2)
    assert q.put("a") is None
    assert q.put("b") is None
    assert q.put("c") == "a"
    assert q.put("d") == "b"
    assert len(q) == 2
    assert q.dropped == 2
    assert q.take(10, 0.0) == ["c", "d"]
    assert q.dropped == 2  # taking is not dropping


def test_capacity_one_keeps_latest():
    q = FrameQueue(1)
    for i in range(5):
        q.put(i)
    assert q.dropped == 4
    assert q.take(5, 0.0) == [4]


def test_take_respects_max_items_and_order():
    q = FrameQueue(10)
    for i in range(5):
        q.put(i)
    assert q.take(2, 0.0) == [0, 1]
    assert len(q) == 3
    assert q.take(1, 0.0) == [2]
    assert q.take(8, 0.0) == [3, 4]
    assert len(q) == 0


def test_take_times_out_with_empty_list():
    q = FrameQueue(2)
    start = time.monotonic()
    assert q.take(4, 0.05) == []
    elapsed = time.monotonic() - start
    assert 0.04 <= elapsed < 2.0


def test_take_returns_immediately_when_items_present():
    q = FrameQueue(2)
    q.put("x")
    start = time.monotonic()
    assert q.take(4, 5.0) == ["x"]
    assert time.monotonic() - start < 1.0


def test_put_wakes_a_waiting_taker():
    q = FrameQueue(4)
    result = []
    taker = threading.Thread(target=lambda: result.append(q.take(4, 10.0)))
    start = time.monotonic()
    taker.start()
    time.sleep(0.05)
    q.put("frame")
    taker.join(5.0)
    assert not taker.is_alive()
    assert result == [["frame"]]
    assert time.monotonic() - start < 5.0


def test_close_wakes_a_waiting_taker():
    q = FrameQueue(4)
    result = []
    taker = threading.Thread(target=lambda: result.append(q.take(4, 10.0)))
    start = time.monotonic()
    taker.start()
    time.sleep(0.05)
    q.close()
    taker.join(5.0)
    assert not taker.is_alive()
    assert result == [[]]
    assert time.monotonic() - start < 5.0
    # Once closed, take() on an empty queue does not wait.
    start = time.monotonic()
    assert q.take(1, 10.0) == []
    assert time.monotonic() - start < 1.0


def test_closed_queue_still_drains():
    q = FrameQueue(3)
    q.put(1)
    q.put(2)
    q.close()
    assert q.take(5, 1.0) == [1, 2]


def test_concurrent_producers_never_exceed_capacity():
    q = FrameQueue(5)
    n_threads, per_thread = 4, 500

    def produce(base):
        for i in range(per_thread):
            q.put(base + i)

    threads = [threading.Thread(target=produce, args=(t * 10_000,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5.0)
    assert len(q) == 5
    assert q.dropped == n_threads * per_thread - 5
    items = q.take(10, 0.0)
    assert len(items) == 5
    # Each producer's items stay in order within the queue.
    for base in range(n_threads):
        mine = [i for i in items if base * 10_000 <= i < (base + 1) * 10_000]
        assert mine == sorted(mine)
