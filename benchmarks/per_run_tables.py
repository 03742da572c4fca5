"""Per-run tables of a run store, beside the per-strategy means of ``activeseg plot``: each run's test mIoU
at every budget, and per budget the per-class test IoU as mean ± std over seeds, with the labelled pixels
that are not void. Reads the store only (nothing is re-run).

    python benchmarks/per_run_tables.py docs/camvid_dusk_grid/store.sqlite --out docs/camvid_dusk_grid/per_run.md
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from activeseg.report import BOUNDS, _mean_std
from activeseg.store import RunStore


def _pct(xs: list[float]) -> str:
    """``mean ± std`` in percent (sample std; none for a single value)."""
    mean, std = (100 * v for v in _mean_std(xs))
    return f"{mean:.1f}" if len(xs) < 2 else f"{mean:.1f} ± {std:.1f}"


def per_run_lines(evals: list[dict], split: str = "test") -> list[str]:
    """Markdown lines of the two tables (see the module docstring)."""
    evals = [e for e in evals if e["split"] == split]
    budgets = sorted({e["budget"] for e in evals if e["strategy"] not in BOUNDS})
    seeds = sorted({e["seed"] for e in evals if e["strategy"] not in BOUNDS})
    by_run: dict[tuple[str, int], dict[int, dict]] = defaultdict(dict)
    for e in evals:
        by_run[e["strategy"], e["seed"]][e["budget"]] = e
    strategies = sorted({s for s, _ in by_run if s not in BOUNDS})
    lines = [f"{split} mIoU (%) of every run: seeds {', '.join(map(str, seeds))} at each budget "
             "(bounds: their single run)", "",
             "| strategy | " + " | ".join(f"{b} regions" for b in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]
    for s in strategies:
        cells = []
        for b in budgets:
            got = [by_run[s, seed][b]["miou"] * 100 for seed in seeds if b in by_run.get((s, seed), {})]
            cells.append(" / ".join(f"{v:.1f}" for v in got) or "-")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    for (name, seed), per in sorted(by_run.items()):
        if name in BOUNDS:
            for b, e in per.items():
                lines += ["", f"{name}: {e['miou'] * 100:.1f} ({b} regions labelled, one run)"]
    for b in budgets:
        rows = [e for e in evals if e["budget"] == b and e["strategy"] not in BOUNDS]
        if not rows:
            continue
        names = list(rows[0]["iou"])
        lines += ["", f"Per-class {split} IoU (%) at {b} regions, mean ± std over seeds; labelled pixels without "
                  "void (thousands, mean)", "",
                  "| strategy | " + " | ".join(names) + " | labelled, no void |", "|---" * (len(names) + 2) + "|"]
        for s in strategies:
            mine = [e for e in rows if e["strategy"] == s]
            if not mine:
                continue
            cells = []
            for c in names:
                vals = [e["iou"][c] for e in mine if e["iou"].get(c) is not None]
                cells.append(_pct(vals) if vals else "-")
            hist = [sum((e["class_histogram"] or [])[:len(names)]) for e in mine]
            lines.append(f"| {s} | " + " | ".join(cells) + f" | {np.mean(hist) / 1000:.0f}k |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="markdown file to write")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    store = RunStore.open_existing(args.store)
    try:
        evals = store.evaluations()
    finally:
        store.close()
    args.out.write_text("\n".join(per_run_lines(evals, args.split)) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
