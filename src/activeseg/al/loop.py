"""The active-learning run: select K regions, reveal them, fine-tune, and at each budget train on
everything labelled and evaluate. One run per (strategy, seed) covers every budget.

Randomness is derived from (seed, step) for every step, and from (seed, budget) for every final
training, so a run resumed from its last stored step makes exactly the choices an uninterrupted run
makes.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from activeseg.al.oracle import GroundTruthOracle
from activeseg.al.state import LabelledState
from activeseg.al.strategies import Selection, SelectionContext
from activeseg.config import ADDED, Positive
from activeseg.errors import ConfigError
from activeseg.methods import build_policy, image_rankers, lookup
from activeseg.methods.deal.config import DealConfig
from activeseg.methods.misical.config import MisicalConfig
from activeseg.methods.ripu.grid import RipuGridConfig
from activeseg.models.segmenter import Segmenter
from activeseg.regions import RegionGrid
from activeseg.store import RunStore
from activeseg.train.metrics import summarize
from activeseg.train.sources import ConcatSource, FeatureSource, ImageSource
from activeseg.train.trainer import (
    Source,
    TrainConfig,
    evaluate,
    fit,
    head_metrics,
    make_batches,
    make_optimizer,
    train_one_epoch,
)

log = logging.getLogger(__name__)

StepData = Literal["new_only", "all_labelled", "all_labelled_and_start"]
STEP_DATA = ("new_only", "all_labelled", "all_labelled_and_start")


@dataclass(frozen=True)
class ALConfig:
    """One active-learning run."""

    strategy: str = "entropy"
    """Selection method by name (`activeseg.methods`): random, entropy, margin, bald, ralis, deal_de, deal_ds,
    deal_de_image, deal_ds_image, ripu_grid, misical."""
    agent: Path | None = None
    """ralis: the trained agent checkpoint (`activeseg agent train` writes agent_last.pt, agent_best.pt)."""
    name: str | None = None
    """The run's label in the store and the tables (default: the strategy), e.g. 'ralis_best' to compare
    two agents."""
    seed: int = 20
    """Seed of the run (pools, dropout, crops)."""
    budgets: tuple[int, ...] = (480, 720, 960, 1200, 1440, 1920)
    """Labelled-region counts at which the model is trained on everything labelled and evaluated; a step
    that would pass a budget labels only up to it (budgets need not be multiples of regions_per_step)."""
    regions_per_step: Positive = 24
    """K: regions labelled per step (one per pool)."""
    candidates_per_pool: Positive = 10
    """N: random candidate regions per pool."""
    selection: Selection = "pools"
    """'pools' (RALIS: one pick per pool of N random candidates) or 'global_topk'."""
    mc_passes: Positive = 20
    """T: MC-dropout passes for BALD."""
    mc_dropout: float = 0.5
    """Dropout probability at acquisition for BALD (the model trains with its own, smaller one)."""
    step_train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_epochs=1, patience=0, batch_size=32, lr=5e-4, crop=(128, 128)))
    """Fine-tuning after each step: one epoch over the newly labelled regions (crops containing them)."""
    final_train: TrainConfig = field(default_factory=lambda: TrainConfig(
        max_epochs=40, patience=8, batch_size=16, lr=1e-3, crop=(128, 128)))
    """Training on all labelled regions at each budget, early stopping on the validation split."""
    final_init: Literal["al_model", "start_model"] = field(default="al_model", metadata=ADDED)
    """Weights final training starts from: 'al_model' (the model fine-tuned step by step during the run:
    the RALIS reference) or 'start_model' (the run's start model, the same for every strategy and seed)."""
    final_include_start: bool = field(default=False, metadata=ADDED)
    """Final training (and the upper bound) also trains on the fully labelled start images."""
    step_train_on: StepData = field(default="new_only", metadata=ADDED)
    """RALIS Q11, what each step's fine-tuning epoch covers: 'new_only' (the regions labelled in this step:
    the reference), 'all_labelled' (every labelled region so far) or 'all_labelled_and_start' (every
    labelled region and the fully labelled start images)."""
    deal: DealConfig = field(default_factory=DealConfig, metadata=ADDED)
    """DEAL's options (strategies deal_de, deal_ds, deal_de_image, deal_ds_image)."""
    ripu_grid: RipuGridConfig = field(default_factory=RipuGridConfig, metadata=ADDED)
    """RIPU-grid's options (strategy ripu_grid: RIPU's score per grid region, spec ripu.md section 7 B)."""
    misical: MisicalConfig = field(default_factory=MisicalConfig, metadata=ADDED)
    """MiSiCAL-style class policy (strategy misical, spec misical.md; `activeseg misical train` trains one):
    the policy file, its deployment, and the options policy training uses."""

    def __post_init__(self) -> None:
        method = lookup(self.strategy)
        if not self.budgets or list(self.budgets) != sorted(set(self.budgets)) or self.budgets[0] <= 0:
            raise ConfigError(f"al.budgets / --budgets: {list(self.budgets)} must be positive and strictly increasing, "
                              "e.g. [480, 960, 1920]")
        if self.regions_per_step < 1 or self.candidates_per_pool < 1 or self.mc_passes < 1:
            raise ConfigError("regions_per_step, candidates_per_pool and mc_passes must be >= 1")
        if method.needs_agent and self.agent is None:
            raise ConfigError(method.missing_agent)
        if method.check is not None:
            method.check(self)
        if self.selection not in ("pools", "global_topk"):
            raise ConfigError(f"selection is {self.selection!r}; use 'pools' or 'global_topk'")
        if self.step_train_on not in STEP_DATA:
            raise ConfigError(f"al.step_train_on is {self.step_train_on!r}; use one of {', '.join(STEP_DATA)}")
        if self.final_init not in ("al_model", "start_model"):
            raise ConfigError(f"al.final_init is {self.final_init!r}; use 'al_model' or 'start_model'")
        if self.deal.protocol == "deal_original" and not method.ranks_images:
            raise ConfigError(f"al.deal.protocol 'deal_original' labels whole images, and strategy {self.strategy!r} "
                              f"does not score images; use one of {image_rankers()}")

    @property
    def label(self) -> str:
        return self.name or self.strategy

    @property
    def run_id(self) -> str:
        return f"{self.label}-s{self.seed}"


@dataclass
class Pool:
    """The unlabelled pool and the sets used to train and judge the model."""

    features: Source
    """Inputs of the pool images (their labels are ignored: the oracle answers)."""
    oracle: GroundTruthOracle
    grid: RegionGrid
    val: Source | None
    """Early stopping of final training (D_R); None: no validation split (every training runs all its
    epochs and keeps the last; only test is evaluated)."""
    test: Source
    """Reported mIoU."""
    num_classes: int
    class_names: tuple[str, ...]
    state_set: Source | None = None
    """RALIS's state set D_S (only its inputs are used)."""
    start: Source | None = None
    """The fully labelled start images (final training may include them)."""


def step_seeds(seed: int, step: int) -> dict:
    return {"numpy": [seed, step], "torch": seed * 100_003 + step}


def step_generators(seeds: dict) -> tuple[np.random.Generator, torch.Generator]:
    """The numpy and torch generators of ``step_seeds(...)``; seeds the global torch stream too."""
    torch.manual_seed(seeds["torch"])  # dropout in library code draws from the global stream
    return np.random.default_rng(seeds["numpy"]), torch.Generator().manual_seed(seeds["torch"])


def partial_source(pool: Pool, state: LabelledState) -> Source:
    """The pool's inputs with labels only inside labelled regions (255 elsewhere)."""
    labels = pool.oracle.partial_labels(state)
    if isinstance(pool.features, FeatureSource):
        return FeatureSource(pool.features.bank, labels, pool.features.strides)
    return ImageSource(pool.features.images, labels)


def fine_tune_step(model: Segmenter, optimizer: torch.optim.Optimizer, pool: Pool, state: LabelledState,
                   new: torch.Tensor, cfg: TrainConfig, device: torch.device, generator: torch.Generator,
                   align: int, on: StepData = "new_only") -> None:
    """One epoch of fine-tuning after a step. ``on='new_only'``: one sample per region labelled in this
    step (its image, with every labelled region of that image as label), cropped around the region;
    'all_labelled': one sample per image holding labelled regions, cropped around one of them;
    'all_labelled_and_start': the same plus every fully labelled start image."""
    if on == "new_only":
        R = pool.grid.regions_per_image
        images = new // R
        keep: list = [pool.grid.box(int(r)) for r in new % R]
        source: Source | ConcatSource = partial_source(pool, state)
    else:
        source, images, keep = training_set(pool, state, include_start=on == "all_labelled_and_start")
    batches = make_batches(source, images, cfg.batch_size, generator, cfg.flip, cfg.crop, align, keep)
    train_one_epoch(model, batches, optimizer, device, grad_clip=cfg.grad_clip)


def training_set(pool: Pool, state: LabelledState, include_start: bool = False
                 ) -> tuple[Source | ConcatSource, torch.Tensor, list]:
    """Every image holding labelled regions (labels only there, crops around one of its labelled regions),
    and with ``include_start`` the fully labelled start images first: (source, indices, crop boxes)."""
    images, keep = labelled_images(pool, state)
    source: Source | ConcatSource = partial_source(pool, state)
    if include_start:
        if pool.start is None:
            raise ConfigError("training on the start images needs them; run through `activeseg run`/`benchmark` "
                              "(or `agent train`)")
        n = len(pool.start)
        source = ConcatSource(pool.start, source)
        images, keep = torch.cat([torch.arange(n), images + n]), [None] * n + keep
    return source, images, keep


def labelled_images(pool: Pool, state: LabelledState) -> tuple[torch.Tensor, list[list[tuple]]]:
    """Images holding labelled regions, and for each the boxes of its labelled regions (a training crop
    is drawn around one of them)."""
    R = pool.grid.regions_per_image
    labelled = state.labelled_ids()
    images = torch.unique(labelled // R)
    return images, [[pool.grid.box(int(g % R)) for g in labelled[labelled // R == i]] for i in images]


def steps_to_last_budget(budgets: tuple[int, ...], per_step: int) -> int:
    """Selection steps of a run: each budget is reached exactly, ``per_step`` regions at most per step."""
    edges = [0, *budgets]
    return sum(-(-(b - a) // per_step) for a, b in zip(edges, edges[1:]))


def evaluated_splits(metrics: dict) -> list[str]:
    """'val' (when the experiment has a validation split) and 'test': the splits ``metrics`` holds."""
    return [s for s in ("val", "test") if metrics.get(s) is not None]


def final_train_and_evaluate(model: Segmenter, pool: Pool, state: LabelledState, cfg: TrainConfig,
                             device: torch.device, generator: torch.Generator, align: int,
                             include_start: bool = False, progress: bool = False, desc: str = "final training"
                             ) -> dict:
    """Trains a copy of ``model`` on every labelled region (crops around a random labelled region of each
    image), and with ``include_start`` on the fully labelled start images too, early stopping on val;
    returns its val and test metrics, the metrics of the model's auxiliary heads on val (``val_extra``,
    {} without heads), the best epoch, the per-epoch history (``history``: loss, val mIoU, lr) and the
    trained copy (``model``). ``model`` itself is unchanged."""
    trained = copy.deepcopy(model)
    source, images, keep = training_set(pool, state, include_start)
    result = fit(trained, source, pool.val, pool.num_classes, cfg, device, generator,
                 indices=images, keep=keep, align=align, progress=progress, desc=desc)
    return {
        "epochs": sum(1 for h in result.history if h["epoch"] >= 0),
        "val": (None if pool.val is None
                else summarize(evaluate(trained, pool.val, pool.num_classes, device), pool.class_names)),
        "test": summarize(evaluate(trained, pool.test, pool.num_classes, device), pool.class_names),
        "val_extra": head_metrics(trained, pool.val, device),
        "best_epoch": result.best_epoch,
        "history": result.history,
        "model": trained,
    }


def run_active_learning(cfg: ALConfig, start_model: Segmenter, pool: Pool, store: RunStore,
                        device: torch.device, run_config: dict, align: int = 32,
                        on_step: Callable[[dict], None] | None = None) -> str:
    """Runs (or resumes) one active-learning run until its last budget; returns the run id.

    ``run_config`` is stored with the run (the full resolved configuration) and must match on resume.
    """
    run_id = cfg.run_id
    status = store.claim_run(run_id, cfg.label, cfg.seed, run_config)
    if status == "done":
        return run_id
    model = copy.deepcopy(start_model).to(device)
    optimizer = make_optimizer(model, cfg.step_train)
    state = pool.oracle.new_state(pool.grid)
    step = 0
    resumed = store.load_checkpoint(run_id)
    if resumed is not None:
        step, ckpt = resumed
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state.load_state_dict(ckpt["state"])
        log.info("resuming %s after step %d (%d regions labelled)", run_id, step, state.num_labelled)
    strategy = build_policy(cfg.strategy, cfg)
    K = cfg.regions_per_step
    start_extra: dict | None = None  # the start model's head metrics on val, measured when first needed
    try:
        while True:
            final_from = start_model if cfg.final_init == "start_model" else model
            if start_extra is None and any(state.num_labelled >= b and not store.has_evaluation(run_id, b, "test")
                                           for b in cfg.budgets):
                start_extra = {f"start_{k}": v for k, v in head_metrics(start_model, pool.val, device).items()}
            _evaluate_due_budgets(cfg, run_id, final_from, pool, state, store, device, align, start_extra or {})
            if state.num_labelled >= cfg.budgets[-1]:
                break
            step += 1
            seeds = step_seeds(cfg.seed, step)
            rng, generator = step_generators(seeds)
            t0 = time.perf_counter()
            k = min(K, next(b for b in cfg.budgets if b > state.num_labelled) - state.num_labelled)  # each budget exact
            ctx = SelectionContext(model, pool.features, state, device, rng, generator, k,
                                   cfg.candidates_per_pool, cfg.selection, cfg.mc_passes, cfg.mc_dropout,
                                   revealed=pool.oracle, state_set=pool.state_set, content=pool.oracle.content,
                                   start_model=start_model)
            picked, scores = strategy.select(ctx)
            state.label(picked, step)
            t1 = time.perf_counter()
            fine_tune_step(model, optimizer, pool, state, picked, cfg.step_train, device, generator, align,
                           cfg.step_train_on)
            t2 = time.perf_counter()
            store.record_step(run_id, step, state.num_labelled, picked.tolist(), scores.tolist(), seeds,
                              t1 - t0, t2 - t1, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                                 "state": state.state_dict()})
            if on_step is not None:
                on_step({"run_id": run_id, "step": step, "labelled": state.num_labelled})
        store.finish_run(run_id)
    except BaseException:
        store.release_run(run_id)
        raise
    return run_id


def _evaluate_due_budgets(cfg: ALConfig, run_id: str, model: Segmenter, pool: Pool, state: LabelledState,
                          store: RunStore, device: torch.device, align: int, start_extra: dict) -> None:
    """Final training (from ``model``) and evaluation for every budget reached but not yet evaluated.
    The val record carries the auxiliary heads' metrics of the trained model and of the start model
    (``start_extra``, keys prefixed ``start_``) when there are any."""
    for budget in cfg.budgets:
        if state.num_labelled < budget or store.has_evaluation(run_id, budget, "test"):
            continue
        _, generator = step_generators(step_seeds(cfg.seed, 1_000_000 + budget))
        t = time.perf_counter()
        log.info("%s: final training at %d regions (up to %d epochs)", run_id, state.num_labelled,
                 cfg.final_train.max_epochs)
        out = final_train_and_evaluate(model, pool, state, cfg.final_train, device, generator, align,
                                       cfg.final_include_start)
        out.pop("model")  # the trained copy: not needed here, so not kept alive beside the AL model
        hist = pool.oracle.class_histogram(state, pool.num_classes).tolist()
        extra = {**out["val_extra"], **start_extra} or None
        for split in evaluated_splits(out):
            store.record_evaluation(run_id, budget, split, state.num_labelled, out[split], hist, out["epochs"],
                                    time.perf_counter() - t, extra if split == "val" else None, out["history"])
        log.info("%s: %d regions, test mIoU %.4f", run_id, state.num_labelled, out["test"]["miou"])
