"""Fixtures with real parts: a tritonserver process, detect node processes, an rclpy probe."""
import os
import threading
from pathlib import Path

import pytest

from helpers import SAMPLE_BAG
from triton_ros.tools.node_process import NodeProcess



@pytest.fixture(scope="session")
def triton_server(tmp_path_factory):
    """A real tritonserver on 127.0.0.1 serving every model of config/model_repository."""
    from triton_ros.resources import config_path
    from triton_ros.tools.local_server import LocalTritonServer
    models = sorted(p.parent.name for p in config_path("model_repository").glob("*/config.pbtxt"))
    # Ports are picked free (free_port) but only bound when the server starts: another process
    # may take one in between. Such a start fails with "already in use": retry on new ports.
    for attempt in range(3):
        log = tmp_path_factory.mktemp("triton") / "server.log"
        server = LocalTritonServer(log_path=log, models=models)
        try:
            server.start(timeout_s=120)
            break
        except Exception as exc:
            text = log.read_text() if log.exists() else ""
            if "already in use" in text and attempt < 2:
                continue
            pytest.fail(f"tritonserver did not start ({exc}); log:\n{text[-3000:]}")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def sample_bag() -> Path:
    if not (SAMPLE_BAG / "metadata.yaml").is_file():
        pytest.fail(f"sample bag missing at {SAMPLE_BAG}: run scripts/bootstrap.sh")
    return SAMPLE_BAG


@pytest.fixture
def start_node(tmp_path):
    """Factory: start_node(module, params, remaps=None, namespace='') -> NodeProcess."""
    started = []

    def start(module, params, remaps=None, namespace=""):
        node = NodeProcess(module, params, remaps, namespace,
                           tmp_path / f"node{len(started)}.log")
        started.append(node)
        return node

    yield start
    for node in started:
        node.stop()


@pytest.fixture
def ros_node():
    """An rclpy test node spun by a background executor thread."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f"test_probe_{os.getpid()}", context=context)
    executor = SingleThreadedExecutor(context=context)  # multi-threaded starves publishers
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    executor.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=context)
    thread.join(timeout=5)
