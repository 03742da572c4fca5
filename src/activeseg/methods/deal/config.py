"""DEAL's options (spec ``deal.md`` section 8): the difficulty branch, its loss and the acquisition."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from activeseg.config import ADDED, NonNegative, Positive, PositiveFloat
from activeseg.errors import ConfigError
from activeseg.train.trainer import TrainConfig


@dataclass(frozen=True)
class OriginalProtocolConfig:
    """The paper's image-level protocol (spec deal.md section 4), used with ``protocol: deal_original``:
    a random start set, then rounds that label whole images, each round's model trained from scratch on
    every labelled image. Defaults: the paper's counts and the CPU profile's training (section 9)."""

    start_images: Positive = 40
    """Images labelled whole before the first round, drawn at random from the pool with the run's seed:
    every strategy of a seed starts from the same images (the paper: 40 of CamVid's 367)."""
    images_per_round: Positive = 20
    """Whole images labelled each round: the best-scored of the round's candidates (the paper: 20)."""
    rounds: NonNegative = 6
    """Acquisition rounds; the run trains and evaluates rounds + 1 models (the paper: 6, i.e. 40, 60, ...,
    160 images)."""
    epochs_per_round: Positive = 40
    """Epochs of each round's training from scratch (the paper: 100; CPU profile: 40)."""
    val_every: Positive = 5
    """Validate every k epochs (and after the last); the best-val epoch's weights are evaluated on test
    and score the next round's candidates (the paper: 5)."""
    batch_size: Positive = 8
    """Images per gradient step (the paper: 4)."""
    optimizer: Literal["adamw", "sgd"] = "adamw"
    """'adamw' (this project's supervised recipe) or 'sgd' with momentum (the paper: SGD, momentum 0.9)."""
    lr: PositiveFloat = 2e-3
    """Peak learning rate (the paper: SGD 0.1 for the decoder and heads, 0.01 for the backbone, which is
    frozen here)."""
    momentum: float = 0.9
    """SGD momentum in [0, 1) (ignored by AdamW)."""
    weight_decay: float = 1e-4
    """Weight decay, 0 or more (the paper: 5e-4)."""
    lr_schedule: Literal["cosine", "poly"] = "cosine"
    """Decay over the round's epochs: 'cosine' or 'poly' (power 0.9, per epoch; the paper: poly per
    iteration)."""
    augmentation: Literal["flip", "none"] = "flip"
    """Training augmentation: 'flip' (random horizontal flips) or 'none'. A deviation from the paper's
    random scale-crop (0.8-1.2), flip and colour jitter (0.5), which the cached encoder features rule out."""

    def __post_init__(self) -> None:
        for key in ("start_images", "images_per_round", "epochs_per_round", "val_every", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"al.deal.original.{key} is {getattr(self, key)}; use 1 or more")
        if self.rounds < 0:
            raise ConfigError(f"al.deal.original.rounds is {self.rounds}; use 0 or more acquisition rounds")
        for key, valid in (("optimizer", ("adamw", "sgd")), ("lr_schedule", ("cosine", "poly")),
                           ("augmentation", ("flip", "none"))):
            if getattr(self, key) not in valid:
                raise ConfigError(f"al.deal.original.{key} is {getattr(self, key)!r}; use one of "
                                  f"{', '.join(map(repr, valid))}")
        if self.lr <= 0:
            raise ConfigError(f"al.deal.original.lr is {self.lr}; use a positive learning rate such as 2e-3")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"al.deal.original.momentum is {self.momentum}; use a value in [0, 1) such as 0.9 "
                              f"(the paper's)")
        if self.weight_decay < 0:
            raise ConfigError(f"al.deal.original.weight_decay is {self.weight_decay}; use 0 or more, such as 1e-4 "
                              f"(the paper: 5e-4)")
        try:
            self.train_config()  # every check of the trainer's options, at config load
        except ConfigError as e:
            raise ConfigError(f"al.deal.original gives an invalid training: {e}") from e

    @property
    def labelled_images(self) -> list[int]:
        """Images labelled at each training: start_images, + images_per_round, ... (rounds + 1 values)."""
        return [self.start_images + r * self.images_per_round for r in range(self.rounds + 1)]

    def train_config(self) -> TrainConfig:
        """Each round's training: every epoch (no early stopping), whole images (flipped at random with
        ``augmentation: flip``), the best validated epoch kept."""
        return TrainConfig(max_epochs=self.epochs_per_round, patience=0, batch_size=self.batch_size, lr=self.lr,
                           weight_decay=self.weight_decay, crop=None, flip=self.augmentation == "flip",
                           optimizer=self.optimizer, momentum=self.momentum, val_every=self.val_every,
                           lr_schedule=self.lr_schedule)


@dataclass(frozen=True)
class DealConfig:
    """DEAL (difficulty-aware active learning); the score (DS/DE) and the unit (region/image) are named
    by the strategy: deal_de, deal_ds, deal_de_image, deal_ds_image."""

    ds_uncertainty: Literal["none", "entropy", "least_confidence", "margin"] = "none"
    """DS = mean of difficulty x U with U: 'none' (U = 1, the released default), 'entropy',
    'least_confidence' or 'margin'."""
    de_levels: int = 8
    """DE: bins of the difficulty histogram (the paper's hard levels: 8 for CamVid, 10 for Cityscapes)."""
    de_range: Literal["unit_minmax", "fixed01"] = "unit_minmax"
    """DE bin range: 'unit_minmax' (the unit's own min..max; a constant map has DE 0) or 'fixed01' ([0, 1])."""
    pam_grid: tuple[int, int] | None = None
    """Attention grid (h, w) of the probability attention module; None: H/6 x W/6 of the input
    (30 x 40 at 180 x 240)."""
    pam_gamma_init: float = 0.0
    """Initial value of the attention's learnable weight gamma (0: the branch starts as softmax + 1x1
    conv)."""
    dif_loss: Literal["wce", "bce"] = "wce"
    """Difficulty loss: 'wce' (class-balanced BCE, weights 1/sqrt(n + 1) normalised) or 'bce' (plain)."""
    dif_weight: float = 1.0
    """w in L = L_seg + w * L_dif."""
    dif_lr_scale: PositiveFloat = field(default=1.0, metadata=ADDED)
    """The difficulty head's learning rate as a multiple of the network's (its parameters: the 1x1 conv's
    C + 1 weights and gamma). With AdamW a parameter moves about lr per step whatever its gradient, so a
    start model trained for few steps (the low-start profile: 10 images, 20 epochs, 40 steps) leaves the
    head nearly untrained at 1 (its map within 0.48-0.60, val AUROC 0.57; docs/results.md section 8)."""
    dif_detach_logits: bool = False
    """True: the difficulty loss does not back-propagate into the segmentation network."""
    sub_ratio: float = 0.5
    """Share of the candidates scored each step, drawn afresh (image unit: images; global_topk_subset:
    regions; deal_original: the unlabelled images of each round, for every strategy); 1 scores all."""
    region_selection: Literal["pools", "global_topk_subset"] = "pools"
    """Region unit: 'pools' (the shared selection machinery, al.selection: one pick per pool) or
    'global_topk_subset' (a random sub_ratio of the unlabelled regions, global top-K)."""
    dif_unlabelled: Literal["exclude", "as_correct"] = "exclude"
    """Pixels labelled 255 (not yet labelled) in the difficulty loss: 'exclude' (region-level training)
    or 'as_correct'."""
    dif_void: Literal["as_correct", "exclude"] = "as_correct"
    """Void pixels (label >= C, not 255) in the difficulty loss: 'as_correct' (target 0, the original)
    or 'exclude'."""
    protocol: Literal["ralis", "deal_original"] = "ralis"
    """'ralis' (the RALIS test protocol of this project) or 'deal_original' (the paper's: whole images in
    rounds, each round's model trained from scratch; settings in al.deal.original, candidates a random
    sub_ratio of the unlabelled images each round, for every strategy; needs start_images: none)."""
    original: OriginalProtocolConfig = field(default_factory=OriginalProtocolConfig, metadata=ADDED)
    """The deal_original protocol's start set, rounds and training."""

    def __post_init__(self) -> None:
        choices = {"ds_uncertainty": ("none", "entropy", "least_confidence", "margin"),
                   "de_range": ("unit_minmax", "fixed01"), "dif_loss": ("wce", "bce"),
                   "region_selection": ("pools", "global_topk_subset"), "dif_unlabelled": ("exclude", "as_correct"),
                   "dif_void": ("as_correct", "exclude"), "protocol": ("ralis", "deal_original")}
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise ConfigError(f"al.deal.{key} is {getattr(self, key)!r}; use one of {', '.join(map(repr, valid))}")
        if self.de_levels < 2:
            raise ConfigError(f"al.deal.de_levels is {self.de_levels}; use 2 or more bins (8 for CamVid)")
        if self.pam_grid is not None and min(self.pam_grid) < 1:
            raise ConfigError(f"al.deal.pam_grid is {self.pam_grid}; give a positive (h, w) or leave it unset")
        if self.dif_weight < 0:
            raise ConfigError(f"al.deal.dif_weight is {self.dif_weight}; use a weight >= 0 (1.0 in the paper)")
        if not 0.0 < self.sub_ratio <= 1.0:
            raise ConfigError(f"al.deal.sub_ratio is {self.sub_ratio}; use a share in (0, 1] (0.5 in the paper)")
        if self.protocol != "deal_original" and self.original != OriginalProtocolConfig():
            raise ConfigError(f"al.deal.original is read only with protocol: deal_original, and al.deal.protocol is "
                              f"{self.protocol!r}; remove the al.deal.original section, or set al.deal.protocol: "
                              f"deal_original")

    def head_spec(self) -> dict:
        """The JSON-able spec of the difficulty head these options describe (its type and loss)."""
        return {"type": "deal_difficulty", "pam_grid": list(self.pam_grid) if self.pam_grid else None,
                "gamma_init": self.pam_gamma_init, "loss": self.dif_loss, "weight": self.dif_weight,
                "detach_logits": self.dif_detach_logits, "unlabelled": self.dif_unlabelled, "void": self.dif_void,
                **({"lr_scale": self.dif_lr_scale} if self.dif_lr_scale != 1.0 else {})}
