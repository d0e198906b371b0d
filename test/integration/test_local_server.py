"""LocalTritonServer and its command-line tool against a real tritonserver: no python-backend stub
outlives its server, and the backend's /dev/shm regions are private (0600).

A stub checks every 300 ms whether its server is alive with ``kill(pid, 0)``, which also succeeds
for a dead server that nobody has reaped yet (a zombie): so stubs keep running (and holding their
memory) after a crash until the owner notices. The tests kill the server with SIGKILL and do not
reap it themselves.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from triton_ros.tools.local_server import LocalTritonServer, free_port, free_ports

from helpers import REPO, video_frames, wait_until
from sequence_data import model_repository


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (read from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X") and int(fields[1]) == pid:
            found.append(int(proc.name))
    return found


def group_members(pgid: int) -> list[int]:
    """Live processes of process group ``pgid``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            found.append(int(proc.name))
    return found


def shm_regions(server: LocalTritonServer) -> list[Path]:
    return sorted(Path("/dev/shm").glob(f"{server.shm_prefix}*"))


def alive(pids) -> list[int]:
    """The pids of ``pids`` that are still running (zombies count as gone)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            running.append(pid)
    return running


def stubs_of(server_pid: int) -> list[int]:
    """The server's python-backend stub processes."""
    stubs = [pid for pid in children(server_pid)
             if "triton_python_backend_stub" in Path(f"/proc/{pid}/cmdline").read_text(
                 errors="replace")]
    assert stubs, "the server has no python-backend stub"
    return stubs


def server_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def kill_leftovers(pgid: int | None) -> None:
    """Test hygiene: whatever the outcome, leave no process of the group behind."""
    if pgid is not None and group_members(pgid):
        os.killpg(pgid, signal.SIGKILL)


@pytest.fixture
def tracker_repo(tmp_path):
    return model_repository(tmp_path / "repo", models=("simple_tracker",))


def test_stubs_die_with_a_killed_server_without_cleanup(tmp_path, tracker_repo):
    server = LocalTritonServer(tracker_repo, log_path=tmp_path / "server.log")
    server.start(timeout_s=120)
    pgid = server.process.pid  # the server leads its own group
    try:
        stubs = stubs_of(server.process.pid)
        os.kill(server.process.pid, signal.SIGKILL)
        # Nobody calls stop/cleanup: the server's watch thread notices and kills its group.
        assert wait_until(lambda: not alive(stubs), 10), f"orphaned stubs: {alive(stubs)}"
        assert wait_until(lambda: server.died == -signal.SIGKILL, 5), server.died
        assert sorted(server.orphans_killed) == sorted(stubs), "killed, not left to notice"
        server.cleanup()
        assert not group_members(pgid)
        assert not shm_regions(server)
    finally:
        server.cleanup()
        kill_leftovers(pgid)


def test_cleanup_kills_the_stubs_of_a_dead_server(tmp_path, tracker_repo):
    server = LocalTritonServer(tracker_repo, log_path=tmp_path / "server.log")
    server.watch_period_s = 3600.0  # take the watch thread out: the cleanup path alone
    server.start(timeout_s=120)
    pgid = server.process.pid  # the server leads its own group
    try:
        stubs = stubs_of(server.process.pid)
        os.kill(server.process.pid, signal.SIGKILL)
        assert wait_until(lambda: server_state(pgid) == "Z", 10)
        assert alive(stubs), "the stubs outlive their (unreaped) server"
        server.cleanup()
        # Gone when cleanup returns: it kills the group and waits, instead of leaving the
        # stubs to notice (up to 300 ms later, and never for one stuck while starting).
        assert not alive(stubs), f"orphaned stubs: {alive(stubs)}"
        assert not group_members(pgid)
        assert not shm_regions(server)
    finally:
        server.cleanup()
        kill_leftovers(pgid)


def test_tool_exits_nonzero_and_kills_the_stubs_when_its_server_dies(tmp_path, tracker_repo):
    log = tmp_path / "tool.log"
    ports = free_ports(3)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    with open(log, "wb") as out:
        tool = subprocess.Popen(
            [sys.executable, "-m", "triton_ros.tools.local_server",
             "--model-repository", str(tracker_repo), "--http-port", str(ports[0]),
             "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2])],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    server_pid = None
    try:
        assert wait_until(lambda: "tritonserver ready" in log.read_text(errors="replace")
                          or tool.poll() is not None, 120), log.read_text()
        assert tool.poll() is None, log.read_text()
        servers = children(tool.pid)
        assert len(servers) == 1, servers
        server_pid = servers[0]
        stubs = stubs_of(server_pid)
        os.kill(server_pid, signal.SIGKILL)
        assert tool.wait(30) == 1, log.read_text()
        output = log.read_text()
        assert (f"error: tritonserver (pid {server_pid}) was killed by signal 9; killed its "
                f"process group") in output, output
        assert not alive(stubs), f"orphaned stubs: {alive(stubs)}"
        assert not group_members(server_pid)
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
        kill_leftovers(server_pid)


def shm_modes(server: LocalTritonServer) -> dict[str, int]:
    return {p.name: p.stat().st_mode & 0o777 for p in shm_regions(server)}


def test_python_backend_shm_regions_are_private(tmp_path):
    server = LocalTritonServer(log_path=tmp_path / "server.log", models=["tensor_echo_stats"])
    server.start(timeout_s=120)
    try:
        modes = shm_modes(server)
        assert modes and set(modes.values()) == {0o600}, {k: oct(v) for k, v in modes.items()}

        client = httpclient.InferenceServerClient(server.http_url)
        frame = video_frames([0])[0]   # a real camera frame (vtest.avi), HxWx3 uint8
        request = httpclient.InferInput("frame", [1, *frame.shape], "UINT8")
        request.set_data_from_numpy(frame[None])
        result = client.infer("tensor_echo_stats", [request]).as_numpy("channel_mean")
        np.testing.assert_allclose(result[0], frame.reshape(-1, 3).mean(axis=0), rtol=1e-4)
        modes = shm_modes(server)
        assert modes and set(modes.values()) == {0o600}, {k: oct(v) for k, v in modes.items()}

        # A model loaded later gets a new region: the watch thread makes it private too.
        before = set(modes)
        client.load_model("simple_tracker")
        assert client.is_model_ready("simple_tracker")
        assert set(shm_modes(server)) > before, "the new stub has a region of its own"
        assert wait_until(lambda: set(shm_modes(server).values()) == {0o600}, 5), {
            k: oct(v) for k, v in shm_modes(server).items()}
    finally:
        server.cleanup()
    assert not shm_regions(server)


def backend_workdir(server_pid: int) -> Path:
    """The scratch directory of a running server (parent of its --backend-directory)."""
    args = Path(f"/proc/{server_pid}/cmdline").read_text(errors="replace").split("\0")
    backend = next(a.split("=", 1)[1] for a in args if a.startswith("--backend-directory="))
    return Path(backend).parent


@pytest.mark.parametrize("when, signals", [
    ("starting", [signal.SIGINT, signal.SIGINT]),
    ("ready", [signal.SIGINT, signal.SIGINT, signal.SIGINT]),
    ("ready", [signal.SIGINT, signal.SIGTERM]),   # ros2 launch: SIGINT, then SIGTERM
    ("ready", [signal.SIGTERM, signal.SIGTERM]),
], ids=["int-int-while-starting", "int-x3-ready", "int-term-ready", "term-term-ready"])
def test_tool_stops_cleanly_on_repeated_signals(tmp_path, tracker_repo, when, signals):
    """Ctrl-C (or launch's SIGINT then SIGTERM) on the tool, the later signals arriving while it
    cleans up: exit 0, no traceback, no process of the server's group left (server and stubs),
    its scratch directory and /dev/shm regions gone."""
    log = tmp_path / "tool.log"
    ports = free_ports(3)
    with open(log, "wb") as out:
        tool = subprocess.Popen(
            [sys.executable, "-m", "triton_ros.tools.local_server",
             "--model-repository", str(tracker_repo), "--http-port", str(ports[0]),
             "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2])],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            # As a terminal gives it: a background job of a non-interactive shell (this test's
            # parent may be one) inherits SIGINT ignored.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    server_pid = None
    try:
        def server_child():
            for pid in children(tool.pid):  # (the first child may be a python -c it runs)
                try:
                    if "bin/tritonserver" in Path(f"/proc/{pid}/cmdline").read_text():
                        return pid
                except OSError:
                    continue
            return None
        assert wait_until(lambda: server_child() or tool.poll() is not None, 60), \
            log.read_text()
        server_pid = server_child()
        workdir = backend_workdir(server_pid)
        prefix = next(a for a in Path(f"/proc/{server_pid}/cmdline").read_text().split("\0")
                      if "shm-region-prefix-name=" in a).rsplit("=", 1)[1]
        if when == "ready":
            assert wait_until(lambda: "tritonserver ready" in log.read_text(errors="replace"),
                              120), log.read_text()
            assert stubs_of(server_pid)
        else:
            assert "tritonserver ready" not in log.read_text(errors="replace")
        assert workdir.is_dir()
        tool.send_signal(signals[0])
        during_cleanup = 0
        for extra in signals[1:]:
            time.sleep(0.02)
            if tool.poll() is None:
                tool.send_signal(extra)
                during_cleanup += 1
        code = tool.wait(60)
        output = log.read_text(errors="replace")
        assert code == 0, output
        assert during_cleanup, "no second signal reached the tool before it exited"
        assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
        assert not group_members(server_pid), "processes of the server's group left"
        assert not workdir.exists(), f"scratch directory {workdir} left behind"
        assert not list(Path("/dev/shm").glob(f"{prefix}*"))
    finally:
        if tool.poll() is None:
            tool.kill()
            tool.wait()
        kill_leftovers(server_pid)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_wait_ready_stops_quietly_on_a_signal(signum):
    """launch's Ctrl-C reaches wait_ready while it polls: 128+signal, no traceback."""
    port = free_port()  # nothing listens there: it keeps polling
    tool = subprocess.Popen([sys.executable, "-m", "triton_ros.tools.wait_ready",
                             f"127.0.0.1:{port}", "--timeout", "60"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(1.5)  # past the imports, polling
    assert tool.poll() is None
    tool.send_signal(signum)
    output = tool.communicate(timeout=30)[0]
    assert tool.returncode == 128 + signum, output
    assert "Traceback" not in output, output
