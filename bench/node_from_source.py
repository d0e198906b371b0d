"""``python -m node_from_source --ros-args ...``: the detect node from the source tree named by
``TRITON_ROS_NODE_SOURCE`` (a copy of another commit), for before/after runs in one benchmark
(``bench_encoded.py --node-ab``). That tree goes first on sys.path, ahead of the working
directory that ``python -m`` puts there."""
import os
import runpy
import sys

sys.path.insert(0, os.environ["TRITON_ROS_NODE_SOURCE"])
runpy.run_module("triton_ros.ros.detect_node", run_name="__main__", alter_sys=True)
