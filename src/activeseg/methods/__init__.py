"""Selection methods, one home each, registered by name in ``registry``.

``baselines`` (random, entropy, margin, BALD), ``ralis`` (the learned DQN policy; agent training in
``ralis.agent``) and ``deal`` (the difficulty head and its DS/DE policies). Importing this package
registers every method.
"""

from activeseg.methods import baselines, deal, ralis  # noqa: F401  (each home registers its methods)
from activeseg.methods.registry import Method, build_policy, head_specs, image_rankers, lookup, names, register

__all__ = ["Method", "build_policy", "head_specs", "image_rankers", "lookup", "names", "register"]
