"""Device resolution and seeding, done once per command and passed explicitly."""

from __future__ import annotations

import random

import numpy as np
import torch

from activeseg.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N") from None


def random_state(generator: torch.Generator) -> dict:
    """The explicit generator's state and the global torch stream's (dropout draws from it), as
    ``{"generator", "torch_rng"}``: what a resumed computation needs to draw what the uninterrupted one draws."""
    return {"generator": generator.get_state(), "torch_rng": torch.get_rng_state()}


def restore_random_state(state: dict, generator: torch.Generator) -> None:
    """Sets ``generator`` and the global torch stream back to a ``random_state(...)``."""
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])


def seed_everything(seed: int) -> torch.Generator:
    """Seeds the global generators (for library code we do not control, e.g. dropout) and returns
    an explicit CPU generator for everything we sample ourselves."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
