"""Class labels: one name per line, line i (0-based) = class index i.

Every label file bundled with this package (``config/labels/``; the model repository's
``label_filename`` files are links to them) spells the COCO classes as the COCO dataset does
(``motorcycle``, ``airplane``, ``couch``, ``potted plant``, ``dining table``, ``tv``), so
``class_filter`` takes the same names whatever the model. Darknet's ``coco.names`` spells six of
them differently (:data:`DARKNET_COCO_NAMES`); a user's label file keeps its own names. A filter
name is not translated between the two: a name of the other spelling is an error that says
which name the label file uses (one spelling per label file, nothing matched silently).
"""
from pathlib import Path

#: Darknet's coco.names spelling -> the COCO dataset's (the names of every bundled label file)
DARKNET_COCO_NAMES = {"motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch",
                      "pottedplant": "potted plant", "diningtable": "dining table",
                      "tvmonitor": "tv"}
_OTHER_SPELLING = {**DARKNET_COCO_NAMES, **{v: k for k, v in DARKNET_COCO_NAMES.items()}}


class LabelMap:
    """Maps 0-based class indices to names; unknown indices become ``class_<i>``."""

    def __init__(self, names: list[str] | None = None):
        self.names = list(names or [])

    @classmethod
    def from_file(cls, path: str | Path) -> "LabelMap":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"labels file not found: {path}")
        return cls([line.strip() for line in path.read_text().splitlines()])

    def name(self, index: int) -> str:
        if 0 <= index < len(self.names) and self.names[index]:
            return self.names[index]
        return f"class_{index}"

    def index(self, name: str) -> int:
        """The index of ``name`` (or of ``class_<i>``); ValueError when unknown.

        The error names the label file's spelling when ``name`` is the other spelling
        (Darknet / COCO dataset) of one of its classes.
        """
        if name in self.names:
            return self.names.index(name)
        if name.startswith("class_") and name[6:].isdigit():
            return int(name[6:])
        other = _OTHER_SPELLING.get(name)
        if other in self.names:
            if name in DARKNET_COCO_NAMES:
                raise ValueError(f"unknown class {name!r} (Darknet's spelling); "
                                 f"the COCO name is {other!r}")
            raise ValueError(f"unknown class {name!r} (the COCO spelling); "
                             f"this label file calls it {other!r}")
        raise ValueError(f"unknown class {name!r}; known: {[n for n in self.names if n]}")

    def __len__(self) -> int:
        return len(self.names)
