"""Crop tasks (spec §7) and the pure import contract (spec §2).

A crop task shows the query box grown by a context margin; its answer, in crop pixels, is translated
back to the full image and merged with :func:`merge_answer`, which writes only the query box.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from activeseg import UNLABELLED
from activeseg.errors import ConfigError, DatasetError
from activeseg.formats.common import Box, check_label_map, check_overlap_policy

log = logging.getLogger(__name__)

_UNPAINTED_POLICIES = ("unlabelled", "void", "reject")


# ---- crop tasks (§7) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CropSpec:
    """Where a crop task sits in its full image.

    Attributes:
        box: the crop box, in full-image pixels.
        target: the query box, in full-image pixels (inside ``box``).
    """

    box: Box
    target: Box

    @property
    def offset(self) -> tuple[int, int]:
        """``(offset_x, offset_y)``: full-image coordinates of the crop's top-left pixel."""
        return self.box.x0, self.box.y0

    @property
    def target_in_crop(self) -> Box:
        """The query box in crop pixels."""
        return self.target.shifted(-self.box.x0, -self.box.y0)

    def to_manifest(self, path: str) -> dict:
        """The manifest's ``crop`` object (spec §1): ``path``, offsets, ``target_in_crop``, and the crop's
        ``width`` and ``height`` (an addition: answers are checked against them after exports/ is gone)."""
        return {
            "path": path,
            "offset_x": self.box.x0,
            "offset_y": self.box.y0,
            "target_in_crop": list(self.target_in_crop),
            "width": self.box.width,
            "height": self.box.height,
        }


def crop_for_query(box: Box, image_width: int, image_height: int, margin: float = 0.25) -> CropSpec:
    """The crop of a query: its box grown by ``ceil(margin * size)`` per side, clipped to the image.

    Example (spec §7): region 9 ``[240, 320) x [90, 180)`` of a 480 x 360 image -> crop
    ``[220, 340) x [67, 203)``, target in crop ``[20, 100) x [23, 113)``.

    Raises:
        ConfigError: a negative margin.
        DatasetError: the box is empty or not inside the image.
    """
    if margin < 0:
        raise ConfigError(f"crop_margin is {margin}; use a fraction >= 0 of the box size (default 0.25)")
    if not box.inside(image_width, image_height):
        raise DatasetError(
            "<query>", f"box {tuple(box)} is not inside the {image_width}x{image_height} image",
            "fix the query's coordinates (half-open, native pixels)",
        )
    # round() first so that e.g. 0.1 * 30 = 3.0000000000000004 gives 3, not 4
    mx, my = math.ceil(round(margin * box.width, 9)), math.ceil(round(margin * box.height, 9))
    crop = Box(max(box.x0 - mx, 0), max(box.y0 - my, 0), min(box.x1 + mx, image_width),
               min(box.y1 + my, image_height))
    return CropSpec(crop, box)


def crop_pixels(image: np.ndarray, crop: CropSpec) -> np.ndarray:
    """The crop's pixels of a full image. Shape: ``[H, W, ...]`` -> ``[h, w, ...]``."""
    return image[crop.box.slices]


def crop_answer_to_image(
    answer: np.ndarray, crop: CropSpec, image_width: int, image_height: int, *, item: str = "crop answer"
) -> np.ndarray:
    """Translates a crop-sized class map into a full-image one (255 outside the crop).

    The result still holds the context pixels; :func:`merge_answer` keeps only the query box.

    Raises:
        DatasetError: the answer is not crop-sized.

    Shape:
        answer: ``[h, w]`` (crop size); returns ``[H, W]`` uint8.
    """
    if answer.shape != (crop.box.height, crop.box.width):
        raise DatasetError(
            item, f"answer of shape {answer.shape}, but the crop is {crop.box.height}x{crop.box.width}",
            "import the answer of the crop this query exported",
        )
    full = np.full((image_height, image_width), UNLABELLED, dtype=np.uint8)
    full[crop.box.slices] = answer
    return full


# ---- import contract (§2) -----------------------------------------------------------------------


@dataclass(frozen=True)
class ImportPolicy:
    """How answers become labels (spec §2). A project's ``imports`` settings extend it."""

    keep_outside_box: bool = False
    """Keep answers outside the query box as bonus labels (never marked as labelled regions)."""
    unpainted_policy: Literal["unlabelled", "void", "reject"] = "unlabelled"
    """Unpainted pixels inside an answered box: stay unlabelled, become void, or reject the query when
    coverage < min_coverage."""
    min_coverage: float = 0.95
    """Painted fraction of the box below which a query is rejected (reject) or a warning logged."""
    overlap_policy: Literal["ignore", "last_wins"] = "ignore"
    """Pixels painted with two classes: ignore them (unlabelled) or keep the last layer's class."""
    overwrite: bool = False
    """Replace already labelled pixels with a new answer."""

    def __post_init__(self) -> None:
        if self.unpainted_policy not in _UNPAINTED_POLICIES:
            raise ConfigError(
                f"unpainted_policy is {self.unpainted_policy!r}; choose one of {_UNPAINTED_POLICIES}"
            )
        if not 0.0 <= self.min_coverage <= 1.0:
            raise ConfigError(f"min_coverage is {self.min_coverage}; choose a fraction in [0, 1]")
        check_overlap_policy(self.overlap_policy)


@dataclass(frozen=True)
class MergeResult:
    """The label map and bitmap after one answer, and what happened to it.

    Attributes:
        labels: class map after the merge. Shape: ``[H, W]`` uint8.
        bitmap: region bitmap after the merge (255 = labelled region). Shape: ``[H, W]`` uint8.
        status: ``labelled`` or ``rejected`` (``unpainted_policy: reject`` and low coverage).
        coverage: painted fraction of the box (void counts as painted).
        unpainted: box pixels the answer left unpainted.
        outside: painted answer pixels outside the box (discarded, or kept as bonus labels).
        notes: warnings for the per-query report (e.g. low coverage).
    """

    labels: np.ndarray
    bitmap: np.ndarray
    status: str
    coverage: float
    unpainted: int
    outside: int
    notes: list[str] = field(default_factory=list)


def merge_answer(
    labels: np.ndarray,
    bitmap: np.ndarray,
    answer: np.ndarray,
    box: Box,
    num_classes: int,
    policy: ImportPolicy = ImportPolicy(),
    *,
    item: str = "answer",
) -> MergeResult:
    """Merges one query's answer into an image's label map and region bitmap (spec §2).

    Only the box is written and marked labelled; already labelled pixels are kept unless
    ``policy.overwrite``; unpainted pixels never erase a label. Merging the same answer twice gives
    the same arrays. The inputs are not modified.

    Args:
        labels: current class map (0..C-1, C = void, 255 = unlabelled).
        bitmap: current region bitmap (non-zero = labelled).
        answer: the answer as a full-image class map (255 = unpainted), e.g. from
            :func:`crop_answer_to_image`.
        box: the query box.
        num_classes: number of classes C; void is C.
        policy: the import options.
        item: names the query in error messages.

    Raises:
        DatasetError: sizes differ, the box is outside the image, or a value is not a class, void or 255.

    Shape:
        labels, bitmap, answer: ``[H, W]``.
    """
    height, width = labels.shape
    for name, arr in (("region bitmap", bitmap), ("answer", answer)):
        if arr.shape != labels.shape:
            raise DatasetError(item, f"{name} is {arr.shape[1]}x{arr.shape[0]}, the image {width}x{height}",
                               "import answers made on the image (or crop) the query exported")
    if not box.inside(width, height):
        raise DatasetError(item, f"box {tuple(box)} is not inside the {width}x{height} image",
                           "fix the query's coordinates in the manifest")
    check_label_map(answer, num_classes, item, "answer")
    check_label_map(labels, num_classes, item, "label map")
    labels, bitmap = labels.astype(np.uint8, copy=True), bitmap.astype(np.uint8, copy=True)
    in_box = np.zeros(labels.shape, dtype=bool)
    in_box[box.slices] = True
    outside = (answer != UNLABELLED) & ~in_box
    new = answer[box.slices].copy()  # [h, w]
    unpainted = int((new == UNLABELLED).sum())
    coverage = 1.0 - unpainted / box.area
    notes = []
    if coverage < policy.min_coverage:
        if policy.unpainted_policy == "reject":
            return MergeResult(labels, bitmap, "rejected", coverage, unpainted, int(outside.sum()),
                               [f"coverage {coverage:.3f} < {policy.min_coverage}"])
        notes.append(f"coverage {coverage:.3f} < {policy.min_coverage}")
        log.warning("%s: only %.1f%% of the box is painted", item, 100 * coverage)
    if policy.unpainted_policy == "void":
        new[new == UNLABELLED] = num_classes
    was_labelled = bitmap[box.slices] != 0
    write = (new != UNLABELLED) & (policy.overwrite | ~was_labelled)
    labels[box.slices][write] = new[write]
    bitmap[box.slices] = 255
    if policy.keep_outside_box:
        bonus = outside & (bitmap == 0) & (policy.overwrite | (labels == UNLABELLED))
        labels[bonus] = answer[bonus]
    return MergeResult(labels, bitmap, "labelled", coverage, unpainted, int(outside.sum()), notes)
