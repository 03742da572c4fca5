"""DEAL's options (spec ``deal.md`` section 8): the difficulty branch, its loss and the acquisition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from activeseg.errors import ConfigError


@dataclass(frozen=True)
class DealConfig:
    """DEAL (difficulty-aware active learning); the score (DS/DE) and the unit (region/image) are named
    by the strategy: deal_de, deal_ds, deal_de_image, deal_ds_image."""

    ds_uncertainty: Literal["none", "entropy", "least_confidence", "margin"] = "none"
    """DS = mean of difficulty x U with U: 'none' (U = 1, the released default), 'entropy',
    'least_confidence' or 'margin'."""
    de_levels: int = 8
    """DE: bins of the difficulty histogram (the paper's hard levels: 8 for CamVid, 10 for Cityscapes)."""
    de_range: Literal["unit_minmax", "fixed01"] = "unit_minmax"
    """DE bin range: 'unit_minmax' (the unit's own min..max; a constant map has DE 0) or 'fixed01' ([0, 1])."""
    pam_grid: tuple[int, int] | None = None
    """Attention grid (h, w) of the probability attention module; None: H/6 x W/6 of the input
    (30 x 40 at 180 x 240)."""
    pam_gamma_init: float = 0.0
    """Initial value of the attention's learnable weight gamma (0: the branch starts as softmax + 1x1
    conv)."""
    dif_loss: Literal["wce", "bce"] = "wce"
    """Difficulty loss: 'wce' (class-balanced BCE, weights 1/sqrt(n + 1) normalised) or 'bce' (plain)."""
    dif_weight: float = 1.0
    """w in L = L_seg + w * L_dif."""
    dif_detach_logits: bool = False
    """True: the difficulty loss does not back-propagate into the segmentation network."""
    sub_ratio: float = 0.5
    """Share of the candidates scored each step, drawn afresh (image unit: images; global_topk_subset:
    regions); 1 scores all."""
    region_selection: Literal["pools", "global_topk_subset"] = "pools"
    """Region unit: 'pools' (the shared selection machinery, al.selection: one pick per pool) or
    'global_topk_subset' (a random sub_ratio of the unlabelled regions, global top-K)."""
    dif_unlabelled: Literal["exclude", "as_correct"] = "exclude"
    """Pixels labelled 255 (not yet labelled) in the difficulty loss: 'exclude' (region-level training)
    or 'as_correct'."""
    dif_void: Literal["as_correct", "exclude"] = "as_correct"
    """Void pixels (label >= C, not 255) in the difficulty loss: 'as_correct' (target 0, the original)
    or 'exclude'."""
    protocol: Literal["ralis", "deal_original"] = "ralis"
    """'ralis' (the RALIS test protocol of this project); 'deal_original' (image level, retrain per
    round) is not implemented yet."""

    def __post_init__(self) -> None:
        choices = {"ds_uncertainty": ("none", "entropy", "least_confidence", "margin"),
                   "de_range": ("unit_minmax", "fixed01"), "dif_loss": ("wce", "bce"),
                   "region_selection": ("pools", "global_topk_subset"), "dif_unlabelled": ("exclude", "as_correct"),
                   "dif_void": ("as_correct", "exclude"), "protocol": ("ralis", "deal_original")}
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise ConfigError(f"al.deal.{key} is {getattr(self, key)!r}; use one of {', '.join(map(repr, valid))}")
        if self.de_levels < 2:
            raise ConfigError(f"al.deal.de_levels is {self.de_levels}; use 2 or more bins (8 for CamVid)")
        if self.pam_grid is not None and min(self.pam_grid) < 1:
            raise ConfigError(f"al.deal.pam_grid is {self.pam_grid}; give a positive (h, w) or leave it unset")
        if self.dif_weight < 0:
            raise ConfigError(f"al.deal.dif_weight is {self.dif_weight}; use a weight >= 0 (1.0 in the paper)")
        if not 0.0 < self.sub_ratio <= 1.0:
            raise ConfigError(f"al.deal.sub_ratio is {self.sub_ratio}; use a share in (0, 1] (0.5 in the paper)")
        if self.protocol == "deal_original":
            raise ConfigError("al.deal.protocol 'deal_original' is not implemented yet; use 'ralis' (the default)")

    def head_spec(self) -> dict:
        """The JSON-able spec of the difficulty head these options describe (its type and loss)."""
        return {"type": "deal_difficulty", "pam_grid": list(self.pam_grid) if self.pam_grid else None,
                "gamma_init": self.pam_gamma_init, "loss": self.dif_loss, "weight": self.dif_weight,
                "detach_logits": self.dif_detach_logits, "unlabelled": self.dif_unlabelled, "void": self.dif_void}
