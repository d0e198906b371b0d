"""Tests for launch/fleet.launch.py (N robots in namespaces against one server).

The fleet plan itself (namespaces, robot ids, collision checks) is triton_ros.sequences.plan_fleet,
tested in test/unit/test_sequences.py. Here: the launch arguments (statically, everywhere) and,
where ROS 2 launch/launch_ros are importable, the nodes the description produces.
"""

import importlib.util
from pathlib import Path

import pytest

from launch_static import declared_arguments, node_executables

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / 'launch' / 'fleet.launch.py'
EXPECTED_ARGUMENTS = {
    'robots', 'namespace_prefix', 'robot_id_base', 'robot_ids', 'server_url', 'protocol',
    'detect', 'track', 'imu', 'scan', 'image_topic', 'imu_topic', 'scan_topic',
    'detect_params_file', 'autostart', 'use_sim_time', 'log_level',
}
EXECUTABLES = {'detect_node', 'track_node', 'sensor_sequence_node'}
LAUNCH_SKIP_REASON = ('ROS 2 launch/launch_ros are not importable '
                      '(source a ROS 2 distro to run the launch description tests)')


def test_launch_file_declares_arguments_statically():
    assert set(declared_arguments(LAUNCH_FILE)) == EXPECTED_ARGUMENTS


def test_launch_file_starts_the_packaged_executables():
    assert node_executables(LAUNCH_FILE) == EXECUTABLES
    setup = (ROOT / 'setup.py').read_text()
    missing = [e for e in EXECUTABLES if f'{e} = triton_ros.ros.' not in setup]
    if missing:
        pytest.skip(f'console scripts {missing} are not in setup.py yet')


# --- Tests that need launch and launch_ros -----------------------------------


@pytest.fixture
def ros_launch():
    """Import launch, launch_ros and the launch file, or skip."""
    launch = pytest.importorskip('launch', reason=LAUNCH_SKIP_REASON)
    launch_ros = pytest.importorskip('launch_ros.actions', reason=LAUNCH_SKIP_REASON)
    if not hasattr(launch, 'LaunchContext'):  # an unrelated PyPI "launch"
        pytest.skip(LAUNCH_SKIP_REASON)
    spec = importlib.util.spec_from_file_location('triton_ros_fleet_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return launch, launch_ros, module


def _nodes(launch, launch_ros, module, configurations):
    """Visit the description like a launch service would; return the Node actions found."""
    context = launch.LaunchContext()
    description = module.generate_launch_description()
    # Visiting each DeclareLaunchArgument fills in its default (and checks its choices).
    context.launch_configurations.update(configurations)
    nodes = []

    def visit(items):
        for entity in items:
            if isinstance(entity, launch_ros.Node):
                entity._perform_substitutions(context)
                nodes.append(entity)
                continue
            visit(entity.visit(context) or [])

    visit([description])
    return nodes


def _parameters(node):
    """The node's parameters, merged from the files launch_ros wrote for dict parameters."""
    yaml = pytest.importorskip('yaml')
    arguments = getattr(node, '_Node__expanded_parameter_arguments', None)
    if arguments is None:
        pytest.skip('this launch_ros does not expose expanded parameter arguments')
    merged = {}
    for path, _ in arguments:
        data = yaml.safe_load(Path(path).read_text()) or {}
        for section in data.values():
            merged.update(section.get('ros__parameters', {}))
    return merged


def test_declares_arguments(ros_launch):
    _, _, module = ros_launch
    arguments = {a.name: a for a in module.generate_launch_description().get_launch_arguments()}
    assert set(arguments) == EXPECTED_ARGUMENTS
    for argument in arguments.values():
        assert argument.description != 'no description given'


def test_three_robots_get_namespaces_and_distinct_robot_ids(ros_launch):
    launch, launch_ros, module = ros_launch
    nodes = _nodes(launch, launch_ros, module, {'detect_params_file': ''})
    names = sorted(node.node_name for node in nodes)
    assert names == sorted(f'/robot{i}/{n}' for i in (1, 2, 3)
                           for n in ('triton_detect', 'triton_track'))
    trackers = {n.node_name: _parameters(n) for n in nodes if n.node_executable == 'track_node'}
    assert {name: p['robot_id'] for name, p in trackers.items()} == {
        '/robot1/triton_track': 1, '/robot2/triton_track': 2, '/robot3/triton_track': 3}
    assert all(p['server_url'] == '127.0.0.1:8001' and p['protocol'] == 'grpc'
               for p in trackers.values())


def test_named_robots_explicit_ids_and_sensor_nodes(ros_launch):
    launch, launch_ros, module = ros_launch
    nodes = _nodes(launch, launch_ros, module, {
        'robots': 'alpha,bravo', 'robot_ids': '17,42', 'detect': 'false', 'imu': 'true',
        'scan': 'true', 'protocol': 'http', 'server_url': 'gpu:8000', 'scan_topic': 'lidar'})
    by_name = {node.node_name: node for node in nodes}
    assert sorted(by_name) == sorted(f'/{r}/{n}' for r in ('alpha', 'bravo')
                                     for n in ('triton_track', 'imu_motion', 'scan_motion'))
    imu = _parameters(by_name['/bravo/imu_motion'])
    scan = _parameters(by_name['/bravo/scan_motion'])
    assert (imu['robot_id'], imu['stream_index'], imu['message_type']) == (
        42, 0, 'sensor_msgs/msg/Imu')
    assert (scan['robot_id'], scan['stream_index'], scan['message_type']) == (
        42, 1, 'sensor_msgs/msg/LaserScan')
    assert scan['protocol'] == 'http' and scan['server_url'] == 'gpu:8000'
    assert by_name['/alpha/scan_motion'].expanded_remapping_rules == [('input', 'lidar')]


@pytest.mark.parametrize('configurations', [
    {'robots': 'a,b', 'robot_ids': '5,5'},
    {'robots': 'a,a'},
    {'robots': '2', 'robot_id_base': 'one'},
    {'imu': 'maybe'},
])
def test_invalid_fleets_fail_before_anything_starts(ros_launch, configurations):
    launch, launch_ros, module = ros_launch
    with pytest.raises(RuntimeError):
        _nodes(launch, launch_ros, module, dict(configurations, detect_params_file=''))


def test_autostart_false_reaches_every_node(ros_launch):
    """Issue 17: autostart was declared nowhere (ros2 launch ignored autostart:=false)."""
    launch, launch_ros, module = ros_launch
    nodes = _nodes(launch, launch_ros, module, {
        'robots': '2', 'imu': 'true', 'detect_params_file': '', 'autostart': 'false'})
    assert len(nodes) == 6
    assert all(_parameters(node)['autostart'] is False for node in nodes)
