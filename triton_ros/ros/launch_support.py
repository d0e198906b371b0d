"""Pieces shared by this package's launch files (needs ``launch``/``launch_ros``).

- :func:`node_parameters`: one parameter dict per node, layered by :mod:`triton_ros.param_layers`
  (defaults < params_file < preset < explicit arguments, whatever the files' node keys);
- :func:`fail_on_error_exit`: a node exiting non-zero stops the launch and makes ``ros2 launch``
  return non-zero (launch returns 0 after a plain ``Shutdown``; an exception raised while handling
  the exit event is what sets its return code to 1);
- :data:`LOG_LEVELS`: the ``choices`` of every ``log_level`` argument (a typo is an error naming
  the choices, not an RCLError traceback from the node).
"""
from launch.actions import RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.utilities import make_namespace_absolute, prefix_namespace

from triton_ros.param_layers import ParamFileError, full_name, layer

LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal']


class NodeExitError(RuntimeError):
    """A node of the launch exited with a non-zero code."""


def node_namespace(context, namespace: str) -> str:
    """The node's absolute namespace: enclosing PushRosNamespace + ``namespace``."""
    base = context.launch_configurations.get('ros_namespace', None)
    return make_namespace_absolute(prefix_namespace(base, namespace or None)) or '/'


def node_parameters(context, node_name: str, namespace: str, files: list,
                    overrides: dict) -> list:
    """``parameters=`` for a launch_ros Node: ``[dict]`` layered in Python (RuntimeError if bad)."""
    fqn = full_name(node_namespace(context, namespace), node_name)
    try:
        return [layer([f for f in files if f], fqn, overrides)]
    except ParamFileError as exc:
        raise RuntimeError(str(exc)) from None


def _exit_check(event, context):
    # 0, or stopped by the launch's SIGINT/SIGTERM: killed by it (-2, -15) or handled it and
    # exited 128 + signal (the tools: local_server, wait_ready).
    if event.returncode not in (0, None, -2, -15, 130, 143):
        raise NodeExitError(f'{event.action.name} exited with code {event.returncode}; '
                            'stopping the launch (see its last output above)')
    return None


def fail_on_error_exit(node) -> RegisterEventHandler:
    """Stop the launch with a non-zero return code when ``node`` exits non-zero."""
    return RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_exit_check))


def arg(context, name: str) -> str:
    """The stripped string value of launch argument ``name``."""
    return LaunchConfiguration(name).perform(context).strip()
