"""RIPU-grid (spec ``ripu.md`` section 7, protocol B): RIPU's score applied to whole grid regions, so that
RIPU runs in the region loop beside random, entropy, BALD, DEAL and RALIS.

Two region scores (``al.ripu_grid.score``), both in [0, 1], higher = label first:

- ``cell`` (default): P_r * U_r, RIPU with the window = the grid cell. P_r is the normalised entropy of
  the histogram of predicted labels (argmax) over the region's pixels, U_r the mean normalised pixel
  entropy over the region.
- ``mean_A``: the mean over the region of RIPU-RA's k = 1 score map A_i (3 x 3 windows).

Padding pixels (``content`` False) count in neither. Regions are picked by the shared selection rule
(``al.selection``: one per pool of N random candidates, or the global top-K), as for every grid method;
RIPU's equal share per image (``ripu_grid_selection: per_image``) is not offered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from activeseg.al.strategies import ScoredPolicy, SelectionContext, encoded_inputs
from activeseg.config import Positive
from activeseg.errors import ConfigError
from activeseg.methods.ripu.scores import pixel_entropy, ripu_score
from activeseg.regions import RegionGrid

GridScore = Literal["cell", "mean_A"]
GRID_SCORES = ("cell", "mean_A")


@dataclass(frozen=True)
class RipuGridConfig:
    """RIPU-grid (strategy ripu_grid): RIPU's score per grid region, picked by the shared selection rule."""

    score: GridScore = "cell"
    """'cell': P_r x U_r over the whole region (impurity of its predicted-label histogram x its mean pixel
    entropy) or 'mean_A': the mean over the region of RIPU-RA's k = 1 score map."""
    norm_classes: Positive | None = None
    """Entropy normaliser ln(norm_classes) of impurity and uncertainty, at least the number of classes C
    (19 replicates RIPU's reference code); null: C."""

    def __post_init__(self) -> None:
        if self.score not in GRID_SCORES:
            raise ConfigError(f"al.ripu_grid.score is {self.score!r}; use 'cell' or 'mean_A'")
        if self.norm_classes is not None and self.norm_classes < 2:
            raise ConfigError(f"al.ripu_grid.norm_classes is {self.norm_classes}; use a class count >= the "
                              "number of classes, or leave it unset (null) to divide by ln C")


def cell_scores(logits: torch.Tensor, grid: RegionGrid, kind: GridScore = "cell", norm_classes: int | None = None,
                k: int = 1, content: torch.Tensor | None = None) -> torch.Tensor:
    """RIPU's score of every grid region of every image.

    Args:
        logits: Segmentation logits at the grid's resolution.
        grid: The regions.
        kind: 'cell' (P_r * U_r over the region) or 'mean_A' (region mean of the RA score map).
        norm_classes: Class count whose ln normalises the entropies; None = C.
        k: Window radius of the RA map for 'mean_A' (1: 3 x 3, as specified); unused by 'cell'.
        content: Image pixels (False on padding); padding adds nothing to a region's histogram or means.
            A region without image pixels scores 0. None: every pixel is image.

    Returns:
        Scores in [0, 1], float64.

    Shape:
        logits ``[N, C, H, W]``, content ``[N, H, W]`` bool -> ``[N, grid.regions_per_image]``.
    """
    if kind not in GRID_SCORES:
        raise ValueError(f"kind must be 'cell' or 'mean_A', got {kind!r}")
    if logits.dim() != 4 or tuple(logits.shape[-2:]) != (grid.height, grid.width):
        raise ValueError(f"logits must have shape [N, C, {grid.height}, {grid.width}] (the grid's image size), "
                         f"got {tuple(logits.shape)}")
    n = logits.shape[0]
    if content is not None and tuple(content.shape) != (n, grid.height, grid.width):
        raise ValueError(f"content must have shape [{n}, {grid.height}, {grid.width}], got {tuple(content.shape)}")
    with torch.no_grad():
        logits = logits.float()
        if kind == "mean_A":
            a = ripu_score(logits, "RA", k=k, norm_classes=norm_classes)["score"]  # [N, H, W]
            return grid.pool(a.double(), content)
        u = grid.pool(pixel_entropy(logits.softmax(1), norm_classes).double(), content)  # [N, R]
        return label_impurity(logits.argmax(1), logits.shape[1], grid, norm_classes, content) * u


def label_impurity(pred: torch.Tensor, num_classes: int, grid: RegionGrid, norm_classes: int | None = None,
                   content: torch.Tensor | None = None) -> torch.Tensor:
    """P_r: normalised entropy of the predicted-label histogram over each region's image pixels.

    Shape:
        pred ``[N, H, W]`` class ids, content ``[N, H, W]`` bool -> ``[N, regions_per_image]`` float64.
    """
    n, R, C = pred.shape[0], grid.regions_per_image, num_classes
    bins = grid.region_map().to(pred.device).reshape(1, -1) * C + pred.reshape(n, -1)  # [N, H*W]: region * C + class
    weight = torch.ones(bins.shape, dtype=torch.float64, device=pred.device) if content is None \
        else content.reshape(n, -1).to(device=pred.device, dtype=torch.float64)
    counts = torch.zeros(n, R * C, dtype=torch.float64, device=pred.device).scatter_add_(1, bins, weight)
    counts = counts.reshape(n, R, C)
    q = counts / counts.sum(2, keepdim=True).clamp(min=1.0)  # [N, R, C]; all 0 for a region without pixels
    # the entropy of a distribution over classes along dim 1, as for a pixel: [N, C, R, 1] -> [N, R, 1]
    return pixel_entropy(q.transpose(1, 2).unsqueeze(-1), norm_classes)[..., 0]


class RipuGridPolicy(ScoredPolicy):
    """RIPU-grid: ``cell_scores`` of the candidate regions (one eval-mode forward pass per candidate
    image), picked by ``ScoredPolicy.select`` (pools of N random candidates, one pick each, or the
    global top-K, per ``al.selection``)."""

    def __init__(self, cfg: RipuGridConfig) -> None:
        super().__init__(None)  # scores come per region, not as a pixel map to pool
        self.cfg = cfg

    @torch.no_grad()
    def region_scores(self, ctx: SelectionContext, images: torch.Tensor) -> torch.Tensor:
        """Scores of every region of ``images``. Shape: ``[len(images), R]`` float64."""
        ctx.model.eval()
        out = []
        for start in range(0, len(images), ctx.batch_size):
            chunk = images[start:start + ctx.batch_size]
            feats, size = encoded_inputs(ctx.model, ctx.pool, chunk, ctx.device)
            logits = ctx.model.decoder(feats, size)  # [n, C, H, W]
            content = None if ctx.content is None else ctx.content[chunk].to(logits.device)
            out.append(cell_scores(logits, ctx.state.grid, self.cfg.score, self.cfg.norm_classes,
                                   content=content).cpu())
        return torch.cat(out)

    def image_scores(self, ctx: SelectionContext, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("ripu_grid scores grid regions, not whole images; use it with the region "
                                  "protocol (al.deal.protocol: ralis)")
