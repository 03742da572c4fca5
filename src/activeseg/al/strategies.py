"""What every selection policy shares: the context it observes, the ``Policy`` protocol, and the scored
policy (region scores = pixel scores pooled per region, then a selection rule).

Every policy implements ``select(ctx) -> (global region ids, their scores)``; the loop never asks
which one it runs. The methods themselves live in ``activeseg.methods``, registered by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch

from activeseg.al.candidates import sample_pools, select_global_topk, select_per_pool
from activeseg.al.oracle import GroundTruthOracle
from activeseg.al.state import LabelledState
from activeseg.models.segmenter import Segmenter
from activeseg.train.sources import FeatureSource, ImageSource

Selection = Literal["pools", "global_topk"]


@dataclass
class SelectionContext:
    """Everything a policy may look at when it chooses the next regions."""

    model: Segmenter
    pool: FeatureSource | ImageSource
    state: LabelledState
    device: torch.device
    rng: np.random.Generator
    generator: torch.Generator
    k: int = 24
    n: int = 10
    selection: Selection = "pools"
    mc_passes: int = 20
    mc_dropout: float = 0.5
    batch_size: int = 16
    revealed: GroundTruthOracle | None = None
    """Labels given so far (read only inside labelled regions); RALIS compares candidates with them."""
    state_set: FeatureSource | ImageSource | None = None
    """RALIS: images whose regions describe the model's state (D_S); their labels are never read."""
    content: torch.Tensor | None = None
    """Image pixels of the pool (False on padding), ``[N, H, W]`` bool; None: every pixel is image."""
    start_model: Segmenter | None = None
    """The run's start model, unchanged while ``model`` is fine-tuned step by step (a method that embeds the
    pool once, such as misical, reads it); None: use ``model``."""


def encoded_inputs(model: Segmenter, source: FeatureSource | ImageSource, images: torch.Tensor,
                   device: torch.device) -> tuple[list[torch.Tensor], tuple]:
    """Encoder features of whole images (from the cache, or by running the encoder), and their size."""
    inputs, labels = source.inputs(images, torch.zeros(len(images), dtype=torch.bool), None)
    size = tuple(labels.shape[-2:])
    if isinstance(inputs, torch.Tensor):
        return model.encode(inputs.to(device)), size
    return [f.to(device).float() for f in inputs], size


class ScoredPolicy:
    """Scores candidate regions with ``pixel_scores`` (mean over the region's image pixels) and picks
    the best."""

    def __init__(self, pixel_scores: Callable[[SelectionContext, torch.Tensor], torch.Tensor] | None) -> None:
        self.pixel_scores = pixel_scores

    @torch.no_grad()  # covers every pixel-score function: scoring never builds an autograd graph
    def region_scores(self, ctx: SelectionContext, images: torch.Tensor) -> torch.Tensor:
        """Scores of every region of ``images``. Shape: ``[len(images), R]``."""
        if self.pixel_scores is None:  # random: i.i.d. uniform scores
            return torch.rand((len(images), ctx.state.grid.regions_per_image), generator=ctx.generator,
                              dtype=torch.float64)
        ctx.model.eval()
        out = []
        for start in range(0, len(images), ctx.batch_size):
            chunk = images[start:start + ctx.batch_size]
            px = self.pixel_scores(ctx, chunk)
            valid = None if ctx.content is None else ctx.content[chunk]  # padding never adds to a score
            out.append(ctx.state.grid.pool(px.double(), valid).cpu())
        return torch.cat(out)

    def image_scores(self, ctx: SelectionContext, images: torch.Tensor) -> torch.Tensor:
        """Score of each whole image: the mean of its region scores weighted by their image pixels, i.e.
        the mean pixel score over the image (random: one i.i.d. uniform score per image, so padding
        cannot bias the ranking: a uniformly random one). Shape: ``[len(images)]`` float64."""
        if self.pixel_scores is None:  # random: the mean of region draws would weight them by padding
            return torch.rand(len(images), generator=ctx.generator, dtype=torch.float64)
        per_region = self.region_scores(ctx, images)  # [M, R]
        grid = ctx.state.grid
        area = torch.bincount(grid.region_map().reshape(-1), minlength=grid.regions_per_image).to(torch.float64)
        if ctx.content is None:
            pixels = area.expand_as(per_region)
        else:  # image pixels per region: the content share of each region times its area
            pixels = grid.pool(ctx.content[images].to(torch.float64)) * area
        return (per_region * pixels).sum(1) / pixels.sum(1).clamp(min=1)

    def select(self, ctx: SelectionContext) -> tuple[torch.Tensor, torch.Tensor]:
        avail = ctx.state.available()
        R = avail.shape[1]
        if ctx.selection == "pools":
            pools = sample_pools(avail, ctx.k, ctx.n, ctx.rng)
            candidates = torch.as_tensor(np.concatenate(pools), dtype=torch.long)
        else:
            candidates = avail.reshape(-1).nonzero().reshape(-1)
        images = torch.unique(candidates // R)
        scores = torch.full((avail.numel(),), -float("inf"), dtype=torch.float64)
        per_image = self.region_scores(ctx, images)  # [M, R]
        gids = (images[:, None] * R + torch.arange(R)[None, :]).reshape(-1)
        scores[gids] = per_image.reshape(-1)
        if ctx.selection == "pools":
            picked = select_per_pool(scores, pools)
        else:
            picked = select_global_topk(scores, avail.reshape(-1), ctx.k)
        return picked, scores[picked]


class Policy(Protocol):
    def select(self, ctx: SelectionContext) -> tuple[torch.Tensor, torch.Tensor]: ...


class ImageRanker(Protocol):
    """A policy that also scores whole images (higher = label first), for image-level protocols."""

    def image_scores(self, ctx: SelectionContext, images: torch.Tensor) -> torch.Tensor: ...
