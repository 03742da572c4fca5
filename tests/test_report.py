import math

from activeseg.report import (
    _mean_std,
    class_entropy,
    curve_differences,
    curves,
    paired_differences,
    paired_table,
    regions_to_reach,
    t_interval,
)


def test_class_entropy_ignores_void_bin():
    assert math.isclose(class_entropy([5, 5, 0, 99]), math.log(2))
    assert class_entropy([7, 0, 0, 3]) == 0.0
    assert math.isnan(class_entropy([0, 0, 4]))


def test_mean_and_sample_std():
    m, s = _mean_std([0.5, 0.7])
    assert math.isclose(m, 0.6) and math.isclose(s, math.sqrt(0.02))
    assert _mean_std([0.3]) == (0.3, 0.0)


def test_curves_group_by_strategy_and_budget():
    evals = [{"strategy": "a", "budget": 8, "split": "test", "miou": 0.1},
             {"strategy": "a", "budget": 8, "split": "test", "miou": 0.3},
             {"strategy": "a", "budget": 8, "split": "val", "miou": 0.9}]
    assert curves(evals)["a"][8] == [0.1, 0.3]


def test_regions_to_reach_interpolates_between_budgets():
    curve = {480: 0.40, 960: 0.44, 1920: 0.50}
    assert math.isclose(regions_to_reach(curve, 0.42), 720.0)
    assert regions_to_reach(curve, 0.35) == 480.0
    assert math.isclose(regions_to_reach(curve, 0.47), 1440.0)
    assert regions_to_reach(curve, 0.51) is None


def test_t_interval_by_hand():
    m, lo, hi = t_interval([1.0, 2.0, 3.0])  # sd 1, t(0.975, 2 df) = 4.302653
    half = 4.302653 / math.sqrt(3)
    assert math.isclose(m, 2.0) and math.isclose(lo, 2 - half, rel_tol=1e-6) and math.isclose(hi, 2 + half, rel_tol=1e-6)
    m, lo, hi = t_interval([0.5])
    assert m == 0.5 and math.isnan(lo) and math.isnan(hi)


def _ev(strategy, budget, seed, miou, split="test"):
    return {"strategy": strategy, "budget": budget, "seed": seed, "split": split, "miou": miou}


def test_paired_differences_on_a_hand_made_table():
    # entropy beats random by 0.02, 0.03 and 0.01 on seeds 1-3 at budget 8: mean 0.02, sd 0.01
    evals = [_ev("random", 8, 1, 0.40), _ev("random", 8, 2, 0.50), _ev("random", 8, 3, 0.45),
             _ev("entropy", 8, 1, 0.42), _ev("entropy", 8, 2, 0.53), _ev("entropy", 8, 3, 0.46),
             _ev("entropy", 8, 4, 0.99),  # seed 4 has no random run: not paired
             _ev("entropy", 8, 1, 0.10, split="val"),  # another split: ignored
             _ev("lower_bound", 0, 0, 0.3)]
    d = paired_differences(evals)
    assert set(d) == {"entropy"} and set(d["entropy"]) == {8}
    cell = d["entropy"][8]
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert cell["n"] == 3 and math.isclose(cell["mean"], 0.02, abs_tol=1e-12)
    assert math.isclose(cell["low"], 0.02 - half, rel_tol=1e-5) and math.isclose(cell["high"], 0.02 + half, rel_tol=1e-5)
    # the unpaired mean difference (0.6025 - 0.45) would be dominated by seed 4; pairing removes seed effects
    lines = paired_table(evals)
    assert "| entropy | +2.0 [-0.5, +4.5] (n=3) |" in lines  # the interval covers 0: no star
    tight = [_ev("random", 8, s, 0.4) for s in (1, 2, 3)] + [_ev("entropy", 8, s, 0.42 + d)
                                                            for s, d in ((1, 0.0), (2, 0.001), (3, -0.001))]
    assert "| entropy | +2.0 [+1.8, +2.2] (n=3)* |" in paired_table(tight)  # one budget: no curve mean


def test_curve_differences_average_each_seeds_curve_first():
    # entropy - random per seed: seed 1 (+0.01, +0.03) -> 0.02, seed 2 (+0.02, +0.04) -> 0.03,
    # seed 3 (0, +0.02) -> 0.01: mean 0.02, sd 0.01; seed 4 lacks budget 16 (in progress): left out
    rand = {1: (0.40, 0.50), 2: (0.45, 0.55), 3: (0.42, 0.52), 4: (0.40, None)}
    gain = {1: (0.01, 0.03), 2: (0.02, 0.04), 3: (0.0, 0.02), 4: (0.5, None)}
    evals = []
    for seed, (r8, r16) in rand.items():
        evals += [_ev("random", 8, seed, r8), _ev("entropy", 8, seed, r8 + gain[seed][0])]
        if r16 is not None:
            evals += [_ev("random", 16, seed, r16), _ev("entropy", 16, seed, r16 + gain[seed][1])]
    c = curve_differences(evals)["entropy"]
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert c["n"] == 3 and c["budgets"] == 2 and math.isclose(c["mean"], 0.02, abs_tol=1e-12)
    assert math.isclose(c["low"], 0.02 - half, rel_tol=1e-5) and math.isclose(c["high"], 0.02 + half, rel_tol=1e-5)
    lines = paired_table(evals)
    assert lines[2] == "| strategy | 8 | 16 | curve mean |"
    assert lines[4].endswith("| +2.0 [-0.5, +4.5] (n=3, 2 budgets) |")
    assert curve_differences([e for e in evals if e["budget"] == 8]) == {}  # one budget: nothing to average


def test_budget_unit_and_a_store_mixing_units(tmp_path):
    import pytest

    from activeseg.errors import ConfigError
    from activeseg.report import budget_unit, markdown_table, plot_curves
    from activeseg.store import RunStore

    path = tmp_path / "store.sqlite"
    store = RunStore(path)
    store.claim_run("random-s1", "random", 1, {"budget_unit": "images", "pool_images_count": 12})
    store.close()
    assert budget_unit(path) == ("images", 12)
    store = RunStore(path)
    store.claim_run("entropy-s1", "entropy", 1, {"al": {"budgets": [8]}})  # a region run: no budget_unit
    store.close()
    remedy = r"mixes runs whose budgets count regions \(e\.g\. entropy-s1\) and .* images .*use separate stores"
    for f in (budget_unit, markdown_table, lambda p: plot_curves(p, tmp_path / "curves.png")):
        with pytest.raises(ConfigError, match=remedy):
            f(path)
    assert not (tmp_path / "curves.png").exists()
    regions = tmp_path / "regions.sqlite"
    store = RunStore(regions)
    store.claim_run("entropy-s1", "entropy", 1, {})
    store.close()
    assert budget_unit(regions) == ("regions", None)


def test_training_curves_plot_counts_evaluations_without_a_curve(tmp_path):
    from activeseg.report import plot_training
    from activeseg.store import RunStore

    path, png = tmp_path / "store.sqlite", tmp_path / "training_curves.png"
    metrics = {"miou": 0.5, "iou": {"a": 0.5}}
    store = RunStore(path)
    store.claim_run("random-s1", "random", 1, {})
    store.record_evaluation("random-s1", 8, "test", 8, metrics, None, 2, 1.0)  # written by older code: no curve
    store.close()
    png.write_bytes(b"stale")
    assert plot_training(path, png) is None and not png.exists()  # no curve at all: no picture, the old one gone
    history = [{"epoch": -1, "loss": None, "val_miou": 0.4, "lr": None},
               {"epoch": 0, "loss": 1.2, "val_miou": 0.5, "lr": 1e-3}]
    store = RunStore(path)
    store.record_evaluation("random-s1", 16, "test", 16, metrics, None, 1, 1.0, history=history)
    assert store.training_curves() == [{"run_id": "random-s1", "strategy": "random", "seed": 1, "budget": 16,
                                        "history": history}]
    store.close()
    assert plot_training(path, png) == png and png.read_bytes()[:4] == b"\x89PNG"
    from PIL import Image

    assert Image.open(png).size[1] == 600  # loss and val mIoU rows


def test_training_curves_plot_without_a_validation_split_has_no_val_row(tmp_path):
    from PIL import Image

    from activeseg.report import plot_training
    from activeseg.store import RunStore

    path, png = tmp_path / "store.sqlite", tmp_path / "training_curves.png"
    store = RunStore(path)
    store.claim_run("random-s1", "random", 1, {})
    history = [{"epoch": e, "loss": 1.0 - 0.1 * e, "val_miou": None, "lr": 1e-3} for e in range(3)]
    store.record_evaluation("random-s1", 16, "test", 16, {"miou": 0.5, "iou": {"a": 0.5}}, None, 3, 1.0,
                            history=history)
    store.close()
    assert plot_training(path, png) == png
    assert Image.open(png).size[1] == 340  # the loss row only (val_split: null)
