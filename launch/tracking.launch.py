"""Detect -> track for one robot: ``detect_node`` then ``track_node`` in one namespace.

``image`` -> ``triton_detect`` -> ``detections`` -> ``triton_track`` -> ``tracked_detections``,
all relative to ``namespace`` (and to any namespace pushed by an including file).
detect.launch.py is included with EVERY one of its arguments given (the include pattern of
the README), so none of this file's (or an including file's) launch configurations leak into
it, while enclosing ``PushRosNamespace``/``SetRemap``/``SetParameter`` still apply; its
parameter layering (params_file < preset < arguments) applies.
The tracker gets ``robot_id`` (unique in the fleet: it picks the correlation id, see
docs/sequences.md) and the ``server_url``/``protocol`` given here (else its defaults).
A node exiting non-zero stops the launch with a non-zero return code; an argument this file does
not declare fails the launch with the list of valid ones (:mod:`triton_ros.ros.launch_support`).
``autostart:=false`` leaves both nodes unconfigured for a lifecycle manager.

``container:=true`` runs both nodes in ONE process (the ``container`` executable, a
MultiThreadedExecutor): the same layered parameters, written as one file with a section per
node (keyed by full node name, removed when the launch shuts down), and node-targeted remaps.

Example::

    ros2 launch triton_ros tracking.launch.py namespace:=robot1 robot_id:=1 \\
        server_url:=127.0.0.1:8001 image_topic:=/robot1/camera/image_raw
"""

import importlib.util
import os

from launch.actions import DeclareLaunchArgument
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from triton_ros.ros.launch_support import (arg, assemble, autostart_argument, bool_argument,
                                           given_overrides, group, log_level_argument,
                                           namespace_argument, node_namespace, node_parameters,
                                           resolve_preset, ros_node, temporary_parameter_file,
                                           to_bool, use_sim_time_argument)

PACKAGE = 'triton_ros'
DETECT_LAUNCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'detect.launch.py')
# Arguments handed on to detect.launch.py as given here; every other argument it declares gets
# its own default explicitly (DETECT_DEFAULTS), so nothing is inherited from the context.
DETECT_ARGUMENTS = ('params_file', 'preset', 'server_url', 'protocol', 'model_name',
                    'image_topic', 'autostart', 'use_sim_time', 'log_level')
DETECT_DEFAULTS = {'namespace': '', 'model_version': '', 'score_threshold': '', 'cameras': '',
                   'detections_topic': 'detections'}
# Arguments that override track_node's parameters when given.
TRACK_OVERRIDES = {'server_url': str, 'protocol': str, 'autostart': to_bool,
                   'use_sim_time': to_bool}


def setup(context):
    """The robot's group: detect.launch.py and track_node (or both in one container)."""
    try:
        robot_id = int(arg(context, 'robot_id'))
    except ValueError:
        raise RuntimeError(
            f"invalid value for 'robot_id': {arg(context, 'robot_id')!r}") from None
    track_params = dict(given_overrides(context, TRACK_OVERRIDES), robot_id=robot_id)
    if to_bool(arg(context, 'container')):
        return _container(context, track_params)
    detect_arguments = dict(DETECT_DEFAULTS,
                            **{name: arg(context, name) for name in DETECT_ARGUMENTS})
    detect = IncludeLaunchDescription(PythonLaunchDescriptionSource(DETECT_LAUNCH),
                                      launch_arguments=detect_arguments.items())
    return group(arg(context, 'namespace'), [detect] + ros_node(
        context, 'track_node', 'triton_track', [track_params]))


def _detect_launch_module():
    spec = importlib.util.spec_from_file_location('triton_ros_detect_launch', DETECT_LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _container(context, track_params):
    """Both nodes in one ``container`` process, each with its own parameter section."""
    detect_launch = _detect_launch_module()
    overrides = given_overrides(context, detect_launch.OVERRIDES,
                                ('server_url', 'protocol', 'model_name', 'autostart',
                                 'use_sim_time'))
    namespace = arg(context, 'namespace')
    (detect_params,) = node_parameters(
        context, 'triton_detect', namespace,
        [arg(context, 'params_file'), resolve_preset(arg(context, 'preset'), __file__)],
        overrides)
    base = node_namespace(context, namespace).rstrip('/')
    path, remove_file = temporary_parameter_file({
        f'{base}/triton_detect': {'ros__parameters': detect_params},
        f'{base}/triton_track': {'ros__parameters': track_params}})
    image = arg(context, 'image_topic')
    return [remove_file] + group(namespace, ros_node(
        context, 'container', None, [path], arguments=['detect', 'track'],
        remappings=[('triton_detect:image', image),
                    ('triton_detect:image/compressed', image + '/compressed')]))


def generate_launch_description():
    """Declare the launch arguments and the robot's detect -> track group."""
    return assemble([
        namespace_argument('Namespace of the robot (relative to any enclosing one).'),
        DeclareLaunchArgument(
            'robot_id', default_value='1',
            description='This robot\'s id, unique across everything sharing the server.'),
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), 'config',
                                                'detect.yaml']),
            description='detect_node parameter file (lowest precedence).'),
        DeclareLaunchArgument(
            'preset', default_value='',
            description='detect_node preset (jetson, isaac_ros, remote_server or a path).'),
        DeclareLaunchArgument(
            'server_url', default_value='',
            description='Triton host:port for both nodes. Empty keeps the files\' values.'),
        DeclareLaunchArgument(
            'protocol', default_value='', choices=['', 'grpc', 'http'],
            description='Triton protocol for both nodes. Empty keeps the files\' values.'),
        DeclareLaunchArgument(
            'model_name', default_value='', description='Detection model. Empty: default.'),
        DeclareLaunchArgument(
            'image_topic', default_value='image',
            description='Camera topic, remapped onto detect_node\'s relative "image".'),
        autostart_argument(),
        use_sim_time_argument(),
        log_level_argument('Logging level of both nodes.'),
        bool_argument('container', 'false',
                      'Run both nodes in one process (the container executable).'),
    ], setup)
