"""replay's Answers: which input frame each answer belongs to (ROS-free; answers are added as the
executor thread adds them). Lock-step takes the answer that arrived after its frame was sent;
frames that share a stamp keep their own answers."""
import threading

from triton_ros.tools.replay import Answers, repeated_stamps

T = "/camera/detections"


def test_lock_step_takes_the_answer_that_arrived_after_the_frame_was_sent():
    answers = Answers([T])
    for frame, name in enumerate(["a", "b", "c"]):  # three frames, all stamp 0
        marks = answers.marks()
        timer = threading.Timer(0.01, answers.add, (T, 0, [name], name.encode()))
        timer.start()
        assert answers.wait_for_frame(frame, 0, marks, timeout_s=5)
        timer.join()
    assert [a[1] for a in answers.per_frame(T, 3)] == [["a"], ["b"], ["c"]]
    assert answers.unused(T) == 0


def test_lock_step_timeout_records_nothing_and_a_late_answer_goes_to_its_own_stamp():
    answers = Answers([T])
    assert not answers.wait_for_frame(0, 10, answers.marks(), timeout_s=0.05)
    marks = answers.marks()
    answers.add(T, 10, ["late for frame 0"], b"")  # arrives while frame 1 (stamp 20) waits
    answers.add(T, 20, ["frame 1"], b"")
    assert answers.wait_for_frame(1, 20, marks, timeout_s=1)
    assert answers.per_frame(T, 2)[0] is None
    answers.match_remaining([10, 20])
    assert [a[1] for a in answers.per_frame(T, 2)] == [["late for frame 0"], ["frame 1"]]


def test_paced_answers_to_a_shared_stamp_are_matched_in_publish_order():
    answers = Answers([T])
    for name in ("first", "second"):
        answers.add(T, 5, [name], b"")
    answers.add(T, 7, ["other"], b"")
    answers.add(T, 7, ["duplicate answer"], b"")  # a second answer no frame takes
    answers.match_remaining([5, 7, 5])
    assert [a[1] for a in answers.per_frame(T, 3)] == [["first"], ["other"], ["second"]]
    assert answers.unused(T) == 1
    assert answers.wait_all([5, 7, 5], timeout_s=0.1)


def test_repeated_stamps_lists_every_frame_after_the_first_with_its_stamp():
    assert repeated_stamps([(1, "f"), (2, "f"), (1, "f"), (1, "f")]) == [2, 3]
    assert repeated_stamps([(0, "f")] * 3) == [1, 2]
    assert repeated_stamps([(1, "f"), (2, "f")]) == []
