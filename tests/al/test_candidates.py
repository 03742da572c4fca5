import numpy as np
import torch

from activeseg.al.candidates import sample_pools, select_global_topk, select_per_pool


def test_pools_are_k_by_n_distinct_unlabelled():
    avail = torch.ones(257, 24, dtype=torch.bool)
    avail[:50, :20] = False
    pools = sample_pools(avail, 24, 10, np.random.default_rng(0))
    drawn = np.concatenate(pools)
    assert len(pools) == 24 and all(len(p) == 10 for p in pools)
    assert len(set(drawn.tolist())) == 240 and avail.reshape(-1)[torch.as_tensor(drawn)].all()


def test_pools_deterministic_per_seed():
    avail = torch.ones(30, 24, dtype=torch.bool)
    a = sample_pools(avail, 24, 10, np.random.default_rng(5))
    b = sample_pools(avail, 24, 10, np.random.default_rng(5))
    assert all((x == y).all() for x, y in zip(a, b))


def test_pools_shrink_when_few_regions_remain():
    avail = torch.zeros(4, 24, dtype=torch.bool)
    avail[1, :30 // 2] = True
    avail[3, :15] = True
    pools = sample_pools(avail, 24, 10, np.random.default_rng(0))
    assert len(pools) == 24 and sum(len(p) for p in pools) == 30


def test_one_pick_per_pool_is_its_argmax():
    scores = torch.arange(100, dtype=torch.float32)
    pools = [np.array([3, 70, 5]), np.array([9, 2, 8])]
    assert select_per_pool(scores, pools).tolist() == [70, 9]


def test_global_topk_skips_labelled():
    scores = torch.tensor([0.9, 0.1, 0.8, 0.7])
    avail = torch.tensor([False, True, True, True])
    assert select_global_topk(scores, avail, 2).tolist() == [2, 3]
