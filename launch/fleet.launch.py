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
launch (``ros2 launch`` returns non-zero); an argument this file does not declare fails the launch
with the list of valid ones (:mod:`triton_ros.ros.launch_support`). ``autostart:=false`` leaves
every node unconfigured for a lifecycle manager. Robots started by different launch
files must use disjoint ids (e.g. ``robot_id_base:=101`` on a second site): see
docs/sequences.md.

Examples::

    ros2 launch triton_ros fleet.launch.py robots:=3 server_url:=gpu-server:8001
    ros2 launch triton_ros fleet.launch.py robots:=alpha,bravo robot_ids:=17,42 imu:=true
"""

from launch.actions import DeclareLaunchArgument

from triton_ros.ros.launch_support import (arg, assemble, autostart_argument, bool_argument,
                                           given_overrides, group, log_level_argument,
                                           node_parameters, ros_node, share_file, to_bool,
                                           use_sim_time_argument)

#: arguments that override every node's parameters when given
COMMON_OVERRIDES = {'autostart': to_bool, 'use_sim_time': to_bool}


def fleet_plan(context):
    """Return the FleetRobot list for the evaluated arguments (RuntimeError when invalid)."""
    from triton_ros.sequences import plan_fleet

    try:
        base = int(arg(context, 'robot_id_base'))
        return plan_fleet(arg(context, 'robots'), robot_id_base=base,
                          robot_ids=arg(context, 'robot_ids'),
                          namespace_prefix=arg(context, 'namespace_prefix'))
    except ValueError as error:
        raise RuntimeError(f'invalid fleet: {error}') from error


def setup(context):
    """One namespaced group of nodes (each with its exit check) per robot."""
    protocol = arg(context, 'protocol')
    common = dict(given_overrides(context, COMMON_OVERRIDES),
                  server_url=arg(context, 'server_url'))
    # detect_node speaks grpc or http; the sequence nodes also take grpc_unary.
    detect_protocol = 'http' if protocol == 'http' else 'grpc'
    enabled = {name: to_bool(arg(context, name)) for name in ('detect', 'track', 'imu', 'scan')}

    groups = []
    for robot in fleet_plan(context):
        sequence = dict(common, protocol=protocol, robot_id=robot.robot_id)
        nodes = []
        if enabled['detect']:
            # Layered in Python: the file's values (whatever its node keys) < these.
            nodes += ros_node(context, 'detect_node', 'triton_detect', node_parameters(
                context, 'triton_detect', robot.namespace, [arg(context, 'detect_params_file')],
                dict(common, protocol=detect_protocol)),
                remappings=[('image', arg(context, 'image_topic'))])
        if enabled['track']:
            nodes += ros_node(context, 'track_node', 'triton_track', [sequence])
        if enabled['imu']:
            nodes += ros_node(context, 'sensor_sequence_node', 'imu_motion', [dict(
                sequence, message_type='sensor_msgs/msg/Imu', stream_index=0)],
                remappings=[('input', arg(context, 'imu_topic'))])
        if enabled['scan']:
            nodes += ros_node(context, 'sensor_sequence_node', 'scan_motion', [dict(
                sequence, message_type='sensor_msgs/msg/LaserScan', stream_index=1)],
                remappings=[('input', arg(context, 'scan_topic'))])
        groups += group(robot.namespace, nodes)
    return groups


def generate_launch_description():
    """Declare the launch arguments and the per-robot groups."""
    return assemble([
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
        bool_argument('detect', 'true', 'Start detect_node per robot.'),
        bool_argument('track', 'true', 'Start track_node per robot.'),
        bool_argument('imu', 'false',
                      'Start sensor_sequence_node for sensor_msgs/Imu per robot.'),
        bool_argument('scan', 'false',
                      'Start sensor_sequence_node for sensor_msgs/LaserScan per robot.'),
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
            'detect_params_file', default_value=share_file('config', 'detect.yaml'),
            description='Parameter file for detect_node (server_url and protocol override '
                        'it). Empty for none.'),
        autostart_argument(),
        use_sim_time_argument(),
        log_level_argument(),
    ], setup)
