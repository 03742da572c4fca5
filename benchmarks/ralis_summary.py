"""Derived RALIS numbers quoted in docs/results.md §4, from the recorded files (nothing is re-run):
the agent's training history, the val policy check, and the run store of the test phase.

    python benchmarks/ralis_summary.py --history docs/ralis/history.json \
        --policy-check docs/ralis/policy_check.json --store runs/camvid_cpu/store.sqlite
"""

from __future__ import annotations

import argparse
import json
import statistics as st
from pathlib import Path

import numpy as np

from activeseg.store import RunStore


def training(history: dict) -> None:
    eps = history["episodes"]
    ret = [e["return"] for e in eps]
    final = [100 * e["final_miou"] for e in eps]
    steps = sum(len(e["rewards"]) for e in eps)
    print(f"agent training: {len(eps)} episodes, {history['total_seconds'] / 60:.1f} min, "
          f"{np.mean([e['seconds'] for e in eps]):.1f} s per episode, "
          f"{history['total_seconds'] / steps:.2f} s per step (end-of-episode epoch included)")
    print(f"  weak start D_R mIoU {100 * history['start_miou']:.1f}")
    print(f"  return: episode 1 {ret[0]:.2f}, range {min(ret):.2f} .. {max(ret):.2f}, "
          f"mean of episodes 1-5 {np.mean(ret[:5]):.2f}, of the last 5 {np.mean(ret[-5:]):.2f}")
    print(f"  D_R mIoU after the end-of-episode epoch: {min(final):.1f} .. {max(final):.1f} "
          f"(best: episode {int(np.argmax(final)) + 1})")
    sky = [100 * e["labelled_class_pixels"][0] / sum(e["labelled_class_pixels"]) for e in eps]
    print(f"  sky share of labelled pixels: {min(sky):.1f} % (episode {int(np.argmin(sky)) + 1}) .. "
          f"{max(sky):.1f} % (episode {int(np.argmax(sky)) + 1})")
    greedy = [r for e in eps[3:] for r in e["rewards"]]
    print(f"  step rewards of episodes 4-{len(eps)}: mean {np.mean(greedy):.3f}, std {np.std(greedy, ddof=1):.2f}")


def policy_check(check: dict) -> None:
    print("val policy check: per-step reward (100 x D_R mIoU gain), mean and std")
    for name, recs in check["results"].items():
        r = [100 * d for e in recs for d in np.diff([check["start_miou"]] + e["step_miou"])]
        print(f"  {name:<11} mean {np.mean(r):+.3f}  std {np.std(r, ddof=1):.2f}")


def test_phase(store_path: Path) -> None:
    store = RunStore(store_path)
    try:
        runs = store.db.execute("SELECT strategy, created, updated FROM runs").fetchall()
        print("test phase wall clock (first run created .. last run updated):")
        for label in sorted({r[0] for r in runs if r[0].startswith("ralis")}):
            rows = [r for r in runs if r[0] == label]
            print(f"  {label}: {(max(r[2] for r in rows) - min(r[1] for r in rows)) / 60:.1f} min")
        print("val mIoU (%) of the final models, mean over seeds:")
        by: dict[str, dict[int, list[float]]] = {}
        for e in store.evaluations():
            if e["split"] == "val" and e["strategy"] not in ("lower_bound", "upper_bound"):
                by.setdefault(e["strategy"], {}).setdefault(e["budget"], []).append(e["miou"])
        for label, budgets in sorted(by.items()):
            print(f"  {label:<11}" + "".join(f" {b}: {100 * st.mean(v):.1f}" for b, v in sorted(budgets.items())))
        lower = [e for e in store.evaluations("lower_bound") if e["split"] == "val"]
        if lower:
            print(f"  test-phase start model (lower bound): {100 * lower[0]['miou']:.1f}")
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", type=Path, default=Path("docs/ralis/history.json"))
    ap.add_argument("--policy-check", type=Path, default=Path("docs/ralis/policy_check.json"))
    ap.add_argument("--store", type=Path, default=Path("runs/camvid_cpu/store.sqlite"))
    args = ap.parse_args()
    training(json.loads(args.history.read_text()))
    policy_check(json.loads(args.policy_check.read_text()))
    if args.store.is_file():
        test_phase(args.store)


if __name__ == "__main__":
    main()
