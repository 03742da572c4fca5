"""Tables and plots of a domain-shift store (protocol A): target test mIoU per selector and reference
(mean ± std over seeds), paired differences over seeds, per-class IoU, what every run labelled
(pixels, annotation units, images touched), costs, and the loss curves of every run."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from activeseg.errors import ConfigError  # noqa: E402
from activeseg.methods.ripu.config import REFERENCES, SELECTORS  # noqa: E402
from activeseg.methods.ripu.experiment import BUDGET_UNIT  # noqa: E402
from activeseg.report import t_interval  # noqa: E402
from activeseg.store import RunStore  # noqa: E402

ORDER = (*REFERENCES, *SELECTORS)


def _evaluations(store_path: Path) -> list[dict]:
    store = RunStore.open_existing(store_path)
    try:
        configs = store.run_configs()
        other = [r for r, c in configs.items() if c.get("budget_unit") != BUDGET_UNIT]
        if other:
            raise ConfigError(f"{store_path} holds runs of another protocol (e.g. {other[0]}); this report reads "
                              "the store of `activeseg ripu run` (use `activeseg plot` for the others)")
        return [e for e in store.evaluations() if e["split"] == "test"]
    finally:
        store.close()


def _label(variant: str) -> str:
    return variant


def _pm(xs: list[float], scale: float = 100.0, digits: int = 1) -> str:
    if not xs:
        return "-"
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return f"{scale * mean:.{digits}f}"
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def paired(evals: list[dict], variant: str, baseline: str) -> dict | None:
    """Mean and 95 % t-interval of (variant - baseline) test mIoU over the seeds both ran; None if none."""
    by = {(e["strategy"], e["seed"]): e["miou"] for e in evals}
    diffs = [by[(variant, s)] - by[(baseline, s)] for (v, s) in by if v == variant and (baseline, s) in by]
    if not diffs:
        return None
    mean, low, high = t_interval(diffs)
    return {"mean": mean, "low": low, "high": high, "n": len(diffs)}


def _diff_cell(d: dict | None) -> str:
    if d is None:
        return "-"
    if d["n"] < 2:
        return f"{100 * d['mean']:+.1f} (n=1)"
    star = "*" if d["low"] > 0 else ("†" if d["high"] < 0 else "")
    return f"{100 * d['mean']:+.1f} [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]{star}"


def markdown(store_path: Path) -> str:
    """The report's markdown: the main table, paired differences, per-class IoU."""
    evals = _evaluations(store_path)
    if not evals:
        return f"{store_path}: no finished run yet"
    by: dict[str, list[dict]] = defaultdict(list)
    for e in evals:
        by[e["strategy"]].append(e)
    variants = [v for v in ORDER if v in by] + sorted(v for v in by if v not in ORDER)
    lines = ["Target (dusk) test mIoU, mean ± std over seeds (n), and what each run labelled of the target pool "
             "(means over seeds); s/it: training seconds per iteration, s/round: seconds per acquisition round.", "",
             "| run | n | mIoU | labelled pixels | share of pool | units | images touched | s/it | s/round |",
             "|---|---|---|---|---|---|---|---|---|"]
    for v in variants:
        rows = by[v]
        x = [r["extra"] for r in rows]
        units = _mean([e["units"] for e in x])
        unit = x[0]["unit"] if units else ""
        units_cell = f"{units:,.0f} {unit}{'s' if units != 1 else ''}" if unit else "-"  # references query nothing
        rounds = [s for e in x for s in e["seconds_per_round"]]
        lines.append(f"| {_label(v)} | {len(rows)} | {_pm([r['miou'] for r in rows])} | "
                     f"{_mean([e['labelled_pixels'] for e in x]):,.0f} | {100 * _mean([e['pixel_share'] for e in x]):.2f} % | "
                     f"{units_cell} | {_mean([e['images_touched'] for e in x]):.0f} | "
                     f"{_mean([e['seconds_per_iteration'] for e in x]):.3f} | "
                     f"{(f'{_mean(rounds):.1f}' if rounds else '-')} |")
    baselines = [b for b in ("ripu_random", "uda_nl", "source_only", "target_full") if b in by]
    if baselines:
        lines += ["", "Paired differences of test mIoU (points, same seeds): mean [95 % t-interval]; * interval above 0, "
                  "† below 0.", "", "| run | " + " | ".join(f"− {b}" for b in baselines) + " |",
                  "|---" * (len(baselines) + 1) + "|"]
        for v in variants:
            lines.append(f"| {_label(v)} | " + " | ".join("" if b == v else _diff_cell(paired(evals, v, b))
                                                        for b in baselines) + " |")
    names = list(evals[0]["iou"])
    lines += ["", "Per-class IoU on the target test set (mean over seeds, %).", "",
              "| run | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for v in variants:
        cells = []
        for n in names:
            vals = [r["iou"][n] for r in by[v] if r["iou"][n] is not None]
            cells.append(f"{100 * _mean(vals):.1f}" if vals else "-")
        lines.append(f"| {_label(v)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(store_path: Path, out_png: Path) -> Path:
    """The loss curves of every run: total loss, each term, and the learning rate, by iteration; rounds
    marked."""
    evals = _evaluations(store_path)
    terms = ["loss", "seg_source", "seg_target", "nl", "cr", "lr"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), squeeze=False)
    colours = {v: plt.cm.tab10(i % 10) for i, v in enumerate(ORDER)}
    seen: set[str] = set()
    for e in sorted(evals, key=lambda e: (e["strategy"], e["seed"])):
        curve = e["extra"]["curve"]
        its = [p["iteration"] for p in curve]
        for ax, term in zip(axes.flat, terms):
            if term not in curve[0]:
                continue
            label = e["strategy"] if e["strategy"] not in seen else None
            ax.plot(its, [p[term] for p in curve], color=colours.get(e["strategy"], "k"), lw=0.8, alpha=0.8,
                    label=label)
        seen.add(e["strategy"])
        for r in e["extra"]["rounds"]:
            axes[0, 0].axvline(r["iteration"], color="grey", lw=0.5, ls=":")
    for ax, term in zip(axes.flat, terms):
        ax.set_title(term)
        ax.set_xlabel("iteration")
        if term != "lr":
            ax.set_yscale("log")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"training curves of every run ({store_path})", fontsize=9)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def plot_miou(store_path: Path, out_png: Path) -> Path:
    """Test mIoU per run (one dot per seed, a bar for the mean)."""
    evals = _evaluations(store_path)
    by: dict[str, list[float]] = defaultdict(list)
    for e in evals:
        by[e["strategy"]].append(100 * e["miou"])
    variants = [v for v in ORDER if v in by] + sorted(v for v in by if v not in ORDER)
    fig, ax = plt.subplots(figsize=(1.2 * len(variants) + 2, 4))
    for i, v in enumerate(variants):
        ax.bar(i, _mean(by[v]), color="lightsteelblue" if v in REFERENCES else "steelblue", alpha=0.7)
        ax.scatter([i] * len(by[v]), by[v], color="k", s=10, zorder=3)
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.set_ylabel("target test mIoU (%)")
    lo = min(min(x) for x in by.values())
    ax.set_ylim(max(0, lo - 5), None)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def write_report(store_path: Path, out_dir: Path | None = None) -> tuple[Path, str]:
    """Writes ``results.md``, ``miou.png`` and ``training_curves.png`` into ``out_dir`` (default: beside
    the store); returns the folder and the markdown."""
    out_dir = Path(out_dir) if out_dir is not None else Path(store_path).parent
    text = markdown(store_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.md").write_text(f"# Domain shift, protocol A ({store_path})\n\n{text}\n")
    if _evaluations(store_path):
        plot_miou(store_path, out_dir / "miou.png")
        plot_curves(store_path, out_dir / "training_curves.png")
    return out_dir, text
