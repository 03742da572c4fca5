"""The per-class benchmark on a 2-class toy run (spec misical.md sections 6 and 9): every selection is trained
once (class-agnostic baselines once per budget and seed), runs resume from the store, selections are nested
over the budgets and record Q_c, and the report gives integer win counts in [0, C]."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from activeseg.al.strategies import encoded_inputs
from activeseg.commands import load_experiment, load_misical
from activeseg.errors import ConfigError
from activeseg.experiment import run_benchmark as experiment_benchmark
from activeseg.methods.misical import experiment as misical_experiment
from activeseg.methods.misical.benchmark import run_benchmark, start_model_region_stats, write_report
from activeseg.methods.misical.experiment import prepare_misical
from activeseg.regions import RegionGrid
from activeseg.store import RunStore


def test_two_class_benchmark_trains_each_selection_once_and_counts_wins(misical_yaml, al_config, monkeypatch):
    cfg = load_misical(misical_yaml)  # classes disc and box, seeds 1 and 2, budgets 8 and 16
    trainings = []
    real = misical_experiment.final_train_and_evaluate

    def counted(*args, **kwargs):
        trainings.append(kwargs["desc"].split(" (")[0])  # the run id
        return real(*args, **kwargs)

    monkeypatch.setattr(misical_experiment, "final_train_and_evaluate", counted)
    md, js, text = run_benchmark(cfg, progress=False)
    per_run = Counter(trainings)
    agnostic = {f"{m}-s{s}" for m in ("random", "entropy") for s in (1, 2)}
    aware = {f"{m}_{c}-s{s}" for m in ("misical", "pred_quantity") for c in ("disc", "box") for s in (1, 2)}
    assert set(per_run) == agnostic | aware
    assert all(n == 2 for n in per_run.values())  # once per budget: class-agnostic ones are shared by the classes
    assert len(trainings) == 2 * (len(agnostic) + len(aware))

    result = json.loads(js.read_text())
    for budget in ("8", "16"):
        for method, entry in result["budgets"][budget]["methods"].items():
            wins = entry["all"]["wins"]
            assert isinstance(wins, int) and 0 <= wins <= 2
            assert wins + entry["all"]["losses"] + entry["all"]["ties"] == entry["all"]["classes"] == 2
    assert set(result["budgets"]["8"]["methods"]) == {"entropy", "pred_quantity", "misical"}
    assert text.startswith("# MiSiCAL-style (reconstruction)") and "wins vs random" in text
    assert len(result["costs"]["policy_seconds_train"]) == 8  # 4 policy runs x 2 budgets
    assert set(result["costs"]["selection_seconds"]) == {"8", "16", "64"}  # 6168 capped at the pool's 64 regions
    assert all((cfg.store.parent / "policies" / f"{c}-s{s}" / "policy.pt").is_file() for c in ("disc", "box")
               for s in (1, 2))

    store = RunStore(cfg.store)
    try:
        tests = {(e["run_id"], e["budget"]): e for e in store.evaluations() if e["split"] == "test"}
    finally:
        store.close()
    for run_id in per_run:  # nested over the budgets, Q_c of every class and images touched recorded
        small, large = tests[(run_id, 8)]["extra"], tests[(run_id, 16)]["extra"]
        assert len(small["regions"]) == 8 and set(small["regions"]) <= set(large["regions"])
        assert set(large["quantities"]) == {"background", "band", "disc", "box", "dot"}
        assert 1 <= large["images_touched"] <= 8
    assert tests[("misical_disc-s1", 8)]["extra"]["deploy"] == "oneshot_topB"
    assert tests[("random-s1", 8)]["extra"]["regions"] != tests[("random-s2", 8)]["extra"]["regions"]
    assert tests[("entropy-s1", 8)]["extra"]["regions"] == tests[("entropy-s2", 8)]["extra"]["regions"]

    run_benchmark(cfg, progress=False)  # resumed: every run is finished, nothing is trained again
    assert len(trainings) == 2 * (len(agnostic) + len(aware))

    # the cross-check with RALIS-protocol runs of another store (here entropy runs stand in for RALIS's)
    raw = yaml.safe_load(al_config.read_text())
    raw["al"]["budgets"], raw["strategies"], raw["bounds"] = [8, 16], ["entropy"], False
    raw["seeds"] = [1, 2, 3]  # seed 3 has no policy: left out of every column
    raw["al"]["final_train"] = yaml.safe_load(misical_yaml.read_text())["al"]["final_train"]  # the same evaluation
    raw["al"]["final_init"] = "start_model"
    raw["store"] = str(al_config.parent / "ralis" / "store.sqlite")
    al_config.write_text(yaml.safe_dump(raw))
    experiment_benchmark(load_experiment(al_config), progress=False)
    other = RunStore(raw["store"])
    try:
        theirs = {(e["seed"], e["budget"]): e for e in other.evaluations() if e["split"] == "test"}
    finally:
        other.close()
    checked = replace(cfg, ralis_store=Path(raw["store"]), ralis_strategy="entropy", rare_classes=("disc", "box"))
    _, js, text = write_report(checked, ("disc", "box"))
    cross = json.loads(js.read_text())["ralis_crosscheck"]
    area = 48 * 64 / 8
    for budget in (8, 16):
        for c, k in (("disc", 2), ("box", 3)):  # classes background, band, disc, box, dot
            row = cross[str(budget)][c]
            assert row["seeds"] == [1, 2]
            assert row["mean"] == pytest.approx(sum(tests[(f"misical_{c}-s{s}", budget)]["iou"][c] for s in (1, 2)) / 2)
            assert row["baseline_mean"] == pytest.approx(sum(theirs[(s, budget)]["iou"][c] for s in (1, 2)) / 2)
            assert row["ralis_quantity"] == pytest.approx(
                sum(theirs[(s, budget)]["class_histogram"][k] for s in (1, 2)) / 2 / area)
            for s in (1, 2):  # Q_c from labelled pixels is the policy's own record of it
                mine = tests[(f"misical_{c}-s{s}", budget)]
                assert mine["class_histogram"][k] / area == pytest.approx(mine["extra"]["quantities"][c], rel=1e-5)
    assert "Cross-check with RALIS at B = 16 regions" in text
    # runs evaluated otherwise are refused, the key named
    for n, (change, key) in enumerate(((lambda c: c.update(pool_images="x"), "pool_images"),
                                       (lambda c: c["al"]["final_train"].update(lr=0.1), "al.final_train"),
                                       (lambda c: c["al"].pop("final_init"), "al.final_init"))):
        elsewhere = al_config.parent / f"elsewhere{n}.sqlite"
        shutil.copy(raw["store"], elsewhere)
        db = sqlite3.connect(elsewhere)
        for run_id, text in db.execute("SELECT run_id, config FROM runs").fetchall():
            config = json.loads(text)
            change(config)
            db.execute("UPDATE runs SET config=? WHERE run_id=?", (json.dumps(config), run_id))
        db.commit()
        db.close()
        with pytest.raises(ConfigError, match=re.escape(key)):
            write_report(replace(checked, ralis_store=elsewhere), ("disc", "box"))
    with pytest.raises(ConfigError, match=r"ralis_strategy to one of \['entropy'\]"):
        write_report(replace(checked, ralis_strategy="ralis"), ("disc", "box"))
    with pytest.raises(ConfigError, match="camvid_lowstart_ralis.yaml"):  # checked before any training
        run_benchmark(replace(checked, ralis_store=al_config.parent / "missing.sqlite"), progress=False)
    assert len(trainings) == 2 * (len(agnostic) + len(aware))


def test_pred_quantity_counts_the_start_models_argmax_pixels(misical_yaml):
    data = prepare_misical(load_misical(misical_yaml), progress=False)
    exp = data.exp
    entropy, counts = start_model_region_stats(exp.start_model, exp.pool.features, exp.pool.grid,
                                               exp.pool.num_classes, exp.device)
    grid: RegionGrid = exp.pool.grid
    assert entropy.shape == (8, 8) and counts.shape == (8, 8, 5)
    area = grid.region_h * grid.region_w  # 24 x 16: the grid divides 48 x 64 exactly
    assert torch.equal(counts.sum(-1), torch.full((8, 8), float(area), dtype=torch.float64))
    with torch.no_grad():
        exp.start_model.eval()
        feats, size = encoded_inputs(exp.start_model, exp.pool.features, torch.tensor([0]), exp.device)
        pred = exp.start_model.decoder(feats, size).argmax(1)[0]  # [48, 64]
    y0, y1, x0, x1 = grid.box(5)
    expected = torch.bincount(pred[y0:y1, x0:x1].reshape(-1), minlength=5).double()
    assert torch.equal(counts[0, 5], expected)
    assert bool((entropy >= 0).all()) and bool((entropy <= torch.log(torch.tensor(5.0)) + 1e-6).all())
