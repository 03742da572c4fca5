"""The DQN learns a toy environment whose best region is known: every candidate pays its first
feature as reward, so the best of a pool is the candidate whose first feature is largest (one-step,
terminal episodes)."""

import numpy as np
import torch

from activeseg.methods.ralis.dqn import ReplayBuffer, Transition, dqn_update, epsilon
from activeseg.methods.ralis.qnet import QueryNetwork


def _pool(g, n=5):
    state = torch.randn(4, 6, generator=g)
    cand = torch.randn(n, 8, generator=g)
    return state, cand, int(cand[:, 0].argmax())


def test_agent_learns_the_known_best_region():
    torch.manual_seed(0)
    g, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
    policy, target = QueryNetwork(4, 6, 2), QueryNetwork(4, 6, 2)
    target.load_state_dict(policy.state_dict())
    opt = torch.optim.SGD(policy.parameters(), lr=1e-2, momentum=0.9)
    buf = ReplayBuffer(600)
    for t in range(400):
        state, cand, best = _pool(g)
        if rng.random() < epsilon(t, tau=100):
            action = int(rng.integers(len(cand)))
        else:
            policy.eval()
            with torch.no_grad():
                action = int(policy(state[None], cand[None]).argmax())
        buf.push(Transition(state, cand, action, float(cand[action, 0]), None, None, True))
        if len(buf) >= 16:
            dqn_update(policy, target, opt, buf.sample(16, rng))
        if t % 5 == 0:
            target.load_state_dict(policy.state_dict())
    policy.eval()
    hits = 0
    with torch.no_grad():
        for _ in range(200):
            state, cand, best = _pool(g)
            hits += int(policy(state[None], cand[None]).argmax()) == best
    assert hits / 200 > 0.85  # chance is 0.2
