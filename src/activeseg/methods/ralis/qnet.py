"""The RALIS query network Q(S, a) (spec 4): per-element layers shared over regions/candidates."""

from __future__ import annotations

import torch
from torch import nn


def block(cin: int, cout: int, relu: bool = True) -> nn.Sequential:
    """Pre-activation block BN -> ReLU -> kernel-1 conv, on ``[B, C, L]``."""
    layers: list[nn.Module] = [nn.BatchNorm1d(cin)]
    if relu:
        layers.append(nn.ReLU())
    layers.append(nn.Conv1d(cin, cout, 1))
    return nn.Sequential(*layers)


class QueryNetwork(nn.Module):
    """Q values of the candidates of each pool given the state.

    Args:
        state_regions: |S|, regions of the state set (240 for CamVid's D_S).
        phi_dim: region descriptor size (204).
        kl_dim: size of the KL-histogram tail of the candidate features (64).
        first_relu: apply ReLU to the batch-normalised raw input (reference quirk Q6).

    Shape:
        state ``[B, |S|, phi_dim]``, candidates ``[B, N, phi_dim + kl_dim]`` -> Q ``[B, N]``.
    """

    def __init__(self, state_regions: int = 240, phi_dim: int = 204, kl_dim: int = 64, first_relu: bool = True):
        super().__init__()
        self.state_regions, self.phi_dim, self.kl_dim, self.first_relu = state_regions, phi_dim, kl_dim, first_relu
        self.state_branch = nn.Sequential(block(phi_dim, 256, first_relu), block(256, 128), block(128, 1))
        self.state_head = nn.Sequential(nn.BatchNorm1d(state_regions), nn.ReLU(), nn.Linear(state_regions, 128))
        self.action_branch = nn.Sequential(block(phi_dim, 512, first_relu), block(512, 256), block(256, 128))
        self.combine = nn.Sequential(nn.BatchNorm1d(256), nn.Conv1d(256, 1, 1))
        self.gate = nn.Sequential(nn.BatchNorm1d(kl_dim), nn.ReLU(), nn.Conv1d(kl_dim, 1, 1))

    def forward(self, state: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        z = self.state_head(self.state_branch(state.transpose(1, 2)).squeeze(1))  # [B, 240] -> [B, 128]
        x = candidates.transpose(1, 2)  # [B, N, D] -> [B, D, N]
        v = self.action_branch(x[:, :self.phi_dim])  # [B, 128, N]
        zv = torch.cat([v, z[:, :, None].expand(-1, -1, v.shape[-1])], 1)  # [B, 256, N]
        o = self.combine(zv).squeeze(1)  # [B, N]
        g = torch.sigmoid(self.gate(x[:, -self.kl_dim:])).squeeze(1)  # [B, N], in (0, 1)
        return g * o
