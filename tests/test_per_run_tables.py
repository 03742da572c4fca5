"""benchmarks/per_run_tables.py: every run's mIoU per budget and the per-class IoU as mean ± std."""

from __future__ import annotations

from pathlib import Path

from activeseg.store import RunStore


def _evaluations(path: Path) -> list[dict]:
    """Two seeds of 'random' at 10 regions (mIoU 0.40, 0.50; class a 0.2, 0.4), a lower bound at 0."""
    store = RunStore(path)
    for seed, miou, a in ((1, 0.40, 0.2), (2, 0.50, 0.4)):
        run = f"random-s{seed}"
        store.claim_run(run, "random", seed, {})
        store.record_evaluation(run, 10, "test", 10, {"miou": miou, "iou": {"a": a, "b": None}}, [1000, 2000, 500],
                                1, 1.0)
        store.record_evaluation(run, 10, "val", 10, {"miou": 0.9, "iou": {"a": 0.9, "b": 0.9}}, None, 1, 1.0)
        store.finish_run(run)
    store.claim_run("lower_bound", "lower_bound", 0, {})
    store.record_evaluation("lower_bound", 0, "test", 0, {"miou": 0.3, "iou": {"a": 0.1, "b": 0.5}}, None, 0, 0.0)
    store.finish_run("lower_bound")
    evals = store.evaluations()
    store.close()
    return evals


def test_per_run_and_per_class_tables(tmp_path, bench_script):
    lines = bench_script("per_run_tables").per_run_lines(_evaluations(tmp_path / "s.sqlite"))
    text = "\n".join(lines)
    assert "| random | 40.0 / 50.0 |" in lines  # each seed's test mIoU, val left out
    assert "| strategy | 10 regions |" in lines  # the bound's budget 0 is not a column
    assert "lower_bound: 30.0 (0 regions labelled, one run)" in lines
    # class a: mean 30.0, sample std 14.1; class b has no IoU; labelled pixels without void: 1,000 + 2,000 (void 500 left out)
    assert "| random | 30.0 ± 14.1 | - | 3k |" in lines
    assert "90.0" not in text
