"""Start and stop a local tritonserver (the binary shipped in ``nvidia-pytriton``) on 127.0.0.1.

The server runs from its own venv (``TRITON_ROS_SERVER_VENV``, default ``<repo>/.venv-server``):
pytriton pins numpy<2 while rclpy's environment has numpy 2, so the two talk over HTTP/gRPC.
Only the python backend is available in that build; the repository's models use it.

Usage as a tool (runs until Ctrl-C / SIGTERM)::

    python -m triton_ros.tools.local_server --grpc-port 8001 --http-port 8000
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from triton_ros.resources import config_path, share_dir

SERVER_VENV_ENV = "TRITON_ROS_SERVER_VENV"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def default_server_venv() -> Path:
    return Path(os.environ.get(SERVER_VENV_ENV, share_dir() / ".venv-server"))


class LocalTritonServer:
    """A tritonserver child process bound to 127.0.0.1 (context manager).

    Ports of 0 are replaced by free ones. ``models``: load only these (explicit model control);
    default: every model in the repository. ``grpc_url``/``http_url`` are ``host:port`` strings as
    tritonclient expects them.
    """

    def __init__(self, model_repository: Path | None = None, server_venv: Path | None = None,
                 http_port: int = 0, grpc_port: int = 0, metrics_port: int = 0,
                 log_path: Path | None = None, extra_args: list[str] | None = None,
                 models: list[str] | None = None):
        self.model_repository = Path(model_repository or config_path("model_repository"))
        self.server_venv = Path(server_venv or default_server_venv())
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.log_path = log_path
        self.extra_args = list(extra_args or [])
        self.models = list(models or [])
        self.shm_prefix = f"triton_ros_pybackend_{os.getpid()}_{id(self) & 0xffffff:x}_"
        self.process: subprocess.Popen | None = None
        self._workdir: Path | None = None
        self._log_file = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def _site_packages(self) -> Path:
        found = sorted(self.server_venv.glob("lib/python3*/site-packages/pytriton"))
        if not found:
            raise FileNotFoundError(
                f"no nvidia-pytriton in {self.server_venv}; run scripts/bootstrap.sh "
                f"or set {SERVER_VENV_ENV}")
        return found[0].parent

    def command_and_env(self) -> tuple[list[str], dict]:
        """The tritonserver command line and environment (backend dir laid out on first call)."""
        site = self._site_packages()
        triton = site / "pytriton" / "tritonserver"
        python = self.server_venv / "bin" / "python"
        version, libdir = subprocess.check_output(
            [str(python), "-c", "import sys, sysconfig; print('%d.%d' % sys.version_info[:2]);"
             "print(sysconfig.get_config_var('LIBDIR'))"], text=True).split()
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="triton_ros_server_"))
            backend = self._workdir / "backends" / "python"
            backend.mkdir(parents=True)
            for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
                (backend / name).symlink_to(triton / "backends" / "python" / name)
            (backend / "triton_python_backend_stub").symlink_to(
                triton / "python_backend_stubs" / version / "triton_python_backend_stub")
        env = dict(os.environ)
        env["PATH"] = f"{self.server_venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        env["LD_LIBRARY_PATH"] = f"{libdir}:{site / 'nvidia_pytriton.libs'}"
        env.pop("PYTHONPATH", None)
        cmd = [str(triton / "bin" / "tritonserver"),
               f"--model-repository={self.model_repository}",
               f"--backend-directory={self._workdir / 'backends'}",
               "--http-address=127.0.0.1", "--grpc-address=127.0.0.1",
               "--metrics-address=127.0.0.1",
               f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}",
               f"--metrics-port={self.metrics_port}",
               "--log-verbose=0",
               # Short grace period on SIGTERM: tritonserver otherwise waits up to 30 s for
               # idle keep-alive connections.
               "--exit-timeout-secs=2",
               # Name the python backend's /dev/shm regions after this server, so cleanup()
               # can remove them even after the server was SIGKILLed.
               f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
               *self.extra_args]
        if self.models:
            cmd += ["--model-control-mode=explicit", *(f"--load-model={m}" for m in self.models)]
        return cmd, env

    def start(self, timeout_s: float = 60.0) -> "LocalTritonServer":
        cmd, env = self.command_and_env()
        out = subprocess.DEVNULL
        if self.log_path is not None:
            Path(self.log_path).parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")
            out = self._log_file
        self.process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        try:
            self.wait_ready(timeout_s)
        except BaseException:  # not ready (or Ctrl-C): leave no server, log file or scratch dir
            self.cleanup()
            raise
        return self

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready",
                                        timeout=1.0) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited with code {self.process.returncode}"
                                   + (f"; see {self.log_path}" if self.log_path else ""))
            if self.is_ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"tritonserver not ready after {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cleanup(self) -> None:
        """Stop the server; remove its scratch directory and its python-backend /dev/shm files."""
        self.stop()
        for leftover in Path("/dev/shm").glob(f"{self.shm_prefix}*"):
            leftover.unlink(missing_ok=True)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> "LocalTritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-repository", type=Path, default=None)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--model", action="append", default=[],
                        help="load only this model (repeatable); default: all")
    args = parser.parse_args(argv)
    server = LocalTritonServer(args.model_repository, http_port=args.http_port,
                               grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                               models=args.model)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    try:
        server.start()
        print(f"tritonserver ready: grpc {server.grpc_url}, http {server.http_url}", flush=True)
        while not stop and server.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
