"""The pieces every launch file of this package is assembled from (needs ``launch``/``launch_ros``).

A launch file here is a short list: its own arguments (plus the common ones below) and one
``setup(context)`` that returns nodes made by :func:`ros_node`. :func:`assemble` adds what every
file must have, so none can forget it:

- :func:`reject_undeclared`: first of all, an argument the file does not declare fails the launch
  with the list of valid ones (``ros2 launch`` itself accepts and ignores any ``name:=value``);
- the common arguments with declared ``choices`` (:func:`log_level_argument`: a typo is an error
  naming the choices, not an RCLError traceback from the node; :func:`bool_argument`);
- :func:`ros_node` / :func:`fail_on_error_exit`: every node gets the log level and an exit check
  (a node exiting non-zero stops the launch and ``ros2 launch`` returns non-zero: launch returns 0
  after a plain ``Shutdown``; an exception raised while handling the exit event is what sets its
  return code to 1);
- :func:`node_parameters`: one parameter dict per node, layered by :mod:`triton_ros.param_layers`
  (defaults < params_file < preset < explicit arguments, whatever the files' node keys);
  :func:`given_overrides` converts the explicit (non-empty) arguments to parameter types.

Which launch configurations count as "given" (:func:`reject_undeclared`): all those visible when
the file starts, less launch_ros' own scoping entries (``ros_namespace``, ``ros_remaps``,
``global_params``), ``ros2 launch``'s ``launch-prefix`` options, and the names an enclosing launch
file of THIS package declared (it records them in :data:`KNOWN_KEY`; tracking.launch.py includes
detect.launch.py that way). At the top level (``ros2 launch``, ``launch_test``) and under a
``GroupAction(forwarding=False)`` (the README's include pattern) that is exactly what was passed
to the file. A forwarding include from another package's file also shows that file's own
configurations: names this file does not declare then fail too — include it with
``forwarding=False`` (or name the extra ones in :data:`KNOWN_KEY`, comma-separated).
"""
import os
import tempfile

import yaml
from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, GroupAction, OpaqueFunction,
                            RegisterEventHandler, SetLaunchConfiguration)
from launch.event_handlers import OnProcessExit, OnShutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node, PushRosNamespace
from launch_ros.utilities import make_namespace_absolute, prefix_namespace

from triton_ros.model_parameters import parse_bool
from triton_ros.param_layers import ParamFileError, full_name, layer

PACKAGE = 'triton_ros'
LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal']
BOOL_CHOICES = ['true', 'false']
#: launch configuration naming the arguments an enclosing launch file of this package declared
KNOWN_KEY = 'triton_ros_known_arguments'
#: configurations set by launch_ros scoping actions and by ``ros2 launch`` options, not arguments
NOT_ARGUMENTS = frozenset({'ros_namespace', 'ros_remaps', 'global_params', 'emulate_tty',
                           'launch-prefix', 'launch-prefix-filter', KNOWN_KEY})


class NodeExitError(RuntimeError):
    """A node of the launch exited with a non-zero code."""


class UndeclaredArgumentError(RuntimeError):
    """A launch argument the launch file does not declare."""


# --- Values -----------------------------------------------------------------------------------


def arg(context, name: str) -> str:
    """The stripped string value of launch argument ``name``."""
    return LaunchConfiguration(name).perform(context).strip()


def to_bool(value: str) -> bool:
    """'true'/'1'/'yes'/'on' -> True, 'false'/'0'/'no'/'off' -> False (ValueError otherwise)."""
    try:
        return parse_bool(value)
    except ValueError:
        raise ValueError(f"expected true or false, got '{value}'") from None


def to_list(value: str) -> list:
    """'["a", "b"]' (YAML, upstream's style), 'a, b' or 'a' -> list of non-empty strings."""
    value = value.strip()
    if value.startswith('['):
        parsed = yaml.safe_load(value)
        if not isinstance(parsed, list):
            raise ValueError(f"expected a list, got '{value}'")
        return [str(item) for item in parsed if str(item)]
    return [item.strip() for item in value.split(',') if item.strip()]


def given_overrides(context, conversions: dict, names=None) -> dict:
    """{name: converted value} for the arguments of ``conversions`` given non-empty.

    ``conversions`` maps an argument to the function that turns its string into the parameter's
    type (str, float, :func:`to_bool`, :func:`to_list`); an empty list is left out.
    RuntimeError names the argument when a conversion fails.
    """
    overrides = {}
    for name in (conversions if names is None else names):
        value = arg(context, name)
        if not value:
            continue
        try:
            converted = conversions[name](value)
        except (ValueError, yaml.YAMLError) as error:
            raise RuntimeError(f"invalid value for '{name}': {error}") from None
        if converted != []:
            overrides[name] = converted
    return overrides


# --- Arguments --------------------------------------------------------------------------------


def log_level_argument(description='Logging level: debug, info, warn, error or fatal.'):
    return DeclareLaunchArgument('log_level', default_value='info', choices=LOG_LEVELS,
                                 description=description)


def namespace_argument(description='Namespace pushed for the node(s), relative to any '
                                   'enclosing one. Empty for none.'):
    return DeclareLaunchArgument('namespace', default_value='', description=description)


def bool_argument(name: str, default: str, description: str):
    """A true/false argument; '' among the choices when ``default`` is '' (= leave unset)."""
    choices = ([''] if default == '' else []) + BOOL_CHOICES
    return DeclareLaunchArgument(name, default_value=default, choices=choices,
                                 description=description)


def use_sim_time_argument():
    return bool_argument('use_sim_time', '', 'Use /clock time (true/false). Empty leaves it '
                                             'unset here (an enclosing SetParameter decides).')


def autostart_argument():
    return bool_argument(
        'autostart', '', 'Configure and activate the node(s) at start (true; the nodes\' '
        'default) or wait for lifecycle transitions, e.g. from nav2\'s lifecycle_manager '
        '(false). Empty keeps the params_file/preset value.')


def declared_names(entities) -> list:
    """Names of the DeclareLaunchArgument actions among ``entities``."""
    return [e.name for e in entities if isinstance(e, DeclareLaunchArgument)]


def reject_undeclared(declared) -> OpaqueFunction:
    """An action failing the launch when a given argument is not in ``declared`` (see module)."""
    declared = sorted(set(declared))

    def check(context):
        known = set(declared) | set(filter(None, context.launch_configurations.get(
            KNOWN_KEY, '').split(',')))
        unknown = sorted(set(context.launch_configurations) - NOT_ARGUMENTS - known)
        if unknown:
            file = context.get_locals_as_dict().get('current_launch_file_path')
            where = os.path.basename(file) if file else 'this launch file'
            raise UndeclaredArgumentError(
                f"{where}: unknown argument(s) {', '.join(unknown)}; valid arguments: "
                f"{', '.join(declared)} (ros2 launch {PACKAGE} {where} --show-args describes "
                'them; included from a launch file of your own: include it under '
                'GroupAction(forwarding=False), README "Including into a robot stack")')
        # Includes made by this file see these names as its own, not as given to them.
        return [SetLaunchConfiguration(KNOWN_KEY, ','.join(sorted(known)))]

    return OpaqueFunction(function=check)


def assemble(arguments: list, setup) -> LaunchDescription:
    """The launch description: the undeclared-argument check, ``arguments``, then ``setup``.

    ``setup(context)`` returns the actions (see :func:`ros_node`, :func:`group`).
    """
    return LaunchDescription([reject_undeclared(declared_names(arguments)), *arguments,
                              OpaqueFunction(function=lambda context: setup(context))])


# --- Nodes ------------------------------------------------------------------------------------


def _exit_check(event, context):
    # 0, or stopped by the launch's SIGINT/SIGTERM: killed by it (-2, -15) or handled it and
    # exited 128 + signal (the tools: local_server, wait_ready).
    if event.returncode not in (0, None, -2, -15, 130, 143):
        raise NodeExitError(f'{event.action.name} exited with code {event.returncode}; '
                            'stopping the launch (see its last output above)')
    return None


def fail_on_error_exit(process) -> RegisterEventHandler:
    """Stop the launch with a non-zero return code when ``process`` exits non-zero."""
    return RegisterEventHandler(OnProcessExit(target_action=process, on_exit=_exit_check))


def log_arguments(context) -> list:
    """``--ros-args --log-level <log_level>`` (or nothing when the argument is empty)."""
    level = arg(context, 'log_level')
    return ['--ros-args', '--log-level', level] if level else []


def ros_node(context, executable: str, name: str | None, parameters: list, remappings=(),
             arguments=()) -> list:
    """[the Node, its exit check]: output on screen, the file's ``log_level``.

    ``name`` None keeps the executable's own node names (a container of several nodes).
    """
    node = Node(package=PACKAGE, executable=executable, name=name, output='screen',
                parameters=parameters, remappings=list(remappings),
                arguments=list(arguments) + log_arguments(context))
    return [node, fail_on_error_exit(node)]


def group(namespace: str, actions: list) -> list:
    """One scoped GroupAction, pushing ``namespace`` first when it is not empty."""
    return [GroupAction(([PushRosNamespace(namespace)] if namespace else []) + list(actions))]


def remove_at_shutdown(path: str) -> RegisterEventHandler:
    """Delete the temporary file ``path`` when the launch shuts down."""
    def remove(event, context):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    return RegisterEventHandler(OnShutdown(on_shutdown=remove))


def temporary_parameter_file(sections: dict) -> tuple[str, RegisterEventHandler]:
    """Write ``{node key: {'ros__parameters': ...}}`` to a temporary YAML file.

    Returns its path and the action that removes it at shutdown (add both to the launch).
    """
    with tempfile.NamedTemporaryFile('w', prefix='triton_ros_container_', suffix='.yaml',
                                     delete=False) as stream:
        yaml.safe_dump(sections, stream)
    return stream.name, remove_at_shutdown(stream.name)


# --- Parameters -------------------------------------------------------------------------------


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


def share_file(*parts: str) -> str:
    """A file of this package's share directory, or '' when the package is not installed."""
    try:
        return os.path.join(get_package_share_directory(PACKAGE), *parts)
    except (PackageNotFoundError, OSError):
        return ''


def _preset_dirs(launch_file: str) -> list:
    """Directories that may hold preset files, best first: beside the launch file, then share."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(launch_file)))  # <share or source>
    dirs = [os.path.join(root, 'config', 'presets')]
    share = share_file('config', 'presets')
    if share and os.path.realpath(share) != os.path.realpath(dirs[0]):
        dirs.append(share)
    return dirs


def resolve_preset(preset: str, launch_file: str) -> str | None:
    """The YAML file for a preset name or path (None for ''); RuntimeError listing the presets."""
    preset = preset.strip()
    if not preset:
        return None
    if os.sep in preset:
        if not os.path.isfile(preset):
            raise RuntimeError(f"preset file '{preset}' does not exist")
        return os.path.abspath(preset)
    name = preset if preset.endswith(('.yaml', '.yml')) else preset + '.yaml'
    available = set()
    for directory in _preset_dirs(launch_file):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
        if os.path.isdir(directory):
            available.update(os.path.splitext(f)[0] for f in os.listdir(directory)
                             if f.endswith(('.yaml', '.yml')))
    raise RuntimeError(
        f"unknown preset '{preset}'; available: {', '.join(sorted(available)) or 'none'}")
