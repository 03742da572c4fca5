"""The class list of a dataset, read from and validated against ``classes.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from activeseg.errors import DatasetError

_EXAMPLE = '{"classes": ["sky", "road"], "colors": [[128,128,128],[128,64,128]], "ignore_index": 11}'


@dataclass(frozen=True)
class ClassInfo:
    """Names, display colours and the ignore index of a dataset's classes.

    Class indices are ``0 .. num_classes-1``. Any label value ``>= num_classes`` (the dataset's own
    ignore index, or 255 for "unlabelled") is ignored by the loss and the metrics.
    """

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    ignore_index: int | None

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def valid_values(self) -> set[int]:
        """Label values a dataset label map may hold: the classes, the ignore index, and 255 (unlabelled)."""
        values = set(range(self.num_classes)) | {255}
        if self.ignore_index is not None:
            values.add(self.ignore_index)
        return values

    def to_json(self) -> dict:
        return {
            "classes": list(self.names),
            "colors": [list(c) for c in self.colors],
            "ignore_index": self.ignore_index,
        }


def _default_color(i: int) -> tuple[int, int, int]:
    # A fixed, well-spread palette for datasets that give no colours.
    return ((i * 97) % 256, (i * 57 + 80) % 256, (i * 181 + 40) % 256)


def load_classes(path: Path) -> ClassInfo:
    """Reads and validates ``classes.json``.

    Raises:
        DatasetError: the file is missing, is not JSON, or its fields are malformed.
    """
    remedy = f"write {path.name} as JSON like {_EXAMPLE} (colors and ignore_index are optional)"
    if not path.is_file():
        raise DatasetError(path, "classes file not found", remedy)
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(path, f"not valid JSON ({exc})", remedy) from exc
    if not isinstance(raw, dict):
        raise DatasetError(path, "top level must be an object", remedy)
    names = raw.get("classes")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise DatasetError(path, "'classes' must be a non-empty list of class names", remedy)
    if len(set(names)) != len(names):
        raise DatasetError(path, "'classes' has duplicate names", "give every class a distinct name")
    if len(names) > 254:
        raise DatasetError(path, f"{len(names)} classes; at most 254 fit in a label PNG", remedy)
    colors = raw.get("colors")
    if colors is None:
        colors = [list(_default_color(i)) for i in range(len(names))]
    ok = isinstance(colors, list) and len(colors) == len(names) and all(
        isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
        for c in colors
    )
    if not ok:
        raise DatasetError(
            path, "'colors' must hold one [r, g, b] triple of 0-255 integers per class", remedy
        )
    ignore = raw.get("ignore_index")
    if ignore is not None and (
        not isinstance(ignore, int) or isinstance(ignore, bool) or not len(names) <= ignore <= 255
    ):
        raise DatasetError(
            path,
            f"'ignore_index' is {ignore!r}; it must be an integer in [{len(names)}, 255] "
            "(class indices are 0..C-1)",
            "set it to the label value your masks use for void pixels, or to null if there is none",
        )
    return ClassInfo(tuple(names), tuple(tuple(c) for c in colors), ignore)
