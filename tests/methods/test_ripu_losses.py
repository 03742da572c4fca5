"""RIPU's training losses and boundary mask: the spec's oracles (ripu.md sections 3 and 10)."""

import math

import pytest
import torch

from activeseg.methods.ripu.losses import (
    boundary_mask,
    local_consistency_loss,
    negative_learning_loss,
    neighbourhood_divergence,
)


def _pixel_logits(*probs: float) -> torch.Tensor:
    """Logits = ln p of one pixel. -> [1, C, 1, 1]."""
    return torch.tensor(probs).log().reshape(1, -1, 1, 1)


def test_negative_learning_example():
    loss = negative_learning_loss(_pixel_logits(0.90, 0.06, 0.04))  # only 0.04 < 0.05
    assert math.isclose(float(loss), -math.log(0.96), rel_tol=1e-5)
    assert math.isclose(float(loss), 0.0408, abs_tol=1e-4)


def test_negative_learning_averages_over_the_qualifying_pairs():
    logits = torch.cat([_pixel_logits(0.90, 0.06, 0.04), _pixel_logits(0.96, 0.02, 0.02)], dim=3)  # [1, 3, 1, 2]
    expected = -(math.log(0.96) + 2 * math.log(0.98)) / 3
    assert math.isclose(float(negative_learning_loss(logits)), expected, rel_tol=1e-5)


def test_negative_learning_is_a_graph_zero_when_nothing_qualifies():
    logits = _pixel_logits(0.5, 0.3, 0.2).requires_grad_()
    loss = negative_learning_loss(logits)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_negative_learning_respects_the_mask():
    logits = torch.cat([_pixel_logits(0.90, 0.06, 0.04), _pixel_logits(0.96, 0.02, 0.02)], dim=3)
    first = torch.tensor([[[True, False]]])
    assert math.isclose(float(negative_learning_loss(logits, mask=first)), -math.log(0.96), rel_tol=1e-5)
    assert float(negative_learning_loss(logits, mask=torch.zeros(1, 1, 2, dtype=torch.bool))) == 0.0
    with pytest.raises(ValueError, match="mask"):
        negative_learning_loss(logits, mask=torch.ones(1, 2, 2, dtype=torch.bool))


def test_negative_learning_gradient_is_finite_and_lowers_the_negatives():
    logits = torch.randn(2, 5, 6, 7, generator=torch.Generator().manual_seed(0)) * 8
    logits[0, 0, 0, 0] = 60.0  # a saturated pixel: p = 1 for one class must not produce NaN
    logits.requires_grad_()
    loss = negative_learning_loss(logits)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    with torch.no_grad():
        probs = logits.softmax(1)
        stepped = (logits - 10.0 * logits.grad).softmax(1)
    chosen = probs < 0.05
    assert stepped[chosen].sum() < probs[chosen].sum()


def test_divergence_example_is_one():
    # A 1 x 3 image with replicate padding: the centre's 3 x 3 mean is the mean of the row.
    probs = torch.tensor([[0.25, 1.0, 0.25], [0.75, 0.0, 0.75]]).reshape(1, 2, 1, 3)  # [N, C, H, W]
    d = neighbourhood_divergence(probs)
    assert d.shape == (1, 1, 3) and math.isclose(float(d[0, 0, 1]), 1.0, rel_tol=1e-6)  # (1,0) vs (0.5,0.5)


def test_local_consistency_loss_example():
    logits = torch.tensor([[math.log(0.25), 0.0, math.log(0.25)],
                           [math.log(0.75), -100.0, math.log(0.75)]]).reshape(1, 2, 1, 3)
    centre = torch.tensor([[[False, True, False]]])
    assert math.isclose(float(local_consistency_loss(logits, centre)), 1.0, rel_tol=1e-6)


def test_local_consistency_is_zero_on_a_constant_map_and_keeps_the_graph():
    logits = torch.randn(1, 4, 1, 1, generator=torch.Generator().manual_seed(3)).expand(1, 4, 5, 6).clone().requires_grad_()
    mask = torch.ones(1, 5, 6, dtype=torch.bool)
    assert float(local_consistency_loss(logits, mask).detach()) < 1e-6
    empty = local_consistency_loss(logits, torch.zeros(1, 5, 6, dtype=torch.bool))
    assert float(empty.detach()) == 0.0
    empty.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_local_consistency_gradient_is_finite():
    logits = torch.randn(2, 3, 8, 9, generator=torch.Generator().manual_seed(1), requires_grad=True)
    labels = torch.randint(0, 3, (2, 8, 9), generator=torch.Generator().manual_seed(2))
    loss = local_consistency_loss(logits, boundary_mask(labels, 3))
    loss.backward()
    assert loss > 0 and torch.isfinite(logits.grad).all()


@pytest.mark.parametrize("kind", ["neighbour_differs", "laplacian"])
def test_constant_non_zero_map_gives_exactly_the_image_border(kind):
    mask = boundary_mask(torch.full((2, 5, 7), 3), 11, kind)
    border = torch.ones(5, 7, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    assert torch.equal(mask, border.expand(2, 5, 7))


@pytest.mark.parametrize("kind", ["neighbour_differs", "laplacian"])
def test_constant_zero_map_has_no_boundary(kind):
    assert not boundary_mask(torch.zeros(1, 5, 7, dtype=torch.long), 11, kind).any()


def test_two_regions_mark_both_sides_of_the_edge():
    labels = torch.zeros(1, 4, 6, dtype=torch.long)
    labels[0, :, 3:] = 1  # columns 0-2: class 0, columns 3-5: class 1
    mask = boundary_mask(labels, 11)[0]
    assert mask[:, 2].all() and mask[:, 3].all()  # both sides of the edge
    assert not mask[:, :2].any()  # the 0 side has no other boundary (the pad value is 0)
    assert mask[0, 3:].all() and mask[-1, 3:].all() and mask[:, 5].all()  # the 1 side also meets the pad
    assert not mask[1:-1, 4].any()


def test_void_pixels_are_excluded():
    labels = torch.zeros(1, 5, 5, dtype=torch.long)
    labels[0, 2, 2] = 255
    labels[0, 0, 4] = 11  # void when num_classes = 11
    mask = boundary_mask(labels, 11)[0]
    assert not mask[2, 2] and not mask[0, 4]
    assert mask[1:4, 1:4].sum() == 8  # the void pixel's neighbours differ from it (values used as they are)
    assert mask[0, 3] and mask[1, 3]


def test_laplacian_agrees_on_a_simple_map():
    labels = torch.zeros(1, 7, 9, dtype=torch.long)
    labels[0, 1:4, 2:6] = 2
    labels[0, 5:, 6:] = 5
    assert torch.equal(boundary_mask(labels, 11, "laplacian"), boundary_mask(labels, 11))


def test_laplacian_can_cancel():
    labels = torch.zeros(1, 6, 8, dtype=torch.long)
    labels[0, 1:4, 2:6] = 2
    labels[0, 4:, 5:] = 5
    # Pixel (3, 5) = 2 has three 2s, three 0s and two 5s around it: 3 * 2 + 2 * 5 = 16 = 8 * 2.
    assert int(labels[0, 2:5, 4:7].sum()) - 2 == 8 * 2
    laplacian, differs = boundary_mask(labels, 11, "laplacian")[0], boundary_mask(labels, 11)[0]
    assert differs[3, 5] and not laplacian[3, 5]
    assert int((laplacian != differs).sum()) == 1
    with pytest.raises(ValueError, match="kind"):
        boundary_mask(labels, 11, "sobel")
