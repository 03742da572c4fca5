"""How noisy is the RALIS reward? Per-step rewards of a fixed policy under different fine-tuning seeds.

For one agent preset, runs episodes of the random policy (no learning) on D_T from the weak start model:
(a) the same pools and choices with ``--repeats`` fine-tuning seeds: the spread of a step's reward over
these is pure noise (crops, flips, dropout of the one-epoch fine-tune); (b) ``--repeats`` different
selections with one fine-tuning seed: the spread is selection effect + noise. Each ``--variant`` swaps the
per-step fine-tuning (the step optimiser) to measure what it buys. D_R = the preset's reward split (val);
the test split is never used. ``sgd_spec_gain_over_random`` measures the reward relative to a random pick;
``sgd_spec_all_labelled_and_start`` fine-tunes each step on every labelled region and the start images (Q11). Writes JSON (and prints a summary).

    python benchmarks/ralis_reward_noise.py configs/ralis_agent_lowstart.yaml --budget 240 --repeats 3 \\
        --out docs/ralis_lowstart/reward_noise.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from activeseg.config import load_yaml
from activeseg.methods.ralis.agent import AgentConfig, prepare_env, run_episode
from activeseg.train.trainer import TrainConfig

VARIANTS = {  # name -> overrides of the preset
    "sgd_spec": {},  # the preset's own per-step fine-tuning (the spec's SGD step)
    "adamw_5e-4": {"step_train": TrainConfig(max_epochs=1, patience=0, batch_size=32, lr=5e-4, crop=(128, 128))},
    "sgd_spec_gain_over_random": {"reward": "gain_over_random"},
    # Q11: the step's epoch covers every labelled region and the weak model's start images
    "sgd_spec_all_labelled_and_start": {"step_train_on": "all_labelled_and_start"},
}


def random_choice(obs, step, rng):
    return [int(rng.integers(len(p))) for p in obs.pools], 1.0


def spread(runs: list[list[float]]) -> dict:
    """Per-step std over runs (ddof 1), its mean over steps, and the mean reward per step."""
    r = np.array(runs)  # [runs, steps]
    sd = r.std(0, ddof=1)
    return {"per_step_std": sd.tolist(), "mean_std": float(sd.mean()), "per_step_mean": r.mean(0).tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--budget", type=int, default=240)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", type=Path, default=Path("docs/ralis_lowstart/reward_noise.json"))
    args = ap.parse_args()
    base = replace(load_yaml(args.config, AgentConfig), budget=args.budget)
    env = prepare_env(base, progress=False)
    result = {"command": "python benchmarks/ralis_reward_noise.py " + " ".join(sys.argv[1:]),
              "start_miou": env.start_miou, "variants": {}}
    for name in args.variants.split(","):
        cfg = replace(base, **VARIANTS[name])
        noise = [run_episode(cfg, env, 5000, random_choice, train_seed=r)["rewards"] for r in range(args.repeats)]
        select = [run_episode(cfg, env, 5000 + e, random_choice, train_seed=0)["rewards"] for e in range(args.repeats)]
        result["variants"][name] = {"same_selection": spread(noise), "other_selections": spread(select),
                                    "rewards_same_selection": noise, "rewards_other_selections": select}
        print(f"{name}: reward std over fine-tuning seeds {spread(noise)['mean_std']:.3f}, over selections "
              f"{spread(select)['mean_std']:.3f} (mIoU points, mean over steps); mean reward per step "
              f"{np.mean(noise):.3f}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
