"""Unit tests for triton_ros.labels."""
from pathlib import Path

import pytest

from triton_ros.labels import LabelMap

COCO90 = Path(__file__).resolve().parents[2] / "config" / "labels" / "coco90.txt"


def test_names_and_unknown_index():
    labels = LabelMap(["person", "bicycle"])
    assert len(labels) == 2
    assert labels.name(0) == "person"
    assert labels.name(1) == "bicycle"
    assert labels.name(2) == "class_2"
    assert labels.name(-1) == "class_-1"
    assert LabelMap().name(0) == "class_0" and len(LabelMap()) == 0


def test_empty_names_fall_back_to_class_index():
    labels = LabelMap(["person", "", "car"])
    assert labels.name(1) == "class_1"
    assert labels.name(2) == "car"


def test_index_of_names_and_class_i():
    labels = LabelMap(["person", "", "car"])
    assert labels.index("person") == 0
    assert labels.index("car") == 2
    assert labels.index("class_1") == 1
    assert labels.index("class_17") == 17


@pytest.mark.parametrize("name", ["zebra", "class_", "class_x", "class_-1", "Person"])
def test_index_unknown_raises_and_lists_known(name):
    labels = LabelMap(["person", "", "car"])
    with pytest.raises(ValueError, match="unknown class") as err:
        labels.index(name)
    assert repr(name) in str(err.value)
    assert "['person', 'car']" in str(err.value)  # empty names not listed


def test_from_file_strips_and_keeps_blank_lines(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("  cat \n\ndog\r\n")
    labels = LabelMap.from_file(path)
    assert labels.names == ["cat", "", "dog"]
    assert labels.name(1) == "class_1"
    assert labels.name(2) == "dog"
    assert LabelMap.from_file(str(path)).names == labels.names


def test_from_file_missing_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="labels file not found"):
        LabelMap.from_file(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError):
        LabelMap.from_file(tmp_path)  # a directory is not a labels file


def test_repo_coco90_labels():
    labels = LabelMap.from_file(COCO90)
    assert len(labels) == 90
    assert labels.name(0) == "person"
    assert labels.name(2) == "car"
    assert labels.index("car") == 2
    assert labels.name(89) != "class_89"
    assert labels.name(90) == "class_90"
    # TF-OD class ids are 1-based: id 1 is person, id 3 is car (see decoders' class_offset).
    assert labels.name(3 - 1) == "car"
