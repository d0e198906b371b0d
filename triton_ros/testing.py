"""pytest plugin: replay a bag in lock-step through real nodes and compare with a golden file.

Loaded automatically where triton_ros is installed (``pytest11`` entry point), or with
``pytest_plugins = ["triton_ros.testing"]`` in a rootdir conftest. Fixtures:

- ``triton_replay``: ``triton_replay(bag, params={...}, server_url=None, start="detect",
  frames=0, **replay_options) -> ReplayResult``. ``server_url=None`` starts a local tritonserver
  for that replay. Runs ``python -m triton_ros.tools.replay --lock-step`` in a child process (its
  own rclpy context, loopback-only DDS, its own ROS_DOMAIN_ID) and returns what it recorded.
- :func:`assert_matches_golden` (plain function): compares a result with a golden
  detections.json via :mod:`triton_ros.tools.compare`; fails with the readable diff. With
  ``TRITON_ROS_UPDATE_GOLDEN=1`` it (re)writes the golden file instead.

Importing this module does not import rclpy.
"""
import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

UPDATE_GOLDEN_ENV = "TRITON_ROS_UPDATE_GOLDEN"


@dataclass
class ReplayResult:
    """One replay's output directory and exit code (0 = every frame answered)."""
    out: Path
    returncode: int
    log: str

    @property
    def detections_path(self) -> Path:
        return self.out / "detections.json"

    @property
    def detections(self) -> dict:
        return json.loads(self.detections_path.read_text())

    @property
    def summary(self) -> dict:
        return json.loads((self.out / "summary.json").read_text())


def replay_command(bag, out, params=None, server_url=None, start="detect", frames=0,
                   extra_args=()) -> list[str]:
    """The ``python -m triton_ros.tools.replay`` command line for a lock-step replay."""
    cmd = [sys.executable, "-m", "triton_ros.tools.replay", str(bag), "--out", str(out),
           "--lock-step", "--quiet"]
    if start:
        cmd += ["--start", start]
        cmd += ["--server-url", server_url] if server_url else ["--local-server"]
    for key, value in (params or {}).items():
        if isinstance(value, bool):
            value = str(value).lower()
        cmd += ["-p", f"{key}:={value}"]
    if frames:
        cmd += ["--frames", str(frames)]
    return cmd + list(extra_args)


def run_replay(bag, out, params=None, server_url=None, start="detect", frames=0,
               extra_args=(), timeout_s: float = 600, domain_id: int | None = None) -> ReplayResult:
    """Run one lock-step replay in a child process; ReplayResult even when it failed."""
    from triton_ros.resources import share_dir
    from triton_ros.tools.local_env import localhost_ros_env
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = localhost_ros_env(domain_id if domain_id is not None else random.randint(1, 100))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(share_dir()), env.get("PYTHONPATH", ""))
                                        if p)
    proc = subprocess.run(replay_command(bag, out, params, server_url, start, frames,
                                         extra_args),
                          env=env, capture_output=True, text=True, timeout=timeout_s)
    return ReplayResult(out, proc.returncode, proc.stdout + proc.stderr)


def assert_matches_golden(result, golden, *compare_args: str) -> None:
    """Fail (with compare's diff) unless ``result`` (ReplayResult, directory or detections.json)
    matches the ``golden`` detections.json; ``compare_args`` are extra compare options such as
    ``"--min-recall", "0.95"``. ``TRITON_ROS_UPDATE_GOLDEN=1`` rewrites the golden file."""
    from triton_ros.tools.compare import parse_args, run_compare
    run_path = Path(result.detections_path if isinstance(result, ReplayResult) else result)
    golden = Path(golden)
    if os.environ.get(UPDATE_GOLDEN_ENV) == "1":
        golden.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run_path if run_path.is_file() else run_path / "detections.json", golden)
        return
    if not golden.is_file():
        raise AssertionError(f"no golden file {golden}; run with {UPDATE_GOLDEN_ENV}=1 to write "
                             "it from this run")
    code, text, _ = run_compare(parse_args([str(golden), str(run_path), *compare_args]))
    if code != 0:
        raise AssertionError(f"replay differs from golden {golden}:\n{text}")


@pytest.fixture
def triton_replay(tmp_path):
    """Factory: ``triton_replay(bag, params=None, server_url=None, start="detect", frames=0,
    extra_args=()) -> ReplayResult``; fails the test when the replay itself fails."""
    count = [0]

    def replay(bag, params=None, server_url=None, start="detect", frames=0, extra_args=(),
               allow_unanswered=False):
        count[0] += 1
        result = run_replay(bag, tmp_path / f"replay{count[0]}", params, server_url, start,
                            frames, extra_args)
        if result.returncode not in ((0, 2) if allow_unanswered else (0,)):
            pytest.fail(f"replay exited with {result.returncode}:\n{result.log[-3000:]}")
        return result

    return replay
