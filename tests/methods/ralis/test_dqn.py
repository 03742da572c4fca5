import math

import numpy as np
import pytest
import torch

from activeseg.methods.ralis.dqn import (
    ReplayBuffer,
    Transition,
    double_dqn_targets,
    dqn_update,
    epsilon,
    huber,
)
from activeseg.methods.ralis.qnet import QueryNetwork


def test_epsilon_schedule():
    assert [round(epsilon(t), 4) for t in (0, 10, 20, 30)] == [0.9, 0.3627, 0.165, 0.0923]


def test_double_dqn_target_and_huber_by_hand():
    y = double_dqn_targets(torch.tensor([2.0, 2.0]), torch.tensor([False, True]),
                           torch.tensor([[1.0, 3.0, 2.0]] * 2), torch.tensor([[10.0, 5.0, 7.0]] * 2), 0.999)
    assert torch.allclose(y, torch.tensor([6.995, 2.0]))
    assert math.isclose(huber(torch.tensor([6.0]), torch.tensor([6.995])).item(), 0.5 * 0.995 ** 2, rel_tol=1e-5)
    assert huber(torch.tensor([0.0]), torch.tensor([2.5])).item() == 2.0


def _t(i):
    return Transition(torch.zeros(1), torch.zeros(1), i, 0.0, None, None, True)


def test_replay_fifo_overwrites_oldest():
    buf = ReplayBuffer(600)
    for i in range(26 * 24):
        buf.push(_t(i))
    actions = {t.action for t in buf.items}
    assert len(buf) == 600 and min(actions) == 24 and max(actions) == 623
    sample = buf.sample(16, np.random.default_rng(0))
    assert len({t.action for t in sample}) == 16


def test_query_network_size_and_gate():
    net = QueryNetwork()
    assert sum(p.numel() for p in net.parameters()) == 390_099
    net.eval()
    q = net(torch.randn(3, 240, 204), torch.randn(3, 10, 268))
    assert q.shape == (3, 10)


def test_update_on_all_terminal_batch_fits_rewards():
    torch.manual_seed(0)
    policy, target = QueryNetwork(state_regions=4, phi_dim=6, kl_dim=2), QueryNetwork(state_regions=4, phi_dim=6, kl_dim=2)
    opt = torch.optim.SGD(policy.parameters(), lr=1e-2, momentum=0.9)
    batch = [Transition(torch.randn(4, 6), torch.randn(3, 8), i % 3, float(i % 3), None, None, True) for i in range(16)]
    losses = [dqn_update(policy, target, opt, batch)["loss"] for _ in range(200)]
    assert losses[-1] < 0.2 * losses[0]


def test_gamma_zero_targets_are_the_rewards_without_a_next_state_pass():
    torch.manual_seed(0)
    policy, target = (QueryNetwork(state_regions=4, phi_dim=6, kl_dim=2) for _ in range(2))
    opt = torch.optim.SGD(policy.parameters(), lr=0.0)
    batch = [Transition(torch.randn(4, 6), torch.randn(3, 8), i % 3, 0.5 * i, torch.randn(4, 6), torch.randn(3, 8),
                        False) for i in range(8)]
    calls = []
    target.register_forward_hook(lambda *_: calls.append("target"))
    stats = dqn_update(policy, target, opt, batch, gamma=0.0)
    assert calls == [] and stats["target_abs_mean"] == pytest.approx(sum(0.5 * i for i in range(8)) / 8)
    stats = dqn_update(policy, target, opt, batch, gamma=0.5)  # bootstrapped: the target net is asked
    assert calls == ["target"] and stats["target_abs_mean"] != pytest.approx(1.75)
