"""Run a node as its own process (``python -m <module> --ros-args ...``) with its output logged.

Used by the demo, the integration tests and the benchmarks. The child gets this process's
environment (set it up with :mod:`triton_ros.tools.local_env` first) with the source tree
prepended to PYTHONPATH, so it runs the same code as its parent.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from triton_ros.resources import share_dir


class NodeStartError(RuntimeError):
    """The node did not print what was waited for (it exited or took too long)."""


def ros_args(params: dict, remaps: dict | None = None, namespace: str = "") -> list[str]:
    """``--ros-args`` for parameters (bools, numbers, strings, lists), remaps and a namespace."""
    args = ["--ros-args"]
    for key, value in params.items():
        if isinstance(value, bool):
            value = str(value).lower()
        elif isinstance(value, (list, tuple)):
            value = "[" + ",".join(json.dumps(v) for v in value) + "]"  # YAML flow list
        args += ["-p", f"{key}:={value}"]
    for src, dst in (remaps or {}).items():
        args += ["-r", f"{src}:={dst}"]
    if namespace:
        args += ["-r", f"__ns:={namespace}"]
    return args


class NodeProcess:
    """``module`` started with ``ros_args(params, remaps, namespace) + extra_args``.

    ``new_session``: run in its own process group (a terminal's Ctrl-C does not reach it;
    :meth:`stop` ends the whole group if SIGINT is not enough).
    """

    def __init__(self, module: str, params: dict, remaps: dict | None = None,
                 namespace: str = "", log_path: Path | None = None,
                 extra_args: list[str] | None = None, env: dict | None = None,
                 new_session: bool = False):
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")
        env = dict(os.environ if env is None else env)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(share_dir()), env.get("PYTHONPATH", "")) if p)
        self._new_session = new_session
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *ros_args(params, remaps, namespace),
             *(extra_args or [])],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=share_dir(),
            start_new_session=new_session)
        self.pid = self.process.pid

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout_s: float = 60.0) -> None:
        """Return once ``text`` is in the output; NodeStartError if it exits or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise NodeStartError(f"{text!r} not seen (exit code {self.process.poll()}); "
                             f"log {self.log_path}:\n{self.output()[-3000:]}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGINT (clean shutdown), then SIGKILL after ``timeout_s``; returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                if self._new_session:
                    os.killpg(self.process.pid, signal.SIGKILL)
                else:
                    self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self._log.close()
        return self.process.returncode
