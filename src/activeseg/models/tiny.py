"""A tiny randomly initialised encoder with the Lite0 interface, for fast tests."""

from __future__ import annotations

import torch
from torch import nn


class TinyEncoder(nn.Module):
    """Four strided conv stages (strides 4, 8, 16, 32) with few channels.

    Shape:
        ``[N, 3, H, W]`` -> list of ``[N, C_i, ceil(H/s_i), ceil(W/s_i)]``.
    """

    out_channels = (8, 12, 16, 16)
    strides = (4, 8, 16, 32)
    input_mean, input_std = 127.0, 128.0

    def __init__(self) -> None:
        super().__init__()

        def down(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.stem = down(3, 8, 4)
        self.stages = nn.ModuleList([nn.Identity(), down(8, 12, 2), down(12, 16, 2), down(16, 16, 2)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats
