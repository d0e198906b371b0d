"""pytest plugin: replay a bag in lock-step through real nodes and compare with a golden file.

Enable it in the conftest.py at your tests' rootdir::

    pytest_plugins = ["triton_ros.testing"]

There is deliberately no ``pytest11`` entry point: that would load the plugin into every pytest
run of every environment where triton_ros is installed (a whole ROS workspace), importing the
installed triton_ros before a checkout's own conftest can put its source tree first.

- ``triton_replay`` (fixture): a factory ``triton_replay(bag, params=None, server_url=None,
  start="detect", frames=0, image_topic="/camera/image_raw", extra_args=(),
  allow_unanswered=False) -> ReplayResult``. ``server_url=None`` starts a local tritonserver for
  that replay (found as the tools find it: ``TRITON_ROS_SERVER_VENV``, else the path
  ``scripts/bootstrap.sh`` recorded, see :mod:`triton_ros.tools.server_venv`). ``image_topic``
  is the bag's image topic; ``extra_args`` are further ``replay`` options (e.g.
  ``["--model-name", "yolov4_tiny_coco"]``). Runs ``python -m triton_ros.tools.replay
  --lock-step`` in a child process (its own rclpy context, loopback-only DDS) on the test's
  ``ROS_DOMAIN_ID`` when one is set, else on a free-picked one; fails the test unless the replay
  exits 0 (or 1 with ``allow_unanswered``).
- :func:`assert_matches_golden` (plain function): compares a result with a golden
  detections.json via :mod:`triton_ros.tools.compare`; fails with the readable diff. With
  ``TRITON_ROS_UPDATE_GOLDEN=1`` it (re)writes the golden file instead.

Importing this module does not import rclpy.
"""
import json
import os
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
                   extra_args=(), image_topic=None) -> list[str]:
    """The ``python -m triton_ros.tools.replay`` command line for a lock-step replay."""
    cmd = [sys.executable, "-m", "triton_ros.tools.replay", str(bag), "--out", str(out),
           "--lock-step", "--quiet"]
    if image_topic:
        cmd += ["--image-topic", image_topic]
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
               extra_args=(), timeout_s: float = 600, domain_id: int | None = None,
               image_topic=None) -> ReplayResult:
    """Run one lock-step replay in a child process; ReplayResult even when it failed.

    ``domain_id``: the replay's ROS_DOMAIN_ID; default: the environment's, else a random one."""
    from triton_ros.tools.local_env import localhost_ros_env
    out = Path(out)
    env = localhost_ros_env(domain_id)  # keeps a set ROS_DOMAIN_ID, else picks one
    # The child imports the same triton_ros as this process (a checkout's, or the installed one).
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", ""))
                                        if p)
    proc = subprocess.run(replay_command(bag, out, params, server_url, start, frames,
                                         extra_args, image_topic),
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
    from triton_ros.tools.compare import InputError
    try:
        code, text, _ = run_compare(parse_args([str(golden), str(run_path), *compare_args]))
    except InputError as exc:
        raise AssertionError(f"cannot compare with golden {golden}: {exc}") from None
    if code != 0:
        raise AssertionError(f"replay differs from golden {golden}:\n{text}")


@pytest.fixture
def triton_replay(tmp_path):
    """Factory: ``triton_replay(bag, params=None, server_url=None, start="detect", frames=0,
    image_topic=None, extra_args=(), allow_unanswered=False) -> ReplayResult``; fails the test
    when the replay itself fails (exit 1, unanswered frames, passes with allow_unanswered)."""
    count = [0]

    def replay(bag, params=None, server_url=None, start="detect", frames=0, image_topic=None,
               extra_args=(), allow_unanswered=False):
        count[0] += 1
        result = run_replay(bag, tmp_path / f"replay{count[0]}", params, server_url, start,
                            frames, extra_args, image_topic=image_topic)
        if result.returncode not in ((0, 1) if allow_unanswered else (0,)):
            pytest.fail(f"replay exited with {result.returncode}:\n{result.log[-3000:]}")
        return result

    return replay
