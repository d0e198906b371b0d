"""Unit tests for the frame-counter values of triton_ros.ros.diagnostics (no node, no server)."""
import collections

from triton_ros.ros.diagnostics import FRAME_KEYS, bytes_per_frame_values, frame_values


def test_totals_are_the_sum_of_the_cameras_and_every_key_is_present():
    per_camera = {
        "left": collections.Counter(received=10, published=6, pending=1, dropped_stale=3),
        "right": collections.Counter(received=5, published=2, pending=0, dropped_dds_gap=2,
                                     dropped_bad_input=1),
    }
    values = frame_values(per_camera)
    assert all(f"frames_{key}" in values for key in FRAME_KEYS)
    assert values["frames_received"] == "15" and values["frames_published"] == "8"
    assert values["frames_dropped_internal_error"] == "0"
    assert values["camera[right].dropped_dds_gap"] == "2"
    dropped = sum(int(v) for k, v in values.items() if k.startswith("frames_dropped_"))
    assert int(values["frames_received"]) == (int(values["frames_published"]) + dropped
                                              + int(values["frames_pending"]))


def test_unnamed_camera_keys():
    assert frame_values({"": collections.Counter(received=1)})["camera[].received"] == "1"


def test_bytes_per_frame_is_a_mean_over_frames_not_requests():
    assert bytes_per_frame_values([]) == {}
    values = bytes_per_frame_values([(1000, 100, 1), (4000, 400, 4)])
    assert values == {"bytes_sent_per_frame": "1000", "bytes_received_per_frame": "100"}
