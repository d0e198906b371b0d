"""Class labels: one name per line, line i (0-based) = class index i."""
from pathlib import Path


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
        """The index of ``name`` (or of ``class_<i>``); ValueError when unknown."""
        if name in self.names:
            return self.names.index(name)
        if name.startswith("class_") and name[6:].isdigit():
            return int(name[6:])
        raise ValueError(f"unknown class {name!r}; known: {[n for n in self.names if n]}")

    def __len__(self) -> int:
        return len(self.names)
