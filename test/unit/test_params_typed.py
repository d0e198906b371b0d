"""typed_as_string: what a shell user typed, back from the value YAML made of it (issue 17)."""
import pytest

pytest.importorskip("rclpy", reason="triton_ros.ros.params needs rclpy's Parameter types")

from triton_ros.endpoint import COMPRESSIONS, SHARED_MEMORY_MODES  # noqa: E402
from triton_ros.ros.params import typed_as_string  # noqa: E402


@pytest.mark.parametrize("value,choices,expected", [
    (False, SHARED_MEMORY_MODES, "off"),    # off/no/false: the choice's spelling
    (True, SHARED_MEMORY_MODES, "on"),      # on/yes/true
    (False, (), "false"),                   # no choices: YAML's canonical spelling
    (True, (), "true"),
    (False, COMPRESSIONS, "false"),         # choices without a false-like spelling
    (1, (), "1"),                           # model_version:=1
    (2.5, (), "2.5"),
    ("off", SHARED_MEMORY_MODES, None),     # already a string: left alone
    (["a"], (), None),
])
def test_typed_as_string(value, choices, expected):
    assert typed_as_string(value, choices) == expected
