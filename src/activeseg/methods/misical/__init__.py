"""MiSiCAL-style reconstruction (Lambert & Slade, arXiv 2307.09109; spec ``misical.md``): a deep-RL
policy that acquires regions for one target class from fixed region embeddings, rewarded by the
ground-truth class quantity of the acquired set, so no segmentation model is retrained while it learns
or selects. The design beyond the paper's abstract is this project's reconstruction: results obtained
with it are reported as "MiSiCAL-style (reconstruction)".

``config`` (the ``al.misical`` options), ``embeddings`` (fixed region embeddings phi(r), computed once and
cached), ``quantity`` (class quantities q_c(r), Q_c(S) and the diminishing-returns reward), ``policy`` (the
class Q-network, its DQN training and its one-shot / rollout deployment), ``strategy`` (the policy in the
active-learning loop: strategy ``misical``, registered here), ``experiment`` (``activeseg misical train``:
D_T, the policy files), ``premise`` (the quantity-accuracy check), ``benchmark`` (the per-class protocol
against random and the baselines) and ``report`` (plots and tables). Only ``config`` is imported here: the
policy module reaches the loop through the RALIS agent, and the loop imports this package.
"""

from activeseg.methods.misical.config import MisicalConfig, check_run
from activeseg.methods.registry import Method, register


def _build(cfg):
    from activeseg.methods.misical.strategy import MisicalPolicy  # imported at run time: see the docstring

    return MisicalPolicy.load(cfg.misical)


register(Method("misical", _build, options="misical", check=check_run))

__all__ = ["MisicalConfig"]
