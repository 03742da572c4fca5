"""DEAL as selection policies: DS or DE per grid region (through the shared selection rule), or per
whole image (one image per step). One eval-mode forward pass per candidate image gives M^d for all
its regions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from activeseg.al.candidates import select_global_topk
from activeseg.al.strategies import ScoredPolicy, SelectionContext, encoded_inputs
from activeseg.errors import ConfigError
from activeseg.methods.deal.config import DealConfig
from activeseg.methods.deal.scores import difficulty_entropy, difficulty_score, uncertainty

DIFFICULTY = "difficulty"  # the output key of the difficulty head


def unit_scorer(score: str, cfg: DealConfig) -> Callable:
    """``f(outputs, units [H, W], num_units, valid) -> [N, num_units]`` for 'ds' or 'de'."""
    if score not in ("ds", "de"):
        raise ValueError(f"unknown DEAL score {score!r}; use 'ds' or 'de'")

    def f(outputs: dict, units: torch.Tensor, num_units: int, valid: torch.Tensor | None) -> torch.Tensor:
        if DIFFICULTY not in outputs:
            raise ValueError("the model has no difficulty head; DEAL strategies need the start model built "
                             "for them (`activeseg run`/`benchmark` build it)")
        md = outputs[DIFFICULTY].cpu()
        if score == "de":
            return difficulty_entropy(md, units, num_units, cfg.de_levels, cfg.de_range, valid)
        u = uncertainty(outputs["logits"].float().softmax(1), cfg.ds_uncertainty)
        return difficulty_score(md, units, num_units, valid, None if u is None else u.cpu())

    return f


@torch.no_grad()
def score_images(ctx: SelectionContext, images: torch.Tensor, scorer: Callable, units: torch.Tensor,
                 num_units: int) -> torch.Tensor:
    """Scores of every unit of ``images`` in batches of ``ctx.batch_size``. Shape: ``[len(images), num_units]``."""
    ctx.model.eval()
    out = []
    for start in range(0, len(images), ctx.batch_size):
        chunk = images[start:start + ctx.batch_size]
        feats, size = encoded_inputs(ctx.model, ctx.pool, chunk, ctx.device)
        outputs = ctx.model.outputs(feats, size)
        valid = None if ctx.content is None else ctx.content[chunk]  # padding never adds to a score
        out.append(scorer(outputs, units, num_units, valid))
    return torch.cat(out)


def _subset(n: int, ratio: float, rng: np.random.Generator, at_least: int = 1) -> np.ndarray:
    """A random ``ratio`` share (rounded up, at least ``at_least``) of ``range(n)``, ascending."""
    m = min(n, max(at_least, int(np.ceil(ratio * n))))
    return np.sort(rng.choice(n, size=m, replace=False))


class DealRegionPolicy(ScoredPolicy):
    """DS or DE of each grid region; picked by the shared selection rule (``region_selection: pools``)
    or as the global top-K of a random ``sub_ratio`` of the unlabelled regions."""

    def __init__(self, score: str, cfg: DealConfig) -> None:
        super().__init__(None)
        if cfg.dif_unlabelled != "exclude":  # spec 7: with partial labels the head would learn "unlabelled = easy"
            raise ConfigError("al.deal.dif_unlabelled must be 'exclude' for region-level DEAL (deal_de, deal_ds): "
                              "regions leave most pixels unlabelled; 'as_correct' is for whole-image labels")
        self.cfg = cfg
        self.scorer = unit_scorer(score, cfg)

    def region_scores(self, ctx: SelectionContext, images: torch.Tensor) -> torch.Tensor:
        grid = ctx.state.grid
        return score_images(ctx, images, self.scorer, grid.region_map(), grid.regions_per_image)

    def select(self, ctx: SelectionContext) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cfg.region_selection == "pools":
            return super().select(ctx)
        avail = ctx.state.available()
        R = avail.shape[1]
        ids = avail.reshape(-1).nonzero().reshape(-1)
        subset = ids[torch.as_tensor(_subset(len(ids), self.cfg.sub_ratio, ctx.rng, ctx.k))]
        images = torch.unique(subset // R)
        scores = torch.full((avail.numel(),), -float("inf"), dtype=torch.float64)
        per_image = self.region_scores(ctx, images)  # [M, R]
        gids = (images[:, None] * R + torch.arange(R)[None, :]).reshape(-1)
        scores[gids] = per_image.reshape(-1)
        mask = torch.zeros(avail.numel(), dtype=torch.bool)
        mask[subset] = True
        picked = select_global_topk(scores, mask, ctx.k)
        return picked, scores[picked]


class DealImagePolicy:
    """One whole image per step: a fresh random ``sub_ratio`` share of the images that still have
    available regions is scored by DS or DE over each image's valid pixels; the best image's available
    regions are all labelled (at most ``ctx.k`` of them, in region order: set regions_per_step to the
    regions per image for whole images)."""

    def __init__(self, score: str, cfg: DealConfig) -> None:
        self.cfg = cfg
        self.scorer = unit_scorer(score, cfg)

    def image_scores(self, ctx: SelectionContext, images: torch.Tensor) -> torch.Tensor:
        """DS or DE of each whole image over its valid pixels. Shape: ``[len(images)]`` float64."""
        grid = ctx.state.grid
        whole = torch.zeros((grid.height, grid.width), dtype=torch.long)  # one unit: the image
        return score_images(ctx, images, self.scorer, whole, 1)[:, 0]

    def select(self, ctx: SelectionContext) -> tuple[torch.Tensor, torch.Tensor]:
        avail = ctx.state.available()
        R = avail.shape[1]
        open_images = avail.any(1).nonzero().reshape(-1)
        candidates = open_images[torch.as_tensor(_subset(len(open_images), self.cfg.sub_ratio, ctx.rng))]
        scores = self.image_scores(ctx, candidates)  # [M]
        best = int(candidates[int(torch.argmax(scores))])
        picked = (best * R + avail[best].nonzero().reshape(-1))[:ctx.k]
        return picked, scores.max().repeat(len(picked))
