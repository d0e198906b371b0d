"""Environment for processes this project starts: localhost-only DDS and a private domain id.

Every ROS 2 process started by the demo, the tests and the benchmarks gets its environment from
:func:`localhost_ros_env`, so no discovery or data traffic leaves the loopback interface.
"""
import os
import random

from triton_ros.resources import config_path

DDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"


def localhost_ros_env(domain_id: int | None = None, base: dict | None = None) -> dict:
    """Return a copy of ``base`` (default: os.environ) set up for loopback-only Fast DDS.

    ``domain_id``: ROS_DOMAIN_ID to use; default keeps an already set one, else picks one in
    [1, 100] at random. LD_LIBRARY_PATH is kept (the rclpy wheels need it).
    """
    env = dict(os.environ if base is None else base)
    env[DDS_PROFILE_ENV] = str(config_path("fastdds-localhost.xml"))
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    env.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
    env.pop("ROS_STATIC_PEERS", None)
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    elif "ROS_DOMAIN_ID" not in env or not env["ROS_DOMAIN_ID"]:
        env["ROS_DOMAIN_ID"] = str(random.randint(1, 100))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def apply_localhost_ros_env(domain_id: int | None = None) -> dict:
    """Set this process's environment (before rclpy.init) like :func:`localhost_ros_env`."""
    env = localhost_ros_env(domain_id)
    os.environ.update(env)
    return env
