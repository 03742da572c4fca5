"""The quantity-accuracy check (spec misical.md sections 4 and 9): Dirichlet-tilted subsets have a fixed size
and no duplicates and follow their tilt; the check trains once per subset, resumes from its store, and gives
one rank correlation per class."""

from __future__ import annotations

import json

import numpy as np
import torch

from activeseg.commands import load_misical
from activeseg.methods.misical import experiment as misical_experiment
from activeseg.methods.misical.premise import run_premise, tilted_subset
from activeseg.methods.misical.report import spearman
from activeseg.store import RunStore


def test_tilted_subsets_have_fixed_size_no_duplicates_and_follow_the_tilt():
    g = torch.Generator().manual_seed(0)
    q = torch.zeros(400, 4)  # 3 classes + void; region i holds only class i % 3
    q[torch.arange(400), torch.arange(400) % 3] = torch.rand(400, generator=g) + 0.5
    ids = torch.arange(1000, 1400)
    alphas, shares = [], []
    for m in range(20):
        alpha, subset = tilted_subset(q, ids, 60, np.random.default_rng([0, m]))
        assert len(subset) == 60 and len(torch.unique(subset)) == 60 and bool(torch.isin(subset, ids).all())
        assert alpha.shape == (3,) and abs(alpha.sum() - 1) < 1e-9
        assert torch.equal(tilted_subset(q, ids, 60, np.random.default_rng([0, m]))[1], subset)  # seeded
        alphas += alpha.tolist()
        shares += (np.bincount((subset - 1000).numpy() % 3, minlength=3) / 60).tolist()  # drawn share per class
    assert spearman(alphas, shares) > 0.8  # a class's share of the subset follows its tilt


def test_premise_trains_each_subset_once_and_gives_one_rho_per_class(misical_yaml, monkeypatch):
    cfg = load_misical(misical_yaml)
    trainings = []
    real = misical_experiment.final_train_and_evaluate

    def counted(*args, **kwargs):
        trainings.append(kwargs.get("desc"))
        return real(*args, **kwargs)

    monkeypatch.setattr(misical_experiment, "final_train_and_evaluate", counted)
    md, js, result = run_premise(cfg, subsets=3, budget=12, progress=False)
    assert len(trainings) == 3 and result["subsets"] == 3 and result["budget"] == 12
    store = RunStore(cfg.store)
    try:
        extras = [e["extra"] for e in store.evaluations() if e["split"] == "test"]
    finally:
        store.close()
    assert len(extras) == 3
    for extra in extras:  # each subset: 12 distinct pool regions
        assert len(extra["regions"]) == 12 and len(set(extra["regions"])) == 12
        assert all(0 <= g < 64 for g in extra["regions"]) and len(extra["alpha"]) == 5
    classes = ("background", "band", "disc", "box", "dot")
    saved = json.loads(js.read_text())
    assert tuple(saved["classes"]) == classes
    for row in saved["classes"].values():  # one coefficient per class (None where undefined), and its flag
        assert row["rho_q"] is None or -1 <= row["rho_q"] <= 1
        assert row["rho_q"] == row["rho_log1p_q"]  # ranks ignore the monotone ln(1 + .)
        assert row["weak"] == (row["rho_q"] is None or row["rho_q"] < 0.5)
    text = md.read_text()
    assert "MiSiCAL-style (reconstruction)" in text and sum(text.count(f"| {c} |") for c in classes) == 5
    # resumed: nothing is trained again
    run_premise(cfg, subsets=3, budget=12, progress=False)
    assert len(trainings) == 3
