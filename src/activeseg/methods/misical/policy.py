"""MiSiCAL-style class policy (a reconstruction, spec misical.md sections 5 and 5.1).

A DQN learns, on fixed region embeddings of D_T, to acquire regions rich in one target class c*: each
step it picks one of ``pool_size`` random unlabelled regions, and is rewarded by the gain of
g(Q_c*(S)) with Q_c* the ground-truth class quantity of the acquired set (no segmentation model is
trained inside the loop; everything here is tensors). The trained Q-network then selects any budget B
on another pool (D_V) in one batched pass (``oneshot_topB``) or by a greedy rollout over random pools.

Reused from RALIS (``methods/ralis``): the replay buffer, the transition record and the double-DQN
update with the Huber loss (``dqn``), the per-episode diagnostics and the runaway guard (``agent``).
The reward g(Q + q) - g(Q) is ``quantity.reward``. The DQN update runs on the CPU (``dqn_update``
builds its reward and action tensors there); the deployment functions run on the Q-network's device.

Learning note: with gamma = 1 the value reaches s_0 one step per target sync (about episode_len syncs
are needed before Q(s_0, .) is meaningful), and the advantage of a target-rich region at s_0 is small,
about ln(1 + Q_final) - ln(Q_final), against a value of ln(1 + Q_final): ``oneshot_topB`` depends on
resolving it.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from activeseg.config import from_dict, to_dict
from activeseg.errors import ConfigError
from activeseg.fileio import atomic_torch_save, load_checked
from activeseg.methods.misical.config import MisicalConfig
from activeseg.methods.ralis.agent import UPDATE_KEYS, AgentDivergedError, DQNConfig, episode_diagnostics, runaway
from activeseg.methods.misical.quantity import reward as step_reward
from activeseg.methods.ralis.dqn import ReplayBuffer, Transition, dqn_update

log = logging.getLogger(__name__)

POLICY_FORMAT = "activeseg-misical-policy-1"


class ClassQNet(nn.Module):
    """Q(s, a) of every candidate: one MLP on [phi(a); sigma], shared over the candidates.

    Args:
        embed_dim: d, the size of a region embedding phi.
        hidden: hidden widths (ReLU after each); the last layer gives one value.

    Shape:
        state ``[B, d + 1]``, candidates ``[B, N, d]`` -> Q ``[B, N]``.
    """

    def __init__(self, embed_dim: int, hidden: tuple[int, ...] = (128, 64)) -> None:
        super().__init__()
        self.embed_dim, self.hidden = embed_dim, tuple(hidden)
        layers: list[nn.Module] = []
        width = 2 * embed_dim + 1
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, state: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        # the first layer on [phi(a); sigma], with sigma's part computed once per state, not per candidate
        first, rest = self.mlp[0], self.mlp[1:]
        d = candidates.shape[-1]
        own = F.linear(candidates, first.weight[:, :d])  # [B, N, h]
        shared = F.linear(state, first.weight[:, d:], first.bias)  # [B, h]
        return rest(own + shared[:, None, :]).squeeze(-1)  # [B, N]


def summary(embeddings_acquired: torch.Tensor, t: int, episode_len: int) -> torch.Tensor:
    """sigma_t = [mean phi over the acquired regions (zeros if none); t / episode_len]. Uses no labels.

    Shape:
        embeddings_acquired ``[k, d]`` (k may be 0) -> ``[d + 1]``.
    """
    k, d = embeddings_acquired.shape
    mean = embeddings_acquired.mean(0) if k else embeddings_acquired.new_zeros(d)
    return torch.cat([mean, mean.new_tensor([t / episode_len])])


def exploration_rate(step: int, total_steps: int, cfg: MisicalConfig) -> float:
    """Linear epsilon, per step: eps_start at step 0, eps_end from step eps_fraction x total_steps on."""
    span = cfg.eps_fraction * total_steps
    frac = 1.0 if span <= 0 else min(1.0, step / span)
    return cfg.eps_start + frac * (cfg.eps_end - cfg.eps_start)


def _seeded_qnet(embed_dim: int, hidden: tuple[int, ...], seed: int) -> ClassQNet:
    """A Q-network initialised from ``seed`` without touching the global torch random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ClassQNet(embed_dim, hidden)


def _draw_pool(free: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` distinct free region ids, uniformly."""
    return rng.choice(np.flatnonzero(free), size=size, replace=False)


def train_class_policy(embeddings: torch.Tensor, quantities_c: torch.Tensor, cfg: MisicalConfig, seed: int,
                       progress: bool = True, on_episode: Callable[[dict], None] | None = None
                       ) -> tuple[ClassQNet, list[dict]]:
    """Trains the Q-network of one target class by double DQN on the D_T regions (spec 5).

    Each episode starts from an empty set and acquires ``episode_len`` regions, one per step, among
    ``pool_size`` free regions drawn uniformly; the choice is epsilon-greedy, epsilon linear per step
    (over all episodes' steps) from ``eps_start`` to ``eps_end`` within the first ``eps_fraction`` of
    training. Every step pushes one transition and, once the replay holds a batch, makes one update;
    the target network is synced every ``target_sync`` updates. After each episode the RALIS runaway
    guard checks the TD loss and |Q|.

    Args:
        embeddings: fixed region embeddings phi of D_T.
        quantities_c: q_c*(r), the target class's region-equivalents of each region (n_c*(r) / area).
        cfg: the policy's options.
        seed: seeds the Q-network's weights, the pools, the exploration and the replay sampling.
        progress: show a progress bar.
        on_episode: called with each episode's record as it ends (before the runaway check).

    Returns:
        The trained Q-network and one record per episode: ``return`` (sum of rewards), ``rewards``,
        ``loss`` (mean TD loss; None before the first update), ``q_abs_mean``, ``q_abs_max`` (|Q| of the
        updates' chosen actions), ``grad_norm``, ``target_abs_mean``, ``epsilon`` (the episode's mean),
        ``final_quantity`` (Q_c* of the acquired set) and ``updates`` (total so far).

    Raises:
        AgentDivergedError: the TD loss or |Q| ran away (the error's ``history`` holds the records).

    Shape:
        embeddings ``[N_images, R, d]``, quantities_c ``[N_images, R]``.
    """
    if embeddings.ndim != 3 or quantities_c.shape != embeddings.shape[:2]:
        raise ValueError(f"embeddings must be [N_images, R, d] and quantities_c [N_images, R]; got "
                         f"{tuple(embeddings.shape)} and {tuple(quantities_c.shape)}")
    emb = embeddings.detach().float().cpu().reshape(-1, embeddings.shape[-1])  # [N_images * R, d]
    q = quantities_c.detach().double().cpu().reshape(-1).numpy()  # [N_images * R]
    n, d = emb.shape
    L, M = cfg.episode_len, cfg.pool_size
    if n - (L - 1) < M:
        raise ConfigError(f"misical: {n} training regions cannot give a full pool of {M} at every step of an "
                          f"episode of {L}; lower misical.episode_len or misical.pool_size (need regions >= "
                          f"episode_len + pool_size - 1)")
    if (q < 0).any():
        raise ValueError("quantities_c holds negative class quantities; give n_c(r) / region area")
    rng = np.random.default_rng(seed)
    qnet = _seeded_qnet(d, cfg.hidden, seed)
    target = copy.deepcopy(qnet)
    optimizer = torch.optim.Adam(qnet.parameters(), lr=cfg.lr)
    replay = ReplayBuffer(cfg.replay)
    guard = DQNConfig(runaway_loss_factor=cfg.runaway_loss_factor, runaway_q_factor=cfg.runaway_q_factor)
    total_steps, step, n_updates = cfg.episodes * L, 0, 0
    history: list[dict] = []
    for episode in tqdm(range(cfg.episodes), desc=f"misical {cfg.target_class}", disable=not progress):
        free = np.ones(n, dtype=bool)
        acquired: list[int] = []
        quantity = 0.0
        pool = _draw_pool(free, M, rng)
        state = summary(emb[acquired], 0, L)
        rewards, eps_used = [], []
        updates: dict[str, list[float]] = {key: [] for key in UPDATE_KEYS}
        for t in range(L):
            eps = exploration_rate(step, total_steps, cfg)
            cand = emb[torch.from_numpy(pool)]  # [M, d]
            if rng.random() < eps:
                a = int(rng.integers(M))
            else:
                qnet.eval()
                with torch.no_grad():
                    a = int(qnet(state[None], cand[None])[0].argmax())
            region = int(pool[a])
            free[region] = False
            acquired.append(region)
            reward = step_reward(quantity, float(q[region]), cfg.reward_g)
            quantity += float(q[region])
            done = t == L - 1
            if not done:
                pool = _draw_pool(free, M, rng)
                next_state = summary(emb[acquired], t + 1, L)
            replay.push(Transition(state, cand, a, reward, None if done else next_state,
                                   None if done else emb[torch.from_numpy(pool)], done))
            if len(replay) >= cfg.batch_size:
                stats = dqn_update(qnet, target, optimizer, replay.sample(cfg.batch_size, rng), cfg.gamma)
                n_updates += 1
                if n_updates % cfg.target_sync == 0:
                    target.load_state_dict(qnet.state_dict())
                for key in UPDATE_KEYS:
                    updates[key].append(stats[key])
            rewards.append(reward)
            eps_used.append(eps)
            step += 1
            if not done:
                state = next_state
        diag = {k: v for k, v in episode_diagnostics(updates).items() if not k.startswith("step_")}
        record = {"episode": episode, "return": float(sum(rewards)), "rewards": rewards, **diag,
                  "epsilon": float(np.mean(eps_used)), "final_quantity": quantity, "updates": n_updates}
        history.append(record)
        log.debug("misical %s episode %d: return %.3f, loss %s, |Q| max %s, eps %.3f", cfg.target_class, episode,
                  record["return"], record["loss"], record["q_abs_max"], record["epsilon"])
        if on_episode is not None:
            on_episode(record)
        why = runaway(history, guard, L)
        if why is not None:
            # the RALIS guard names its own keys (dqn.runaway_*): here they are misical.runaway_*
            why = why.replace("dqn.runaway_", "misical.runaway_")
            err = AgentDivergedError(
                f"MiSiCAL policy training (class {cfg.target_class!r}, seed {seed}) stopped after episode "
                f"{episode + 1}: {why}. The Q-network is diverging; remedies: a smaller misical.lr (default "
                f"1e-3), misical.gamma 0.99, a larger misical.target_sync; or set the factor to 0 if the "
                f"growth is expected")
            err.history = history  # type: ignore[attr-defined]
            raise err
    qnet.eval()
    return qnet, history


def save_policy(path: Path, qnet: ClassQNet, cfg: MisicalConfig, meta: dict) -> None:
    """Writes a trained policy atomically: the Q-network, the options and ``meta`` (pass at least ``seed``
    and ``history``; the target class, encoder kind and embedding dimension are added from ``cfg``/``qnet``)."""
    meta = {"target_class": cfg.target_class, "encoder": cfg.encoder, "embed_dim": qnet.embed_dim, **meta}
    atomic_torch_save({"format": POLICY_FORMAT, "qnet": qnet.state_dict(), "embed_dim": qnet.embed_dim,
                       "hidden": list(qnet.hidden), "config": to_dict(cfg), "meta": meta}, Path(path))


def load_policy(path: Path | str) -> tuple[ClassQNet, dict]:
    """The Q-network (eval mode, CPU) and the meta of a policy file; ``meta["config"]`` is its MisicalConfig."""
    ckpt = load_checked(path, POLICY_FORMAT, "MiSiCAL policy file not found; train one first (train_class_policy, "
                        "then save_policy) or fix misical.policy", "not a MiSiCAL policy file")
    qnet = ClassQNet(ckpt["embed_dim"], tuple(ckpt["hidden"]))
    qnet.load_state_dict(ckpt["qnet"])
    qnet.eval()
    return qnet, {**ckpt["meta"], "config": from_dict(MisicalConfig, ckpt["config"])}


def _check_budget(available: torch.Tensor, B: int) -> torch.Tensor:
    ids = available.reshape(-1).cpu().nonzero().reshape(-1)
    if not 1 <= B <= len(ids):
        raise ConfigError(f"misical: budget B = {B} but the pool has {len(ids)} unlabelled regions; use a budget "
                          f"between 1 and {len(ids)}")
    return ids


def initial_q(qnet: ClassQNet, embeddings: torch.Tensor, episode_len: int) -> torch.Tensor:
    """Q(s_0, a) of every region, s_0 = (empty set, t = 0): one batched pass. The ranking it gives is static
    (it depends on no acquired region), so a caller may compute it once and select from it many times.

    Shape:
        embeddings ``[M, d]`` -> ``[M]`` float32 (CPU).
    """
    device = next(qnet.parameters()).device
    emb = embeddings.to(device, torch.float32)
    sigma0 = summary(emb[:0], 0, episode_len)  # [d + 1]: zeros, t = 0
    qnet.eval()
    with torch.no_grad():
        return qnet(sigma0[None], emb[None])[0].cpu()  # [M]


def top_available(q: torch.Tensor, available: torch.Tensor, B: int) -> torch.Tensor:
    """The B available regions of highest ``q``, in decreasing q; equal q: the lower id first.

    Shape:
        q ``[M]``, available ``[M]`` bool -> ``[B]`` long.
    """
    ids = _check_budget(available, B)
    order = torch.sort(q[ids], descending=True, stable=True).indices  # equal Q keep id order
    return ids[order[:B]]


def oneshot_topB(qnet: ClassQNet, embeddings: torch.Tensor, available: torch.Tensor, B: int,
                 episode_len: int) -> torch.Tensor:
    """The B available regions with the highest Q(s_0, a), s_0 = (empty set, t = 0): one batched pass.

    Deterministic: ties go to the lower index. Returns the region ids in decreasing Q.

    Shape:
        embeddings ``[M, d]``, available ``[M]`` bool -> ``[B]`` long (CPU).
    """
    _check_budget(available, B)  # before the pass
    return top_available(initial_q(qnet, embeddings, episode_len), available.reshape(-1).cpu(), B)


def rollout_scored(qnet: ClassQNet, embeddings: torch.Tensor, available: torch.Tensor, B: int, pool_size: int,
                   episode_len: int, generator: np.random.Generator, acquired: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``rollout``, also returning the Q of each pick. Shape: -> ``[B]`` long, ``[B]`` float64."""
    _check_budget(available, B)
    device = next(qnet.parameters()).device
    emb = embeddings.to(device, torch.float32)
    free = available.reshape(-1).cpu().numpy().copy()
    before = [] if acquired is None else [int(g) for g in acquired.reshape(-1)]
    picks: list[int] = []
    values: list[float] = []
    qnet.eval()
    with torch.no_grad():
        for _ in range(B):
            pool = _draw_pool(free, min(pool_size, int(free.sum())), generator)
            chosen = before + picks
            sigma = summary(emb[chosen], min(len(chosen), episode_len - 1), episode_len)
            q = qnet(sigma[None], emb[torch.from_numpy(pool).to(device)][None])[0]  # [pool]
            best = int(q.argmax())
            free[int(pool[best])] = False
            picks.append(int(pool[best]))
            values.append(float(q[best]))
    return torch.tensor(picks, dtype=torch.long), torch.tensor(values, dtype=torch.float64)


def rollout(qnet: ClassQNet, embeddings: torch.Tensor, available: torch.Tensor, B: int, pool_size: int,
            episode_len: int, generator: np.random.Generator, acquired: torch.Tensor | None = None) -> torch.Tensor:
    """B greedy picks, each the best of ``pool_size`` random available regions (fewer when fewer are left),
    with sigma_t updated after each pick.

    ``acquired``: regions already labelled (none by default); sigma starts from them (their mean embedding,
    t = their count), as when the policy continues a set built in earlier steps. For t >= episode_len the
    time feature is clamped at (episode_len - 1) / episode_len, the last value the policy saw in training
    (the mean embedding keeps following the picks). Returns ids in pick order.

    Shape:
        embeddings ``[M, d]``, available ``[M]`` bool, acquired ``[k]`` long -> ``[B]`` long (CPU).
    """
    return rollout_scored(qnet, embeddings, available, B, pool_size, episode_len, generator, acquired)[0]


def deploy(qnet: ClassQNet, embeddings: torch.Tensor, available: torch.Tensor, B: int, cfg: MisicalConfig,
           generator: np.random.Generator) -> torch.Tensor:
    """B regions chosen by ``cfg.deploy`` ('oneshot_topB' ignores the generator).

    Shape:
        embeddings ``[M, d]``, available ``[M]`` bool -> ``[B]`` long.
    """
    if cfg.deploy == "oneshot_topB":
        return oneshot_topB(qnet, embeddings, available, B, cfg.episode_len)
    return rollout(qnet, embeddings, available, B, cfg.pool_size, cfg.episode_len, generator)
