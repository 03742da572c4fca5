"""Pieces every format shares: pixel boxes, label names, merging answer layers, safe zip reading."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Literal, NamedTuple

import numpy as np

from activeseg import UNLABELLED
from activeseg.errors import ConfigError, DatasetError

#: Tool label name of an answered "nothing / ignore" (value = number of classes; 11 for CamVid).
VOID_NAME = "void"

#: Largest zip entry (uncompressed bytes) a reader accepts; guards against zip bombs.
MAX_ZIP_ENTRY_BYTES = 256 * 1024 * 1024

OverlapPolicy = Literal["ignore", "last_wins"]
_OVERLAP_POLICIES = ("ignore", "last_wins")


class Box(NamedTuple):
    """Half-open pixel box ``[x0, x1) x [y0, y1)``; x = column, y = row (spec §0)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices, so that ``array[box.slices]`` is the box's pixels."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def inside(self, width: int, height: int) -> bool:
        """Whether the box is non-empty and lies inside a ``width x height`` image."""
        return 0 <= self.x0 < self.x1 <= width and 0 <= self.y0 < self.y1 <= height

    def shifted(self, dx: int, dy: int) -> "Box":
        """The same box translated by ``(dx, dy)`` pixels."""
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)


def label_values(class_names: Sequence[str]) -> dict[str, int]:
    """Tool label name -> label value: class ``i`` -> ``i``, ``void`` -> number of classes.

    Raises:
        ConfigError: duplicate names, an empty name, a class called ``void``, or too many classes.
    """
    names = list(class_names)
    if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(
            f"class names must be distinct non-empty strings, got {names!r}; pass the list of "
            "classes.json"
        )
    if VOID_NAME in names:
        raise ConfigError(
            f"a class is named {VOID_NAME!r}, which is reserved for the void answer; rename it"
        )
    if len(names) >= UNLABELLED:
        raise ConfigError(f"{len(names)} classes leave no label value for void; use at most 254")
    values = {name: i for i, name in enumerate(names)}
    values[VOID_NAME] = len(names)
    return values


def value_of(name: object, values: dict[str, int], source: Path | str, item: str) -> int:
    """The label value of a tool label name; an unknown name is an error, never dropped (spec §0).

    Raises:
        DatasetError: ``name`` is not a class name nor ``void`` (names are case-sensitive).
    """
    if not isinstance(name, str) or name not in values:
        raise DatasetError(
            source,
            f"{item}: label {name!r} is not a class name",
            f"use exactly one of {sorted(values, key=values.get)} (case-sensitive) in the tool's "
            "labelling config and relabel the item",
        )
    return values[name]


def alternating_runs(flat: np.ndarray) -> list[int]:
    """Lengths of the alternating runs of a flattened binary mask, background first (a mask that starts
    with foreground starts with a 0-length run): the run-length form COCO and CVAT share."""
    flat = np.asarray(flat, dtype=bool)
    if flat.size == 0:
        return []
    bounds = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def expand_runs(runs: np.ndarray) -> np.ndarray:
    """The flat binary mask of alternating run lengths (background first); the inverse of
    ``alternating_runs``. The caller checks the lengths and reshapes."""
    return np.repeat(np.arange(len(runs)) % 2 == 1, runs)


def check_overlap_policy(policy: str) -> None:
    """Raises ConfigError unless ``policy`` is ``ignore`` or ``last_wins`` (spec §2 rule 4)."""
    if policy not in _OVERLAP_POLICIES:
        raise ConfigError(f"overlap_policy is {policy!r}; choose one of {_OVERLAP_POLICIES}")


def merge_layers(
    layers: Sequence[tuple[int, np.ndarray]], height: int, width: int, overlap_policy: str = "ignore"
) -> tuple[np.ndarray, int]:
    """Paints answer layers (one label value and one boolean mask each) into one label map.

    Pixels no layer paints stay 255 (unlabelled). Where layers of different values overlap,
    ``ignore`` sets the pixel to 255 and counts it; ``last_wins`` keeps the value of the later layer.

    Args:
        layers: ``(value, mask)`` pairs in the order of the export.
        height: image height.
        width: image width.
        overlap_policy: ``ignore`` or ``last_wins`` (spec §2 rule 4).

    Returns:
        The label map (uint8) and the number of conflicting pixels.

    Shape:
        mask: ``[H, W]`` bool; label map: ``[H, W]``.
    """
    check_overlap_policy(overlap_policy)
    labels = np.full((height, width), UNLABELLED, dtype=np.uint8)
    conflict = np.zeros((height, width), dtype=bool)
    for value, mask in layers:
        conflict |= mask & (labels != UNLABELLED) & (labels != value)
        labels[mask if overlap_policy == "last_wins" else mask & (labels == UNLABELLED)] = value
    n_conflicts = int(conflict.sum())
    if overlap_policy == "ignore":
        labels[conflict] = UNLABELLED
    return labels, n_conflicts


def rasterise_polygon(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels whose centre lies inside a polygon (even-odd rule; spec §3: pixel (x, y) is inside
    when (x + 0.5, y + 0.5) is).

    Exact for the half-open convention: the polygon with corners (x0, y0), (x1, y0), (x1, y1), (x0, y1)
    covers exactly ``[x0, x1) x [y0, y1)``. A centre on a left or top edge is inside, on a right or
    bottom edge outside.

    Args:
        points: vertices in continuous pixel coordinates, ``(x, y)`` per row.
        height: image height.
        width: image width.

    Shape:
        points: ``[N, 2]``; returns ``[H, W]`` bool.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)  # [N, 2]
    if len(pts) < 3:
        return np.zeros((height, width), dtype=bool)
    xa, ya = pts[:, 0], pts[:, 1]
    xb, yb = np.roll(xa, -1), np.roll(ya, -1)  # edge i runs from vertex i to vertex i+1
    yc = np.arange(height) + 0.5  # row centres, [H]
    lo, hi = np.minimum(ya, yb), np.maximum(ya, yb)
    rows, edges = np.nonzero((lo[None, :] <= yc[:, None]) & (yc[:, None] < hi[None, :]))  # [H, E]
    t = (yc[rows] - ya[edges]) / (yb[edges] - ya[edges])  # horizontal edges never cross a centre
    xi = xa[edges] + t * (xb[edges] - xa[edges])
    # An intersection at xi lies right of the centre of every pixel x < xi - 0.5, i.e. x < n:
    n = np.clip(np.ceil(xi - 0.5), 0, width).astype(np.int64)
    starts = np.zeros((height, width + 1), dtype=np.int64)
    np.add.at(starts, (rows, n), 1)
    # crossings right of pixel x = number of intersections with n > x = sum of starts[:, x+1:]
    right = np.cumsum(starts[:, ::-1], axis=1)[:, ::-1]  # right[:, k] = starts[:, k:].sum()
    return right[:, 1:] % 2 == 1


def check_label_map(labels: np.ndarray, num_classes: int, source: Path | str, item: str) -> None:
    """Raises DatasetError unless every value is a class, void (``num_classes``) or 255 (spec §2.6)."""
    present = np.unique(labels)
    bad = [int(v) for v in present if not (0 <= v <= num_classes or v == UNLABELLED)]
    if bad:
        raise DatasetError(
            source,
            f"{item}: label values {bad} are outside the classes 0..{num_classes - 1}, void "
            f"({num_classes}) and unlabelled (255)",
            "write class-index maps with the dataset's class indices only",
        )


# ---- zip archives -------------------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")


def _unsafe_entry(name: str) -> bool:
    parts = name.replace("\\", "/")
    return parts.startswith("/") or bool(_DRIVE.match(parts)) or ".." in parts.split("/")


def open_safe_zip(archive: Path | str | IO[bytes], source: Path | str | None = None) -> zipfile.ZipFile:
    """Opens a zip after checking that no entry name is absolute or contains ``..``.

    Args:
        archive: the zip's path, or an open binary file.
        source: names the archive in error messages (default: ``archive``).

    Raises:
        DatasetError: the file is missing, is not a zip, or holds an unsafe entry name.
    """
    path = source if source is not None else archive if isinstance(archive, (str, Path)) else "<zip>"
    try:
        zf = zipfile.ZipFile(archive)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DatasetError(path, f"cannot open as a zip archive ({exc})", "export the archive again") from exc
    for info in zf.infolist():
        if _unsafe_entry(info.filename):
            zf.close()
            raise DatasetError(
                path,
                f"zip entry {info.filename!r} has an absolute path or a '..' component",
                "refuse archives from unknown sources; re-export it from the labelling tool",
            )
    return zf


def read_zip_entry(zf: zipfile.ZipFile, name: str, path: Path | str) -> bytes:
    """The bytes of one entry of a zip opened with :func:`open_safe_zip`.

    Raises:
        DatasetError: the entry is missing or larger than ``MAX_ZIP_ENTRY_BYTES``.
    """
    try:
        info = zf.getinfo(name)
    except KeyError as exc:
        raise DatasetError(
            path, f"the archive has no entry {name!r}", "export again in the format the importer expects"
        ) from exc
    if info.file_size > MAX_ZIP_ENTRY_BYTES:
        raise DatasetError(
            path, f"zip entry {name!r} unpacks to {info.file_size} bytes",
            "split the export into smaller archives",
        )
    return zf.read(info)
