"""DS, DE and the AUROC as pure functions: the spec's examples, per-region vectorisation, padding."""

import math

import pytest
import torch

from activeseg.methods.deal.scores import difficulty_entropy, difficulty_score, uncertainty
from activeseg.regions import RegionGrid
from activeseg.train.metrics import auroc

ONE_UNIT = torch.zeros(4, 4, dtype=torch.long)


def test_ds_of_a_constant_map_with_u_one():
    md = torch.full((2, 4, 4), 0.2)
    assert torch.allclose(difficulty_score(md, ONE_UNIT, 1), torch.full((2, 1), 0.2, dtype=torch.float64))


def test_de_examples():
    half = torch.tensor([0.1] * 8 + [0.9] * 8).reshape(1, 4, 4)
    assert math.isclose(float(difficulty_entropy(half, ONE_UNIT, 1, 8)), math.log(2))
    even = ((torch.arange(16) % 8 + 0.5) / 8).reshape(1, 4, 4)  # two pixels in each of the 8 bins
    for value_range in ("unit_minmax", "fixed01"):
        assert math.isclose(float(difficulty_entropy(even, ONE_UNIT, 1, 8, value_range)), math.log(8), rel_tol=1e-9)
    assert float(difficulty_entropy(torch.full((1, 4, 4), 0.37), ONE_UNIT, 1, 8)) == 0.0
    # fixed01 keeps the absolute level: a narrow spread lands in one bin
    narrow = torch.tensor([0.50, 0.51] * 8).reshape(1, 4, 4)
    assert float(difficulty_entropy(narrow, ONE_UNIT, 1, 8, "fixed01")) == 0.0
    assert math.isclose(float(difficulty_entropy(narrow, ONE_UNIT, 1, 8)), math.log(2))


def test_per_region_scores_equal_a_loop_over_regions():
    grid = RegionGrid(12, 16, 5, 6)  # clipped last row and column
    torch.manual_seed(0)
    md, u = torch.rand(3, 12, 16), torch.rand(3, 12, 16)
    R = grid.regions_per_image
    ds = difficulty_score(md, grid.region_map(), R, u=u)
    de = difficulty_entropy(md, grid.region_map(), R, 8)
    for n in range(3):
        for r in range(R):
            y0, y1, x0, x1 = grid.box(r)
            cell = md[n, y0:y1, x0:x1]
            assert math.isclose(float(ds[n, r]), float((cell.double() * u[n, y0:y1, x0:x1].double()).mean()), rel_tol=1e-9)
            one = difficulty_entropy(cell[None], torch.zeros(cell.shape, dtype=torch.long), 1, 8)
            assert math.isclose(float(de[n, r]), float(one), rel_tol=1e-9, abs_tol=1e-12)
    assert torch.allclose(difficulty_score(md, grid.region_map(), R), grid.pool(md.double()))


def test_padding_never_counts():
    md = torch.full((1, 4, 4), 0.3)
    md[0, :, 3] = torch.tensor([0.0, 1.0, 0.0, 1.0])  # extreme values on padding
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    valid[0, :, 3] = False
    assert math.isclose(float(difficulty_score(md, ONE_UNIT, 1, valid)), 0.3, rel_tol=1e-6)
    assert float(difficulty_entropy(md, ONE_UNIT, 1, 8, valid=valid)) == 0.0
    nothing = torch.zeros(1, 4, 4, dtype=torch.bool)
    assert float(difficulty_score(md, ONE_UNIT, 1, nothing)) == 0.0
    assert float(difficulty_entropy(md, ONE_UNIT, 1, 8, valid=nothing)) == 0.0


def test_uncertainty_switch():
    probs = torch.tensor([0.7, 0.2, 0.1]).reshape(1, 3, 1, 1)
    assert uncertainty(probs, "none") is None
    assert math.isclose(float(uncertainty(probs, "least_confidence")), 0.3, rel_tol=1e-6)
    assert math.isclose(float(uncertainty(probs, "margin")), 0.5, rel_tol=1e-6)
    h = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1))
    assert math.isclose(float(uncertainty(probs, "entropy")), h, rel_tol=1e-5)
    with pytest.raises(ValueError):
        uncertainty(probs, "bald")


def test_auroc_by_hand():
    assert auroc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([False, False, True, True])) == 0.75
    # ties count one half: (0.5 + 0.5 + 1 + 1) / 4 pairs
    assert auroc(torch.tensor([0.5, 0.5, 0.5, 0.9]), torch.tensor([True, False, False, True])) == 0.75
    assert auroc(torch.tensor([0.1, 0.9]), torch.tensor([False, True])) == 1.0
    assert auroc(torch.tensor([0.1, 0.9]), torch.tensor([True, False])) == 0.0
    assert math.isnan(auroc(torch.tensor([0.1, 0.9]), torch.tensor([True, True])))
