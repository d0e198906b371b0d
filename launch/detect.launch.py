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

Assembled from :mod:`triton_ros.ros.launch_support`: an argument this file does not declare
fails the launch with the list of valid ones; a node exiting non-zero (e.g. 2, a configuration
error) stops the launch and ``ros2 launch`` returns non-zero; ``log_level`` and the boolean
arguments have declared choices. ``autostart:=false`` leaves the node unconfigured for a
lifecycle manager.

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

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch.substitutions import PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from triton_ros.ros.launch_support import (arg, assemble, autostart_argument, given_overrides,
                                           group, log_level_argument, namespace_argument,
                                           node_parameters, resolve_preset, ros_node, to_bool,
                                           to_list, use_sim_time_argument)

PACKAGE = 'triton_ros'
EXECUTABLE = 'detect_node'
NODE_NAME = 'triton_detect'

# Launch arguments that override a parameter only when non-empty, with the
# function that converts the launch string to the parameter's type.
OVERRIDES = {
    'server_url': str,
    'protocol': str,
    'model_name': str,
    'model_version': str,
    'score_threshold': float,
    'autostart': to_bool,
    'use_sim_time': to_bool,
    'cameras': to_list,
}


def build_parameters(context, namespace=''):
    """Return the Node parameter list: ONE dict, params_file < preset < given overrides."""
    preset_file = resolve_preset(arg(context, 'preset'), __file__)
    return node_parameters(context, NODE_NAME, namespace,
                           [arg(context, 'params_file'), preset_file],
                           given_overrides(context, OVERRIDES))


def setup(context):
    """The detection node (and its exit check) in ``namespace``."""
    namespace = arg(context, 'namespace')
    image = LaunchConfiguration('image_topic').perform(context)
    return group(namespace, ros_node(
        context, EXECUTABLE, NODE_NAME, build_parameters(context, namespace),
        remappings=[('image', image), ('image/compressed', image + '/compressed'),
                    ('detections', LaunchConfiguration('detections_topic').perform(context))]))


def generate_launch_description():
    """Declare the launch arguments and the detection node."""
    default_params = PathJoinSubstitution([FindPackageShare(PACKAGE), 'config', 'detect.yaml'])
    return assemble([
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
        autostart_argument(),
        use_sim_time_argument(),
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
        namespace_argument(),
        log_level_argument(),
    ], setup)
