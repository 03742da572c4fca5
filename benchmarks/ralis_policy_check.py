"""Does the trained RALIS agent choose better than simple rules in the environment it was trained in?

Runs evaluation episodes (no learning, no exploration) on D_T from the weak start model, rewarded on
D_R (val), for: random, entropy (highest mean pixel entropy of each pool, read from the candidate
descriptors), and the greedy agent (last and best checkpoints). Episode seeds are offset from the
training episodes'; every policy sees the same episode seeds. Val only: the test split is not touched.

    python benchmarks/ralis_policy_check.py configs/ralis_agent_camvid.yaml --episodes 5 --out docs/ralis

With ``--agents DIR ...`` it compares the last and best checkpoints of several agent folders (e.g. the
three seeds of the low-start agent) and names the one with the highest mean D_R mIoU at the budget:
the checkpoint choice on val of the low-start test phase.

    python benchmarks/ralis_policy_check.py configs/ralis_agent_lowstart.yaml --episodes 3 \
        --agents runs/ralis_agent_lowstart/s20 runs/ralis_agent_lowstart/s50 runs/ralis_agent_lowstart/s234 \
        --out docs/ralis_lowstart
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from activeseg.config import load_yaml
from activeseg.methods.ralis.agent import AgentConfig, prepare_env, run_episode
from activeseg.methods.ralis.features import GRID
from activeseg.methods.ralis.policy import Observation, RalisPolicy


def random_choice(obs: Observation, step: int, rng: np.random.Generator):
    return [int(rng.integers(len(p))) for p in obs.pools], 1.0


def entropy_choice(class_bins: int):
    lo, hi = class_bins + GRID * GRID, class_bins + 2 * GRID * GRID  # the mean-pooled entropy grid

    def choose(obs: Observation, step: int, rng: np.random.Generator):
        return [int(c[:, lo:hi].mean(1).argmax()) for c in obs.candidates], 0.0

    return choose


def agent_choice(path: Path):
    policy = RalisPolicy.load(path)

    def choose(obs: Observation, step: int, rng: np.random.Generator):
        return [int(q.argmax()) for q in policy.q_values(obs)], 0.0

    return choose


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--first-episode", type=int, default=1000, help="episode seeds start here (training used 0..)")
    ap.add_argument("--out", type=Path, default=Path("docs/ralis"))
    ap.add_argument("--agents", type=Path, nargs="*", help="agent folders to compare (default: the preset's out)")
    args = ap.parse_args()
    cfg = load_yaml(args.config, AgentConfig)
    cfg = replace(cfg, out=Path(cfg.out))
    env = prepare_env(cfg, progress=False)
    class_bins = cfg.descriptors.class_bins(env.pool.num_classes)
    policies = {"random": random_choice, "entropy": entropy_choice(class_bins)}
    folders = args.agents or [cfg.out]
    for folder in folders:
        tag = "" if len(folders) == 1 else f"_{folder.name}"
        for which in ("last", "best"):
            policies[f"ralis{tag}_{which}"] = agent_choice(folder / f"agent_{which}.pt")
    results: dict[str, list[dict]] = {name: [] for name in policies}
    for e in range(args.first_episode, args.first_episode + args.episodes):
        for name, choose in policies.items():
            # the evaluation must not overwrite the agent's checkpoints: no learner, so nothing is saved
            rec = run_episode(cfg, env, e, choose)
            results[name].append({k: rec[k] for k in ("episode", "return", "step_miou", "final_miou",
                                                      "labelled_class_pixels", "seconds")})
            print(f"episode {e} {name:<11} return {rec['return']:6.2f}  D_R mIoU at budget "
                  f"{rec['step_miou'][-1]:.4f}  after end epoch {rec['final_miou']:.4f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "policy_check.json").write_text(json.dumps({"config": str(args.config), "start_miou": env.start_miou,
                                                            "results": results}, indent=1))
    lines = [f"| policy | return (mean ± std) | D_R mIoU at {cfg.budget} regions | after the end-of-episode epoch | "
             "rare-class share of labelled pixels |", "|---|---|---|---|---|"]
    rare = [i for i, n in enumerate(env.pool.class_names)
            if n in ("pole", "sign_symbol", "fence", "pedestrian", "bicyclist")]
    for name, recs in results.items():
        ret = np.array([r["return"] for r in recs])
        at = np.array([r["step_miou"][-1] for r in recs]) * 100
        fin = np.array([r["final_miou"] for r in recs]) * 100
        share = np.mean([sum(r["labelled_class_pixels"][i] for i in rare) / sum(r["labelled_class_pixels"])
                         for r in recs]) * 100
        lines.append(f"| {name} | {ret.mean():.2f} ± {ret.std(ddof=1):.2f} | {at.mean():.1f} ± {at.std(ddof=1):.1f} | "
                     f"{fin.mean():.1f} ± {fin.std(ddof=1):.1f} | {share:.1f} % |")
    agents = {n: np.mean([r["step_miou"][-1] for r in recs]) for n, recs in results.items() if n.startswith("ralis")}
    chosen = max(agents, key=agents.get)
    lines += ["", f"Chosen on val (highest mean D_R mIoU at the budget): **{chosen}** ({100 * agents[chosen]:.1f})"]
    table = "\n".join(lines) + "\n"
    (args.out / "policy_check.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
