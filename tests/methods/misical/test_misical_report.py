"""The comparisons of the MiSiCAL-style report on hand-computed numbers: per-seed differences, wins, ties and
the one-sided sign test (spec misical.md section 6.2), rank correlations and the premise flags (section 4)."""

from __future__ import annotations

import math

import pytest

from activeseg.methods.misical.report import (
    benchmark_markdown,
    benchmark_result,
    compare,
    per_class_values,
    premise_rows,
    sign_test,
    spearman,
    win_summary,
)


def test_sign_test_known_values():
    assert sign_test(11, 0) == pytest.approx(0.5 ** 11)
    assert sign_test(6, 5) == pytest.approx(0.5)  # (462 + 330 + 165 + 55 + 11 + 1) / 2048
    assert sign_test(0, 3) == pytest.approx(1.0)
    assert sign_test(0, 0) is None


def test_compare_and_win_summary_by_hand():
    method = {"a": {1: 0.5, 2: 0.7}, "b": {1: 0.3, 2: 0.3}, "c": {1: 0.2}, "d": {2: 0.9}}
    random = {"a": {1: 0.4, 2: 0.4}, "b": {1: 0.2, 2: 0.4}, "c": {1: 0.3}, "d": {1: 0.1}}
    comp = compare(method, random, ("a", "b", "c", "d"))
    assert comp["a"]["mean"] == pytest.approx(0.6) and comp["a"]["diff_mean"] == pytest.approx(0.2)
    assert comp["a"]["diff_std"] == pytest.approx(math.sqrt(0.02))  # differences 0.1 and 0.3
    assert comp["a"]["win"] and not comp["b"]["win"] and not comp["b"]["loss"]  # b: equal means, a tie
    assert comp["c"]["loss"] and comp["c"]["diff_std"] == 0.0  # one seed
    assert comp["d"]["win"] is None  # no seed in common: not compared
    summary = win_summary(comp, ("a", "b", "c", "d"))
    assert summary == {"wins": 1, "losses": 1, "ties": 1, "classes": 3, "sign_test_p": pytest.approx(0.75)}
    assert isinstance(summary["wins"], int)


def test_class_aware_runs_count_for_their_class_and_agnostic_runs_for_all():
    def ev(method, seed, iou, target=None, budget=8):
        return {"split": "test", "budget": budget, "seed": seed, "iou": iou,
                "extra": {"method": method, "target_class": target, "quantities": {k: 2 * v for k, v in iou.items()},
                          "images_touched": seed + (10 if target == "y" else 0)}}

    evals = [ev("random", 1, {"x": 0.2, "y": 0.5}), ev("random", 2, {"x": 0.4, "y": 0.5}),
             ev("misical", 1, {"x": 0.3, "y": 0.1}, "x"), ev("misical", 1, {"x": 0.1, "y": 0.6}, "y"),
             ev("misical", 2, {"x": 0.5, "y": 0.0}, "x"), ev("misical", 2, {"x": 0.0, "y": 0.4}, "y"),
             ev("random", 1, {"x": 0.9, "y": 0.9}, budget=16), {**ev("random", 1, {"x": 1.0, "y": 1.0}), "split": "val"}]
    iou = per_class_values(evals, 8)
    assert iou["misical"] == {"x": {1: 0.3, 2: 0.5}, "y": {1: 0.6, 2: 0.4}}
    assert iou["random"] == {"x": {1: 0.2, 2: 0.4}, "y": {1: 0.5, 2: 0.5}}
    result = benchmark_result(evals, ("x", "y"), ("y", "z"), (8,), ("random", "misical"))
    entry = result["budgets"][8]
    assert result["rare_classes"] == ["y"]
    assert entry["methods"]["misical"]["all"]["wins"] == 1 and entry["methods"]["misical"]["all"]["ties"] == 1
    assert entry["methods"]["misical"]["rare"]["classes"] == 1 and entry["methods"]["misical"]["rare"]["wins"] == 0
    assert entry["quantity"]["misical"]["x"] == pytest.approx(0.8)  # mean of 2 x 0.3 and 2 x 0.5
    # images touched: one number per run, given to its classes: the y policy's runs (11, 12), random's (1, 2)
    assert entry["images_touched"]["misical"] == {"x": pytest.approx(1.5), "y": pytest.approx(11.5)}
    assert entry["images_touched"]["random"] == {"x": pytest.approx(1.5), "y": pytest.approx(1.5)}
    text = benchmark_markdown(result, [], [])
    # entropy (class-agnostic) beats random on y only; the policy beats entropy on x and loses on y (rare)
    evals += [ev("entropy", 1, {"x": 0.1, "y": 0.9}), ev("entropy", 2, {"x": 0.1, "y": 0.9})]
    entry3 = benchmark_result(evals, ("x", "y"), ("y",), (8,), ("random", "entropy", "misical"))["budgets"][8]
    assert entry3["strongest_baseline"] == "entropy"
    head = entry3["misical_vs_strongest"]
    assert (head["all"]["wins"], head["all"]["losses"], head["rare"]["wins"], head["rare"]["classes"]) == (1, 1, 0, 1)
    assert "| y | 2 | 12 |" in text  # rounded means in the images-touched table (random, misical)


def test_rank_correlations_and_premise_flags():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 45]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [0.5, 0.5, 0.5]) is None and spearman([1, 2], [1, 2]) is None
    quantities = [{"a": 0.0, "b": 1.0}, {"a": 1.0, "b": 1.0}, {"a": 3.0, "b": 1.0}, {"a": 8.0, "b": 1.0}]
    ious = [{"a": 0.1, "b": 0.5}, {"a": 0.3, "b": 0.4}, {"a": 0.2, "b": None}, {"a": 0.6, "b": 0.6}]
    rows = premise_rows(quantities, ious, ("a", "b"))
    assert rows["a"]["rho_q"] == pytest.approx(0.8) and rows["a"]["rho_log1p_q"] == pytest.approx(0.8)
    assert not rows["a"]["weak"] and rows["a"]["subsets"] == 4
    assert rows["b"]["rho_q"] is None and rows["b"]["weak"] and rows["b"]["subsets"] == 3  # constant Q_b
