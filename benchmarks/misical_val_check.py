"""Chooses the MiSiCAL-style policy's discount (and deployment) on **val** regions, never on the pool.

For each option and class: train the class policy on D_T (seed 20, the CPU profile of
configs/misical_camvid.yaml otherwise), deploy it one-shot (and, for gamma = 1, also by rollout) on the
101 val images' 2,424 regions with B = 189 (480 / 6,168 of the pool, scaled to val), and measure the class
quantity Q_c of what it took, beside random and pred_quantity (the start model's predicted count). The
training's last-10-episode return and |Q| at the first step say whether the value converged; each training's
per-episode records (return, TD loss, |Q|, exploration) go into the JSON and its curves into a PNG beside it.

    python benchmarks/misical_val_check.py --classes pedestrian bicyclist sky --gammas 1.0 0.9 0.5 0.0 \\
        --out docs/misical_val_check.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from activeseg.al.candidates import select_global_topk
from activeseg.config import load_yaml
from activeseg.methods.misical.benchmark import start_model_region_stats
from activeseg.methods.misical.experiment import MisicalExperimentConfig, class_index, prepare_misical
from activeseg.methods.misical.policy import initial_q, oneshot_topB, rollout, train_class_policy
from activeseg.methods.misical.quantity import class_quantities, set_quantity
from activeseg.methods.misical.report import plot_policy_training


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path("configs/misical_camvid.yaml"))
    ap.add_argument("--classes", nargs="+", default=["pedestrian", "bicyclist", "sky"])
    ap.add_argument("--gammas", nargs="+", type=float, default=[1.0, 0.9, 0.5, 0.0])
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("docs/misical_val_check.json"))
    args = ap.parse_args()
    cfg = replace(load_yaml(args.config, MisicalExperimentConfig), store=Path("/tmp/misical_val_check/store.sqlite"))
    data = prepare_misical(cfg, progress=False)
    exp, opts = data.exp, cfg.al.misical
    emb_t = data.train_embeddings()
    q_t = data.train_quantities()
    val = exp.pool.val
    emb_v = data.embeddings.get(opts.encoder, val, exp.pool.grid, exp.start_model, exp.device, opts.add_position)
    emb_v = emb_v.reshape(-1, emb_v.shape[-1])
    q_v = class_quantities(val.labels, exp.pool.grid, exp.pool.num_classes)  # [N_V, R, C + 1]
    _, counts = start_model_region_stats(exp.start_model, val, exp.pool.grid, exp.pool.num_classes, exp.device)
    M = emb_v.shape[0]
    B = round(480 * M / (len(data.pool_stems) * exp.pool.grid.regions_per_image))
    available = torch.ones(M, dtype=torch.bool)
    results = {"B_val": B, "val_regions": M, "seed": args.seed, "classes": {}}
    for cls in args.classes:
        c = class_index(cls, data.class_names)
        qc = lambda picked: float(set_quantity(q_v, picked)[c])  # noqa: E731
        rng = np.random.default_rng([args.seed, 7])
        row = {"random": qc(torch.from_numpy(rng.permutation(M)[:B])),
               "pred_quantity": qc(select_global_topk(counts[..., c].reshape(-1), available, B)),
               "best_possible": qc(torch.argsort(q_v[..., c].reshape(-1), descending=True)[:B])}
        print(cls, row, flush=True)
        results["classes"][cls] = row
        for gamma in args.gammas:
            options = replace(opts, gamma=gamma, target_class=cls)
            t = time.perf_counter()
            qnet, history = train_class_policy(emb_t, q_t[..., c], options, args.seed, progress=False)
            seconds = time.perf_counter() - t
            q0 = initial_q(qnet, emb_t.reshape(-1, emb_t.shape[-1]), options.episode_len)
            last = history[-10:]
            key = f"gamma_{gamma:g}"
            row[key] = {"oneshot": qc(oneshot_topB(qnet, emb_v, available, B, options.episode_len)),
                        "return_last10": float(np.mean([h["return"] for h in last])),
                        "q0_abs_mean_train": float(q0.abs().mean()), "episodes": len(history),
                        "seconds_train": round(seconds, 1),
                        "history": [{k: v for k, v in h.items() if k != "rewards"} for h in history]}
            plot_policy_training(history, args.out.with_name(f"{args.out.stem}_{cls}_{key}.png"),
                                 f"{cls}, {key} (val check, seed {args.seed})")
            if gamma == 1.0:
                row[key]["rollout"] = qc(rollout(qnet, emb_v, available, B, options.pool_size, options.episode_len,
                                                 np.random.default_rng([args.seed, 11])))
            print(cls, key, row[key], flush=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")  # after every training


if __name__ == "__main__":
    main()
