"""Detect -> track for one robot: ``detect_node`` then ``track_node`` in one namespace.

``image`` -> ``triton_detect`` -> ``detections`` -> ``triton_track`` -> ``tracked_detections``,
all relative to ``namespace`` (and to any namespace pushed by an including file).
detect.launch.py is included with EVERY one of its arguments given (the include pattern of
the README), so none of this file's (or an including file's) launch configurations leak into
it, while enclosing ``PushRosNamespace``/``SetRemap``/``SetParameter`` still apply; its
parameter layering (params_file < preset < arguments) applies.
The tracker gets ``robot_id`` (unique in the fleet: it picks the correlation id, see
docs/sequences.md) and the ``server_url``/``protocol`` given here (else its defaults).
A node exiting non-zero stops the launch with a non-zero return code.

``container:=true`` runs both nodes in ONE process (the ``container`` executable, a
MultiThreadedExecutor): the same layered parameters, written as one file with a section per
node (keyed by full node name), and node-targeted remaps.

Example::

    ros2 launch triton_ros tracking.launch.py namespace:=robot1 robot_id:=1 \\
        server_url:=127.0.0.1:8001 image_topic:=/robot1/camera/image_raw
"""

import importlib.util
import os
import tempfile

import yaml

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import GroupAction
from launch.actions import IncludeLaunchDescription
from launch.actions import OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.actions import PushRosNamespace
from launch_ros.substitutions import FindPackageShare

from triton_ros.ros.launch_support import fail_on_error_exit
from triton_ros.ros.launch_support import LOG_LEVELS
from triton_ros.ros.launch_support import node_namespace
from triton_ros.ros.launch_support import node_parameters

PACKAGE = 'triton_ros'
DETECT_LAUNCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'detect.launch.py')
# Arguments handed on to detect.launch.py as given here; every other argument it declares gets
# its own default explicitly (DETECT_DEFAULTS), so nothing is inherited from the context.
DETECT_ARGUMENTS = ('params_file', 'preset', 'server_url', 'protocol', 'model_name',
                    'image_topic', 'use_sim_time', 'log_level')
DETECT_DEFAULTS = {'namespace': '', 'model_version': '', 'score_threshold': '', 'cameras': '',
                   'detections_topic': 'detections'}


def launch_setup(context, *args, **kwargs):
    """Build the robot's group: PushRosNamespace, detect.launch.py, track_node."""
    def arg(name):
        return LaunchConfiguration(name).perform(context).strip()

    try:
        robot_id = int(arg('robot_id'))
    except ValueError:
        raise RuntimeError(f"invalid value for 'robot_id': {arg('robot_id')!r}") from None
    track_params = {'robot_id': robot_id}
    for name in ('server_url', 'protocol'):
        if arg(name):
            track_params[name] = arg(name)
    if arg('use_sim_time'):
        track_params['use_sim_time'] = arg('use_sim_time').lower() in ('true', '1', 'yes', 'on')
    log_level = arg('log_level')
    track = Node(package=PACKAGE, executable='track_node', name='triton_track',
                 output='screen', parameters=[track_params],
                 arguments=['--ros-args', '--log-level', log_level] if log_level else [])
    if arg('container').lower() in ('true', '1', 'yes', 'on'):
        return _container(context, arg, track_params, log_level)
    detect_arguments = dict(DETECT_DEFAULTS, **{name: arg(name) for name in DETECT_ARGUMENTS})
    detect = IncludeLaunchDescription(PythonLaunchDescriptionSource(DETECT_LAUNCH),
                                      launch_arguments=detect_arguments.items())
    namespace = arg('namespace')
    return [GroupAction(([PushRosNamespace(namespace)] if namespace else []) + [
        detect, track, fail_on_error_exit(track)])]


def _detect_launch_module():
    spec = importlib.util.spec_from_file_location('triton_ros_detect_launch', DETECT_LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _container(context, arg, track_params, log_level):
    """Both nodes in one ``container`` process, each with its own parameter section."""
    detect_launch = _detect_launch_module()
    overrides = {}
    for name in ('server_url', 'protocol', 'model_name', 'use_sim_time'):
        if arg(name):
            overrides[name] = detect_launch.OVERRIDES[name](arg(name))
    namespace = arg('namespace')
    (detect_params,) = node_parameters(
        context, 'triton_detect', namespace,
        [arg('params_file'), detect_launch.resolve_preset(arg('preset'))], overrides)
    base = node_namespace(context, namespace).rstrip('/')
    sections = {f'{base}/triton_detect': {'ros__parameters': detect_params},
                f'{base}/triton_track': {'ros__parameters': track_params}}
    with tempfile.NamedTemporaryFile('w', prefix='triton_ros_container_', suffix='.yaml',
                                     delete=False) as stream:
        yaml.safe_dump(sections, stream)
    image = arg('image_topic')
    container = Node(
        package=PACKAGE, executable='container', output='screen',
        arguments=['detect', 'track'] + (['--ros-args', '--log-level', log_level]
                                         if log_level else []),
        parameters=[stream.name],
        remappings=[('triton_detect:image', image),
                    ('triton_detect:image/compressed', image + '/compressed')])
    return [GroupAction(([PushRosNamespace(namespace)] if namespace else []) + [
        container, fail_on_error_exit(container)])]


def generate_launch_description():
    """Declare the launch arguments and the robot's detect -> track group."""
    return LaunchDescription([
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the robot (relative to any enclosing one).'),
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
        DeclareLaunchArgument(
            'use_sim_time', default_value='', choices=['', 'true', 'false'],
            description='Use /clock time. Empty leaves it unset.'),
        DeclareLaunchArgument(
            'log_level', default_value='info', choices=LOG_LEVELS,
            description='Logging level of both nodes.'),
        DeclareLaunchArgument(
            'container', default_value='false', choices=['true', 'false'],
            description='Run both nodes in one process (the container executable).'),
        OpaqueFunction(function=launch_setup),
    ])
