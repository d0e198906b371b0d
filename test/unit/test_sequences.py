"""Unit tests for the ROS-free sequence core (triton_ros.sequences) and the stateful models' cores.

No ROS, no server: correlation-id assignment and collision detection, fleet planning, the
keep-alive/END timing decisions, the server's "dropped sequence" message, and the tracker and
motion-window algorithms that the python-backend models run (config/model_repository/*/1/).
"""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from triton_ros.sequences import (DERIVED_BASE, DERIVED_SPAN, MAX_CORRELATION_ID, MAX_ROBOT_ID,
                                  STREAMS_PER_ROBOT, Claim, ClaimRegistry, CorrelationIdError,
                                  SequenceTiming, assign_correlation_id, check_unique,
                                  derived_correlation_id, is_sequence_dropped, make_transport,
                                  normalize_server, plan_fleet, stream_key)

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "config" / "model_repository"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tracker_core = _load(MODELS / "simple_tracker" / "1" / "tracker_core.py", "tracker_core")
motion_core = _load(MODELS / "imu_motion" / "1" / "motion_core.py", "motion_core")

# The exact error of tritonserver 2.51 for a continuation of a sequence it does not know.
DROPPED_2_51 = ("inference request for sequence 101 to model 'simple_tracker' must specify the "
                "START flag on the first request of the sequence")


# --- correlation ids ---------------------------------------------------------------------------


def test_robot_id_gives_a_block_of_ids_per_robot():
    a = assign_correlation_id("/robot1", "/robot1/detections", robot_id=3)
    assert (a.correlation_id, a.method) == (3 * STREAMS_PER_ROBOT, "robot_id")
    b = assign_correlation_id("/robot1", "/robot1/imu", robot_id=3, stream_index=1)
    assert b.correlation_id == 3 * STREAMS_PER_ROBOT + 1
    c = assign_correlation_id("/robot2", "/robot2/detections", robot_id=4)
    assert c.correlation_id == 4 * STREAMS_PER_ROBOT
    assert a.stream_key == "/robot1|/robot1/detections"
    assert "robot_id 3" in a.detail


def test_namespace_does_not_matter_once_a_robot_id_is_set():
    a = assign_correlation_id("/robot1", "detections", robot_id=9)
    b = assign_correlation_id("/elsewhere", "detections", robot_id=9)
    assert a.correlation_id == b.correlation_id


def test_id_range_wins_over_robot_id():
    a = assign_correlation_id("/r", "s", robot_id=5, id_range=[1000, 1009], stream_index=2)
    assert (a.correlation_id, a.method) == (1002, "id_range")


@pytest.mark.parametrize("kwargs,message", [
    ({"robot_id": MAX_ROBOT_ID + 1}, "outside"),
    ({"robot_id": -1}, "outside"),
    ({"stream_index": STREAMS_PER_ROBOT}, "stream_index"),
    ({"id_range": [10, 12], "stream_index": 3}, "does not fit"),
    ({"id_range": [12, 10]}, "first <= last"),
    ({"id_range": [0, 10]}, "1 <= first"),
    ({"id_range": [1, MAX_CORRELATION_ID + 1]}, "last <="),
    ({"id_range": [5]}, "must be \\[first, last\\]"),
])
def test_invalid_assignments_are_refused(kwargs, message):
    with pytest.raises(CorrelationIdError, match=message):
        assign_correlation_id("/r", "s", **kwargs)


def test_namespace_hash_is_deterministic_and_in_its_own_range():
    a = assign_correlation_id("/robot1", "/robot1/detections")
    assert a.method == "namespace_hash"
    assert a.correlation_id == derived_correlation_id("/robot1", "/robot1/detections")
    assert a.correlation_id == assign_correlation_id("robot1/", "/robot1/detections").correlation_id
    assert DERIVED_BASE <= a.correlation_id < DERIVED_BASE + DERIVED_SPAN <= MAX_CORRELATION_ID
    others = {derived_correlation_id(f"/robot{i}", "/detections") for i in range(200)}
    assert len(others) == 200, "200 namespaces must hash to 200 different ids"
    assert derived_correlation_id("/r", "/r/a") != derived_correlation_id("/r", "/r/b")


def test_robot_id_ranges_never_reach_derived_ids():
    highest = assign_correlation_id("/r", "s", robot_id=MAX_ROBOT_ID,
                                    stream_index=STREAMS_PER_ROBOT - 1)
    assert highest.correlation_id < DERIVED_BASE


def test_stream_key_normalizes_the_namespace():
    assert stream_key("robot1", "imu") == stream_key("/robot1/", "imu") == "/robot1|imu"
    assert stream_key("", "imu") == "/|imu"


def test_check_unique_names_every_collision():
    fine = [assign_correlation_id(f"/robot{i}", "d", robot_id=i) for i in (1, 2, 3)]
    check_unique(fine)
    clash = fine + [assign_correlation_id("/robot9", "d", robot_id=2)]
    with pytest.raises(CorrelationIdError, match=r"512 used by /robot2\|d, /robot9\|d"):
        check_unique(clash)


# --- claims ------------------------------------------------------------------------------------


def _claim(owner, corrid=256, server="127.0.0.1:8001", model="simple_tracker", key=None):
    return Claim(server, model, corrid, owner, key or f"{owner}|detections")


def test_a_second_local_stream_on_the_same_sequence_is_refused():
    registry = ClaimRegistry()
    registry.claim(_claim("/robot1/triton_track"))
    registry.claim(_claim("/robot1/triton_track"))  # the same stream again is fine
    with pytest.raises(CorrelationIdError, match="collision: 256 of model 'simple_tracker'"):
        registry.claim(_claim("/robot2/triton_track"))


def test_observed_claims_collide_only_on_the_same_server_model_and_id():
    registry = ClaimRegistry()
    mine = _claim("/robot1/triton_track")
    registry.claim(mine)
    assert registry.observe(mine) is None
    assert registry.observe(_claim("/robot2/triton_track", corrid=512)) is None
    assert registry.observe(_claim("/robot2/imu_motion", model="imu_motion")) is None
    assert registry.observe(_claim("/robot2/triton_track", server="10.0.0.5:8001")) is None
    assert registry.observe(_claim("/robot2/triton_track", server="localhost:8001")) == mine
    assert registry.collisions, "the collision is remembered"
    registry.release(mine)
    assert registry.observe(_claim("/robot2/triton_track")) is None


def test_normalize_server():
    assert normalize_server("grpc://Localhost:8001/") == "127.0.0.1:8001"
    assert normalize_server("gpu-server:8001") == "gpu-server:8001"


# --- fleet planning ----------------------------------------------------------------------------


def test_plan_fleet_from_a_count():
    fleet = plan_fleet("3")
    assert [(r.namespace, r.robot_id) for r in fleet] == [("robot1", 1), ("robot2", 2),
                                                          ("robot3", 3)]
    assert [r.robot_id for r in plan_fleet("2", robot_id_base=101)] == [101, 102]


def test_plan_fleet_from_names_and_ids():
    fleet = plan_fleet("alpha, /bravo", robot_ids="17,42")
    assert [(r.namespace, r.robot_id) for r in fleet] == [("alpha", 17), ("bravo", 42)]


@pytest.mark.parametrize("args,message", [
    (("a,b", 1, "7,7"), "collision"),
    (("a,a", 1, ""), "duplicate robot namespaces"),
    (("a,b", 1, "7"), "1 robot_ids for 2 robots"),
    (("0", 1, ""), "at least one robot"),
    (("2", 0, ""), "outside"),
    (("a,b", 1, "x,y"), "expected integers"),
])
def test_plan_fleet_refuses_bad_fleets(args, message):
    robots, base, ids = args
    with pytest.raises(ValueError, match=message):
        plan_fleet(robots, robot_id_base=base, robot_ids=ids)


# --- timing decisions and server messages ------------------------------------------------------


def test_keepalive_is_due_after_a_fraction_of_the_server_idle_time():
    timing = SequenceTiming(max_idle_s=5.0, keepalive_fraction=0.5, end_after_silence_s=0.0)
    assert timing.keepalive_interval_s == 2.5
    assert timing.action(now=12.4, last_request=10.0, last_frame=10.0, can_keepalive=True) is None
    assert timing.action(12.5, 10.0, 10.0, True) == "keepalive"
    assert timing.action(12.5, 10.0, 10.0, can_keepalive=False) is None
    assert SequenceTiming(5.0, 0.0).action(100.0, 0.0, 0.0, True) is None  # disabled


def test_a_silent_stream_is_ended_even_while_keepalives_flow():
    timing = SequenceTiming(max_idle_s=5.0, keepalive_fraction=0.5, end_after_silence_s=8.0)
    # keep-alives went out (last_request recent) but no frame for 8 s: END
    assert timing.action(now=18.0, last_request=17.0, last_frame=10.0, can_keepalive=True) == "end"
    assert timing.action(17.9, 17.0, 10.0, True) is None


def test_the_server_dropped_message_is_recognized():
    assert is_sequence_dropped(DROPPED_2_51)
    assert is_sequence_dropped("sequence 7 has no state on simple_tracker_0_1 (instance "
                               "restarted): inference request must specify the START flag")
    assert not is_sequence_dropped("Request for unknown model: 'simple_tracker' is not found")


def test_make_transport_refuses_unknown_protocols():
    with pytest.raises(ValueError, match="not in"):
        make_transport("udp", "127.0.0.1:8001")


# --- the tracker model's core ------------------------------------------------------------------


def _walk(start, step, frames):
    """Box [x1, y1, x2, y2] moving by ``step`` per frame."""
    start, step = np.asarray(start, float), np.asarray(step, float)
    return [start + i * np.r_[step, step] for i in range(frames)]


def test_tracker_keeps_ids_of_moving_objects():
    tracker = tracker_core.SequenceTracker()
    a = _walk([0, 0, 40, 80], [6, 0], 12)
    b = _walk([200, 50, 240, 130], [-6, 2], 12)
    for i in range(12):
        order = [a[i], b[i]] if i % 2 == 0 else [b[i], a[i]]  # detection order changes
        ids = tracker.update(np.array(order), [0.9, 0.8], [1, 1])
        expected = [1, 2] if i % 2 == 0 else [2, 1]
        assert list(ids) == expected, f"frame {i}"
    assert tracker.frames == 12


def test_tracker_separates_classes_and_never_reuses_ids():
    tracker = tracker_core.SequenceTracker(max_misses=1)
    box = np.array([[10, 10, 50, 50]], float)
    assert list(tracker.update(box, [0.9], [1])) == [1]
    assert list(tracker.update(box, [0.9], [2])) == [2], "another class is another object"
    assert list(tracker.update(np.zeros((0, 4)), [], [])) == []
    assert list(tracker.update(np.zeros((0, 4)), [], [])) == []  # both tracks now dropped
    assert list(tracker.update(box, [0.9], [1])) == [3]


def test_tracker_coasts_through_a_missed_detection():
    tracker = tracker_core.SequenceTracker(max_misses=2)
    path = _walk([0, 0, 40, 80], [5, 0], 6)
    ids = [tracker.update(path[i][None], [0.9], [0])[0] if i != 3
           else (tracker.update(np.zeros((0, 4)), [], []), None)[1] for i in range(6)]
    assert ids == [1, 1, 1, None, 1, 1]


def test_tracker_weak_unmatched_detections_stay_untracked():
    tracker = tracker_core.SequenceTracker(min_score=0.5)
    ids = tracker.update(np.array([[0, 0, 10, 10], [100, 100, 120, 120]], float), [0.9, 0.2],
                         [0, 0])
    assert list(ids) == [1, 0]


def test_tracker_parameters_come_from_the_model_config():
    tracker = tracker_core.SequenceTracker.from_parameters({"iou_threshold": "0.6",
                                                            "max_misses": "2"})
    assert (tracker.iou_threshold, tracker.max_misses) == (0.6, 2)
    with pytest.raises(ValueError, match="one row per detection"):
        tracker.update(np.zeros((2, 4)), [0.5], [1, 1])


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    assert np.allclose(tracker_core.iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])
    assert tracker_core.iou_matrix(a, np.zeros((0, 4))).shape == (1, 0)


# --- the motion model's core -------------------------------------------------------------------


def test_motion_window_scores_still_shaking_and_a_jolt():
    rng = np.random.default_rng(7)
    window = motion_core.MotionWindow(window=20)
    still = np.array([0, 0, 9.81, 0, 0, 0]) + rng.normal(0, 0.01, (30, 6))
    motion, anomaly = window.update(still)
    assert motion < 0.05 and anomaly < 10
    jolt = still[-1:] + [5, 0, 0, 0, 0, 0]
    _, anomaly = window.update(jolt)
    assert anomaly > 10, "a jolt in a steady stream is an anomaly"
    shaking = still + rng.normal(0, 2.0, still.shape)
    motion, _ = window.update(shaking)
    assert motion > 0.5
    assert len(window.changes) == 20 and window.samples == 61


def test_motion_window_empty_update_changes_nothing_and_layout_is_fixed():
    window = motion_core.MotionWindow()
    assert window.update(np.zeros((0, 0))) == (0.0, 0.0)
    window.update(np.ones((3, 6)))
    assert window.samples == 3
    with pytest.raises(ValueError, match="started with 6 features"):
        window.update(np.ones((1, 360)))
    with pytest.raises(ValueError, match="finite"):
        window.update(np.full((1, 6), np.inf))
