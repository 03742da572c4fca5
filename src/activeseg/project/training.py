"""`activeseg project train` and `activeseg project status`.

Training is the final training of `activeseg run` at a budget: from the start model (or the model
fine-tuned round by round, ``al.final_init``), on every labelled region (and the fully labelled start
images with ``al.final_include_start``), early stopping on the validation folder, with the random streams
of ``step_seeds(seed, 1_000_000 + labelled regions)``. After every epoch its full state is saved to
``models/.partial-<version>.pt``; a killed training resumes from there and ends with the same weights.
The model is registered in the store only when complete.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import time
from pathlib import Path

import numpy as np
import torch

from activeseg import UNLABELLED
from activeseg.al.loop import step_generators, step_seeds, training_set
from activeseg.errors import ConfigError
from activeseg.fileio import atomic_torch_save
from activeseg.project.session import Session
from activeseg.project.store import ProjectStore
from activeseg.project.workspace import Project
from activeseg.train.checkpoint import save_checkpoint
from activeseg.train.metrics import summarize
from activeseg.train.trainer import evaluate, fit

log = logging.getLogger(__name__)


def train_project(session: Session, progress: bool = True) -> dict:
    """Trains on everything labelled (once per labelled state); returns the model version and metrics."""
    project, store, cfg = session.project, session.store, session.project.cfg
    al_model, _, al_version = session.al_model(progress)
    state, _ = project.labelled_state()
    labelled = state.num_labelled
    if labelled == 0 and session.pool.start is None:
        raise ConfigError("nothing is labelled yet; run `activeseg project query`, label the regions and import them")
    last_round = max([r["round"] for r in store.rounds()] or [0])
    key = labels_key(project)
    version = f"trained-{labelled}-{key[:8]}"  # what it learned from: the labelled regions and their labels
    done = {m["version"]: m for m in store.models("trained")}
    if version in done:
        log.info("%s is up to date (nothing labelled since)", version)
        return {"version": version, "up_to_date": True, **(done[version]["metrics"] or {})}
    session.refresh_labels()
    t = time.perf_counter()
    _, generator = step_generators(step_seeds(cfg.seed, 1_000_000 + labelled))
    model = copy.deepcopy(session.start_model if cfg.al.final_init == "start_model" else al_model)
    source, images, keep = training_set(session.pool, state, cfg.al.final_include_start and session.pool.start is not None)
    partial = project.dir / "models" / f".partial-{version}.pt"
    resume = None
    if partial.is_file():
        snapshot = torch.load(partial, map_location="cpu", weights_only=True)
        if snapshot.get("version") == version and snapshot.get("labels_key") == key:
            resume = snapshot["fit"]
            log.info("%s: resuming after epoch %d", version, resume["epoch"])

    def save_partial(snapshot: dict) -> None:
        atomic_torch_save({"version": version, "labels_key": key, "fit": snapshot}, partial)

    result = fit(model, source, session.pool.val, project.num_classes, cfg.al.final_train, session.device, generator,
                 indices=images, keep=keep, align=session.align, progress=progress,
                 desc=f"train ({labelled} regions)", on_epoch=save_partial, resume=resume)
    metrics = {"labelled_regions": labelled, "labels_key": key, "best_epoch": result.best_epoch,
               "epochs": sum(1 for h in result.history if h["epoch"] >= 0), "history": result.history}
    if session.pool.val is not None:
        metrics["val"] = summarize(evaluate(model, session.pool.val, project.num_classes, session.device),
                                   project.classes.names)
    rel = Path("models") / f"{version}.pt"
    save_checkpoint(project.dir / rel, model, cfg.model, project.classes, cfg.data.size,
                    {"metrics": metrics, "project": project.project_id})
    with store.transaction() as cur:
        ProjectStore.register_model(cur, version, "trained", last_round, labelled, rel, metrics,
                                    time.perf_counter() - t)
    partial.unlink(missing_ok=True)
    val = metrics.get("val", {}).get("miou")
    log.info("%s: trained on %d regions (from %s)%s", version, labelled,
             "start model" if cfg.al.final_init == "start_model" else al_version,
             "" if val is None else f", val mIoU {val:.4f}")
    return {"version": version, "up_to_date": False, **metrics}


def labels_key(project: Project) -> str:
    """A digest of what the project knows: every label map and region bitmap."""
    h = hashlib.sha1()
    for row in project.store.db.execute("SELECT image_id, labels, bitmap FROM labels ORDER BY image_id"):
        for part in row:
            h.update(part.encode() if isinstance(part, str) else part)
    return h.hexdigest()


def project_status(project: Project) -> dict:
    """Rounds, queries by status, regions and pixels labelled per class, validation mIoU per trained
    model, and what to do next."""
    queries = list(project.store.queries().values())
    by_status: dict[str, int] = {}
    for q in queries:
        by_status[q["status"]] = by_status.get(q["status"], 0) + 1
    C = project.num_classes
    pixels = np.zeros(C + 1, dtype=np.int64)  # classes, then void
    for image_id in project.store.labelled_images():
        labels, bitmap = project.store.label_maps(image_id)
        known = labels[(bitmap != 0) & (labels != UNLABELLED)]
        pixels += np.bincount(np.minimum(known, C), minlength=C + 1)[: C + 1]
    regions = np.zeros(C + 1, dtype=np.int64)  # labelled queries in which each class appears
    for q in queries:
        if q["status"] == "labelled":
            maps = project.store.label_maps(q["image_id"])
            box = (slice(q["y0"], q["y1"]), slice(q["x0"], q["x1"]))
            present = np.unique(maps[0][box])
            regions[present[present <= C]] += 1
    trained = [{"version": m["version"], "round": m["round"], "labelled_regions": m["labelled"],
                "val_miou": (m["metrics"] or {}).get("val", {}).get("miou")} for m in project.store.models("trained")]
    rounds = project.store.rounds()
    al_val = {m["round"]: (m["metrics"] or {}).get("val", {}).get("miou") for m in project.store.models("al")}
    open_q = by_status.get("pending", 0) + by_status.get("exported", 0)
    if open_q:
        nxt = (f"label the {open_q} open queries (exports/round_{rounds[-1]['round']:03d}), then "
               f"`activeseg project import {project.dir} FILE`")
    elif not rounds:
        nxt = f"`activeseg project query {project.dir} --strategy random --regions 24` (nothing is labelled yet)"
    elif not trained or trained[-1]["round"] < rounds[-1]["round"]:
        nxt = f"`activeseg project train {project.dir}`, or query again"
    else:
        nxt = f"`activeseg project query {project.dir} --strategy bald --regions 24`"
    names = (*project.classes.names, "void")
    return {
        "project": str(project.dir), "project_id": project.project_id,
        "images": {"pool": len(project.pool_images()), "start": len(project.start_images())},
        "rounds": [{**{k: r[k] for k in ("round", "strategy", "regions", "model_version")},
                    "val_miou_after": al_val.get(r["round"])} for r in rounds],
        "queries": by_status,
        "pixels_per_class": dict(zip(names, pixels.tolist())),
        "regions_per_class": dict(zip(names, regions.tolist())),
        "trained": trained,
        "next": nxt,
    }
