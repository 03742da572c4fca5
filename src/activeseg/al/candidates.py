"""Candidate machinery: RALIS's K pools of N random regions with one pick per pool, or a global top-K."""

from __future__ import annotations

import numpy as np
import torch


def sample_pools(available: torch.Tensor, k: int, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """K pools of N distinct unlabelled regions (global ids), drawn as in RALIS (spec 3.2).

    (a) Random images are drawn without replacement until they hold more than K*N unlabelled regions;
    (b) one of these images is picked uniformly, then one of its not-yet-drawn unlabelled regions,
    until K*N regions are drawn; (c) they are shuffled and split into K pools. With K*N or fewer
    unlabelled regions left, all of them are used and the pools shrink.

    Args:
        available: unlabelled regions. Shape: ``[num_images, R]`` bool.
    """
    avail = available.cpu().numpy()
    per_image = avail.sum(1)
    total = int(per_image.sum())
    R = avail.shape[1]
    if total <= k * n:
        drawn = np.flatnonzero(avail.reshape(-1))
        rng.shuffle(drawn)
        return [p for p in np.array_split(drawn, min(k, total)) if len(p)]
    order = rng.permutation(avail.shape[0])
    chosen, held = [], 0
    for img in order:
        if per_image[img] == 0:
            continue
        chosen.append(int(img))
        held += int(per_image[img])
        if held > k * n:
            break
    remaining = {img: list(np.flatnonzero(avail[img])) for img in chosen}
    drawn = []
    while len(drawn) < k * n:
        img = chosen[int(rng.integers(len(chosen)))]
        regions = remaining[img]
        rid = regions.pop(int(rng.integers(len(regions))))
        drawn.append(img * R + int(rid))
        if not regions:
            chosen.remove(img)
    drawn = np.array(drawn)
    rng.shuffle(drawn)
    return list(drawn.reshape(k, n))


def select_per_pool(scores: torch.Tensor, pools: list[np.ndarray]) -> torch.Tensor:
    """The highest-scoring region of each pool (ties: the first in the pool).

    Args:
        scores: a score per global region id. Shape: ``[num_regions]``.
    """
    picks = [int(p[int(torch.argmax(scores[torch.as_tensor(p)]))]) for p in pools]
    return torch.tensor(picks, dtype=torch.long)


def select_global_topk(scores: torch.Tensor, available: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` highest-scoring unlabelled regions overall.

    Shape:
        scores ``[num_regions]``, available ``[num_regions]`` bool -> ``[min(k, available)]``.
    """
    masked = torch.where(available.reshape(-1), scores.double(), torch.tensor(-float("inf"), dtype=torch.float64))
    k = min(k, int(available.sum()))
    return masked.topk(k).indices
