"""reuse_large_buffers(): glibc's mallopt applied (or left alone on request)."""
import platform

import pytest

from triton_ros.ros.runner import reuse_large_buffers


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_applies_on_glibc_and_can_be_turned_off(monkeypatch):
    assert reuse_large_buffers() is True
    monkeypatch.setenv("TRITON_ROS_MALLOC", "default")
    assert reuse_large_buffers() is False
