"""Side by side: the training of every MiSiCAL-style class policy in a folder of policies (one sub-folder per
(class, seed), as `activeseg misical benchmark` writes them), read from their ``history.json`` files (nothing
is re-run).

Per policy: seconds of training; the mean final class quantity Q_c* of the episodes' sets (region-equivalents
on D_T) over the first and the last ten episodes, and the random-policy level of the first episodes; the
largest episode-mean TD loss against that of the first five episodes (a loss that grows is the
divergence sign); mean and largest |Q| of the chosen actions. Writes a markdown table and a JSON file.

    python benchmarks/misical_policies_summary.py runs/misical/policies --out docs/misical/policies
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def summarise(history: dict, block: int = 10) -> dict:
    """The numbers of one policy's training (see the module docstring)."""
    eps = history["episodes"]
    quantity = np.array([e["final_quantity"] for e in eps])
    loss = np.array([e["mean_loss"] for e in eps])
    return {"class": history["target_class"], "seed": history["seed"], "episodes": len(eps),
            "seconds": history["seconds_train"],
            "quantity_first": float(quantity[:block].mean()), "quantity_last": float(quantity[-block:].mean()),
            "loss_ratio": float(loss.max() / loss[:5].max()),
            "q_abs_mean": float(np.mean([e["q_abs_mean"] for e in eps])),
            "q_abs_max": float(max(e["q_abs_max"] for e in eps))}


def markdown(rows: list[dict]) -> str:
    lines = ["| class | seed | episodes | s | mean Q_c*, first 10 | mean Q_c*, last 10 | last / first | "
             "max loss / max of first 5 | mean \\|Q\\| | max \\|Q\\| |", "|---" * 10 + "|"]
    for r in rows:
        ratio = r["quantity_last"] / r["quantity_first"] if r["quantity_first"] > 0 else float("inf")
        lines.append(f"| {r['class']} | {r['seed']} | {r['episodes']} | {r['seconds']:.1f} | {r['quantity_first']:.2f} | "
                     f"{r['quantity_last']:.2f} | {ratio:.1f}x | {r['loss_ratio']:.2f}x | {r['q_abs_mean']:.3f} | "
                     f"{r['q_abs_max']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("policies", type=Path, help="folder with one sub-folder (history.json) per policy")
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.md and OUT.json")
    args = ap.parse_args()
    files = sorted(args.policies.glob("*/history.json"))
    if not files:
        raise SystemExit(f"no */history.json under {args.policies}: point it at the policies folder of a store "
                         "(e.g. runs/misical/policies)")
    rows = sorted((summarise(json.loads(f.read_text())) for f in files), key=lambda r: (r["seed"], r["class"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(markdown(rows))
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(markdown(rows))


if __name__ == "__main__":
    main()
