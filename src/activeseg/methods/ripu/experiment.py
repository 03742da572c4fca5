"""The domain-shift experiment of protocol A: load the source, target pool and target test images of the
setting, then run every selector and reference for every seed into one run store (finished runs
skipped, interrupted ones resumed from their last checkpoint)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from activeseg import UNLABELLED
from activeseg.al.oracle import GroundTruthOracle
from activeseg.config import to_dict
from activeseg.data.domains import DomainSplit, camvid_day_dusk_from_dir, folder_domains
from activeseg.data.folder import SegmentationSplit, load_split
from activeseg.data.roots import resolve_dataset_dir
from activeseg.device import resolve_device, seed_everything
from activeseg.features import FeatureCache
from activeseg.methods.ripu.config import REFERENCES, SELECTORS, DomainShiftConfig
from activeseg.methods.ripu.protocol import DomainData, budget_label, head_specs, run_domain_adaptation
from activeseg.models.segmenter import Segmenter, build_model
from activeseg.pipeline import make_source
from activeseg.store import RunBusyError, RunStore

log = logging.getLogger(__name__)

#: ``budget_unit`` of the stored run configs: budgets are pixel shares (see ``protocol.budget_label``).
BUDGET_UNIT = "ripu_pixels"


def _concat(parts: list[SegmentationSplit]) -> SegmentationSplit:
    """One split of the images of several (the source domain may span splits)."""
    content = None
    if any(p.content is not None for p in parts):  # letterboxed images (fit: pad) somewhere
        content = torch.cat([p.content if p.content is not None else torch.ones_like(p.labels, dtype=torch.bool)
                             for p in parts])
    return SegmentationSplit("+".join(p.name for p in parts), [s for p in parts for s in p.stems],
                             torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]),
                             parts[0].classes, content)


@dataclass
class DomainExperiment:
    """A prepared domain-shift experiment: the data of every run and the frozen encoder they share."""

    cfg: DomainShiftConfig
    device: torch.device
    data: DomainData
    split: DomainSplit
    encoder_state: dict

    def model(self, variant: str, seed: int) -> Segmenter:
        """A fresh network for ``variant`` (decoder drawn from ``seed``) with the experiment's encoder."""
        seed_everything(seed)
        negative_learning = REFERENCES.get(variant, (True, True, False))[1]
        model = build_model(replace(self.cfg.model, pretrained=False), self.data.num_classes,
                            head_specs(self.cfg.ripu, negative_learning))
        model.encoder.load_state_dict(self.encoder_state)
        return model.to(self.device)


def roles(cfg: DomainShiftConfig, dataset_dir: Path) -> DomainSplit:
    """The images of each role of the config's setting."""
    if cfg.setting == "folders":
        return folder_domains(dataset_dir, cfg.domain.source, cfg.domain.target_pool, cfg.domain.target_test)
    return camvid_day_dusk_from_dir(dataset_dir)


def prepare_domain(cfg: DomainShiftConfig, progress: bool = True) -> DomainExperiment:
    """Loads the setting's images at the working size (target test labels at ``test_size``) and builds
    the feature cache of the frozen encoder."""
    device = resolve_device(cfg.device)
    ddir = resolve_dataset_dir(cfg.data.dataset, cfg.data.data_root)
    split = roles(cfg, ddir)
    size, fit = cfg.data.size, cfg.data.fit
    source = _concat([load_split(ddir, name, size, fit, stems=list(split.source_stems(name)), progress=progress)
                      for name in dict.fromkeys(s for s, _ in split.source)])
    pool = load_split(ddir, split.pool_split, size, fit, stems=list(split.target_pool), progress=progress)
    test = load_split(ddir, split.test_split, size, fit, stems=list(split.target_test), progress=progress)
    seed_everything(0)
    model = build_model(cfg.model, source.classes.num_classes).to(device)
    cache = FeatureCache(model, device, ddir.name, cfg.cache_dir, progress=progress) if cfg.model.freeze_encoder else None
    test_src = make_source(model, test, cache)
    if cfg.test_size is not None and tuple(cfg.test_size) != tuple(size):
        labels = load_split(ddir, split.test_split, tuple(cfg.test_size), fit, stems=list(split.target_test),
                            progress=progress).labels
        test_src = replace(test_src, labels=labels)
    unlabelled = replace(make_source(model, pool, cache), labels=torch.full_like(pool.labels, UNLABELLED))
    data = DomainData(make_source(model, source, cache), unlabelled,
                      GroundTruthOracle(pool.labels, pool.content), test_src, source.classes.num_classes,
                      tuple(source.classes.names))
    log.info("domain split %s: source %d, target pool %d, target test %d images", cfg.setting,
             len(data.source), len(data.target), len(test_src))
    return DomainExperiment(cfg, device, data, split, model.encoder.state_dict())


def run_config(cfg: DomainShiftConfig, variant: str, split: DomainSplit) -> dict:
    """What a run's record stores (and a resumed run must match): every option it reads."""
    return {"data": to_dict(cfg.data), "model": to_dict(cfg.model), "ripu": to_dict(cfg.ripu),
            "setting": cfg.setting, **({"domain": to_dict(cfg.domain)} if cfg.setting == "folders" else {}),
            "test_size": cfg.test_size, "variant": variant,
            "kind": "selector" if variant in SELECTORS else "reference", "budget_unit": BUDGET_UNIT,
            "images": split.summary()}


def run_variant(exp: DomainExperiment, variant: str, seed: int, progress: bool = True) -> dict | None:
    """One (variant, seed) run into the store; resumes an interrupted one; returns its test evaluation
    (None when another process holds the run)."""
    store = RunStore(exp.cfg.store)
    run_id = f"{variant}-s{seed}"
    try:
        status = store.claim_run(run_id, variant, seed, run_config(exp.cfg, variant, exp.split))
        if status == "done":
            return next(e for e in store.evaluations(run_id) if e["split"] == "test")
        saved = store.load_checkpoint(run_id)
        if saved is not None:
            log.info("%s: resuming at iteration %d", run_id, saved[1]["iteration"])

        def save(checkpoint: dict, record: dict | None) -> None:
            if record is None:
                store.save_checkpoint(run_id, len(checkpoint["rounds"]), checkpoint)
                return
            store.record_step(run_id, record["round"], record["labelled_pixels"], record["centres"],
                              record["scores"], {"seed": seed}, record["seconds"], checkpoint["seconds_train"],
                              checkpoint)

        t0 = time.perf_counter()
        model = exp.model(variant, seed)
        result = run_domain_adaptation(model, exp.data, exp.cfg.ripu, variant, seed, exp.device,
                                       None if saved is None else saved[1], save, progress)
        hist = exp.data.oracle.class_histogram(result.state, exp.data.num_classes).tolist()
        extra = {"labelled_pixels": result.labelled_pixels, "units": result.units,
                 "unit": "pixel" if SELECTORS.get(variant, ("RA",))[0] == "PA" else "square",
                 "images_touched": result.images_touched,
                 "pixel_share": result.labelled_pixels / (len(exp.data.target) * exp.data.size[0] * exp.data.size[1]),
                 "seconds_per_iteration": result.seconds_train / result.iterations,
                 "seconds_per_round": [r["seconds"] for r in result.rounds], "rounds": result.rounds,
                 "curve": result.curve}
        store.record_evaluation(run_id, budget_label(exp.cfg.ripu, variant), "test", result.labelled_pixels,
                                result.test, hist, None, time.perf_counter() - t0, extra)
        store.finish_run(run_id)
        log.info("%s: dusk test mIoU %.4f with %d labelled target pixels", run_id, result.test["miou"],
                 result.labelled_pixels)
        return next(e for e in store.evaluations(run_id) if e["split"] == "test")
    finally:
        store.release_run(run_id)
        store.close()


def run_domain_benchmark(cfg: DomainShiftConfig, progress: bool = True) -> Path:
    """Every reference and selector for every seed (seeds outermost, so complete seeds come first)."""
    exp = prepare_domain(cfg, progress)
    for seed in cfg.seeds:
        for variant in (*cfg.references, *cfg.selectors):
            try:
                run_variant(exp, variant, seed, progress)
            except RunBusyError as exc:
                log.info("skipping: %s", exc)
    return Path(cfg.store)
