"""Launch the triton_ros detection node (``detect_node``, node name ``triton_detect``).

Parameters are layered, later layers winning, for any combination of files:

1. the node's declared defaults,
2. ``params_file`` (default: ``share/triton_ros/config/detect.yaml``; a missing file is an error),
3. ``preset`` (a file of ``config/presets/``, or a path to a YAML file),
4. explicit launch arguments (``server_url``, ``protocol``, ...), passed on only
   when they are given (non-empty).

The files may be keyed ``/**``, by the node's full name (``/robot1/triton_detect``), with
``*``/``**`` wildcards or nested namespaces: the launch file keeps what applies to this node
(wildcard keys first, exact names over them) and passes ONE merged dict
(:mod:`triton_ros.param_layers`). It does not rely on ``--params-file`` order, because rclpy
applies file keys in order of first appearance across all files.

A node exiting non-zero (e.g. 2, a configuration error) stops the launch and ``ros2 launch``
returns non-zero; ``log_level`` and the boolean arguments have declared choices.

Examples::

    ros2 launch triton_ros detect.launch.py preset:=jetson image_topic:=/camera/image_raw
    ros2 launch triton_ros detect.launch.py namespace:=robot1 server_url:=10.0.0.5:8001

To compose into a larger stack, make sure none of the including file's launch configurations
reach this file (else its own ``namespace``, ``params_file``, ``use_sim_time`` or ``log_level``
arguments leak in; a ``namespace`` is then applied twice). Either give EVERY argument of this
file (``generate_launch_description().get_launch_arguments()`` lists them with their defaults;
tracking.launch.py does this), which keeps an enclosing ``PushRosNamespace``/``SetRemap``/
``SetParameter`` in force, or include it under a GroupAction that does not forward them::

    GroupAction(scoped=True, forwarding=False, actions=[
        PushRosNamespace('robotB'),
        SetRemap('image', '/robotB/camera/image_raw'),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(detect_launch_py),
            launch_arguments={'preset': 'jetson', 'server_url': '10.0.0.5:8001'}.items()),
    ])

(``forwarding=False`` also drops ``SetParameter``/``PushRosNamespace``/``SetRemap`` of the
enclosing file: put them inside the group, as above.)
"""

import os

from ament_index_python.packages import get_package_share_directory
from ament_index_python.packages import PackageNotFoundError
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import GroupAction
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.actions import PushRosNamespace
from launch_ros.substitutions import FindPackageShare

from triton_ros.ros.launch_support import fail_on_error_exit
from triton_ros.ros.launch_support import LOG_LEVELS
from triton_ros.ros.launch_support import node_parameters

PACKAGE = 'triton_ros'
EXECUTABLE = 'detect_node'
NODE_NAME = 'triton_detect'

_TRUE = ('true', '1', 'yes', 'on')
_FALSE = ('false', '0', 'no', 'off')


def _to_bool(value):
    """Convert a launch string to bool."""
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true or false, got '{value}'")


def _to_list(value):
    """Convert 'front, rear:compressed' to ['front', 'rear:compressed']."""
    return [item.strip() for item in value.split(',') if item.strip()]


# Launch arguments that override a parameter only when non-empty, with the
# function that converts the launch string to the parameter's type.
OVERRIDES = {
    'server_url': str,
    'protocol': str,
    'model_name': str,
    'model_version': str,
    'score_threshold': float,
    'use_sim_time': _to_bool,
    'cameras': _to_list,
}


def _preset_dirs():
    """Return directories that may hold preset files, best first."""
    # The launch file sits in <share or source>/launch/, next to config/.
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs = [os.path.join(here, 'config', 'presets')]
    try:
        share = os.path.join(get_package_share_directory(PACKAGE), 'config', 'presets')
    except (PackageNotFoundError, OSError):
        share = None
    if share and os.path.realpath(share) != os.path.realpath(dirs[0]):
        dirs.append(share)
    return dirs


def resolve_preset(preset):
    """Return the YAML file for a preset name or path, or None for ''."""
    preset = preset.strip()
    if not preset:
        return None
    if os.sep in preset:
        if not os.path.isfile(preset):
            raise RuntimeError(f"preset file '{preset}' does not exist")
        return os.path.abspath(preset)
    name = preset if preset.endswith(('.yaml', '.yml')) else preset + '.yaml'
    available = set()
    for directory in _preset_dirs():
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
        if os.path.isdir(directory):
            available.update(
                os.path.splitext(f)[0] for f in os.listdir(directory)
                if f.endswith(('.yaml', '.yml')))
    raise RuntimeError(
        f"unknown preset '{preset}'; available: {', '.join(sorted(available)) or 'none'}")


def build_parameters(context, namespace=''):
    """Return the Node parameter list: ONE dict, params_file < preset < given overrides."""
    params_file = LaunchConfiguration('params_file').perform(context).strip()
    preset_file = resolve_preset(LaunchConfiguration('preset').perform(context))
    overrides = {}
    for name, convert in OVERRIDES.items():
        value = LaunchConfiguration(name).perform(context).strip()
        if value:
            try:
                overrides[name] = convert(value)
            except ValueError as error:
                raise RuntimeError(f"invalid value for '{name}': {error}") from error
    return node_parameters(context, NODE_NAME, namespace, [params_file, preset_file],
                           overrides)


def launch_setup(context, *args, **kwargs):
    """Build the detection node from the evaluated launch arguments."""
    namespace = LaunchConfiguration('namespace').perform(context).strip()
    log_level = LaunchConfiguration('log_level').perform(context).strip()
    node = Node(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=NODE_NAME,
        output='screen',
        parameters=build_parameters(context, namespace),
        remappings=[
            ('image', LaunchConfiguration('image_topic').perform(context)),
            ('image/compressed',
             LaunchConfiguration('image_topic').perform(context) + '/compressed'),
            ('detections', LaunchConfiguration('detections_topic').perform(context)),
        ],
        arguments=['--ros-args', '--log-level', log_level] if log_level else [],
    )
    actions = [PushRosNamespace(namespace)] if namespace else []
    return [GroupAction(actions + [node, fail_on_error_exit(node)])]


def generate_launch_description():
    """Declare the launch arguments and the detection node."""
    default_params = PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', 'detect.yaml'])
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value=default_params,
            description='Parameter YAML file applied first (lowest precedence).'),
        DeclareLaunchArgument(
            'preset', default_value='',
            description='Preset applied over params_file: a name in config/presets/ '
                        '(jetson, isaac_ros, remote_server) or a path to a YAML file. '
                        'Empty for none.'),
        DeclareLaunchArgument(
            'server_url', default_value='',
            description='Triton server host:port (gRPC usually 8001, HTTP 8000). '
                        'Empty keeps the params_file/preset value.'),
        DeclareLaunchArgument(
            'protocol', default_value='', choices=['', 'grpc', 'http'],
            description='Triton client protocol. Empty keeps the params_file/preset value.'),
        DeclareLaunchArgument(
            'model_name', default_value='',
            description='Model name in the Triton repository. '
                        'Empty keeps the params_file/preset value.'),
        DeclareLaunchArgument(
            'model_version', default_value='',
            description='Model version. Empty keeps the params_file/preset value '
                        '(whose own empty value means latest).'),
        DeclareLaunchArgument(
            'score_threshold', default_value='',
            description='Minimum detection score. Empty keeps the params_file/preset value.'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='',
            description='Use /clock time (true/false). Empty leaves it unset here.'),
        DeclareLaunchArgument(
            'cameras', default_value='',
            description='Comma-separated camera names for one multi-camera node, e.g. '
                        '"front,rear:compressed" (topics <camera>/image -> '
                        '<camera>/detections). Empty: one camera on image_topic.'),
        DeclareLaunchArgument(
            'image_topic', default_value='image',
            description='Input sensor_msgs/Image topic, remapped onto the relative "image".'),
        DeclareLaunchArgument(
            'detections_topic', default_value='detections',
            description='Output vision_msgs/Detection2DArray topic, remapped onto the '
                        'relative "detections".'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace pushed for the node, relative to any enclosing one. '
                        'Empty for none.'),
        DeclareLaunchArgument(
            'log_level', default_value='info', choices=LOG_LEVELS,
            description='Logging level: debug, info, warn, error or fatal.'),
        OpaqueFunction(function=launch_setup),
    ])
