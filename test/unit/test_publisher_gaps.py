"""Unit tests for triton_ros.publisher_gaps (sequence-number gaps per publisher, no ROS)."""
from triton_ros.publisher_gaps import PublisherGaps


def test_consecutive_numbers_have_no_gap():
    gaps = PublisherGaps()
    assert [gaps.observe(b"a", n) for n in (5, 6, 7)] == [0, 0, 0]  # the first one is a baseline
    assert gaps.supported


def test_skipped_numbers_are_counted_per_publisher():
    gaps = PublisherGaps()
    assert gaps.observe(b"a", 1) == 0
    assert gaps.observe(b"b", 100) == 0
    assert gaps.observe(b"a", 4) == 2      # 2 and 3 never arrived
    assert gaps.observe(b"b", 101) == 0
    assert gaps.observe(b"a", 10) == 5


def test_older_or_repeated_numbers_are_not_gaps():
    gaps = PublisherGaps()
    gaps.observe(b"a", 10)
    assert gaps.observe(b"a", 10) == 0
    assert gaps.observe(b"a", 3) == 0
    assert gaps.observe(b"a", 12) == 1     # measured from the highest seen


def test_rmw_without_numbers():
    gaps = PublisherGaps()
    assert gaps.observe(b"a", None) == 0 and not gaps.supported


def test_forget():
    gaps = PublisherGaps()
    gaps.observe(b"a", 10)
    gaps.forget(b"a")
    assert gaps.observe(b"a", 20) == 0
