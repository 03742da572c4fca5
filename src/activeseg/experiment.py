"""An active-learning experiment on a labelled dataset: start model, pool, bounds, and the grid of
(strategy, seed) runs, all recorded in one run store."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from activeseg import paths
from activeseg.al.loop import (
    ALConfig,
    Pool,
    evaluated_splits,
    final_train_and_evaluate,
    steps_to_last_budget,
    run_active_learning,
)
from activeseg.al.oracle import GroundTruthOracle
from activeseg.config import ADDED, DataConfig, Positive, to_dict
from activeseg.data.classes import ClassInfo
from activeseg.data.folder import load_split, scan_split
from activeseg.data.subsets import resolve_images
from activeseg.data.roots import resolve_dataset_dir
from activeseg.device import resolve_device, seed_everything
from activeseg.errors import ConfigError
from activeseg.features import FeatureCache
from activeseg.methods import head_specs, lookup, names
from activeseg.methods.deal.protocol import init_seed, run_original
from activeseg.methods.registry import check_method
from activeseg.models.segmenter import ModelConfig, Segmenter, build_model
from activeseg.pipeline import coarsest_stride, default_cache_dir, make_source, resolve_test_size, scored_at
from activeseg.regions import RegionGrid
from activeseg.store import RunBusyError, RunStore, budget_unit, read_run_configs
from activeseg.train.checkpoint import load_checkpoint, save_checkpoint
from activeseg.train.metrics import summarize
from activeseg.train.trainer import Source, TrainConfig, evaluate, fit, head_metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExperimentConfig:
    """A simulated active-learning experiment (one store, many runs)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    al: ALConfig = field(default_factory=ALConfig)
    start_train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=40, patience=8))
    """Training of the start model on the fully labelled start images."""
    start_seed: int = 0
    """Seed of the start model's initialisation and training (shared by every run)."""
    split: str = "train"
    """Split holding the start images and the pool."""
    start_images: str = "ralis:d_t"
    """Start-model images: 'all', 'random:N', 'ralis:d_s|d_t|d_v' (CamVid) or a file of stems; 'none' with
    al.deal.protocol: deal_original (no start model; each seed draws its start set from the pool)."""
    start_every: Positive = field(default=1, metadata=ADDED)
    """Keep every n-th start image in sorted order (10 with 'ralis:d_t': its 10 images d_t[0::10], the
    RALIS agent's weak start set); 1 keeps them all in their listed order."""
    start_early_stopping: bool = field(default=True, metadata=ADDED)
    """Keep the start model's best epoch on val_split; False trains every epoch and keeps the last (as
    the RALIS agent's weak start model is trained: same images, seed and training give the same model)."""
    pool_images: str = "ralis:d_v"
    """Pool images, same forms as start_images, or 'rest' (every image the start and state sets leave)."""
    state_images: str = "ralis:d_s"
    """The state set D_S (same forms; sorted order; drawn after the start set), loaded when a method
    observes one (ralis)."""
    val_split: str | None = "val"
    """Early stopping of every training (D_R); null: no validation split (e.g. a target domain without
    labelled validation images): every training runs all its epochs and keeps the last, and only test is
    evaluated (needs start_early_stopping: false)."""
    test_split: str = "test"
    """Reported mIoU."""
    test_size: tuple[int, int] | Literal["native"] | None = "native"
    """Score test at this label resolution (H, W; logits upsampled); 'native': the size all test labels
    share (CamVid: 360x480; the working size if sizes differ); None: the working size. `activeseg train`
    and `evaluate` use the same rule."""
    region_rows: Positive = 4
    """Region grid rows per image."""
    region_cols: Positive = 6
    """Region grid columns per image."""
    strategies: tuple[str, ...] = ("random", "entropy", "bald")
    """Benchmark: strategies to compare."""
    seeds: tuple[int, ...] = (20, 50, 234)
    """Benchmark: seeds per strategy."""
    bounds: bool | Literal["lower"] = True
    """Benchmark: also measure the lower (start model) and upper (whole pool labelled) bounds; 'lower':
    the lower bound only (it costs nothing; the upper bound is one long training)."""
    store: Path = Path("runs/camvid_cpu/store.sqlite")
    """SQLite run store; the start model is saved beside it."""
    device: str = "auto"
    """'auto', 'cpu' or 'cuda'."""
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    """On-disk feature cache (None: memory only)."""

    def __post_init__(self) -> None:
        if self.start_every < 1:
            raise ConfigError(f"start_every is {self.start_every}; use 1 (every start image) or more")
        if self.original_protocol and self.start_images != "none":
            raise ConfigError(f"al.deal.protocol 'deal_original' draws each seed's start set from the pool "
                              f"(al.deal.original.start_images) and has no start model; set start_images: none "
                              f"(it is {self.start_images!r})")
        if not self.original_protocol and self.start_images == "none":
            raise ConfigError("start_images: none leaves the start model nothing to train on; name start images "
                              "(e.g. random:10), or set al.deal.protocol: deal_original")
        if self.val_split is None and self.start_early_stopping:
            raise ConfigError("val_split: null leaves no split to stop the start model's training early on; set "
                              "start_early_stopping: false (it trains every epoch and keeps the last)")
        if self.val_split is None and self.original_protocol:
            raise ConfigError("al.deal.protocol 'deal_original' keeps each round's best validated epoch and needs a "
                              "val_split")
        if self.original_protocol and self.bounds == "lower":
            raise ConfigError("bounds: 'lower' measures the start model, which al.deal.protocol 'deal_original' does "
                              "not have; use true (the upper bound: every pool image) or false")

    @property
    def original_protocol(self) -> bool:
        """DEAL's original protocol (image-level rounds, each model trained from scratch) runs the grid."""
        return self.al.deal.protocol == "deal_original"


@dataclass(frozen=True)
class ImagePlan:
    """The stems of the start set, the pool and (when a method observes one) the state set."""

    start: list[str]
    pool: list[str]
    state: list[str] | None


def plan_images(cfg: ExperimentConfig, dataset_dir: Path) -> ImagePlan:
    """Resolves start, state and pool images from the split's file listing (no image is read) and checks
    the plan: sets disjoint, every budget within the pool.

    Raises:
        ConfigError: naming the key at fault and the remedy.
    """
    stems = [stem for stem, _, _ in scan_split(dataset_dir / cfg.split)]
    start = resolve_images(cfg.start_images, "start_images", dataset_dir, stems, seed=cfg.start_seed)
    if cfg.start_every > 1:
        start = sorted(start)[::cfg.start_every]
    state = None
    if any(lookup(s).needs_state_set for s in (cfg.al.strategy, *cfg.strategies)):
        state = sorted(resolve_images(cfg.state_images, "state_images", dataset_dir, stems, set(start), cfg.start_seed))
    pool = resolve_images(cfg.pool_images, "pool_images", dataset_dir, stems, set(start) | set(state or ()),
                          cfg.start_seed)
    for key, other in (("start_images", start), ("state_images", state or [])):
        shared = set(other) & set(pool)
        if shared:
            raise ConfigError(f"{key} and pool_images share {len(shared)} images (e.g. {sorted(shared)[:3]}); "
                              f"choose disjoint sets (pool_images: rest takes every image the others leave)")
    if cfg.original_protocol:
        orig = cfg.al.deal.original
        if orig.labelled_images[-1] > len(pool):
            raise ConfigError(f"al.deal.original labels up to {orig.labelled_images[-1]} images (start_images "
                              f"{orig.start_images} + rounds {orig.rounds} x images_per_round "
                              f"{orig.images_per_round}), but the pool ({cfg.pool_images!r}) has {len(pool)}; lower "
                              f"them or give pool_images more images")
        return ImagePlan(start, pool, state)
    regions = len(pool) * cfg.region_rows * cfg.region_cols
    if not pool or cfg.al.budgets[-1] > regions:
        raise ConfigError(f"al.budgets go up to {cfg.al.budgets[-1]} regions, but the pool ({cfg.pool_images!r}: "
                          f"{len(pool)} images x {cfg.region_rows * cfg.region_cols} regions) has {regions}; "
                          f"lower the budgets or give pool_images more images")
    return ImagePlan(start, pool, state)


def check(cfg: ExperimentConfig, strategies: tuple[str, ...] | None = None) -> ImagePlan:
    """Everything that can be checked before data is loaded or a file is written: the device, the
    store (an existing one must count budgets in this config's unit), the methods of ``strategies``
    (default: the benchmark's) and their agents, the dataset and the image plan."""
    resolve_device(cfg.device)
    paths.store_file(cfg.store)
    check_store_unit(cfg)
    paths.output_dir(cfg.cache_dir, "cache_dir / --cache-dir")
    R = cfg.region_rows * cfg.region_cols
    for name in cfg.strategies if strategies is None else strategies:
        method = check_method(name, cfg.al.agent)
        replace(cfg.al, strategy=name)  # the run's own checks (e.g. the protocol's)
        if method.whole_images and not cfg.original_protocol and cfg.al.regions_per_step != R:
            raise ConfigError(f"{name} labels one whole image per step, but al.regions_per_step is "
                              f"{cfg.al.regions_per_step} and an image has {R} regions (region_rows x "
                              f"region_cols); set al.regions_per_step: {R}")
    ddir = resolve_dataset_dir(cfg.data.dataset, cfg.data.data_root)
    for key in ("split", "val_split", "test_split"):
        split = getattr(cfg, key)
        if split is None:
            continue
        if not (ddir / split / "images").is_dir():
            found = sorted(p.name for p in ddir.iterdir() if (p / "images").is_dir())
            raise ConfigError(f"{key}: the dataset {ddir} has no split {split!r} (no {split}/images folder); "
                              f"its splits: {', '.join(found) or 'none'}")
    return plan_images(cfg, ddir)


def check_store_unit(cfg: ExperimentConfig) -> None:
    """An existing store's runs must count budgets as this config's protocol does (images with DEAL's
    original protocol, regions otherwise): their curves share the plot's axis. Reads the store's run
    configs read-only; no store yet, nothing to check."""
    unit = "images" if cfg.original_protocol else "regions"
    other = [run_id for run_id, c in read_run_configs(cfg.store).items() if budget_unit(c) != unit]
    if other:
        theirs = "images (al.deal.protocol: deal_original)" if unit == "regions" else "regions"
        raise ConfigError(f"store {cfg.store} holds runs whose budgets count {theirs} (e.g. {other[0]}), and this "
                          f"config's al.deal.protocol ({cfg.al.deal.protocol!r}) counts {unit}; use a separate store "
                          f"(store: in the config, or --store runs/NAME/store.sqlite)")


@dataclass
class Experiment:
    """A prepared experiment: the data, the pool and the (plain) start model (with DEAL's original
    protocol: the untrained network, whose encoder the feature cache holds)."""

    cfg: ExperimentConfig
    device: torch.device
    start_model: Segmenter
    start_metrics: dict
    pool: Pool
    align: int
    trainer: "StartModelTrainer | None" = None
    _with_heads: dict[str, tuple[Segmenter, dict]] = field(default_factory=dict)

    def start_model_for(self, al: ALConfig) -> tuple[Segmenter, dict]:
        """The start model of a run of ``al``'s method: the plain one, or, for a method that brings
        auxiliary heads, one trained with them (once per head set, cached like the plain one)."""
        heads = head_specs(al.strategy, al, self.pool.num_classes)
        if not heads:
            return self.start_model, self.start_metrics
        key = config_hash(heads)
        if key not in self._with_heads:
            if self.trainer is None:
                raise ValueError("this experiment cannot train start models with heads (no trainer)")
            self._with_heads[key] = self.trainer.with_heads(heads)
        return self._with_heads[key]

    def fresh_model(self, heads: dict[str, dict], seed: int) -> Segmenter:
        """A newly initialised model with ``heads`` (decoder and heads drawn from ``seed``) on the
        experiment's encoder (the one the feature cache holds), on the experiment's device."""
        seed_everything(seed)
        model = build_model(replace(self.cfg.model, pretrained=False), self.pool.num_classes, heads)
        model.encoder.load_state_dict(self.start_model.encoder.state_dict())
        return model.to(self.device)


def config_hash(obj: dict) -> str:
    """A short, stable key of a JSON-able configuration (names cached models)."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def tensor_digest(*tensors: torch.Tensor) -> str:
    """SHA-1 of the tensors' bytes: the same pixels give the same key, whatever the dataset's path."""
    h = hashlib.sha1()
    for t in tensors:
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def prepare(cfg: ExperimentConfig, progress: bool = True) -> Experiment:
    """Loads the data, builds the feature cache, and trains (or reloads) the start model (none with DEAL's
    original protocol)."""
    device = resolve_device(cfg.device)
    generator = seed_everything(cfg.start_seed)  # before the model is built: its initial weights too
    ddir = resolve_dataset_dir(cfg.data.dataset, cfg.data.data_root)
    plan = plan_images(cfg, ddir)
    split = load_split(ddir, cfg.split, cfg.data.size, cfg.data.fit, progress=progress)
    start = split.subset(plan.start)
    pool_split = split.subset(plan.pool)
    val = None if cfg.val_split is None else load_split(ddir, cfg.val_split, cfg.data.size, cfg.data.fit,
                                                        progress=progress)
    test = load_split(ddir, cfg.test_split, cfg.data.size, cfg.data.fit, progress=progress)
    classes = split.classes
    model = build_model(cfg.model, classes.num_classes).to(device)
    cache = (FeatureCache(model, device, ddir.name, cfg.cache_dir, progress=progress)
             if cfg.model.freeze_encoder else None)
    test_size = resolve_test_size(cfg.test_size, ddir, cfg.test_split)
    test_src = scored_at(make_source(model, test, cache), ddir, cfg.test_split, test_size, cfg.data.size,
                         cfg.data.fit, progress)
    val_src = None if val is None else make_source(model, val, cache)
    pool_src = make_source(model, pool_split, cache)
    grid = RegionGrid.from_counts(*cfg.data.size, cfg.region_rows, cfg.region_cols)
    state_src = None
    if plan.state is not None:
        state_src = make_source(model, split.subset(plan.state), cache)
    start_src = make_source(model, start, cache) if plan.start else None
    pool = Pool(pool_src, GroundTruthOracle(pool_split.labels, pool_split.content), grid, val_src, test_src, classes.num_classes,
                classes.names, state_src, start_src)
    if cfg.original_protocol:  # no start model: every round trains a fresh model on this encoder
        return Experiment(cfg, device, model, {}, pool, coarsest_stride(model))

    # the start model: trained once per configuration and data content, shared by every store
    what = {"data": to_dict(cfg.data), "model": to_dict(cfg.model), "seed": cfg.start_seed,
            "train": to_dict(cfg.start_train), "images": start.stems, "test_size": cfg.test_size}
    if not cfg.start_early_stopping:
        what["early_stopping"] = False
    content = {**what, "data": {**what["data"], "dataset": ddir.name, "data_root": None},
               "pixels": tensor_digest(start.images, start.labels, *((val.images, val.labels) if val is not None else ()),
                                       test_src.labels)}
    meta = {"images": start.stems, "dataset": str(ddir), "fit": cfg.data.fit,
            "test_size": list(test_size) if test_size else None, "test_split": cfg.test_split}
    trainer = StartModelTrainer(cfg, device, classes, start_src, val_src, test_src, what, content, meta, progress)
    model, start_metrics = trainer.load_or_train(model, generator)
    return Experiment(cfg, device, model, start_metrics, pool, coarsest_stride(model), trainer)


@dataclass
class StartModelTrainer:
    """Trains a start model once per configuration, data content and set of auxiliary heads, and caches
    it: in the shared cache beside the feature cache (key: ``content``), or beside the store (key:
    ``what``, where stores kept it before). A model with heads adds their specs to both keys; the plain
    model's keys are unchanged."""

    cfg: ExperimentConfig
    device: torch.device
    classes: ClassInfo
    start: Source
    val: Source | None
    test: Source
    what: dict
    content: dict
    meta: dict
    progress: bool = True

    def paths(self, heads: dict[str, dict]) -> tuple[Path | None, Path]:
        what, content = (self.what, self.content) if not heads else (
            {**self.what, "heads": heads}, {**self.content, "heads": heads})
        beside_store = Path(self.cfg.store).parent / f"start_model-{config_hash(what)}.pt"
        shared = (Path(self.cfg.cache_dir).parent / "start_models" / f"start_model-{config_hash(content)}.pt"
                  if self.cfg.cache_dir is not None else None)
        return shared, beside_store

    def load_or_train(self, model: Segmenter, generator: torch.Generator) -> tuple[Segmenter, dict]:
        """``model`` (freshly built, with its heads) trained on the start images, or the cached copy."""
        cfg, heads = self.cfg, model.head_specs()
        shared, beside_store = self.paths(heads)
        path = next((p for p in (shared, beside_store) if p is not None and p.is_file()), shared or beside_store)
        if path.is_file():
            model, meta = load_checkpoint(path, self.device)
            log.info("start model: %s", path)
            return model, meta["extra"]["metrics"]
        what = f"start model ({len(self.start)} images{', heads ' + ', '.join(heads) if heads else ''})"
        fit(model, self.start, self.val if cfg.start_early_stopping else None, self.classes.num_classes,
            cfg.start_train, self.device, generator, align=coarsest_stride(model), progress=self.progress, desc=what)
        metrics = {s: summarize(evaluate(model, m, self.classes.num_classes, self.device), self.classes.names)
                   for s, m in (("val", self.val), ("test", self.test)) if m is not None}
        extra = head_metrics(model, self.val, self.device)
        if extra:  # the heads' own metrics on val (e.g. the difficulty map's AUROC)
            metrics["val"]["extra"] = extra
        save_checkpoint(path, model, cfg.model, self.classes, cfg.data.size, {"metrics": metrics, **self.meta})
        log.info("start model saved: %s", path)
        return model, metrics

    def with_heads(self, heads: dict[str, dict]) -> tuple[Segmenter, dict]:
        """The start model carrying ``heads``, built and trained from the start seed like the plain one."""
        generator = seed_everything(self.cfg.start_seed)  # same seeding as prepare: same initial weights
        model = build_model(self.cfg.model, self.classes.num_classes, heads).to(self.device)
        return self.load_or_train(model, generator)


#: What DEAL's original protocol does not read (no start model, no steps of regions, its own training).
NOT_IN_ORIGINAL = ("start_train", "start_every", "start_early_stopping")
NOT_IN_ORIGINAL_AL = ("budgets", "regions_per_step", "candidates_per_pool", "selection", "step_train", "final_train",
                      "final_init", "final_include_start", "step_train_on")


def run_config(cfg: ExperimentConfig, al: ALConfig, pool_images: int | None = None) -> dict:
    """What a run's results depend on; stored with the run and checked on resume.

    With DEAL's original protocol, ``al.deal`` is recorded for every strategy (it holds the protocol),
    the keys the protocol does not read are left out, and ``budget_unit: images`` (with the pool's
    ``pool_images``, when given) tells the tables and plots that budgets count whole images."""
    d = to_dict(cfg)
    for k in ("strategies", "seeds", "bounds", "store", "device", "cache_dir"):
        d.pop(k)
    d["al"] = to_dict(al)
    if al.name is None:  # stores written before the field existed stay valid
        d["al"].pop("name")
    method = lookup(al.strategy)
    if not method.needs_state_set:  # the run does not depend on the state images
        d.pop("state_images")
    if not method.needs_agent:
        d["al"].pop("agent")
    for other in {lookup(n).options for n in names()} - {None}:  # method sections: recorded in full for the
        d["al"].pop(other, None)                                  # method that reads them only
    if method.options is not None:
        d["al"][method.options] = to_dict(getattr(al, method.options))
    if al.deal.protocol == "deal_original":
        for k in NOT_IN_ORIGINAL:
            d.pop(k, None)
        for k in NOT_IN_ORIGINAL_AL:
            d["al"].pop(k, None)
        d["al"]["deal"] = {**to_dict(al.deal), "original": to_dict(al.deal.original)}
        d["budget_unit"] = "images"
        if pool_images is not None:
            d["pool_images_count"] = pool_images
    return d


def run_one(exp: Experiment, al: ALConfig, progress: bool = True) -> str:
    """One (strategy, seed) run into the experiment's store; resumes where it stopped."""
    if (al.deal.protocol == "deal_original") != exp.cfg.original_protocol:
        raise ValueError("a run's al.deal.protocol must be its experiment's (prepare() builds the start model or not)")
    if exp.cfg.original_protocol:
        return run_one_original(exp, al, progress)
    store = RunStore(exp.cfg.store)
    steps_total = steps_to_last_budget(al.budgets, al.regions_per_step)
    bar = tqdm(total=steps_total, desc=al.run_id, disable=not progress)
    done = store.steps(al.run_id)
    bar.update(len(done))

    def on_step(info: dict) -> None:
        evals = [e for e in store.evaluations(al.run_id) if e["split"] == "test"]
        last = f"{evals[-1]['miou']:.3f}@{evals[-1]['budget']}" if evals else "-"
        bar.set_postfix(labelled=info["labelled"], next_budget=next((b for b in al.budgets if b > info["labelled"]), "-"),
                        test_miou=last)
        bar.update(1)

    try:
        start_model, _ = exp.start_model_for(al)
        return run_active_learning(al, start_model, exp.pool, store, exp.device, run_config(exp.cfg, al),
                                   exp.align, on_step)
    finally:
        bar.close()
        store.close()


def run_one_original(exp: Experiment, al: ALConfig, progress: bool = True) -> str:
    """One (strategy, seed) run of DEAL's original protocol (image-level rounds, each model trained from
    scratch) into the experiment's store; resumes where it stopped."""
    store = RunStore(exp.cfg.store)
    bar = tqdm(total=al.deal.original.rounds + 1, desc=f"{al.run_id} (rounds)", disable=not progress)
    heads = head_specs(al.strategy, al, exp.pool.num_classes)

    def on_round(info: dict) -> None:
        bar.set_postfix(images=info["images"], test_miou=f"{info['test_miou']:.3f}")
        bar.update(1)

    try:
        return run_original(al, lambda seed: exp.fresh_model(heads, seed), exp.pool, store, exp.device,
                            run_config(exp.cfg, al, len(exp.pool.features)), exp.align, progress, on_round)
    finally:
        bar.close()
        store.close()


def run_bounds(exp: Experiment, upper: bool = True, progress: bool = True) -> None:
    """Lower bound (start model, nothing labelled) and upper bound (every pool region labelled). With
    DEAL's original protocol: the upper bound only, a fresh plain model trained on every pool image like
    a round (its budget: the pool's image count)."""
    if exp.cfg.original_protocol:
        if upper:
            _original_upper_bound(exp, progress)
        return
    store = RunStore(exp.cfg.store)
    try:
        cfg = run_config(exp.cfg, exp.cfg.al)
        if store.claim_run("lower_bound", "lower_bound", 0, cfg) != "done":
            for split in evaluated_splits(exp.start_metrics):
                store.record_evaluation("lower_bound", 0, split, 0, exp.start_metrics[split], None, 0, 0.0)
            store.finish_run("lower_bound")
        if upper and store.claim_run("upper_bound", "upper_bound", 0, cfg) != "done":
            state = exp.pool.oracle.new_state(exp.pool.grid)
            state.label(state.selectable_ids(), 1)
            t = time.perf_counter()
            generator = seed_everything(1)
            log.info("upper bound: training on all %d pool regions", state.num_labelled)
            out = final_train_and_evaluate(exp.start_model, exp.pool, state, exp.cfg.al.final_train,
                                           exp.device, generator, exp.align, exp.cfg.al.final_include_start,
                                           progress=progress, desc=f"upper bound ({state.num_labelled} regions)")
            hist = exp.pool.oracle.class_histogram(state, exp.pool.num_classes).tolist()
            for split in evaluated_splits(out):
                store.record_evaluation("upper_bound", state.num_labelled, split, state.num_labelled, out[split], hist,
                                        out["epochs"], time.perf_counter() - t, history=out["history"])
            store.finish_run("upper_bound")
    finally:
        store.close()


def _original_upper_bound(exp: Experiment, progress: bool) -> None:
    store = RunStore(exp.cfg.store)
    try:
        n = len(exp.pool.features)
        if store.claim_run("upper_bound", "upper_bound", 0, run_config(exp.cfg, exp.cfg.al, n)) == "done":
            return
        state = exp.pool.oracle.new_state(exp.pool.grid)
        state.label(state.selectable_ids(), 1)
        t = time.perf_counter()
        model = exp.fresh_model({}, init_seed(0))
        generator = seed_everything(1)
        log.info("upper bound: training from scratch on all %d pool images", n)
        out = final_train_and_evaluate(model, exp.pool, state, exp.cfg.al.deal.original.train_config(), exp.device,
                                       generator, exp.align, progress=progress, desc=f"upper bound ({n} images)")
        hist = exp.pool.oracle.class_histogram(state, exp.pool.num_classes).tolist()
        for split in ("val", "test"):
            extra = {"best_epoch": out["best_epoch"]} if split == "val" else None
            store.record_evaluation("upper_bound", n, split, n, out[split], hist, out["epochs"], time.perf_counter() - t,
                                    extra, out["history"])
        store.finish_run("upper_bound")
    finally:
        store.close()


def run_benchmark(cfg: ExperimentConfig, progress: bool = True) -> Path:
    """Every (strategy, seed) of the config, skipping finished runs, plus the bounds."""
    exp = prepare(cfg, progress)
    if cfg.bounds:
        try:
            run_bounds(exp, upper=cfg.bounds is True, progress=progress)
        except RunBusyError as exc:
            log.info("skipping bounds: %s", exc)
    for strategy in cfg.strategies:
        for seed in cfg.seeds:
            try:
                run_one(exp, replace(cfg.al, strategy=strategy, seed=seed), progress)
            except RunBusyError as exc:  # another process works on it: take the next one
                log.info("skipping: %s", exc)
    return Path(cfg.store)
