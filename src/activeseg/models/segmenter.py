"""The segmentation model: an encoder, the FPN decoder, and the input normalisation between them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from activeseg.errors import ConfigError
from activeseg.models.decoder import FPNDecoder
from activeseg.models.efficientnet_lite import EfficientNetLite0Encoder, load_pretrained
from activeseg.models.tiny import TinyEncoder

Features = list[torch.Tensor]


@dataclass(frozen=True)
class ModelConfig:
    """The segmentation network."""

    encoder: Literal["lite0", "tiny"] = "lite0"
    """Encoder: 'lite0' (EfficientNet-Lite0) or 'tiny' (a small random network for tests)."""
    pretrained: bool = True
    """Load the ImageNet weights into the Lite0 encoder."""
    freeze_encoder: bool = True
    """Keep the encoder fixed (enables the feature cache); False fine-tunes it."""
    decoder_width: int = 128
    """Channels of the FPN decoder's top-down pathway."""
    dropout: float = 0.1
    """Dropout before the classifier (MC dropout samples through it)."""

    def __post_init__(self) -> None:
        if self.encoder not in ("lite0", "tiny"):
            raise ConfigError(f"model.encoder is {self.encoder!r}; use 'lite0' or 'tiny'")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout is {self.dropout}; use a value in [0, 1)")
        if self.decoder_width < 2 or self.decoder_width % 2:
            raise ConfigError(f"model.decoder_width is {self.decoder_width}; use an even number >= 2")


class Segmenter(nn.Module):
    """Encoder + decoder. ``forward`` takes uint8 images, or encoder features from the cache.

    Shape:
        images ``[N, 3, H, W]`` uint8 (or features, a list of ``[N, C_i, h_i, w_i]``)
        -> logits ``[N, num_classes, H, W]``.
    """

    def __init__(self, encoder: nn.Module, decoder: FPNDecoder, freeze_encoder: bool):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.freeze_encoder = freeze_encoder
        self.register_buffer("mean", torch.tensor(float(encoder.input_mean)), persistent=False)
        self.register_buffer("std", torch.tensor(float(encoder.input_std)), persistent=False)
        if freeze_encoder:
            self.encoder.requires_grad_(False)

    def train(self, mode: bool = True) -> "Segmenter":
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()  # a frozen encoder keeps its batch-norm statistics
        return self

    def encode(self, images: torch.Tensor) -> Features:
        x = (images.float() - self.mean) / self.std
        return self.encoder(x)

    def forward(self, inputs: torch.Tensor | Features, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        if isinstance(inputs, torch.Tensor):
            out_size = out_size or tuple(inputs.shape[-2:])
            inputs = self.encode(inputs)
        elif out_size is None:
            raise ValueError("out_size is required when the model is given features")
        return self.decoder([f.float() for f in inputs], out_size)

    def encoder_fingerprint(self) -> str:
        """A hash of the encoder's weights and buffers: part of every feature-cache key."""
        h = hashlib.sha1(type(self.encoder).__name__.encode())
        for name, t in sorted(self.encoder.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


def build_model(cfg: ModelConfig, num_classes: int) -> Segmenter:
    """Builds the network of ``cfg`` on the CPU (move it with ``.to(device)``)."""
    if cfg.encoder == "lite0":
        encoder = EfficientNetLite0Encoder()
        if cfg.pretrained:
            load_pretrained(encoder)
    else:
        encoder = TinyEncoder()
    decoder = FPNDecoder(encoder.out_channels, num_classes, cfg.decoder_width, cfg.dropout)
    return Segmenter(encoder, decoder, cfg.freeze_encoder)
