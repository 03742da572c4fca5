"""Auxiliary heads: extra model parts that methods bring, each with its own loss.

A head reads the segmentation logits at the decoder's resolution (stride 4) and returns one tensor,
stored under its name in ``Segmenter.outputs``. It carries its loss (weight included) and, optionally,
metrics of its output, so the trainer adds and reports them without knowing what they are. A head may
be a loss only (``produces_output = False``: it adds a term computed from the logits, as RIPU's
negative-learning and local-consistency losses do), and may apply to one domain of a batch that mixes
a labelled source domain and a target domain (``domain``). Heads are built from JSON-able specs (``{"type": NAME, ...}``) through a registry of head types, which is how
checkpoints rebuild them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

from activeseg.errors import ConfigError


class HeadMetrics(Protocol):
    """Accumulates a head's metrics over batches."""

    def update(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> None: ...

    def result(self) -> dict[str, float | None]: ...


class AuxHead(nn.Module):
    """Base of every auxiliary head.

    Subclasses set ``self.spec`` (the JSON-able dict they were built from, ``type`` included) and
    implement ``forward`` and ``loss``; ``new_metrics`` is optional. ``output_key`` is the name the
    model stores the head's output under (set by ``Segmenter.add_head``).
    """

    spec: dict
    output_key: str = ""
    produces_output: bool = True
    """False: a loss-only head; the model stores no output for it and ``forward`` is never called."""
    domain: str = "all"
    """Which images of a batch the loss sees: 'all', 'source' or 'target' (batches that carry domains)."""

    @property
    def lr_scale(self) -> float:
        """The head's learning rate as a multiple of the network's (``spec["lr_scale"]``, default 1)."""
        return float(self.spec.get("lr_scale", 1.0))

    def forward(self, logits: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
        """Shape: logits ``[N, C, h, w]`` (stride 4) -> the head's output (at ``out_size``)."""
        raise NotImplementedError

    def loss(self, outputs: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """The head's weighted loss from the model's outputs and the batch labels ``[N, H, W]`` (only the
        images of the head's ``domain`` when the batch carries domains)."""
        raise NotImplementedError

    def new_metrics(self) -> HeadMetrics | None:
        """A fresh accumulator of the head's metrics, or None (the head reports none)."""
        return None


HeadFactory = Callable[[dict, int], AuxHead]
_HEAD_TYPES: dict[str, HeadFactory] = {}


def register_head(type_name: str, factory: HeadFactory) -> None:
    """Makes ``{"type": type_name, ...}`` specs buildable: ``factory(spec, num_classes) -> head``."""
    if type_name in _HEAD_TYPES:
        raise ValueError(f"head type {type_name!r} is registered twice")
    _HEAD_TYPES[type_name] = factory


def build_head(spec: dict, num_classes: int) -> AuxHead:
    """The head of ``spec``; an unknown type lists the registered ones."""
    kind = spec.get("type")
    if kind not in _HEAD_TYPES:
        raise ConfigError(f"unknown head type {kind!r}; registered: {sorted(_HEAD_TYPES)} "
                          "(heads come with their method in activeseg.methods)")
    return _HEAD_TYPES[kind](spec, num_classes)
