"""RIPU's acquisition score: the spec's oracles (ripu.md sections 1 and 10) as numbers."""

import math

import pytest
import torch
import torch.nn.functional as F

from activeseg.methods.ripu.scores import (
    box_sum,
    pixel_entropy,
    prediction_uncertainty,
    region_impurity,
    ripu_score,
    window_count,
)


def _brute_impurity(pred: torch.Tensor, num_classes: int, k: int) -> torch.Tensor:
    """Loop reference: label histogram over the window pixels that exist. [H, W] -> [H, W] float64."""
    height, width = pred.shape
    out = torch.zeros(height, width, dtype=torch.float64)
    for y in range(height):
        for x in range(width):
            window = pred[max(y - k, 0):y + k + 1, max(x - k, 0):x + k + 1].reshape(-1)
            window = window[(window >= 0) & (window < num_classes)]
            if window.numel() == 0:
                continue
            q = torch.bincount(window, minlength=num_classes).double() / window.numel()
            q = q[q > 0]
            out[y, x] = -(q * q.log()).sum() / math.log(num_classes)
    return out


@pytest.mark.parametrize("k", [0, 1, 2, 5, 40])
def test_box_sum_equals_the_depthwise_ones_convolution(k):
    x = torch.rand(2, 3, 9, 13, generator=torch.Generator().manual_seed(k))
    ones = torch.ones(3, 1, 2 * k + 1, 2 * k + 1)
    expected = F.conv2d(x.double(), ones.double(), padding=k, groups=3)
    assert torch.allclose(box_sum(x, k).double(), expected, atol=1e-5)
    assert box_sum(x, k).dtype == x.dtype and box_sum(x, k).shape == x.shape


def test_box_sum_of_integers_is_exact():
    x = torch.randint(0, 5, (1, 2, 7, 8), generator=torch.Generator().manual_seed(0))
    expected = F.conv2d(x.double(), torch.ones(2, 1, 3, 3, dtype=torch.float64), padding=1, groups=2)
    assert torch.equal(box_sum(x, 1), expected.long())


def test_window_counts_at_the_border():
    counts = box_sum(torch.ones(1, 1, 5, 6), 1)[0, 0]
    assert counts[0, 0] == 4 and counts[0, -1] == 4 and counts[-1, 0] == 4 and counts[-1, -1] == 4  # corners
    assert counts[0, 2] == 6 and counts[2, 0] == 6  # edges
    assert counts[2, 2] == 9  # interior
    assert torch.equal(window_count(5, 6, 1), counts)
    assert window_count(180, 240, 32)[0, 0] == 33 * 33 and window_count(180, 240, 32)[90, 120] == 65 * 65


def test_corner_histogram_sums_to_the_valid_pixel_count():
    pred = torch.randint(0, 3, (1, 4, 5), generator=torch.Generator().manual_seed(1))
    one_hot = F.one_hot(pred, 3).permute(0, 3, 1, 2).float()  # [N, C, H, W]
    counts = box_sum(one_hot, 1)
    assert counts[0, :, 0, 0].sum() == 4  # q = n / 4 sums to 1 over the corner's 4 pixels


def test_impurity_is_zero_on_a_single_class_window():
    pred = torch.full((1, 5, 5), 3)
    assert torch.equal(region_impurity(pred, 11, 1), torch.zeros(1, 5, 5))


def test_impurity_six_road_three_car():
    pred = torch.tensor([[[0, 0, 0], [0, 0, 0], [1, 1, 1]]])  # 6 road (0) + 3 car (1)
    p = region_impurity(pred, 11, 1)[0, 1, 1]
    q = torch.tensor([2 / 3, 1 / 3])
    assert math.isclose(float(-(q * q.log()).sum()), 0.6365, abs_tol=1e-4)
    assert math.isclose(float(p), 0.2654, abs_tol=1e-4)


def test_impurity_at_a_corner_with_two_plus_two():
    pred = torch.zeros(1, 4, 4, dtype=torch.long)
    pred[0, :2, :2] = torch.tensor([[2, 5], [5, 2]])  # the corner's window = these 4 pixels
    assert math.isclose(float(region_impurity(pred, 11, 1)[0, 0, 0]), math.log(2) / math.log(11), rel_tol=1e-6)


@pytest.mark.parametrize("k", [1, 2, 32])
def test_impurity_matches_a_loop_over_windows(k):
    pred = torch.randint(0, 4, (1, 7, 9), generator=torch.Generator().manual_seed(k))
    pred[0, 0, 3] = 4  # out of range: not counted
    pred[0, 5, 5] = 255
    got = region_impurity(pred, 4, k)[0].double()
    assert torch.allclose(got, _brute_impurity(pred[0], 4, k), atol=1e-6)


def test_impurity_ignores_labels_out_of_range():
    pred = torch.tensor([[[0, 0, 0], [0, 255, 0], [0, 0, 11]]])
    assert torch.equal(region_impurity(pred, 11, 1), torch.zeros(1, 3, 3))
    assert region_impurity(torch.full((1, 3, 3), 255), 11, 1).abs().max() == 0  # nothing counted -> 0


def test_norm_classes_rescales():
    pred = torch.tensor([[[0, 1], [0, 1]]])
    p11 = region_impurity(pred, 11, 1)
    p19 = region_impurity(pred, 11, 1, norm_classes=19)
    assert torch.allclose(p19, p11 * math.log(11) / math.log(19))
    with pytest.raises(ValueError, match="norm_classes"):
        region_impurity(pred, 11, 1, norm_classes=5)


def test_uniform_softmax_has_entropy_one():
    probs = torch.zeros(2, 11, 4, 5).softmax(1)
    assert torch.allclose(pixel_entropy(probs), torch.ones(2, 4, 5))
    assert torch.allclose(prediction_uncertainty(probs, 1), torch.ones(2, 4, 5))
    assert torch.allclose(prediction_uncertainty(probs, None), torch.ones(2, 4, 5))


def test_one_hot_probabilities_have_entropy_zero():
    probs = F.one_hot(torch.randint(0, 3, (1, 4, 4), generator=torch.Generator().manual_seed(6)), 3).permute(0, 3, 1, 2).float()  # 0 ln 0 := 0
    assert torch.equal(pixel_entropy(probs), torch.zeros(1, 4, 4))


def test_uncertainty_window_mean_is_exact_at_borders():
    probs = torch.rand(1, 3, 6, 7, generator=torch.Generator().manual_seed(2)).softmax(1)
    h = pixel_entropy(probs)[0]
    u = prediction_uncertainty(probs, 1)[0]
    assert math.isclose(float(u[0, 0]), float(h[:2, :2].mean()), rel_tol=1e-5)  # 4 valid pixels
    assert math.isclose(float(u[3, 0]), float(h[2:5, :2].mean()), rel_tol=1e-5)  # 6 valid pixels
    assert math.isclose(float(u[3, 3]), float(h[2:5, 2:5].mean()), rel_tol=1e-5)
    assert torch.equal(prediction_uncertainty(probs, None), pixel_entropy(probs))


def test_single_class_window_scores_zero_even_when_uncertain():
    logits = torch.zeros(1, 11, 5, 5)
    logits[:, 4] = 1e-3  # almost uniform, but the argmax is class 4 everywhere
    out = ripu_score(logits, "RA")
    assert torch.equal(out["score"], torch.zeros(1, 5, 5))
    assert out["uncertainty"].min() > 0.99


@pytest.mark.parametrize("mode", ["RA", "PA"])
def test_all_maps_lie_in_the_unit_interval(mode):
    logits = torch.randn(2, 11, 30, 40, generator=torch.Generator().manual_seed(3)) * 3
    out = ripu_score(logits, mode)
    for name in ("impurity", "uncertainty", "score"):
        assert out[name].shape == (2, 30, 40)
        assert out[name].min() >= 0 and out[name].max() <= 1, name
    assert torch.equal(out["score"], out["impurity"] * out["uncertainty"])


def test_ra_and_pa_use_their_windows():
    logits = torch.randn(1, 5, 20, 24, generator=torch.Generator().manual_seed(4))
    probs, pred = logits.softmax(1), logits.argmax(1)
    ra = ripu_score(logits, "RA", k=2)
    assert torch.allclose(ra["impurity"], region_impurity(pred, 5, 2))
    assert torch.allclose(ra["uncertainty"], prediction_uncertainty(probs, 2))
    pa = ripu_score(logits, "PA", pa_window_k=7)
    assert torch.allclose(pa["impurity"], region_impurity(pred, 5, 7))
    assert torch.allclose(pa["uncertainty"], pixel_entropy(probs))


def test_ablation_switches():
    logits = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    full = ripu_score(logits, "RA")
    u_only = ripu_score(logits, "RA", use_impurity=False)
    p_only = ripu_score(logits, "RA", use_uncertainty=False)
    assert torch.equal(u_only["impurity"], torch.ones(1, 8, 8))
    assert torch.equal(u_only["score"], full["uncertainty"])
    assert torch.equal(p_only["uncertainty"], torch.ones(1, 8, 8))
    assert torch.equal(p_only["score"], full["impurity"])
    with pytest.raises(ValueError, match="use_impurity"):
        ripu_score(logits, "RA", use_impurity=False, use_uncertainty=False)


def test_score_keeps_no_graph_and_rejects_bad_input():
    logits = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(7), requires_grad=True)
    assert not ripu_score(logits, "RA")["score"].requires_grad
    with pytest.raises(ValueError, match="mode"):
        ripu_score(logits, "XA")
    with pytest.raises(ValueError, match="k must"):
        box_sum(torch.ones(1, 1, 2, 2), -1)
