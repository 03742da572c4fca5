"""DEAL's original protocol (spec ``deal.md`` section 4): whole images, in rounds, each round's model
trained from scratch.

A run labels a random start set of whole images, then repeats: train a freshly initialised model on
every labelled image (``epochs_per_round`` epochs, validating every ``val_every``, keeping the best
validated epoch), evaluate it on val and test, and with it score a random ``sub_ratio`` of the unlabelled
images; the best ``images_per_round`` are labelled whole. Any strategy that scores whole images runs in
it (DE and DS per image, entropy, random, ...): the loop never asks which one.

One evaluation per round, its budget the number of labelled images. Randomness comes from the run's
seed: the start set (the same for every strategy of a seed), the initial weights (the same fresh model
in every round), each round's training and its candidates. A resumed run continues from its last stored
step; if it stopped between a round's evaluation and its selection, that round's model is not stored,
so it is trained again (same seeds) to score the candidates. That retraining is bit-exact on CPU only:
there the resumed run makes exactly the choices of an uninterrupted one, while on a GPU
non-deterministic kernels can give slightly different weights, and so different selections and later
rounds (the round's stored evaluation is kept).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import torch

from activeseg.al.loop import ALConfig, Pool, final_train_and_evaluate, step_generators, step_seeds
from activeseg.al.state import LabelledState
from activeseg.al.strategies import ImageRanker, SelectionContext
from activeseg.methods import build_policy
from activeseg.models.segmenter import Segmenter
from activeseg.store import RunStore

log = logging.getLogger(__name__)

START_STEP = 1
"""The step that labels the start set; round r's selection is step ``START_STEP + r + 1``."""
TRAIN_SEEDS = 1_000_000
"""Step-seed offset of a round's training (+ the labelled images), as final training in the loop."""
INIT_SEEDS = 2_000_000
"""Step-seed offset of the initial weights (the same in every round of a run)."""


def init_seed(seed: int) -> int:
    """The seed of a run's freshly initialised model."""
    return step_seeds(seed, INIT_SEEDS)["torch"]


def labelled_images(state: LabelledState) -> torch.Tensor:
    """Images holding a labelled region, ascending."""
    return (state.labelled_step > 0).any(1).nonzero().reshape(-1)


def open_images(state: LabelledState) -> torch.Tensor:
    """Images with no labelled region and at least one selectable one, ascending."""
    return (((state.labelled_step > 0).sum(1) == 0) & state.selectable.any(1)).nonzero().reshape(-1)


def whole_image_regions(state: LabelledState, images: torch.Tensor) -> torch.Tensor:
    """Global ids of every selectable region of ``images``, in the order of ``images``."""
    R = state.grid.regions_per_image
    return torch.cat([i * R + state.selectable[i].nonzero().reshape(-1) for i in images.tolist()])


def draw_images(state: LabelledState, n: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` open images drawn uniformly, ascending."""
    pool = open_images(state)
    return pool[torch.as_tensor(np.sort(rng.choice(len(pool), size=n, replace=False)))]


def candidate_images(state: LabelledState, ratio: float, at_least: int, rng: np.random.Generator) -> torch.Tensor:
    """A random ``ratio`` share of the open images (rounded up, at least ``at_least``), ascending."""
    pool = open_images(state)
    m = min(len(pool), max(at_least, int(np.ceil(ratio * len(pool)))))
    return pool[torch.as_tensor(np.sort(rng.choice(len(pool), size=m, replace=False)))]


def select_images(policy: ImageRanker, ctx: SelectionContext, candidates: torch.Tensor, n: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n`` best-scored ``candidates`` (ties: the lower image index first) and their scores."""
    scores = policy.image_scores(ctx, candidates).double()  # [M]
    order = torch.sort(scores, descending=True, stable=True).indices[:n]
    return candidates[order], scores[order]


def run_original(cfg: ALConfig, new_model: Callable[[int], Segmenter], pool: Pool, store: RunStore,
                 device: torch.device, run_config: dict, align: int = 32, progress: bool = False,
                 on_round: Callable[[dict], None] | None = None) -> str:
    """Runs (or resumes) one run of the protocol of ``cfg.deal.original``; returns the run id.

    Args:
        new_model: ``new_model(seed)`` is a freshly initialised model of the run's method (its heads
            included) on the experiment's encoder.
        run_config: stored with the run; must match on resume.
        on_round: called after each round's evaluation with ``{"run_id", "round", "images", "test_miou"}``.
    """
    proto = cfg.deal.original
    run_id = cfg.run_id
    if store.claim_run(run_id, cfg.label, cfg.seed, run_config) == "done":
        return run_id
    state = pool.oracle.new_state(pool.grid)
    resumed = store.load_checkpoint(run_id)
    if resumed is not None:
        state.load_state_dict(resumed[1]["state"])
        log.info("resuming %s after step %d (%d images labelled)", run_id, resumed[0], len(labelled_images(state)))
    try:
        policy = build_policy(cfg.strategy, cfg)
        if resumed is None:
            rng, _ = step_generators(step_seeds(cfg.seed, START_STEP))
            start = draw_images(state, proto.start_images, rng)
            _label(store, run_id, state, START_STEP, start, torch.full((len(start),), float("nan")),
                   step_seeds(cfg.seed, START_STEP), 0.0)
        while True:
            r = state.last_step - START_STEP
            n = len(labelled_images(state))
            evaluated = store.has_evaluation(run_id, n, "test")
            model = None
            if not evaluated or r < proto.rounds:
                model = _train_round(cfg, new_model, pool, state, store, device, align, progress, record=not evaluated)
            if on_round is not None:
                test = [e for e in store.evaluations(run_id) if e["budget"] == n and e["split"] == "test"]
                on_round({"run_id": run_id, "round": r, "images": n, "test_miou": test[0]["miou"]})
            if r >= proto.rounds:
                break
            step = state.last_step + 1
            seeds = step_seeds(cfg.seed, step)
            rng, generator = step_generators(seeds)
            t = time.perf_counter()
            candidates = candidate_images(state, cfg.deal.sub_ratio, proto.images_per_round, rng)
            ctx = SelectionContext(model, pool.features, state, device, rng, generator,
                                   proto.images_per_round * state.grid.regions_per_image, cfg.candidates_per_pool,
                                   cfg.selection, cfg.mc_passes, cfg.mc_dropout, revealed=pool.oracle,
                                   content=pool.oracle.content)
            images, scores = select_images(policy, ctx, candidates, proto.images_per_round)
            _label(store, run_id, state, step, images, scores, seeds, time.perf_counter() - t)
        store.finish_run(run_id)
    except BaseException:
        store.release_run(run_id)
        raise
    return run_id


def _label(store: RunStore, run_id: str, state: LabelledState, step: int, images: torch.Tensor,
           scores: torch.Tensor, seeds: dict, seconds: float) -> None:
    """Labels ``images`` whole at ``step`` and stores the step (each region with its image's score; NaN
    for the random start set) with the state to resume from.

    The step record counts regions (``labelled``: regions labelled so far; ``selected``: global region
    ids, every selectable region of each image), as in every other protocol, while this protocol's
    evaluations count whole images (their budget and ``labelled``): the store's schema is shared."""
    gids = whole_image_regions(state, images)
    per_region = torch.repeat_interleave(scores.double(), state.selectable[images].sum(1))
    state.label(gids, step)
    store.record_step(run_id, step, state.num_labelled, gids.tolist(), per_region.tolist(), seeds, seconds, 0.0,
                      {"state": state.state_dict()})


def _train_round(cfg: ALConfig, new_model: Callable[[int], Segmenter], pool: Pool, state: LabelledState,
                 store: RunStore, device: torch.device, align: int, progress: bool, record: bool) -> Segmenter:
    """Trains a fresh model on every labelled image, records its val and test evaluation (``record``),
    and returns it."""
    n = len(labelled_images(state))
    t = time.perf_counter()
    model = new_model(init_seed(cfg.seed))  # reseeds the global stream: before the round's seeds, not after
    _, generator = step_generators(step_seeds(cfg.seed, TRAIN_SEEDS + n))  # also the round's dropout draws
    log.info("%s: training from scratch on %d images (%d epochs)", cfg.run_id, n, cfg.deal.original.epochs_per_round)
    out = final_train_and_evaluate(model, pool, state, cfg.deal.original.train_config(), device, generator, align,
                                   progress=progress, desc=f"{cfg.run_id}: {n} images")
    if record:
        hist = pool.oracle.class_histogram(state, pool.num_classes).tolist()
        extra = {**out["val_extra"], "best_epoch": out["best_epoch"]}
        for split in ("val", "test"):
            store.record_evaluation(cfg.run_id, n, split, n, out[split], hist, out["epochs"], time.perf_counter() - t,
                                    extra if split == "val" else None, out["history"])
        log.info("%s: %d images, test mIoU %.4f", cfg.run_id, n, out["test"]["miou"])
    return out["model"]
