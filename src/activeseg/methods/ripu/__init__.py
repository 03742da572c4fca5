"""RIPU (region impurity and prediction uncertainty, Xie et al., CVPR 2022): spec ``ripu.md``.

Pure tensor functions: ``scores`` turns logits into the acquisition map A = P * U, ``select`` spends a
per-image budget of squares (RA) or pixels (PA) greedily on that map, and ``losses`` holds the
negative-learning and local-consistency terms. ``heads`` makes those losses loss-only auxiliary heads
(registered here), ``config`` holds the options and the domain-shift experiment's config,
``protocol`` RIPU's continuous training loop with its acquisition rounds (comparison protocol A),
``experiment`` the runs into a store, ``report`` the tables and curves, ``show`` the picture of the maps.
``grid`` is comparison protocol B: RIPU's score per whole grid region in the region loop, registered
here as strategy ripu_grid (options ``al.ripu_grid``).
"""

from activeseg.methods.registry import Method, register
from activeseg.methods.ripu import heads  # noqa: F401  (registers the loss-only head types)
from activeseg.methods.ripu.grid import RipuGridConfig, RipuGridPolicy, cell_scores

register(Method("ripu_grid", lambda cfg: RipuGridPolicy(cfg.ripu_grid), options="ripu_grid"))

__all__ = ["RipuGridConfig", "RipuGridPolicy", "cell_scores"]
