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

Example::

    ros2 launch triton_ros tracking.launch.py namespace:=robot1 robot_id:=1 \\
        server_url:=127.0.0.1:8001 image_topic:=/robot1/camera/image_raw
"""

import os

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
    detect_arguments = dict(DETECT_DEFAULTS, **{name: arg(name) for name in DETECT_ARGUMENTS})
    detect = IncludeLaunchDescription(PythonLaunchDescriptionSource(DETECT_LAUNCH),
                                      launch_arguments=detect_arguments.items())
    namespace = arg('namespace')
    return [GroupAction(([PushRosNamespace(namespace)] if namespace else []) + [
        detect, track, fail_on_error_exit(track)])]


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
        OpaqueFunction(function=launch_setup),
    ])
