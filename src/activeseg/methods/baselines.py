"""The classic baselines: random, entropy, margin and BALD (MC dropout), each a pixel score pooled
per region and picked by the shared selection rule of ``ScoredPolicy`` (or averaged over whole images,
for the image-level protocol)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from activeseg.al.scoring import BALDAccumulator, entropy, margin
from activeseg.al.strategies import ScoredPolicy, SelectionContext, encoded_inputs
from activeseg.methods.registry import Method, register


def softmax_scores(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """Pixel scores from one deterministic pass: ``fn(probs [N,C,H,W]) -> [N,H,W]``."""

    def pixel_scores(ctx: SelectionContext, images: torch.Tensor) -> torch.Tensor:
        feats, size = encoded_inputs(ctx.model, ctx.pool, images, ctx.device)
        return fn(ctx.model.decoder(feats, size).softmax(1))

    return pixel_scores


def bald_pixel_scores(ctx: SelectionContext, images: torch.Tensor) -> torch.Tensor:
    """BALD over ``mc_passes`` dropout samples at the decoder's dropout point; the features before it
    are computed once, and the passes are accumulated as they are produced."""
    feats, size = encoded_inputs(ctx.model, ctx.pool, images, ctx.device)
    y = ctx.model.decoder.embed(feats)
    acc = BALDAccumulator()
    for _ in range(ctx.mc_passes):
        acc.update(ctx.model.decoder.classify(F.dropout(y, ctx.mc_dropout, training=True), size).softmax(1))
    return acc.score()


register(Method("random", lambda cfg: ScoredPolicy(None), ranks_images=True))
register(Method("entropy", lambda cfg: ScoredPolicy(softmax_scores(entropy)), ranks_images=True))
register(Method("margin", lambda cfg: ScoredPolicy(softmax_scores(margin)), ranks_images=True))
register(Method("bald", lambda cfg: ScoredPolicy(bald_pixel_scores), ranks_images=True))
