import math

import torch

from activeseg.methods.ralis.features import (
    action_features,
    kl_histogram,
    pool_entropy,
    region_descriptors,
)
from activeseg.regions import RegionGrid

GRID = RegionGrid.from_counts(180, 240)


def test_descriptor_sizes_and_counts():
    probs = torch.rand(2, 11, 180, 240).softmax(1)
    phi = region_descriptors(probs, GRID)
    assert phi.shape == (2, 24, 204)
    assert torch.allclose(phi[..., :12].sum(-1), torch.full((2, 24), 1800 + 12e-7, dtype=phi.dtype))
    assert region_descriptors(probs, GRID, void_bin=False).shape == (2, 24, 203)


def test_uniform_softmax_pools_to_log_c():
    phi = region_descriptors(torch.full((1, 11, 180, 240), 1 / 11), GRID)
    assert torch.allclose(phi[..., 12:], torch.full((1, 24, 192), math.log(11)), atol=1e-5)


def test_floor_pooling_on_a_row_ramp():
    emap = torch.arange(45, dtype=torch.float32)[:, None].expand(45, 40)[None]  # E(y, x) = y
    grids = pool_entropy(emap).reshape(3, 8, 8)
    i = torch.arange(8, dtype=torch.float32)
    assert torch.equal(grids[0, :, 0], 5 * i) and torch.equal(grids[1, :, 3], 5 * i + 2)
    assert torch.equal(grids[2, :, 7], 5 * i + 4)  # rows 40..44 dropped by the floor windows
    native = torch.arange(90, dtype=torch.float32)[:, None].expand(90, 80)[None]
    g = pool_entropy(native).reshape(3, 8, 8)
    assert g[:, 7, 0].tolist() == [77.0, 82.0, 87.0]


def test_kl_histogram_oracles():
    h = kl_histogram(torch.tensor([[0.0, 0.5, 1.0, 1.0]]))[0]
    assert h[0] == 0.25 and h[16] == 0.25 and h[31] == 0.5 and h.sum() == 1
    flat = kl_histogram(torch.tensor([[0.3, 0.3, 0.3]]))[0]
    assert flat[16] == 1.0
    assert kl_histogram(torch.zeros(3, 0)).abs().sum() == 0


def test_action_features_sizes_and_histograms():
    phi = region_descriptors(torch.rand(2, 11, 180, 240).softmax(1), GRID).reshape(48, 204)
    psi = action_features(phi, torch.zeros(0, 12), num_bins=12)
    assert psi.shape == (48, 268)
    assert psi[:, 204:236].abs().sum() == 0  # nothing labelled: h_lab all zeros
    assert torch.allclose(psi[:, 236:].sum(1), torch.ones(48, dtype=psi.dtype))
    assert (psi[:, 236] >= 1 / 48).all()  # self-KL = 0 falls in bin 0
    gt = torch.randint(0, 500, (5, 12)).float()
    psi2 = action_features(phi, gt, num_bins=12)
    assert torch.allclose(psi2[:, 204:236].sum(1), torch.ones(48, dtype=psi.dtype))
