"""Acquisition scores of activeseg against baal 2.1.0 on identical MC-dropout outputs.

16 images at 180x240, 11 classes, T passes of softmax probabilities drawn from a seeded generator.
Checks that activeseg's entropy (of the mean prediction) and BALD, reduced per image by the mean over
pixels, equal baal's ``Entropy`` / ``BALD`` with ``reduction="mean"``, and times both (median of
repeats, same stacked input already in memory). Then measures the peak memory of activeseg's
streaming BALD, passes produced one at a time, for T = 20 and T = 100, each in a fresh process.

Needs the benchmark extra: ``pip install -e '.[bench]'`` then ``pip install --no-deps baal==2.1.0``.
Run: .venv/bin/python benchmarks/acquisition_vs_baal.py --out docs/acquisition_vs_baal.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from activeseg.al.scoring import BALDAccumulator

N, C, H, W = 16, 11, 180, 240


def mc_pass(t: int, seed: int = 0) -> torch.Tensor:
    """Pass t of the MC outputs: softmax probabilities. Shape ``[N, C, H, W]``."""
    g = torch.Generator().manual_seed(seed * 1000 + t)
    return (3.0 * torch.randn(N, C, H, W, generator=g)).softmax(1)


def activeseg_scores(passes) -> tuple[torch.Tensor, torch.Tensor]:
    acc = BALDAccumulator()
    for p in passes:
        acc.update(p)
    # per-image mean over pixels
    return acc.predictive_entropy().mean((1, 2)), acc.score().mean((1, 2))


def baal_scores(stack_nchwt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from baal.active.heuristics import BALD, Entropy

    return (Entropy(reduction="mean").get_uncertainties(stack_nchwt),
            BALD(reduction="mean").get_uncertainties(stack_nchwt))


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it is not inherited at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_child(T: int) -> None:
    """Streaming BALD with passes produced one at a time; prints peak RSS in MB (T = 0: imports only)."""
    if T > 0:
        activeseg_scores(mc_pass(t) for t in range(T))
    print(peak_rss_mb())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passes", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("docs/acquisition_vs_baal.json"))
    ap.add_argument("--peak-memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peak_memory_child is not None:
        peak_memory_child(args.peak_memory_child)
        return

    peaks = {}  # measured first, in fresh processes, before this one holds the stacked passes
    for passes in (0, 20, 100):
        out = subprocess.run([sys.executable, __file__, "--peak-memory-child", str(passes)], capture_output=True,
                             text=True, check=True)
        peaks[str(passes)] = float(out.stdout.strip().splitlines()[-1])
    T = args.passes
    stack = torch.stack([mc_pass(t) for t in range(T)])  # [T, N, C, H, W]
    stack_np = np.ascontiguousarray(stack.permute(1, 2, 3, 4, 0).numpy())  # baal: [N, C, H, W, T]
    t_ours, (ent, bald) = timed(lambda: activeseg_scores(stack), args.repeats)
    t_baal, (b_ent, b_bald) = timed(lambda: baal_scores(stack_np), args.repeats)
    ent_err = float(np.max(np.abs(ent.double().numpy() - b_ent)))
    bald_err = float(np.max(np.abs(bald.double().numpy() - b_bald)))
    report = {
        "shape": {"images": N, "classes": C, "height": H, "width": W, "passes": T},
        "torch_threads": torch.get_num_threads(),
        "max_abs_difference": {"entropy": ent_err, "bald": bald_err},
        "equal_within_1e-4": ent_err < 1e-4 and bald_err < 1e-4,
        "seconds_median": {"activeseg_entropy_and_bald": t_ours, "baal_entropy_plus_bald": t_baal},
        "speedup_vs_baal": t_baal / t_ours,
        "per_image_scores": {"entropy": ent.tolist(), "bald": bald.tolist()},
    }
    report["activeseg_streaming_bald_peak_rss_mb"] = peaks
    report["peak_rss_note"] = ("fresh process per T, passes produced one at a time; T = 0 is the process after "
                               "imports; one pass of probabilities is 30 MB")
    print(json.dumps({k: v for k, v in report.items() if k != "per_image_scores"}, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
