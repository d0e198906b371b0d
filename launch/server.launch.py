"""Start a Triton Inference Server with a model repository and wait until it is ready.

``server`` picks the binary:

- ``bundled`` (default): the tritonserver 2.51 inside the nvidia-pytriton wheel of the server
  venv (python backend), via ``python -m triton_ros.tools.local_server``;
- ``command``: any tritonserver binary, e.g. JetPack's ``/opt/tritonserver/bin/tritonserver``
  or ``tritonserver`` inside an NGC container; it gets ``--model-repository``, the addresses
  and ports, and ``extra_args`` (e.g. ``--backend-directory=...``).

A second process polls ``http://<address>:<http_port>/v2/health/ready`` (and each model of
``wait_for_models``) for ``ready_timeout_s``: it logs ``tritonserver ready`` or stops the launch
with a non-zero return code, as does the server exiting non-zero. An argument this file does not
declare fails the launch with the list of valid ones (:mod:`triton_ros.ros.launch_support`).

Examples::

    ros2 launch triton_ros server.launch.py
    ros2 launch triton_ros server.launch.py server:=command \\
        command:=/opt/tritonserver/bin/tritonserver model_repository:=/models
"""

import shlex
import sys

from launch.actions import DeclareLaunchArgument
from launch.actions import ExecuteProcess
from launch.substitutions import PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from triton_ros.ros.launch_support import arg as launch_arg
from triton_ros.ros.launch_support import assemble, fail_on_error_exit

PACKAGE = 'triton_ros'


def server_command(context):
    """Return the server's command line for the evaluated arguments (RuntimeError if bad)."""
    def arg(name):
        return launch_arg(context, name)

    ports = {}
    for name in ('http_port', 'grpc_port', 'metrics_port'):
        try:
            ports[name] = int(arg(name))
        except ValueError:
            raise RuntimeError(f"invalid value for '{name}': {arg(name)!r} is not a port") \
                from None
        if not 0 < ports[name] < 65536:
            raise RuntimeError(f"invalid value for '{name}': {ports[name]} is not a port")
    repository = arg('model_repository')
    if arg('server') == 'bundled':
        command = [sys.executable, '-m', 'triton_ros.tools.local_server',
                   '--model-repository', repository,
                   '--http-port', str(ports['http_port']), '--grpc-port', str(ports['grpc_port']),
                   '--metrics-port', str(ports['metrics_port'])]
        for model in _models(arg('wait_for_models')):
            command += ['--model', model]
        if arg('server_venv'):
            command += ['--server-venv', arg('server_venv')]
        return command
    if not arg('command'):
        raise RuntimeError("server:=command needs command:=<path to tritonserver>")
    address = arg('address')
    return shlex.split(arg('command')) + [
        f'--model-repository={repository}',
        f'--http-address={address}', f'--http-port={ports["http_port"]}',
        f'--grpc-address={address}', f'--grpc-port={ports["grpc_port"]}',
        f'--metrics-address={address}', f'--metrics-port={ports["metrics_port"]}',
    ] + shlex.split(arg('extra_args'))


def _models(value):
    return [m.strip() for m in value.split(',') if m.strip()]


def setup(context):
    """The server process, its readiness waiter, and exit checks on both."""
    def arg(name):
        return launch_arg(context, name)

    try:
        timeout = float(arg('ready_timeout_s'))
    except ValueError:
        raise RuntimeError(f"invalid value for 'ready_timeout_s': {arg('ready_timeout_s')!r}") \
            from None
    host = arg('address') if arg('server') == 'command' else '127.0.0.1'
    host = '127.0.0.1' if host in ('0.0.0.0', '') else host
    server = ExecuteProcess(cmd=server_command(context), name='tritonserver', output='screen',
                            sigterm_timeout='10')
    waiter_cmd = [sys.executable, '-m', 'triton_ros.tools.wait_ready',
                  f"{host}:{arg('http_port')}", '--timeout', str(timeout)]
    for model in _models(arg('wait_for_models')):
        waiter_cmd += ['--model', model]
    waiter = ExecuteProcess(cmd=waiter_cmd, name='wait_ready', output='screen')
    return [server, waiter, fail_on_error_exit(server), fail_on_error_exit(waiter)]


def generate_launch_description():
    """Declare the launch arguments, the server and its readiness check."""
    return assemble([
        DeclareLaunchArgument(
            'server', default_value='bundled', choices=['bundled', 'command'],
            description='bundled: the pytriton tritonserver of the server venv; command: the '
                        'binary given in "command" (JetPack, NGC container, ...).'),
        DeclareLaunchArgument(
            'server_venv', default_value='',
            description='server:=bundled: the venv holding nvidia-pytriton; empty = '
                        'TRITON_ROS_SERVER_VENV, the path scripts/bootstrap.sh recorded, or the '
                        "checkout's .venv-server (the first that exists)."),
        DeclareLaunchArgument(
            'command', default_value='',
            description='tritonserver command line for server:=command, e.g. '
                        '/opt/tritonserver/bin/tritonserver.'),
        DeclareLaunchArgument(
            'model_repository',
            default_value=PathJoinSubstitution(
                [FindPackageShare(PACKAGE), 'config', 'model_repository']),
            description='Model repository directory.'),
        DeclareLaunchArgument(
            'address', default_value='127.0.0.1',
            description='Address the server binds (server:=command); the bundled one binds '
                        '127.0.0.1.'),
        DeclareLaunchArgument('http_port', default_value='8000', description='HTTP port.'),
        DeclareLaunchArgument('grpc_port', default_value='8001', description='gRPC port.'),
        DeclareLaunchArgument('metrics_port', default_value='8002', description='Metrics port.'),
        DeclareLaunchArgument(
            'extra_args', default_value='',
            description='More tritonserver arguments (server:=command), shell-quoted.'),
        DeclareLaunchArgument(
            'wait_for_models', default_value='',
            description='Comma-separated models to wait for (bundled: also the only models '
                        'loaded). Empty: wait for server readiness only.'),
        DeclareLaunchArgument(
            'ready_timeout_s', default_value='120',
            description='Seconds to wait for readiness before stopping the launch.'),
    ], setup)
