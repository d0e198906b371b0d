"""The launch files through the real ``ros2 launch`` command, as a user runs them (issue 17).

Needs the ROS 2 command line (``ros2``, ros2launch) and this package installed where ament finds
it (a colcon install, sourced): skipped otherwise, with that reason. Each test reads what a user
sees: the exit code, the message, and the running node's state and parameters over its services.
"""
import os
import shutil
import signal
import subprocess

import pytest

from helpers import wait_until
from test_detect_lifecycle import get_parameters, state

UNREACHABLE = '127.0.0.1:1'


def _installed() -> str | None:
    """Why the tests cannot run here, or None."""
    if shutil.which('ros2') is None:
        return 'the ros2 command (ros2cli, ros2launch) is not installed'
    try:
        from ament_index_python.packages import get_package_prefix
        prefix = get_package_prefix('triton_ros')
    except Exception as exc:  # noqa: BLE001 - PackageNotFoundError, or no AMENT_PREFIX_PATH
        return f'triton_ros is not installed in the ament index ({exc})'
    if not os.path.exists(os.path.join(prefix, 'lib', 'triton_ros', 'detect_node')):
        return f'no lib/triton_ros/detect_node under {prefix} (install with colcon)'
    return None


pytestmark = pytest.mark.skipif(_installed() is not None, reason=str(_installed()))


class Launch:
    """``ros2 launch triton_ros <file> <arguments>`` in its own session, output to a file."""

    def __init__(self, tmp_path, file, arguments, env=None):
        self.log = tmp_path / f'{file}.log'
        self._out = open(self.log, 'wb')
        self.process = subprocess.Popen(
            ['ros2', 'launch', 'triton_ros', file, *arguments], stdout=self._out,
            stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})),
            start_new_session=True,
            # as a terminal gives it (a non-interactive shell's background jobs ignore SIGINT)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors='replace')

    def wait(self, timeout_s=90.0) -> int:
        """The exit code; the whole process group killed (and TimeoutExpired) if it hangs."""
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
            raise
        finally:
            self._out.close()

    def interrupt(self, timeout_s=60.0) -> int:
        """Ctrl-C (SIGINT to ros2 launch) and its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.wait(timeout_s)


def test_undeclared_argument_fails_with_the_valid_ones(tmp_path):
    launch = Launch(tmp_path, 'detect.launch.py', ['autostrat:=false'])
    assert launch.wait() == 1, launch.output()
    assert 'unknown argument(s) autostrat; valid arguments: autostart, cameras' in launch.output()
    assert 'process started' not in launch.output()   # failed before starting anything


def test_autostart_false_and_typed_values_reach_the_running_node(tmp_path, ros_node):
    launch = Launch(tmp_path, 'detect.launch.py', [
        'autostart:=false', f'server_url:={UNREACHABLE}', 'model_version:=1',
        'namespace:=robot7'])
    try:
        node = '/robot7/triton_detect'
        assert state(ros_node, node, timeout_s=60.0) == 'unconfigured', launch.output()
        assert get_parameters(ros_node, node, ['autostart', 'model_version', 'server_url']) == {
            'autostart': False, 'model_version': '1', 'server_url': UNREACHABLE}
    finally:
        code = launch.interrupt()
    assert code == 0, launch.output()


def test_isaac_ros_remote_returns_non_zero_when_tensor_node_exits_2(tmp_path):
    pytest.importorskip('isaac_ros_tensor_list_interfaces.msg',
                        reason='isaac_ros_tensor_list_interfaces not built')
    launch = Launch(tmp_path, 'isaac_ros_remote.launch.py', ['server_url:=notaurl'])
    assert launch.wait() == 1, launch.output()
    assert '[/triton_node] configuration error' in launch.output()
    assert 'exited with code 2; stopping the launch' in launch.output()


def test_tracking_container_leaves_no_parameter_file(tmp_path, ros_node):
    temporary = tmp_path / 'tmp'
    temporary.mkdir()
    launch = Launch(tmp_path, 'tracking.launch.py', [
        'container:=true', 'autostart:=false', f'server_url:={UNREACHABLE}',
        'namespace:=robot8'], env={'TMPDIR': str(temporary)})
    try:
        # both nodes of the container up with their sections of the file
        assert get_parameters(ros_node, '/robot8/triton_track', ['robot_id'],
                              timeout_s=60.0) == {'robot_id': 1}, launch.output()
        written = list(temporary.glob('triton_ros_container_*.yaml'))
        assert len(written) == 1, launch.output()   # the file exists while the launch runs
    finally:
        code = launch.interrupt()
    assert code == 0, launch.output()
    assert wait_until(lambda: not written[0].exists(), 5.0), launch.output()
    assert not list(temporary.glob('triton_ros_container_*.yaml'))
