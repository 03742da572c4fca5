"""A grid of rectangular regions per image and one global region-id space.

Region ``rid`` of an image is ``row * cols + col`` (row-major). Global ids number every region of a
set of images: ``gid = image_index * regions_per_image + rid``.

When the image size is not a multiple of the region size, ``rows = ceil(H / region_h)`` and the
regions of the last row (column) are clipped to the image, so they are smaller; every pixel belongs to
exactly one region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from activeseg.errors import ConfigError


@dataclass(frozen=True)
class RegionGrid:
    """Regions of ``region_h x region_w`` pixels tiling an ``height x width`` image."""

    height: int
    width: int
    region_h: int
    region_w: int

    def __post_init__(self) -> None:
        if min(self.height, self.width, self.region_h, self.region_w) <= 0:
            raise ConfigError(f"region grid sizes must be positive, got {self}")
        if self.region_h > self.height or self.region_w > self.width:
            raise ConfigError(
                f"region {self.region_h}x{self.region_w} is larger than the image "
                f"{self.height}x{self.width}; choose a smaller region size"
            )

    @classmethod
    def from_counts(cls, height: int, width: int, rows: int = 4, cols: int = 6) -> "RegionGrid":
        """The grid with ``rows x cols`` regions (CamVid default 4 x 6: 45 x 40 px at 180 x 240)."""
        return cls(height, width, math.ceil(height / rows), math.ceil(width / cols))

    @property
    def rows(self) -> int:
        return math.ceil(self.height / self.region_h)

    @property
    def cols(self) -> int:
        return math.ceil(self.width / self.region_w)

    @property
    def regions_per_image(self) -> int:
        return self.rows * self.cols

    def box(self, rid: int) -> tuple[int, int, int, int]:
        """Half-open pixel box ``(y0, y1, x0, x1)`` of region ``rid``."""
        if not 0 <= rid < self.regions_per_image:
            raise IndexError(f"region id {rid} outside [0, {self.regions_per_image})")
        row, col = divmod(rid, self.cols)
        y0, x0 = row * self.region_h, col * self.region_w
        return y0, min(y0 + self.region_h, self.height), x0, min(x0 + self.region_w, self.width)

    def mask(self, rid: int) -> torch.Tensor:
        """Boolean pixel mask of one region. Shape: ``[H, W]``."""
        y0, y1, x0, x1 = self.box(rid)
        m = torch.zeros((self.height, self.width), dtype=torch.bool)
        m[y0:y1, x0:x1] = True
        return m

    def region_map(self) -> torch.Tensor:
        """Region id of every pixel. Shape: ``[H, W]`` int64."""
        r = torch.arange(self.height) // self.region_h
        c = torch.arange(self.width) // self.region_w
        return r[:, None] * self.cols + c[None, :]

    def region_of(self, y: int, x: int) -> int:
        """Region id of pixel ``(y, x)``."""
        return (y // self.region_h) * self.cols + x // self.region_w

    def pool(self, pixel_scores: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of a per-pixel map over each region, over its ``valid`` pixels only when given (a region
        without valid pixels gets 0).

        Shape:
            ``[N, H, W]`` (and ``valid`` ``[N, H, W]`` bool) -> ``[N, regions_per_image]``.
        """
        n = pixel_scores.shape[0]
        ids = self.region_map().to(pixel_scores.device).reshape(-1)
        sums = torch.zeros((n, self.regions_per_image), dtype=pixel_scores.dtype, device=pixel_scores.device)
        if valid is None:
            sums.index_add_(1, ids, pixel_scores.reshape(n, -1))
            counts = torch.bincount(ids, minlength=self.regions_per_image).to(pixel_scores.dtype)
            return sums / counts
        weight = valid.to(device=pixel_scores.device, dtype=pixel_scores.dtype).reshape(n, -1)
        sums.index_add_(1, ids, pixel_scores.reshape(n, -1) * weight)
        counts = torch.zeros_like(sums).index_add_(1, ids, weight)
        return sums / counts.clamp(min=1)

    # --- the global id space -------------------------------------------------------------------

    def global_id(self, image: int, rid: int) -> int:
        return image * self.regions_per_image + rid

    def split_id(self, gid: int) -> tuple[int, int]:
        """``(image_index, rid)`` of a global region id."""
        return divmod(gid, self.regions_per_image)
