"""Why did the RALIS query network diverge? DQN training on pure-noise rewards, per option.

Runs ``activeseg.methods.ralis.stability.noise_training`` (the learner code of agent training, on
synthetic observations shaped like CamVid's, rewards N(0, 0.75) that no action can change) for each
variant of the DQN options, and records the mean TD loss and |Q| per episode. A stable learner keeps
both near their first episodes' values. Writes JSON (default docs/ralis_lowstart/stability.json).

    python benchmarks/ralis_stability.py --episodes 30
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from activeseg.methods.ralis.agent import DQNConfig
from activeseg.methods.ralis.stability import noise_training

REFERENCE = {"target_bn_mode": "eval", "policy_next_bn_mode": "eval"}
VARIANTS = {
    "reference": REFERENCE,
    "gamma_0": {**REFERENCE, "gamma": 0.0},
    "reference_lr_decay_0.97_per_step": {**REFERENCE, "lr_decay": 0.97},
    "target_bn_train": {**REFERENCE, "target_bn_mode": "train"},
    "both_bn_train (default)": {},
    "grad_clip_1": {**REFERENCE, "grad_clip": 1.0},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=30)
    ap.add_argument("--state-regions", type=int, default=48)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("docs/ralis_lowstart/stability.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = {"command": "python benchmarks/ralis_stability.py " + " ".join(sys.argv[1:]), "variants": {}}
    for name in args.variants.split(","):
        t = time.perf_counter()
        records = noise_training(replace(DQNConfig(), **VARIANTS[name]), episodes=args.episodes,
                                 state_regions=args.state_regions)
        first = max(r["loss"] for r in records[:5])
        result["variants"][name] = {"options": VARIANTS[name], "episodes": records,
                                    "max_loss_over_first_five": max(r["loss"] for r in records) / first,
                                    "seconds": time.perf_counter() - t}
        print(f"{name}: loss {records[0]['loss']:.2f} -> {records[-1]['loss']:.3g} (max {max(r['loss'] for r in records):.3g}), "
              f"mean |Q| {records[0]['q_abs_mean']:.2f} -> {records[-1]['q_abs_mean']:.3g}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
