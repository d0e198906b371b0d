"""Claims compared by node instance: nodes of the same full name are still told apart (no ROS)."""
import pytest

from triton_ros.sequences import Claim, ClaimRegistry, CorrelationIdError, collision_text


def _claim(instance, owner="/triton_track", key="/|/dupA/detections", corrid=2304):
    return Claim("127.0.0.1:8001", "simple_tracker", corrid, owner, key, instance=instance)


def test_same_owner_and_stream_key_but_another_instance_collides():
    registry = ClaimRegistry()
    mine = _claim("host:10:aa")
    registry.claim(mine)
    assert registry.observe(mine) is None, "its own claim, heard back"
    assert registry.observe(_claim("host:11:bb")) == mine
    assert registry.observe(_claim("host:11:bb", key="/|/dupB/detections")) == mine
    assert registry.observe(_claim("host:11:bb", corrid=2305)) is None


def test_a_second_local_instance_on_the_same_sequence_is_refused():
    registry = ClaimRegistry()
    registry.claim(_claim("host:10:aa"))
    registry.claim(_claim("host:10:aa"))  # the same instance again is fine
    with pytest.raises(CorrelationIdError,
                       match=r"\[instance host:10:aa\].*\[instance host:10:cc\]"):
        registry.claim(_claim("host:10:cc"))


def test_claims_without_instance_compare_by_owner_and_stream_key():
    registry = ClaimRegistry()
    mine = _claim("host:10:aa")
    registry.claim(mine)
    assert registry.observe(_claim("")) is None, "an older publisher of the same stream"
    assert registry.observe(_claim("", owner="/robot2/triton_track")) == mine


def test_collision_text_names_both_instances():
    text = collision_text(_claim("host:10:aa"), _claim("host:11:bb", key="/|/dupB/detections"))
    assert ("/triton_track (/|/dupA/detections) [instance host:10:aa] and by /triton_track "
            "(/|/dupB/detections) [instance host:11:bb]") in text
    assert "[instance" not in collision_text(_claim(""), _claim("", owner="/b"))
