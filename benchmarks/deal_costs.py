"""What DEAL costs on the low-start CamVid profile, measured on one machine with nothing else running.

On one labelled set (the first 960 regions random-s20 labelled in the low-start store), from each start model
(plain for the baselines, the DEAL start model with its difficulty head for DEAL):

- **scoring per step**: the strategy's selection of one step (24 regions, pools of 10 candidates; whole
  images for ``deal_de_image``), ``--repeats`` times, median and min seconds;
- **fine-tuning per step**: the one-epoch step fine-tuning on 24 newly labelled regions, median seconds;
- **training per epoch**: one epoch of the final training (every labelled region and the start images, no
  validation), median seconds over ``--epochs`` epochs: the plain model against the model with the branch.

    python benchmarks/deal_costs.py --out docs/deal_costs.json   (about 5 min on 2 cores)

Timings are wall-clock seconds and depend on the machine and on what else runs: measure on an idle one.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sqlite3
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from activeseg.al.loop import fine_tune_step, step_generators, step_seeds, training_set
from activeseg.al.strategies import SelectionContext
from activeseg.commands import load_experiment
from activeseg.experiment import prepare
from activeseg.methods import build_policy
from activeseg.train.trainer import fit, make_optimizer

PRESET = "configs/camvid_lowstart_deal.yaml"
STORE = "runs/camvid_lowstart/store.sqlite"
STRATEGIES = ("random", "entropy", "bald", "deal_de", "deal_ds", "deal_de_image")


def labelled_set(store: str, run_id: str, n: int) -> torch.Tensor:
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT selected FROM steps WHERE run_id=? ORDER BY step", (run_id,)).fetchall()
    finally:
        db.close()
    picked = [g for (sel,) in rows for g in json.loads(sel)][:n]
    if len(picked) < n:
        raise SystemExit(f"{store} holds {len(picked)} regions of {run_id}; need {n} (run the low-start grid first)")
    return torch.tensor(picked)


def seconds(fn, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median": statistics.median(times), "min": min(times), "repeats": repeats}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=STORE)
    ap.add_argument("--labelled", type=int, default=960)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("docs/deal_costs.json"))
    args = ap.parse_args()
    cfg = load_experiment(PRESET)
    exp = prepare(cfg, progress=False)
    picked = labelled_set(args.store, "random-s20", args.labelled)
    out = {"preset": PRESET, "labelled_regions": args.labelled, "labelled_from": "random-s20",
           "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "scoring_per_step": {}, "fine_tuning_per_step": {},
           "final_training_epoch": {}}
    for strategy in STRATEGIES:
        al = replace(cfg.al, strategy=strategy)
        start, _ = exp.start_model_for(al)
        model = copy.deepcopy(start).to(exp.device)
        state = exp.pool.oracle.new_state(exp.pool.grid)
        state.label(picked, 1)
        policy = build_policy(strategy, al)
        rng, generator = step_generators(step_seeds(20, 999))

        def select() -> None:
            ctx = SelectionContext(model, exp.pool.features, state, exp.device, rng, generator, al.regions_per_step,
                                   al.candidates_per_pool, al.selection, al.mc_passes, al.mc_dropout,
                                   revealed=exp.pool.oracle, state_set=exp.pool.state_set,
                                   content=exp.pool.oracle.content, start_model=start)
            policy.select(ctx)

        select()  # warm-up (first touches of the cache)
        out["scoring_per_step"][strategy] = seconds(select, args.repeats)
        print(strategy, "scoring", out["scoring_per_step"][strategy], flush=True)
    for name, strategy in (("plain", "entropy"), ("deal", "deal_de")):
        al = replace(cfg.al, strategy=strategy)
        start, _ = exp.start_model_for(al)
        model = copy.deepcopy(start).to(exp.device)
        optimizer = make_optimizer(model, al.step_train)
        state = exp.pool.oracle.new_state(exp.pool.grid)
        state.label(picked, 1)
        new = picked[-al.regions_per_step:]
        _, generator = step_generators(step_seeds(20, 998))
        out["fine_tuning_per_step"][name] = seconds(
            lambda: fine_tune_step(model, optimizer, exp.pool, state, new, al.step_train, exp.device, generator,
                                   exp.align, al.step_train_on), args.repeats)
        model = copy.deepcopy(start).to(exp.device)
        source, images, keep = training_set(exp.pool, state, al.final_include_start)
        one_epoch = replace(al.final_train, max_epochs=1, eval_initial=False, patience=0)
        out["final_training_epoch"][name] = seconds(
            lambda: fit(model, source, None, exp.pool.num_classes, one_epoch, exp.device, generator, indices=images,
                        keep=keep, align=exp.align, progress=False), args.epochs)
        print(name, "fine-tuning", out["fine_tuning_per_step"][name], "epoch", out["final_training_epoch"][name],
              flush=True)
    plain, deal = out["final_training_epoch"]["plain"]["median"], out["final_training_epoch"]["deal"]["median"]
    out["branch_training_factor"] = deal / plain
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}; the branch costs x{deal / plain:.2f} per final-training epoch")


if __name__ == "__main__":
    main()
