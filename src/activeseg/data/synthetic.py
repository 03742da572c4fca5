"""A deterministic generator of tiny segmentation datasets for tests and demos.

Each image is a textured background (class 0) with shapes of the other classes drawn on it; shape
counts and sizes make class frequencies strongly unbalanced (background most, the last class rarest).
Each class has its own mean colour, so a small model can learn the task in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

CLASS_NAMES = ("background", "band", "disc", "box", "dot")
COLORS = ((40, 40, 40), (60, 160, 60), (200, 60, 60), (60, 60, 210), (230, 230, 40))
IGNORE_INDEX = 5  # a 1-pixel void frame around every image


def make_sample(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One image ``[H, W, 3]`` uint8 and its label ``[H, W]`` uint8."""
    label = np.zeros((height, width), np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    # class 1: a horizontal band, most images (common)
    if rng.random() < 0.9:
        y0 = rng.integers(0, height // 2)
        label[y0:y0 + max(2, height // 4)] = 1
    # class 2: one or two discs (medium)
    for _ in range(rng.integers(1, 3)):
        cy, cx, r = rng.integers(0, height), rng.integers(0, width), rng.integers(height // 10, height // 5 + 1)
        label[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 2
    # class 3: a small box in half of the images (rare)
    if rng.random() < 0.5:
        s = max(2, height // 8)
        y0, x0 = rng.integers(0, height - s), rng.integers(0, width - s)
        label[y0:y0 + s, x0:x0 + s] = 3
    # class 4: a tiny dot in a third of the images (rarest)
    if rng.random() < 0.33:
        s = max(2, height // 16)
        y0, x0 = rng.integers(0, height - s), rng.integers(0, width - s)
        label[y0:y0 + s, x0:x0 + s] = 4
    palette = np.array(COLORS, np.float32)
    image = palette[label] + rng.normal(0, 12, (height, width, 3))
    label[0, :] = label[-1, :] = IGNORE_INDEX
    label[:, 0] = label[:, -1] = IGNORE_INDEX
    return np.clip(image, 0, 255).astype(np.uint8), label


def write_synthetic(root: Path, splits: dict[str, int] | None = None, size: tuple[int, int] = (48, 64),
                    seed: int = 0) -> Path:
    """Writes a dataset in the activeseg folder format under ``root`` and returns ``root``.

    Args:
        root: the dataset folder to create.
        splits: images per split; default ``{"train": 12, "val": 4, "test": 4}``.
        size: ``(H, W)`` of every image.
        seed: the same seed writes byte-identical files.
    """
    splits = splits or {"train": 12, "val": 4, "test": 4}
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(json.dumps(
        {"classes": list(CLASS_NAMES), "colors": [list(c) for c in COLORS], "ignore_index": IGNORE_INDEX},
        indent=1))
    for split, n in splits.items():
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "labels").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image, label = make_sample(rng, *size)
            stem = f"{split}_{i:04d}"
            Image.fromarray(image).save(root / split / "images" / f"{stem}.png")
            Image.fromarray(label).save(root / split / "labels" / f"{stem}.png")
    return root
