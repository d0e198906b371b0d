"""Start and stop a local tritonserver (the binary shipped in ``nvidia-pytriton``) on 127.0.0.1.

The server runs from its own venv, found by :func:`triton_ros.tools.server_venv.find_server_venv`
(``--server-venv``, ``TRITON_ROS_SERVER_VENV``, the path bootstrap recorded, the checkout's
``.venv-server``): pytriton pins numpy<2 while rclpy's environment has numpy 2, so the two talk
over HTTP/gRPC.
Only the python backend is available in that build; the repository's models use it.

The server runs in a session (process group) of its own, with its python-backend stubs. When
it stops, or dies (crash, ``kill -9``), the whole group is killed, before the server is reaped.
Left alone, stubs outlive a dead server: a stub checks ``kill(server_pid, 0)`` every 300 ms,
which succeeds while nobody has reaped the dead server, and a stub that was starting when its
server died can hang for good (seen in 3 of 8 kills during a model load here).

The python backend creates its ``/dev/shm`` regions (which carry request data, e.g. camera frames)
with mode 0644 whatever the umask (boost.interprocess fchmods them). They are named after this
server (``shm_prefix``) and made 0600: once when the server reports ready, before :meth:`start`
returns, and then by a watch thread every ``watch_period_s``. Residual window: a region created
later (a model loaded through the repository API, a stub restarted) stays world-readable for up to
``watch_period_s`` after its creation, and a process that opened it in that window keeps its
file descriptor. Regions of models loaded at start never are readable to others once requests can
be sent.

Usage as a tool (runs until Ctrl-C / SIGTERM)::

    python -m triton_ros.tools.local_server --grpc-port 8001 --http-port 8000

Exit codes: 0 after a stop by SIGINT/SIGTERM (any number of them: the first starts the cleanup,
later ones are ignored until it is done); 1 when the server did not start or died; 2 when no
server venv is found (one line: where it looked, how to fix it). The server's whole process group
and its scratch directory are gone when the tool exits; if the tool itself is SIGKILLed, the
kernel kills tritonserver (``PR_SET_PDEATHSIG``) and its stubs follow it within 300 ms.
"""
import argparse
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import triton_ros
from triton_ros.resources import config_path
from triton_ros.tools.server_venv import (SERVER_VENV_ENV, ServerVenvNotFound, find_server_venv,
                                          pytriton_site)
from triton_ros.tools.stop_signals import Interrupted, StopSignals


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that are free right now. They are bound
    together, then released: bound one after another, the kernel may hand out the same port
    twice (seen once on a loaded machine)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    return free_ports(1)[0]


def process_group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes in process group ``pgid``, read from /proc.

    Written by hand: psutil is not in the environment, and /proc's ``stat`` is all this needs.
    """
    members = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        if len(fields) > 2 and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(proc.name))
    return members


def kill_process_group(pgid: int, wait_s: float = 5.0) -> list[int]:
    """SIGKILL every process of group ``pgid``; wait up to ``wait_s`` until none is alive.

    Returns the pids that were alive before the kill. A group with no live member is left alone
    (its id may be reused).
    """
    alive = process_group_members(pgid)
    if not alive:
        return []
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return []
    deadline = time.monotonic() + wait_s
    while process_group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def _exited(process: subprocess.Popen) -> bool:
    """True once ``process`` has exited; does not reap it (its pid stays taken)."""
    if process.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, process.pid,
                         os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped elsewhere
        return process.poll() is not None


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the thread that started it ends (the tool SIGKILLed).

    By hand through libc's prctl (PR_SET_PDEATHSIG = 1): no library in the environment wraps it.
    """
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


class LocalTritonServer:
    """A tritonserver child process bound to 127.0.0.1 (context manager).

    Ports of 0 are replaced by free ones. ``models``: load only these (explicit model control);
    default: every model in the repository. ``grpc_url``/``http_url`` are ``host:port`` strings as
    tritonclient expects them.

    The server is its own process group (``pgid``); :meth:`stop` and :meth:`cleanup` kill what is
    left of that group, and a watch thread kills it as soon as the server dies, so no
    python-backend stub outlives its server (``died`` then holds the server's exit code). The
    same thread keeps the server's ``/dev/shm`` regions at mode 0600 (see the module docstring).
    """

    watch_period_s = 0.5

    def __init__(self, model_repository: Path | None = None, server_venv: Path | None = None,
                 http_port: int = 0, grpc_port: int = 0, metrics_port: int = 0,
                 log_path: Path | None = None, extra_args: list[str] | None = None,
                 models: list[str] | None = None, die_with_parent: bool = False):
        self.model_repository = Path(model_repository or config_path("model_repository"))
        self.server_venv = find_server_venv(server_venv)  # ServerVenvNotFound: one line
        self.die_with_parent = die_with_parent  # only where the starting thread lives as long
        spare = iter(free_ports(3))  # distinct, for the ports not given
        self.http_port = http_port or next(spare)
        self.grpc_port = grpc_port or next(spare)
        self.metrics_port = metrics_port or next(spare)
        self.log_path = log_path
        self.extra_args = list(extra_args or [])
        self.models = list(models or [])
        self.shm_prefix = f"triton_ros_pybackend_{os.getpid()}_{id(self) & 0xffffff:x}_"
        self.process: subprocess.Popen | None = None
        self.pgid: int | None = None
        self.died: int | None = None         # exit code of a server that died on its own
        self.orphans_killed: list[int] = []  # pids SIGKILLed by the group kill (stubs left behind,
                                             # or a server that ignored SIGTERM)
        self._workdir: Path | None = None
        self._log_file = None
        self._watch: threading.Thread | None = None
        self._watch_stop = threading.Event()

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def _site_packages(self) -> Path:
        site = pytriton_site(self.server_venv)
        if site is None:
            raise ServerVenvNotFound(f"no nvidia-pytriton in {self.server_venv}")
        return site

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
            # The ensembles' step models import triton_ros (numpy/OpenCV only): expose this
            # package alone, not the client's site-packages (numpy 2) around it. Their model.py
            # puts PYTHONPATH on sys.path (the stub does not read it).
            (self._workdir / "pythonpath").mkdir()
            (self._workdir / "pythonpath" / "triton_ros").symlink_to(
                Path(triton_ros.__file__).resolve().parent)
        env = dict(os.environ)
        env["PATH"] = f"{self.server_venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        env["LD_LIBRARY_PATH"] = f"{libdir}:{site / 'nvidia_pytriton.libs'}"
        env["PYTHONPATH"] = str(self._workdir / "pythonpath")
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
        # umask 077: files the server itself creates are private (the python backend's shm
        # regions are not: boost.interprocess fchmods them to 0644, see secure_shm()).
        self.process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True, umask=0o077,
                                        preexec_fn=_die_with_parent if self.die_with_parent
                                        else None)
        self.pgid, self.died = self.process.pid, None
        try:
            self.wait_ready(timeout_s)
            self.secure_shm()
        except BaseException:  # not ready (or Ctrl-C): leave no server, log file or scratch dir
            self.cleanup()
            raise
        self._watch_stop.clear()
        self._watch = threading.Thread(target=self._watch_server, args=(self.process, self.pgid),
                                       name="triton_server_watch", daemon=True)
        self._watch.start()
        return self

    def shm_regions(self) -> list[Path]:
        """This server's python-backend regions in /dev/shm."""
        return sorted(Path("/dev/shm").glob(f"{self.shm_prefix}*"))

    def secure_shm(self) -> int:
        """chmod this server's /dev/shm regions to 0600; returns how many needed it."""
        changed = 0
        for region in self.shm_regions():
            try:
                if region.stat().st_mode & 0o777 != 0o600:
                    region.chmod(0o600)
                    changed += 1
            except FileNotFoundError:
                continue  # removed while we looked
        return changed

    def _watch_server(self, process: subprocess.Popen, pgid: int) -> None:
        """Keep the shm regions private; when the server dies, kill the rest of its group."""
        while not self._watch_stop.wait(self.watch_period_s):
            self.secure_shm()
            if _exited(process):
                if not self._watch_stop.is_set():
                    self._reap_group(pgid)
                    self.died = process.wait()
                return

    def _reap_group(self, pgid: int | None) -> None:
        if pgid is not None:
            self.orphans_killed += kill_process_group(pgid)

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
            if self.process is not None and _exited(self.process):
                self._reap_group(self.pgid)
                self.died = self.process.wait()
                raise RuntimeError(f"tritonserver exited with code {self.process.returncode}"
                                   + (f"; see {self.log_path}" if self.log_path else ""))
            if self.is_ready():
                return
            time.sleep(0.2)
        raise TimeoutError(f"tritonserver not ready after {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the server (SIGKILL after ``timeout_s``), then kill what is left of its group.

        Also right for a server that already died: its stubs are killed.
        """
        self._watch_stop.set()
        if self._watch is not None and self._watch is not threading.current_thread():
            self._watch.join(timeout=5.0)
        self._watch = None
        if self.process is not None and _exited(self.process):
            self._reap_group(self.pgid)
            self.died = self.process.wait()
        elif self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while not _exited(self.process) and time.monotonic() < deadline:
                time.sleep(0.05)
        # The group is killed before the server is reaped: while its leader is a zombie, the
        # group id cannot be reused by another process.
        self._reap_group(self.pgid)
        if self.process is not None:
            self.process.wait()
        self.process = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def cleanup(self, stop_timeout_s: float = 20.0) -> None:
        """Stop the server; remove its scratch directory and its python-backend /dev/shm files."""
        self.stop(stop_timeout_s)
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
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="exit codes: 0 stopped by SIGINT/SIGTERM, 1 server did not start or died, "
               "2 no server venv found")
    parser.add_argument("--model-repository", type=Path, default=None,
                        help="model repository (default: the package's config/model_repository)")
    parser.add_argument("--server-venv", type=Path, default=None,
                        help=f"venv with nvidia-pytriton (default: ${SERVER_VENV_ENV}, then the "
                             "path scripts/bootstrap.sh recorded, then the checkout's "
                             ".venv-server)")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--model", action="append", default=[],
                        help="load only this model (repeatable); default: all")
    args = parser.parse_args(argv)
    signals = StopSignals().install()
    server = None
    try:
        server = LocalTritonServer(args.model_repository, args.server_venv,
                                   http_port=args.http_port, grpc_port=args.grpc_port,
                                   metrics_port=args.metrics_port, models=args.model,
                                   die_with_parent=True)
        server.start()
        print(f"tritonserver ready: grpc {server.grpc_url}, http {server.http_url}", flush=True)
        while not _exited(server.process):
            time.sleep(0.5)
    except Interrupted:  # start() cleans up what it had started
        pass
    except ServerVenvNotFound as exc:
        signals.disarm()
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except (RuntimeError, TimeoutError) as exc:  # did not start; start() cleaned up
        signals.disarm()
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        signals.disarm()  # later signals (a second Ctrl-C, launch's SIGTERM) wait for cleanup
        if server is not None:
            # The group first, then the server: no stub outlives it. A short SIGTERM grace:
            # ros2 launch escalates to SIGKILL 10 s after its SIGINT.
            server.cleanup(stop_timeout_s=4.0)
    if server is None:
        return 0
    code = server.died
    if code is not None:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        print(f"error: tritonserver (pid {server.pgid}) {how}; killed its process group "
              f"({len(server.orphans_killed)} leftover process(es)); exiting", file=sys.stderr,
              flush=True)
        return 1
    if signals.received:
        print(f"tritonserver stopped ({signals.received[0]})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
