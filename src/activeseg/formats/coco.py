"""COCO run-length encoding and semantic annotations (spec §5).

``{"size": [h, w], "counts": ...}``: runs over the **column-major** flattening of a binary mask,
alternating 0 / 1 and starting with 0. ``counts`` is a list of ints (uncompressed) or a string: from
the fourth value on, each value is stored as its difference to the value two before, then written in
5-bit groups, least significant first, as characters ``48 + group`` (``+ 0x20`` when another group
follows); the last group's bit 0x10 is the sign.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from activeseg import UNLABELLED
from activeseg.errors import DatasetError
from activeseg.formats.common import alternating_runs, check_label_map, expand_runs, label_values

_SOURCE = "<COCO annotations>"


def encode_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO counts of a binary mask (column-major runs, starting with 0).

    Example: ``[[0,1,1],[0,0,1]]`` -> column order ``0,0,1,0,1,1`` -> ``[2, 1, 1, 2]``.

    Shape:
        mask: ``[h, w]`` bool.
    """
    return alternating_runs(np.asarray(mask, dtype=bool).ravel(order="F"))  # column-major


def decode_counts(
    counts: Sequence[int], height: int, width: int, *, source: Path | str = _SOURCE, item: str = "RLE"
) -> np.ndarray:
    """The binary mask of uncompressed counts.

    Raises:
        DatasetError: a negative count, or counts that do not sum to ``height * width``.

    Shape:
        returns ``[h, w]`` bool.
    """
    runs = np.asarray(counts, dtype=np.int64)
    if (runs < 0).any() or runs.sum() != height * width:
        raise DatasetError(
            source,
            f"{item}: counts sum to {int(runs.sum())} (or hold a negative run), but size "
            f"[{height}, {width}] has {height * width} pixels",
            "check that 'size' is [height, width] and the counts belong to this image",
        )
    return expand_runs(runs).reshape((height, width), order="F")  # column-major


def counts_to_string(counts: Sequence[int]) -> str:
    """The compressed string form of uncompressed counts (e.g. ``[2, 3, 1, 1]`` -> ``"231N"``)."""
    chars = []
    for i, count in enumerate(counts):
        x = int(count) - (int(counts[i - 2]) if i >= 3 else 0)
        while True:
            group, x = x & 0x1F, x >> 5  # arithmetic shift keeps the sign
            last = x == -1 if group & 0x10 else x == 0
            chars.append(chr(group + 48 + (0 if last else 0x20)))
            if last:
                break
    return "".join(chars)


def string_to_counts(text: str, *, source: Path | str = _SOURCE, item: str = "RLE") -> list[int]:
    """Uncompressed counts of a compressed string (e.g. ``"2111"`` -> ``[2, 1, 1, 2]``).

    Raises:
        DatasetError: a character outside ``'0'..'o'`` or a value cut off at the end.
    """
    counts: list[int] = []
    x = shift = 0
    for pos, ch in enumerate(text):
        code = ord(ch) - 48
        if not 0 <= code < 64:
            raise DatasetError(source, f"{item}: character {ch!r} at {pos} is not COCO RLE",
                               "pass the 'counts' string exactly as the file stores it")
        x |= (code & 0x1F) << shift
        shift += 5
        if code & 0x20:
            continue
        if code & 0x10:
            x |= -1 << shift  # sign-extend from the last group's bit 0x10
        if len(counts) >= 3:  # value i >= 3 is stored as its difference to counts[i - 2]
            x += counts[-2]
        counts.append(x)
        x = shift = 0
    if shift:
        raise DatasetError(source, f"{item}: the string ends inside a value",
                           "pass the complete 'counts' string")
    return counts


def encode(mask: np.ndarray, *, compressed: bool = True) -> dict:
    """COCO RLE ``{"size": [h, w], "counts": ...}`` of a binary mask. Shape: mask ``[h, w]``."""
    counts = encode_counts(mask)
    height, width = np.shape(mask)
    return {"size": [int(height), int(width)], "counts": counts_to_string(counts) if compressed else counts}


def decode(rle: dict, *, source: Path | str = _SOURCE, item: str = "RLE") -> np.ndarray:
    """The binary mask of a COCO RLE (compressed or not).

    Raises:
        DatasetError: malformed ``size`` or ``counts``, or counts that do not cover the size.

    Shape:
        returns ``[h, w]`` bool.
    """
    size = rle.get("size") if isinstance(rle, dict) else None
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s >= 0 for s in size)):
        raise DatasetError(source, f"{item}: 'size' is {size!r}, expected [height, width]",
                           "write the segmentation as {'size': [h, w], 'counts': ...}")
    counts = rle["counts"]
    if isinstance(counts, str):
        counts = string_to_counts(counts, source=source, item=item)
    elif not (isinstance(counts, list) and all(isinstance(c, int) for c in counts)):
        raise DatasetError(source, f"{item}: 'counts' is neither a string nor a list of ints",
                           "write the segmentation as {'size': [h, w], 'counts': ...}")
    return decode_counts(counts, size[0], size[1], source=source, item=item)


def categories(class_names: Sequence[str]) -> list[dict]:
    """COCO categories: class ``i`` has id ``i + 1`` (COCO ids start at 1); void is not a category."""
    label_values(class_names)
    return [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]


def semantic_annotations(
    labels: np.ndarray,
    bitmap: np.ndarray,
    num_classes: int,
    image_id: int,
    *,
    first_id: int = 1,
    compressed: bool = True,
) -> list[dict]:
    """One annotation per class present in the answered boxes of an image (void and 255 left out).

    Args:
        labels: class map (0..C-1, C = void, 255 = unlabelled).
        bitmap: region bitmap; only pixels where it is non-zero are exported.
        num_classes: number of classes C.
        image_id: the COCO image id.
        first_id: id of the first annotation; the others follow consecutively.
        compressed: string counts (``iscrowd: 0``) or uncompressed list counts (``iscrowd: 1``).

    Shape:
        labels, bitmap: ``[H, W]``.
    """
    check_label_map(labels, num_classes, f"image {image_id}", "label map")
    answered = np.where(bitmap != 0, labels, UNLABELLED)
    out = []
    for cls in np.unique(answered).tolist():
        if cls >= num_classes:  # void and unlabelled
            continue
        mask = answered == cls
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        out.append({
            "id": first_id + len(out),
            "image_id": image_id,
            "category_id": cls + 1,
            "segmentation": encode(mask, compressed=compressed),
            "area": int(mask.sum()),
            "bbox": [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)],
            "iscrowd": 0 if compressed else 1,
        })
    return out
