"""Shared test set-up: localhost-only DDS for every ROS 2 process, and the source tree on sys.path.

The environment is set here, at import, before any test imports rclpy: Fast DDS gets the project's
loopback-only profile and a private ROS_DOMAIN_ID (TRITON_ROS_TEST_DOMAIN, else random 1-100).
"""
import os
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from triton_ros.tools.local_env import apply_localhost_ros_env  # noqa: E402

# Domains <= 100 keep Fast DDS's ports (7400 + 250 * id + ...) below Linux's ephemeral range.
apply_localhost_ros_env(int(os.environ.get("TRITON_ROS_TEST_DOMAIN") or random.randint(1, 100)))
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
