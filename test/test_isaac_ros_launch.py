"""Tests for launch/isaac_ros_remote.launch.py (tensor_node in place of Isaac ROS's Triton node)."""

import ast
import importlib.util
from pathlib import Path

import pytest

from launch_static import declared_arguments, support_function

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / 'launch' / 'isaac_ros_remote.launch.py'
# isaac_ros_triton's binding arguments, plus this file's own.
EXPECTED_ARGUMENTS = {
    'model_name', 'input_tensor_names', 'input_binding_names', 'output_tensor_names',
    'output_binding_names', 'server_url', 'protocol', 'params_file', 'node_name',
    'tensor_input_topic', 'tensor_output_topic', 'namespace', 'log_level',
}
LAUNCH_SKIP_REASON = ('ROS 2 launch/launch_ros are not importable '
                      '(source a ROS 2 distro to run the launch description tests)')


def _tree():
    return ast.parse(LAUNCH_FILE.read_text())


def _declared_defaults():
    return declared_arguments(LAUNCH_FILE)


def _overrides():
    for node in ast.walk(_tree()):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == 'OVERRIDES':
            return {key.value for key in node.value.keys}
    raise AssertionError('no OVERRIDES table')


def _to_list():
    """launch_support.to_list (the launch files' list conversion), compiled alone."""
    yaml = pytest.importorskip('yaml', reason='PyYAML is not installed')
    return support_function('to_list', yaml=yaml)


def test_declares_the_triton_node_arguments():
    defaults = _declared_defaults()
    assert EXPECTED_ARGUMENTS <= set(defaults)
    assert defaults['tensor_input_topic'] == 'tensor_pub'
    assert defaults['tensor_output_topic'] == 'tensor_sub'
    assert defaults['node_name'] == 'triton_node'


def test_overrides_are_node_parameters():
    pytest.importorskip('isaac_ros_tensor_list_interfaces.msg',
                        reason='isaac_ros_tensor_list_interfaces not built')
    from triton_ros.ros.tensor_node import PARAMETERS
    assert _overrides() <= {spec.name for spec in PARAMETERS}
    assert _overrides() <= set(_declared_defaults())


@pytest.mark.parametrize('text,expected', [
    ('["input_tensor"]', ['input_tensor']),  # upstream's spelling
    ("['output_cov/Sigmoid:0', 'output_bbox/BiasAdd:0']",
     ['output_cov/Sigmoid:0', 'output_bbox/BiasAdd:0']),
    ('[""]', []),  # upstream's "unset"
    ('a, b', ['a', 'b']),
    ('input_1:0', ['input_1:0']),
])
def test_list_arguments(text, expected):
    assert _to_list()(text) == expected


@pytest.fixture
def ros_launch():
    launch = pytest.importorskip('launch', reason=LAUNCH_SKIP_REASON)
    launch_ros = pytest.importorskip('launch_ros.actions', reason=LAUNCH_SKIP_REASON)
    if not hasattr(launch, 'LaunchContext'):  # an unrelated PyPI "launch"
        pytest.skip(LAUNCH_SKIP_REASON)
    spec = importlib.util.spec_from_file_location('triton_ros_isaac_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return launch, launch_ros, module


def test_node_replaces_the_triton_node(ros_launch):
    launch, launch_ros, module = ros_launch
    context = launch.LaunchContext()
    context.launch_configurations.update({
        'server_url': 'gpu:8001', 'model_name': 'peoplenet',
        'input_tensor_names': '["input_tensor"]', 'input_binding_names': '["input_1:0"]'})
    nodes = []

    def visit(items):
        for entity in items:
            if isinstance(entity, launch_ros.Node):
                entity._perform_substitutions(context)
                nodes.append(entity)
                continue
            visit(entity.visit(context) or [])

    visit([module.generate_launch_description()])
    (node,) = nodes
    assert node.node_executable == 'tensor_node'
    assert node.node_name.rsplit('/', 1)[-1] == 'triton_node'
    assert node.expanded_remapping_rules == [('tensor_pub', 'tensor_pub'),
                                             ('tensor_sub', 'tensor_sub')]


def test_log_level_has_choices_and_the_node_an_exit_check(ros_launch):
    """Issue 17: no choices, and tensor_node exiting 2 left ``ros2 launch`` returning 0."""
    launch, launch_ros, module = ros_launch
    description = module.generate_launch_description()
    arguments = {a.name: a for a in description.get_launch_arguments()}
    assert arguments['log_level'].choices == ['debug', 'info', 'warn', 'error', 'fatal']
    context = launch.LaunchContext()
    context.launch_configurations['log_level'] = 'verbose'
    with pytest.raises(RuntimeError, match='verbose'):
        for entity in description.entities:
            entity.visit(context)
