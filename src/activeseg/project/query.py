"""`activeseg project query`: score the unlabelled regions, pick a round's queries, export them.

Round r is step r of `activeseg run`: the same seeds (``step_seeds(seed, r)``), the same selection rule
and the model fine-tuned after round r - 1. The round, its manifest rows and the random streams its
fine-tuning will continue from are committed in one transaction after the export folder is complete.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from activeseg.al.loop import step_generators, step_seeds
from activeseg.al.strategies import SelectionContext, encoded_inputs
from activeseg.errors import ConfigError
from activeseg.methods import build_policy, head_specs, lookup
from activeseg.project.config import ExportConfig
from activeseg.project.exports import ExportItem, read_rgb, write_round
from activeseg.project.mirror import sync_mirrors
from activeseg.project.session import Session, rng_blob
from activeseg.project.store import ProjectStore
from activeseg.project.training import labels_key
from activeseg.project.workspace import manifest_row
from activeseg.train.checkpoint import load_checkpoint

log = logging.getLogger(__name__)

#: Strategies that need no trained model: the only ones a project with nothing labelled can start with.
MODEL_FREE = ("random",)

EXPORTED_TO = {"labelstudio": "label_studio", "cvat_xml": "cvat_xml", "cvat_segmask": "cvat_segmask",
               "crops": "crops"}


@torch.no_grad()
def predict_native(session: Session, model, index: int, width: int, height: int) -> np.ndarray:
    """The model's class map of pool image ``index``, its logits upsampled (bilinear) to its native size."""
    model.eval()
    feats, size = encoded_inputs(model, session.pool.features, torch.tensor([index]), session.device)
    logits = F.interpolate(model.decoder(feats, size), size=(height, width), mode="bilinear", align_corners=False)
    return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()


def run_query(session: Session, strategy: str | None = None, regions: int | None = None,
              export: ExportConfig | None = None, target_class: str | None = None, policy: Path | None = None,
              agent: Path | None = None) -> dict:
    """Selects and exports one round; returns a summary (round, queries, export folder). Holds the
    project's lock: two queries (or a query and an import) never interleave."""
    with session.project.lock():
        return _run_query(session, strategy, regions, export, target_class, policy, agent)


def _run_query(session: Session, strategy: str | None, regions: int | None, export: ExportConfig | None,
               target_class: str | None, policy: Path | None, agent: Path | None) -> dict:
    project, store = session.project, session.store
    cfg = project.cfg
    export = export or cfg.export
    open_q = session.open_queries()
    if open_q:
        rounds = sorted({q["round"] for q in open_q})
        raise ConfigError(f"{len(open_q)} queries of round(s) {rounds} are not answered yet; import their labels "
                          f"(`activeseg project import {project.dir} FILE`) before the next query")
    al = cfg.al
    overrides = {"strategy": strategy or al.strategy}
    if regions is not None:
        overrides["regions_per_step"] = regions
    if agent is not None:
        overrides["agent"] = agent
    if target_class is not None or policy is not None:
        overrides["misical"] = dataclasses.replace(al.misical, **{k: v for k, v in
                                                                  (("target_class", target_class), ("policy", policy))
                                                                  if v is not None})
    al = dataclasses.replace(al, **overrides)
    method = lookup(al.strategy)
    if method.needs_state_set and session.pool.state_set is None:
        raise ConfigError(f"strategy {al.strategy!r} observes a state set of images, and this project has none; create "
                          f"the project with --state-images random:10 (images set aside from the pool)")
    heads = head_specs(al.strategy, al, project.num_classes)
    if heads and set(heads) - set(session.start_model.head_specs()):
        raise ConfigError(f"strategy {al.strategy!r} reads auxiliary heads ({', '.join(heads)}) that this project's "
                          f"model lacks; create the project with al.strategy: {al.strategy} in its config")
    model, _, version = session.al_model()
    trained = session.pool.start is not None or version != "start"  # start images, or a round learned from
    if cfg.query_model == "trained":
        model, version = latest_trained(session, model, version)
    if al.strategy not in MODEL_FREE and not trained:
        raise ConfigError(f"the model has learned from nothing yet, so strategy {al.strategy!r} would score regions "
                          f"with an untrained network; start with --strategy random (then import the labels and "
                          f"query again)")
    rnd = (store.rounds()[-1]["round"] if store.rounds() else 0) + 1
    state, _ = project.labelled_state()
    k = min(al.regions_per_step, state.num_selectable - state.num_labelled)
    if k <= 0:
        raise ConfigError("every region of the pool is labelled: nothing left to query")
    t0 = time.perf_counter()
    rng, generator = step_generators(step_seeds(cfg.seed, rnd))
    session.refresh_labels()
    ctx = SelectionContext(model, session.pool.features, state, session.device, rng, generator, k,
                           al.candidates_per_pool, al.selection, al.mc_passes, al.mc_dropout,
                           revealed=session.pool.oracle, state_set=session.pool.state_set, content=None,
                           start_model=session.start_model)
    picked, scores = build_policy(al.strategy, al).select(ctx)
    blob = rng_blob(generator)  # the round's fine-tuning continues these streams, as the run's step does
    seconds = time.perf_counter() - t0
    R = project.grid.regions_per_image
    rows, items, seen = [], [], {}  # seen: pool index -> (pixels, prediction), once per image
    for gid, score in zip(picked.tolist(), scores.tolist()):
        image = session.pool_rows[gid // R]
        box = project.native_box(image, gid % R)
        row = manifest_row(image, box, gid % R, rnd, al.strategy, float(score) if np.isfinite(score) else None,
                           version, "pending")
        rows.append(row)
        if gid // R not in seen:
            seen[gid // R] = (read_rgb(Path(image["path"])),
                              predict_native(session, model, gid // R, image["width"], image["height"])
                              if export.pre_annotations and trained else None)
        items.append(ExportItem(row, *seen[gid // R]))
    rel = f"exports/round_{rnd:03d}"
    crops = write_round(project.dir / rel, items, export, project.classes.names, project.classes.colors,
                        project.project_id, rel)
    exported = [{**r, "status": "exported", "exported_to": EXPORTED_TO[export.formats[0]],
                 "crop": crops.get(r["query_id"])} for r in rows]
    with store.transaction() as cur:
        cur.execute("INSERT INTO rounds (round, strategy, regions, model_version, rng, seconds, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (rnd, al.strategy, len(rows), version, blob, seconds, time.time()))
        ProjectStore.append_rows(cur, rows + exported)
    sync_mirrors(project)
    log.info("round %d: %d queries by %s (model %s) exported to %s", rnd, len(rows), al.strategy, version,
             project.dir / rel)
    return {"round": rnd, "queries": len(rows), "strategy": al.strategy, "model_version": version,
            "export": str(project.dir / rel), "seconds_select": seconds, "selected": picked.tolist()}


def latest_trained(session: Session, model, version: str):
    """The model `project train` trained on exactly what is labelled now, if there is one; else ``model``."""
    key = labels_key(session.project)
    for m in reversed(session.store.models("trained")):
        if (m["metrics"] or {}).get("labels_key") == key and (session.project.dir / m["path"]).is_file():
            loaded, _ = load_checkpoint(session.project.dir / m["path"], session.device)
            return loaded, m["version"]
    return model, version
