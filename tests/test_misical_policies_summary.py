"""benchmarks/misical_policies_summary.py: the training numbers of class policies, from their histories."""

from __future__ import annotations

import json
import sys

import pytest


def _history(cls: str, seed: int) -> dict:
    """20 episodes: Q_c* 1 in the first ten, 4 in the last ten; loss 0.5 at episode 3, 0.1 elsewhere."""
    eps = [{"final_quantity": 1.0 if i < 10 else 4.0, "mean_loss": 0.5 if i == 3 else 0.1,
            "q_abs_mean": 0.2, "q_abs_max": 0.3 + i / 100} for i in range(20)]
    return {"target_class": cls, "seed": seed, "seconds_train": 12.0, "episodes": eps}


def test_summary_numbers_and_files(tmp_path, monkeypatch, bench_script):
    script = bench_script("misical_policies_summary")
    row = script.summarise(_history("pole", 20))
    assert row["quantity_first"] == pytest.approx(1.0) and row["quantity_last"] == pytest.approx(4.0)
    assert row["loss_ratio"] == pytest.approx(1.0)  # the largest loss is in the first five episodes
    assert row["q_abs_max"] == pytest.approx(0.49)
    for cls, seed in (("pole", 50), ("sky", 20)):
        (tmp_path / f"{cls}-s{seed}").mkdir()
        (tmp_path / f"{cls}-s{seed}" / "history.json").write_text(json.dumps(_history(cls, seed)))
    monkeypatch.setattr(sys, "argv", ["x", str(tmp_path), "--out", str(tmp_path / "out" / "policies")])
    script.main()
    rows = json.loads((tmp_path / "out" / "policies.json").read_text())
    assert [(r["class"], r["seed"]) for r in rows] == [("sky", 20), ("pole", 50)]  # seeds first, then classes
    assert "| pole | 50 | 20 | 12.0 | 1.00 | 4.00 | 4.0x | 1.00x | 0.200 | 0.49 |" in (tmp_path / "out" / "policies.md").read_text()
