"""Packaging: `colcon build` of the ament_python package installs what `ros2 run/launch` need,
and the installed tools work from outside the checkout, as a user of the package runs them: the
replay with a local server, the local_triton_server tool, the pytest plugin in another package's
tests. The server venv is found as scripts/bootstrap.sh leaves it (its record, written here with
the same command into a scratch XDG_CONFIG_HOME) or through TRITON_ROS_SERVER_VENV; with neither,
the one error line."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import SAMPLE_BAG, wait_until
from triton_ros.tools.local_server import free_ports

REPO = Path(__file__).resolve().parents[2]
SERVER_VENV = REPO / ".venv-server"


def test_package_xml_declares_runtime_dependencies():
    catkin_pkg = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg not installed")
    package = catkin_pkg.parse_package(str(REPO / "package.xml"))
    assert package.package_format == 3
    assert package.get_build_type() == "ament_python"
    runtime = {d.name for d in package.exec_depends}
    for needed in ("rclpy", "sensor_msgs", "std_msgs", "vision_msgs", "diagnostic_msgs",
                   "cv_bridge", "python3-numpy", "python3-opencv", "launch_ros"):
        assert needed in runtime, needed


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory):
    """(workspace, install prefix of triton_ros, env for the installed package): a colcon build
    of the checkout in a scratch workspace; the env has no checkout on any path."""
    colcon = Path(sys.prefix) / "bin" / "colcon"
    if not colcon.exists():
        colcon = shutil.which("colcon")
    if colcon is None:
        pytest.skip("colcon is not installed")
    workspace = tmp_path_factory.mktemp("colcon_ws")
    env = dict(os.environ, PATH=f"{Path(sys.prefix) / 'bin'}:{os.environ['PATH']}")
    result = subprocess.run(
        [str(colcon), "build", "--base-paths", str(REPO), "--build-base", str(workspace / "build"),
         "--install-base", str(workspace / "install")],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = workspace / "install" / "triton_ros"
    site = next((prefix / "lib").glob("python3*/site-packages"))
    run_env = {k: v for k, v in env.items()
               if k not in ("PYTHONPATH", "TRITON_ROS_SERVER_VENV", "XDG_CONFIG_HOME")}
    run_env.update(PYTHONPATH=str(site), AMENT_PREFIX_PATH=f"{prefix}:{sys.prefix}")
    return workspace, prefix, run_env


def test_colcon_build_installs_nodes_launch_and_config(colcon_install):
    tmp_path, prefix, run_env = colcon_install
    share = prefix / "share" / "triton_ros"
    for path in (prefix / "lib" / "triton_ros" / "detect_node",
                 prefix / "lib" / "triton_ros" / "track_node",
                 prefix / "lib" / "triton_ros" / "sensor_sequence_node",
                 prefix / "lib" / "triton_ros" / "tensor_node",
                 share / "launch" / "fleet.launch.py",
                 share / "launch" / "isaac_ros_remote.launch.py",
                 share / "config" / "model_repository" / "ssd_mobilenet_v2_coco_yolo_head" / "1"
                 / "model.py",  # a symlink in the repository: installed as a real file
                 share / "config" / "model_repository" / "simple_tracker" / "config.pbtxt",
                 prefix / "share" / "ament_index" / "resource_index" / "packages" / "triton_ros",
                 share / "package.xml", share / "launch" / "detect.launch.py",
                 share / "config" / "detect.yaml", share / "config" / "fastdds-localhost.xml",
                 share / "config" / "presets" / "jetson.yaml",
                 share / "config" / "labels" / "coco90.txt",
                 share / "config" / "model_repository" / "ssd_mobilenet_v2_coco" / "config.pbtxt",
                 share / "config" / "model_repository" / "ssd_mobilenet_v2_coco" / "1" / "model.py"):
        assert path.exists(), f"colcon did not install {path.relative_to(tmp_path)}"
    # The installed entry point runs (a bad parameter is rejected with exit code 2).
    node = subprocess.run([sys.executable, str(prefix / "lib" / "triton_ros" / "detect_node"),
                           "--ros-args", "-p", "protocol:=ftp"], cwd=tmp_path, env=run_env,
                          capture_output=True, text=True, timeout=60)
    assert node.returncode == 2, node.stdout + node.stderr
    assert "protocol='ftp'" in node.stderr


def installed(prefix: Path, tool: str) -> list[str]:
    return [sys.executable, str(prefix / "lib" / "triton_ros" / tool)]


def outside(tmp_path: Path) -> Path:
    """A working directory outside the checkout."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir(exist_ok=True)
    assert REPO not in cwd.parents
    return cwd


def record_env(colcon_install, tmp_path) -> dict:
    """The installed package's env with a server-venv record (as bootstrap.sh writes it, by the
    same command) in a scratch XDG_CONFIG_HOME, and no TRITON_ROS_SERVER_VENV."""
    _, prefix, run_env = colcon_install
    env = dict(run_env, XDG_CONFIG_HOME=str(tmp_path / "config"))
    subprocess.run([sys.executable, "-m", "triton_ros.tools.server_venv", "--record",
                    str(SERVER_VENV)], env=env, cwd=outside(tmp_path), check=True, timeout=60)
    assert (tmp_path / "config" / "triton_ros" / "server_venv").read_text().strip() == \
        str(SERVER_VENV.resolve())
    return env


def test_installed_tools_say_in_one_line_where_they_looked_for_the_server(colcon_install,
                                                                          tmp_path):
    _, prefix, run_env = colcon_install
    env = dict(run_env, XDG_CONFIG_HOME=str(tmp_path / "empty_config"))
    for command in (installed(prefix, "local_triton_server"),
                    installed(prefix, "replay") + [str(SAMPLE_BAG), "--start", "detect",
                                                   "--local-server", "--frames", "1",
                                                   "--out", str(tmp_path / "out")]):
        proc = subprocess.run(command, env=env, cwd=outside(tmp_path), capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        for where in ("--server-venv: not given", "TRITON_ROS_SERVER_VENV: not set",
                      f"record {tmp_path / 'empty_config' / 'triton_ros' / 'server_venv'}: none",
                      "scripts/bootstrap.sh"):
            assert where in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def test_installed_replay_with_a_local_server_from_outside_the_checkout(colcon_install,
                                                                         tmp_path):
    """TRITON_ROS_SERVER_VENV given explicitly; the model repository is the installed one."""
    _, prefix, run_env = colcon_install
    env = dict(run_env, TRITON_ROS_SERVER_VENV=str(SERVER_VENV))
    out = tmp_path / "out"
    proc = subprocess.run(installed(prefix, "replay") + [
        str(SAMPLE_BAG), "--start", "detect", "--local-server", "--lock-step", "--frames", "3",
        "--out", str(out)], env=env, cwd=outside(tmp_path), capture_output=True, text=True,
        timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr + "".join(
        p.read_text()[-2000:] for p in out.glob("*.log"))
    import json
    frames = json.loads((out / "detections.json").read_text())["frames"]
    assert len(frames) == 3 and all(f["processed"] and f["detections"] for f in frames)
    # ... and the model repository it served is the installed one, not a checkout's.
    where = subprocess.run([sys.executable, "-c", "from triton_ros.resources import config_path;"
                            "print(config_path('model_repository'))"], env=env,
                           cwd=outside(tmp_path), capture_output=True, text=True, timeout=60)
    assert Path(where.stdout.strip()).is_relative_to(prefix), where.stdout + where.stderr


def test_installed_local_server_found_through_the_record_starts_and_stops(colcon_install,
                                                                          tmp_path):
    _, prefix, _ = colcon_install
    env = record_env(colcon_install, tmp_path)
    ports = free_ports(3)
    log = tmp_path / "server_tool.log"
    with open(log, "wb") as out:
        tool = subprocess.Popen(
            installed(prefix, "local_triton_server") + [
                "--model", "simple_tracker", "--http-port", str(ports[0]),
                "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2])],
            env=env, cwd=outside(tmp_path), stdout=out, stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert wait_until(lambda: "tritonserver ready" in log.read_text(errors="replace")
                          or tool.poll() is not None, 180), log.read_text()
        assert tool.poll() is None, log.read_text()
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/v2/models/simple_tracker/"
                                    "ready", timeout=5) as reply:
            assert reply.status == 200
        tool.send_signal(signal.SIGINT)
        assert tool.wait(60) == 0, log.read_text()
        assert "Traceback" not in log.read_text(errors="replace")
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()


def write_bag_with_topic(source: Path, out: Path, topic: str, frames: int) -> Path:
    """The first ``frames`` images of ``source``'s /camera/image_raw, on ``topic``."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    typestore = get_typestore(Stores.ROS2_KILTED)
    with Reader(source) as reader, Writer(out, version=9,
                                          storage_plugin=StoragePlugin.MCAP) as writer:
        conns = [c for c in reader.connections if c.topic == "/camera/image_raw"]
        conn = writer.add_connection(topic, conns[0].msgtype, typestore=typestore)
        for index, (_, log_ns, raw) in enumerate(reader.messages(connections=conns)):
            if index >= frames:
                break
            writer.write(conn, log_ns, bytes(raw))
    return out


PLUGIN_TEST = """\
import os
from pathlib import Path

import triton_ros


def test_replay_of_a_front_camera_bag(triton_replay):
    # the installed package, not a checkout
    assert Path(triton_ros.__file__).is_relative_to({prefix!r}), triton_ros.__file__
    result = triton_replay({bag!r}, image_topic="/front_camera/image_raw", frames=3,
                           params={{"score_threshold": 0.5}})  # server_url=None: a local server
    frames = result.detections["frames"]
    assert len(frames) == 3 and all(f["processed"] and f["detections"] for f in frames)
    assert result.summary["unanswered"] == {{"/camera/detections": 0}}
    # the CI's domain is honoured
    assert "ROS_DOMAIN_ID=" + os.environ["ROS_DOMAIN_ID"] + ")" in result.log, result.log
"""


def test_pytest_plugin_in_another_package(colcon_install, tmp_path):
    """Another package's tests: its own conftest enables the plugin, a bag whose image topic is
    not /camera/image_raw, the server found through the record, ROS_DOMAIN_ID honoured; run
    from outside the checkout with only the colcon install on PYTHONPATH."""
    _, prefix, _ = colcon_install
    env = record_env(colcon_install, tmp_path)
    env["ROS_DOMAIN_ID"] = str(int(os.environ.get("ROS_DOMAIN_ID", "0")) % 100 + 101)
    bag = write_bag_with_topic(SAMPLE_BAG, tmp_path / "front_bag", "/front_camera/image_raw", 3)
    package = tmp_path / "other_pkg"
    (package / "test").mkdir(parents=True)
    (package / "test" / "conftest.py").write_text('pytest_plugins = ["triton_ros.testing"]\n')
    (package / "test" / "test_detections.py").write_text(
        PLUGIN_TEST.format(prefix=str(prefix), bag=str(bag)))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test"], env=env, cwd=package, capture_output=True, text=True,
                          timeout=500)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout, proc.stdout
