"""Launch ``tensor_node`` in place of Isaac ROS's Triton node, against a remote Triton server.

In an Isaac ROS detection graph (DNN image encoder -> ``isaac_ros_triton`` -> decoder, e.g.
DetectNet, YOLOv8 or RT-DETR) drop the ``TritonNode`` composable node and include this file
instead: it subscribes ``tensor_pub`` and publishes ``tensor_sub``
(``isaac_ros_tensor_list_interfaces/TensorList``) like the Triton node, takes its binding
arguments (lists written as upstream writes them, e.g. ``'["input_tensor"]'``), and sends the
tensors to ``server_url`` instead of running Triton in-process. See docs/isaac_ros.md.

Parameters, later layers winning: ``params_file`` (optional; connection settings such as TLS
or auth), then the arguments given here (only when non-empty). Assembled from
:mod:`triton_ros.ros.launch_support`: ``tensor_node`` exiting non-zero (e.g. 2, a configuration
error) stops the launch and ``ros2 launch`` returns non-zero; ``log_level`` has declared choices;
an argument this file does not declare fails the launch with the list of valid ones.

Example (PeopleNet / DetectNet graph, model served by a GPU server)::

    ros2 launch triton_ros isaac_ros_remote.launch.py server_url:=gpu-server:8001 \\
      model_name:=peoplenet input_binding_names:='["input_1:0"]' \\
      output_tensor_names:='["output_cov", "output_bbox"]' \\
      output_binding_names:='["output_cov/Sigmoid:0", "output_bbox/BiasAdd:0"]'
"""

from launch.actions import DeclareLaunchArgument

from triton_ros.ros.launch_support import (arg, assemble, given_overrides, group,
                                           log_level_argument, namespace_argument, ros_node,
                                           to_list)

PACKAGE = 'triton_ros'
EXECUTABLE = 'tensor_node'

# Launch arguments passed on as parameters only when non-empty, with their conversion.
OVERRIDES = {
    'server_url': str,
    'protocol': str,
    'model_name': str,
    'model_version': str,
    'input_tensor_names': to_list,
    'input_binding_names': to_list,
    'output_tensor_names': to_list,
    'output_binding_names': to_list,
}


def build_parameters(context):
    """Return the Node parameter list: params_file < given overrides."""
    params_file = arg(context, 'params_file')
    overrides = given_overrides(context, OVERRIDES)
    return ([params_file] if params_file else []) + ([overrides] if overrides else [])


def setup(context):
    """The tensor node (and its exit check) in ``namespace``."""
    return group(arg(context, 'namespace'), ros_node(
        context, EXECUTABLE, arg(context, 'node_name'), build_parameters(context),
        remappings=[('tensor_pub', arg(context, 'tensor_input_topic')),
                    ('tensor_sub', arg(context, 'tensor_output_topic'))]))


def generate_launch_description():
    """Declare the launch arguments and the tensor node."""
    return assemble([
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
        namespace_argument('Namespace pushed for the node. Empty for none.'),
        log_level_argument(),
    ], setup)
