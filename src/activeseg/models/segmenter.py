"""The segmentation model: an encoder, the FPN decoder, and the input normalisation between them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from activeseg.errors import ConfigError
from activeseg.models.decoder import FPNDecoder
from activeseg.models.heads import AuxHead, build_head
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
    """Encoder + decoder (+ optional auxiliary heads). ``forward`` takes uint8 images, or encoder
    features from the cache, and returns the logits; ``outputs`` returns the heads' outputs as well.

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
        self.heads = nn.ModuleDict()  # auxiliary heads by name (activeseg.models.heads); none by default

    def train(self, mode: bool = True) -> "Segmenter":
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()  # a frozen encoder keeps its batch-norm statistics
        return self

    def encode(self, images: torch.Tensor) -> Features:
        x = (images.float() - self.mean) / self.std
        return self.encoder(x)

    def _features(self, inputs: torch.Tensor | Features, out_size: tuple[int, int] | None
                  ) -> tuple[Features, tuple[int, int]]:
        if isinstance(inputs, torch.Tensor):
            out_size = out_size or tuple(inputs.shape[-2:])
            inputs = self.encode(inputs)
        elif out_size is None:
            raise ValueError("out_size is required when the model is given features")
        return [f.float() for f in inputs], out_size

    def forward(self, inputs: torch.Tensor | Features, out_size: tuple[int, int] | None = None) -> torch.Tensor:
        feats, out_size = self._features(inputs, out_size)
        return self.decoder(feats, out_size)

    def outputs(self, inputs: torch.Tensor | Features, out_size: tuple[int, int] | None = None
                ) -> dict[str, torch.Tensor]:
        """``{"logits": [N, C, H, W], <head name>: <its output>, ...}`` from one decoder pass (one
        dropout sample shared by the logits and every head)."""
        feats, out_size = self._features(inputs, out_size)
        coarse = self.decoder.coarse_logits(feats)  # [N, C, H/4, W/4]
        out = {"logits": F.interpolate(coarse, size=out_size, mode="bilinear", align_corners=False)}
        for name, head in self.heads.items():
            if head.produces_output:
                out[name] = head(coarse, out_size)
        return out

    def add_head(self, name: str, head: AuxHead) -> None:
        if name == "logits" or name in self.heads:
            raise ValueError(f"head name {name!r} is taken")
        head.output_key = name
        self.heads[name] = head

    def head_specs(self) -> dict[str, dict]:
        """The spec of every head by name (what ``build_model`` needs to rebuild them)."""
        return {name: dict(head.spec) for name, head in self.heads.items()}

    def encoder_fingerprint(self) -> str:
        """A hash of the encoder's weights and buffers: part of every feature-cache key."""
        h = hashlib.sha1(type(self.encoder).__name__.encode())
        for name, t in sorted(self.encoder.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


def build_model(cfg: ModelConfig, num_classes: int, heads: dict[str, dict] | None = None) -> Segmenter:
    """Builds the network of ``cfg`` on the CPU (move it with ``.to(device)``), with an auxiliary head
    per entry of ``heads`` (name -> spec, see ``activeseg.models.heads``)."""
    if cfg.encoder == "lite0":
        encoder = EfficientNetLite0Encoder()
        if cfg.pretrained:
            load_pretrained(encoder)
    else:
        encoder = TinyEncoder()
    decoder = FPNDecoder(encoder.out_channels, num_classes, cfg.decoder_width, cfg.dropout)
    model = Segmenter(encoder, decoder, cfg.freeze_encoder)
    for name, spec in (heads or {}).items():
        model.add_head(name, build_head(spec, num_classes))
    return model
