"""replay's answers to bad input, found before anything starts: one line on stderr, exit 2, no
server or node started, ``--out`` not created. The real sample bag (its CameraInfo topic given as
the image topic, a topic it lacks); no server is needed for any of these."""
import subprocess
import sys

import pytest

from helpers import REPO

CAMERA_INFO = "/camera/camera_info"


def replay(*args, env=None):
    return subprocess.run([sys.executable, "-m", "triton_ros.tools.replay", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=120, env=env)


def assert_input_error(proc, out, *words):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("replay: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert "starting" not in proc.stderr  # no server, no node
    assert not out.exists(), f"--out {out} was created by a run that failed at once"


def test_camera_info_as_image_topic_says_what_it_is(sample_bag, tmp_path):
    out = tmp_path / "out"
    proc = replay(sample_bag, "--image-topic", CAMERA_INFO, "--start", "detect",
                  "--local-server", "--out", out)
    assert_input_error(proc, out, "sensor_msgs/msg/CameraInfo", "not an image", "--image-topic",
                       "/camera/image_raw")


def test_missing_image_topic_names_the_option_and_the_image_topics(sample_bag, tmp_path):
    out = tmp_path / "out"
    proc = replay(sample_bag, "--image-topic", "/front/image", "--watch", "/d", "--out", out)
    assert_input_error(proc, out, "/front/image", "--image-topic", "/camera/image_raw/compressed")


def test_missing_topics_entry_is_found_before_the_server_starts(sample_bag, tmp_path):
    out = tmp_path / "out"
    proc = replay(sample_bag, "--topics", "/camera/camera_info", "/tf", "--start", "detect",
                  "--local-server", "--out", out)
    assert_input_error(proc, out, "['/tf']", "--topics", "--image-topic")


def test_not_a_bag(tmp_path):
    out = tmp_path / "out"
    assert_input_error(replay(tmp_path / "nope", "--watch", "/d", "--out", out), out,
                       "cannot read bag")


def test_no_server_venv_is_one_line_before_anything_starts(sample_bag, tmp_path):
    import os
    out = tmp_path / "out"
    env = dict(os.environ, TRITON_ROS_SERVER_VENV=str(tmp_path / "no_venv"))
    proc = replay(sample_bag, "--start", "detect", "--local-server", "--out", out, env=env)
    assert_input_error(proc, out, "no bundled tritonserver", "TRITON_ROS_SERVER_VENV",
                       str(tmp_path / "no_venv"))


@pytest.mark.parametrize("text", ["exit codes:", "143", "summary.json", "(default: 10.0)",
                                  "(default: /camera/image_raw)", "loads only it",
                                  "--server-venv"])
def test_help_gives_defaults_exit_codes_and_outputs(text):
    proc = replay("--help")
    assert proc.returncode == 0 and text in proc.stdout, proc.stdout
