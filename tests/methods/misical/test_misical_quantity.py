"""Class quantities and the quantity reward (spec misical.md sections 3, 5 and 9): known answers,
rows summing to 1, additivity, telescoping."""

import math

import pytest
import torch

from activeseg.al.oracle import GroundTruthOracle
from activeseg.methods.misical.quantity import class_quantities, region_areas, reward, set_quantity
from activeseg.regions import RegionGrid

C = 5  # classes 0..4, void = anything >= 5 (255 included)
GRID = RegionGrid(12, 16, 5, 6)  # 3 x 3 regions; the last row (2 px high) and column (4 px wide) are clipped


def random_labels(n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, C + 1, (n, GRID.height, GRID.width), generator=g, dtype=torch.uint8)
    labels[labels == C] = 255  # void pixels
    return labels


def test_region_areas_are_each_regions_own_pixels():
    assert region_areas(GRID).tolist() == [30, 30, 20, 30, 30, 20, 12, 12, 8]
    assert int(region_areas(GRID).sum()) == GRID.height * GRID.width
    assert region_areas(RegionGrid.from_counts(180, 240, 4, 6)).tolist() == [1800] * 24


def test_quantities_are_pixel_fractions_and_rows_sum_to_one():
    labels = random_labels()
    q = class_quantities(labels, GRID, C)
    assert q.shape == (3, 9, C + 1) and q.dtype == torch.float32
    assert torch.allclose(q.sum(-1), torch.ones(3, 9), atol=1e-6)
    # hand counts: image 1, the clipped corner region 8 (rows 10..12, cols 12..16, 8 px)
    corner = labels[1, 10:12, 12:16]
    for c in range(C):
        assert math.isclose(float(q[1, 8, c]), float((corner == c).sum()) / 8, rel_tol=1e-6)
    assert math.isclose(float(q[1, 8, C]), float((corner == 255).sum()) / 8, rel_tol=1e-6)


def test_oracle_and_labels_agree_and_images_select_rows():
    labels = random_labels()
    q = class_quantities(labels, GRID, C)
    assert torch.equal(class_quantities(GroundTruthOracle(labels), GRID, C), q)
    assert torch.equal(class_quantities(labels, GRID, C, images=torch.tensor([2, 0])), q[[2, 0]])


def test_a_grid_at_another_resolution_is_refused():
    with pytest.raises(ValueError, match="resolution"):
        class_quantities(random_labels(), RegionGrid(24, 32, 12, 16), C)


def test_set_quantity_is_additive_over_disjoint_sets():
    q = class_quantities(random_labels(), GRID, C)  # [3, 9, C+1]; global ids 0..26
    perm = torch.randperm(27, generator=torch.Generator().manual_seed(1))
    a, b = perm[:10], perm[10:18]
    qa, qb, qab = set_quantity(q, a), set_quantity(q, b), set_quantity(q, torch.cat([a, b]))
    assert qa.shape == (C,)
    assert torch.allclose(qa + qb, qab, atol=1e-5)
    # all regions: the whole pool's class pixels in region-equivalents
    whole = set_quantity(q, torch.arange(27))
    expected = q.reshape(-1, C + 1)[:, :C].sum(0)
    assert torch.allclose(whole, expected)
    # a boolean mask of q's leading shape selects the same set; ids of a [M, C+1] table work too
    mask = torch.zeros(27, dtype=torch.bool)
    mask[a] = True
    assert torch.allclose(set_quantity(q, mask.reshape(3, 9)), qa)
    assert torch.allclose(set_quantity(q.reshape(27, C + 1), a), qa)
    assert torch.equal(set_quantity(q, torch.tensor([], dtype=torch.long)), torch.zeros(C))


def test_set_quantity_refuses_repeats_and_wrong_masks():
    q = class_quantities(random_labels(), GRID, C)
    with pytest.raises(ValueError, match="repeats"):
        set_quantity(q, torch.tensor([3, 4, 3]))
    with pytest.raises(ValueError, match="leading shape"):
        set_quantity(q, torch.zeros(27, dtype=torch.bool))


def test_reward_example_of_the_spec():
    assert round(reward(0.5, 0.5), 4) == 0.2877
    assert math.isclose(reward(0.5, 0.5), math.log(2) - math.log(1.5))
    # the same from a real region: 3,600 px of the class in a native 90 x 80 region (q = 0.5)
    labels = torch.zeros(1, 90, 80, dtype=torch.uint8)
    labels[0, :45] = 3
    q = class_quantities(labels, RegionGrid(90, 80, 90, 80), C)
    assert float(q[0, 0, 3]) == 0.5
    assert round(reward(0.5, float(q[0, 0, 3])), 4) == 0.2877
    assert reward(0.5, 0.5, "linear") == 0.5


@pytest.mark.parametrize("g", ["log1p", "linear"])
def test_a_region_without_the_class_gives_zero_reward(g):
    for q_before in (0.0, 0.3, 2.5, 117.0):
        assert reward(q_before, 0.0, g) == 0.0


def test_rewards_telescope_to_g_of_the_final_quantity():
    q = class_quantities(random_labels(4, seed=2), GRID, C)[..., 1].reshape(-1)  # class 1, 36 regions
    order = torch.randperm(36, generator=torch.Generator().manual_seed(3))[:20]
    total, total_linear, acquired = 0.0, 0.0, 0.0
    for r in order.tolist():
        total += reward(acquired, float(q[r]))
        total_linear += reward(acquired, float(q[r]), "linear")
        acquired += float(q[r])
    final = float(set_quantity(class_quantities(random_labels(4, seed=2), GRID, C), order)[1])
    assert math.isclose(total, math.log1p(final), rel_tol=1e-6)
    assert math.isclose(total_linear, final, rel_tol=1e-6)


def test_reward_refuses_unknown_g_and_negative_quantities():
    with pytest.raises(ValueError, match="log1p, linear"):
        reward(0.0, 1.0, "sqrt")
    with pytest.raises(ValueError, match="non-negative"):
        reward(-0.1, 1.0)
