"""Selection methods, one home each, registered by name in ``registry``.

``baselines`` (random, entropy, margin, BALD) and ``ralis`` (the learned DQN policy; agent training in
``ralis.agent``). Importing this package registers every method.
"""

from activeseg.methods import baselines, ralis  # noqa: F401  (each home registers its methods)
from activeseg.methods.registry import Method, build_policy, lookup, names, register

__all__ = ["Method", "build_policy", "lookup", "names", "register"]
