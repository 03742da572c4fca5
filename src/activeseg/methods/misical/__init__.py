"""MiSiCAL-style reconstruction (Lambert & Slade, arXiv 2307.09109; spec ``misical.md``): a deep-RL
policy that acquires regions for one target class from fixed region embeddings, rewarded by the
ground-truth class quantity of the acquired set, so no segmentation model is retrained while it learns
or selects. The design beyond the paper's abstract is this project's reconstruction: results obtained
with it are reported as "MiSiCAL-style (reconstruction)".

``embeddings`` (fixed region embeddings phi(r), computed once and cached), ``quantity`` (class
quantities q_c(r), Q_c(S) and the diminishing-returns reward).
"""
