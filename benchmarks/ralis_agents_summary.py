"""Side by side: the training of several RALIS agents (e.g. the three seeds of the low-start agent),
read from their ``history.json`` files (nothing is re-run).

Per agent: episodes and minutes; the stability check of issue 8 (the largest per-episode mean TD loss
against 10x the largest of the first five episodes); mean and largest |Q| of the chosen actions; the mean
return per block of ten episodes; the best end-of-episode D_R mIoU. Writes a markdown table, a JSON file
and one plot of the returns (10-episode moving mean) and TD losses of every agent.

    python benchmarks/ralis_agents_summary.py docs/ralis_lowstart/s20 docs/ralis_lowstart/s50 \
        docs/ralis_lowstart/s234 --out docs/ralis_lowstart/agents
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

GUARD = 10.0
"""Issue 8's bound: no episode's mean TD loss above 10x the largest of the first five episodes'."""


def summarise(history: dict, block: int = 10) -> dict:
    """The numbers of one agent's training (see the module docstring)."""
    eps = history["episodes"]
    loss = np.array([e["loss"] for e in eps])
    ret = np.array([e["return"] for e in eps])
    final = np.array([e["final_miou"] for e in eps]) * 100
    first5 = float(loss[:5].max())
    blocks = {f"{i + 1}-{min(i + block, len(eps))}": float(ret[i:i + block].mean()) for i in range(0, len(eps), block)}
    return {
        "episodes": len(eps),
        "minutes": history["total_seconds"] / 60,
        "start_miou": 100 * history["start_miou"],
        "loss_first5_max": first5,
        "loss_max": float(loss.max()),
        "loss_max_episode": int(loss.argmax()) + 1,
        "loss_ratio": float(loss.max() / first5),
        "within_guard": bool(loss.max() <= GUARD * first5),
        "q_abs_mean_range": [float(min(e["q_abs_mean"] for e in eps)), float(max(e["q_abs_mean"] for e in eps))],
        "q_abs_max": float(max(e["q_abs_max"] for e in eps)),
        "return_by_block": blocks,
        "best_final_miou": float(final.max()),
        "best_episode": int(final.argmax()) + 1,
    }


def table(rows: dict[str, dict]) -> str:
    blocks = list(next(iter(rows.values()))["return_by_block"])
    head = ["agent", "episodes", "minutes", "max loss / max of episodes 1-5", "mean \\|Q\\| (range)", "max \\|Q\\|",
            *[f"mean return, ep. {b}" for b in blocks], "best D_R mIoU (episode)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in rows.items():
        lo, hi = s["q_abs_mean_range"]
        cells = [name, str(s["episodes"]), f"{s['minutes']:.1f}",
                 f"{s['loss_max']:.3f} / {s['loss_first5_max']:.3f} = {s['loss_ratio']:.1f}x",
                 f"{lo:.2f}-{hi:.2f}", f"{s['q_abs_max']:.2f}",
                 *[f"{s['return_by_block'].get(b, float('nan')):+.2f}" for b in blocks],
                 f"{s['best_final_miou']:.1f} ({s['best_episode']})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(histories: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, h in histories.items():
        ret = np.array([e["return"] for e in h["episodes"]])
        k = min(10, len(ret))
        smooth = np.convolve(ret, np.ones(k) / k, mode="valid")
        line, = a.plot(np.arange(1, len(ret) + 1), ret, alpha=0.25)
        a.plot(np.arange(k, len(ret) + 1), smooth, color=line.get_color(), label=f"{name} (10-episode mean)")
        b.plot(np.arange(1, len(ret) + 1), [e["loss"] for e in h["episodes"]], color=line.get_color(), label=name)
    a.axhline(0, color="grey", lw=0.8)
    a.set(xlabel="episode", ylabel="return (D_R mIoU points over the episode)", title="returns")
    b.set(xlabel="episode", ylabel="mean TD (Huber) loss", yscale="log", title="TD loss per episode")
    a.legend(fontsize=8)
    b.legend(fontsize=8)
    fig.suptitle("RALIS agents, low-start CamVid profile")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("agents", type=Path, nargs="+", help="agent folders holding history.json")
    ap.add_argument("--out", type=Path, required=True, help="folder for summary.md, summary.json, agents.png")
    args = ap.parse_args()
    histories = {d.name: json.loads((d / "history.json").read_text()) for d in args.agents}
    rows = {name: summarise(h) for name, h in histories.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    md = table(rows)
    (args.out / "summary.md").write_text(md)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    plot(histories, args.out / "agents.png")
    print(md)
    bad = [n for n, s in rows.items() if not s["within_guard"]]
    print("every agent within 10x of its first five episodes' loss" if not bad else f"above 10x: {', '.join(bad)}")


if __name__ == "__main__":
    main()
