"""Learning curves and tables from a run store: mIoU vs labelled regions, mean ± std over seeds."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from activeseg.store import RunStore  # noqa: E402

BOUNDS = ("lower_bound", "upper_bound")


def _mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0)


def curves(evals: list[dict], split: str = "test") -> dict[str, dict[int, list[float]]]:
    """strategy -> budget -> mIoU of each seed."""
    out: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for e in evals:
        if e["split"] == split:
            out[e["strategy"]][e["budget"]].append(e["miou"])
    return out


def class_entropy(hist: list[int]) -> float:
    """Entropy (nats) of the class distribution of labelled pixels (void bin excluded)."""
    counts = hist[:-1]
    total = sum(counts)
    return -sum(c / total * math.log(c / total) for c in counts if c > 0) if total else float("nan")


def regions_to_reach(curve: dict[int, float], target: float) -> float | None:
    """Labelled regions at which a mean curve first reaches ``target``, interpolating linearly between
    budgets; None if it never does.
    """
    points = sorted(curve.items())
    for i, (b, v) in enumerate(points):
        if v >= target:
            if i == 0:
                return float(b)
            b0, v0 = points[i - 1]
            return b0 + (target - v0) / (v - v0) * (b - b0)
    return None


def plot_curves(store_path: Path, out_png: Path, split: str = "test") -> Path:
    store = RunStore(store_path)
    evals = store.evaluations()
    store.close()
    data = curves(evals, split)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, by_budget in sorted(data.items()):
        if strategy in BOUNDS:
            continue
        budgets = sorted(by_budget)
        stats = [_mean_std(by_budget[b]) for b in budgets]
        m = [100 * s[0] for s in stats]
        sd = [100 * s[1] for s in stats]
        n = max(len(by_budget[b]) for b in budgets)
        ax.plot(budgets, m, marker="o", label=f"{strategy} ({n} seeds)")
        ax.fill_between(budgets, [a - b for a, b in zip(m, sd)], [a + b for a, b in zip(m, sd)], alpha=0.2)
    for bound, style in zip(BOUNDS, (":", "--")):
        if bound in data:
            v = 100 * next(iter(data[bound].values()))[0]
            ax.axhline(v, color="gray", linestyle=style, label=f"{bound.replace('_', ' ')} ({v:.1f})")
    ax.set_xlabel("labelled regions")
    ax.set_ylabel(f"{split} mIoU (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def markdown_table(store_path: Path, split: str = "test") -> str:
    """Mean ± std mIoU per strategy and budget, the bounds, per-class IoU at the largest budget, the
    class entropy of labelled pixels, and mean seconds per step."""
    store = RunStore(store_path)
    evals = store.evaluations()
    runs = store.runs()
    timing = defaultdict(list)
    for r in runs:
        for s in store.steps(r["run_id"]):
            timing[r["strategy"]].append((s["seconds_score"], s["seconds_train"]))
    store.close()
    data = curves(evals, split)
    strategies = sorted(s for s in data if s not in BOUNDS)
    budgets = sorted({b for s in strategies for b in data[s]})
    lines = [f"{split} mIoU (%), mean ± std over seeds", "",
             "| strategy | " + " | ".join(str(b) for b in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]
    for s in strategies:
        cells = []
        for b in budgets:
            xs = data[s].get(b)
            cells.append("-" if not xs else "{:.1f} ± {:.1f} (n={})".format(*[100 * v for v in _mean_std(xs)], len(xs)))
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    for bound in BOUNDS:
        if bound in data:
            budget, values = next(iter(data[bound].items()))
            lines.append(f"\n{bound.replace('_', ' ')} ({budget} regions labelled): {100 * values[0]:.1f}")
    means = {s: {b: _mean_std(xs)[0] for b, xs in data[s].items()} for s in strategies}
    if len(strategies) > 1 and budgets:
        lines += ["", f"Regions each strategy needs to reach the best other strategy's mean {split} mIoU at "
                  f"{budgets[-1]} regions (linear interpolation between budgets)", "",
                  "| strategy | target (best other) | regions needed | vs. " + str(budgets[-1]) + " |", "|---|---|---|---|"]
        for s in strategies:
            others = {o: means[o][budgets[-1]] for o in strategies if o != s and budgets[-1] in means[o]}
            if not others or budgets[-1] not in means[s]:
                continue
            best = max(others, key=others.get)
            need = regions_to_reach(means[s], others[best])
            cell = f"{need:.0f}" if need is not None else f"not reached by {budgets[-1]}"
            saving = f"{100 * (1 - need / budgets[-1]):.0f} % fewer" if need is not None else "-"
            lines.append(f"| {s} | {best} {100 * others[best]:.1f} | {cell} | {saving} |")
    last = [e for e in evals if e["split"] == split and e["strategy"] not in BOUNDS and budgets and e["budget"] == budgets[-1]]
    if last:
        names = list(last[0]["iou"])
        lines += ["", f"Per-class {split} IoU (%) at {budgets[-1]} regions, mean over seeds", "",
                  "| strategy | " + " | ".join(names) + " | entropy of labelled classes (nats) |",
                  "|---" * (len(names) + 2) + "|"]
        for s in strategies:
            rows = [e for e in last if e["strategy"] == s]
            if not rows:
                continue
            ious = [sum((r["iou"][n] or 0.0) for r in rows) / len(rows) for n in names]
            ent = sum(class_entropy(r["class_histogram"]) for r in rows) / len(rows)
            lines.append(f"| {s} | " + " | ".join(f"{100 * v:.1f}" for v in ious) + f" | {ent:.3f} |")
        lines += ["", f"Share of labelled pixels per class (%) at {budgets[-1]} regions, mean over seeds "
                  "(void = the dataset's ignore value)", "",
                  "| strategy | " + " | ".join(names) + " | void |", "|---" * (len(names) + 2) + "|"]
        for s in strategies:
            rows = [e for e in last if e["strategy"] == s and e["class_histogram"]]
            if rows:
                shares = [sum(r["class_histogram"][i] / sum(r["class_histogram"]) for r in rows) / len(rows)
                          for i in range(len(names) + 1)]
                lines.append(f"| {s} | " + " | ".join(f"{100 * v:.1f}" for v in shares) + " |")
    if timing:
        eval_seconds = defaultdict(list)
        for e in evals:
            if e["split"] == split and e["strategy"] not in BOUNDS:
                eval_seconds[e["strategy"]].append(e["seconds"])
        lines += ["", "Wall time (mean seconds): per active-learning step (scoring, fine-tuning), and per budget "
                  "(final training on all labelled regions + evaluation)", "",
                  "| strategy | scoring / step | fine-tuning / step | evaluation / budget | steps | evaluations |",
                  "|---|---|---|---|---|---|"]
        for s in sorted(timing):
            ts, es = timing[s], eval_seconds.get(s, [])
            lines.append(f"| {s} | {sum(t[0] for t in ts) / len(ts):.2f} | {sum(t[1] for t in ts) / len(ts):.2f} | "
                         f"{f'{sum(es) / len(es):.1f}' if es else '-'} | {len(ts)} | {len(es)} |")
    return "\n".join(lines) + "\n"


def plot_agent_history(summary: dict, out_png: Path) -> Path:
    """Agent training: return per episode, and D_R mIoU at the budget and after the end-of-episode epoch."""
    eps = summary["episodes"]
    x = [h["episode"] + 1 for h in eps]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(x, [h["return"] for h in eps], marker="o")
    ax1.axhline(0, color="gray", linewidth=0.8)
    ax1.set_xlabel("episode")
    ax1.set_ylabel("return (sum of 100 x D_R mIoU gains)")
    ax2.plot(x, [100 * h["step_miou"][-1] for h in eps], marker="o", label="at the budget")
    ax2.plot(x, [100 * h["final_miou"] for h in eps], marker="s", label="after the end-of-episode epoch")
    ax2.axhline(100 * summary["start_miou"], color="gray", linestyle=":", label="weak start model")
    ax2.set_xlabel("episode")
    ax2.set_ylabel("D_R mIoU (%)")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png
