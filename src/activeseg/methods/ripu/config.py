"""RIPU's options (spec ``ripu.md`` section 8) and the domain-shift experiment that runs them (section 6,
comparison protocol A: RIPU's own training loop, one continuous run, the selector swapped)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from activeseg.config import DataConfig, Positive, PositiveFloat
from activeseg.errors import ConfigError
from activeseg.models.segmenter import ModelConfig
from activeseg.pipeline import default_cache_dir

#: Selectors of protocol A: (annotation mode, score). 'random' scores draw uniform noise (same squares,
#: per-image share and blocking as RIPU-RA).
SELECTORS: dict[str, tuple[str, str]] = {
    "ripu_ra": ("RA", "ripu"),
    "ripu_pa": ("PA", "ripu"),
    "ripu_random": ("RA", "random"),
    "ripu_uncertainty": ("RA", "uncertainty"),
    "ripu_impurity": ("RA", "impurity"),
}
#: References: (target images in the batches, negative learning on them, target labelled).
REFERENCES: dict[str, tuple[bool, bool, bool]] = {
    "source_only": (False, False, False),
    "uda_nl": (True, True, False),
    "target_full": (True, True, True),
}


@dataclass(frozen=True)
class RipuConfig:
    """RIPU's acquisition, losses and training schedule. Defaults: the reference's values, with the
    CPU profile's length (spec section 9) and this project's optimiser (a documented deviation)."""

    k: Positive = 1
    """RA: squares of (2k+1)^2 pixels, impurity and uncertainty over the same window, blocking radius 2k."""
    pa_window_k: Positive = 32
    """PA: impurity window (2k+1)^2 and blocking window around each picked pixel (65 x 65, the reference's;
    7 would be resolution-proportional at 480 px width)."""
    budget_bp: Positive = 220
    """RA: total budget as a fraction of each target image's pixels, in basis points (220 = 2.2 %, 500 = 5 %),
    spent in equal shares over the rounds."""
    pa_pixels: Positive = 40
    """PA: labelled pixels per target image after all rounds, at ``pa_defined_at`` (rescaled by area)."""
    pa_defined_at: tuple[int, int] = (360, 480)
    """PA: the image size (H, W) the pixel budget is defined at (CamVid native)."""
    carry_blocking: bool = True
    """Each pick's blocking window (5 x 5 for RA, 65 x 65 for PA) stays blocked in later rounds (the
    reference's "active" mask): squares of different rounds never overlap, so RA spends its whole share
    (spec table: 425 x 9 pixels per 360 x 480 image). False: blocked in the pick's round only; later squares
    may overlap earlier ones, which then add fewer new pixels."""
    rounds: Positive = 5
    """Acquisition rounds inside the one training run."""
    query_fracs: tuple[float, ...] = (0.25, 0.30, 0.35, 0.40, 0.45)
    """Iterations (as fractions of ``iterations``) at which the rounds select (reference: 10k..18k of 40k)."""
    iterations: Positive = 4000
    """Training iterations in all (reference 40k; project default 10k; CPU profile 4k)."""
    poly_span: PositiveFloat = 1.5625
    """The poly learning-rate decay runs over this many times ``iterations`` (reference: 62.5k / 40k)."""
    batch_source: Positive = 2
    """Source images per iteration."""
    batch_target: Positive = 2
    """Target images per iteration."""
    lambda_nl: float = 1.0
    """Weight of negative learning on target images (0: off)."""
    tau_nl: PositiveFloat = 0.05
    """Negative learning's threshold: classes with probability below it are pushed to 0."""
    lambda_cr: float = 0.1
    """Weight of local consistency on source boundary pixels (0: off)."""
    boundary_def: Literal["neighbour_differs", "laplacian"] = "neighbour_differs"
    """Source boundary pixels of L_cr: a differing label in the 3x3 neighbourhood, or a non-zero Laplacian."""
    norm_classes: Positive | None = None
    """Entropy normaliser ln(norm_classes) of impurity and uncertainty; None: the number of classes (19
    replicates the reference's constant)."""
    optimizer: Literal["adamw", "sgd"] = "adamw"
    """'adamw' (this project's segmentation optimiser; the encoder is frozen) or 'sgd' (momentum 0.9, the
    reference's, with lr 2.5e-3 for the classifier)."""
    lr: PositiveFloat = 1e-3
    """Peak learning rate of the decoder (the reference's lr_head)."""
    momentum: float = 0.9
    """SGD momentum (ignored by AdamW)."""
    weight_decay: float = 1e-4
    """Weight decay (the reference: 5e-4 with SGD)."""
    flip: bool = True
    """Random horizontal flips of source and target images."""
    log_every: Positive = 50
    """Iterations per point of the logged loss curves."""
    checkpoint_every: Positive = 250
    """Iterations between resume checkpoints (and after every round)."""

    def __post_init__(self) -> None:
        if len(self.query_fracs) != self.rounds:
            raise ConfigError(f"ripu.query_fracs has {len(self.query_fracs)} values and ripu.rounds is {self.rounds}; "
                              "give one fraction per round")
        if any(not 0 <= f < 1 for f in self.query_fracs) or list(self.query_fracs) != sorted(set(self.query_fracs)):
            raise ConfigError(f"ripu.query_fracs {self.query_fracs} must increase strictly within [0, 1)")
        if self.budget_bp > 10000:
            raise ConfigError(f"ripu.budget_bp is {self.budget_bp}; a share of the pixels is at most 10000 (100 %)")
        if self.poly_span < 1:
            raise ConfigError(f"ripu.poly_span is {self.poly_span}; use 1 or more (the decay must not pass 0)")
        if self.lambda_nl < 0 or self.lambda_cr < 0:
            raise ConfigError("ripu.lambda_nl and ripu.lambda_cr must be >= 0 (0 turns the loss off)")
        its = [round(f * self.iterations) for f in self.query_fracs]
        if len(set(its)) != len(its):
            raise ConfigError(f"ripu.query_fracs {self.query_fracs} of {self.iterations} iterations give the rounds "
                              f"iterations {its}, some equal; use more iterations or fractions further apart")
        if self.norm_classes is not None and self.norm_classes < 2:
            raise ConfigError(f"ripu.norm_classes is {self.norm_classes}; use null (the number of classes) or a "
                              "count >= the number of classes, e.g. 19 (the reference's constant)")
        if min(self.pa_defined_at) < 1:
            raise ConfigError(f"ripu.pa_defined_at is {self.pa_defined_at}; give a positive (H, W)")

    def query_iterations(self) -> list[int]:
        """The iteration before which each round selects."""
        return [round(f * self.iterations) for f in self.query_fracs]


@dataclass(frozen=True)
class DomainRoles:
    """The images of each role for ``setting: folders`` (your own data): ``SPLIT`` (every image of a split
    folder of ``data.dataset``) or ``SPLIT:FILE`` (the stems listed in a text file, one per line)."""

    source: tuple[str, ...] = ()
    """The labelled source domain, e.g. [day_train, day_val]."""
    target_pool: str = ""
    """The target images to label a few squares or pixels of (their labels folder answers the simulated
    queries), e.g. dusk."""
    target_test: str = ""
    """The target images the final model is scored on, e.g. dusk_test."""


@dataclass(frozen=True)
class DomainShiftConfig:
    """Active domain adaptation on CamVid day -> dusk (spec ripu.md section 6): a labelled source domain,
    an unlabelled target pool queried in rounds, and the target test set, under protocol A."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    ripu: RipuConfig = field(default_factory=RipuConfig)
    setting: Literal["camvid_day_dusk", "folders"] = "camvid_day_dusk"
    """Who plays which role: 'camvid_day_dusk' (source: day sequences of train + val; target pool: dusk train
    images; target test: dusk test images, by file name) or 'folders' (the splits and stems of ``domain``)."""
    domain: DomainRoles = field(default_factory=DomainRoles)
    """The roles with ``setting: folders``."""
    test_size: tuple[int, int] | None = (360, 480)
    """Score the target test set at this label resolution (logits upsampled); None: the working size."""
    selectors: tuple[str, ...] = tuple(SELECTORS)
    """Protocol A selectors to compare: ripu_ra, ripu_pa, ripu_random, ripu_uncertainty, ripu_impurity."""
    references: tuple[str, ...] = tuple(REFERENCES)
    """References: source_only (lower bound), uda_nl (source + negative learning, no target labels),
    target_full (every target pool pixel labelled, the upper bound)."""
    seeds: tuple[int, ...] = (20, 50, 234)
    """Seeds of every selector and reference."""
    store: Path = Path("runs/camvid_dusk/store.sqlite")
    """SQLite run store (a store of its own: its budgets are pixel shares, not regions)."""
    device: str = "auto"
    """'auto', 'cpu' or 'cuda'."""
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    """On-disk feature cache (None: memory only)."""

    def __post_init__(self) -> None:
        if self.setting == "folders" and not (self.domain.source and self.domain.target_pool and self.domain.target_test):
            raise ConfigError("setting: folders needs domain.source, domain.target_pool and domain.target_test (e.g. "
                              "domain: {source: [day], target_pool: dusk, target_test: dusk_test})")
        if self.setting != "folders" and self.domain != DomainRoles():
            raise ConfigError(f"domain.* is read with setting: folders only; setting {self.setting!r} defines the roles")
        unknown = [s for s in self.selectors if s not in SELECTORS]
        if unknown:
            raise ConfigError(f"selectors {unknown} are unknown; protocol A has {list(SELECTORS)}")
        unknown = [r for r in self.references if r not in REFERENCES]
        if unknown:
            raise ConfigError(f"references {unknown} are unknown; use {list(REFERENCES)}")
