"""The one registry of selection methods. Each method's home registers itself here; the loop, the
trainer and ``al/`` look methods up by the name the user gave and know none of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from activeseg.al.strategies import Policy
from activeseg.errors import ConfigError


@dataclass(frozen=True)
class Method:
    """A selection method as the loop sees it.

    Attributes:
        name: what users write (``--strategy NAME``, ``al.strategy``).
        build: makes the policy; receives the agent checkpoint (None for methods without one).
        needs_agent: a trained checkpoint must be given (``--agent``); ``missing_agent`` says how to get one.
        needs_state_set: the policy observes the state images (``state_images``) besides the pool.
    """

    name: str
    build: Callable[[Path | str | None], Policy]
    needs_agent: bool = False
    needs_state_set: bool = False
    missing_agent: str = ""


_METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    if method.name in _METHODS:
        raise ValueError(f"selection method {method.name!r} is registered twice")
    _METHODS[method.name] = method
    return method


def names() -> list[str]:
    return sorted(_METHODS)


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


def build_policy(name: str, agent: Path | str | None = None) -> Policy:
    """The policy of method ``name``; ``agent`` is the checkpoint of methods that need one."""
    return check_method(name, agent).build(agent)
