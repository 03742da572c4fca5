"""The per-class protocol (spec ``misical.md`` section 6): for every class c, budget B and seed s, the class
policy pi_c (trained on D_T when its file is missing) selects B regions of the pool D_V in one shot; the
baselines select B regions too; every selection is trained once (section 6.3) and scored on test.

Selections, all from the start model or the pool alone, nested over the budgets:

- ``misical``: ``al.misical.deploy`` of the policy of (c, s) (class-aware: one run per class and seed);
- ``random``: the first B of a permutation of the pool's regions drawn from seed s (class-agnostic);
- ``entropy``: the global top B by the start model's mean pixel entropy (class-agnostic);
- ``pred_quantity``: the global top B by the start model's predicted pixel count of c (class-aware).

Class-agnostic selections are trained once per (B, s) and scored for every class. Each (method, class,
seed) is one run of the store (``misical_pedestrian-s20``, ``pred_quantity_pedestrian-s20``, ``random-s20``,
``entropy-s20``) with one evaluation per budget, so an interrupted benchmark resumes where it stopped.
Every run's test record carries Q_c of its selected set for every class and the images it touches.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from activeseg.al.candidates import select_global_topk
from activeseg.al.scoring import entropy
from activeseg.al.strategies import SelectionContext, encoded_inputs
from activeseg.errors import ConfigError
from activeseg.methods.misical.experiment import (
    MisicalExperiment,
    SHARED_KEYS,
    MisicalExperimentConfig,
    benchmark_classes,
    prepare_misical,
    selection_config,
    train_policy,
)
from activeseg.methods.misical.policy import deploy
from activeseg.methods.misical.strategy import MisicalPolicy
from activeseg.methods.misical.report import (
    TITLE,
    benchmark_markdown,
    benchmark_result,
    costs_lines,
    crosscheck_markdown,
    ralis_crosscheck,
)
from activeseg.models.segmenter import Segmenter
from activeseg.regions import RegionGrid
from activeseg.store import RunBusyError, RunStore
from activeseg.train.sources import ConcatSource, FeatureSource, ImageSource

log = logging.getLogger(__name__)

SEED_STEP = 1_000_000  # training randomness at budget B: step_seeds(seed, SEED_STEP + B), as the loop's final training
Select = Callable[[int], tuple[torch.Tensor, dict]]  # budget -> (global region ids, extra for the record)


@torch.no_grad()
def start_model_region_stats(model: Segmenter, source: FeatureSource | ImageSource | ConcatSource, grid: RegionGrid,
                             num_classes: int, device: torch.device, content: torch.Tensor | None = None,
                             batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean pixel entropy and the predicted (argmax) pixel count of every class, of every region, from
    one eval-mode pass of the model over the whole images (padding counts in neither).

    Shape:
        -> entropy ``[N, R]`` float64, counts ``[N, R, C]`` float64.
    """
    model.eval()
    ids = grid.region_map().reshape(-1)  # [H * W]
    R, C = grid.regions_per_image, num_classes
    ent, counts = [], []
    for start in range(0, len(source), batch_size):
        chunk = torch.arange(start, min(start + batch_size, len(source)))
        feats, size = encoded_inputs(model, source, chunk, device)
        probs = model.decoder(feats, size).float().softmax(1)  # [n, C, H, W]
        valid = None if content is None else content[chunk]
        ent.append(grid.pool(entropy(probs).double().cpu(), valid))  # [n, R]
        onehot = F.one_hot(probs.argmax(1).cpu(), C).double()  # [n, H, W, C]
        if valid is not None:
            onehot = onehot * valid[..., None]
        n = len(chunk)
        counts.append(torch.zeros(n, R, C, dtype=torch.float64).index_add_(1, ids, onehot.reshape(n, -1, C)))
    return torch.cat(ent), torch.cat(counts)


def _context(data: MisicalExperiment, seed: int, B: int) -> SelectionContext:
    """An empty labelled state of the pool, the start model, and generators of the seed alone (so a rollout
    of B regions is the first B picks of a longer one: selections nest over the budgets)."""
    exp = data.exp
    state = exp.pool.oracle.new_state(exp.pool.grid)
    return SelectionContext(exp.start_model, exp.pool.features, state, exp.device, np.random.default_rng([seed, 1]),
                            torch.Generator().manual_seed(seed), k=B, content=exp.pool.oracle.content,
                            start_model=exp.start_model)


class Selections:
    """The selection functions of the benchmark's methods on one prepared experiment."""

    def __init__(self, data: MisicalExperiment, progress: bool = True) -> None:
        self.data, self.progress = data, progress
        self.available = _context(data, 0, 1).state.available().reshape(-1)  # [N * R]
        self._stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._stats is None:
            exp = self.data.exp
            self._stats = start_model_region_stats(exp.start_model, exp.pool.features, exp.pool.grid,
                                                   exp.pool.num_classes, exp.device, exp.pool.oracle.content)
        return self._stats

    def random(self, seed: int) -> Select:
        order = torch.from_numpy(np.random.default_rng([seed, 7]).permutation(self.available.nonzero().reshape(-1).numpy()))
        return lambda B: (order[:B], {})

    def entropy(self, seed: int) -> Select:
        return lambda B: (select_global_topk(self.stats()[0].reshape(-1), self.available, B), {})

    def pred_quantity(self, seed: int, c: int) -> Select:
        return lambda B: (select_global_topk(self.stats()[1][..., c].reshape(-1), self.available, B), {})

    def misical(self, seed: int, target_class: str) -> Select:
        """The policy of (class, seed), trained or loaded on first use; the first use also measures the
        one-shot selection time at every timing budget and benchmark budget (each capped at the pool)."""
        cfg, data, held = self.data.cfg, self.data, {}

        def select(B: int) -> tuple[torch.Tensor, dict]:
            if not held:
                path, meta, _ = train_policy(cfg, target_class, seed, progress=self.progress, data=data)
                policy = data.policy(path)
                t = time.perf_counter()
                emb = policy.embeddings(_context(data, seed, 1))
                held.update(policy=policy, path=path, meta=meta, embed=time.perf_counter() - t,
                            timing=self.timing(policy, emb, seed))
            policy = held["policy"]
            t = time.perf_counter()
            picked, _ = policy.choose(_context(data, seed, B), B)
            return picked, {"deploy": policy.cfg.deploy, "policy": str(held["path"]),
                            "policy_seconds_train": held["meta"].get("seconds_train"),
                            "seconds_select": time.perf_counter() - t, "seconds_embed_pool": held["embed"],
                            "selection_seconds": held["timing"]}

        return select

    def timing(self, policy: MisicalPolicy, emb: torch.Tensor, seed: int) -> dict[int, float]:
        """Seconds of a whole selection (Q-network pass and ranking, or the rollout) per budget."""
        n = int(self.available.sum())
        budgets = sorted({min(b, n) for b in (*self.data.cfg.timing_budgets, *self.data.cfg.al.budgets)})
        out = {}
        for b in budgets:
            t = time.perf_counter()
            deploy(policy.qnet, emb, self.available, b, policy.cfg, np.random.default_rng([seed, b]))
            out[b] = time.perf_counter() - t
        return out


def run_selection(data: MisicalExperiment, store: RunStore, run_id: str, method: str, target_class: str | None,
                  seed: int, select: Select) -> None:
    """One (method, class, seed) run: every budget not yet evaluated is selected, trained and recorded."""
    cfg = data.cfg
    store.claim_run(run_id, run_id.rsplit("-s", 1)[0], seed, selection_config(cfg, method, target_class))
    try:
        for B in cfg.al.budgets:
            if store.has_evaluation(run_id, B, "test"):
                continue
            picked, extra = select(B)
            out, state, seconds = data.train_on(picked, seed, SEED_STEP + B, f"{run_id} ({B} regions)")
            extra = {"method": method, "target_class": target_class, **extra, **data.selection_extra(picked)}
            data.record(store, run_id, B, out, state, seconds, extra)
            log.info("%s: %d regions, test mIoU %.4f", run_id, B, out["test"]["miou"])
        store.finish_run(run_id)
    finally:
        store.release_run(run_id)


def run_benchmark(cfg: MisicalExperimentConfig, progress: bool = True,
                  data: MisicalExperiment | None = None) -> tuple[Path, Path, str]:
    """Every run of the protocol (finished ones skipped, seeds outermost), then the report beside the store."""
    if cfg.ralis_store is not None:
        ralis_evaluations(cfg)  # before hours of training, not at the report
    data = data or prepare_misical(cfg, progress)
    classes = benchmark_classes(cfg, data.class_names)
    sel = Selections(data, progress)
    store = RunStore(cfg.store)
    try:
        for seed in cfg.seeds:
            plan: list[tuple[str, str, str | None, Select]] = []
            for name in ("random", "entropy"):
                if name in cfg.baselines:
                    plan.append((f"{name}-s{seed}", name, None, getattr(sel, name)(seed)))
            for c in classes:
                plan.append((f"misical_{c}-s{seed}", "misical", c, sel.misical(seed, c)))
                if "pred_quantity" in cfg.baselines:
                    plan.append((f"pred_quantity_{c}-s{seed}", "pred_quantity", c,
                                 sel.pred_quantity(seed, data.class_names.index(c))))
            for run_id, method, c, select in plan:
                try:
                    run_selection(data, store, run_id, method, c, seed, select)
                except RunBusyError as exc:  # another process works on it: take the next one
                    log.info("skipping: %s", exc)
    finally:
        store.close()
    return write_report(cfg, classes)


def ralis_evaluations(cfg: MisicalExperimentConfig) -> list[dict]:
    """The evaluations of the RALIS runs in ``cfg.ralis_store`` (runs whose label is ``cfg.ralis_strategy``),
    after checking that they share this experiment's evaluation: the start model, pool, D_R and test
    (``SHARED_KEYS``), the final training and its inclusion of the start images, and its initial weights (the
    start model: ``al.final_init: start_model``, which is this experiment's ``eval_init: dt_start``).

    Raises:
        ConfigError: no such store, no such run in it, or runs evaluated otherwise (the keys are named).
    """
    path = Path(cfg.ralis_store)
    remedy = ("run the low-start RALIS benchmark first (activeseg benchmark configs/camvid_lowstart_ralis.yaml) or "
              "set ralis_store: null")
    if not path.is_file():
        raise ConfigError(f"ralis_store {path} does not exist; {remedy}")
    if cfg.eval_init != "dt_start":
        raise ConfigError(f"ralis_store: RALIS runs are evaluated from the start model, this benchmark with eval_init "
                          f"{cfg.eval_init!r}; set eval_init: dt_start or ralis_store: null")
    store = RunStore.open_existing(path)
    try:
        configs = store.run_configs()
        labels = sorted({r["strategy"] for r in store.runs()})
        evals = [e for e in store.evaluations() if e["strategy"] == cfg.ralis_strategy]
    finally:
        store.close()
    if not evals:
        raise ConfigError(f"ralis_store {path} holds no evaluated run labelled {cfg.ralis_strategy!r}; set "
                          f"ralis_strategy to one of {labels}, or {remedy}")
    own = selection_config(cfg, "random")  # the keys compared below do not depend on the method
    for run_id in sorted({e["run_id"] for e in evals}):
        theirs = configs[run_id]
        differ = [k for k in SHARED_KEYS if theirs.get(k) != own.get(k)]
        if theirs["al"].get("final_train") != own["al"]["final_train"]:
            differ.append("al.final_train")
        if theirs["al"].get("final_include_start", False) != own["al"]["final_include_start"]:  # absent: False
            differ.append("al.final_include_start")
        if theirs["al"].get("final_init", "al_model") != "start_model":  # absent: the default
            differ.append("al.final_init (the RALIS runs' must be start_model)")
        if differ:
            raise ConfigError(f"ralis_store {path}: run {run_id} differs from this benchmark in {differ}; a "
                              "cross-check needs the same start model, pool, D_R, test and final training")
    return evals


def region_area(cfg: MisicalExperimentConfig) -> float | None:
    """The pixels of one grid region at the working size, or None when the grid does not divide it evenly."""
    H, W, rows, cols = cfg.data.height, cfg.data.width, cfg.region_rows, cfg.region_cols
    return H * W / (rows * cols) if H % rows == 0 and W % cols == 0 else None


def write_report(cfg: MisicalExperimentConfig, classes: tuple[str, ...]) -> tuple[Path, Path, str]:
    """misical_results.md and misical_results.json beside the store, from its runs."""
    store = RunStore.open_existing(cfg.store)
    try:
        evals = store.evaluations()
    finally:
        store.close()
    methods = tuple(m for m in ("random", "entropy", "pred_quantity") if m in cfg.baselines) + ("misical",)
    result = benchmark_result(evals, classes, cfg.rare_classes, cfg.al.budgets, methods)
    costs, cost_data = costs_lines(evals, methods)
    opts = cfg.al.misical
    header = [f"Data {cfg.data.dataset} at {cfg.data.height}x{cfg.data.width}, grid "
              f"{cfg.region_rows}x{cfg.region_cols}; pool {cfg.pool_images}; policies trained on D_T = "
              f"{cfg.misical_train_images} ({opts.encoder} embeddings, {opts.episodes} episodes of {opts.episode_len}); "
              f"deployment: {opts.deploy}; seeds {list(cfg.seeds)}.",
              f"Evaluation training: al.final_train from {'the start model' if cfg.eval_init == 'dt_start' else 'scratch'}"
              f"{' with the start images' if cfg.al.final_include_start else ''}, early stopping on {cfg.val_split}; "
              f"IoU on {cfg.test_split}."]
    crosscheck = None if cfg.ralis_store is None else ralis_crosscheck(
        evals, ralis_evaluations(cfg), tuple(c for c in cfg.rare_classes if c in classes), cfg.al.budgets,
        region_area(cfg))
    extra = [] if crosscheck is None else crosscheck_markdown(crosscheck, f"{cfg.ralis_store} ({cfg.ralis_strategy})")
    text = benchmark_markdown(result, header, costs, extra)
    out = Path(cfg.store).parent
    md, js = out / "misical_results.md", out / "misical_results.json"
    md.write_text(text)
    js.write_text(json.dumps({"title": TITLE, "deploy": opts.deploy, **result, "costs": cost_data,
                              "ralis_crosscheck": crosscheck}, indent=1, default=str))
    return md, js, text
