"""Where training batches come from: raw images (encoder runs) or the feature cache.

Both sources cut the same crop boxes and flips, so the trainer sees no difference. Crops are aligned
to the encoder's coarsest stride, which makes a crop of the cached features exactly the features of
the cropped region. A crop may extend past the bottom or right border (when the image size is not a
multiple of the stride, that is the only way to reach the last rows): the part outside the image is
labelled 255 (ignored) and its features are zeros, as the decoder's own zero padding sees at a border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from activeseg import UNLABELLED
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
            x = torch.stack([_pad_crop(xi, b, 0) for xi, b in zip(x, box)])
            y = _crop_labels(y, box)
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
            # box edges are multiples of the coarsest stride, hence of s: exact cell boundaries
            cropped.append(torch.stack([_pad_crop(li, (y0 // s, math.ceil(y1 / s), x0 // s, math.ceil(x1 / s)), 0)
                                        for li, (y0, y1, x0, x1) in zip(lvl, box)]))
        return cropped, _crop_labels(labs, box)


def _pad_crop(t: torch.Tensor, box: Box, value: float) -> torch.Tensor:
    """``t[..., y0:y1, x0:x1]``, padded with ``value`` where the box passes the bottom/right border."""
    y0, y1, x0, x1 = box
    h, w = t.shape[-2:]
    out = t[..., y0:min(y1, h), x0:min(x1, w)]
    if y1 > h or x1 > w:
        out = F.pad(out, (0, max(0, x1 - w), 0, max(0, y1 - h)), value=value)
    return out


def _crop_labels(labels: torch.Tensor, box: list[Box]) -> torch.Tensor:
    return torch.stack([_pad_crop(li, b, UNLABELLED) for li, b in zip(labels, box)])


def _window_starts(length: int, crop: int, align: int) -> list[int]:
    """Aligned window starts; windows may end past ``length`` by less than ``align``."""
    padded = math.ceil(length / align) * align
    return list(range(0, padded - crop + 1, align))


def crop_box(size: tuple[int, int], crop: tuple[int, int], align: int, generator: torch.Generator,
             keep: Box | None = None) -> Box:
    """A random crop box aligned to ``align`` pixels, optionally keeping a region inside.

    A crop side at least as long as the image side is the whole side. Otherwise the side is rounded
    down to a multiple of ``align`` and the window starts at a multiple of ``align`` (it may pass the
    far border by less than ``align``). With ``keep``, windows containing the whole region are drawn
    from; if there are none, windows containing its centre; failing that, the window nearest to it.
    """
    out = []
    for axis, (length, c) in enumerate(zip(size, crop)):
        if c >= length:
            out += [0, length]
            continue
        c = max(align, c // align * align)
        starts = _window_starts(length, c, align)
        if keep is not None:
            lo, hi = keep[2 * axis], keep[2 * axis + 1]
            mid = (lo + hi - 1) // 2
            starts = ([s for s in starts if s <= lo and hi <= s + c]
                      or [s for s in starts if s <= mid < s + c]
                      or [min(starts, key=lambda s: abs(s + c / 2 - mid))])
        s = starts[int(torch.randint(len(starts), (1,), generator=generator))]
        out += [s, s + c]
    return tuple(out)  # type: ignore[return-value]


@dataclass
class ConcatSource:
    """Two sources of the same kind behind one index space: ``first``'s items, then ``second``'s
    (e.g. fully labelled start images followed by the partially labelled pool)."""

    first: "ImageSource | FeatureSource"
    second: "ImageSource | FeatureSource"

    def __post_init__(self) -> None:
        if type(self.first) is not type(self.second):
            raise TypeError("ConcatSource needs two sources of the same kind (both cached features or both images)")

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    @property
    def labels(self) -> torch.Tensor:
        return torch.cat([self.first.labels, self.second.labels])

    def inputs(self, index: torch.Tensor, flipped: torch.Tensor, box: list[Box] | None):
        n = len(self.first)
        parts = []  # (positions in the batch, inputs, labels) of each source
        for source, rows, offset in ((self.first, (index < n).nonzero().reshape(-1), 0),
                                     (self.second, (index >= n).nonzero().reshape(-1), n)):
            if len(rows):
                sub_box = [box[i] for i in rows.tolist()] if box is not None else None
                parts.append((rows, *source.inputs(index[rows] - offset, flipped[rows], sub_box)))
        order = torch.argsort(torch.cat([rows for rows, _, _ in parts]))  # back to the batch's order
        labels = torch.cat([lab for _, _, lab in parts])[order]
        if isinstance(parts[0][1], torch.Tensor):
            return torch.cat([x for _, x, _ in parts])[order], labels
        levels = len(parts[0][1])
        return [torch.cat([x[lvl] for _, x, _ in parts])[order] for lvl in range(levels)], labels
