"""The options of a MiSiCAL-style class policy (spec ``misical.md`` sections 5, 5.1 and 8): the ``al.misical``
section, read by policy training (``activeseg misical train``) and by the ``misical`` strategy.

Kept apart from ``policy`` (which imports the RALIS agent's DQN parts, and through them the loop) so that
the loop's ``ALConfig`` can hold this section without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from activeseg.errors import ConfigError

if TYPE_CHECKING:  # the loop imports this module
    from activeseg.al.loop import ALConfig

MISSING_POLICY = ("strategy 'misical' needs a trained class policy: set al.misical.policy (or --policy PATH); train "
                  "one with `activeseg misical train CONFIG --target-class NAME` (it writes CLASS-sSEED/policy.pt)")
IMAGE_UNIT = "misical.unit 'image' (24 regions at once) is not implemented yet; use misical.unit: region"

@dataclass(frozen=True)
class MisicalConfig:
    """The MiSiCAL-style policy of one target class (spec misical.md sections 5, 5.1 and 8)."""

    target_class: str | None = None
    """Class c* whose quantity the policy maximises (e.g. 'sky'). Strategy misical: checked against the policy
    file's class (null: the file's); `activeseg misical` takes --target-class or target_classes instead."""
    unit: Literal["region", "image"] = "region"
    """Unit of selection: 'region' (the 4 x 6 grid cells) or 'image' (its 24 regions at once; not implemented
    yet: the misical strategy and commands refuse it)."""
    encoder: Literal["seg_start", "imagenet", "handcrafted"] = "seg_start"
    """Fixed embeddings: 'seg_start' (the start model's decoder features, pooled per cell), 'imagenet' (the frozen
    ImageNet encoder's deepest features) or 'handcrafted' (colour histogram + gradient; needs the pixels)."""
    add_position: bool = True
    """Append the normalised cell position (row/3, col/5) to each embedding."""
    reward_g: Literal["log1p", "linear"] = "log1p"
    """g of the reward g(Q + q) - g(Q): 'log1p' (diminishing returns) or 'linear' (ablation)."""
    episode_len: int = 96
    """B_ep: regions acquired per training episode, one per step."""
    pool_size: int = 32
    """M_pool: random unlabelled candidates per step (training and rollout deployment)."""
    episodes: int = 300
    """Training episodes (CPU profile: 100)."""
    gamma: float = 1.0
    """Discount (1: the finite-horizon return telescopes to g(Q_final); 0.99 as alternative; 0: a contextual
    bandit, Q(s, a) = the pick's own reward)."""
    replay: int = 10000
    """Replay buffer capacity in transitions (FIFO, uniform sampling)."""
    batch_size: int = 64
    """Transitions per DQN update (one update per step once the replay holds a batch)."""
    lr: float = 1e-3
    """Adam learning rate of the Q-network."""
    target_sync: int = 100
    """Copy the Q-network into the target network every this many updates."""
    eps_start: float = 1.0
    """Exploration rate at the first step."""
    eps_end: float = 0.05
    """Exploration rate after the decay."""
    eps_fraction: float = 0.5
    """Share of the training steps over which epsilon falls linearly from eps_start to eps_end."""
    deploy: Literal["oneshot_topB", "rollout"] = "oneshot_topB"
    """Deployment on D_V: 'oneshot_topB' (top B by Q(s_0, a), one pass) or 'rollout' (greedy over pools)."""
    policy: Path | None = None
    """Strategy misical: the trained class policy (policy.pt of `activeseg misical train`), required; its
    encoder, add_position and unit must equal these. `activeseg misical` trains its own (policy_dir)."""
    hidden: tuple[int, ...] = (128, 64)
    """Hidden widths of the per-candidate MLP (ReLU after each)."""
    runaway_loss_factor: float = 10.0
    """Stop when an episode's mean TD loss exceeds this many times the largest of the first five (0: never)."""
    runaway_q_factor: float = 2.0
    """Stop when a chosen action's |Q| exceeds this many times episode_len x the largest |reward| (0: never)."""

    def __post_init__(self) -> None:
        choices = {"unit": ("region", "image"), "encoder": ("seg_start", "imagenet", "handcrafted"),
                   "reward_g": ("log1p", "linear"), "deploy": ("oneshot_topB", "rollout")}
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise ConfigError(f"misical.{key} is {getattr(self, key)!r}; use one of {', '.join(map(repr, valid))}")
        for key in ("episode_len", "pool_size", "episodes", "replay", "batch_size", "target_sync"):
            if getattr(self, key) < 1:
                raise ConfigError(f"misical.{key} is {getattr(self, key)}; use 1 or more")
        if self.replay < self.batch_size:
            raise ConfigError(f"misical.replay ({self.replay}) is smaller than misical.batch_size ({self.batch_size}); "
                              "use a replay of at least one batch (default 10000 and 64)")
        if not 0.0 <= self.gamma <= 1.0:
            raise ConfigError(f"misical.gamma is {self.gamma}; use a discount in [0, 1] (1.0, 0.99; 0: each pick's "
                              f"own reward only)")
        if self.lr <= 0:
            raise ConfigError(f"misical.lr is {self.lr}; use a positive learning rate such as 1e-3")
        for key in ("eps_start", "eps_end", "eps_fraction"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"misical.{key} is {getattr(self, key)}; use a value in [0, 1]")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"misical.hidden is {self.hidden}; give one or more positive widths such as [128, 64]")
        for key in ("runaway_loss_factor", "runaway_q_factor"):
            if getattr(self, key) < 0:
                raise ConfigError(f"misical.{key} is {getattr(self, key)}; use 0 (no check) or a positive factor")


def check_run(cfg: "ALConfig") -> None:
    """The registry's check of a misical run (``Method.check``), before any data is read: a policy file is
    given, exists and is one, the unit is 'region', and the run's class and embedding options agree with the
    file's (``strategy.deployment_options``)."""
    if cfg.misical.policy is None:
        raise ConfigError(MISSING_POLICY)
    if not Path(cfg.misical.policy).is_file():
        raise ConfigError(f"al.misical.policy / --policy: {cfg.misical.policy} is not a file. {MISSING_POLICY}")
    if cfg.misical.unit != "region":
        raise ConfigError(IMAGE_UNIT)
    # imported when a run is checked, not with this module: the policy module reaches the loop
    from activeseg.methods.misical.policy import load_policy
    from activeseg.methods.misical.strategy import deployment_options

    deployment_options(cfg.misical, load_policy(cfg.misical.policy)[1], cfg.misical.policy)
