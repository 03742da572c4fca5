"""Selection methods, one home each, registered by name in ``registry``.

``baselines`` (random, entropy, margin, BALD), ``ralis`` (the learned DQN policy; agent training in
``ralis.agent``), ``deal`` (the difficulty head and its DS/DE policies), ``ripu`` (region impurity x
uncertainty with its own training loop for a target domain; registers its loss-only heads) and
``misical`` (a class-targeted DQN policy on fixed region embeddings). Importing this package registers
every method.
"""

from activeseg.methods import baselines, deal, misical, ralis, ripu  # noqa: F401  (each home registers its methods)
from activeseg.methods.registry import Method, build_policy, head_specs, image_rankers, lookup, names, register

__all__ = ["Method", "build_policy", "head_specs", "image_rankers", "lookup", "names", "register"]
