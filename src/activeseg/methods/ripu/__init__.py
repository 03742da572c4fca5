"""RIPU (region impurity and prediction uncertainty, Xie et al., CVPR 2022): spec ``ripu.md``.

Pure tensor functions: ``scores`` turns logits into the acquisition map A = P * U, ``select`` spends a
per-image budget of squares (RA) or pixels (PA) greedily on that map, and ``losses`` holds the
negative-learning and local-consistency terms. ``heads`` makes those losses loss-only auxiliary heads
(registered here), ``config`` holds the options and the domain-shift experiment's config,
``protocol`` RIPU's continuous training loop with its acquisition rounds (comparison protocol A),
``experiment`` the runs into a store, ``report`` the tables and curves, ``show`` the picture of the maps.
"""

from activeseg.methods.ripu import heads  # noqa: F401  (registers the loss-only head types)
