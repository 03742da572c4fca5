import math

from activeseg.report import _mean_std, class_entropy, curves, regions_to_reach


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
