"""What the MiSiCAL-style commands share (spec ``misical.md`` sections 3, 5 and 6.3): the experiment config,
the prepared experiment (the start model and the pool D_V of an ordinary experiment, plus the policy
training images D_T), the class policy files (``activeseg misical train``), and one evaluation training
on a fixed selection of pool regions.

D_T is its own key, ``misical_train_images`` (default ``ralis:d_t``), not ``start_images``: in the
low-start profile the start model trains on d_t[0::10] only, while a class policy learns from the
regions of every d_t image. D_T must not share an image with the pool (the policy never sees D_V labels).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch

from activeseg.al.loop import evaluated_splits, final_train_and_evaluate, step_generators, step_seeds
from activeseg.al.state import LabelledState
from activeseg.config import Positive, to_dict
from activeseg.data.classes import load_classes
from activeseg.data.folder import SegmentationSplit, load_split, scan_split
from activeseg.data.roots import resolve_dataset_dir
from activeseg.data.subsets import resolve_images
from activeseg.errors import ConfigError
from activeseg.experiment import Experiment, ExperimentConfig, plan_images, prepare
from activeseg.features import FeatureCache
from activeseg.methods.misical.config import IMAGE_UNIT, MisicalConfig
from activeseg.methods.misical.embeddings import EmbeddingCache, model_fingerprint
from activeseg.methods.misical.policy import load_policy, save_policy, train_class_policy
from activeseg.methods.misical.quantity import class_quantities, set_quantity
from activeseg.methods.misical.report import plot_policy_training
from activeseg.methods.misical.strategy import MisicalPolicy
from activeseg.methods.ralis.agent import AgentDivergedError
from activeseg.pipeline import make_source
from activeseg.store import RunStore
from activeseg.train.trainer import Source

log = logging.getLogger(__name__)

BASELINES = ("random", "entropy", "pred_quantity")
CAMVID_RARE = ("pole", "sign_symbol", "fence", "pedestrian", "bicyclist")
#: Keys of an experiment that every evaluation training depends on (recorded with each run).
SHARED_KEYS = ("data", "model", "start_train", "start_seed", "split", "start_images", "start_every",
               "start_early_stopping", "pool_images", "val_split", "test_split", "test_size", "region_rows",
               "region_cols")


@dataclass(frozen=True)
class MisicalExperimentConfig(ExperimentConfig):
    """`activeseg misical train|premise|benchmark`: every experiment key (data, model, start model, pool D_V,
    D_R = val_split, test, store, seeds, al.budgets, al.final_train, al.final_include_start and the policy
    options al.misical; strategies, bounds and the step keys are not read), plus these."""

    misical_train_images: str = "ralis:d_t"
    """D_T: the images whose regions and ground truth the class policies learn from (forms of start_images;
    disjoint from the pool)."""
    target_classes: tuple[str, ...] | None = None
    """Classes of the per-class benchmark, one policy per class and seed; null: every class of the dataset."""
    rare_classes: tuple[str, ...] = CAMVID_RARE
    """Classes whose wins are also counted on their own (those among the benchmark's classes)."""
    baselines: tuple[str, ...] = BASELINES
    """Selections compared with the policy: random and entropy (class-agnostic: one per budget and seed) and
    pred_quantity (class-aware: the start model's predicted pixel count of the class)."""
    eval_init: Literal["dt_start", "scratch"] = "dt_start"
    """Weights every evaluation training starts from: 'dt_start' (the experiment's start model) or 'scratch'
    (a fresh decoder on the frozen encoder)."""
    premise_subsets: Positive = 12
    """M: Dirichlet-tilted subsets of the quantity-accuracy check, one training each (CPU profile: 6; >= 3)."""
    premise_budget: Positive | None = None
    """Regions in each premise subset; null: the first of al.budgets."""
    timing_budgets: tuple[int, ...] = (480, 1440, 6168)
    """Budgets whose one-shot selection time is measured for every policy (each capped at the pool's size)."""
    ralis_store: Path | None = None
    """A run store holding RALIS runs on the same start model, pool, D_R and test (the low-start benchmark's,
    runs/camvid_lowstart/store.sqlite): the report compares the rare classes' test IoU of each class policy with
    theirs at the same budgets, paired over seeds (spec section 7); null: no cross-check."""
    ralis_strategy: str = "ralis"
    """The strategy name of the RALIS runs in ralis_store."""
    policy_dir: Path | None = None
    """Folder of the class policies (CLASS-sSEED/policy.pt, history.json, training.png); null: policies/
    beside the store."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.original_protocol:
            raise ConfigError("the misical commands evaluate region selections; leave al.deal.protocol at 'ralis'")
        if self.al.misical.unit != "region":
            raise ConfigError(IMAGE_UNIT)
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown or len(set(self.baselines)) != len(self.baselines) or "random" not in self.baselines:
            raise ConfigError(f"baselines {list(self.baselines)}: use distinct names among {list(BASELINES)}, random "
                              "included (wins are counted against it)")
        if self.premise_subsets < 3:
            raise ConfigError(f"premise_subsets is {self.premise_subsets}; a rank correlation needs at least 3 subsets "
                              "(spec: 12, CPU profile 6)")
        if self.target_classes is not None and not self.target_classes:
            raise ConfigError("target_classes is empty; name classes (e.g. [pedestrian, sky]) or use null for all")
        if not self.seeds:
            raise ConfigError("seeds is empty; give at least one seed, e.g. [20, 50, 234]")


# --- classes and policy files ---------------------------------------------------------------------

def dataset_classes(cfg: ExperimentConfig) -> tuple[str, ...]:
    """The class names of the experiment's dataset (from classes.json; no image is read)."""
    ddir = resolve_dataset_dir(cfg.data.dataset, cfg.data.data_root)
    return tuple(load_classes(ddir / "classes.json").names)


def class_index(name: str, classes: tuple[str, ...], key: str = "--target-class") -> int:
    if name not in classes:
        raise ConfigError(f"{key}: {name!r} is not a class of the dataset; use one of {', '.join(classes)}")
    return classes.index(name)


def benchmark_classes(cfg: MisicalExperimentConfig, classes: tuple[str, ...]) -> tuple[str, ...]:
    """target_classes (checked), or every class of the dataset."""
    if cfg.target_classes is None:
        return classes
    for name in cfg.target_classes:
        class_index(name, classes, "target_classes")
    return tuple(cfg.target_classes)


def policy_file(cfg: MisicalExperimentConfig, target_class: str, seed: int, out: Path | None = None) -> Path:
    """``policy.pt`` of the policy of (class, seed): in ``out``, or policy_dir/CLASS-sSEED."""
    root = cfg.policy_dir if cfg.policy_dir is not None else Path(cfg.store).parent / "policies"
    return (Path(out) if out is not None else Path(root) / f"{target_class}-s{seed}") / "policy.pt"


def policy_options(cfg: MisicalExperimentConfig, target_class: str) -> MisicalConfig:
    """The al.misical options of the policy of ``target_class`` (no policy file: it is being trained)."""
    return replace(cfg.al.misical, target_class=target_class, policy=None)


def _training_view(options: MisicalConfig) -> dict:
    """What a policy's training depends on among its options (not how it is deployed)."""
    return {k: v for k, v in to_dict(options).items() if k not in ("deploy", "policy")}


# --- the prepared experiment ----------------------------------------------------------------------

@dataclass
class MisicalExperiment:
    """An experiment prepared by ``prepare`` (start model, pool D_V, D_R, test), with D_T loaded on demand
    and the embeddings remembered in ``embeddings`` (on disk under cache_dir when it is set)."""

    cfg: MisicalExperimentConfig
    exp: Experiment
    dataset_dir: Path
    pool_stems: list[str]
    embeddings: EmbeddingCache
    progress: bool = True
    _train: tuple[SegmentationSplit, Source] | None = None
    _cached: dict = field(default_factory=dict)

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.exp.pool.class_names)

    def train_set(self) -> tuple[SegmentationSplit, Source]:
        """D_T: its split (labels, pixels) and its inputs as the pool's (cached features or pixels)."""
        if self._train is None:
            cfg = self.cfg
            stems = [s for s, _, _ in scan_split(self.dataset_dir / cfg.split)]
            names = resolve_images(cfg.misical_train_images, "misical_train_images", self.dataset_dir, stems,
                                   seed=cfg.start_seed)
            shared = sorted(set(names) & set(self.pool_stems))
            if shared:
                raise ConfigError(f"misical_train_images and pool_images share {len(shared)} images (e.g. {shared[:3]}); "
                                  "the policy must not see pool labels: choose disjoint sets")
            split = load_split(self.dataset_dir, cfg.split, cfg.data.size, cfg.data.fit, names, self.progress)
            model = self.exp.start_model
            cache = (FeatureCache(model, self.exp.device, self.dataset_dir.name, cfg.cache_dir, progress=self.progress)
                     if cfg.model.freeze_encoder else None)
            self._train = (split, make_source(model, split, cache))
        return self._train

    def train_embeddings(self) -> torch.Tensor:
        """Embeddings of the D_T regions. Shape: ``[N_T, R, d]``."""
        split, source = self.train_set()
        opts = self.cfg.al.misical
        images = split.images if opts.encoder == "handcrafted" else None
        return self.embeddings.get(opts.encoder, source, self.exp.pool.grid, self.exp.start_model, self.exp.device,
                                   opts.add_position, images=images)

    def train_quantities(self) -> torch.Tensor:
        """q_c(r) of the D_T regions from their ground truth. Shape: ``[N_T, R, C + 1]``."""
        split, _ = self.train_set()
        return class_quantities(split.labels, self.exp.pool.grid, self.exp.pool.num_classes)

    def pool_quantities(self) -> torch.Tensor:
        """q_c(r) of the pool regions (for the record of each selection). Shape: ``[N, R, C + 1]``."""
        if "pool_q" not in self._cached:
            pool = self.exp.pool
            self._cached["pool_q"] = class_quantities(pool.oracle, pool.grid, pool.num_classes)
        return self._cached["pool_q"]

    def pool_images(self) -> torch.Tensor | None:
        """The pool's uint8 pixels when the embeddings are handcrafted and the pool holds cached features."""
        if self.cfg.al.misical.encoder != "handcrafted":
            return None
        features = self.exp.pool.features
        if hasattr(features, "images"):
            return features.images
        if "pool_images" not in self._cached:
            cfg = self.cfg
            self._cached["pool_images"] = load_split(self.dataset_dir, cfg.split, cfg.data.size, cfg.data.fit,
                                                     self.pool_stems, self.progress).images
        return self._cached["pool_images"]

    def policy(self, path: Path) -> MisicalPolicy:
        """The policy file at ``path``, deployed with this config's al.misical.deploy on the pool."""
        return MisicalPolicy.load(replace(self.cfg.al.misical, policy=path, target_class=None), self.embeddings,
                                  self.pool_images())

    def new_state(self, picked: torch.Tensor) -> LabelledState:
        """A labelled state of the pool with ``picked`` (global region ids) labelled at step 1."""
        pool = self.exp.pool
        state = pool.oracle.new_state(pool.grid)
        state.label(picked, 1)
        return state

    def train_on(self, picked: torch.Tensor, seed: int, seed_step: int, desc: str) -> tuple[dict, LabelledState, float]:
        """One evaluation training (spec 6.3) on the pool regions ``picked``: from the start model (or a fresh
        decoder), the experiment's final training (early stopping on D_R), then val and test. Randomness from
        ``step_seeds(seed, seed_step)``. Returns the metrics, the labelled state and the seconds."""
        cfg, exp = self.cfg, self.exp
        state = self.new_state(picked)
        t = time.perf_counter()
        model = exp.start_model if cfg.eval_init == "dt_start" else exp.fresh_model({}, seed)
        _, generator = step_generators(step_seeds(seed, seed_step))
        out = final_train_and_evaluate(model, exp.pool, state, cfg.al.final_train, exp.device, generator, exp.align,
                                       cfg.al.final_include_start, progress=self.progress, desc=desc)
        out.pop("model")
        return out, state, time.perf_counter() - t

    def selection_extra(self, picked: torch.Tensor) -> dict:
        """The mechanism under test, for the record: Q_c of the selected set for every class, images touched."""
        R = self.exp.pool.grid.regions_per_image
        quantities = set_quantity(self.pool_quantities(), picked)
        return {"quantities": dict(zip(self.class_names, quantities.tolist())),
                "images_touched": int(torch.unique(picked // R).numel()), "regions": sorted(picked.tolist())}

    def record(self, store: RunStore, run_id: str, budget: int, out: dict, state: LabelledState, seconds: float,
               extra: dict) -> None:
        """Val then test evaluations of one training (test last: it marks the budget done); ``extra`` goes
        with the test record."""
        pool = self.exp.pool
        hist = pool.oracle.class_histogram(state, pool.num_classes).tolist()
        for split in evaluated_splits(out):
            store.record_evaluation(run_id, budget, split, state.num_labelled, out[split], hist, out["epochs"], seconds,
                                    extra if split == "test" else None, out["history"])


def prepare_misical(cfg: MisicalExperimentConfig, progress: bool = True) -> MisicalExperiment:
    """The experiment's data and start model (``prepare``); D_T is loaded when first needed."""
    ddir = resolve_dataset_dir(cfg.data.dataset, cfg.data.data_root)
    plan = plan_images(cfg, ddir)
    exp = prepare(cfg, progress)
    return MisicalExperiment(cfg, exp, ddir, plan.pool, EmbeddingCache(cfg.cache_dir), progress)


def selection_config(cfg: MisicalExperimentConfig, method: str, target_class: str | None = None) -> dict:
    """What an evaluation run depends on (stored with it, checked on resume): the experiment keys of the
    start model, pool, D_R and test, the final training, the method and its class, and for the policy its
    options and D_T."""
    full = to_dict(cfg)
    d = {k: full[k] for k in SHARED_KEYS if k in full}  # keys marked ADDED appear only when set
    d["al"] = {"final_train": full["al"]["final_train"], "final_include_start": cfg.al.final_include_start}
    d.update(protocol="misical_per_class", method=method, eval_init=cfg.eval_init)
    if target_class is not None:
        d["target_class"] = target_class
    if method == "misical":
        d["misical"] = to_dict(policy_options(cfg, target_class))
        d["misical_train_images"] = cfg.misical_train_images
    return d


# --- activeseg misical train -------------------------------------------------------------------------

def existing_policy(cfg: MisicalExperimentConfig, target_class: str, seed: int, path: Path) -> dict | None:
    """The meta of the finished policy at ``path`` when it was trained as asked; None when there is none.

    Raises:
        ConfigError: the file holds a policy trained otherwise (it is never overwritten).
    """
    if not path.is_file():
        return None
    _, meta = load_policy(path)
    mine = {"target_class": target_class, "seed": seed, "train_images": cfg.misical_train_images,
            **_training_view(policy_options(cfg, target_class))}
    theirs = {"target_class": meta["target_class"], "seed": meta.get("seed"), "train_images": meta.get("train_images"),
              **_training_view(meta["config"])}
    differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
    if differ:
        raise ConfigError(f"{path} holds a policy trained otherwise ({', '.join(differ)} differ); delete it, or give "
                          "another --out (or policy_dir)")
    return meta


def train_policy(cfg: MisicalExperimentConfig, target_class: str, seed: int, out: Path | None = None,
                 progress: bool = True, data: MisicalExperiment | None = None) -> tuple[Path, dict, bool]:
    """Trains the policy of (class, seed) on D_T and writes policy.pt, history.json and training.png; a
    finished policy trained with the same options is kept (not retrained).

    Args:
        data: the prepared experiment (prepared here when a policy must be trained and none is given).

    Returns:
        The policy file, its meta, and whether it was trained now.

    Raises:
        AgentDivergedError: the Q-network diverged (history.json and training.png are written first).
    """
    classes = data.class_names if data is not None else dataset_classes(cfg)
    c = class_index(target_class, classes)
    path = policy_file(cfg, target_class, seed, out)
    meta = existing_policy(cfg, target_class, seed, path)
    if meta is not None:
        log.info("policy %s exists (trained as asked): not retrained", path)
        return path, meta, False
    data = data or prepare_misical(cfg, progress)
    options = policy_options(cfg, target_class)
    t = time.perf_counter()
    emb = data.train_embeddings()  # [N_T, R, d]
    q = data.train_quantities()[..., c]  # [N_T, R]
    seconds_embed = time.perf_counter() - t
    record = {"target_class": target_class, "seed": seed, "train_images": cfg.misical_train_images,
              "train_regions": int(q.numel()), "seconds_embed": seconds_embed}
    t = time.perf_counter()
    try:
        qnet, history = train_class_policy(emb, q, options, seed, progress)
    except AgentDivergedError as exc:
        _write_history(path.parent, {**record, "diverged": str(exc), "episodes": getattr(exc, "history", [])})
        raise
    record["seconds_train"] = time.perf_counter() - t
    meta = {**record, "history": history, "embedding_model": model_fingerprint(options.encoder, data.exp.start_model)}
    save_policy(path, qnet, options, meta)
    _write_history(path.parent, {**record, "episodes": history})
    log.info("policy of %s (seed %d): %d episodes in %.1f s -> %s", target_class, seed, len(history),
             record["seconds_train"], path)
    return path, load_policy(path)[1], True


def _write_history(folder: Path, summary: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "history.json").write_text(json.dumps(summary, indent=1))
    title = (f"MiSiCAL-style (reconstruction) policy: class {summary['target_class']}, seed {summary['seed']}, "
             f"{summary['train_regions']} D_T regions")
    if summary["episodes"]:
        plot_policy_training(summary["episodes"], folder / "training.png", title)
