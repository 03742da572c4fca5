"""How final training should run on the low-start profile, measured on val only.

For one random selection per budget (the same regions for every variant), trains the start model on
start images + labelled regions under each variant with two training seeds, and records val mIoU, the
best epoch and seconds. The test split is never scored. Writes JSON (default
docs/camvid_lowstart/final_train_choice.json).

    python benchmarks/lowstart_final_train.py configs/camvid_lowstart.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from activeseg.al.loop import final_train_and_evaluate
from activeseg.al.state import LabelledState
from activeseg.config import load_yaml
from activeseg.device import seed_everything
from activeseg.experiment import ExperimentConfig, prepare
from activeseg.train.metrics import mean_iou
from activeseg.train.trainer import evaluate

VARIANTS = {  # name -> (final_train overrides, include start images)
    "crop128_lr1e-3_no_start": ({"crop": (128, 128), "lr": 1e-3, "eval_initial": False}, False),
    "crop128_lr1e-3": ({"crop": (128, 128), "lr": 1e-3}, True),
    "whole_lr1e-3": ({"crop": None, "lr": 1e-3}, True),
    "whole_lr5e-4": ({"crop": None, "lr": 5e-4}, True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path)
    ap.add_argument("--budgets", default="960")
    ap.add_argument("--train-seeds", default="1")
    ap.add_argument("--variants", default="crop128_lr1e-3,whole_lr1e-3,whole_lr5e-4")
    ap.add_argument("--out", type=Path, default=Path("docs/camvid_lowstart/final_train_choice.json"))
    args = ap.parse_args()
    cfg: ExperimentConfig = load_yaml(args.config, ExperimentConfig)
    exp = prepare(cfg)
    pool = exp.pool
    start_val = mean_iou(evaluate(exp.start_model, pool.val, pool.num_classes, exp.device))
    rows = []
    for budget in (int(b) for b in args.budgets.split(",")):
        state = LabelledState(len(pool.oracle.labels), pool.grid)
        picked = np.random.default_rng(20).choice(state.num_regions, budget, replace=False)
        state.label(torch.as_tensor(picked), 1)
        for name in args.variants.split(","):
            over, include_start = VARIANTS[name]
            train_cfg = replace(cfg.al.final_train, **over)
            for seed in (int(s) for s in args.train_seeds.split(",")):
                t = time.perf_counter()
                out = final_train_and_evaluate(exp.start_model, replace(pool, test=pool.val), state, train_cfg,
                                               exp.device, seed_everything(seed), exp.align, include_start)
                rows.append({"budget": budget, "variant": name, "train_seed": seed, "val_miou": out["val"]["miou"],
                             "epochs": out["epochs"], "seconds": time.perf_counter() - t})
                print(json.dumps(rows[-1]), flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)  # after every row: an interrupt keeps them
                args.out.write_text(json.dumps({"command": "python benchmarks/lowstart_final_train.py "
                                                + " ".join(sys.argv[1:]), "start_val_miou": start_val,
                                                "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
