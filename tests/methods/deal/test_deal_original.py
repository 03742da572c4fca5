"""DEAL's original protocol on synthetic data: whole images per round, a model trained from scratch
each round, one evaluation per round, start sets shared by the strategies of a seed, resume identity."""

import copy
import json
import math
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from activeseg.al import loop
from activeseg.al.state import LabelledState
from activeseg.al.strategies import SelectionContext
from activeseg.commands import load_experiment
from activeseg.errors import ConfigError
from activeseg.experiment import check, prepare, run_benchmark, run_one
from activeseg.methods import build_policy, head_specs
from activeseg.methods.deal import protocol
from activeseg.methods.deal.config import DealConfig, OriginalProtocolConfig
from activeseg.methods.deal import config as deal_config
from activeseg.methods.deal.scores import difficulty_entropy, difficulty_score
from activeseg.models import ModelConfig, build_model
from activeseg.regions import RegionGrid
from activeseg.report import budget_unit
from activeseg.store import RunStore
from activeseg.train.sources import ImageSource

R = 8  # regions per image: a 2 x 4 grid


@pytest.fixture
def original_config(tmp_path, synthetic_dir):
    """The 12 synthetic train images as the pool: 4 start images, then 2 rounds of 2 images (4, 6, 8)."""
    cfg = {
        "data": {"dataset": str(synthetic_dir), "height": 48, "width": 64},
        "model": {"encoder": "tiny", "pretrained": False, "decoder_width": 16},
        "start_images": "none", "pool_images": "all",
        "al": {"strategy": "entropy", "seed": 1,
               "deal": {"protocol": "deal_original", "sub_ratio": 0.5,
                        "original": {"start_images": 4, "images_per_round": 2, "rounds": 2, "epochs_per_round": 3,
                                     "val_every": 2, "batch_size": 4, "lr": 0.01}}},
        "test_size": None, "region_rows": 2, "region_cols": 4,
        "strategies": ["deal_de_image", "random"], "seeds": [1], "bounds": False,
        "store": str(tmp_path / "runs" / "store.sqlite"), "device": "cpu", "cache_dir": None,
    }
    path = tmp_path / "original.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _nan_free(xs):
    return [None if math.isnan(x) else x for x in xs]


def _results(store_path, run_id):
    store = RunStore(store_path)
    try:
        steps = [(s["step"], s["labelled"], s["selected"], _nan_free(s["scores"])) for s in store.steps(run_id)]
        evals = [(e["budget"], e["split"], e["labelled"], e["miou"], e["epochs"]) for e in store.evaluations(run_id)]
        return steps, evals
    finally:
        store.close()


@pytest.mark.parametrize("strategy", ["deal_de_image", "entropy"])
def test_each_round_labels_whole_images_and_is_evaluated(original_config, strategy):
    cfg = load_experiment(original_config)
    run_id = run_one(prepare(cfg, progress=False), replace(cfg.al, strategy=strategy), progress=False)
    steps, evals = _results(cfg.store, run_id)
    assert [(s, n) for s, n, _, _ in steps] == [(1, 32), (2, 48), (3, 64)]
    images = [sorted({g // R for g in sel}) for _, _, sel, _ in steps]
    assert [len(i) for i in images] == [4, 2, 2] and len(set().union(*images)) == 8  # disjoint
    for (_, _, sel, scores), imgs in zip(steps, images):
        assert sorted(sel) == [i * R + r for i in imgs for r in range(R)]  # every region of each image
        assert len(scores) == len(sel)
    assert steps[0][3] == [None] * 32  # the start set is drawn, not scored
    for _, _, sel, scores in steps[1:]:  # each image's regions carry its score; best first
        per_image = [scores[j] for j in range(0, len(sel), R)]
        assert all(scores[j] == scores[j - j % R] for j in range(len(sel))) and per_image == sorted(per_image)[::-1]
    store = RunStore(cfg.store)
    try:
        labelled = store.load_checkpoint(run_id)[1]["state"]["labelled_step"]
        stored = store.run_configs()[run_id]
        extras = [e["extra"] for e in store.evaluations(run_id) if e["split"] == "val"]
        trainings = store.training_curves()
    finally:
        store.close()
    whole = labelled.gt(0).all(1)
    assert labelled.gt(0).sum().item() == 64 and whole.sum().item() == 8 and not labelled[~whole].any()
    assert [(b, split, n, epochs) for b, split, n, _, epochs in evals] == [
        (4, "test", 4, 3), (4, "val", 4, 3), (6, "test", 6, 3), (6, "val", 6, 3), (8, "test", 8, 3), (8, "val", 8, 3)]
    assert all(e["best_epoch"] in (1, 2) for e in extras)  # epochs 1 and 2 (the last) are validated
    # each round's training curve is kept: 3 epochs, validated at epochs 1 and 2, the best one the record's
    assert [c["budget"] for c in trainings] == [4, 6, 8]
    for c, e in zip(trainings, extras):
        assert [h["epoch"] for h in c["history"]] == [0, 1, 2] and c["history"][0]["val_miou"] is None
        best = max(h["val_miou"] for h in c["history"][1:])
        assert min(h["epoch"] for h in c["history"][1:] if h["val_miou"] == best) == e["best_epoch"]  # first best
    assert all(("difficulty_auroc" in e) == strategy.startswith("deal") for e in extras)
    original = stored["al"]["deal"]["original"]
    assert stored["al"]["deal"]["protocol"] == "deal_original" and stored["al"]["deal"]["sub_ratio"] == 0.5
    assert (original["start_images"], original["images_per_round"], original["rounds"]) == (4, 2, 2)
    assert (original["epochs_per_round"], original["val_every"], original["optimizer"], original["lr"]) == (
        3, 2, "adamw", 0.01)
    assert original["augmentation"] == "flip"  # the deviation from the paper's augmentation, recorded
    assert stored["budget_unit"] == "images" and stored["pool_images_count"] == 12
    assert not {"budgets", "final_train", "step_train"} & set(stored["al"]) and "start_train" not in stored


def test_each_round_trains_a_fresh_model(original_config, monkeypatch):
    cfg = load_experiment(original_config)
    al = replace(cfg.al, strategy="deal_ds_image")
    exp = prepare(cfg, progress=False)
    calls = []
    real_fit = loop.fit

    def spy(model, train, val, num_classes, train_cfg, *args, indices=None, **kwargs):
        before, stream = copy.deepcopy(model.state_dict()), torch.initial_seed()
        result = real_fit(model, train, val, num_classes, train_cfg, *args, indices=indices, **kwargs)
        calls.append((before, copy.deepcopy(model.state_dict()), indices.tolist(), train_cfg))
        streams.append(stream)
        return result

    streams = []

    monkeypatch.setattr(loop, "fit", spy)
    run_one(exp, al, progress=False)
    fresh = exp.fresh_model(head_specs(al.strategy, al, 5), protocol.init_seed(al.seed)).state_dict()
    assert [len(idx) for _, _, idx, _ in calls] == [4, 6, 8]  # every labelled image, whole
    # the global stream (dropout) is seeded per round after the model is built, not left at the init seed
    assert streams == [loop.step_seeds(al.seed, protocol.TRAIN_SEEDS + n)["torch"] for n in (4, 6, 8)]
    assert protocol.init_seed(al.seed) not in streams
    for r, (before, _, idx, train_cfg) in enumerate(calls):
        assert all(torch.equal(before[k], fresh[k]) for k in fresh)  # the same fresh init every round
        assert (train_cfg.max_epochs, train_cfg.val_every, train_cfg.patience, train_cfg.crop, train_cfg.flip) == (
            3, 2, 0, None, True)
        if r:
            previous = calls[r - 1][1]
            assert not torch.equal(before["decoder.classifier.weight"], previous["decoder.classifier.weight"])
            assert set(calls[r - 1][2]) < set(idx)
    encoder = {k: v for k, v in fresh.items() if k.startswith("encoder.")}
    assert all(torch.equal(v, exp.start_model.state_dict()[k]) for k, v in encoder.items())  # the cached encoder


def test_candidates_are_scored_by_the_rounds_trained_model(original_config, monkeypatch):
    cfg = load_experiment(original_config)
    al = replace(cfg.al, strategy="deal_de_image")
    exp = prepare(cfg, progress=False)
    trained, scoring = [], []
    real_fit, real_select = loop.fit, protocol.select_images

    def fit_spy(model, *args, **kwargs):
        result = real_fit(model, *args, **kwargs)  # leaves the best validated epoch's weights in the model
        trained.append((copy.deepcopy(model.state_dict()), result.best_epoch))
        return result

    def select_spy(policy, ctx, candidates, n):
        scoring.append(copy.deepcopy(ctx.model.state_dict()))
        return real_select(policy, ctx, candidates, n)

    monkeypatch.setattr(loop, "fit", fit_spy)
    monkeypatch.setattr(protocol, "select_images", select_spy)
    run_one(exp, al, progress=False)
    fresh = exp.fresh_model(head_specs(al.strategy, al, 5), protocol.init_seed(al.seed)).state_dict()
    assert len(trained) == 3 and len(scoring) == 2  # rounds 0 and 1 select; round 2 is only evaluated
    for r, used in enumerate(scoring):  # round r's candidates: round r's trained model, not a fresh one
        weights, best_epoch = trained[r]
        assert best_epoch in (1, 2)
        assert used.keys() == weights.keys() and all(torch.equal(used[k], weights[k]) for k in weights)
        assert not torch.equal(used["decoder.classifier.weight"], fresh["decoder.classifier.weight"])
    assert not torch.equal(scoring[0]["decoder.classifier.weight"], scoring[1]["decoder.classifier.weight"])


def test_seeds_share_start_sets_across_strategies(original_config):
    cfg = load_experiment(original_config)
    run_benchmark(replace(cfg, strategies=("random", "entropy"), seeds=(1, 2)), progress=False)
    res = {(s, seed): _results(cfg.store, f"{s}-s{seed}") for s in ("random", "entropy") for seed in (1, 2)}
    start = {key: r[0][0][2] for key, r in res.items()}
    assert start[("random", 1)] == start[("entropy", 1)] and start[("random", 2)] == start[("entropy", 2)]
    assert start[("random", 1)] != start[("random", 2)]
    for seed in (1, 2):  # same start set, same fresh model, same training: the first point is shared
        assert res[("random", seed)][1][:2] == res[("entropy", seed)][1][:2]


def test_resume_after_an_interrupt_is_identical(original_config, tmp_path, monkeypatch):
    cfg = load_experiment(original_config)
    al = replace(cfg.al, strategy="deal_de_image")
    reference = replace(cfg, store=tmp_path / "ref" / "store.sqlite")
    run_one(prepare(reference, progress=False), al, progress=False)
    expected = _results(reference.store, al.run_id)

    def dies_on_second_call(name):
        real, calls = getattr(protocol, name), {"n": 0}

        def f(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        monkeypatch.setattr(protocol, name, f)
        return real

    # 1. during the second round's training: its selection is stored, its evaluation not
    real = dies_on_second_call("final_train_and_evaluate")
    with pytest.raises(KeyboardInterrupt):
        run_one(prepare(cfg, progress=False), al, progress=False)
    monkeypatch.setattr(protocol, "final_train_and_evaluate", real)
    steps, evals = _results(cfg.store, al.run_id)
    assert len(steps) == 2 and [e[0] for e in evals] == [4, 4]
    run_one(prepare(cfg, progress=False), al, progress=False)
    assert _results(cfg.store, al.run_id) == expected

    # 2. between a round's evaluation and its selection: that model is trained again to select
    other = replace(cfg, store=tmp_path / "other" / "store.sqlite")
    real = dies_on_second_call("select_images")
    with pytest.raises(KeyboardInterrupt):
        run_one(prepare(other, progress=False), al, progress=False)
    monkeypatch.setattr(protocol, "select_images", real)
    steps, evals = _results(other.store, al.run_id)
    assert len(steps) == 2 and [e[0] for e in evals] == [4, 4, 6, 6]
    run_one(prepare(other, progress=False), al, progress=False)
    assert _results(other.store, al.run_id) == expected


def test_image_scores_and_the_top_images(synthetic_dir):
    from activeseg.data.folder import load_split
    from activeseg.al.scoring import entropy

    torch.manual_seed(0)
    split = load_split(synthetic_dir, "train", (48, 64), progress=False)
    model = build_model(ModelConfig(encoder="tiny", pretrained=False, decoder_width=16), 5,
                        {"difficulty": DealConfig().head_spec()}).eval()
    pool = ImageSource(split.images, split.labels)
    grid = RegionGrid.from_counts(48, 64, 2, 4)
    content = torch.ones(12, 48, 64, dtype=torch.bool)
    content[:, :, 40:] = False  # padding on the right: never part of a score

    def ctx(content=None, seed=0):
        return SelectionContext(model, pool, LabelledState(12, grid), torch.device("cpu"), np.random.default_rng(0),
                                torch.Generator().manual_seed(seed), content=content)

    images = torch.tensor([0, 3, 7])
    with torch.no_grad():
        out = model.outputs(split.images[images])
    px = entropy(out["logits"].softmax(1)).double()  # [3, H, W]
    scores = build_policy("entropy").image_scores(ctx(), images)
    assert torch.allclose(scores, px.mean((1, 2)), atol=1e-9)
    padded = build_policy("entropy").image_scores(ctx(content), images)
    assert torch.allclose(padded, px[:, :, :40].mean((1, 2)), atol=1e-9)
    ds = build_policy("deal_ds_image").image_scores(ctx(), images)
    whole = torch.zeros(48, 64, dtype=torch.long)
    assert torch.allclose(ds, difficulty_score(out["difficulty"], whole, 1)[:, 0], atol=1e-9)
    de = build_policy("deal_de_image").image_scores(ctx(), images)
    direct = difficulty_entropy(out["difficulty"], whole, 1, levels=8, value_range="unit_minmax")[:, 0]
    assert torch.allclose(de, direct, atol=1e-9) and de.min() > 0  # the whole image's DE, not a constant map's
    padded_de = build_policy("deal_de_image").image_scores(ctx(content), images)  # DE of the image pixels only
    direct = difficulty_entropy(out["difficulty"][:, :, :40], whole[:, :40], 1, levels=8, value_range="unit_minmax")
    assert torch.allclose(padded_de, direct[:, 0], atol=1e-9) and not torch.allclose(padded_de, de)

    def random(seed, content=None):
        return build_policy("random").image_scores(ctx(content, seed), candidates)

    candidates = torch.tensor([9, 0, 4, 7, 2, 11])
    assert not torch.equal(random(0), random(1))  # the scores come from the step's generator
    assert torch.equal(random(0), torch.rand(6, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert torch.equal(random(0, content), random(0))  # one draw per image: padding cannot bias it
    for seed in (0, 1):
        picked, _ = protocol.select_images(build_policy("random"), ctx(seed=seed), candidates, len(candidates))
        assert sorted(picked.tolist()) == sorted(candidates.tolist())  # a ranking of every candidate, once
    orders = [protocol.select_images(build_policy("random"), ctx(seed=s), candidates, 6)[0].tolist() for s in (0, 1)]
    assert orders[0] != orders[1]

    class Fixed:
        def image_scores(self, ctx, images):
            return torch.tensor([0.2, 0.9, 0.5, 0.9, 0.1], dtype=torch.float64)

    picked, top = protocol.select_images(Fixed(), ctx(), torch.tensor([10, 11, 2, 5, 8]), 3)
    assert picked.tolist() == [11, 5, 2] and top.tolist() == [0.9, 0.9, 0.5]  # ties: the earlier candidate


def test_candidates_are_a_share_of_the_open_images():
    state = LabelledState(10, RegionGrid.from_counts(48, 64, 2, 4))
    state.label(torch.arange(0, 3 * R), 1)  # images 0-2 labelled whole
    state.label(torch.tensor([3 * R]), 2)  # one region of image 3: not open either
    assert protocol.open_images(state).tolist() == [4, 5, 6, 7, 8, 9]
    rng = np.random.default_rng(0)
    half = protocol.candidate_images(state, 0.5, 2, rng)
    assert len(half) == 3 and set(half.tolist()) <= {4, 5, 6, 7, 8, 9}
    assert len(protocol.candidate_images(state, 0.1, 2, rng)) == 2  # at least the images to label
    assert protocol.candidate_images(state, 1.0, 2, rng).tolist() == [4, 5, 6, 7, 8, 9]


def test_configuration_errors_name_the_key(original_config):
    cfg = load_experiment(original_config)
    with pytest.raises(ConfigError, match=r"does not score images; use one of .*deal_de_image"):
        replace(cfg.al, strategy="deal_de")
    with pytest.raises(ConfigError, match="set start_images: none"):
        replace(cfg, start_images="random:4")
    with pytest.raises(ConfigError, match="start_images: none leaves the start model"):
        replace(cfg, al=replace(cfg.al, deal=replace(cfg.al.deal, protocol="ralis", original=OriginalProtocolConfig())))
    with pytest.raises(ConfigError, match="bounds: 'lower'"):
        replace(cfg, bounds="lower")
    with pytest.raises(ConfigError, match=r"labels up to 14 images .* the pool \('all'\) has 12"):
        check(replace(cfg, al=replace(cfg.al, deal=replace(cfg.al.deal, original=OriginalProtocolConfig(
            start_images=4, images_per_round=2, rounds=5)))))
    with pytest.raises(ConfigError, match="does not score images"):
        check(replace(cfg, strategies=("random", "deal_ds")))
    assert not cfg.store.exists()  # nothing written
    with pytest.raises(ConfigError, match="original.lr_schedule"):
        OriginalProtocolConfig(lr_schedule="step")


@pytest.mark.parametrize("key, value, remedy", [("momentum", -0.1, r" is -0\.1; use a value in \[0, 1\)"),
                                                ("momentum", 1.0, r" is 1\.0; use a value in \[0, 1\)"),
                                                ("weight_decay", -1e-4, r" is -0\.0001; use 0 or more"),
                                                ("augmentation", "crop", r"'.*expected 'flip' or 'none'")])
def test_training_options_are_checked_at_config_load(original_config, key, value, remedy):
    raw = yaml.safe_load(original_config.read_text())
    raw["al"]["deal"]["original"][key] = value
    original_config.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=rf"al\.deal\.original\.{key}{remedy}"):
        load_experiment(original_config)  # before any run is claimed: torch would raise only in training
    assert not (original_config.parent / "runs").exists()


def test_every_training_check_runs_at_config_load(monkeypatch):
    def refuses(**kwargs):
        raise ConfigError("train.something is wrong; fix it")

    monkeypatch.setattr(deal_config, "TrainConfig", refuses)
    with pytest.raises(ConfigError, match="al.deal.original gives an invalid training: train.something"):
        OriginalProtocolConfig()


def test_augmentation_option():
    with pytest.raises(ConfigError, match=r"al\.deal\.original\.augmentation is 'crop'; use one of 'flip', 'none'"):
        OriginalProtocolConfig(augmentation="crop")
    assert OriginalProtocolConfig().train_config().flip is True
    assert OriginalProtocolConfig(augmentation="none").train_config().flip is False
    assert (OriginalProtocolConfig(momentum=0.0, weight_decay=0.0).train_config().momentum,
            OriginalProtocolConfig(weight_decay=0.0).train_config().weight_decay) == (0.0, 0.0)


def test_original_section_needs_the_original_protocol():
    with pytest.raises(ConfigError, match="al.deal.original is read only with protocol: deal_original"):
        DealConfig(original=OriginalProtocolConfig(rounds=2))
    assert DealConfig(protocol="deal_original", original=OriginalProtocolConfig(rounds=2)).original.rounds == 2
    assert DealConfig(original=OriginalProtocolConfig()).protocol == "ralis"  # the default section: nothing set


def test_check_refuses_a_store_counting_the_other_unit(original_config, al_config):
    images, regions = load_experiment(original_config), load_experiment(al_config)
    assert images.store == regions.store  # the same tmp_path/runs/store.sqlite
    check(images)  # no store yet: nothing to compare with
    assert not images.store.exists()
    store = RunStore(regions.store)
    store.claim_run("entropy-s1", "entropy", 1, {"al": {"budgets": [8]}})  # a region run (no budget_unit)
    store.close()
    before = images.store.read_bytes()
    with pytest.raises(ConfigError, match=r"budgets count regions \(e\.g\. entropy-s1\).*counts images; use a "
                                          r"separate store"):
        check(images)
    check(regions)  # the same unit: accepted
    assert images.store.read_bytes() == before  # read only (beside SQLite's own -wal/-shm side files)
    assert {p.name for p in images.store.parent.iterdir()} <= {"store.sqlite", "store.sqlite-wal", "store.sqlite-shm"}
    other = replace(regions, store=regions.store.parent / "images.sqlite")
    store = RunStore(other.store)
    store.claim_run("random-s1", "random", 1, {"budget_unit": "images"})
    store.close()
    with pytest.raises(ConfigError, match=r"budgets count images \(al\.deal\.protocol: deal_original\).*counts "
                                          r"regions; use a separate store"):
        check(other)
    check(replace(images, store=other.store))


def _cli(*args):
    return [sys.executable, "-m", "activeseg.cli", *map(str, args)]


def test_cli_benchmark_with_the_upper_bound_and_plot_over_images(original_config):
    raw = yaml.safe_load(original_config.read_text())
    raw["bounds"] = True
    original_config.write_text(yaml.safe_dump(raw))
    run = subprocess.run(_cli("benchmark", original_config, "--quiet"), capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    store = load_experiment(original_config).store
    evals = json.loads((store.parent / "evaluations.json").read_text())
    budgets = {(e["strategy"], e["budget"]) for e in evals if e["split"] == "test"}
    assert budgets == {("deal_de_image", 4), ("deal_de_image", 6), ("deal_de_image", 8), ("random", 4), ("random", 6),
                       ("random", 8), ("upper_bound", 12)}
    table = (store.parent / "results.md").read_text()
    assert "| strategy | 4 | 6 | 8 |" in table and "upper bound (12 images labelled)" in table
    assert "Per-class test IoU (%) at 8 images" in table and "best_epoch" in table
    assert budget_unit(store) == ("images", 12)
    assert (store.parent / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (store.parent / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
