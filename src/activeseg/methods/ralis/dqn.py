"""DQN pieces of RALIS (spec 5): exploration schedule, FIFO replay, double-DQN targets, the update."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def epsilon(t: int, start: float = 0.9, end: float = 0.05, tau: float = 10.0) -> float:
    """eps_t = end + (start - end) * exp(-t / tau): 0.90, 0.363, 0.165 at t = 0, 10, 20."""
    return end + (start - end) * math.exp(-t / tau)


@dataclass
class Transition:
    """One pool's transition: (S_t, X_t, a_t, r_{t+1}, S_{t+1}, X_{t+1}, done)."""

    state: torch.Tensor
    candidates: torch.Tensor
    action: int
    reward: float
    next_state: torch.Tensor | None
    next_candidates: torch.Tensor | None
    done: bool


class ReplayBuffer:
    """FIFO ring of transitions; uniform sampling without replacement."""

    def __init__(self, capacity: int = 600) -> None:
        self.capacity = capacity
        self.items: list[Transition] = []
        self.next = 0  # where the next push goes once full

    def __len__(self) -> int:
        return len(self.items)

    def push(self, item: Transition) -> None:
        if len(self.items) < self.capacity:
            self.items.append(item)
        else:
            self.items[self.next] = item
        self.next = (self.next + 1) % self.capacity

    def sample(self, batch_size: int, rng: np.random.Generator) -> list[Transition]:
        idx = rng.choice(len(self.items), size=min(batch_size, len(self.items)), replace=False)
        return [self.items[i] for i in idx]

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "items": self.items, "next": self.next}

    def load_state_dict(self, state: dict) -> None:
        self.capacity, self.items, self.next = state["capacity"], list(state["items"]), state["next"]


def double_dqn_targets(rewards: torch.Tensor, done: torch.Tensor, q_policy_next: torch.Tensor,
                       q_target_next: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + gamma * Q_target(S', argmax_b Q_policy(S', b)); y = r when terminal.

    Shape:
        rewards, done ``[B]``; q_*_next ``[B, N]`` (rows of terminal transitions are ignored) -> ``[B]``.
    """
    best = q_policy_next.argmax(1, keepdim=True)
    bootstrap = q_target_next.gather(1, best).squeeze(1)
    return rewards + gamma * bootstrap * (~done).to(rewards.dtype)


def huber(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Smooth-L1 loss with delta 1, mean over the batch."""
    return F.smooth_l1_loss(prediction, target, beta=1.0)


def dqn_update(policy: torch.nn.Module, target: torch.nn.Module, optimizer: torch.optim.Optimizer,
               batch: list[Transition], gamma: float = 0.999, target_bn_mode: str = "eval",
               policy_next_bn_mode: str = "eval", grad_clip: float | None = None) -> dict[str, float]:
    """One gradient step of double DQN with the Huber loss.

    The policy net runs in train mode for Q(S, a); on S' it chooses a* with its batch norm in
    ``policy_next_bn_mode`` and the target net evaluates a* with its batch norm in ``target_bn_mode``
    ('eval': running statistics, the reference; 'train': batch statistics, as Q(S, a) is fitted). A
    batch whose transitions are all terminal, or ``gamma`` 0, needs no next-state pass (targets = rewards;
    the next-state passes, and what a 'train' batch-norm mode would do to the running statistics, are skipped).
    ``grad_clip`` bounds the gradient norm (None: no clipping).

    Returns:
        ``loss`` (TD Huber loss), ``q_abs_mean`` and ``q_abs_max`` (|Q(S, a)| of the batch's actions),
        ``grad_norm`` (before clipping), ``target_abs_mean`` (|y|).
    """
    state = torch.stack([t.state for t in batch])  # [B, |S|, D]
    cand = torch.stack([t.candidates for t in batch])  # [B, N, D + 64]
    actions = torch.tensor([t.action for t in batch])
    rewards = torch.tensor([t.reward for t in batch], dtype=torch.float32)
    done = torch.tensor([t.done for t in batch])
    with torch.no_grad():
        targets = rewards.clone()
        live = (~done).nonzero().reshape(-1)
        if len(live) and gamma != 0:
            ns = torch.stack([batch[i].next_state for i in live])
            nc = torch.stack([batch[i].next_candidates for i in live])
            policy.train(policy_next_bn_mode == "train")
            q_pol = policy(ns, nc)
            target.train(target_bn_mode == "train")
            q_tgt = target(ns, nc)
            targets[live] = double_dqn_targets(rewards[live], done[live], q_pol, q_tgt, gamma)
    policy.train()
    q = policy(state, cand).gather(1, actions[:, None]).squeeze(1)
    loss = huber(q, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in policy.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip is not None else math.inf)
    optimizer.step()
    qa = q.detach().abs()
    return {"loss": loss.item(), "q_abs_mean": qa.mean().item(), "q_abs_max": qa.max().item(),
            "grad_norm": float(norm), "target_abs_mean": targets.abs().mean().item()}
