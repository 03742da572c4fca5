"""Class quantities and the quantity reward of MiSiCAL (spec ``misical.md`` sections 3 and 5).

The quantity of class c in region r is measured in region-equivalents, q_c(r) = n_c(r) / A: the
region's ground-truth pixels of c over its area A (each region's own area, so a clipped border region
counts its own pixels; 7,200 native, 1,800 at 180 x 240). A last, void column takes the pixels of no
class, so every region's row sums to 1. A set's quantity is Q_c(S) = sum of q_c(r) over r in S, additive
over disjoint sets. The reward of adding region r to the acquired set S is
g(Q(S) + q(r)) - g(Q(S)) with g(q) = ln(1 + q) (diminishing returns) or g(q) = q ('linear' ablation);
with gamma = 1 an episode's rewards telescope to g(Q(S_final)) - g(0).
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch

from activeseg.al.oracle import GroundTruthOracle
from activeseg.regions import RegionGrid

RewardG = Literal["log1p", "linear"]
G_FUNCTIONS: dict[str, Callable[[float], float]] = {"log1p": math.log1p, "linear": lambda q: q}


def region_areas(grid: RegionGrid) -> torch.Tensor:
    """Pixels of every region (clipped border regions are smaller). Shape: ``[R]`` int64."""
    areas = [(y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in map(grid.box, range(grid.regions_per_image))]
    return torch.tensor(areas, dtype=torch.long)


def class_quantities(truth: GroundTruthOracle | torch.Tensor, grid: RegionGrid, num_classes: int,
                     images: torch.Tensor | None = None) -> torch.Tensor:
    """q_c(r) = n_c(r) / A for every class, then void (label values >= C), of every region.

    Args:
        truth: the ground truth, as an oracle or as label maps.
        grid: the regions, at the labels' resolution.
        num_classes: C.
        images: indices of the images to measure (default: all).

    Shape:
        labels ``[N, H, W]`` uint8 -> ``[len(images), R, C + 1]`` float32; every row sums to 1.
    """
    oracle = truth if isinstance(truth, GroundTruthOracle) else GroundTruthOracle(truth)
    if tuple(oracle.labels.shape[-2:]) != (grid.height, grid.width):
        raise ValueError(f"labels are {tuple(oracle.labels.shape[-2:])} but the region grid is "
                         f"{grid.height}x{grid.width}; build the grid at the labels' resolution")
    images = torch.arange(oracle.labels.shape[0]) if images is None else images.long()
    R = grid.regions_per_image
    gids = (images[:, None] * R + torch.arange(R)[None, :]).reshape(-1)  # [M*R], image-major
    counts = oracle.region_class_counts(gids, grid, num_classes)  # [M*R, C+1]
    counts = counts.reshape(len(images), R, num_classes + 1)  # [M, R, C+1]
    return (counts.double() / region_areas(grid)[None, :, None]).float()


def set_quantity(q: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """Q_c(S): the summed quantity of every class (void dropped) over the selected regions.

    Args:
        q: per-region quantities from ``class_quantities`` (or rows of them).
        selected: row ids into ``q`` flattened to ``[N*R, C+1]`` (the global region ids
            ``image * R + rid`` when ``q`` is ``[N, R, C+1]``), each at most once, or a boolean mask of
            ``q``'s leading shape.

    Shape:
        q ``[N, R, C+1]`` or ``[M, C+1]`` -> ``[C]``.
    """
    flat = q.reshape(-1, q.shape[-1])  # [N*R, C+1]
    if selected.dtype == torch.bool:
        if selected.shape != q.shape[:-1]:
            raise ValueError(f"the selection mask has shape {tuple(selected.shape)}; it must match the leading "
                             f"shape of q, {tuple(q.shape[:-1])}")
        rows = selected.reshape(-1).nonzero().reshape(-1)
    else:
        rows = selected.reshape(-1).long()
        if len(torch.unique(rows)) != len(rows):
            raise ValueError("the selection repeats a region; a set holds each region once")
    return flat[rows].sum(0)[:-1]


def reward(q_before: float, q_region: float, g: RewardG = "log1p") -> float:
    """g(Q + q) - g(Q): the gain of adding a region holding ``q_region`` of the target class to a set
    holding ``q_before`` (0 when the region holds none).

    Example: ``reward(0.5, 0.5) = ln 2 - ln 1.5 = 0.2877``.
    """
    if g not in G_FUNCTIONS:
        raise ValueError(f"unknown reward g {g!r}; use one of {', '.join(G_FUNCTIONS)}")
    if q_before < 0 or q_region < 0:
        raise ValueError(f"quantities are non-negative, got Q = {q_before}, q = {q_region}")
    fn = G_FUNCTIONS[g]
    return fn(q_before + q_region) - fn(q_before)
