"""Plots and tables of the MiSiCAL-style reconstruction: a class policy's training curves, the
quantity-accuracy check (spec ``misical.md`` section 4) and the per-class win counts (section 6.2).

Every title says "MiSiCAL-style (reconstruction)": the design beyond the paper's abstract is this project's.
The comparison functions are pure: they take per-seed IoU values and return numbers.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

from activeseg.report import _mean_std  # noqa: E402

TITLE = "MiSiCAL-style (reconstruction)"
PAPER_REFERENCE = ("Reference point (the paper, COCO-Stuff-10k, 171 classes, another data set and unit): MiSiCAL "
                   "beats random on 150/171 classes, the strongest baseline on 101/171.")
WEAK = 0.5  # premise: a class whose rank correlation is below this is flagged "weak premise"
TIE = 1e-9  # mean IoUs closer than this are a tie (sums of the same values in another order differ by rounding)


# --- policy training -------------------------------------------------------------------------------

def plot_policy_training(history: list[dict], out_png: Path, title: str) -> Path:
    """Per episode: return, final Q_c* of the acquired set, TD loss (log scale), |Q| of the updates' chosen
    actions (mean and max), exploration rate, gradient norm."""
    x = [h["episode"] + 1 for h in history]

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(a, h.get(key)) for a, h in zip(x, history) if h.get(key) is not None]
        return [a for a, _ in pts], [b for _, b in pts]

    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    (ax_ret, ax_q_final, ax_loss), (ax_q, ax_eps, ax_grad) = axes
    ax_ret.plot(*series("return"), marker=".")
    ax_ret.set_ylabel("return (= g(Q_c*) of the episode's set)")
    ax_q_final.plot(*series("final_quantity"), marker=".", color="tab:orange")
    ax_q_final.set_ylabel("final Q_c* (region-equivalents)")
    ax_loss.plot(*series("loss"), marker=".")
    if series("loss")[1]:
        ax_loss.set_yscale("log")
    ax_loss.set_ylabel("TD (Huber) loss, episode mean")
    ax_q.plot(*series("q_abs_mean"), marker=".", label="mean |Q|")
    ax_q.plot(*series("q_abs_max"), marker="^", label="max |Q|")
    ax_q.set_ylabel("|Q| of the updates' chosen actions")
    ax_q.legend(fontsize=8)
    ax_eps.plot(*series("epsilon"), color="tab:purple")
    ax_eps.set_ylim(0, 1)
    ax_eps.set_ylabel("exploration rate ε (episode mean)")
    ax_grad.plot(*series("grad_norm"), color="tab:green", marker=".")
    if series("grad_norm")[1]:
        ax_grad.set_yscale("log")
    ax_grad.set_ylabel("gradient norm (episode mean)")
    for ax in axes.reshape(-1):
        ax.set_xlabel("episode")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


# --- the premise check -----------------------------------------------------------------------------

def _correlation(fn, x: list[float], y: list[float]) -> float | None:
    """``fn(x, y)``'s coefficient; None with fewer than 3 pairs, a constant input or NaN."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(fn(x, y)[0])
    return None if math.isnan(value) else value


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rank correlation (ties: average ranks); None when undefined."""
    return _correlation(stats.spearmanr, x, y)


def pearson(x: list[float], y: list[float]) -> float | None:
    return _correlation(stats.pearsonr, x, y)


def premise_rows(quantities: list[dict[str, float]], ious: list[dict[str, float | None]],
                 classes: tuple[str, ...]) -> dict[str, dict]:
    """Per class, over the subsets m: Spearman rho of (Q_c(S_m), IoU_c) and of (ln(1 + Q_c), IoU_c) (equal:
    ranks do not change under a monotone map), Pearson r of (ln(1 + Q_c), IoU_c) (how linear in the log the
    relation is), and the "weak premise" flag (rho < 0.5, or undefined). Subsets whose IoU_c is undefined
    are left out."""
    out = {}
    for c in classes:
        pairs = [(q[c], i[c]) for q, i in zip(quantities, ious) if i.get(c) is not None]
        q, iou = [p[0] for p in pairs], [p[1] for p in pairs]
        log_q = [math.log1p(v) for v in q]
        rho = spearman(q, iou)
        out[c] = {"rho_q": rho, "rho_log1p_q": spearman(log_q, iou), "pearson_log1p_q": pearson(log_q, iou),
                  "weak": rho is None or rho < WEAK, "subsets": len(pairs), "q": q, "iou": iou}
    return out


def _num(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def premise_markdown(result: dict) -> str:
    """The premise table: one row per class."""
    lines = [f"# {TITLE}: quantity-accuracy check (spec misical.md section 4)", "",
             f"{result['subsets']} Dirichlet-tilted subsets of {result['budget']} pool regions (seed {result['seed']}), "
             f"one evaluation training each; IoU_c on {result['split']} (D_R). Spearman is rank-based, so rho against "
             "ln(1 + Q_c) equals rho against Q_c; Pearson r against ln(1 + Q_c) shows how linear in the log the "
             f"relation is. Weak premise: rho < {WEAK} (or undefined).", "",
             "| class | rho(Q_c, IoU_c) | rho(ln(1+Q_c), IoU_c) | r(ln(1+Q_c), IoU_c) | Q_c range | IoU_c range (%) | premise |",
             "|---|---|---|---|---|---|---|"]
    for c, row in result["classes"].items():
        q_range = f"{min(row['q']):.2f} - {max(row['q']):.2f}" if row["q"] else "-"
        i_range = f"{100 * min(row['iou']):.1f} - {100 * max(row['iou']):.1f}" if row["iou"] else "-"
        lines.append(f"| {c} | {_num(row['rho_q'])} | {_num(row['rho_log1p_q'])} | {_num(row['pearson_log1p_q'])} | "
                     f"{q_range} | {i_range} | {'weak' if row['weak'] else 'ok'} |")
    weak = [c for c, row in result["classes"].items() if row["weak"]]
    lines += ["", f"Weak premise: {', '.join(weak) if weak else 'none'}."]
    return "\n".join(lines) + "\n"


# --- the per-class benchmark -----------------------------------------------------------------------

def per_class_values(evals: list[dict], budget: int, key: str = "iou") -> dict[str, dict[str, dict[int, float]]]:
    """method -> class -> seed -> value, from the test evaluations of one budget: a class-aware run (its
    extra names a target_class) gives its class only, a class-agnostic run every class. ``key``: 'iou'
    (the evaluation's IoU), 'quantities' (Q_c of the selected set, from the extra) or 'images_touched' (the
    images holding a selected region, from the extra: one number per run, given to each of its classes).
    Undefined values (an IoU of None) are left out."""
    out: dict = defaultdict(lambda: defaultdict(dict))
    for e in evals:
        extra = e.get("extra") or {}
        if e["split"] != "test" or e["budget"] != budget or "method" not in extra:
            continue
        if key == "images_touched":
            values = {c: extra[key] for c in e["iou"]} if key in extra else {}
        else:
            values = e["iou"] if key == "iou" else extra.get(key, {})
        target = extra.get("target_class")
        for c, v in values.items():
            if v is not None and (target is None or c == target):
                out[extra["method"]][c][e["seed"]] = v
    return out


def compare(method: dict[str, dict[int, float]], baseline: dict[str, dict[int, float]],
            classes: tuple[str, ...]) -> dict[str, dict]:
    """Per class, over the seeds both have: mean and std of the method and of the baseline, mean and std of
    the per-seed differences, ``win`` (mean method > mean baseline; None without a common seed) and ``loss``
    (below; means within ``TIE`` are neither)."""
    out = {}
    for c in classes:
        seeds = sorted(set(method.get(c, {})) & set(baseline.get(c, {})))
        if not seeds:
            out[c] = {"seeds": [], "win": None}
            continue
        a = [method[c][s] for s in seeds]
        b = [baseline[c][s] for s in seeds]
        (ma, sa), (mb, sb) = _mean_std(a), _mean_std(b)
        md, sd = _mean_std([x - y for x, y in zip(a, b)])
        out[c] = {"seeds": seeds, "mean": ma, "std": sa, "baseline_mean": mb, "baseline_std": sb, "diff_mean": md,
                  "diff_std": sd, "win": ma - mb > TIE, "loss": mb - ma > TIE}
    return out


def sign_test(wins: int, losses: int) -> float | None:
    """One-sided sign test: P(at least ``wins`` successes of wins + losses fair coins); ties are dropped
    before. None when there is no decided class."""
    n = wins + losses
    return None if n == 0 else float(stats.binomtest(wins, n, 0.5, alternative="greater").pvalue)


def win_summary(comparison: dict[str, dict], classes: tuple[str, ...]) -> dict:
    """Wins, losses and ties over ``classes`` (those with a common seed), and the sign test."""
    decided = [comparison[c] for c in classes if comparison[c]["win"] is not None]
    wins = sum(1 for r in decided if r["win"])
    losses = sum(1 for r in decided if r["loss"])
    return {"wins": wins, "losses": losses, "ties": len(decided) - wins - losses, "classes": len(decided),
            "sign_test_p": sign_test(wins, losses)}


def _pct(mean: float | None, std: float | None = None, signed: bool = False) -> str:
    if mean is None:
        return "-"
    text = f"{100 * mean:+.1f}" if signed else f"{100 * mean:.1f}"
    return text if std is None else f"{text} ± {100 * std:.1f}"


def _seed_means(values: dict[str, dict[str, dict[int, float]]], methods: tuple[str, ...],
                classes: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    """method -> class -> mean over seeds of ``per_class_values``' output (None where nothing ran)."""
    return {m: {c: (sum(values[m][c].values()) / len(values[m][c]) if values.get(m, {}).get(c) else None)
                for c in classes} for m in methods}


def _sign_p(summary: dict) -> str:
    """A win summary's sign-test p as table text ('-' when no class was decided)."""
    return "-" if summary["sign_test_p"] is None else f"{summary['sign_test_p']:.3g}"


def benchmark_result(evals: list[dict], classes: tuple[str, ...], rare: tuple[str, ...], budgets: tuple[int, ...],
                     methods: tuple[str, ...], baseline: str = "random") -> dict:
    """Per budget: each method's comparison with the baseline (per class), its wins over all classes and
    over the rare ones, the strongest other method (most wins against the baseline) and the policy's wins
    against it, and the mean Q_c and images touched of the selected sets."""
    rare = tuple(c for c in rare if c in classes)
    result: dict = {"classes": list(classes), "rare_classes": list(rare), "baseline": baseline, "budgets": {}}
    for budget in budgets:
        iou = per_class_values(evals, budget, "iou")
        quantity = per_class_values(evals, budget, "quantities")
        touched = per_class_values(evals, budget, "images_touched")
        entry: dict = {"methods": {}}
        for m in methods:
            if m == baseline:
                continue
            comp = compare(iou.get(m, {}), iou.get(baseline, {}), classes)
            entry["methods"][m] = {"per_class": comp, "all": win_summary(comp, classes),
                                   "rare": win_summary(comp, rare)}
        entry["iou"] = {m: {c: _mean_std(list(iou[m][c].values())) if iou.get(m, {}).get(c) else None for c in classes}
                        for m in methods}
        entry["quantity"] = _seed_means(quantity, methods, classes)
        entry["images_touched"] = _seed_means(touched, methods, classes)
        others = [m for m in entry["methods"] if m != "misical"]
        entry["strongest_baseline"] = strongest = max(others, key=lambda m: entry["methods"][m]["all"]["wins"],
                                                      default=None)
        if strongest is not None and "misical" in methods:  # head to head: the policy against that baseline
            comp = compare(iou.get("misical", {}), iou.get(strongest, {}), classes)
            entry["misical_vs_strongest"] = {"per_class": comp, "all": win_summary(comp, classes),
                                             "rare": win_summary(comp, rare)}
        result["budgets"][budget] = entry
    return result


def benchmark_markdown(result: dict, header: list[str], costs: list[str], extra: list[str] = ()) -> str:
    """The report: wins vs random (all classes, rare classes, sign test), per-class IoU, per-class differences
    with std over seeds, Q_c and images touched of the selected sets, then the costs."""
    classes, rare, base = result["classes"], result["rare_classes"], result["baseline"]
    lines = [f"# {TITLE}: per-class benchmark", "", *header, "", PAPER_REFERENCE, ""]
    for budget, entry in result["budgets"].items():
        methods = list(entry["iou"])
        others = [m for m in methods if m != base]
        lines += [f"## B = {budget} regions", "",
                  f"Win: mean test IoU_c over seeds above {base}'s (seeds both ran). Sign test: one-sided, ties dropped. "
                  f"Strongest baseline: {entry['strongest_baseline'] or '-'}.", "",
                  f"| method | wins vs {base} (all {len(classes)}) | losses | ties | sign test p | rare wins ({len(rare)}) |",
                  "|---|---|---|---|---|---|"]
        for m in others:
            a, r = entry["methods"][m]["all"], entry["methods"][m]["rare"]
            lines.append(f"| {m} | {a['wins']}/{a['classes']} | {a['losses']} | {a['ties']} | {_sign_p(a)} | "
                         f"{r['wins']}/{r['classes']} |")
        head = entry.get("misical_vs_strongest")
        if head is not None:
            a, r = head["all"], head["rare"]
            lines += ["", f"Head to head, misical against the strongest baseline ({entry['strongest_baseline']}): wins "
                      f"{a['wins']}/{a['classes']}, losses {a['losses']}, ties {a['ties']}, sign test p {_sign_p(a)}; "
                      f"rare classes {r['wins']}/{r['classes']}."]
        lines += ["", "Test IoU_c (%), mean ± std over seeds (rare classes marked *)", "",
                  "| class | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
        for c in classes:
            cells = [_pct(*entry["iou"][m][c]) if entry["iou"][m][c] else "-" for m in methods]
            lines.append(f"| {c}{' *' if c in rare else ''} | " + " | ".join(cells) + " |")
        lines += ["", f"Difference from {base} (IoU points), mean ± std over seeds of the per-seed differences", "",
                  "| class | " + " | ".join(others) + " |", "|---|" + "---|" * len(others)]
        for c in classes:
            cells = []
            for m in others:
                row = entry["methods"][m]["per_class"][c]
                cells.append("-" if row["win"] is None else _pct(row["diff_mean"], row["diff_std"], signed=True))
            lines.append(f"| {c}{' *' if c in rare else ''} | " + " | ".join(cells) + " |")
        lines += ["", "Class quantity Q_c of the selected set (region-equivalents), mean over seeds", "",
                  "| class | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
        for c in classes:
            cells = ["-" if entry["quantity"][m][c] is None else f"{entry['quantity'][m][c]:.2f}" for m in methods]
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        touched = entry.get("images_touched", {})
        if any(v is not None for per in touched.values() for v in per.values()):
            lines += ["", "Images touched by the selected set (images holding a selected region), mean over seeds", "",
                      "| class | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
            for c in classes:
                cells = ["-" if touched[m][c] is None else f"{touched[m][c]:.0f}" for m in methods]
                lines.append(f"| {c} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines + list(extra) + costs) + "\n"


def ralis_crosscheck(evals: list[dict], ralis_evals: list[dict], rare: tuple[str, ...], budgets: tuple[int, ...],
                     region_area: float | None) -> dict:
    """Per budget and rare class: the class policy's test IoU_c against the RALIS runs' (one run per seed, scored
    for every class), paired over the seeds both have (``compare``), and the class quantity Q_c each selected,
    mean over those same seeds: the policy's from its record, RALIS's from its labelled pixels of c /
    ``region_area`` (None when the regions differ in area: then no RALIS Q_c)."""
    out: dict = {}
    for budget in budgets:
        policy_iou = per_class_values(evals, budget, "iou").get("misical", {})
        policy_q = per_class_values(evals, budget, "quantities").get("misical", {})
        mine = [e for e in ralis_evals if e["split"] == "test" and e["budget"] == budget]
        ralis_iou = {c: {e["seed"]: e["iou"][c] for e in mine if e["iou"].get(c) is not None} for c in rare}
        ralis_q = {c: {e["seed"]: e["class_histogram"][list(e["iou"]).index(c)] / region_area
                       for e in mine if region_area and e.get("class_histogram") and c in e["iou"]} for c in rare}
        comp = compare(policy_iou, ralis_iou, rare)
        out[budget] = {c: {**comp[c],
                           "policy_quantity": _mean_over(policy_q.get(c, {}), comp[c]["seeds"]),
                           "ralis_quantity": _mean_over(ralis_q[c], comp[c]["seeds"])} for c in rare}
    return out


def _mean_over(by_seed: dict[int, float], seeds: list[int]) -> float | None:
    values = [by_seed[s] for s in seeds if s in by_seed]
    return sum(values) / len(values) if len(values) == len(seeds) and values else None


def crosscheck_markdown(result: dict, source: str) -> list[str]:
    lines = []
    for budget, rows in result.items():
        lines += [f"## Cross-check with RALIS at B = {budget} regions (rare classes)", "",
                  f"RALIS runs of {source} (same start model, pool, D_R and test; one run per seed, scored for every "
                  "class) against each class's policy, paired over the seeds both ran. Q_c: the class quantity "
                  "of the selected set (region-equivalents).", "",
                  "| class | policy IoU_c (%) | RALIS IoU_c (%) | policy - RALIS (points) | seeds | policy Q_c "
                  "| RALIS Q_c |",
                  "|---|---|---|---|---|---|---|"]
        for c, r in rows.items():
            if r["win"] is None:
                lines.append(f"| {c} | - | - | - | 0 | {_num(r['policy_quantity'])} | {_num(r['ralis_quantity'])} |")
                continue
            lines.append(f"| {c} | {_pct(r['mean'], r['std'])} | {_pct(r['baseline_mean'], r['baseline_std'])} | "
                         f"{_pct(r['diff_mean'], r['diff_std'], signed=True)} | {len(r['seeds'])} | "
                         f"{_num(r['policy_quantity'])} | {_num(r['ralis_quantity'])} |")
        lines.append("")
    return lines


def costs_lines(evals: list[dict], methods: tuple[str, ...]) -> tuple[list[str], dict]:
    """Seconds to train a class policy and to select B regions (misical runs' extras), and of the
    evaluation trainings of ``methods``."""
    train, select, embed = [], defaultdict(list), []
    training: dict[str, list[float]] = defaultdict(list)
    for e in evals:
        extra = e.get("extra") or {}
        if e["split"] != "test" or extra.get("method") not in methods:
            continue
        training[extra["method"]].append(e["seconds"])
        if extra["method"] == "misical":
            if extra.get("policy_seconds_train") is not None:
                train.append(extra["policy_seconds_train"])
            if extra.get("seconds_embed_pool") is not None:
                embed.append(extra["seconds_embed_pool"])
            for b, s in (extra.get("selection_seconds") or {}).items():
                select[int(b)].append(s)
    data = {"policy_seconds_train": train, "selection_seconds": {b: v for b, v in sorted(select.items())},
            "seconds_embed_pool": embed, "evaluation_training_seconds": dict(training)}
    lines = ["## Costs", "",
             "No segmentation model is trained to select: a selection is one pass of the Q-network over the pool's "
             "fixed embeddings (computed once per pool), so its time does not grow with retraining.", "",
             "| what | seconds (mean over runs) |", "|---|---|"]
    if train:
        lines.append(f"| train one class policy (D_T embeddings cached) | {np.mean(train):.1f} (n={len(train)}) |")
    if embed:
        lines.append(f"| pool embeddings (first selection on the pool; 0 when cached) | {np.mean(embed):.2f} |")
    for b, v in sorted(select.items()):
        lines.append(f"| select B = {b} regions | {np.mean(v):.4f} (n={len(v)}) |")
    for m, v in sorted(training.items()):
        lines.append(f"| evaluation training + test, {m} | {np.mean(v):.1f} (n={len(v)}) |")
    return lines, data
