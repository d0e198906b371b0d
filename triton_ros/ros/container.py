"""container: several of this package's nodes in ONE process, spun by a MultiThreadedExecutor.

``container detect track [sensor] [--threads N] --ros-args ...``: each named node is constructed
once in this process (``detect`` = triton_detect, ``track`` = triton_track, ``sensor`` =
triton_sensor_sequence) and started as its own ``main`` would (autostart). The ``--ros-args``
apply to every node; give one node its own with node-keyed parameter files
(``/robot1/triton_track: ros__parameters: ...``) or node-targeted remaps
(``-r triton_detect:image:=/camera/image_raw``, ``-r triton_sensor_sequence:__node:=imu_motion``).

What it saves and costs: one Python interpreter, rclpy and DDS participant set instead of one
per node (see the README's measurement). Messages between the nodes still go through DDS
(rclpy has no intra-process transport). A configuration error of any node exits 2 with one line
naming it, before anything spins.
"""
import argparse
import importlib
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn

from triton_ros.model_spec import ModelSpecError
from triton_ros.ros.params import ParameterError
from triton_ros.ros.runner import init, resolved_name, reuse_large_buffers

#: command-line name -> (module, class)
NODES = {
    "detect": ("triton_ros.ros.detect_node", "DetectNode"),
    "track": ("triton_ros.ros.track_node", "TrackNode"),
    "sensor": ("triton_ros.ros.sensor_sequence_node", "SensorSequenceNode"),
}
CONFIG_ERRORS = (ParameterError, ModelSpecError, ValueError, FileNotFoundError)


def start(node) -> None:
    """Autostart ``node`` as its own main() does (ValueError when a sequence node can't)."""
    if hasattr(node, "autostart") and callable(node.autostart):   # detect_node
        node.autostart()
    elif node.params.get("autostart", False):                       # sequence nodes
        if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise ValueError(node.last_error or "configure failed")
        node.trigger_activate()


def main(argv=None) -> int:
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(prog="container", description=__doc__.splitlines()[0])
    parser.add_argument("nodes", nargs="+", choices=sorted(NODES), help="nodes to run")
    parser.add_argument("--threads", type=int, default=None,
                        help="executor threads (default: rclpy's, the CPU count)")
    args = parser.parse_args(rclpy.utilities.remove_ros_args(argv)[1:])
    if len(set(args.nodes)) != len(args.nodes):
        parser.error("each node at most once (rename one with -r <name>:__node:=<new>)")
    if not init(argv, "container"):  # Ctrl-C: nodes shut down while /rosout still works
        return 2
    if "detect" in args.nodes:
        reuse_large_buffers()  # as detect_node's own main()
    nodes, current = [], None
    try:
        for kind in args.nodes:
            module, cls = NODES[kind]
            node_class = getattr(importlib.import_module(module), cls)
            current = getattr(node_class, "NODE_NAME", kind)  # its full name: resolved below
            nodes.append(node_class())
        for node in nodes:
            current = node.get_fully_qualified_name()
            start(node)
        current = None
        executor = MultiThreadedExecutor(num_threads=args.threads)
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except CONFIG_ERRORS as exc:
        where = resolved_name(current) if current and not current.startswith("/") else current
        print(f"[container] configuration error in {where}: {exc}", file=sys.stderr,
              flush=True)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in reversed(nodes):
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
