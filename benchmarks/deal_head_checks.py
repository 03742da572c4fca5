"""The val checks behind the DEAL presets' head options (docs/results.md section 8.1), on the low-start
profile (configs/camvid_lowstart_deal.yaml; needs the low-start store for random-s20's selections).

    python benchmarks/deal_head_checks.py lr-scale 1 10 30 100 300 1000   # start model: val mIoU, AUROC
    python benchmarks/deal_head_checks.py final-training                   # joint 1x / 1000x, detached 1000x

``final-training`` trains the regions random-s20 labelled first (480) the way every budget's final
training runs, from the DEAL start model of each option, with the same seeds, and prints val / test mIoU
and the head's val AUROC.
"""

from __future__ import annotations

import argparse
import copy
import json
import sqlite3
from dataclasses import replace

import torch

from activeseg.al.loop import final_train_and_evaluate, step_generators, step_seeds
from activeseg.commands import load_experiment
from activeseg.experiment import prepare

PRESET = "configs/camvid_lowstart_deal.yaml"
STORE = "runs/camvid_lowstart/store.sqlite"


def deal_al(cfg, scale: float, detach: bool):
    return replace(cfg.al, strategy="deal_de", deal=replace(cfg.al.deal, dif_lr_scale=scale, dif_detach_logits=detach))


def lr_scale(scales: list[float]) -> None:
    cfg = load_experiment(PRESET)
    exp = prepare(replace(cfg, al=deal_al(cfg, 1.0, False)), progress=False)
    for scale in scales:
        _, metrics = exp.start_model_for(deal_al(cfg, scale, False))
        print(f"head lr x{scale:g} (joint): start model val mIoU {metrics['val']['miou']:.4f}, "
              f"AUROC {metrics['val']['extra']['difficulty_auroc']:.3f}", flush=True)


def final_training() -> None:
    cfg = load_experiment(PRESET)
    db = sqlite3.connect(f"file:{STORE}?mode=ro", uri=True)
    picked = [g for (sel,) in db.execute("SELECT selected FROM steps WHERE run_id='random-s20' ORDER BY step")
              for g in json.loads(sel)][:480]
    for name, scale, detach, final_scale in (("joint, head x1", 1000.0, False, 1.0),
                                             ("joint, head x1000", 1000.0, False, 1000.0),
                                             ("detached, head x1000", 1000.0, True, 1000.0)):
        al = deal_al(cfg, scale, detach)
        exp = prepare(replace(cfg, al=al), progress=False)
        start, _ = exp.start_model_for(al)
        model = copy.deepcopy(start)
        model.heads["difficulty"].spec["lr_scale"] = final_scale  # the final training's head rate
        state = exp.pool.oracle.new_state(exp.pool.grid)
        state.label(torch.tensor(picked), 1)
        _, generator = step_generators(step_seeds(20, 1_000_000 + 480))
        out = final_train_and_evaluate(model, exp.pool, state, cfg.al.final_train, exp.device, generator, exp.align,
                                       True)
        print(f"{name}: val mIoU {out['val']['miou']:.4f}, test {out['test']['miou']:.4f}, "
              f"AUROC {out['val_extra'].get('difficulty_auroc', float('nan')):.3f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check", choices=["lr-scale", "final-training"])
    parser.add_argument("scales", nargs="*", type=float, default=[1, 10, 30, 100, 300, 1000])
    args = parser.parse_args()
    lr_scale(args.scales) if args.check == "lr-scale" else final_training()
