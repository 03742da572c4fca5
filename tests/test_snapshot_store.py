"""benchmarks/snapshot_store.py: a committed copy of a live store keeps what a later session needs."""

from __future__ import annotations

from pathlib import Path

from activeseg.store import RunStore

METRICS = {"miou": 0.5, "pixel_accuracy": 0.9, "iou": {"a": 0.5}}


def _store(path: Path) -> None:
    """Two runs: 'done-s1' finished (a step, an evaluation, a curve, a checkpoint), 'open-s1' in progress."""
    store = RunStore(path)
    for run_id in ("done-s1", "open-s1"):
        store.claim_run(run_id, run_id.split("-")[0], 1, {"x": 1})
        store.record_step(run_id, 1, 4, [0, 1], [0.5, 0.4], {}, 0.1, 0.2, {"weights": list(range(100))})
    store.record_evaluation("done-s1", 4, "test", 4, METRICS, [1, 2], 3, 1.0, history=[{"epoch": 0, "loss": 1.0}])
    store.finish_run("done-s1")
    store.close()


def _rows(path: Path) -> dict:
    store = RunStore.open_existing(path)
    try:
        return {r["run_id"]: (r["status"], len(store.steps(r["run_id"])), store.load_checkpoint(r["run_id"]) is not None)
                for r in store.runs()}
    finally:
        store.close()


def test_snapshot_drops_finished_checkpoints_and_keeps_the_open_run_resumable(tmp_path, bench_script):
    _store(tmp_path / "live.sqlite")
    info = bench_script("snapshot_store").snapshot(tmp_path / "live.sqlite", tmp_path / "copy.sqlite")
    assert info["checkpoints_dropped"] == 1 and info["runs_left_out"] == 0
    assert _rows(tmp_path / "copy.sqlite") == {"done-s1": ("done", 1, False), "open-s1": ("running", 1, True)}


def test_finished_only_leaves_the_open_run_out_whole(tmp_path, bench_script):
    _store(tmp_path / "live.sqlite")
    info = bench_script("snapshot_store").snapshot(tmp_path / "live.sqlite", tmp_path / "copy.sqlite", finished_only=True)
    assert info["runs_left_out"] == 1 and info["runs"] == {"done": 1}
    assert _rows(tmp_path / "copy.sqlite") == {"done-s1": ("done", 1, False)}
    store = RunStore.open_existing(tmp_path / "copy.sqlite")
    try:
        assert [c["run_id"] for c in store.training_curves()] == ["done-s1"]
        assert [e["run_id"] for e in store.evaluations()] == ["done-s1"]
    finally:
        store.close()
    assert _rows(tmp_path / "live.sqlite")["open-s1"] == ("running", 1, True)  # the live store is untouched
