"""Packaging: `colcon build` of the ament_python package installs what `ros2 run/launch` need."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_package_xml_declares_runtime_dependencies():
    catkin_pkg = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg not installed")
    package = catkin_pkg.parse_package(str(REPO / "package.xml"))
    assert package.package_format == 3
    assert package.get_build_type() == "ament_python"
    runtime = {d.name for d in package.exec_depends}
    for needed in ("rclpy", "sensor_msgs", "std_msgs", "vision_msgs", "diagnostic_msgs",
                   "cv_bridge", "python3-numpy", "python3-opencv", "launch_ros"):
        assert needed in runtime, needed


def test_colcon_build_installs_nodes_launch_and_config(tmp_path):
    colcon = Path(sys.prefix) / "bin" / "colcon"
    if not colcon.exists():
        colcon = shutil.which("colcon")
    if colcon is None:
        pytest.skip("colcon is not installed")
    env = dict(os.environ, PATH=f"{Path(sys.prefix) / 'bin'}:{os.environ['PATH']}")
    result = subprocess.run(
        [str(colcon), "build", "--base-paths", str(REPO), "--build-base", str(tmp_path / "build"),
         "--install-base", str(tmp_path / "install")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = tmp_path / "install" / "triton_ros"
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
    site = next((prefix / "lib").glob("python3*/site-packages"))
    run_env = dict(env, PYTHONPATH=str(site), AMENT_PREFIX_PATH=f"{prefix}:{sys.prefix}")
    node = subprocess.run([sys.executable, str(prefix / "lib" / "triton_ros" / "detect_node"),
                           "--ros-args", "-p", "protocol:=ftp"], cwd=tmp_path, env=run_env,
                          capture_output=True, text=True, timeout=60)
    assert node.returncode == 2, node.stdout + node.stderr
    assert "protocol='ftp'" in node.stderr
