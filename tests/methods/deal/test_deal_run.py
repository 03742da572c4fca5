"""DEAL end to end on synthetic data: the loop, the store, the start model with its head, the CLI."""

import json
import sqlite3
import subprocess
import sys
from dataclasses import replace

import pytest
import yaml

from activeseg.commands import load_experiment
from activeseg.errors import ConfigError
from activeseg.experiment import check, prepare, run_config, run_one
from activeseg.store import RunStore


def test_deal_region_run_through_the_loop_and_store(al_config):
    cfg = load_experiment(al_config)
    al = replace(cfg.al, strategy="deal_de")
    exp = prepare(cfg, progress=False)
    assert len(exp.start_model.heads) == 0  # the plain start model stays plain
    run_id = run_one(exp, al, progress=False)
    model, metrics = exp.start_model_for(al)
    assert list(model.heads) == ["difficulty"] and "difficulty_auroc" in metrics["val"]["extra"]
    assert exp.start_model_for(replace(al, strategy="deal_ds_image"))[0] is model  # one start model per head set
    files = sorted(p.name for p in cfg.store.parent.glob("start_model-*.pt"))
    assert len(files) == 2  # plain and with the difficulty head, cached apart
    store = RunStore(cfg.store)
    try:
        steps = store.steps(run_id)
        selected = [g for s in steps for g in s["selected"]]
        assert len(selected) == len(set(selected)) == 24 and all(len(s["selected"]) == 4 for s in steps)
        evals = store.evaluations(run_id)
        val = [e for e in evals if e["split"] == "val"]
        assert [e["budget"] for e in val] == [8, 16, 24]
        for e in val:
            assert set(e["extra"]) == {"difficulty_auroc", "start_difficulty_auroc"}
            assert e["extra"]["start_difficulty_auroc"] == metrics["val"]["extra"]["difficulty_auroc"]
        assert all(e["extra"] is None for e in evals if e["split"] == "test")
        stored = json.loads(store.db.execute("SELECT config FROM runs WHERE run_id=?", (run_id,)).fetchone()[0])
    finally:
        store.close()
    assert stored["al"]["deal"]["de_levels"] == 8 and stored["al"]["deal"]["sub_ratio"] == 0.5  # in full
    assert "deal" not in run_config(cfg, replace(cfg.al, strategy="entropy"))["al"]
    odd = replace(cfg.al, strategy="entropy", deal=replace(cfg.al.deal, de_levels=10))
    assert run_config(cfg, odd) == run_config(cfg, replace(cfg.al, strategy="entropy"))


def test_deal_image_unit_labels_one_whole_image_per_step(al_config):
    cfg = load_experiment(al_config)
    al = replace(cfg.al, strategy="deal_ds_image", regions_per_step=8, budgets=(16, 24))  # 8 regions per image
    run_id = run_one(prepare(cfg, progress=False), al, progress=False)
    store = RunStore(cfg.store)
    try:
        steps = store.steps(run_id)
    finally:
        store.close()
    assert [s["labelled"] for s in steps] == [8, 16, 24]
    images = [{g // 8 for g in s["selected"]} for s in steps]
    assert all(len(i) == 1 for i in images) and len(set.union(*images)) == 3
    assert all(sorted(g % 8 for g in s["selected"]) == list(range(8)) for s in steps)
    # fewer regions per step than an image has would label parts of images: refused before anything runs
    with pytest.raises(ConfigError, match=r"deal_ds_image labels one whole image per step.*al.regions_per_step: 8"):
        check(cfg, ("deal_ds_image",))  # the fixture's al.regions_per_step is 4
    check(replace(cfg, al=replace(cfg.al, regions_per_step=8)), ("deal_ds_image",))
    check(cfg, ("deal_ds", "entropy"))  # region strategies take any number per step


def _cli(*args):
    return [sys.executable, "-m", "activeseg.cli", *map(str, args)]


def test_cli_run_plot_and_show(al_config_cli, tmp_path):
    raw = yaml.safe_load(al_config_cli.read_text())
    raw["al"]["deal"] = {"ds_uncertainty": "entropy"}
    al_config_cli.write_text(yaml.safe_dump(raw))
    store = tmp_path / "runs" / "store.sqlite"
    run = subprocess.run(_cli("run", "--config", al_config_cli, "--strategy", "deal_ds", "--quiet"),
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "deal_ds-s1: 16 regions" in run.stdout
    plot = subprocess.run(_cli("plot", store), capture_output=True, text=True)
    assert plot.returncode == 0, plot.stderr
    evals = json.loads((store.parent / "evaluations.json").read_text())
    assert any(e["extra"] and "difficulty_auroc" in e["extra"] for e in evals)
    assert "difficulty_auroc" in (store.parent / "results.md").read_text()
    with_head = [p for p in store.parent.glob("start_model-*.pt")
                 if "difficulty" in __import__("torch").load(p, weights_only=True)["heads"]]
    assert len(with_head) == 1
    png = tmp_path / "show.png"
    show = subprocess.run(_cli("deal", "show", with_head[0], "--split", "val", "--images", "2", "--out", png,
                               "--device", "cpu"), capture_output=True, text=True)
    assert show.returncode == 0, show.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plain = [p for p in store.parent.glob("start_model-*.pt") if p != with_head[0]][0]
    refused = subprocess.run(_cli("deal", "show", plain, "--out", tmp_path / "x.png", "--device", "cpu"),
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "no difficulty head" in refused.stderr


def test_a_store_written_before_extras_still_reads(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE runs (run_id TEXT PRIMARY KEY, strategy TEXT NOT NULL, seed INTEGER NOT NULL, config TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'new', owner TEXT, created REAL NOT NULL, updated REAL NOT NULL);
        CREATE TABLE steps (run_id TEXT NOT NULL, step INTEGER NOT NULL, labelled INTEGER NOT NULL, selected TEXT NOT NULL,
            scores TEXT NOT NULL, seeds TEXT NOT NULL, seconds_score REAL, seconds_train REAL, created REAL NOT NULL,
            PRIMARY KEY (run_id, step));
        CREATE TABLE evaluations (run_id TEXT NOT NULL, budget INTEGER NOT NULL, split TEXT NOT NULL,
            labelled INTEGER NOT NULL, miou REAL NOT NULL, pixel_accuracy REAL, iou TEXT NOT NULL, class_histogram TEXT,
            epochs INTEGER, seconds REAL, created REAL NOT NULL, PRIMARY KEY (run_id, budget, split));
        INSERT INTO runs VALUES ('random-s1', 'random', 1, '{}', 'done', NULL, 0, 0);
        INSERT INTO evaluations VALUES ('random-s1', 8, 'test', 8, 0.5, 0.9, '{}', 'null', 3, 1.0, 0);
    """)
    db.commit()
    db.close()
    store = RunStore.open_existing(path)
    try:
        assert [e["extra"] for e in store.evaluations()] == [None]
        store.record_evaluation("random-s1", 16, "val", 16, {"miou": 0.6, "iou": {}}, None, 2, 1.0, {"x": 1.0})
        assert [e["extra"] for e in store.evaluations()] == [None, {"x": 1.0}]
    finally:
        store.close()
    old_style = sqlite3.connect(path)  # a process running older code still inserts 11 values
    old_style.execute("INSERT INTO evaluations VALUES ('random-s1', 24, 'test', 24, 0.5, 0.9, '{}', 'null', 3, 1.0, 0)")
    old_style.commit()
    old_style.close()
