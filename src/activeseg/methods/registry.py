"""The one registry of selection methods. Each method's home registers itself here; the loop, the
trainer and ``al/`` look methods up by the name the user gave and know none of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from activeseg.al.strategies import Policy
from activeseg.errors import ConfigError

if TYPE_CHECKING:  # the loop imports this module: no import back at run time
    from activeseg.al.loop import ALConfig


@dataclass(frozen=True)
class Method:
    """A selection method as the loop sees it.

    Attributes:
        name: what users write (``--strategy NAME``, ``al.strategy``).
        build: makes the policy from the run's ``ALConfig`` (e.g. ``cfg.agent``, ``cfg.deal``).
        needs_agent: a trained checkpoint must be given (``--agent``); ``missing_agent`` says how to get one.
        needs_state_set: the policy observes the state images (``state_images``) besides the pool.
        heads: the auxiliary heads the method's model carries, ``heads(cfg, num_classes) -> {name: spec}``
            (see ``activeseg.models.heads``); its start model is trained with their losses. None: no heads.
        options: the ``ALConfig`` section the method reads (recorded in full with its runs), or None.
        ranks_images: the policy also scores whole images (``image_scores(ctx, images) -> [M]``), as the
            image-level protocol (``al.deal.protocol: deal_original``) needs.
        whole_images: each step labels one whole image (the step's regions are that image's), so a run
            needs ``al.regions_per_step`` equal to the regions of an image.
        check: validates the run's options when its ``ALConfig`` is built, before any data is read (e.g. that
            a trained policy file is given and exists); raises ``ConfigError`` naming the remedy. None: nothing.
    """

    name: str
    build: Callable[["ALConfig"], Policy]
    needs_agent: bool = False
    needs_state_set: bool = False
    missing_agent: str = ""
    heads: Callable[["ALConfig", int], dict[str, dict]] | None = None
    options: str | None = None
    ranks_images: bool = False
    whole_images: bool = False
    check: Callable[["ALConfig"], None] | None = None


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in _METHODS:
        raise ValueError(f"selection method {method.name!r} is registered twice")
    _METHODS[method.name] = method
    return method


def names() -> list[str]:
    return sorted(_METHODS)


def image_rankers() -> list[str]:
    """Names of the methods that score whole images."""
    return [n for n in names() if _METHODS[n].ranks_images]


def lookup(name: str) -> Method:
    """The method called ``name``; an unknown name lists the valid ones."""
    if name not in _METHODS:
        raise ConfigError(f"unknown strategy {name!r}; valid names: {names()}")
    return _METHODS[name]


def check_method(name: str, agent: Path | str | None = None) -> Method:
    """The method ``name``, after checking that a method needing an agent checkpoint has one on disk."""
    method = lookup(name)
    if method.needs_agent and agent is None:
        raise ConfigError(method.missing_agent)
    if method.needs_agent and not Path(agent).is_file():
        raise ConfigError(f"al.agent / --agent: {agent} is not a file. {method.missing_agent}")
    return method


def build_policy(name: str, cfg: "ALConfig | None" = None) -> Policy:
    """The policy of method ``name`` with the options of ``cfg`` (default: every option at its default,
    no agent)."""
    method = check_method(name, None if cfg is None else cfg.agent)
    if cfg is None:
        from activeseg.al.loop import ALConfig

        cfg = ALConfig()
    return method.build(cfg)


def head_specs(name: str, cfg: "ALConfig", num_classes: int) -> dict[str, dict]:
    """The auxiliary heads of method ``name``'s model (name -> spec); {} for a method without heads."""
    method = lookup(name)
    return {} if method.heads is None else method.heads(cfg, num_classes)
