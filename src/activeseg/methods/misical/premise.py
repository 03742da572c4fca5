"""The quantity-accuracy check (spec ``misical.md`` section 4, a diagnostic): does the amount of a class in
a fixed-size training set predict the IoU of that class?

M subsets of B pool regions, each tilted towards a random mix of classes: alpha_m ~ Dirichlet(1, ..., 1)
over the C classes, region weight w_m(r) = sum_c alpha_m[c] q_c(r) + 0.01, B regions drawn without
replacement with probability proportional to w_m (subset m from its own generator, seeded by (seed, m)
with seed the first of ``seeds``, so a subset is the same whatever M). One evaluation training per subset (the protocol of section 6.3),
IoU_c on D_R (val); then per class the rank correlation of Q_c(S_m) and IoU_c over m. Each subset's
training is one run of the store (``premise_bB_mM-sSEED``): an interrupted check resumes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from activeseg.errors import ConfigError
from activeseg.methods.misical.experiment import (
    MisicalExperiment,
    MisicalExperimentConfig,
    prepare_misical,
    selection_config,
)
from activeseg.methods.misical.report import premise_markdown, premise_rows
from activeseg.store import RunBusyError, RunStore

log = logging.getLogger(__name__)

FLOOR = 0.01  # weight of a region holding none of the tilted classes
SEED_STEP = 2_000_000  # training randomness of subset m: step_seeds(seed, SEED_STEP + m)


def tilted_subset(q: torch.Tensor, ids: torch.Tensor, B: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, torch.Tensor]:
    """One Dirichlet-tilted subset: alpha ~ Dirichlet(1, ..., 1) over the classes, then B of ``ids`` drawn
    without replacement with probability proportional to sum_c alpha[c] q_c(r) + 0.01.

    Args:
        q: class quantities of the candidate regions, void last (``class_quantities`` rows).
        ids: their global region ids.
        B: subset size.
        rng: draws alpha, then the regions.

    Shape:
        q ``[M, C + 1]``, ids ``[M]`` -> alpha ``[C]``, subset ``[B]`` (ascending ids).
    """
    if not 1 <= B <= len(ids):
        raise ConfigError(f"premise budget {B}: the pool has {len(ids)} selectable regions; use 1 to {len(ids)} "
                          "(--budget or premise_budget)")
    C = q.shape[1] - 1
    alpha = rng.dirichlet(np.ones(C))
    weight = q[:, :C].double().numpy() @ alpha + FLOOR  # [M]
    rows = rng.choice(len(ids), size=B, replace=False, p=weight / weight.sum())
    return alpha, torch.sort(ids[torch.from_numpy(rows)]).values


def run_premise(cfg: MisicalExperimentConfig, subsets: int | None = None, budget: int | None = None,
                progress: bool = True, data: MisicalExperiment | None = None) -> tuple[Path, Path, dict]:
    """Trains on every subset not yet in the store, then writes misical_premise_bB.md and .json beside it.

    Returns:
        The markdown file, the JSON file and the result.
    """
    M = subsets or cfg.premise_subsets
    if M < 3:
        raise ConfigError(f"--subsets {M}: a rank correlation needs at least 3 subsets")
    if cfg.val_split is None:
        raise ConfigError("the premise check measures IoU on D_R; set val_split (e.g. val)")
    B = budget or cfg.premise_budget or cfg.al.budgets[0]
    data = data or prepare_misical(cfg, progress)
    pool, seed = data.exp.pool, cfg.seeds[0]
    ids = pool.oracle.new_state(pool.grid).selectable_ids()
    q = data.pool_quantities().reshape(-1, pool.num_classes + 1)[ids]  # [M_regions, C + 1]
    store = RunStore(cfg.store)
    records = []
    try:
        for m in range(M):
            alpha, picked = tilted_subset(q, ids, B, np.random.default_rng([seed, m]))
            run_id = f"premise_b{B}_m{m}-s{seed}"
            try:
                records.append(_subset_run(data, store, run_id, m, seed, B, alpha, picked))
            except RunBusyError as exc:
                log.info("skipping: %s", exc)
    finally:
        store.close()
    done = [r for r in records if r is not None]
    result = {"subsets": len(done), "budget": B, "seed": seed, "split": cfg.val_split,
              "classes": premise_rows([r["quantities"] for r in done], [r["iou"] for r in done], data.class_names),
              "runs": done}
    out = Path(cfg.store).parent
    md, js = out / f"misical_premise_b{B}.md", out / f"misical_premise_b{B}.json"
    md.write_text(premise_markdown(result))
    js.write_text(json.dumps(result, indent=1))
    return md, js, result


def _subset_run(data: MisicalExperiment, store: RunStore, run_id: str, m: int, seed: int, B: int,
                alpha: np.ndarray, picked: torch.Tensor) -> dict:
    """Subset m's training (unless stored) and what the check reads back: Q_c, IoU_c on val, alpha."""
    config = {**selection_config(data.cfg, "premise"), "premise_budget": B, "subset": m}
    store.claim_run(run_id, f"premise_m{m}", seed, config)
    try:
        if not store.has_evaluation(run_id, B, "test"):
            out, state, seconds = data.train_on(picked, seed, SEED_STEP + m, f"premise subset {m} ({B} regions)")
            extra = {"method": "premise", "subset": m, "alpha": alpha.tolist(), **data.selection_extra(picked)}
            data.record(store, run_id, B, out, state, seconds, extra)
        store.finish_run(run_id)
    finally:
        store.release_run(run_id)
    evals = {e["split"]: e for e in store.evaluations(run_id) if e["budget"] == B}
    extra = evals["test"]["extra"]
    return {"run_id": run_id, "subset": m, "alpha": extra["alpha"], "quantities": extra["quantities"],
            "images_touched": extra["images_touched"], "iou": evals["val"]["iou"], "miou": evals["val"]["miou"]}
