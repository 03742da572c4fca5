"""Learning curves and tables from a run store: mIoU vs labelled regions (or whole images, for
image-level protocols), mean ± std over seeds."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
from scipy import stats  # noqa: E402

from activeseg.errors import ConfigError  # noqa: E402
from activeseg.store import RunStore  # noqa: E402
from activeseg.store import budget_unit as run_budget_unit  # noqa: E402

BOUNDS = ("lower_bound", "upper_bound")
BASELINE = "random"


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


def t_interval(xs: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval of ``xs`` (NaN bounds for fewer than 2 values)."""
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, n - 1) * _mean_std(xs)[1] / math.sqrt(n)
    return m, m - half, m + half


def _paired_by_seed(evals: list[dict], baseline: str, split: str) -> dict[str, dict[int, dict[int, float]]]:
    """strategy -> seed -> budget -> (strategy - baseline) mIoU, for every run the baseline has a twin of."""
    by = {(e["strategy"], e["budget"], e["seed"]): e["miou"] for e in evals if e["split"] == split}
    out: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for (strategy, budget, seed), v in sorted(by.items()):
        if strategy not in BOUNDS and strategy != baseline and (baseline, budget, seed) in by:
            out[strategy][seed][budget] = v - by[(baseline, budget, seed)]
    return out


def paired_differences(evals: list[dict], baseline: str = BASELINE, split: str = "test",
                       level: float = 0.95) -> dict[str, dict[int, dict]]:
    """strategy -> budget -> mean, interval and n of (strategy - baseline) mIoU over the seeds both ran.

    Runs of one seed share that seed's candidate pools and training randomness, so the difference per
    seed removes what the seed does to both; the interval is Student's t over those differences.
    """
    out: dict[str, dict[int, dict]] = defaultdict(dict)
    for strategy, seeds in _paired_by_seed(evals, baseline, split).items():
        for seed in sorted(seeds):
            for budget, diff in sorted(seeds[seed].items()):
                out[strategy].setdefault(budget, {"diffs": []})["diffs"].append(diff)
    for per_budget in out.values():
        for cell in per_budget.values():
            cell["mean"], cell["low"], cell["high"] = t_interval(cell["diffs"], level)
            cell["n"] = len(cell["diffs"])
    return dict(out)


def curve_differences(evals: list[dict], baseline: str = BASELINE, split: str = "test",
                      level: float = 0.95) -> dict[str, dict]:
    """strategy -> mean, interval and n of the paired difference of whole curves: per seed, the mean of
    (strategy - baseline) over every budget the pair ran (with evenly spaced budgets: the area between the
    curves over its width), then Student's t over the seeds. Seeds missing a budget that another seed of the
    pair has are left out (a run in progress); strategies paired at fewer than two budgets are not reported."""
    out = {}
    for strategy, seeds in sorted(_paired_by_seed(evals, baseline, split).items()):
        budgets = set().union(*(set(d) for d in seeds.values()))
        diffs = [sum(d.values()) / len(d) for d in seeds.values() if set(d) == budgets]
        if len(budgets) < 2 or not diffs:
            continue
        mean, low, high = t_interval(diffs, level)
        out[strategy] = {"diffs": diffs, "mean": mean, "low": low, "high": high, "n": len(diffs),
                         "budgets": len(budgets)}
    return out


def _signed(v: float) -> str:
    return "nan" if math.isnan(v) else f"{100 * v:+.1f}"


def paired_table(evals: list[dict], split: str = "test", baseline: str = BASELINE) -> list[str]:
    """Markdown lines: paired difference to ``baseline`` per strategy and budget with 95 % intervals."""
    diffs = paired_differences(evals, baseline, split)
    if not diffs:
        return []
    budgets = sorted({b for d in diffs.values() for b in d})
    curve = curve_differences(evals, baseline, split)
    header = [str(b) for b in budgets] + (["curve mean"] if curve else [])
    lines = [f"Paired difference to {baseline} ({split} mIoU points, same seeds): mean [95 % t-interval] (n); "
             "* = interval above 0" + ("; curve mean: per seed, the mean difference over all budgets, then the "
                                       "interval over seeds" if curve else ""), "",
             "| strategy | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for s, per_budget in sorted(diffs.items()):
        cells = [_cell(per_budget.get(b)) for b in budgets]
        if curve:
            c = curve.get(s)
            cells.append(_cell(c, f", {c['budgets']} budgets" if c else ""))
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def _cell(c: dict | None, note: str = "") -> str:
    """A paired-difference cell: mean [interval] (n``note``), starred when the interval is above 0."""
    if c is None:
        return "-"
    if c["n"] < 2:  # one seed: a difference, but no interval to put around it
        return f"{_signed(c['mean'])} (n=1{note}, no interval)"
    star = "*" if c["low"] > 0 else ""
    return f"{_signed(c['mean'])} [{_signed(c['low'])}, {_signed(c['high'])}] (n={c['n']}{note}){star}"


def plot_paired(store_path: Path, out_png: Path, split: str = "test", baseline: str = BASELINE) -> Path | None:
    """Paired differences to ``baseline`` with 95 % intervals per budget; None when nothing pairs."""
    unit = budget_unit(store_path)  # refuses a store mixing units before anything is drawn
    store = RunStore.open_existing(store_path)
    evals = store.evaluations()
    store.close()
    diffs = paired_differences(evals, baseline, split)
    if not diffs:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    budgets = sorted({b for d in diffs.values() for b in d})
    width = (min(b - a for a, b in zip(budgets, budgets[1:])) if len(budgets) > 1 else 100) * 0.5
    for i, (s, per_budget) in enumerate(sorted(diffs.items())):
        bs = sorted(per_budget)
        x = [b + width * (i / max(len(diffs) - 1, 1) - 0.5) for b in bs]
        m = [100 * per_budget[b]["mean"] for b in bs]
        lo = [m_ - 100 * per_budget[b]["low"] if not math.isnan(per_budget[b]["low"]) else 0 for m_, b in zip(m, bs)]
        hi = [100 * per_budget[b]["high"] - m_ if not math.isnan(per_budget[b]["high"]) else 0 for m_, b in zip(m, bs)]
        n = max(per_budget[b]["n"] for b in bs)
        ax.errorbar(x, m, yerr=[lo, hi], marker="o", capsize=3, label=f"{s} (n = {n} seeds)")
    ax.axhline(0, color="gray", linewidth=0.8)
    ax.set_title(f"{describe(store_path)}\npaired difference to {baseline}, mean and 95 % t-interval over seeds",
                 fontsize=10)
    return _save_budget_plot(fig, ax, out_png, f"{split} mIoU − {baseline} (points)", *unit)


def class_entropy(hist: list[int], num_classes: int | None = None) -> float:
    """Entropy (nats) of the class distribution of labelled pixels: the first ``num_classes`` bins
    (default: all but the last, the void bin; a padding bin after it is excluded too when given)."""
    counts = hist[:num_classes] if num_classes is not None else hist[:-1]
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


def budget_unit(store_path: Path) -> tuple[str, int | None]:
    """What the store's budgets count: 'regions', or 'images' when its runs say so (``budget_unit`` in
    their stored configs, DEAL's original protocol), with the pool's image count when recorded.

    Raises:
        ConfigError: the store mixes runs counting regions and runs counting images (one axis cannot
            show both).
    """
    store = RunStore.open_existing(store_path)
    try:
        configs = store.run_configs()
    finally:
        store.close()
    by_unit: dict[str, list[str]] = defaultdict(list)
    for run_id, c in configs.items():
        by_unit[run_budget_unit(c)].append(run_id)
    if len(by_unit) > 1:
        raise ConfigError(f"{store_path} mixes runs whose budgets count regions (e.g. {by_unit['regions'][0]}) "
                          f"and runs whose budgets count images (al.deal.protocol: deal_original, e.g. "
                          f"{by_unit['images'][0]}), which one axis cannot show; use separate stores (a store: "
                          f"of its own in each config, or --store) and plot each")
    if "images" in by_unit:
        pools = {c.get("pool_images_count") for c in configs.values()}
        return "images", (pools.pop() if len(pools) == 1 else None)
    return "regions", None


def describe(store_path: Path) -> str:
    """A plot title: dataset, profile (the store's folder name) and the seeds of the store's runs."""
    store = RunStore.open_existing(store_path)
    try:
        datasets = [Path(d).name for d in store.datasets()]
        seeds = sorted({r["seed"] for r in store.runs() if r["strategy"] not in BOUNDS})
    finally:
        store.close()
    return f"{', '.join(datasets) or '?'} · {Path(store_path).resolve().parent.name} · seeds {', '.join(map(str, seeds)) or '-'}"


def plot_curves(store_path: Path, out_png: Path, split: str = "test") -> Path:
    """Mean mIoU per budget with a ±1 std band (n seeds in the legend) and the bounds as lines."""
    unit = budget_unit(store_path)  # refuses a store mixing units before anything is drawn
    store = RunStore.open_existing(store_path)
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
        ax.plot(budgets, m, marker="o", label=f"{strategy} (n = {n} seed{'s' if n > 1 else ''}{', ±1 std' if n > 1 else ''})")
        if n > 1:
            ax.fill_between(budgets, [a - b for a, b in zip(m, sd)], [a + b for a, b in zip(m, sd)], alpha=0.2)
    for bound, style in zip(BOUNDS, (":", "--")):
        if bound in data:
            v = 100 * next(iter(data[bound].values()))[0]
            ax.axhline(v, color="gray", linestyle=style, label=f"{bound.replace('_', ' ')} ({v:.1f})")
    ax.set_title(describe(store_path), fontsize=10)
    return _save_budget_plot(fig, ax, out_png, f"{split} mIoU (%)", *unit)


def plot_training(store_path: Path, out_png: Path) -> Path | None:
    """The stored training curves of every evaluation (the final trainings, or each round's training):
    one column per budget, training loss (top) and val mIoU (bottom; left out when no curve was validated,
    as with `val_split: null`) against the epoch, one thin line per run, a colour per strategy; epoch -1 is
    the starting weights' val mIoU. A footnote counts the evaluations without a curve (written before curves
    were recorded, or by a process running older code). None, and no file (an earlier one is removed), when
    the store holds no curves."""
    store = RunStore.open_existing(store_path)
    try:
        rows = store.training_curves()
        evaluated = {(e["run_id"], e["budget"]) for e in store.evaluations() if e["split"] == "test"}
    finally:
        store.close()
    if not rows:
        out_png.unlink(missing_ok=True)
        return None
    missing = len(evaluated - {(r["run_id"], r["budget"]) for r in rows})
    budgets = sorted({r["budget"] for r in rows})
    strategies = sorted({r["strategy"] for r in rows})
    palette = "tab10" if len(strategies) <= 10 else "tab20"
    colour = {s: plt.get_cmap(palette)(i % 20) for i, s in enumerate(strategies)}
    has_val = any(e["val_miou"] is not None for r in rows for e in r["history"])
    fig, axes = plt.subplots(2 if has_val else 1, len(budgets), squeeze=False, sharey="row",
                             figsize=(3.2 * len(budgets) + 1, 6 if has_val else 3.4))
    for r in rows:
        col = budgets.index(r["budget"])
        h = r["history"]
        trained = [e for e in h if e["loss"] is not None]
        validated = [e for e in h if e["val_miou"] is not None]
        kw = {"color": colour[r["strategy"]], "alpha": 0.6, "linewidth": 0.9}
        axes[0, col].plot([e["epoch"] for e in trained], [e["loss"] for e in trained], **kw)
        if has_val:
            axes[1, col].plot([e["epoch"] for e in validated], [100 * e["val_miou"] for e in validated],
                              marker=".", **kw)
    for col, b in enumerate(budgets):
        axes[0, col].set_title(f"{b} labelled", fontsize=9)
        axes[0, col].set_yscale("log")
        axes[-1, col].set_xlabel("epoch")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    axes[0, 0].set_ylabel("training loss (log; + auxiliary heads')")
    if has_val:
        axes[1, 0].set_ylabel("val mIoU (%)")
    handles = [plt.Line2D([], [], color=colour[s], label=s) for s in strategies]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(strategies), 6), fontsize=8)
    if missing:
        fig.text(0.01, 0.01, f"{missing} of {len(evaluated)} evaluations have no stored curve (not drawn)", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 0.93))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def _save_budget_plot(fig: plt.Figure, ax: plt.Axes, out_png: Path, ylabel: str, unit: str = "regions",
                      pool: int | None = None) -> Path:
    """Axis labels, grid and legend of a plot over labelled regions (or images: with the pool's image
    count, a second axis in % of the pool); writes it and closes the figure."""
    ax.set_xlabel(f"labelled {unit}")
    if pool:
        top = ax.secondary_xaxis("top", functions=(lambda x: 100 * x / pool, lambda p: p * pool / 100))
        top.set_xlabel(f"% of the {pool} pool images")
    if unit == "images":
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


def markdown_table(store_path: Path, split: str = "test", against: tuple[str, ...] = ()) -> str:
    """Mean ± std mIoU per strategy and budget, the bounds, per-class IoU at the largest budget, the
    class entropy of labelled pixels, and mean seconds per step."""
    unit = budget_unit(store_path)[0]
    store = RunStore.open_existing(store_path)
    evals = store.evaluations()
    runs = store.runs()
    configs = store.run_configs()
    timing = defaultdict(list)
    picks: dict[str, list[int]] = {}  # run id -> selected units in order (regions, or whole images)
    for r in runs:
        for s in store.steps(r["run_id"]):
            timing[r["strategy"]].append((s["seconds_score"], s["seconds_train"]))
            picks.setdefault(r["run_id"], []).extend(s["selected"])
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
            if not xs:
                cells.append("-")
            elif len(xs) == 1:  # one seed: no spread to show
                cells.append(f"{100 * xs[0]:.1f} (n=1)")
            else:
                cells.append("{:.1f} ± {:.1f} (n={})".format(*[100 * v for v in _mean_std(xs)], len(xs)))
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    for bound in BOUNDS:
        if bound in data:
            budget, values = next(iter(data[bound].items()))
            lines.append(f"\n{bound.replace('_', ' ')} ({budget} {unit} labelled): {100 * values[0]:.1f}")
    for baseline in (BASELINE, *against):  # paired differences to random, then to each strategy asked for
        paired = paired_table(evals, split, baseline)
        if paired:
            lines += [""] + paired
    means = {s: {b: _mean_std(xs)[0] for b, xs in data[s].items()} for s in strategies}
    if len(strategies) > 1 and budgets:
        lines += ["", f"{unit.capitalize()} each strategy needs to reach the best other strategy's mean {split} "
                  f"mIoU at {budgets[-1]} {unit} (linear interpolation between budgets)", "",
                  f"| strategy | target (best other) | {unit} needed | vs. {budgets[-1]} |", "|---|---|---|---|"]
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
        lines += ["", f"Per-class {split} IoU (%) at {budgets[-1]} {unit}, mean over seeds", "",
                  "| strategy | " + " | ".join(names) + " | entropy of labelled classes (nats) |",
                  "|---" * (len(names) + 2) + "|"]
        for s in strategies:
            rows = [e for e in last if e["strategy"] == s]
            if not rows:
                continue
            ious = [sum((r["iou"][n] or 0.0) for r in rows) / len(rows) for n in names]
            ent = sum(class_entropy(r["class_histogram"], len(names)) for r in rows) / len(rows)
            lines.append(f"| {s} | " + " | ".join(f"{100 * v:.1f}" for v in ious) + f" | {ent:.3f} |")
        padded = any(e["class_histogram"] and len(e["class_histogram"]) > len(names) + 1 for e in last)
        extra = ["void", "padding"] if padded else ["void"]
        lines += ["", f"Share of labelled pixels per class (%) at {budgets[-1]} {unit}, mean over seeds "
                  "(void = image pixels of no class, the dataset's ignore values"
                  + ("; padding = letterbox pixels inside labelled regions, never counted as labels)" if padded else ")"),
                  "", "| strategy | " + " | ".join(names + extra) + " |", "|---" * (len(names) + len(extra) + 1) + "|"]
        for s in strategies:
            rows = [e for e in last if e["strategy"] == s and e["class_histogram"]]
            if rows:
                bins = len(names) + len(extra)
                hists = [list(r["class_histogram"]) + [0] * (bins - len(r["class_histogram"])) for r in rows]
                shares = [sum(h[i] / sum(h) for h in hists) / len(hists) for i in range(bins)]
                lines.append(f"| {s} | " + " | ".join(f"{100 * v:.1f}" for v in shares) + " |")
    lines += labelled_table(evals, picks, configs, split, unit)
    lines += extras_table(evals)
    if timing:
        eval_seconds = defaultdict(list)
        for e in evals:
            if e["split"] == split and e["strategy"] not in BOUNDS:
                eval_seconds[e["strategy"]].append(e["seconds"])
        lines += ["", "Wall time (mean seconds): per active-learning step (scoring, fine-tuning), and per budget "
                  f"(final training on all labelled {unit} + evaluation)", "",
                  "| strategy | scoring / step | fine-tuning / step | evaluation / budget | steps | evaluations |",
                  "|---|---|---|---|---|---|"]
        for s in sorted(timing):
            ts, es = timing[s], eval_seconds.get(s, [])
            lines.append(f"| {s} | {sum(t[0] for t in ts) / len(ts):.2f} | {sum(t[1] for t in ts) / len(ts):.2f} | "
                         f"{f'{sum(es) / len(es):.1f}' if es else '-'} | {len(ts)} | {len(es)} |")
        total = sum(a + b for ts in timing.values() for a, b in ts) + sum(sum(es) for es in eval_seconds.values())
        lines += ["", f"Compute time of every run in the store (steps + final trainings, bounds excluded): "
                  f"{total / 3600:.2f} h"]
    return "\n".join(lines) + "\n"


def labelled_table(evals: list[dict], picks: dict[str, list[int]], configs: dict[str, dict], split: str,
                   unit: str) -> list[str]:
    """Markdown lines: what each strategy had labelled at each budget, mean over seeds: labelled image
    pixels (void included: the annotator's work) and images touched (images with a labelled region)."""
    rows: dict[str, dict[int, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    for e in evals:
        if e["split"] != split or e["strategy"] in BOUNDS or not e["class_histogram"] or e["run_id"] not in picks:
            continue
        cfg = configs.get(e["run_id"], {})
        per_image = 1 if unit == "images" else cfg.get("region_rows", 4) * cfg.get("region_cols", 6)
        names = len(e["iou"])
        pixels = sum(e["class_histogram"][:names + 1])  # classes and void; not letterbox padding
        if unit == "images":  # a store of whole images: the start set is labelled too, no steps for it
            touched = e["labelled"]
        else:
            touched = len({g // per_image for g in picks[e["run_id"]][:e["labelled"]]})
        rows[e["strategy"]][e["budget"]].append((pixels, touched))
    if not rows:
        return []
    budgets = sorted({b for per in rows.values() for b in per})
    lines = ["", f"Labelled pixels (thousands, void included) / images touched at each budget ({unit}), mean over seeds",
             "", "| strategy | " + " | ".join(str(b) for b in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]
    for s in sorted(rows):
        cells = []
        for b in budgets:
            got = rows[s].get(b)
            cells.append("-" if not got else f"{sum(p for p, _ in got) / len(got) / 1000:.0f}k / "
                                              f"{sum(t for _, t in got) / len(got):.0f}")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def extras_table(evals: list[dict], split: str = "val") -> list[str]:
    """Markdown lines of the further metrics stored with the evaluations (e.g. an auxiliary head's, such
    as ``difficulty_auroc``): mean over seeds for the start model (``start_<key>``) and at each budget."""
    rows = [e for e in evals if e["split"] == split and e.get("extra") and e["strategy"] not in BOUNDS]
    if not rows:
        return []
    keys = sorted({k for e in rows for k in e["extra"] if not k.startswith("start_")})
    budgets = sorted({e["budget"] for e in rows})
    lines = ["", f"Further {split} metrics of the final models (mean over seeds; start: the run's start model)", "",
             "| strategy | metric | start | " + " | ".join(str(b) for b in budgets) + " |",
             "|---" * (len(budgets) + 3) + "|"]

    def mean(values: list) -> str:
        values = [v for v in values if v is not None]
        return f"{sum(values) / len(values):.3f}" if values else "-"

    for s in sorted({e["strategy"] for e in rows}):
        mine = [e for e in rows if e["strategy"] == s]
        for k in keys:
            start = mean([e["extra"].get(f"start_{k}") for e in mine])
            cells = [mean([e["extra"].get(k) for e in mine if e["budget"] == b]) for b in budgets]
            lines.append(f"| {s} | {k} | {start} | " + " | ".join(cells) + " |")
    return lines


def plot_agent_history(summary: dict, out_png: Path) -> Path:
    """Agent training, per episode: return; D_R mIoU at the budget and after the end-of-episode epoch;
    TD loss (every update and the episode mean, log scale); |Q| of the chosen actions (mean and max);
    gradient norm; exploration rate."""
    eps = summary["episodes"]
    x = [h["episode"] + 1 for h in eps]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    (ax_ret, ax_miou, ax_loss), (ax_q, ax_grad, ax_eps) = axes
    ax_ret.plot(x, [h["return"] for h in eps], marker="o")
    ax_ret.axhline(0, color="gray", linewidth=0.8)
    ax_ret.set_ylabel("return (sum of 100 x D_R mIoU gains)")
    ax_miou.plot(x, [100 * h["step_miou"][-1] for h in eps], marker="o", label="at the budget")
    ax_miou.plot(x, [100 * h["final_miou"] for h in eps], marker="s", label="after the end-of-episode epoch")
    ax_miou.axhline(100 * summary["start_miou"], color="gray", linestyle=":", label="weak start model")
    ax_miou.set_ylabel("D_R mIoU (%)")
    ax_miou.legend(fontsize=8)

    def per_step(key: str) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for h in eps:
            values = h.get(key) or []
            xs += [h["episode"] + 1 + (i + 0.5) / max(len(values), 1) - 0.5 for i in range(len(values))]
            ys += values
        return xs, ys

    def episode_values(key: str) -> tuple[list[int], list[float]]:
        pts = [(h["episode"] + 1, h.get(key, h.get("mean_loss") if key == "loss" else None)) for h in eps]
        pts = [(a, b) for a, b in pts if b is not None]
        return [a for a, _ in pts], [b for _, b in pts]

    ax_loss.plot(*per_step("step_loss"), color="tab:blue", alpha=0.3, linewidth=0.8, label="every update")
    ax_loss.plot(*episode_values("loss"), marker="o", color="tab:blue", label="episode mean")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("TD (Huber) loss")
    ax_loss.legend(fontsize=8)
    ax_q.plot(*episode_values("q_abs_mean"), marker="o", label="mean |Q| of chosen actions")
    ax_q.plot(*episode_values("q_abs_max"), marker="^", label="max |Q|")
    ax_q.plot(x, [max((abs(r) for r in h["rewards"]), default=0) for h in eps], linestyle=":", color="gray",
              label="max |reward| of the episode")
    ax_q.set_ylabel("|Q|")
    ax_q.legend(fontsize=8)
    ax_grad.plot(*per_step("step_grad_norm"), color="tab:green", alpha=0.3, linewidth=0.8)
    ax_grad.plot(*episode_values("grad_norm"), marker="o", color="tab:green")
    ax_grad.set_yscale("log")
    ax_grad.set_ylabel("gradient norm (before clipping)")
    ax_eps.plot(*per_step("epsilons"), color="tab:purple")
    ax_eps.set_ylabel("exploration rate ε")
    ax_eps.set_ylim(0, 1)
    for ax in axes.reshape(-1):
        ax.set_xlabel("episode")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png
