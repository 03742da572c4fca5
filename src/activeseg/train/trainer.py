"""Supervised training with partial labels and early stopping.

Labels may hold any value ``>= num_classes`` (void, 255 = unlabelled): those pixels reach the loss
as its ignore index, so partially labelled images need no special code.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from activeseg.config import ADDED, NonNegative, Positive, PositiveFloat
from activeseg.device import random_state, restore_random_state
from activeseg.errors import ConfigError
from activeseg.models.segmenter import Segmenter
from activeseg.train.metrics import confusion_matrix, mean_iou
from activeseg.train.sources import Box, FeatureSource, ImageSource, crop_box

Source = ImageSource | FeatureSource
IGNORE = 255


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of the segmentation network."""

    max_epochs: Positive = 40
    """Upper bound on epochs."""
    patience: NonNegative = 10
    """Stop after this many epochs without a better validation mIoU (0: never stop early)."""
    batch_size: Positive = 8
    """Images (or crops) per gradient step."""
    lr: PositiveFloat = 2e-3
    """Peak learning rate (cosine decay to 0 over max_epochs)."""
    weight_decay: float = 1e-4
    """Weight decay (decoupled for AdamW, L2 for SGD)."""
    crop: tuple[int, int] | None = None
    """Random crop (H, W) in pixels, aligned to the encoder's coarsest stride; None: whole images."""
    flip: bool = True
    """Random horizontal flips."""
    optimizer: Literal["adamw", "sgd"] = field(default="adamw", metadata=ADDED)
    """'adamw' or 'sgd' (with ``momentum``; the RALIS spec's per-step fine-tuning optimiser)."""
    momentum: float = field(default=0.9, metadata=ADDED)
    """SGD momentum (ignored by AdamW)."""
    grad_clip: float | None = field(default=None, metadata=ADDED)
    """Clip the gradient norm of every step to this value (None: no clipping)."""
    eval_initial: bool = field(default=False, metadata=ADDED)
    """Evaluate the starting weights on the validation split before the first epoch; they are kept
    unless an epoch beats them (training that starts from a good model never ends worse on val)."""
    val_every: Positive = field(default=1, metadata=ADDED)
    """Validate every k epochs (and after the last); the best validated epoch is kept, and patience
    counts validations."""
    lr_schedule: Literal["cosine", "poly"] = field(default="cosine", metadata=ADDED)
    """Learning-rate decay over max_epochs: 'cosine' (to 0) or 'poly' (lr x (1 - epoch / max_epochs)^0.9,
    DeepLab's)."""

    def __post_init__(self) -> None:
        if self.max_epochs < 1 or self.batch_size < 1:
            raise ConfigError("train.max_epochs and train.batch_size must be >= 1")
        if self.patience < 0:
            raise ConfigError("train.patience must be >= 0 (0 disables early stopping)")
        if self.lr <= 0:
            raise ConfigError(f"train.lr is {self.lr}; use a positive learning rate such as 2e-3")
        if self.crop is not None and min(self.crop) < 1:
            raise ConfigError(f"train.crop is {self.crop}; give a positive (H, W) or leave it unset")
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"train.optimizer is {self.optimizer!r}; use 'adamw' or 'sgd'")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"train.grad_clip is {self.grad_clip}; use a positive norm such as 4, or leave it unset")
        if self.val_every < 1:
            raise ConfigError(f"train.val_every is {self.val_every}; use 1 (every epoch) or more")
        if self.lr_schedule not in ("cosine", "poly"):
            raise ConfigError(f"train.lr_schedule is {self.lr_schedule!r}; use 'cosine' or 'poly'")


@dataclass
class FitResult:
    """What ``fit`` did: one record per epoch and the best epoch (whose weights the model holds)."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_miou: float = -math.inf


def make_batches(source: Source, indices: torch.Tensor, batch_size: int, generator: torch.Generator,
                 flip: bool = True, crop: tuple[int, int] | None = None, align: int = 32,
                 keep: list[Box | list[Box]] | None = None) -> Iterator[tuple[object, torch.Tensor]]:
    """Shuffled batches of ``(inputs, labels)``.

    ``keep[i]`` is a box the crop of item i must contain, or a list of boxes of which one is drawn.
    """
    order = torch.randperm(len(indices), generator=generator)
    size = tuple(source.labels.shape[-2:])
    W = size[1]
    starts = list(range(0, len(order), batch_size))
    if len(starts) > 1 and len(order) - starts[-1] == 1:
        starts.pop()  # a lone last item joins the previous batch (batch norm needs more than one value)
    for start, end in zip(starts, starts[1:] + [len(order)]):
        rows = order[start:end]
        idx = indices[rows]
        flipped = (torch.rand(len(rows), generator=generator) < 0.5) if flip else torch.zeros(len(rows), dtype=torch.bool)
        boxes = None
        if crop is not None:
            boxes = []
            for r, f in zip(rows.tolist(), flipped.tolist()):
                k = keep[r] if keep is not None else None
                if isinstance(k, list):  # several candidate boxes: draw one
                    k = k[int(torch.randint(len(k), (1,), generator=generator))]
                if k is not None and f:  # mirror the kept box with the image
                    k = (k[0], k[1], W - k[3], W - k[2])
                boxes.append(crop_box(size, crop, align, generator, k))
        yield source.inputs(idx, flipped, boxes)


def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over pixels whose label is a class.

    Shape:
        logits ``[N, C, H, W]``, labels ``[N, H, W]`` (any integer type).
    """
    target = labels.long()
    target = torch.where(target < logits.shape[1], target, torch.full_like(target, IGNORE))
    if (target != IGNORE).sum() == 0:
        return logits.sum() * 0.0  # nothing labelled in this batch
    return F.cross_entropy(logits, target, ignore_index=IGNORE)


def to_device(inputs: object, device: torch.device) -> object:
    """A batch's inputs (an image tensor, or a list of feature levels) on ``device``."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device, non_blocking=True)
    return [t.to(device, non_blocking=True) for t in inputs]  # type: ignore[union-attr]


#: Domain ids of a batch that mixes a labelled source domain and a target domain (``loss_terms``).
SOURCE, TARGET = 0, 1


def loss_terms(model: Segmenter, inputs: object, labels: torch.Tensor, domains: torch.Tensor | None = None
               ) -> dict[str, torch.Tensor]:
    """The segmentation loss and the loss of every auxiliary head, by name (``seg``, then the heads').

    With ``domains`` (``[N]``, ``SOURCE`` or ``TARGET`` per image), each domain present adds its own
    segmentation term (``seg_source``, ``seg_target``: the mean over that domain's labelled pixels, so a
    few labelled target pixels are not drowned by the source's), and a head whose ``domain`` is 'source'
    or 'target' sees only those images (no term when the batch has none).
    """
    size = tuple(labels.shape[-2:])
    heads = getattr(model, "heads", None)
    if not heads and domains is None:
        return {"seg": segmentation_loss(model(inputs, out_size=size), labels)}
    outputs = model.outputs(inputs, out_size=size)
    if domains is None:
        terms = {"seg": segmentation_loss(outputs["logits"], labels)}
    else:
        terms = {f"seg_{name}": segmentation_loss(outputs["logits"][domains == d], labels[domains == d])
                 for name, d in (("source", SOURCE), ("target", TARGET)) if bool((domains == d).any())}
    for name, head in (heads or {}).items():
        if domains is None or head.domain == "all":
            terms[name] = head.loss(outputs, labels)
            continue
        rows = domains == (SOURCE if head.domain == "source" else TARGET)
        if bool(rows.any()):
            terms[name] = head.loss({k: v[rows] for k, v in outputs.items()}, labels[rows])
    return terms


def model_loss(model: Segmenter, inputs: object, labels: torch.Tensor, domains: torch.Tensor | None = None
               ) -> torch.Tensor:
    """The segmentation loss plus the loss of every auxiliary head the model carries (``loss_terms``)."""
    return sum(loss_terms(model, inputs, labels, domains).values())


def train_one_epoch(model: Segmenter, batches: Iterator, optimizer: torch.optim.Optimizer,
                    device: torch.device, total: int | None = None, progress: bool = False,
                    grad_clip: float | None = None) -> float:
    """One pass over ``batches``; returns the mean loss (segmentation + auxiliary heads).
    ``grad_clip`` bounds each step's gradient norm."""
    model.train()
    losses = []
    for inputs, labels in tqdm(batches, total=total, desc="train", disable=not progress, leave=False):
        labels = labels.to(device)
        loss = model_loss(model, to_device(inputs, device), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], grad_clip)
        optimizer.step()
        losses.append(loss.item())
    return sum(losses) / max(len(losses), 1)


@torch.no_grad()
def predict(model: Segmenter, source: Source, device: torch.device, batch_size: int = 16,
            indices: torch.Tensor | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yields ``(logits, labels)`` per batch in order, whole images, no augmentation."""
    model.eval()
    indices = torch.arange(len(source)) if indices is None else indices
    for start in range(0, len(indices), batch_size):
        idx = indices[start:start + batch_size]
        inputs, labels = source.inputs(idx, torch.zeros(len(idx), dtype=torch.bool), None)
        yield model(to_device(inputs, device), out_size=tuple(labels.shape[-2:])), labels


def evaluate(model: Segmenter, source: Source, num_classes: int, device: torch.device,
             batch_size: int = 16) -> torch.Tensor:
    """The confusion matrix of the model on every image of ``source``. Shape: ``[C, C]``."""
    cm = torch.zeros((num_classes, num_classes), dtype=torch.long)
    for logits, labels in predict(model, source, device, batch_size):
        cm += confusion_matrix(logits.argmax(1).cpu(), labels, num_classes)
    return cm


@torch.no_grad()
def head_metrics(model: Segmenter, source: Source | None, device: torch.device, batch_size: int = 16) -> dict:
    """The metrics every auxiliary head reports on ``source`` (whole images, eval mode); {} without heads
    (or without a source: no validation split)."""
    accumulators = [m for m in (h.new_metrics() for h in getattr(model, "heads", {}).values()) if m is not None]
    if not accumulators or source is None:
        return {}
    model.eval()
    for start in range(0, len(source), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(source)))
        inputs, labels = source.inputs(idx, torch.zeros(len(idx), dtype=torch.bool), None)
        outputs = model.outputs(to_device(inputs, device), out_size=tuple(labels.shape[-2:]))
        for acc in accumulators:
            acc.update(outputs, labels.to(device))
    return {k: v for acc in accumulators for k, v in acc.result().items()}


def make_optimizer(model: Segmenter, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser of ``cfg`` over the trainable parameters; an auxiliary head whose ``lr_scale`` is
    not 1 gets a parameter group of its own at ``cfg.lr * lr_scale``."""
    scaled = [h for h in getattr(model, "heads", {}).values() if h.lr_scale != 1.0]
    own = {id(p) for h in scaled for p in h.parameters()}
    base = [p for p in model.parameters() if p.requires_grad and id(p) not in own]
    params: list = base if not scaled else [{"params": base}] + [
        {"params": [p for p in h.parameters() if p.requires_grad], "lr": cfg.lr * h.lr_scale} for h in scaled]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch learning-rate decay of ``cfg.lr_schedule`` over ``cfg.max_epochs``."""
    if cfg.lr_schedule == "poly":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: (1 - min(e, cfg.max_epochs) / cfg.max_epochs)
                                                 ** 0.9)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.max_epochs)


def fit(model: Segmenter, train: Source, val: Source | None, num_classes: int, cfg: TrainConfig,
        device: torch.device, generator: torch.Generator, indices: torch.Tensor | None = None,
        keep: list[Box | list[Box]] | None = None, align: int = 32, progress: bool = True,
        on_improve: Callable[[Segmenter, dict], None] | None = None, desc: str = "train",
        on_epoch: Callable[[dict], None] | None = None, resume: dict | None = None) -> FitResult:
    """Trains with early stopping on ``val`` mIoU; the model ends holding its best weights.

    Without ``val``, every epoch counts as an improvement and the last weights are kept. With
    ``cfg.eval_initial`` (and ``val``), the starting weights are epoch -1 of the history and the best
    unless an epoch beats them. With ``cfg.val_every`` k > 1, only every k-th epoch and the last are
    validated (the others' ``val_miou`` is None) and can become the best.
    ``on_improve(model, record)`` is called after each improving epoch (e.g. to save a checkpoint);
    ``desc`` names what is trained on the progress bar of epochs.

    ``on_epoch(snapshot)`` receives, after every epoch, everything needed to continue the training
    (weights, optimiser, schedule, random streams, history, best weights); ``resume=snapshot`` continues
    from it, and on CPU the result is bit-identical to an uninterrupted training.
    """
    indices = torch.arange(len(train)) if indices is None else indices
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    result, best_state, stale, first, stopped = FitResult(), None, 0, 0, False
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        restore_random_state(resume, generator)
        result = FitResult(list(resume["history"]), resume["best_epoch"], resume["best_miou"])
        best_state, stale, first, stopped = resume["best_state"], resume["stale"], resume["epoch"] + 1, resume["stopped"]
    elif cfg.eval_initial and val is not None:
        miou = mean_iou(evaluate(model, val, num_classes, device))
        result.history.append({"epoch": -1, "loss": None, "val_miou": miou, "lr": None})
        result.best_epoch, result.best_miou = -1, miou
        best_state = copy.deepcopy(model.state_dict())
    steps = math.ceil(len(indices) / cfg.batch_size)
    bar = tqdm(range(first, cfg.max_epochs if not stopped else first), desc=f"{desc}: epochs", disable=not progress,
               initial=first, total=cfg.max_epochs)
    for epoch in bar:
        batches = make_batches(train, indices, cfg.batch_size, generator, cfg.flip, cfg.crop, align, keep)
        loss = train_one_epoch(model, batches, optimizer, device, total=steps, grad_clip=cfg.grad_clip)
        scheduler.step()
        validate = val is not None and ((epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.max_epochs)
        miou = mean_iou(evaluate(model, val, num_classes, device)) if validate else None
        record = {"epoch": epoch, "loss": loss, "val_miou": miou, "lr": scheduler.get_last_lr()[0]}
        result.history.append(record)
        bar.set_postfix(loss=f"{loss:.3f}", val_miou="-" if miou is None else f"{miou:.3f}")
        if val is None or (validate and miou > result.best_miou):
            result.best_epoch, result.best_miou, stale = epoch, (miou if miou is not None else math.nan), 0
            best_state = copy.deepcopy(model.state_dict())
            if on_improve is not None:
                on_improve(model, record)
        elif validate:
            stale += 1
            stopped = bool(cfg.patience and stale >= cfg.patience)
        if on_epoch is not None:
            on_epoch({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                      "scheduler": scheduler.state_dict(), **random_state(generator), "history": result.history,
                      "best_epoch": result.best_epoch, "best_miou": result.best_miou, "best_state": best_state,
                      "stale": stale, "stopped": stopped})
        if stopped:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return result
