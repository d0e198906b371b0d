"""The ``main()`` shared by this package's nodes: spin, clean shutdown, configuration errors."""
import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.signals import SignalHandlerOptions

try:
    from rclpy._rclpy_pybind11 import RCLError
except ImportError:  # older rclpy
    from rclpy.exceptions import RCLError  # type: ignore[no-redef]

from triton_ros.ros.params import ParameterError


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def init(args, name: str) -> bool:
    """``rclpy.init`` for a main(); False (after one line on stderr) for rejected ROS arguments.

    SIGINT/SIGTERM raise KeyboardInterrupt here instead of shutting the ROS context down from
    rclpy's own handler: the nodes' shutdown then runs while the context (and /rosout) is still
    valid, so its last log lines do not end in "Failed to publish log message to rosout".
    """
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except RCLError as exc:  # bad --ros-args (e.g. --log-level verbose): one line, no traceback
        reason = str(exc).split(", at ")[0]
        print(f"[{name}] invalid ROS arguments: {reason}", file=sys.stderr, flush=True)
        return False
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    return True


#: glibc mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def reuse_large_buffers(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Let glibc serve buffers up to ``mmap_threshold`` bytes from its heap and keep up to
    ``trim_threshold`` bytes free there, instead of mmap()/munmap() per buffer.

    Every image reaches Python through fresh multi-MB buffers (Fast DDS -> rmw -> rclpy bytes:
    three copies of a 6 MB 1080p frame); with glibc's defaults each is a new mapping whose pages
    fault in (zeroed by the kernel) on every frame. Reusing heap memory avoids that
    (bench/README.md: node CPU per 1080p frame). Not a library: mallopt is one libc call, made
    by hand. No-op off glibc or with ``TRITON_ROS_MALLOC=default``. Returns whether it applied.
    """
    if os.environ.get("TRITON_ROS_MALLOC") == "default":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): leave it
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def resolved_name(name: str) -> str:
    """The full name (namespace and ``__node`` remaps applied) a node called ``name`` gets here.

    For messages about a node whose construction failed: rcl resolves the name only when a node
    is created, so a throw-away node without rosout or parameter services is created for it
    (only on that error path). ``name`` itself when even that fails.
    """
    try:
        probe = rclpy.create_node(name, enable_rosout=False, start_parameter_services=False)
    except Exception:  # noqa: BLE001 - any rcl failure: keep the default name in the message
        return name
    try:
        return probe.get_fully_qualified_name()
    finally:
        probe.destroy_node()


def run_node(node_class, args=None,
             config_errors: tuple[type[BaseException], ...] = (ParameterError, ValueError),
             start: Callable | None = None) -> int:
    """Construct ``node_class()``, call ``start(node)`` if given, spin until Ctrl-C/shutdown.

    A configuration error (``config_errors``, raised while constructing or starting) prints one
    line ``[<full node name>] configuration error: ...`` (e.g. ``[/robot1/triton_detect]``, the
    name after namespace and ``__node`` remaps) and returns 2; so do ROS arguments rcl rejects
    (``[<NODE_NAME>] invalid ROS arguments: ...``: rcl parsed no name then). After a successful
    construction ``node.shutdown()`` always runs (workers stopped, final counters printed).
    """
    name = getattr(node_class, "NODE_NAME", node_class.__name__)
    if not init(args, name):
        return 2
    node = None
    try:
        node = node_class()
        if start is not None:
            start(node)
        rclpy.spin(node)
    except config_errors as exc:
        where = node.get_fully_qualified_name() if node is not None else resolved_name(name)
        print(f"[{where}] configuration error: {exc}", file=sys.stderr, flush=True)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
