"""compare's answers to bad input (exit 2, one line, no traceback) kept apart from a regression
(exit 1), and frames whose stamps repeat matched by position. Hand-written detections.json files:
the schema is what a replay writes (triton_ros.replay_record)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from triton_ros.tools.compare import main

REPO = Path(__file__).resolve().parents[2]


def det(cls, cx, score=0.9):
    return {"class_id": cls, "score": score, "bbox": {"cx": cx, "cy": 50.0, "w": 20.0, "h": 40.0}}


def write_run(directory: Path, frames, summary=None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    doc = {"topic": "/camera/detections",
           "frames": [{"stamp_ns": stamp, "frame_id": "cam", "processed": True,
                       "detections": dets} for stamp, dets in frames]}
    (directory / "detections.json").write_text(json.dumps(doc))
    if summary is not None:
        (directory / "summary.json").write_text(json.dumps(summary))
    return directory


@pytest.fixture
def golden(tmp_path):
    return write_run(tmp_path / "golden", [(10, [det("person", 100)]), (20, [det("car", 300)])])


def run_tool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "triton_ros.tools.compare", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def assert_input_error(proc, *words):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("compare: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_missing_run_directory_is_an_input_error(golden, tmp_path):
    assert_input_error(run_tool(golden, tmp_path / "nope"), "does not exist")


def test_run_directory_without_detections_is_an_input_error(golden, tmp_path):
    (tmp_path / "crashed").mkdir()
    (tmp_path / "crashed" / "detect_node.log").write_text("...")
    assert_input_error(run_tool(golden, tmp_path / "crashed"), "no detections.json")


def test_interrupted_run_is_an_input_error(golden, tmp_path):
    run = write_run(tmp_path / "run", [(10, [det("person", 100)])],
                    summary={"frames": 1, "interrupted": True, "signal": "SIGTERM"})
    assert_input_error(run_tool(golden, run), "interrupted", "SIGTERM")


def test_not_a_detections_file_is_an_input_error(golden, tmp_path):
    bad = tmp_path / "detections.json"
    bad.write_text('{"frames": [{"stamp": 1}]}')
    assert_input_error(run_tool(golden, bad), "not a replay's detections.json")


def test_ground_truth_without_frame_names_is_an_input_error(golden, tmp_path):
    coco = tmp_path / "labels.json"  # as a labelling tool writes it: file names, no stamps
    coco.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "frame_0000.png", "width": 768, "height": 576}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [90, 30, 20, 40],
                         "area": 800, "iscrowd": 0}],
        "categories": [{"id": 1, "name": "person"}]}))
    assert_input_error(run_tool(golden, golden, "--ground-truth", coco),
                       "frame_0000.png", "frame_index")
    assert_input_error(run_tool(golden, golden, "--ground-truth", tmp_path / "none.json"),
                       "does not exist")


def test_a_regression_exits_1(golden, tmp_path, capsys):
    run = write_run(tmp_path / "run", [(10, [det("person", 100)]), (20, [])])
    assert main([str(golden), str(run)]) == 1
    assert "result: FAIL" in capsys.readouterr().out
    assert main([str(golden), str(golden)]) == 0


def test_repeated_stamps_are_matched_by_position(tmp_path, capsys):
    """Three frames, all stamp 0: each is compared with the frame at its position, not collapsed
    into one (a run whose third frame differs must fail, an identical one pass)."""
    frames = [(0, [det("person", 100)]), (0, [det("car", 300)]), (0, [det("dog", 500)])]
    golden = write_run(tmp_path / "golden", frames)
    same = write_run(tmp_path / "same", frames)
    differs = write_run(tmp_path / "differs", frames[:2] + [(0, [det("person", 100)])])
    assert main([str(golden), str(same)]) == 0
    out = capsys.readouterr().out
    assert "matched by position" in out and "3 matched" in out, out
    assert main([str(golden), str(differs)]) == 1
    out = capsys.readouterr().out
    assert "frame 2 " in out and "- dog" in out and "+ person" in out, out


def test_ground_truth_by_frame_index_where_stamps_repeat(tmp_path, capsys):
    frames = [(0, [det("person", 100)]), (0, [det("car", 300)])]
    run = write_run(tmp_path / "run", frames)
    coco = tmp_path / "gt.json"
    coco.write_text(json.dumps({
        "images": [{"id": 7, "frame_index": 1}, {"id": 8, "frame_index": 5}],  # 5: not played
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [290, 30, 20, 40]}],
        "categories": [{"id": 3, "name": "car"}]}))
    assert main([str(run), str(run), "--ground-truth", str(coco)]) == 0
    out = capsys.readouterr().out
    assert "mAP@0.5 1.0000" in out and "(1 images, 1 boxes)" in out, out
