"""RALIS (Casanova et al., ICLR 2020): a DQN that learns which regions to label.

``features`` (region and candidate descriptors), ``qnet`` (the query network), ``dqn`` (exploration,
replay, the double-DQN update), ``policy`` (observing the model and acting greedily: the ``ralis``
strategy), ``agent`` (training episodes, checkpoints and resume).
"""

from activeseg.methods.ralis.policy import RalisPolicy
from activeseg.methods.registry import Method, register

MISSING_AGENT = ("strategy 'ralis' needs a trained agent: pass --agent PATH (or al.agent in the config); "
                 "train one with `activeseg agent train configs/ralis_agent_camvid.yaml`")

register(Method("ralis", lambda cfg: RalisPolicy.load(cfg.agent), needs_agent=True, needs_state_set=True, missing_agent=MISSING_AGENT))
