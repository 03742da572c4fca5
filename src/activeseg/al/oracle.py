"""The simulated annotator: reveals ground truth at labelled pixels (regions or pixel sets), 255 elsewhere."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from activeseg import UNLABELLED
from activeseg.al.state import LabelledState, PixelLabelledState
from activeseg.regions import RegionGrid


class GroundTruthOracle:
    """Answers queries from full label maps.

    Args:
        labels: ground truth of the pool. Shape: ``[N, H, W]`` uint8.
        content: image pixels, False on padding (``fit: pad``); None: every pixel is image.
            Shape: ``[N, H, W]`` bool.
    """

    def __init__(self, labels: torch.Tensor, content: torch.Tensor | None = None) -> None:
        self.labels = labels
        self.content = content

    def selectable(self, grid: RegionGrid) -> torch.Tensor | None:
        """Regions holding at least one image pixel (None: all). Shape: ``[N, regions_per_image]`` bool."""
        if self.content is None:
            return None
        return grid.pool(self.content.to(torch.float32)) > 0

    def new_state(self, grid: RegionGrid) -> LabelledState:
        """An empty labelled state of this pool, where regions of pure padding are never selectable."""
        return LabelledState(self.labels.shape[0], grid, self.selectable(grid))

    def partial_labels(self, state: LabelledState | PixelLabelledState, images: torch.Tensor | None = None
                       ) -> torch.Tensor:
        """Ground truth at labelled pixels (of regions or pixel sets), ``UNLABELLED`` (255) everywhere else.

        Shape:
            ``[M, H, W]`` uint8 for the ``M`` images of ``images`` (default: all).
        """
        images = torch.arange(self.labels.shape[0]) if images is None else images
        known = state.known(images)  # [M, H, W]
        return torch.where(known, self.labels[images], torch.full_like(self.labels[images], UNLABELLED))

    def class_histogram(self, state: LabelledState | PixelLabelledState, num_classes: int) -> torch.Tensor:
        """Labelled pixels per class, then a void bin (image pixels with no class: values >= C, 255
        included), then, when the pool has padding, a padding bin (padded pixels of labelled regions).

        Shape: ``[num_classes + 1]`` int64, or ``[num_classes + 2]`` with a content mask.
        """
        known = state.known()  # [N, H, W]
        image = known if self.content is None else known & self.content
        values = self.labels[image].long().clamp(max=num_classes)
        hist = torch.bincount(values, minlength=num_classes + 1)
        if self.content is None:
            return hist
        return torch.cat([hist, (known & ~self.content).sum().reshape(1)])

    def region_class_counts(self, gids: torch.Tensor, grid: RegionGrid, num_classes: int) -> torch.Tensor:
        """Ground-truth pixels per class of each region, void (values >= C) in a last bin.

        Shape:
            gids ``[L]`` global region ids -> ``[L, num_classes + 1]`` int64.
        """
        R = grid.regions_per_image
        out = torch.zeros(len(gids), num_classes + 1, dtype=torch.long)
        for rid in torch.unique(gids % R).tolist():
            rows = (gids % R == rid).nonzero().reshape(-1)
            y0, y1, x0, x1 = grid.box(rid)
            lab = self.labels[gids[rows] // R, y0:y1, x0:x1].reshape(len(rows), -1).long().clamp(max=num_classes)
            out[rows] = F.one_hot(lab, num_classes + 1).sum(1)
        return out
