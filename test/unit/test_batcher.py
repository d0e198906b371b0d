"""CameraBatcher: Triton-dynamic-batcher contract on the robot side, latest-frame-wins, sync."""
import threading
import time

import pytest

from triton_ros.batcher import CameraBatcher


def put_frames(batcher, camera, stamps):
    return [batcher.put(camera, s, f"{camera}@{s}") for s in stamps]


def test_full_batch_is_released_at_once_without_waiting_for_the_delay():
    batcher = CameraBatcher(["a", "b"], max_batch=2, max_delay_s=60.0)
    batcher.put("a", 1, "a1")
    batcher.put("b", 1, "b1")
    start = time.monotonic()
    batch = batcher.next_batch(timeout_s=5.0)
    assert sorted(p.item for p in batch) == ["a1", "b1"]
    assert time.monotonic() - start < 1.0  # not held for max_delay


def test_partial_batch_waits_for_max_delay_then_flushes():
    batcher = CameraBatcher(["a", "b"], max_batch=4, max_delay_s=1.0)
    batcher.put("a", 1, "a1")
    assert batcher.next_batch(timeout_s=0.05) == []  # younger than max_delay, not full
    batch = batcher.next_batch(timeout_s=2.0)
    assert [p.item for p in batch] == ["a1"]
    assert batch[0].camera == "a" and batch[0].stamp_ns == 1


def test_zero_delay_flushes_whatever_is_pending():
    batcher = CameraBatcher(["a"], max_batch=8, max_delay_s=0.0, depth=3)
    put_frames(batcher, "a", [1, 2, 3])
    assert [p.stamp_ns for p in batcher.next_batch(0.1)] == [1, 2, 3]


def test_latest_frame_wins_and_drops_are_counted_per_camera():
    batcher = CameraBatcher(["a", "b"], max_batch=8, max_delay_s=10.0, depth=1)
    evicted = put_frames(batcher, "a", [1, 2, 3])
    batcher.put("b", 5, "b5")
    assert [e.item if e else None for e in evicted] == [None, "a@1", "a@2"]
    assert batcher.dropped["a"]["stale"] == 2 and batcher.dropped["b"]["stale"] == 0
    assert batcher.pending() == 2
    batcher.close()
    assert sorted(p.item for p in batcher.next_batch(0.1)) == ["a@3", "b5"]


def test_batches_take_cameras_round_robin_and_respect_max_batch():
    batcher = CameraBatcher(["a", "b", "c"], max_batch=3, max_delay_s=0.0, depth=4)
    put_frames(batcher, "a", [1, 2, 3, 4])
    put_frames(batcher, "b", [1])
    put_frames(batcher, "c", [1])
    first = batcher.next_batch(0.1)
    assert len(first) == 3
    assert sorted(p.camera for p in first) == ["a", "b", "c"]  # busy camera does not starve
    second = batcher.next_batch(0.1)
    assert [p.item for p in second] == ["a@2", "a@3", "a@4"]
    assert dict(batcher.batch_sizes) == {3: 2}


def test_set_max_batch_follows_discovery():
    batcher = CameraBatcher(["a"], max_batch=1, max_delay_s=10.0, depth=8)
    put_frames(batcher, "a", [1, 2, 3, 4])
    batcher.set_max_batch(4)
    assert len(batcher.next_batch(0.1)) == 4


def test_waiting_taker_is_woken_by_put_and_by_close():
    batcher = CameraBatcher(["a"], max_batch=1, max_delay_s=0.0)
    got = []
    thread = threading.Thread(target=lambda: got.append(batcher.next_batch(5.0)))
    thread.start()
    time.sleep(0.1)
    batcher.put("a", 7, "x")
    thread.join(2.0)
    assert [p.item for p in got[0]] == ["x"]
    thread = threading.Thread(target=lambda: got.append(batcher.next_batch(5.0)))
    thread.start()
    time.sleep(0.1)
    batcher.close()
    thread.join(2.0)
    assert not thread.is_alive() and got[1] == []


def test_sync_mode_takes_one_frame_per_camera_within_tolerance():
    ms = 1_000_000
    batcher = CameraBatcher(["left", "right"], max_batch=8, max_delay_s=0.0, depth=4,
                            sync_tolerance_s=0.010)
    batcher.put("left", 100 * ms, "L100")
    assert batcher.next_batch(0.05) == []          # right has nothing yet
    batcher.put("right", 105 * ms, "R105")
    assert [p.item for p in batcher.next_batch(0.1)] == ["L100", "R105"]
    # left 200 has no partner: right's next frame is 300 -> left 200 can never match.
    batcher.put("left", 200 * ms, "L200")
    batcher.put("left", 300 * ms, "L300")
    batcher.put("right", 302 * ms, "R302")
    assert [p.item for p in batcher.next_batch(0.1)] == ["L300", "R302"]
    assert batcher.dropped["left"]["unsynced"] == 1
    assert batcher.dropped["right"]["unsynced"] == 0


def test_sync_mode_drops_until_stamps_line_up():
    ms = 1_000_000
    batcher = CameraBatcher(["a", "b", "c"], max_batch=8, max_delay_s=0.0, depth=8,
                            sync_tolerance_s=0.005)
    for cam, stamps in {"a": [0, 33, 66], "b": [10, 66], "c": [66]}.items():
        for s in stamps:
            batcher.put(cam, s * ms, f"{cam}{s}")
    assert [p.item for p in batcher.next_batch(0.1)] == ["a66", "b66", "c66"]
    assert batcher.dropped["a"]["unsynced"] == 2 and batcher.dropped["b"]["unsynced"] == 1


@pytest.mark.parametrize("kwargs", [dict(cameras=[], max_batch=1, max_delay_s=0),
                                    dict(cameras=["a", "a"], max_batch=1, max_delay_s=0),
                                    dict(cameras=["a"], max_batch=0, max_delay_s=0),
                                    dict(cameras=["a"], max_batch=1, max_delay_s=-1)])
def test_invalid_configuration_is_rejected(kwargs):
    with pytest.raises(ValueError):
        CameraBatcher(**kwargs)
