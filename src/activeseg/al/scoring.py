"""Acquisition scores as pure functions of model outputs. Higher score = label first, always.

Pixel scores come from softmax probabilities ``[N, C, H, W]``; BALD accumulates over the T Monte-Carlo
passes as they are produced, so its memory does not grow with T. Natural logarithms throughout.
"""

from __future__ import annotations

import torch

EPS = 1e-10


def entropy(probs: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Shannon entropy -sum p ln(p + eps) along ``dim``.

    Shape:
        ``[N, C, H, W]`` -> ``[N, H, W]``.
    """
    return -(probs * torch.log(probs + EPS)).sum(dim)


def margin(probs: torch.Tensor) -> torch.Tensor:
    """1 - (p_top1 - p_top2): high where the two best classes are close.

    Shape:
        ``[N, C, H, W]`` -> ``[N, H, W]``.
    """
    top2 = probs.topk(2, dim=1).values
    return 1.0 - (top2[:, 0] - top2[:, 1])


class BALDAccumulator:
    """Streaming BALD: H[mean_t p_t] - mean_t H[p_t], fed one MC-dropout pass at a time.

    Memory holds two running sums (the mean probabilities and the mean entropy), whatever T is.
    """

    def __init__(self) -> None:
        self.count = 0
        self.sum_probs: torch.Tensor | None = None
        self.sum_entropy: torch.Tensor | None = None

    def update(self, probs: torch.Tensor) -> None:
        """Adds one pass. Shape: ``[N, C, H, W]``."""
        h = entropy(probs)
        if self.sum_probs is None:
            self.sum_probs, self.sum_entropy = probs.clone(), h
        else:
            self.sum_probs += probs
            self.sum_entropy += h
        self.count += 1

    def predictive_entropy(self) -> torch.Tensor:
        """Entropy of the mean prediction H[mean_t p_t]. Shape: ``[N, H, W]``."""
        if self.count == 0:
            raise ValueError("BALD needs at least one pass")
        return entropy(self.sum_probs / self.count)

    def score(self) -> torch.Tensor:
        """Mutual information per pixel. Shape: ``[N, H, W]``."""
        return self.predictive_entropy() - self.sum_entropy / self.count


def bald(mc_probs: torch.Tensor) -> torch.Tensor:
    """BALD of stacked MC passes.

    Shape:
        ``[T, N, C, H, W]`` -> ``[N, H, W]``.
    """
    acc = BALDAccumulator()
    for p in mc_probs:
        acc.update(p)
    return acc.score()
