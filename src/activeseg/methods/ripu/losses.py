"""RIPU's two auxiliary training losses (spec section 3) and the boundary mask of the second.

- Negative learning L_nl (target images): pushes classes that are already unlikely (p < tau) to 0,
  without committing to a pseudo-label.
- Local consistency L_cr (source images): the L1 distance between a pixel's softmax and the 3 x 3
  mean around it, averaged over semantic-boundary pixels of the label map.

Both return a scalar that keeps the autograd graph, also when nothing qualifies (then it is 0).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

_OFFSETS = [(dy, dx) for dy in range(3) for dx in range(3)]  # 3 x 3 neighbourhood in a 1-padded map


def _graph_zero(logits: torch.Tensor) -> torch.Tensor:
    """A scalar 0 connected to ``logits``, so ``backward()`` works on an empty term (also with inf logits)."""
    return logits.nan_to_num(0.0, 0.0, 0.0).sum() * 0.0


def negative_learning_loss(logits: torch.Tensor, tau: float = 0.05, mask: torch.Tensor | None = None) -> torch.Tensor:
    """L_nl = -sum_{i,c} 1[p_ic < tau] ln(1 - p_ic) / sum_{i,c} 1[p_ic < tau] (0 when the count is 0).

    The indicator is a fixed selection; the gradient flows through p. Example: p = (0.90, 0.06, 0.04)
    with tau = 0.05 gives -ln 0.96 = 0.0408.

    Args:
        logits: Segmentation logits.
        tau: Probability threshold below which a class counts as a negative.
        mask: Pixels that take part (None = all).

    Shape:
        logits ``[N, C, H, W]``, mask ``[N, H, W]`` bool -> scalar.
    """
    if logits.dim() != 4:
        raise ValueError(f"logits must have shape [N, C, H, W], got {tuple(logits.shape)}")
    probs = logits.softmax(1)  # [N, C, H, W]
    chosen = probs.detach() < tau
    if mask is not None:
        if mask.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f"mask must have shape [N, H, W] = {(logits.shape[0], *logits.shape[2:])}, "
                             f"got {tuple(mask.shape)}")
        chosen = chosen & mask.bool().unsqueeze(1)
    count = int(chosen.sum())
    if count == 0:
        return _graph_zero(logits)
    # Zero the unchosen probabilities first: log1p(-1) = -inf would turn their (masked) gradient into NaN.
    safe = torch.where(chosen, probs, torch.zeros_like(probs))
    return -torch.log1p(-safe).sum() / count


def boundary_mask(labels: torch.Tensor, num_classes: int,
                  kind: Literal["neighbour_differs", "laplacian"] = "neighbour_differs") -> torch.Tensor:
    """Semantic-boundary pixels of a label map, for L_cr.

    Both variants see the map with zero padding, so the border pixels of a non-zero label count as
    boundary (a constant non-zero map gives exactly its image border; a constant 0 map gives none).

    - ``neighbour_differs``: some label in the 3 x 3 neighbourhood differs from the pixel's own.
    - ``laplacian``: the 8-neighbour Laplacian (8 at the centre, -1 around) of the label ids is
      non-zero; it agrees with ``neighbour_differs`` except where differences cancel.

    Pixels whose own label is outside [0, num_classes) (void, 255) are never in the mask. Their values
    do enter their neighbours' comparison as they are, so a labelled pixel next to void counts as a
    boundary pixel: the label map is used as it is, as the reference does with its Laplacian.

    Shape:
        labels ``[N, H, W]`` integer -> ``[N, H, W]`` bool.
    """
    if labels.dim() != 3 or labels.is_floating_point():
        raise ValueError(f"labels must be integer ids of shape [N, H, W], got {labels.dtype} {tuple(labels.shape)}")
    y = labels.long()
    height, width = y.shape[-2:]
    padded = F.pad(y, (1, 1, 1, 1), value=0)  # [N, H+2, W+2]
    neighbours = [padded[:, dy:dy + height, dx:dx + width] for dy, dx in _OFFSETS]  # 9 x [N, H, W]
    if kind == "neighbour_differs":
        edge = torch.zeros_like(y, dtype=torch.bool)
        for n in neighbours:
            edge |= n != y
    elif kind == "laplacian":
        edge = (9 * y - torch.stack(neighbours).sum(0)) != 0  # 8 y - sum of the 8 neighbours
    else:
        raise ValueError(f"kind must be 'neighbour_differs' or 'laplacian', got {kind!r}")
    return edge & (y >= 0) & (y < num_classes)


def neighbourhood_divergence(probs: torch.Tensor) -> torch.Tensor:
    """d_i = || p_i - pbar_i ||_1, pbar_i = mean of p over the 3 x 3 window (replicate padding).

    Example: p_i = (1, 0) with pbar_i = (0.5, 0.5) gives d_i = 1.

    Shape:
        probs ``[N, C, H, W]`` -> ``[N, H, W]``.
    """
    if probs.dim() != 4:
        raise ValueError(f"probs must have shape [N, C, H, W], got {tuple(probs.shape)}")
    mean = F.avg_pool2d(F.pad(probs, (1, 1, 1, 1), mode="replicate"), 3, stride=1)  # [N, C, H, W]
    return (probs - mean).abs().sum(1)


def local_consistency_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L_cr: mean of :func:`neighbourhood_divergence` of the softmax over the masked pixels (0 if none).

    Args:
        logits: Segmentation logits (source images).
        mask: Pixels that count, usually :func:`boundary_mask` of the labels.

    Shape:
        logits ``[N, C, H, W]``, mask ``[N, H, W]`` bool -> scalar.
    """
    if logits.dim() != 4 or mask.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"expected logits [N, C, H, W] and mask [N, H, W], got {tuple(logits.shape)} "
                         f"and {tuple(mask.shape)}")
    mask = mask.bool()
    if not bool(mask.any()):
        return _graph_zero(logits)
    return neighbourhood_divergence(logits.softmax(1))[mask].mean()
