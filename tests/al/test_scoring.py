import math

import torch

from activeseg.al.scoring import BALDAccumulator, bald, entropy, margin


def test_entropy_uniform_is_log_c_and_one_hot_is_zero():
    uniform = torch.full((1, 11, 2, 2), 1 / 11)
    assert torch.allclose(entropy(uniform), torch.full((1, 2, 2), math.log(11)))
    one_hot = torch.zeros(1, 11, 2, 2)
    one_hot[:, 3] = 1
    assert entropy(one_hot).abs().max() < 1e-6


def test_margin_ranks_close_calls_first():
    p = torch.tensor([[0.9, 0.05, 0.05], [0.5, 0.4, 0.1], [0.34, 0.33, 0.33]]).T.reshape(1, 3, 1, 3)
    m = margin(p).reshape(-1)
    assert torch.allclose(m, torch.tensor([0.15, 0.9, 0.99])) and m.argsort().tolist() == [0, 1, 2]


def test_bald_zero_when_passes_agree_and_positive_when_they_disagree():
    agree = torch.full((5, 1, 2, 1, 1), 0.5)
    assert bald(agree).abs().max() < 1e-6  # uncertain, but no disagreement: no mutual information
    disagree = torch.stack([torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])]).reshape(2, 1, 2, 1, 1)
    assert torch.allclose(bald(disagree), torch.tensor(math.log(2)).reshape(1, 1, 1), atol=1e-6)


def test_streaming_equals_stacked_formula():
    g = torch.Generator().manual_seed(0)
    mc = torch.rand(20, 2, 4, 3, 3, generator=g).softmax(2)
    mean = mc.mean(0)
    expected = entropy(mean) - torch.stack([entropy(p) for p in mc]).mean(0)
    acc = BALDAccumulator()
    for p in mc:
        acc.update(p)
    assert acc.count == 20 and torch.allclose(acc.score(), expected, atol=1e-6)
