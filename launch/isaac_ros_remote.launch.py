"""Launch ``tensor_node`` in place of Isaac ROS's Triton node, against a remote Triton server.

In an Isaac ROS detection graph (DNN image encoder -> ``isaac_ros_triton`` -> decoder, e.g.
DetectNet, YOLOv8 or RT-DETR) drop the ``TritonNode`` composable node and include this file
instead: it subscribes ``tensor_pub`` and publishes ``tensor_sub``
(``isaac_ros_tensor_list_interfaces/TensorList``) like the Triton node, takes its binding
arguments (lists written as upstream writes them, e.g. ``'["input_tensor"]'``), and sends the
tensors to ``server_url`` instead of running Triton in-process. See docs/isaac_ros.md.

Parameters, later layers winning: ``params_file`` (optional; connection settings such as TLS
or auth), then the arguments given here (only when non-empty).

Example (PeopleNet / DetectNet graph, model served by a GPU server)::

    ros2 launch triton_ros isaac_ros_remote.launch.py server_url:=gpu-server:8001 \\
      model_name:=peoplenet input_binding_names:='["input_1:0"]' \\
      output_tensor_names:='["output_cov", "output_bbox"]' \\
      output_binding_names:='["output_cov/Sigmoid:0", "output_bbox/BiasAdd:0"]'
"""

import yaml
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.actions import GroupAction
from launch.actions import OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.actions import PushRosNamespace

PACKAGE = 'triton_ros'
EXECUTABLE = 'tensor_node'


def _to_list(value):
    """Convert '["a", "b"]' (upstream's style), 'a, b' or 'a' to a list of strings."""
    value = value.strip()
    if value.startswith('['):
        parsed = yaml.safe_load(value)
        if not isinstance(parsed, list):
            raise ValueError(f"expected a list, got '{value}'")
        return [str(item) for item in parsed if str(item)]
    return [item.strip() for item in value.split(',') if item.strip()]


# Launch arguments passed on as parameters only when non-empty, with their conversion.
OVERRIDES = {
    'server_url': str,
    'protocol': str,
    'model_name': str,
    'model_version': str,
    'input_tensor_names': _to_list,
    'input_binding_names': _to_list,
    'output_tensor_names': _to_list,
    'output_binding_names': _to_list,
}


def build_parameters(context):
    """Return the Node parameter list: params_file < given overrides."""
    parameters = []
    params_file = LaunchConfiguration('params_file').perform(context).strip()
    if params_file:
        parameters.append(params_file)
    overrides = {}
    for name, convert in OVERRIDES.items():
        value = LaunchConfiguration(name).perform(context).strip()
        if value:
            try:
                converted = convert(value)
            except (ValueError, yaml.YAMLError) as error:
                raise RuntimeError(f"invalid value for '{name}': {error}") from error
            if converted != []:
                overrides[name] = converted
    if overrides:
        parameters.append(overrides)
    return parameters


def launch_setup(context, *args, **kwargs):
    """Build the tensor node from the evaluated launch arguments."""
    namespace = LaunchConfiguration('namespace').perform(context).strip()
    log_level = LaunchConfiguration('log_level').perform(context).strip()
    node = Node(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=LaunchConfiguration('node_name').perform(context),
        output='screen',
        parameters=build_parameters(context),
        remappings=[
            ('tensor_pub', LaunchConfiguration('tensor_input_topic').perform(context)),
            ('tensor_sub', LaunchConfiguration('tensor_output_topic').perform(context)),
        ],
        arguments=['--ros-args', '--log-level', log_level] if log_level else [],
    )
    actions = [PushRosNamespace(namespace)] if namespace else []
    return [GroupAction(actions + [node])]


def generate_launch_description():
    """Declare the launch arguments and the tensor node."""
    return LaunchDescription([
        DeclareLaunchArgument(
            'server_url', default_value='',
            description='Triton server host:port (gRPC usually 8001, HTTP 8000). '
                        'Empty keeps the params_file value (else 127.0.0.1:8001).'),
        DeclareLaunchArgument(
            'protocol', default_value='', choices=['', 'grpc', 'http'],
            description='Triton client protocol. Empty keeps the params_file value.'),
        DeclareLaunchArgument(
            'model_name', default_value='',
            description='Model name in the server\'s repository (as isaac_ros_triton\'s '
                        'model_name). Empty keeps the params_file value.'),
        DeclareLaunchArgument(
            'model_version', default_value='',
            description='Model version. Empty: the params_file value, else the latest.'),
        DeclareLaunchArgument(
            'input_tensor_names', default_value='',
            description='Tensors of the incoming TensorList fed to the model, e.g. '
                        '\'["input_tensor"]\' (the DNN image encoder\'s tensor_name). Empty: '
                        'the params_file value, else the model inputs by their own names.'),
        DeclareLaunchArgument(
            'input_binding_names', default_value='',
            description='Model inputs fed by input_tensor_names, same order, e.g. '
                        '\'["input_1:0"]\'. Empty: the params_file value, else the model '
                        'inputs by their own names.'),
        DeclareLaunchArgument(
            'output_tensor_names', default_value='',
            description='Names the model outputs are published under (what the decoder '
                        'expects), paired with output_binding_names.'),
        DeclareLaunchArgument(
            'output_binding_names', default_value='',
            description='Model outputs to publish, same order as output_tensor_names. '
                        'Both empty: every model output under its own name.'),
        DeclareLaunchArgument(
            'params_file', default_value='',
            description='Optional parameter YAML (TLS, auth, shared_memory, timeouts, QoS), '
                        'applied first. Empty for none.'),
        DeclareLaunchArgument(
            'node_name', default_value='triton_node',
            description='Node name (Isaac ROS graphs call their Triton node triton_node).'),
        DeclareLaunchArgument(
            'tensor_input_topic', default_value='tensor_pub',
            description='Input TensorList topic (the encoder\'s output), remapped onto '
                        'the relative "tensor_pub".'),
        DeclareLaunchArgument(
            'tensor_output_topic', default_value='tensor_sub',
            description='Output TensorList topic (the decoder\'s input), remapped onto '
                        'the relative "tensor_sub".'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace pushed for the node. Empty for none.'),
        DeclareLaunchArgument(
            'log_level', default_value='info',
            description='Logging level: debug, info, warn, error or fatal.'),
        OpaqueFunction(function=launch_setup),
    ])
