"""A simulated project driven through export files reaches the labelled state and the models of
`activeseg run` with the same settings and seed."""

from __future__ import annotations

import pytest

from activeseg.config import from_dict
from activeseg.experiment import ExperimentConfig, prepare, run_one
from activeseg.project.session import load_session
from activeseg.project.simulate import simulate
from activeseg.project.workspace import Project
from activeseg.store import RunStore


def run_experiment(tmp_path, native_dir, strategy: str, s: dict) -> RunStore:
    (tmp_path / "start.txt").write_text("\n".join(s["start"]))
    (tmp_path / "pool.txt").write_text("\n".join(s["pool"]))
    cfg = from_dict(ExperimentConfig, {
        "data": {"dataset": str(native_dir), "height": 48, "width": 64}, "model": s["model"], "start_train": s["start_train"],
        "al": {**s["al"], "strategy": strategy, "seed": 1, "budgets": [8, 16]},
        "start_images": str(tmp_path / "start.txt"), "pool_images": str(tmp_path / "pool.txt"), "test_size": None,
        "region_rows": 2, "region_cols": 4, "store": str(tmp_path / "runs" / "store.sqlite"), "device": "cpu",
        "cache_dir": None})
    exp = prepare(cfg, progress=False)
    run_one(exp, cfg.al, progress=False)
    return RunStore(cfg.store)


@pytest.mark.parametrize("strategy,fmt", [("entropy", "labelstudio"), ("random", "png_folder")])
def test_simulated_project_matches_run(tmp_path, native_dir, project_inputs, project_settings, strategy, fmt):
    store = run_experiment(tmp_path, native_dir, strategy, project_settings)
    run_id = f"{strategy}-s1"
    steps = store.steps(run_id)
    evals = {e["budget"]: e for e in store.evaluations(run_id) if e["split"] == "val"}

    p = project_inputs
    project = Project.init(tmp_path / "proj", p["images"], p["classes"], p["labels"], p["val"], p["config"])
    records = simulate(load_session(project, progress=False), p["truth"], (8, 16), strategy, 4, fmt, progress=False)

    queries = list(project.store.queries().values())
    R = 8
    index = {r["image_id"]: r["idx"] for r in project.pool_images()}
    for step in steps:
        got = [index[q["image_id"]] * R + q["region_id"] for q in queries if q["round"] == step["step"]]
        assert got == step["selected"], f"round {step['step']}"
    assert all(q["status"] == "labelled" for q in queries)
    assert [r["labelled_regions"] for r in records] == [8, 16]
    for r in records:
        assert r["val"]["miou"] == pytest.approx(evals[r["labelled_regions"]]["miou"], abs=1e-9)
