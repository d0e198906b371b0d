"""ament_python packaging: `colcon build` on a ROS distribution, `pip install .` in the venv."""
from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = "triton_ros"


def tree(src: str) -> list[tuple[str, list[str]]]:
    """data_files entries that install ``src`` (recursively) under share/triton_ros/src."""
    entries = []
    for folder, _, files in os.walk(src):
        files = [os.path.join(folder, f) for f in files if "__pycache__" not in folder]
        if files:
            entries.append((os.path.join("share", PACKAGE, folder), files))
    return entries


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        *tree("config"),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="triton_ros maintainers",
    maintainer_email="maintainers@triton-ros.dev",
    description="Bridge ROS 2 camera and sensor topics to NVIDIA Triton Inference Server",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "detect_node = triton_ros.ros.detect_node:main",
            "track_node = triton_ros.ros.track_node:main",
            "tensor_node = triton_ros.ros.tensor_node:main",
            "sensor_sequence_node = triton_ros.ros.sensor_sequence_node:main",
            "container = triton_ros.ros.container:main",
            "local_triton_server = triton_ros.tools.local_server:main",
            "make_sample_bag = triton_ros.tools.make_sample_bag:main",
            "replay = triton_ros.tools.replay:main",
            "compare = triton_ros.tools.compare:main",
        ],
        # No pytest11 entry for triton_ros.testing: an auto-loaded plugin would import the
        # installed triton_ros before a checkout's conftest puts the source tree first. Packages
        # opt in with pytest_plugins = ["triton_ros.testing"] (docs/replay.md).
    },
)
