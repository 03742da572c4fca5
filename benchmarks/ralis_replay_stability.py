"""Is the DQN stable on real transitions? Fitted Q-learning on an agent's recorded replay, per option.

`benchmarks/ralis_stability.py` checks the learner on synthetic observations with pure-noise rewards.
This script takes the replay an agent training left in its ``resume.pt`` (real states, candidates and
rewards of its last episodes), starts a fresh query network, and makes ``--updates`` double-DQN updates
on batches drawn from that fixed replay with the learner's update code, for each variant of the DQN
options. Every 20 updates (one episode's worth) it records the mean TD loss, mean and max |Q| and the
gradient norm. No segmentation model is trained, so each variant takes seconds. A learner that stays
bounded here may still drift online (the replay changes there); one that grows here will grow online.

    python benchmarks/ralis_replay_stability.py runs/ralis_agent_lowstart/s20 --updates 1600 \\
        --out docs/ralis_lowstart/replay_stability.json
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

from activeseg.config import load_yaml
from activeseg.methods.ralis.agent import AgentConfig, make_learner_for
from activeseg.methods.ralis.dqn import ReplayBuffer, dqn_update

UPDATES_PER_EPISODE = 20
VARIANTS = {  # name -> DQN overrides of the agent's own configuration
    "as trained": {},
    "lr decay 0.95 per episode": {"lr_decay": 0.95},
    "grad clip 1": {"grad_clip": 1.0},
    "target sync every 10 updates": {"target_sync_steps": 10},
    "target sync every 20 updates": {"target_sync_steps": 20},
    "target sync every 40 updates": {"target_sync_steps": 40},
    "gamma 0.9": {"gamma": 0.9},
}


def fit_replay(dqn, replay: ReplayBuffer, state_regions: int, phi_dim: int, updates: int, seed: int) -> list[dict]:
    """``updates`` double-DQN updates of a fresh network on ``replay``; one record per 20 updates."""
    learner = make_learner_for(dqn, state_regions, phi_dim, seed)
    rng = np.random.default_rng(seed)
    records, block = [], []
    for u in range(updates):
        block.append(dqn_update(learner.qnet, learner.target, learner.optimizer,
                                replay.sample(dqn.batch_size, rng), dqn.gamma, dqn.target_bn_mode,
                                dqn.policy_next_bn_mode, dqn.grad_clip))
        if u % dqn.target_sync_steps == 0:
            learner.target.load_state_dict(learner.qnet.state_dict())
        if (u + 1) % UPDATES_PER_EPISODE == 0:
            learner.decay_lr(dqn.lr_decay if dqn.lr_decay_every == "episode" else dqn.lr_decay ** UPDATES_PER_EPISODE)
            records.append({k: float(np.max([b[k] for b in block]) if k == "q_abs_max" else np.mean([b[k] for b in block]))
                            for k in ("loss", "q_abs_mean", "q_abs_max", "grad_norm")})
            block = []
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("agent", type=Path, help="an agent folder holding resume.pt (and its config beside it)")
    ap.add_argument("--config", type=Path, default=Path("configs/ralis_agent_lowstart.yaml"))
    ap.add_argument("--updates", type=int, default=1600)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("docs/ralis_lowstart/replay_stability.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_yaml(args.config, AgentConfig)
    saved = torch.load(args.agent / "resume.pt", map_location="cpu", weights_only=False)
    replay = ReplayBuffer()
    replay.load_state_dict(saved["learner"]["replay"])
    first = replay.items[0]
    state_regions, phi_dim = first.state.shape[0], first.state.shape[1]
    rewards = np.array([t.reward for t in replay.items])
    result = {"command": "python benchmarks/ralis_replay_stability.py " + " ".join(sys.argv[1:]),
              "transitions": len(replay), "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()),
              "variants": {}}
    print(f"{len(replay)} transitions, rewards {rewards.mean():.3f} ± {rewards.std():.3f}", flush=True)
    for name in args.variants.split(","):
        t = time.perf_counter()
        dqn = replace(cfg.dqn, **VARIANTS[name])
        records = fit_replay(dqn, replay, state_regions, phi_dim, args.updates, args.seed)
        early = max(r["loss"] for r in records[:5])
        result["variants"][name] = {"options": VARIANTS[name], "blocks": records,
                                    "max_loss_over_first_five": max(r["loss"] for r in records) / early,
                                    "seconds": time.perf_counter() - t}
        print(f"{name}: loss {records[0]['loss']:.3f} -> {records[-1]['loss']:.3f} (max/first-five "
              f"{result['variants'][name]['max_loss_over_first_five']:.1f}x), mean |Q| {records[0]['q_abs_mean']:.2f} -> "
              f"{records[-1]['q_abs_mean']:.2f}, max |Q| {max(r['q_abs_max'] for r in records):.2f}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
