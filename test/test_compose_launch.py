"""tracking.launch.py and server.launch.py (issue 9), with the real launch/launch_ros.

Skipped where launch/launch_ros are not importable (as test/test_launch_description.py).
The server tests run the real launch service in a child process (it must own its main thread).
"""
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / 'integration'))
from helpers import wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_DIR = ROOT / 'launch'
DEFAULT_PARAMS = ROOT / 'config' / 'detect.yaml'
SKIP = ('ROS 2 launch/launch_ros are not importable '
        '(source a ROS 2 distro to run the launch description tests)')


@pytest.fixture
def ros_launch():
    launch = pytest.importorskip('launch', reason=SKIP)
    launch_ros = pytest.importorskip('launch_ros.actions', reason=SKIP)
    if not hasattr(launch, 'LaunchContext'):
        pytest.skip(SKIP)
    return launch, launch_ros


def load(name):
    spec = importlib.util.spec_from_file_location(name.replace('.', '_'), LAUNCH_DIR / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def visit(launch, launch_ros, entities, configurations):
    """Visit entities like a launch service; return (Node actions, other processes)."""
    context = launch.LaunchContext()
    context.launch_configurations.update(configurations)
    nodes, processes = [], []

    def walk(items):
        for entity in items:
            if isinstance(entity, launch_ros.Node):
                entity._perform_substitutions(context)
                nodes.append(entity)
                continue
            if isinstance(entity, launch.actions.ExecuteProcess):
                processes.append(entity)
                continue
            walk(entity.visit(context) or [])

    walk(entities)
    return nodes, processes


def node_parameters(node):
    import yaml
    merged = {}
    for path, is_file in node._Node__expanded_parameter_arguments:
        assert is_file
        for section in yaml.safe_load(Path(path).read_text()).values():
            merged.update(section['ros__parameters'])
    return merged


def test_tracking_launch_detect_then_track_in_one_namespace(ros_launch):
    launch, launch_ros = ros_launch
    module = load('tracking.launch.py')
    nodes, _ = visit(launch, launch_ros, [module.generate_launch_description()], {
        'namespace': 'robot7', 'robot_id': '7', 'server_url': '10.0.0.5:8001',
        'params_file': str(DEFAULT_PARAMS), 'preset': 'jetson',
        'image_topic': '/robot7/camera/image_raw'})
    by_name = {n.node_name: n for n in nodes}
    assert set(by_name) == {'/robot7/triton_detect', '/robot7/triton_track'}
    detect = node_parameters(by_name['/robot7/triton_detect'])
    assert detect['server_url'] == '10.0.0.5:8001' and detect['max_detections'] == 50
    assert ('image', '/robot7/camera/image_raw') in \
        by_name['/robot7/triton_detect'].expanded_remapping_rules
    track = node_parameters(by_name['/robot7/triton_track'])
    assert track == {'robot_id': 7, 'server_url': '10.0.0.5:8001'}


def test_tracking_launch_container_option(ros_launch):
    """container:=true: one process, one parameter file with a section per node."""
    import yaml
    launch, launch_ros = ros_launch
    module = load('tracking.launch.py')
    nodes, _ = visit(launch, launch_ros, [module.generate_launch_description()], {
        'namespace': 'robot7', 'robot_id': '7', 'server_url': '10.0.0.5:8001',
        'params_file': str(DEFAULT_PARAMS), 'preset': 'jetson', 'container': 'true',
        'image_topic': '/robot7/camera/image_raw'})
    (node,) = nodes
    assert node.node_executable == 'container'
    words = [''.join(getattr(s, 'text', '?') for s in part) for part in node.cmd]
    assert words[1:3] == ['detect', 'track']
    assert ('triton_detect:image', '/robot7/camera/image_raw') in node.expanded_remapping_rules
    ((path, is_file),) = node._Node__expanded_parameter_arguments
    sections = yaml.safe_load(Path(path).read_text())
    assert sections['/robot7/triton_track']['ros__parameters'] == {
        'robot_id': 7, 'server_url': '10.0.0.5:8001'}
    detect = sections['/robot7/triton_detect']['ros__parameters']
    assert detect['server_url'] == '10.0.0.5:8001' and detect['max_detections'] == 50


def test_tracking_launch_passes_every_detect_argument(ros_launch):
    """No detect.launch.py argument is left to be inherited from an including context."""
    launch, launch_ros = ros_launch
    module = load('tracking.launch.py')
    declared = {a.name for a in load('detect.launch.py').generate_launch_description()
                .get_launch_arguments()}
    assert set(module.DETECT_ARGUMENTS) | set(module.DETECT_DEFAULTS) == declared
    assert not set(module.DETECT_ARGUMENTS) & set(module.DETECT_DEFAULTS)


def test_tracking_launch_included_from_a_stack_with_its_own_arguments(ros_launch):
    """The include pattern: all arguments given, the stack's namespace and remaps apply once."""
    launch, launch_ros = ros_launch
    from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    tracking = load('tracking.launch.py').generate_launch_description()
    given = {'robot_id': '2', 'params_file': str(DEFAULT_PARAMS)}
    arguments = {a.name: given.get(a.name, a.default_value)
                 for a in tracking.get_launch_arguments()}
    stack = launch.LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='robotB'),
        DeclareLaunchArgument('log_level', default_value='debug'),
        DeclareLaunchArgument('preset', default_value='remote_server'),
        GroupAction([
            launch_ros.PushRosNamespace('robotB'),
            launch_ros.SetRemap('image', '/robotB/camera/image_raw'),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(LAUNCH_DIR / 'tracking.launch.py')),
                launch_arguments=arguments.items())]),
    ])
    nodes, _ = visit(launch, launch_ros, [stack], {})
    by_name = {n.node_name: n for n in nodes}
    assert set(by_name) == {'/robotB/triton_detect', '/robotB/triton_track'}
    detect = by_name['/robotB/triton_detect']
    assert ('image', '/robotB/camera/image_raw') in detect.expanded_remapping_rules
    assert node_parameters(detect)['server_url'] == '127.0.0.1:8001'  # not remote_server's
    words = [''.join(getattr(s, 'text', '?') for s in part) for part in detect.cmd]
    assert words[words.index('--log-level') + 1] == 'info'


def test_server_launch_command_line(ros_launch):
    launch, launch_ros = ros_launch
    module = load('server.launch.py')
    _, processes = visit(launch, launch_ros, [module.generate_launch_description()], {
        'server': 'command', 'command': '/opt/tritonserver/bin/tritonserver',
        'model_repository': '/models', 'http_port': '18000', 'grpc_port': '18001',
        'metrics_port': '18002', 'extra_args': '--log-verbose=1'})
    commands = [[''.join(getattr(s, 'text', '?') for s in part) for part in p.cmd]
                for p in processes]
    server = next(c for c in commands if 'tritonserver' in c[0])
    assert server == ['/opt/tritonserver/bin/tritonserver', '--model-repository=/models',
                      '--http-address=127.0.0.1', '--http-port=18000',
                      '--grpc-address=127.0.0.1', '--grpc-port=18001',
                      '--metrics-address=127.0.0.1', '--metrics-port=18002',
                      '--log-verbose=1']
    waiter = next(c for c in commands if 'triton_ros.tools.wait_ready' in c)
    assert '127.0.0.1:18000' in waiter


@pytest.mark.parametrize('configurations, words', [
    ({'server': 'command'}, 'needs command:='),
    ({'http_port': 'eighty'}, "'http_port'"),
])
def test_server_launch_bad_arguments(ros_launch, configurations, words):
    launch, launch_ros = ros_launch
    module = load('server.launch.py')
    with pytest.raises(RuntimeError, match=words):
        visit(launch, launch_ros, [module.generate_launch_description()],
              dict({'model_repository': '/models'}, **configurations))


RUN_LAUNCH = '''
import sys, launch
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
service = launch.LaunchService()
arguments = [tuple(a.split(':=', 1)) for a in sys.argv[2:]]
service.include_launch_description(launch.LaunchDescription([IncludeLaunchDescription(
    PythonLaunchDescriptionSource(sys.argv[1]), launch_arguments=arguments)]))
sys.exit(service.run())
'''


def run_launch(path, arguments, log):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get('PYTHONPATH', '')) if p))
    return subprocess.Popen([sys.executable, '-c', RUN_LAUNCH, str(path), *arguments],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))


def test_server_launch_fails_when_the_server_binary_fails(ros_launch, tmp_path):
    with open(tmp_path / 'launch.log', 'wb') as log:
        process = run_launch(LAUNCH_DIR / 'server.launch.py', [
            'server:=command', 'command:=/bin/false', f'model_repository:={tmp_path}',
            'ready_timeout_s:=60'], log)
        assert process.wait(60) == 1, (tmp_path / 'launch.log').read_text()
    assert 'tritonserver' in (tmp_path / 'launch.log').read_text()


def test_server_launch_bundled_server_becomes_ready(ros_launch, tmp_path):
    """The bundled tritonserver started by server.launch.py answers ready; Ctrl-C ends it."""
    from triton_ros.tools.local_server import free_ports
    from triton_ros.tools.wait_ready import ready
    from triton_ros.resources import config_path
    http, grpc, metrics = free_ports(3)
    path = tmp_path / 'launch.log'
    with open(path, 'wb') as log:
        process = run_launch(LAUNCH_DIR / 'server.launch.py', [
            f'model_repository:={config_path("model_repository")}', f'http_port:={http}',
            f'grpc_port:={grpc}', f'metrics_port:={metrics}',
            'wait_for_models:=ssd_mobilenet_v2_coco', 'ready_timeout_s:=150'], log)
        try:
            assert wait_until(lambda: 'tritonserver ready on' in path.read_text()
                              or process.poll() is not None, 170, poll_s=0.5), path.read_text()
            assert process.poll() is None, path.read_text()
            assert ready(f'127.0.0.1:{http}', 'ssd_mobilenet_v2_coco')[0]
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(60)
    assert code == 0, path.read_text()
    assert not ready(f'127.0.0.1:{http}')[0]   # the server went with the launch


# --- Issue 17 ---------------------------------------------------------------------------------


def test_tracking_autostart_false_reaches_both_nodes(ros_launch):
    launch, launch_ros = ros_launch
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_DIR / 'tracking.launch.py')),
        launch_arguments={'params_file': str(DEFAULT_PARAMS), 'autostart': 'false',
                          'namespace': 'robot1'}.items())
    nodes, _ = visit(launch, launch_ros, [include], {})
    by_name = {node.node_name: node_parameters(node) for node in nodes}
    assert sorted(by_name) == ['/robot1/triton_detect', '/robot1/triton_track']
    assert all(parameters['autostart'] is False for parameters in by_name.values())

