"""Tests for launch/detect.launch.py and the parameter files under config/."""

import importlib.util
from pathlib import Path
import re

import pytest

from launch_static import declared_arguments

from triton_ros.ros.detect_node import PARAMETERS as DETECT_PARAMETERS

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / 'launch' / 'detect.launch.py'
CONFIG_DIR = ROOT / 'config'
PRESETS_DIR = CONFIG_DIR / 'presets'
DEFAULT_PARAMS = CONFIG_DIR / 'detect.yaml'

# Every parameter the node declares (one source of truth), plus rclpy's own use_sim_time.
KNOWN_PARAMETERS = {spec.name for spec in DETECT_PARAMETERS} | {'use_sim_time'}
# Declared as doubles by the node: YAML must spell them as floats (5.0, not 5).
DOUBLE_PARAMETERS = {'score_threshold', 'request_timeout_s', 'server_wait_timeout_s'}
STRING_PARAMETERS = {'server_url', 'protocol', 'model_name', 'model_version', 'labels_file'}
PROTOCOLS = {'grpc', 'http'}
EXPECTED_PRESETS = {'jetson', 'isaac_ros', 'remote_server'}
EXPECTED_ARGUMENTS = {
    'server_url', 'protocol', 'model_name', 'image_topic', 'detections_topic',
    'namespace', 'params_file', 'preset', 'use_sim_time', 'log_level', 'autostart',
}
HOST_PORT = re.compile(r'^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:(\d{1,5})$')

LAUNCH_SKIP_REASON = ('ROS 2 launch/launch_ros are not importable '
                      '(source a ROS 2 distro to run the launch description tests)')


def _yaml():
    return pytest.importorskip('yaml', reason='PyYAML is not installed')


def _parameter_files():
    return [DEFAULT_PARAMS] + sorted(PRESETS_DIR.glob('*.yaml'))


def _load_parameters(path):
    """Return the ros__parameters of a ``/**`` parameter file."""
    data = _yaml().safe_load(path.read_text())
    assert isinstance(data, dict) and list(data) == ['/**'], f'{path}: expected only "/**"'
    assert list(data['/**']) == ['ros__parameters'], f'{path}: expected "/**: ros__parameters:"'
    parameters = data['/**']['ros__parameters']
    assert isinstance(parameters, dict) and parameters, f'{path}: no parameters'
    return parameters


# --- Tests that need no ROS 2 installation -----------------------------------


def test_expected_presets_exist():
    assert EXPECTED_PRESETS <= {p.stem for p in PRESETS_DIR.glob('*.yaml')}


@pytest.mark.parametrize('path', _parameter_files(), ids=lambda p: p.name)
def test_parameter_file(path):
    assert path.read_text().startswith('#'), f'{path.name}: needs a leading comment'
    parameters = _load_parameters(path)
    unknown = set(parameters) - KNOWN_PARAMETERS
    assert not unknown, f'{path.name}: unknown parameters {sorted(unknown)}'
    for name in DOUBLE_PARAMETERS & set(parameters):
        assert isinstance(parameters[name], float), f'{path.name}: {name} must be a float'
        assert parameters[name] > 0.0
    for name in STRING_PARAMETERS & set(parameters):
        assert isinstance(parameters[name], str), f'{path.name}: {name} must be a string'
    if 'max_detections' in parameters:
        assert type(parameters['max_detections']) is int and parameters['max_detections'] > 0
    if 'score_threshold' in parameters:
        assert 0.0 <= parameters['score_threshold'] <= 1.0
    if 'class_filter' in parameters:
        value = parameters['class_filter']
        assert isinstance(value, list) and value, 'class_filter must be a non-empty list'
        assert all(isinstance(item, str) for item in value)
    if 'use_sim_time' in parameters:
        assert isinstance(parameters['use_sim_time'], bool)
    if 'protocol' in parameters:
        assert parameters['protocol'] in PROTOCOLS
    if 'server_url' in parameters:
        match = HOST_PORT.match(parameters['server_url'])
        assert match, f"{path.name}: server_url {parameters['server_url']!r} is not host:port"
        assert 0 < int(match.group(2)) < 65536


def test_presets_set_a_server():
    for name in EXPECTED_PRESETS:
        parameters = _load_parameters(PRESETS_DIR / f'{name}.yaml')
        assert parameters['protocol'] in PROTOCOLS
        assert HOST_PORT.match(parameters['server_url'])


def test_default_parameters_match_contract():
    parameters = _load_parameters(DEFAULT_PARAMS)
    assert parameters['server_url'] == '127.0.0.1:8001'
    assert parameters['protocol'] == 'grpc'
    assert parameters['model_name'] == 'ssd_mobilenet_v2_coco'
    assert parameters['score_threshold'] == 0.5
    assert parameters['max_detections'] == 100
    assert parameters['request_timeout_s'] == 5.0
    assert parameters['server_wait_timeout_s'] == 30.0


def test_launch_file_declares_arguments_statically():
    """Check the declared argument names without importing launch."""
    assert EXPECTED_ARGUMENTS <= set(declared_arguments(LAUNCH_FILE))


# --- Tests that need launch and launch_ros -----------------------------------


@pytest.fixture
def ros_launch():
    """Import launch, launch_ros and the launch file, or skip."""
    launch = pytest.importorskip('launch', reason=LAUNCH_SKIP_REASON)
    launch_ros = pytest.importorskip('launch_ros.actions', reason=LAUNCH_SKIP_REASON)
    if not hasattr(launch, 'LaunchContext'):  # an unrelated PyPI "launch"
        pytest.skip(LAUNCH_SKIP_REASON)
    spec = importlib.util.spec_from_file_location('triton_ros_detect_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return launch, launch_ros, module


def _run(launch, launch_ros, entities, configurations):
    """Visit entities like a launch service would; return the Node actions found."""
    context = launch.LaunchContext()
    context.launch_configurations.update(configurations)
    nodes = []

    def visit(items):
        for entity in items:
            if isinstance(entity, launch_ros.Node):
                # Expand name, namespace, parameters and remaps without starting a process.
                entity._perform_substitutions(context)
                nodes.append(entity)
                continue
            visit(entity.visit(context) or [])

    visit(entities)
    return nodes


def _parameter_arguments(node):
    arguments = getattr(node, '_Node__expanded_parameter_arguments', None)
    if arguments is None:
        pytest.skip('this launch_ros does not expose expanded parameter arguments')
    return arguments


def _dict_parameters(path):
    data = _yaml().safe_load(Path(path).read_text())
    (section,) = data.values()
    return section['ros__parameters']


def _node_dict(node):
    """The node's parameters as launched: one dict, written by launch_ros as one file."""
    arguments = _parameter_arguments(node)
    assert len(arguments) == 1 and arguments[0][1], arguments
    data = _yaml().safe_load(Path(arguments[0][0]).read_text())
    # launch_ros keys a dict by the full node name, or '/**' when the namespace is unspecified.
    (key,) = data
    assert key in (node.node_name, '/**')
    return data[key]['ros__parameters']


def test_declares_arguments(ros_launch):
    _, _, module = ros_launch
    description = module.generate_launch_description()
    arguments = {arg.name: arg for arg in description.get_launch_arguments()}
    assert EXPECTED_ARGUMENTS <= set(arguments)
    for name in EXPECTED_ARGUMENTS:
        assert arguments[name].default_value is not None, f'{name} has no default'
        assert arguments[name].description != 'no description given'


def test_defaults(ros_launch):
    launch, launch_ros, module = ros_launch
    description = module.generate_launch_description()
    (node,) = _run(launch, launch_ros, [description], {'params_file': str(DEFAULT_PARAMS)})
    assert node.node_package == 'triton_ros'
    assert node.node_executable == 'detect_node'
    # No namespace anywhere: launch_ros leaves it unspecified (the root namespace).
    assert node.node_name.rsplit('/', 1)[-1] == 'triton_detect'
    assert node.expanded_node_namespace in (
        '/', getattr(node, 'UNSPECIFIED_NODE_NAMESPACE', '/'))
    assert node.expanded_remapping_rules == [
        ('image', 'image'), ('image/compressed', 'image/compressed'),
        ('detections', 'detections')]
    # One merged dict (keyed by launch_ros with the node's name): exactly the params file's values.
    assert _node_dict(node) == _load_parameters(DEFAULT_PARAMS)


def test_preset_namespace_and_overrides(ros_launch):
    launch, launch_ros, module = ros_launch
    description = module.generate_launch_description()
    (node,) = _run(launch, launch_ros, [description], {
        'params_file': str(DEFAULT_PARAMS),
        'preset': 'remote_server',
        'namespace': 'robot1',
        'image_topic': '/camera/image_rect',
        'detections_topic': 'objects',
        'server_url': '10.0.0.5:8001',
        'model_version': '2',
        'use_sim_time': 'true',
    })
    assert node.node_name == '/robot1/triton_detect'
    assert node.expanded_remapping_rules == [
        ('image', '/camera/image_rect'), ('image/compressed', '/camera/image_rect/compressed'),
        ('detections', 'objects')]
    expected = dict(_load_parameters(DEFAULT_PARAMS))
    expected.update(_load_parameters(PRESETS_DIR / 'remote_server.yaml'))
    # Only the arguments that were given override, with their ROS types.
    expected.update({'server_url': '10.0.0.5:8001', 'model_version': '2', 'use_sim_time': True})
    assert _node_dict(node) == expected


def test_enclosing_namespace(ros_launch):
    launch, launch_ros, module = ros_launch
    description = module.generate_launch_description()
    entities = [launch_ros.PushRosNamespace('fleet'), description]
    (node,) = _run(launch, launch_ros, entities, {
        'params_file': str(DEFAULT_PARAMS), 'namespace': 'front_camera'})
    assert node.node_name == '/fleet/front_camera/triton_detect'
    entities = [launch_ros.PushRosNamespace('fleet'), module.generate_launch_description()]
    (node,) = _run(launch, launch_ros, entities, {'params_file': str(DEFAULT_PARAMS)})
    assert node.node_name == '/fleet/triton_detect'


def test_preset_by_path(ros_launch):
    launch, launch_ros, module = ros_launch
    preset = PRESETS_DIR / 'jetson.yaml'
    (node,) = _run(launch, launch_ros, [module.generate_launch_description()], {
        'params_file': str(DEFAULT_PARAMS), 'preset': str(preset)})
    expected = dict(_load_parameters(DEFAULT_PARAMS), **_load_parameters(preset))
    assert _node_dict(node) == expected


@pytest.mark.parametrize('configurations', [
    {'preset': 'no_such_preset'},
    {'use_sim_time': 'maybe'},
    {'score_threshold': 'high'},
])
def test_invalid_arguments(ros_launch, configurations):
    launch, launch_ros, module = ros_launch
    configurations = dict(configurations, params_file=str(DEFAULT_PARAMS))
    with pytest.raises(RuntimeError):
        _run(launch, launch_ros, [module.generate_launch_description()], configurations)


# --- Issue 9: layering, bad arguments, exit codes, including ----------------------------


def test_node_keyed_params_file_loses_to_preset_and_arguments(ros_launch, tmp_path):
    """Defect 1: a user file keyed by the node's full name no longer beats preset/arguments."""
    launch, launch_ros, module = ros_launch
    user = tmp_path / 'my.yaml'
    user.write_text(_yaml().safe_dump({'/robot1/triton_detect': {'ros__parameters': {
        'server_url': '127.0.0.1:1111', 'score_threshold': 0.7, 'input_width': 320}},
        '/other_robot/triton_detect': {'ros__parameters': {'input_height': 99}}}))
    (node,) = _run(launch, launch_ros, [module.generate_launch_description()], {
        'params_file': str(user), 'preset': 'jetson', 'namespace': 'robot1',
        'server_url': '127.0.0.1:18251'})
    parameters = _node_dict(node)
    assert parameters['server_url'] == '127.0.0.1:18251'      # argument > preset > file
    assert parameters['score_threshold'] == 0.5               # preset > file
    assert parameters['max_detections'] == 50                 # preset
    assert parameters['input_width'] == 320                   # file > defaults
    assert 'input_height' not in parameters                   # another node's section


def test_missing_params_file_is_an_error(ros_launch, tmp_path):
    launch, launch_ros, module = ros_launch
    with pytest.raises(RuntimeError, match='does not exist'):
        _run(launch, launch_ros, [module.generate_launch_description()],
             {'params_file': str(tmp_path / 'nonexistent.yaml')})


def test_log_level_has_declared_choices(ros_launch):
    launch, launch_ros, module = ros_launch
    with pytest.raises(RuntimeError, match='verbose'):
        _run(launch, launch_ros, [module.generate_launch_description()],
             {'params_file': str(DEFAULT_PARAMS), 'log_level': 'verbose'})
    arguments = {a.name: a for a in module.generate_launch_description().get_launch_arguments()}
    assert arguments['log_level'].choices == ['debug', 'info', 'warn', 'error', 'fatal']


def test_node_exiting_2_makes_the_launch_return_non_zero(ros_launch):
    """Defect 5: a real detect_node exiting 2 (bad server_url) fails the whole launch."""
    import sys

    launch, _, _ = ros_launch
    from triton_ros.ros.launch_support import fail_on_error_exit
    node = launch.actions.ExecuteProcess(
        cmd=[sys.executable, '-m', 'triton_ros.ros.detect_node', '--ros-args',
             '-p', 'server_url:=notaurl'],
        cwd=str(ROOT), output='screen', name='triton_detect')
    sleeper = launch.actions.ExecuteProcess(cmd=['sleep', '120'], name='other_node')
    service = launch.LaunchService()
    service.include_launch_description(
        launch.LaunchDescription([node, sleeper, fail_on_error_exit(node)]))
    assert service.run() == 1   # and the other process was stopped (run() returned)


def _including_file(module_path, forwarding):
    """A robot stack's launch file with arguments of its own, including detect.launch.py."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, GroupAction, IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch_ros.actions import PushRosNamespace, SetRemap
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(module_path)),
        launch_arguments={'params_file': str(DEFAULT_PARAMS), 'preset': 'jetson'}.items())
    return LaunchDescription([
        DeclareLaunchArgument('namespace', default_value='robotB'),
        DeclareLaunchArgument('use_sim_time', default_value='true'),
        DeclareLaunchArgument('log_level', default_value='debug'),
        GroupAction(scoped=True, forwarding=forwarding, actions=[
            PushRosNamespace('robotB'),
            SetRemap('image', '/robotB/camera/image_raw'),
            include]),
    ])


def test_include_pattern_does_not_leak_arguments(ros_launch):
    """Defect 6: the documented include pattern (GroupAction forwarding=False)."""
    launch, launch_ros, _ = ros_launch
    (node,) = _run(launch, launch_ros, [_including_file(LAUNCH_FILE, forwarding=False)], {})
    assert node.node_name == '/robotB/triton_detect'
    assert ('image', '/robotB/camera/image_raw') in node.expanded_remapping_rules
    parameters = _node_dict(node)
    assert 'use_sim_time' not in parameters and parameters['max_detections'] == 50
    assert ['--log-level', 'info'] == _log_level_arguments(node)


def test_plain_include_leaks_arguments(ros_launch):
    """Why the pattern is needed: a forwarding include sees the stack's own arguments."""
    launch, launch_ros, _ = ros_launch
    (node,) = _run(launch, launch_ros, [_including_file(LAUNCH_FILE, forwarding=True)], {})
    assert node.node_name == '/robotB/robotB/triton_detect'
    assert _node_dict(node)['use_sim_time'] is True
    assert ['--log-level', 'debug'] == _log_level_arguments(node)


def _log_level_arguments(node):
    words = [''.join(getattr(s, 'text', '?') for s in part) for part in node.cmd]
    index = words.index('--log-level')
    return words[index:index + 2]


# --- Issue 17: undeclared arguments, autostart, shared pieces ---------------------------------

LAUNCH_FILES = sorted(p.name for p in (ROOT / 'launch').glob('*.launch.py'))


def _include(path, arguments):
    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    return IncludeLaunchDescription(PythonLaunchDescriptionSource(str(path)),
                                    launch_arguments=arguments.items())


@pytest.mark.parametrize('name', LAUNCH_FILES)
def test_an_undeclared_argument_fails_every_launch_file(ros_launch, name):
    """`ros2 launch ... autostrat:=false` was accepted and ignored; now it names the valid ones."""
    launch, launch_ros, _ = ros_launch
    path = ROOT / 'launch' / name
    given = {'autostrat': 'false'}
    if name in ('detect.launch.py', 'tracking.launch.py'):
        given['params_file'] = str(DEFAULT_PARAMS)   # the installed default may be absent
    with pytest.raises(RuntimeError) as raised:
        _run(launch, launch_ros, [_include(path, given)], {})
    message = str(raised.value)
    assert f'{name}: unknown argument(s) autostrat; valid arguments: ' in message
    assert name == 'server.launch.py' or 'log_level' in message


def test_every_launch_file_is_assembled_from_the_shared_pieces():
    """One construction: the check, the log_level choices and the exit check come from it."""
    for name in LAUNCH_FILES:
        text = (ROOT / 'launch' / name).read_text()
        assert 'assemble(' in text, name
        assert 'OpaqueFunction' not in text and 'LaunchDescription([' not in text, name
        if name != 'server.launch.py':   # nodes: ros_node (Node + exit check), log_level
            assert 'ros_node(' in text and 'log_level_argument(' in text, name
            assert 'Node(' not in text, name
        else:                            # processes: each with its own exit check
            assert text.count('fail_on_error_exit(') == 2


def test_autostart_false_reaches_the_node(ros_launch):
    """autostart:=false was declared nowhere: the node went straight to active."""
    launch, launch_ros, module = ros_launch
    (node,) = _run(launch, launch_ros, [_include(LAUNCH_FILE, {
        'params_file': str(DEFAULT_PARAMS), 'autostart': 'false'})], {})
    assert _node_dict(node)['autostart'] is False
    (node,) = _run(launch, launch_ros, [_include(LAUNCH_FILE, {
        'params_file': str(DEFAULT_PARAMS)})], {})
    assert 'autostart' not in _node_dict(node)   # not given: the file's / node's default
    with pytest.raises(RuntimeError, match='autostart'):
        _run(launch, launch_ros, [_include(LAUNCH_FILE, {
            'params_file': str(DEFAULT_PARAMS), 'autostart': 'maybe'})], {})


def test_include_patterns_with_a_stack_argument_of_its_own(ros_launch):
    """The README's include (forwarding=False) from a stack that declares arguments detect does
    not (``map``) passes the check; a typo given to the include still fails."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, GroupAction
    from launch_ros.actions import PushRosNamespace
    launch, launch_ros, _ = ros_launch

    def stack(arguments):
        return LaunchDescription([
            DeclareLaunchArgument('map', default_value='office.yaml'),
            DeclareLaunchArgument('namespace', default_value='robotB'),
            GroupAction(scoped=True, forwarding=False, actions=[
                PushRosNamespace('robotB'), _include(LAUNCH_FILE, arguments)])])

    (node,) = _run(launch, launch_ros, [stack({'params_file': str(DEFAULT_PARAMS),
                                              'autostart': 'false'})], {})
    assert node.node_name == '/robotB/triton_detect'
    assert _node_dict(node)['autostart'] is False
    with pytest.raises(RuntimeError, match=r'unknown argument\(s\) sever_url'):
        _run(launch, launch_ros, [stack({'params_file': str(DEFAULT_PARAMS),
                                         'sever_url': 'gpu:8001'})], {})
