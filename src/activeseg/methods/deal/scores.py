"""DEAL's acquisition scores (spec sections 3 and 7) as pure functions of the difficulty map.

A *unit* is a region of the grid or a whole image; each score is computed for every unit of a batch
at once, over the unit's valid pixels only (padding never counts). Higher = label first.
"""

from __future__ import annotations

import torch

from activeseg.al.scoring import EPS, entropy, margin


def uncertainty(probs: torch.Tensor, kind: str) -> torch.Tensor | None:
    """U of DS: None for 'none' (U = 1), else entropy, least confidence (1 - max p) or margin.

    Shape:
        probs ``[N, C, H, W]`` -> ``[N, H, W]``.
    """
    if kind == "none":
        return None
    if kind == "entropy":
        return entropy(probs)
    if kind == "least_confidence":
        return 1.0 - probs.max(1).values
    if kind == "margin":
        return margin(probs)
    raise ValueError(f"unknown uncertainty {kind!r}")


def _flat(units: torch.Tensor, valid: torch.Tensor | None, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit ids and validity of every pixel, on ``like``'s device. Shape: ``[N, P]`` each."""
    n = like.shape[0]
    ids = units.to(device=like.device, dtype=torch.long).reshape(-1).expand(n, -1)  # [N, P]
    weight = (torch.ones(like.shape, dtype=torch.bool) if valid is None else valid.bool()).reshape(n, -1)
    return ids, weight.to(like.device)


def difficulty_score(difficulty: torch.Tensor, units: torch.Tensor, num_units: int,
                     valid: torch.Tensor | None = None, u: torch.Tensor | None = None) -> torch.Tensor:
    """DS of every unit: the mean of M^d * U over its valid pixels (U = 1 when ``u`` is None); a unit
    without valid pixels scores 0.

    Shape:
        difficulty ``[N, H, W]``, units ``[H, W]`` (unit id of each pixel), valid and u ``[N, H, W]``
        -> ``[N, num_units]`` float64.
    """
    n = difficulty.shape[0]
    x = difficulty.double() if u is None else difficulty.double() * u.double()
    ids, weight = _flat(units, valid, difficulty)
    w = weight.double()
    sums = torch.zeros((n, num_units), dtype=torch.float64, device=x.device).scatter_add_(1, ids, x.reshape(n, -1) * w)
    counts = torch.zeros((n, num_units), dtype=torch.float64, device=x.device).scatter_add_(1, ids, w)
    return sums / counts.clamp(min=1)


def difficulty_entropy(difficulty: torch.Tensor, units: torch.Tensor, num_units: int, levels: int = 8,
                       value_range: str = "unit_minmax", valid: torch.Tensor | None = None) -> torch.Tensor:
    """DE of every unit: -sum_l p_l ln p_l of a ``levels``-bin histogram of M^d over its valid pixels.

    Bins are equal-width between the unit's own min and max ('unit_minmax'; a constant map has one bin,
    DE 0) or over [0, 1] ('fixed01'); a value on the upper edge falls in the last bin. A unit without
    valid pixels scores 0.

    Shape:
        difficulty ``[N, H, W]``, units ``[H, W]``, valid ``[N, H, W]`` -> ``[N, num_units]`` float64.
    """
    n = difficulty.shape[0]
    v = difficulty.double().reshape(n, -1)  # [N, P]
    ids, weight = _flat(units, valid, difficulty)
    if value_range == "fixed01":
        lo = torch.zeros((n, num_units), dtype=torch.float64, device=v.device)
        hi = torch.ones((n, num_units), dtype=torch.float64, device=v.device)
    else:
        inf = torch.full((n, num_units), float("inf"), dtype=torch.float64, device=v.device)
        lo = inf.scatter_reduce(1, ids, torch.where(weight, v, inf[:, :1].expand_as(v)), "amin")
        hi = (-inf).scatter_reduce(1, ids, torch.where(weight, v, -inf[:, :1].expand_as(v)), "amax")
    lo_px, hi_px = lo.gather(1, ids), hi.gather(1, ids)  # [N, P]
    span = hi_px - lo_px
    scaled = torch.where(span > 0, (v - lo_px) / span.clamp(min=EPS), torch.zeros_like(v))
    bins = (scaled * levels).floor().clamp(0, levels - 1).long()  # [N, P]
    counts = torch.zeros((n, num_units * levels), dtype=torch.float64, device=v.device)
    counts.scatter_add_(1, ids * levels + bins, weight.double())
    counts = counts.reshape(n, num_units, levels)
    p = counts / counts.sum(-1, keepdim=True).clamp(min=1)
    return -(p * torch.log(p.clamp(min=EPS))).sum(-1)
