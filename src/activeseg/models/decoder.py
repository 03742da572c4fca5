"""A light FPN-style decoder: lateral 1x1 convs, a top-down pathway, per-level 3x3 convs merged at
stride 4, dropout (the layer MC dropout switches on) and a 1x1 classifier."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class FPNDecoder(nn.Module):
    """Multi-scale features -> class logits at the input resolution.

    Args:
        in_channels: channels of the encoder levels, finest first.
        num_classes: output classes.
        width: channels of the top-down pathway; each level's output has ``width // 2``.
        dropout: probability of the ``Dropout2d`` before the classifier.

    Shape:
        features ``[N, C_i, h_i, w_i]`` (finest first) -> logits ``[N, num_classes, *out_size]``.
    """

    def __init__(self, in_channels: tuple[int, ...], num_classes: int, width: int = 128, dropout: float = 0.1):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.smooth = nn.ModuleList(conv_bn_relu(width, width // 2) for _ in in_channels)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(width // 2, num_classes, 1)

    def forward(self, features: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        return self.classify(self.dropout(self.embed(features)), out_size)

    def coarse_logits(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The logits at stride 4, before upsampling (``forward`` upsamples exactly these).

        Shape:
            features (finest first) -> ``[N, num_classes, h_0, w_0]``.
        """
        return self.classifier(self.dropout(self.embed(features)))

    def embed(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The merged feature map at stride 4, just before the dropout point.

        Shape:
            features (finest first) -> ``[N, width/2, h_0, w_0]``.
        """
        # top-down: start at the coarsest level, add each finer lateral
        x = self.lateral[-1](features[-1])
        merged = [self.smooth[-1](x)]
        for i in range(len(features) - 2, -1, -1):
            lat = self.lateral[i](features[i])
            x = lat + F.interpolate(x, size=lat.shape[-2:], mode="nearest")
            merged.append(self.smooth[i](x))
        finest = merged[-1].shape[-2:]
        y = sum(F.interpolate(m, size=finest, mode="bilinear", align_corners=False) for m in merged[:-1])
        return y + merged[-1]  # [N, width/2, H/4, W/4]

    def classify(self, y: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """Classifier on the (possibly dropped-out) merged map, upsampled to ``out_size``."""
        return F.interpolate(self.classifier(y), size=out_size, mode="bilinear", align_corners=False)
