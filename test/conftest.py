"""Shared test set-up: localhost-only DDS for every ROS 2 process, and the source tree on sys.path.

The environment is set here, at import, before any test imports rclpy: Fast DDS gets the project's
loopback-only profile and a private ROS_DOMAIN_ID (TRITON_ROS_TEST_DOMAIN, else a free one in
1-100, see :func:`reserve_domain`).
"""
import fcntl
import os
import random
import socket
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from triton_ros.tools.local_env import apply_localhost_ros_env  # noqa: E402

DOMAIN_LOCKS = Path(tempfile.gettempdir()) / "triton_ros_test_domains"
_held_lock = None   # the open lock file of this session's domain (closed, i.e. released, at exit)


def domain_in_use(domain: int) -> bool:
    """True if a DDS participant already has its discovery port on ``domain`` (RTPS port rules:
    7400 + 250 * domain + 10 for participant 0's metatraffic unicast)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", 7400 + 250 * domain + 10))
        except OSError:
            return True
    return False


def reserve_domain() -> int:
    """A domain id in 1-100 that no other test session on this machine holds, locked until exit.

    A random pick alone lets two concurrent runs (several people, CI) share a domain and see each
    other's /robot1/... topics. Each session holds an flock on a per-domain file (released by the
    kernel when the process ends, even if killed) and skips domains whose discovery port is bound
    by some other DDS process. Domains <= 100 keep Fast DDS's ports below Linux's ephemeral range.
    """
    global _held_lock
    DOMAIN_LOCKS.mkdir(mode=0o1777, exist_ok=True)
    for domain in random.sample(range(1, 101), 100):
        lock = open(DOMAIN_LOCKS / f"{domain}.lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        if domain_in_use(domain):
            lock.close()
            continue
        _held_lock = lock
        return domain
    raise RuntimeError(f"no free ROS domain in 1-100 (locks in {DOMAIN_LOCKS})")


apply_localhost_ros_env(int(os.environ.get("TRITON_ROS_TEST_DOMAIN") or reserve_domain()))
os.environ.setdefault("AMENT_PREFIX_PATH", sys.prefix)
