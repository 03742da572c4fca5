"""Where training batches come from: raw images (encoder runs) or the feature cache.

Both sources cut the same crop boxes and flips, so the trainer sees no difference. Crops are aligned
to the encoder's coarsest stride, which makes a crop of the cached features exactly the features of
the cropped region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from activeseg.features import FeatureBank

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1), half-open pixels


@dataclass
class ImageSource:
    """Batches of uint8 images for a model whose encoder runs on every step.

    Shape:
        images ``[N, 3, H, W]`` uint8, labels ``[N, H, W]`` uint8.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]

    def inputs(self, index: torch.Tensor, flipped: torch.Tensor, box: list[Box] | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        imgs, labs = [], []
        for i, f in zip(index.tolist(), flipped.tolist()):
            img, lab = self.images[i], self.labels[i]
            if f:
                img, lab = img.flip(-1), lab.flip(-1)
            imgs.append(img)
            labs.append(lab)
        x, y = torch.stack(imgs), torch.stack(labs)
        if box is not None:
            x = torch.stack([xi[:, y0:y1, x0:x1] for xi, (y0, y1, x0, x1) in zip(x, box)])
            y = torch.stack([yi[y0:y1, x0:x1] for yi, (y0, y1, x0, x1) in zip(y, box)])
        return x, y


@dataclass
class FeatureSource:
    """Batches of cached features (the encoder is frozen and never runs)."""

    bank: FeatureBank
    labels: torch.Tensor
    strides: tuple[int, ...]

    def __len__(self) -> int:
        return self.labels.shape[0]

    def inputs(self, index: torch.Tensor, flipped: torch.Tensor, box: list[Box] | None
               ) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = self.bank.get(index, flipped)
        labs = torch.stack([self.labels[i].flip(-1) if f else self.labels[i]
                            for i, f in zip(index.tolist(), flipped.tolist())])
        if box is None:
            return feats, labs
        cropped = []
        for lvl, s in zip(feats, self.strides):
            cropped.append(torch.stack([
                li[:, y0 // s:math.ceil(y1 / s), x0 // s:math.ceil(x1 / s)] for li, (y0, y1, x0, x1) in zip(lvl, box)
            ]))
        labs = torch.stack([yi[y0:y1, x0:x1] for yi, (y0, y1, x0, x1) in zip(labs, box)])
        return cropped, labs


def _window_starts(length: int, crop: int, align: int, lo: int, hi: int) -> list[int]:
    """Aligned starts s in [0, length-crop] with the window [s, s+crop) covering [lo, hi)."""
    starts = range(0, length - crop + 1, align)
    return [s for s in starts if s <= lo and hi <= s + crop]


def crop_box(size: tuple[int, int], crop: tuple[int, int], align: int, generator: torch.Generator,
             keep: Box | None = None) -> Box:
    """A random crop box aligned to ``align`` pixels, optionally keeping a region inside.

    A crop side at least as long as the image side is the whole side. Otherwise the side is rounded
    down to a multiple of ``align``. With ``keep``, windows that contain the whole region are drawn
    from; if the aligned grid has none, windows that contain the region's centre.
    """
    out = []
    for axis, (length, c) in enumerate(zip(size, crop)):
        if c >= length:
            out += [0, length]
            continue
        c = max(align, c // align * align)
        if keep is None:
            starts = _window_starts(length, c, align, length, 0)  # every aligned start
        else:
            lo, hi = keep[2 * axis], keep[2 * axis + 1]
            starts = _window_starts(length, c, align, lo, hi)
            if not starts:
                mid = (lo + hi - 1) // 2
                starts = _window_starts(length, c, align, mid, mid + 1)
        s = starts[int(torch.randint(len(starts), (1,), generator=generator))]
        out += [s, s + c]
    return tuple(out)  # type: ignore[return-value]
