"""The active-learning loop on synthetic data: invariants, determinism, resume identity."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
import yaml

from activeseg.al import loop
from activeseg.commands import load_experiment
from activeseg.experiment import prepare, run_benchmark, run_one
from activeseg.store import RunStore


def _results(store_path, run_id):
    store = RunStore(store_path)
    try:
        steps = [(s["step"], s["selected"], s["scores"]) for s in store.steps(run_id)]
        evals = [(e["budget"], e["split"], e["labelled"], e["miou"]) for e in store.evaluations(run_id)]
        return steps, evals
    finally:
        store.close()


@pytest.mark.parametrize("strategy", ["random", "entropy", "margin", "bald"])
def test_invariants(al_config, strategy):
    cfg = load_experiment(al_config)
    cfg = replace(cfg, al=replace(cfg.al, strategy=strategy))
    run_id = run_one(prepare(cfg, progress=False), cfg.al, progress=False)
    steps, evals = _results(cfg.store, run_id)
    selected = [g for _, sel, _ in steps for g in sel]
    assert all(len(sel) == 4 for _, sel, _ in steps)  # exactly K per step
    assert len(selected) == len(set(selected)) == 24  # never selected twice; stops at the last budget
    assert [s for s, _, _ in steps] == list(range(1, 7))
    assert all(0 <= g < 64 for g in selected)
    test_evals = [(b, n) for b, split, n, _ in evals if split == "test"]
    assert test_evals == [(8, 8), (16, 16), (24, 24)]


def test_same_seed_same_selections_and_metrics(al_config, tmp_path):
    cfg = load_experiment(al_config)
    run_one(prepare(cfg, progress=False), cfg.al, progress=False)
    other = replace(cfg, store=tmp_path / "other" / "store.sqlite")
    run_one(prepare(other, progress=False), other.al, progress=False)
    assert _results(cfg.store, cfg.al.run_id) == _results(other.store, other.al.run_id)
    third = replace(cfg, store=tmp_path / "third" / "store.sqlite", al=replace(cfg.al, seed=2))
    run_one(prepare(third, progress=False), third.al, progress=False)
    assert _results(third.store, "entropy-s2")[0] != _results(cfg.store, cfg.al.run_id)[0]


def test_resume_after_interrupt_is_identical(al_config, tmp_path, monkeypatch):
    cfg = load_experiment(al_config)
    exp = prepare(cfg, progress=False)
    reference = replace(cfg, store=tmp_path / "ref" / "store.sqlite")
    run_one(prepare(reference, progress=False), reference.al, progress=False)

    original = loop.final_train_and_evaluate
    calls = {"n": 0}

    def dies_in_second_final_training(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # interrupted mid-way, after the step of budget 16 was stored
        return original(*args, **kwargs)

    monkeypatch.setattr(loop, "final_train_and_evaluate", dies_in_second_final_training)
    with pytest.raises(KeyboardInterrupt):
        run_one(exp, cfg.al, progress=False)
    monkeypatch.setattr(loop, "final_train_and_evaluate", original)
    partial_steps, partial_evals = _results(cfg.store, cfg.al.run_id)
    assert len(partial_steps) == 4 and len(partial_evals) == 2  # budget 8 evaluated, 16 not yet
    run_one(prepare(cfg, progress=False), cfg.al, progress=False)  # a fresh process would do the same
    assert _results(cfg.store, cfg.al.run_id) == _results(reference.store, reference.al.run_id)


def _cli(*args):
    return [sys.executable, "-m", "activeseg.cli", *map(str, args)]


def test_kill_9_then_resume_is_identical(al_config, tmp_path):
    raw = yaml.safe_load(al_config.read_text())
    raw["al"]["mc_passes"] = 150  # slower steps, so that the kill lands mid-run
    al_config.write_text(yaml.safe_dump(raw))
    cfg = load_experiment(al_config)
    reference = tmp_path / "ref.sqlite"
    subprocess.run(_cli("run", "--config", al_config, "--strategy", "bald", "--store", reference, "--quiet"),
                   check=True, capture_output=True)
    store = cfg.store
    proc = subprocess.Popen(_cli("run", "--config", al_config, "--strategy", "bald", "--quiet"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_after = None
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if store.exists():
            try:
                n = sqlite3.connect(store, timeout=1).execute("SELECT COUNT(*) FROM steps").fetchone()[0]
            except sqlite3.OperationalError:
                n = 0
            if n >= 2:
                os.kill(proc.pid, signal.SIGKILL)
                killed_after = n
                break
        time.sleep(0.01)
    proc.wait()
    assert killed_after is not None and killed_after < 6, "the run finished before it could be killed"
    again = subprocess.run(_cli("run", "--config", al_config, "--strategy", "bald", "--quiet"), capture_output=True,
                           text=True)
    assert again.returncode == 2 and "--resume" in again.stderr
    subprocess.run(_cli("run", "--config", al_config, "--strategy", "bald", "--resume", "--quiet"),
                   check=True, capture_output=True)
    assert _results(store, "bald-s1") == _results(reference, "bald-s1")


def test_two_processes_share_one_store(al_config):
    cfg = load_experiment(al_config)
    procs = [subprocess.Popen(_cli("run", "--config", al_config, "--strategy", s, "--quiet"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for s in ("random", "margin")]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    db = sqlite3.connect(cfg.store)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT run_id, COUNT(*) FROM steps GROUP BY run_id ORDER BY run_id").fetchall() == [
        ("margin-s1", 6), ("random-s1", 6)]
    assert db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 12


def test_benchmark_grid_skips_finished_runs_and_measures_bounds(al_config):
    cfg = load_experiment(al_config)
    run_benchmark(cfg, progress=False)
    store = RunStore(cfg.store)
    runs = {r["run_id"]: r["status"] for r in store.runs()}
    assert runs == {"random-s1": "done", "random-s2": "done", "entropy-s1": "done", "entropy-s2": "done",
                    "lower_bound": "done", "upper_bound": "done"}
    upper = [e for e in store.evaluations("upper_bound") if e["split"] == "test"][0]
    assert upper["labelled"] == 64
    # every final training's curve is kept: one per run and budget, the val record its best epoch's mIoU
    trainings = store.training_curves()
    assert {(c["run_id"], c["budget"]) for c in trainings} == (
        {(f"{s}-s{k}", b) for s in ("random", "entropy") for k in (1, 2) for b in cfg.al.budgets}
        | {("upper_bound", 64)})
    val = {(e["run_id"], e["budget"]): e["miou"] for e in store.evaluations() if e["split"] == "val"}
    for c in trainings:
        epochs = [h for h in c["history"] if h["epoch"] >= 0]
        assert epochs and all(h["loss"] > 0 for h in epochs)
        assert max(h["val_miou"] for h in c["history"] if h["val_miou"] is not None) == pytest.approx(
            val[c["run_id"], c["budget"]], abs=1e-12)
    stamp = store.db.execute("SELECT MAX(created) FROM evaluations").fetchone()[0]
    store.close()
    run_benchmark(cfg, progress=False)  # everything finished: nothing is recomputed
    store = RunStore(cfg.store)
    assert store.db.execute("SELECT MAX(created) FROM evaluations").fetchone()[0] == stamp
    store.close()


def test_changed_config_is_refused_for_an_existing_run(al_config):
    cfg = load_experiment(al_config)
    run_one(prepare(cfg, progress=False), cfg.al, progress=False)
    changed = replace(cfg, al=replace(cfg.al, candidates_per_pool=2))
    with pytest.raises(RuntimeError, match="another configuration"):
        run_one(prepare(changed, progress=False), changed.al, progress=False)


def test_final_training_starts_from_the_start_model_with_the_start_set(al_config, monkeypatch):
    """final_init: start_model + final_include_start: every budget's final training begins from the start
    model's weights (not the step-by-step fine-tuned model) and trains on the start images too."""
    cfg = load_experiment(al_config)
    cfg = replace(cfg, al=replace(cfg.al, strategy="random", budgets=(8, 16), final_init="start_model",
                                  final_include_start=True,
                                  final_train=replace(cfg.al.final_train, crop=None, eval_initial=True)))
    exp = prepare(cfg, progress=False)
    start_weights = {k: v.clone() for k, v in exp.start_model.state_dict().items()}
    calls = []
    real_fit = loop.fit

    def spy(model, source, *args, indices=None, keep=None, **kwargs):
        calls.append({"same_as_start": all(torch.equal(v, start_weights[k]) for k, v in model.state_dict().items()),
                      "kind": type(source).__name__, "first": len(source.first) if hasattr(source, "first") else 0,
                      "indices": indices.tolist(), "labels": source.labels[indices].clone()})
        return real_fit(model, source, *args, indices=indices, keep=keep, **kwargs)

    monkeypatch.setattr(loop, "fit", spy)
    run_one(exp, cfg.al, progress=False)
    assert len(calls) == 2
    n_start = 4
    for call, budget in zip(calls, (8, 16)):
        assert call["same_as_start"]  # not the model fine-tuned during the steps
        assert call["kind"] == "ConcatSource" and call["first"] == n_start
        assert call["indices"][:n_start] == list(range(n_start))  # every start image, fully labelled
        start_labels, pool_labels = call["labels"][:n_start], call["labels"][n_start:]
        assert (start_labels != 255).all()
        assert (pool_labels != 255).sum() == budget * 24 * 16  # the labelled regions (24 x 16 px) only
    # the run's stored config records the choices (new options are written when they are not default)
    store = RunStore(cfg.store)
    stored = store.db.execute("SELECT config FROM runs WHERE run_id='random-s1'").fetchone()[0]
    store.close()
    assert '"final_init": "start_model"' in stored and '"final_include_start": true' in stored
    assert '"eval_initial": true' in stored


@pytest.mark.parametrize("on", ["new_only", "all_labelled", "all_labelled_and_start"])
def test_step_fine_tuning_covers_what_step_train_on_says(al_config, monkeypatch, on):
    """Q11: each step's epoch covers the new regions only, every labelled image, or those plus the start
    images; the option is recorded in the run's config when not the reference's."""
    cfg = load_experiment(al_config)
    cfg = replace(cfg, al=replace(cfg.al, strategy="random", budgets=(16,), regions_per_step=8, step_train_on=on))
    exp = prepare(cfg, progress=False)
    seen = []
    real = loop.make_batches

    def spy(source, indices, *args, **kwargs):
        seen.append((type(source).__name__, indices.tolist(), (source.labels[indices] != 255).sum().item()))
        return real(source, indices, *args, **kwargs)

    monkeypatch.setattr(loop, "make_batches", spy)
    monkeypatch.setattr(loop, "_evaluate_due_budgets", lambda *a, **k: None)
    run_one(exp, cfg.al, progress=False)
    store = RunStore(cfg.store)
    steps = store.steps(f"random-s{cfg.al.seed}")
    stored = store.db.execute("SELECT config FROM runs").fetchone()[0]
    store.close()
    assert len(seen) == len(steps) == 2
    n_start = len(exp.pool.start)
    R = exp.pool.grid.regions_per_image
    second_new = torch.tensor(steps[1]["selected"])
    labelled = torch.tensor(steps[0]["selected"] + steps[1]["selected"])
    kind, indices, labelled_px = seen[1]
    if on == "new_only":  # one sample per new region (an image may come twice)
        assert kind != "ConcatSource" and sorted(indices) == sorted((second_new // R).tolist())
    elif on == "all_labelled":  # one sample per image holding labelled regions
        assert kind != "ConcatSource" and indices == torch.unique(labelled // R).tolist()
        assert labelled_px == 16 * 24 * 16  # every labelled region (24 x 16 px) and nothing else
    else:
        assert kind == "ConcatSource" and indices[:n_start] == list(range(n_start))
        assert indices[n_start:] == (torch.unique(labelled // R) + n_start).tolist()
    assert (f'"step_train_on": "{on}"' in stored) == (on != "new_only")


def test_old_run_configs_keep_matching():
    """Options added later enter a stored config only when they are not at their default, so stores
    written before them still resume."""
    from activeseg.config import to_dict

    d = to_dict(loop.ALConfig())
    assert "final_init" not in d and "final_include_start" not in d and "optimizer" not in d["final_train"]
    d = to_dict(loop.ALConfig(final_init="start_model"))
    assert d["final_init"] == "start_model"


def test_start_model_is_shared_between_stores_by_content(tmp_path, al_config):
    import yaml

    from activeseg.commands import load_experiment, run_al
    from activeseg.experiment import prepare

    cfg = yaml.safe_load(al_config.read_text())
    cfg["cache_dir"] = str(tmp_path / "cache" / "features")
    cfg["al"]["budgets"] = [8]
    al_config.write_text(yaml.safe_dump(cfg))
    first = load_experiment(al_config)
    run_al(first, progress=False)
    shared = list((tmp_path / "cache" / "start_models").glob("start_model-*.pt"))
    assert len(shared) == 1 and not list((tmp_path / "runs").glob("start_model-*.pt"))
    stamp = shared[0].stat().st_mtime_ns
    from dataclasses import replace

    exp = prepare(replace(first, store=tmp_path / "other" / "store.sqlite"), progress=False)  # another store
    assert shared[0].stat().st_mtime_ns == stamp  # reused, not retrained
    assert exp.start_metrics == prepare(first, progress=False).start_metrics
