"""Launch a fleet of N robots (one namespace each) against one shared Triton server.

Per robot, in its namespace (``robot1``, ``robot2``, ... or the names given in ``robots``):

- ``detect_node`` (``triton_detect``): ``image`` -> ``detections`` (if ``detect``);
- ``track_node`` (``triton_track``): ``detections`` -> ``tracked_detections``, one
  ``simple_tracker`` sequence per robot (if ``track``);
- ``sensor_sequence_node`` as ``imu_motion`` (``sensor_msgs/Imu`` on ``imu_topic``, if ``imu``)
  and as ``scan_motion`` (``sensor_msgs/LaserScan`` on ``scan_topic``, if ``scan``), both on the
  ``imu_motion`` model (stream indices 0 and 1).

Every robot gets its own ``robot_id`` (consecutive from ``robot_id_base``, or ``robot_ids``), so
its sequences get correlation ids no other robot uses (robot_id * 256 + stream index); duplicate
ids or namespaces fail the launch before anything starts; a node exiting non-zero stops the
launch (``ros2 launch`` returns non-zero). Robots started by different launch
files must use disjoint ids (e.g. ``robot_id_base:=101`` on a second site): see
docs/sequences.md.

Examples::

    ros2 launch triton_ros fleet.launch.py robots:=3 server_url:=gpu-server:8001
    ros2 launch triton_ros fleet.launch.py robots:=alpha,bravo robot_ids:=17,42 imu:=true
"""

from ament_index_python.packages import get_package_share_directory
from ament_index_python.packages import PackageNotFoundError
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import GroupAction
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.actions import PushRosNamespace

from triton_ros.ros.launch_support import fail_on_error_exit
from triton_ros.ros.launch_support import LOG_LEVELS
from triton_ros.ros.launch_support import node_parameters

PACKAGE = 'triton_ros'

_TRUE = ('true', '1', 'yes', 'on')
_FALSE = ('false', '0', 'no', 'off')


def _to_bool(name, value):
    """Convert a launch string to bool."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise RuntimeError(f"invalid value for '{name}': expected true or false, got '{value}'")


def _default_detect_params():
    """Return share/triton_ros/config/detect.yaml, or '' when the package is not installed."""
    try:
        return get_package_share_directory(PACKAGE) + '/config/detect.yaml'
    except (PackageNotFoundError, OSError):
        return ''


def fleet_plan(context):
    """Return the FleetRobot list for the evaluated arguments (RuntimeError when invalid)."""
    from triton_ros.sequences import plan_fleet

    def arg(name):
        return LaunchConfiguration(name).perform(context).strip()

    try:
        base = int(arg('robot_id_base'))
        return plan_fleet(arg('robots'), robot_id_base=base, robot_ids=arg('robot_ids'),
                          namespace_prefix=arg('namespace_prefix'))
    except ValueError as error:
        raise RuntimeError(f'invalid fleet: {error}') from error


def launch_setup(context, *args, **kwargs):
    """Build one namespaced group of nodes per robot."""
    def arg(name):
        return LaunchConfiguration(name).perform(context).strip()

    server_url = arg('server_url')
    protocol = arg('protocol')
    log_level = arg('log_level')
    arguments = ['--ros-args', '--log-level', log_level] if log_level else []
    common = {'server_url': server_url}
    use_sim_time = arg('use_sim_time')
    if use_sim_time:
        common['use_sim_time'] = _to_bool('use_sim_time', use_sim_time)
    # detect_node speaks grpc or http; the sequence nodes also take grpc_unary.
    detect_protocol = 'http' if protocol == 'http' else 'grpc'
    enabled = {name: _to_bool(name, arg(name)) for name in ('detect', 'track', 'imu', 'scan')}

    groups = []
    for robot in fleet_plan(context):
        sequence = dict(common, protocol=protocol, robot_id=robot.robot_id)
        nodes = []
        if enabled['detect']:
            nodes.append(Node(
                package=PACKAGE, executable='detect_node', name='triton_detect',
                output='screen', arguments=arguments,
                # Layered in Python: the file's values (whatever its node keys) < these.
                parameters=node_parameters(context, 'triton_detect', robot.namespace,
                                           [arg('detect_params_file')],
                                           dict(common, protocol=detect_protocol)),
                remappings=[('image', arg('image_topic'))]))
        if enabled['track']:
            nodes.append(Node(
                package=PACKAGE, executable='track_node', name='triton_track',
                output='screen', arguments=arguments, parameters=[sequence]))
        if enabled['imu']:
            nodes.append(Node(
                package=PACKAGE, executable='sensor_sequence_node', name='imu_motion',
                output='screen', arguments=arguments,
                parameters=[dict(sequence, message_type='sensor_msgs/msg/Imu',
                                 stream_index=0)],
                remappings=[('input', arg('imu_topic'))]))
        if enabled['scan']:
            nodes.append(Node(
                package=PACKAGE, executable='sensor_sequence_node', name='scan_motion',
                output='screen', arguments=arguments,
                parameters=[dict(sequence, message_type='sensor_msgs/msg/LaserScan',
                                 stream_index=1)],
                remappings=[('input', arg('scan_topic'))]))
        groups.append(GroupAction([PushRosNamespace(robot.namespace)] + nodes
                                  + [fail_on_error_exit(node) for node in nodes]))
    return groups


def generate_launch_description():
    """Declare the launch arguments and the per-robot groups."""
    return LaunchDescription([
        DeclareLaunchArgument(
            'robots', default_value='3',
            description='Number of robots (namespaces <namespace_prefix>1..N) or their '
                        'namespaces separated by commas (e.g. alpha,bravo).'),
        DeclareLaunchArgument(
            'namespace_prefix', default_value='robot',
            description='Namespace prefix when robots is a count.'),
        DeclareLaunchArgument(
            'robot_id_base', default_value='1',
            description='robot_id of the first robot; the others follow consecutively. '
                        'Unique across everything sharing the server.'),
        DeclareLaunchArgument(
            'robot_ids', default_value='',
            description='Explicit robot ids separated by commas, one per robot (wins over '
                        'robot_id_base). Empty for consecutive ids.'),
        DeclareLaunchArgument(
            'server_url', default_value='127.0.0.1:8001',
            description='The shared Triton server host:port (gRPC usually 8001, HTTP 8000).'),
        DeclareLaunchArgument(
            'protocol', default_value='grpc', choices=['grpc', 'http', 'grpc_unary'],
            description='grpc: one bidirectional stream per sequence; http or grpc_unary: '
                        'unary requests.'),
        DeclareLaunchArgument(
            'detect', default_value='true',
            description='Start detect_node per robot (true/false).'),
        DeclareLaunchArgument(
            'track', default_value='true',
            description='Start track_node per robot (true/false).'),
        DeclareLaunchArgument(
            'imu', default_value='false',
            description='Start sensor_sequence_node for sensor_msgs/Imu per robot (true/false).'),
        DeclareLaunchArgument(
            'scan', default_value='false',
            description='Start sensor_sequence_node for sensor_msgs/LaserScan per robot '
                        '(true/false).'),
        DeclareLaunchArgument(
            'image_topic', default_value='image',
            description='Camera topic of each robot, relative to its namespace.'),
        DeclareLaunchArgument(
            'imu_topic', default_value='imu',
            description='Imu topic of each robot, relative to its namespace.'),
        DeclareLaunchArgument(
            'scan_topic', default_value='scan',
            description='LaserScan topic of each robot, relative to its namespace.'),
        DeclareLaunchArgument(
            'detect_params_file', default_value=_default_detect_params(),
            description='Parameter file for detect_node (server_url and protocol override '
                        'it). Empty for none.'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='',
            description='Use /clock time (true/false). Empty leaves it unset.'),
        DeclareLaunchArgument(
            'log_level', default_value='info', choices=LOG_LEVELS,
            description='Logging level: debug, info, warn, error or fatal.'),
        OpaqueFunction(function=launch_setup),
    ])
