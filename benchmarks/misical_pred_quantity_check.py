"""What the `pred_quantity` baseline of the MiSiCAL-style benchmark has to rank by: for every class, the pool
regions in which the start model predicts at least one pixel of it, and its predicted pixels in all. A class
the start model never predicts gives pred_quantity all-zero scores, so its top B is a tie order, not a choice.

    python benchmarks/misical_pred_quantity_check.py configs/misical_camvid.yaml > docs/misical/pred_quantity_check.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from activeseg.commands import load_misical
from activeseg.methods.misical.benchmark import Selections
from activeseg.methods.misical.experiment import prepare_misical


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", type=Path, help="a misical experiment config (configs/misical_*.yaml)")
    args = ap.parse_args()
    data = prepare_misical(load_misical(args.config), progress=False)
    counts = Selections(data, progress=False).stats()[1]
    counts = counts.reshape(-1, counts.shape[-1])  # [regions, C]
    print(f"pool regions: {counts.shape[0]}; start model of {args.config}")
    print("| class | regions with a predicted pixel | predicted pixels |\n|---|---|---|")
    for k, name in enumerate(data.class_names):
        print(f"| {name} | {int((counts[:, k] > 0).sum())} | {int(counts[:, k].sum())} |")


if __name__ == "__main__":
    main()
