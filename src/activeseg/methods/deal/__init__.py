"""DEAL (Xie et al., ACCV 2020): difficulty-aware active learning.

``head`` (the difficulty branch: probability attention on the logits, its loss and its AUROC),
``scores`` (DS and DE per unit), ``policy`` (region and image units), ``config`` (options, ``al.deal``),
``show`` (a picture of the difficulty maps), ``protocol`` (the paper's image-level protocol,
``al.deal.protocol: deal_original``: rounds of whole images, each model trained from scratch; imported
by the experiment, not here). Registers deal_de, deal_ds (per region) and deal_de_image, deal_ds_image
(per image); each brings the difficulty head, so its start model is trained with both losses.
"""

from __future__ import annotations

from activeseg.methods.deal import head  # noqa: F401  (registers the head type)
from activeseg.methods.deal.config import DealConfig
from activeseg.methods.deal.policy import DealImagePolicy, DealRegionPolicy
from activeseg.methods.registry import Method, register


def difficulty_heads(cfg, num_classes: int) -> dict[str, dict]:
    """The heads a DEAL run's model carries: the difficulty branch of ``cfg.deal``."""
    return {"difficulty": cfg.deal.head_spec()}


for _score in ("de", "ds"):
    register(Method(f"deal_{_score}", lambda cfg, s=_score: DealRegionPolicy(s, cfg.deal),
                    heads=difficulty_heads, options="deal"))
    register(Method(f"deal_{_score}_image", lambda cfg, s=_score: DealImagePolicy(s, cfg.deal),
                    heads=difficulty_heads, options="deal", ranks_images=True, whole_images=True))

__all__ = ["DealConfig", "DealImagePolicy", "DealRegionPolicy"]
