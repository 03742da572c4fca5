"""A project's data and models in memory: the pool, the start model and the model each round fine-tunes.

The models follow `activeseg run` step for step: the start model is built and trained as ``prepare``
builds it (same seed, same order of random draws), round r selects with the model fine-tuned after round
r - 1, and a round's fine-tuning epoch runs once its queries are answered, from the random streams saved
when it selected (``rounds.rng``), so the project reaches the weights the run reaches.
"""

from __future__ import annotations

import copy
import io
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from activeseg.al.loop import Pool, fine_tune_step
from activeseg.al.oracle import GroundTruthOracle
from activeseg.data.folder import load_images, load_split
from activeseg.device import random_state, resolve_device, restore_random_state, seed_everything
from activeseg.errors import ConfigError
from activeseg.features import FeatureCache
from activeseg.fileio import atomic_torch_save
from activeseg.methods import head_specs
from activeseg.models.segmenter import Segmenter, build_model
from activeseg.pipeline import coarsest_stride, make_source
from activeseg.project.store import ProjectStore
from activeseg.project.workspace import Project
from activeseg.train.checkpoint import load_checkpoint, save_checkpoint
from activeseg.train.metrics import summarize
from activeseg.train.trainer import evaluate, fit, make_optimizer

log = logging.getLogger(__name__)

OPEN_STATUSES = ("pending", "exported")


def rng_blob(generator: torch.Generator) -> bytes:
    """``random_state(generator)`` as bytes for the store."""
    buf = io.BytesIO()
    torch.save(random_state(generator), buf)
    return buf.getvalue()


def restore_rng(blob: bytes) -> torch.Generator:
    """A generator (and the global torch stream) set back to the state of ``rng_blob``, including the blobs
    of projects written before ``random_state`` named the global stream ``torch_rng`` (it was ``torch``)."""
    states = torch.load(io.BytesIO(blob), weights_only=True)
    if "torch" in states:
        states = {"generator": states["generator"], "torch_rng": states["torch"]}
    generator = torch.Generator()
    restore_random_state(states, generator)
    return generator


@dataclass
class Session:
    """A project's data at the working size, its device and its start model."""

    project: Project
    device: torch.device
    pool: Pool
    pool_rows: list[dict]
    start_model: Segmenter
    align: int

    @property
    def store(self) -> ProjectStore:
        return self.project.store

    def refresh_labels(self) -> None:
        """Re-reads the imported labels of the pool (after an import)."""
        self.pool.oracle = GroundTruthOracle(self.project.working_labels(self.pool_rows))

    # --- the model fine-tuned round by round --------------------------------------------------

    def open_queries(self) -> list[dict]:
        return [q for q in self.store.queries().values() if q["status"] in OPEN_STATUSES]

    def al_model(self, progress: bool = True) -> tuple[Segmenter, torch.optim.Optimizer, str]:
        """The model after the last round whose queries are all answered, fine-tuning (once, then stored)
        every such round not yet applied; returns it with its optimiser and version name."""
        cfg = self.project.cfg
        model = copy.deepcopy(self.start_model)
        optimizer = make_optimizer(model, cfg.al.step_train)
        version = "start"
        done = {m["round"]: m for m in self.store.models("al")}
        open_rounds = {q["round"] for q in self.open_queries()}
        labels_read = False
        for row in self.store.rounds():
            rnd = row["round"]
            if rnd in open_rounds:
                break
            name = f"al-r{rnd:03d}"
            if rnd in done and (self.project.dir / done[rnd]["path"]).is_file():
                ckpt = torch.load(self.project.dir / done[rnd]["path"], map_location="cpu", weights_only=True)
                model.load_state_dict(ckpt["model"])
                optimizer.load_state_dict(ckpt["optimizer"])
                version = name
                continue
            t = time.perf_counter()
            state, by_round = self.project.labelled_state(through_round=rnd)
            new = torch.tensor(by_round.get(rnd, []), dtype=torch.long)
            generator = restore_rng(row["rng"])
            if len(new):
                if not labels_read:  # the labels imported so far, read once for every round to replay
                    self.refresh_labels()
                    labels_read = True
                fine_tune_step(model, optimizer, self.pool, state, new, cfg.al.step_train, self.device, generator,
                               self.align, cfg.al.step_train_on)
            metrics = None  # the round's model on the validation folder (status shows it per round)
            if self.pool.val is not None:
                metrics = {"val": summarize(evaluate(model, self.pool.val, self.project.num_classes, self.device),
                                            self.project.classes.names)}
            rel = Path("models") / f"{name}.pt"
            atomic_torch_save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, self.project.dir / rel)
            with self.store.transaction() as cur:
                ProjectStore.register_model(cur, name, "al", rnd, state.num_labelled, rel, metrics,
                                            time.perf_counter() - t)
            log.info("round %d: fine-tuned on its %d labelled regions (%s)", rnd, len(new), name)
            version = name
        return model.to(self.device), optimizer, version


def load_session(project: Project, progress: bool = True) -> Session:
    """Loads the project's images at the working size, its validation folder, and its start model
    (trained on the fully labelled start images the first time, then read from ``models/start.pt``)."""
    cfg = project.cfg
    device = resolve_device(cfg.device)
    generator = seed_everything(cfg.start_seed)  # before the model is built, as `activeseg run` does
    pool_rows, start_rows = project.pool_images(), project.start_images()

    def images_of(rows: list[dict], name: str):
        return load_images([(r["image_id"], Path(r["path"])) for r in rows], cfg.data.size, project.classes, name,
                           progress)

    pool_split = images_of(pool_rows, "pool")
    start_split = None
    if start_rows:
        start_split = images_of(start_rows, "start")
        start_split.labels = project.working_labels(start_rows)
    val_split = None
    if project.val_dir is not None:
        val_split = load_split(project.val_dir.parent, project.val_dir.name, cfg.data.size, progress=progress,
                               classes=project.classes)
    heads = head_specs(cfg.al.strategy, cfg.al, project.num_classes)
    model = build_model(cfg.model, project.num_classes, heads or None).to(device)
    cache = (FeatureCache(model, device, cfg.data.dataset, cfg.cache_dir, progress=progress)
             if cfg.model.freeze_encoder else None)
    pool_src = make_source(model, pool_split, cache)
    start_src = make_source(model, start_split, cache) if start_split is not None else None
    val_src = make_source(model, val_split, cache) if val_split is not None else None
    state_rows = project.state_images()
    state_src = None
    if state_rows:
        state_src = make_source(model, images_of(state_rows, "state"), cache)
    oracle = GroundTruthOracle(project.working_labels(pool_rows))
    pool = Pool(pool_src, oracle, project.grid, val_src, val_src if val_src is not None else pool_src,
                project.num_classes, project.classes.names, state_src, start_src)
    align = coarsest_stride(model)
    start = _start_model(project, model, pool, device, generator, align, progress)
    return Session(project, device, pool, pool_rows, start, align)


def _start_model(project: Project, model: Segmenter, pool: Pool, device: torch.device, generator: torch.Generator,
                 align: int, progress: bool) -> Segmenter:
    cfg, store = project.cfg, project.store
    registered = {m["version"]: m for m in store.models("start")}
    path = project.dir / "models" / "start.pt"
    if "start" in registered and path.is_file():
        loaded, _ = load_checkpoint(path, device)
        return loaded
    t = time.perf_counter()
    metrics = None
    if pool.start is not None:
        val = pool.val if cfg.start_early_stopping else None
        if cfg.start_early_stopping and val is None:
            raise ConfigError("start_early_stopping needs a validation folder (project init --val); set "
                              "start_early_stopping: false in the project's config")
        fit(model, pool.start, val, project.num_classes, cfg.start_train, device, generator, align=align,
            progress=progress, desc=f"start model ({len(pool.start)} images)")
        if pool.val is not None:
            metrics = {"val": summarize(evaluate(model, pool.val, project.num_classes, device), project.classes.names)}
    save_checkpoint(path, model, cfg.model, project.classes, cfg.data.size, {"metrics": metrics})
    with store.transaction() as cur:
        ProjectStore.register_model(cur, "start", "start", 0, 0, "models/start.pt", metrics, time.perf_counter() - t)
    return model
