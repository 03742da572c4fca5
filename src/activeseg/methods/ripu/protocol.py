"""RIPU's training loop (spec ripu.md sections 2-4, protocol A): one continuous run on a labelled source
domain and a target pool, with acquisition rounds at fixed iterations that label squares (RA) or single
pixels (PA) of every target image, the selector swapped between runs.

Each iteration draws ``batch_source`` source and ``batch_target`` target images and minimises
CE(source) + CE(target, labelled pixels) + the model's auxiliary losses (negative learning on target,
local consistency on source boundary pixels: ``heads``), with a poly learning-rate decay per iteration.
The loop resumes bit-exactly on CPU from its last checkpoint (every ``checkpoint_every`` iterations and
after every round) in the run store.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from tqdm.auto import tqdm

from activeseg.al.oracle import GroundTruthOracle
from activeseg.al.state import PixelLabelledState
from activeseg.device import random_state, restore_random_state
from activeseg.methods.ripu.config import REFERENCES, SELECTORS, RipuConfig
from activeseg.methods.ripu.scores import ripu_score
from activeseg.methods.ripu.select import pixels_per_round, select_pixels, select_squares, squares_per_round
from activeseg.models.segmenter import Segmenter
from activeseg.train.metrics import summarize
from activeseg.train.sources import ConcatSource, FeatureSource, ImageSource
from activeseg.train.trainer import (SOURCE, TARGET, TrainConfig, evaluate, loss_terms, make_optimizer, predict,
                                     to_device)

log = logging.getLogger(__name__)
Source = FeatureSource | ImageSource


def head_specs(cfg: RipuConfig, negative_learning: bool = True) -> dict[str, dict]:
    """The loss-only heads of a RIPU model: ``nl`` (target) and ``cr`` (source); a zero weight drops one."""
    heads = {}
    if negative_learning and cfg.lambda_nl > 0:
        heads["nl"] = {"type": "ripu_nl", "weight": cfg.lambda_nl, "tau": cfg.tau_nl}
    if cfg.lambda_cr > 0:
        heads["cr"] = {"type": "ripu_cr", "weight": cfg.lambda_cr, "boundary": cfg.boundary_def}
    return heads


def units_per_round(cfg: RipuConfig, mode: str, size: tuple[int, int]) -> int:
    """Squares (RA) or pixels (PA) every target image gets per round at working size ``size``."""
    if mode == "RA":
        return squares_per_round(size[0], size[1], cfg.budget_bp, cfg.rounds, cfg.k)
    return pixels_per_round(size[0], size[1], cfg.pa_pixels, tuple(cfg.pa_defined_at), cfg.rounds)


def budget_label(cfg: RipuConfig, variant: str) -> int:
    """The run's budget as the store records it: RA's share in basis points, PA's pixels per image, 0 for
    the references without target labels and 10000 (all pixels) for the fully labelled one."""
    if variant in REFERENCES:
        return 10000 if REFERENCES[variant][2] else 0
    return cfg.pa_pixels if SELECTORS[variant][0] == "PA" else cfg.budget_bp


@dataclass
class DomainData:
    """What a run trains and is scored on.

    Attributes:
        source: the labelled source images.
        target: the target pool, every label unknown (255): only ``oracle`` holds its ground truth, and
            the run replaces the labels by the oracle's partial labels as rounds go.
        oracle: the target pool's ground truth.
        test: the target test images, labels at the scoring size.
        num_classes, class_names: the classes.
    """

    source: Source
    target: Source
    oracle: GroundTruthOracle
    test: Source
    num_classes: int
    class_names: tuple[str, ...]

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.oracle.labels.shape[-2:])  # type: ignore[return-value]


@torch.no_grad()
def score_maps(model: Segmenter, target: Source, cfg: RipuConfig, selector: str, num_classes: int,
               device: torch.device, generator: torch.Generator, batch_size: int = 16) -> dict[str, torch.Tensor]:
    """The selector's maps over every target image at working size (``score``, and for RIPU scores
    ``impurity`` and ``uncertainty``). Shape: each ``[N, H, W]`` float, on the CPU."""
    mode, kind = SELECTORS[selector]
    if kind == "random":
        n, (h, w) = len(target), tuple(target.labels.shape[-2:])
        return {"score": torch.rand((n, h, w), generator=generator)}
    maps: dict[str, list[torch.Tensor]] = {"score": [], "impurity": [], "uncertainty": []}
    for logits, _ in predict(model, target, device, batch_size):
        out = ripu_score(logits, mode, k=cfg.k, pa_window_k=cfg.pa_window_k, norm_classes=cfg.norm_classes,
                         use_impurity=kind != "uncertainty", use_uncertainty=kind != "impurity")
        for key in maps:
            maps[key].append(out[key].float().cpu())
    return {key: torch.cat(v) for key, v in maps.items()}


def earlier_windows(state: PixelLabelledState, radius: int) -> torch.Tensor:
    """The blocking windows (Chebyshev radius ``radius``) around every annotation unit picked so far.
    Shape: ``[N, H, W]`` bool."""
    out = torch.zeros((state.labelled_round.shape[0], *state.size), dtype=torch.bool)
    for _, image, y, x in state.units:
        out[image, max(y - radius, 0):y + radius + 1, max(x - radius, 0):x + radius + 1] = True
    return out


def acquire(maps: dict[str, torch.Tensor], state: PixelLabelledState, cfg: RipuConfig, selector: str,
            rnd: int) -> dict:
    """One round: every target image gets the same number of squares (RA) or pixels (PA), picked
    greedily on its score map with blocking, never on a pixel labelled before. Updates ``state``.

    Returns:
        ``{"pixels": added, "units": picked, "centres": flat ids image*H*W + y*W + x, "scores": score at each}``.
    """
    mode = SELECTORS[selector][0]
    size = state.size
    count = units_per_round(cfg, mode, size)
    known = state.known()
    radius = 2 * cfg.k if mode == "RA" else cfg.pa_window_k
    blocked = earlier_windows(state, radius) if cfg.carry_blocking else None
    added, centres, scores = 0, [], []
    for image in range(known.shape[0]):
        score = maps["score"][image]
        held = None if blocked is None else blocked[image]
        if mode == "RA":
            mask, picked = select_squares(score, known[image], count, cfg.k, held)
        else:
            mask, picked = select_pixels(score, known[image], count, cfg.pa_window_k, held)
        added += state.label(image, mask, rnd, picked)
        for y, x in picked.tolist():
            centres.append(image * size[0] * size[1] + y * size[1] + x)
            scores.append(float(score[y, x]))
    return {"pixels": added, "units": len(centres), "centres": centres, "scores": scores}


def _draw(size: int, count: int, generator: torch.Generator, flip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` indices into ``size`` images drawn uniformly (with replacement across iterations), and
    which of them to mirror."""
    index = torch.randint(size, (count,), generator=generator)
    flipped = (torch.rand(count, generator=generator) < 0.5) if flip else torch.zeros(count, dtype=torch.bool)
    return index, flipped


@dataclass
class RunResult:
    """What a run did: the final model's test metrics and its record."""

    test: dict
    labelled_pixels: int
    units: int
    images_touched: int
    curve: list[dict]
    rounds: list[dict]
    seconds_train: float
    iterations: int
    state: PixelLabelledState


def run_domain_adaptation(model: Segmenter, data: DomainData, cfg: RipuConfig, variant: str, seed: int,
                          device: torch.device, checkpoint: dict | None = None,
                          save: Callable[[dict, dict | None], None] | None = None,
                          progress: bool = True) -> RunResult:
    """Trains ``model`` for ``cfg.iterations`` iterations as ``variant`` (a selector of ``SELECTORS`` or
    a reference of ``REFERENCES``) says, then scores the target test set.

    Args:
        model: the network with the run's heads (``head_specs``), on ``device``.
        checkpoint: a state ``save`` wrote, to resume from; None: a fresh run.
        save: ``save(checkpoint, round_record)`` persists a resume point (``round_record`` after a round,
            None for a periodic checkpoint).
    """
    use_target, _, fully_labelled = REFERENCES.get(variant, (True, True, False))
    generator = torch.Generator().manual_seed(seed)
    state = PixelLabelledState(len(data.target), data.size)
    optimizer = make_optimizer(model, TrainConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer,
                                                  momentum=cfg.momentum))
    start, curve, rounds, seconds = 0, [], [], 0.0
    window: dict[str, list[float]] = {}  # loss terms of the iterations since the last curve point
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        restore_random_state(checkpoint, generator)
        state.load_state_dict(checkpoint["state"])
        start, curve, rounds, seconds = (checkpoint["iteration"], checkpoint["curve"], checkpoint["rounds"],
                                         checkpoint["seconds_train"])
        window = checkpoint["window"]
    elif fully_labelled:
        state.label_all()
    target = replace(data.target, labels=data.oracle.partial_labels(state))
    queries = dict(enumerate(cfg.query_iterations(), start=1)) if variant in SELECTORS else {}
    query_at = {it: rnd for rnd, it in queries.items()}
    span = cfg.poly_span * cfg.iterations
    domains = torch.tensor([SOURCE] * cfg.batch_source + [TARGET] * (cfg.batch_target if use_target else 0),
                           device=device)

    def snapshot(iteration: int) -> dict:
        return {"iteration": iteration, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                **random_state(generator), "state": state.state_dict(),
                "curve": curve, "rounds": rounds, "seconds_train": seconds, "window": window}

    bar = tqdm(range(start, cfg.iterations), desc=f"{variant}-s{seed}", disable=not progress,
               initial=start, total=cfg.iterations)
    tick = time.perf_counter()
    for it in bar:
        if it in query_at and query_at[it] > len(rounds):
            seconds += time.perf_counter() - tick
            t0 = time.perf_counter()
            maps = score_maps(model, target, cfg, variant, data.num_classes, device, generator)
            record = acquire(maps, state, cfg, variant, query_at[it])
            target = replace(target, labels=data.oracle.partial_labels(state))
            record.update(round=query_at[it], iteration=it, seconds=time.perf_counter() - t0,
                          labelled_pixels=state.num_pixels, images_touched=state.images_touched())
            rounds.append({k: v for k, v in record.items() if k not in ("centres", "scores")})
            log.info("%s-s%d round %d at iteration %d: %d units, %d pixels (%d in all), %.1f s", variant, seed,
                     record["round"], it, record["units"], record["pixels"], state.num_pixels, record["seconds"])
            if save is not None:
                save(snapshot(it), record)
            tick = time.perf_counter()
        model.train()
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * (1 - it / span) ** 0.9
        index, flipped = _draw(len(data.source), cfg.batch_source, generator, cfg.flip)
        if use_target:  # the source images, then the target images, of one batch
            t_index, t_flipped = _draw(len(target), cfg.batch_target, generator, cfg.flip)
            inputs, labels = ConcatSource(data.source, target).inputs(
                torch.cat([index, t_index + len(data.source)]), torch.cat([flipped, t_flipped]), None)
        else:
            inputs, labels = data.source.inputs(index, flipped, None)
        terms = loss_terms(model, to_device(inputs, device), labels.to(device), domains)
        loss = sum(terms.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for name, value in {"loss": loss, **terms}.items():
            window.setdefault(name, []).append(float(value.detach()))
        if (it + 1) % cfg.log_every == 0 or it + 1 == cfg.iterations:
            point = {"iteration": it + 1, "lr": optimizer.param_groups[0]["lr"],
                     **{k: sum(v) / len(v) for k, v in window.items()}}
            if not all(math.isfinite(v) for v in point.values()):
                raise FloatingPointError(f"{variant}-s{seed}: a loss is not finite at iteration {it + 1}: {point}")
            curve.append(point)
            window = {}
            bar.set_postfix(loss=f"{point['loss']:.3f}")
        if save is not None and (it + 1) % cfg.checkpoint_every == 0 and it + 1 < cfg.iterations:
            seconds += time.perf_counter() - tick
            tick = time.perf_counter()
            save(snapshot(it + 1), None)
    seconds += time.perf_counter() - tick
    if save is not None and start < cfg.iterations:
        save(snapshot(cfg.iterations), None)  # the final model: what ``show`` draws, and a resumed scoring
    test = summarize(evaluate(model, data.test, data.num_classes, device), data.class_names)
    return RunResult(test, state.num_pixels, state.num_units, state.images_touched(), curve, rounds, seconds,
                     cfg.iterations, state)
