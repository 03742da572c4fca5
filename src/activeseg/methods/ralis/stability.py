"""Is the DQN stable? Agent training on synthetic observations with pure-noise rewards.

With rewards that no action can change, the true Q of every action is the expected return-to-go,
about 0, so a stable learner keeps its TD loss near the reward variance and |Q| small; a learner that
bootstraps its own errors grows both without bound. The observations imitate the real ones: a state
of raw predicted-class counts and entropy grids that every episode restarts and drifts a little each
step, candidates with normalised KL histograms. Used by the tests and ``benchmarks/ralis_stability.py``.
"""

from __future__ import annotations

import numpy as np
import torch

from activeseg.methods.ralis.agent import DQNConfig, Learner, episode_diagnostics, make_learner_for
from activeseg.methods.ralis.policy import Observation

BINS = 32


def _regions(rng: np.random.Generator, n: int, num_classes: int, area: float, normalise: bool) -> np.ndarray:
    """Descriptors of ``n`` regions: C+1 class counts (raw or fractions), then 3 x 64 entropy values."""
    counts = rng.dirichlet(np.full(num_classes, 0.3), size=n) * (1.0 if normalise else area)
    counts = np.concatenate([counts, np.full((n, 1), 1e-7)], 1)
    level = rng.uniform(0.0, 1.5, size=(n, 1))
    grids = np.clip(level + rng.normal(0, 0.3, size=(n, 192)), 0, np.log(num_classes))
    return np.concatenate([counts, grids], 1).astype(np.float32)


def _histograms(rng: np.random.Generator, n: int) -> np.ndarray:
    h = rng.dirichlet(np.full(BINS, 0.5), size=(n, 2))
    return h.reshape(n, 2 * BINS).astype(np.float32)


def noise_training(dqn: DQNConfig, episodes: int = 20, steps: int = 20, pools: int = 24, candidates: int = 20,
                   state_regions: int = 240, num_classes: int = 11, reward_std: float = 0.75,
                   normalise_counts: bool = False, seed: int = 0) -> list[dict]:
    """DQN training on noise rewards; one record per episode (``loss``, ``q_abs_mean``, ``q_abs_max``,
    ``grad_norm``, ``epsilon``) with the same learner code as real agent training."""
    rng = np.random.default_rng(seed)
    phi = num_classes + 1 + 192
    learner: Learner = make_learner_for(dqn, state_regions, phi, seed)
    start = _regions(rng, state_regions, num_classes, 1800.0, normalise_counts)
    records = []

    def observe(state: np.ndarray) -> Observation:
        cands = [torch.from_numpy(np.concatenate([_regions(rng, candidates, num_classes, 1800.0, normalise_counts),
                                                  _histograms(rng, candidates)], 1)) for _ in range(pools)]
        return Observation(torch.from_numpy(state), [np.arange(candidates)] * pools, cands)

    for _ in range(episodes):
        state = start.copy()
        obs = observe(state)
        updates: dict[str, list[float]] = {}
        eps_used = []
        for i in range(steps):
            eps = learner.epsilon(dqn, i)
            eps_used.append(eps)
            if rng.random() < eps:
                actions = [int(rng.integers(candidates)) for _ in range(pools)]
            else:
                learner.qnet.eval()
                with torch.no_grad():
                    q = learner.qnet(obs.state[None].expand(pools, -1, -1), torch.stack(obs.candidates))
                actions = q.argmax(1).tolist()
            reward = float(rng.normal(0.0, reward_std))
            state = state + rng.normal(0, 0.02, size=state.shape).astype(np.float32) * np.abs(state)
            nxt = None if i == steps - 1 else observe(state)
            stats = learner.learn(dqn, obs, actions, reward, nxt, i, rng)
            for k, v in (stats or {}).items():
                updates.setdefault(k, []).append(v)
            obs = nxt
        learner.end_episode(dqn)
        rec = episode_diagnostics(updates)
        records.append({k: v for k, v in rec.items() if not k.startswith("step_")} | {"epsilon": float(np.mean(eps_used))})
    return records
