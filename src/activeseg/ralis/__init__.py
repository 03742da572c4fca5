"""RALIS (Casanova et al., ICLR 2020): a DQN that learns which regions to label.

``features`` (region and candidate descriptors), ``qnet`` (the query network), ``dqn`` (exploration,
replay, the double-DQN update), ``policy`` (observing the model and acting greedily: the ``ralis``
strategy), ``agent`` (training episodes, checkpoints and resume).
"""
