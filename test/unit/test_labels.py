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


# --- One COCO naming for every bundled label file (issue 17) --------------------------------

CONFIG = Path(__file__).resolve().parents[2] / "config"
# The 80 COCO-2017 detection categories, spelled as the dataset's annotations spell them.
COCO_CATEGORIES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush"]


def test_coco80_is_the_dataset_naming_in_class_order():
    """coco80.txt (YOLO) said motorbike, aeroplane, sofa, pottedplant, diningtable, tvmonitor."""
    assert LabelMap.from_file(CONFIG / "labels" / "coco80.txt").names == COCO_CATEGORIES


def test_coco90_uses_the_same_names_at_the_dataset_ids():
    names = LabelMap.from_file(COCO90).names
    assert [n for n in names if n in COCO_CATEGORIES] == COCO_CATEGORIES   # same order
    assert names.index("motorcycle") == 4 - 1 and names.index("tv") == 72 - 1   # 1-based ids


def test_model_repository_label_files_are_links_to_config_labels():
    """One file per naming: every label_filename in the model repository links to it."""
    found = sorted((CONFIG / "model_repository").glob("*/*.txt"))
    assert found
    for path in found:
        assert path.is_symlink(), f"{path} is a copy, not a link to config/labels"
        assert path.resolve().parent == (CONFIG / "labels").resolve(), path


@pytest.mark.parametrize("darknet,coco", [("motorbike", "motorcycle"), ("tvmonitor", "tv"),
                                          ("diningtable", "dining table")])
def test_a_darknet_name_in_a_filter_is_an_error_that_names_the_coco_one(darknet, coco):
    labels = LabelMap.from_file(CONFIG / "labels" / "coco80.txt")
    with pytest.raises(ValueError, match=f"COCO name is '{coco}'"):
        labels.index(darknet)
    assert labels.index(coco) == COCO_CATEGORIES.index(coco)


def test_a_darknet_named_label_file_keeps_its_own_names():
    """A user's model with Darknet's coco.names: its own names are the ones class_filter takes."""
    labels = LabelMap(["person", "bicycle", "car", "motorbike"])
    assert labels.index("motorbike") == 3
    with pytest.raises(ValueError, match="this label file calls it 'motorbike'"):
        labels.index("motorcycle")
