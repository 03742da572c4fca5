"""State and action descriptors of RALIS (spec 3.3 and 3.4), vectorised in torch.

Region descriptor phi(r), dimension C + 1 + 3 * 64: predicted-class pixel counts (+1e-7, with a void
bin that is never predicted), then the region's pixel-entropy map pooled on an 8 x 8 grid with min,
mean and max pooling (row-major). Candidate features psi(a) = [phi(a); h_lab(a); h_pool(a)], the two
32-bin histograms of KL divergences being the last 64 entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from activeseg.al.scoring import entropy
from activeseg.regions import RegionGrid

TINY = 1e-7
GRID = 8
BINS = 32
EntropyPool = Literal["floor", "adaptive"]


@dataclass(frozen=True)
class DescriptorConfig:
    """How phi and psi are built; the defaults replicate the reference code (spec 8)."""

    entropy_pool: EntropyPool = "floor"
    """Q14: 'floor' (reference, trailing rows dropped) or 'adaptive' (whole region)."""
    class_hist_void_bin: bool = True
    """Q5: keep the always-empty void bin in the class counts (phi 204) or drop it (203)."""
    class_hist_normalise: bool = False
    """Q4b: class counts as raw pixel counts (reference) or as fractions of the region."""
    kl_hist_range: Literal["adaptive", "fixed"] = "adaptive"
    """Q4: histogram range per candidate (min..max of its own KL values) or fixed [0, kl_hist_max]."""
    kl_hist_max: float = 20.0
    """Upper edge of the fixed KL-histogram range (values above go to the last bin)."""

    def class_bins(self, num_classes: int) -> int:
        """Class-count entries at the start of phi (C, plus the void bin)."""
        return num_classes + int(self.class_hist_void_bin)

    def phi_dim(self, num_classes: int) -> int:
        return self.class_bins(num_classes) + 3 * GRID * GRID


def pool_entropy(emap: torch.Tensor, mode: EntropyPool = "floor") -> torch.Tensor:
    """Min, mean and max of a region's entropy on an 8 x 8 grid.

    "floor" (reference): windows of floor(h/8) x floor(w/8), stride = window, the first 8 x 8 kept (the
    last rows/columns may be dropped); "adaptive": adaptive pooling over the whole region.

    Shape:
        ``[M, h, w]`` -> ``[M, 192]`` (min grid, mean grid, max grid; each row-major).
    """
    x = emap[:, None]  # [M, 1, h, w]
    if mode == "floor":
        k = (emap.shape[-2] // GRID, emap.shape[-1] // GRID)
        grids = [-F.max_pool2d(-x, k, k), F.avg_pool2d(x, k, k), F.max_pool2d(x, k, k)]
        grids = [g[..., :GRID, :GRID] for g in grids]
    else:
        grids = [-F.adaptive_max_pool2d(-x, GRID), F.adaptive_avg_pool2d(x, GRID), F.adaptive_max_pool2d(x, GRID)]
    return torch.cat([g.reshape(len(emap), -1) for g in grids], dim=1)  # 3 x [M, 64] -> [M, 192]


def region_descriptors(probs: torch.Tensor, grid: RegionGrid, entropy_pool: EntropyPool = "floor",
                       void_bin: bool = True, normalise: bool = False) -> torch.Tensor:
    """phi for every region of every image (``normalise``: class counts as fractions of the region).

    Shape:
        probs ``[N, C, H, W]`` (softmax) -> ``[N, R, C + void_bin + 192]``.
    """
    n, c = probs.shape[:2]
    pred = probs.argmax(1)  # [N, H, W]
    ent = entropy(probs)  # [N, H, W]
    out = []
    for rid in range(grid.regions_per_image):
        y0, y1, x0, x1 = grid.box(rid)
        counts = F.one_hot(pred[:, y0:y1, x0:x1].reshape(n, -1), c).sum(1).to(probs.dtype)  # [N, C]
        if void_bin:
            counts = torch.cat([counts, torch.zeros(n, 1, dtype=probs.dtype, device=probs.device)], 1)
        if normalise:
            counts = counts / ((y1 - y0) * (x1 - x0))
        out.append(torch.cat([counts + TINY, pool_entropy(ent[:, y0:y1, x0:x1], entropy_pool)], 1))
    return torch.stack(out, 1)  # R x [N, D] -> [N, R, D]


def kl_histogram(values: torch.Tensor, bins: int = BINS, fixed_max: float | None = None) -> torch.Tensor:
    """Normalised histogram of each row, equal-width bins between the row's own min and max (the max
    falls in the last bin); a constant row v uses [v - 0.5, v + 0.5]. An empty row gives zeros.
    With ``fixed_max`` every row uses the range [0, fixed_max] (larger values go to the last bin).

    Shape:
        ``[A, J]`` -> ``[A, bins]``.
    """
    a, j = values.shape
    if j == 0:
        return torch.zeros(a, bins, dtype=values.dtype, device=values.device)
    if fixed_max is not None:
        lo, hi = torch.zeros_like(values[:, :1]), torch.full_like(values[:, :1], fixed_max)
    else:
        lo, hi = values.min(1, keepdim=True).values, values.max(1, keepdim=True).values
        flat = hi == lo
        lo, hi = torch.where(flat, lo - 0.5, lo), torch.where(flat, hi + 0.5, hi)
    idx = ((values - lo) / (hi - lo) * bins).floor().long().clamp(0, bins - 1)
    hist = torch.zeros(a, bins, dtype=values.dtype, device=values.device)
    hist.scatter_add_(1, idx, torch.ones_like(values))
    return hist / j


def kl_matrix(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p_a || q_j) for every pair (natural log).

    Shape:
        p ``[A, B]``, q ``[J, B]`` (strictly positive distributions) -> ``[A, J]``.
    """
    return (p * p.log()).sum(1, keepdim=True) - p @ q.log().T


def class_distribution(counts: torch.Tensor) -> torch.Tensor:
    """Counts -> distribution with zero entries replaced by 1e-7. Shape: ``[M, B]`` -> ``[M, B]``."""
    dist = counts / counts.sum(1, keepdim=True).clamp(min=1)
    return torch.where(dist > 0, dist, torch.full_like(dist, TINY))


def action_features(phi: torch.Tensor, labelled_gt_counts: torch.Tensor, num_bins: int,
                    kl_max: float | None = None) -> torch.Tensor:
    """psi for the candidates of one step.

    Args:
        phi: descriptors of all K * N candidates of the step. Shape ``[A, D]``.
        labelled_gt_counts: ground-truth class counts (void in the last bin) of the regions labelled so
            far in this run. Shape ``[L, num_bins]`` (L may be 0).
        num_bins: class bins at the start of phi (C + 1 with the void bin).
        kl_max: fixed histogram range [0, kl_max] instead of each candidate's own min..max.

    Shape:
        -> ``[A, D + 64]``.
    """
    p = phi[:, :num_bins] / phi[:, :num_bins].sum(1, keepdim=True)
    h_lab = kl_histogram(kl_matrix(p, class_distribution(labelled_gt_counts)) if len(labelled_gt_counts)
                         else p.new_zeros(len(p), 0), fixed_max=kl_max)
    h_pool = kl_histogram(kl_matrix(p, p), fixed_max=kl_max)
    return torch.cat([phi, h_lab, h_pool], 1)
