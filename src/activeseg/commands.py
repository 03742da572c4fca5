"""One function per CLI command. Each validates its input before it writes anything."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from activeseg import paths
from activeseg.config import DataConfig, describe_keys, load_yaml, save_yaml
from activeseg.data.camvid import download_camvid, ralis_splits
from activeseg.data.classes import load_classes
from activeseg.data.folder import load_split, read_pair, scan_split
from activeseg.data.roots import resolve_dataset_dir, user_data_dir
from activeseg.device import resolve_device, seed_everything
from activeseg.errors import ConfigError
from activeseg.experiment import ExperimentConfig, check, prepare, run_one
from activeseg.experiment import run_benchmark as run_grid
from activeseg.features import FeatureCache
from activeseg.methods.misical.experiment import MisicalExperimentConfig
from activeseg.methods.ralis.agent import AgentConfig, train_agent
from activeseg.methods.ripu.config import DomainShiftConfig
from activeseg.models.segmenter import ModelConfig, build_model
from activeseg.project.config import ProjectConfig
from activeseg.pipeline import (
    coarsest_stride,
    default_cache_dir,
    describe_device,
    make_source,
    resolve_test_size,
    scale_note,
    scored_at,
)
from activeseg.report import markdown_table, plot_curves, plot_paired, plot_training
from activeseg.store import RunStore
from activeseg.train.checkpoint import load_checkpoint, save_checkpoint
from activeseg.train.metrics import summarize
from activeseg.train.trainer import TrainConfig, evaluate, fit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainCommand:
    """`activeseg train`: supervised training on a split or on a list of its images."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    split: str = "train"
    """Split to train on."""
    stems: tuple[str, ...] | None = None
    """Train on these images of the split only (default: all)."""
    val_split: str | None = "val"
    """Split for early stopping and the reported validation mIoU (None: no validation)."""
    test_split: str | None = "test"
    """Split scored once at the end and reported (None: none; a missing split is skipped with a note)."""
    test_size: tuple[int, int] | Literal["native"] | None = "native"
    """Label resolution (H, W) test is scored at, as in active learning ('native': the size all test labels
    share; None: the working size); stored in model.pt, and `activeseg evaluate` uses it."""
    out: Path = Path("runs/train")
    """Output folder: model.pt, config.yaml, history.json, metrics.json."""
    seed: int = 0
    """Seed of every random choice."""
    device: str = "auto"
    """'auto' (cuda if available), 'cpu' or 'cuda[:i]'."""
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    """On-disk feature cache (None: memory only)."""
    progress: bool = True
    """Show progress bars."""


def stems_of_ralis_split(dataset_dir: Path, key: str) -> tuple[str, ...]:
    if key not in ("d_s", "d_t", "d_v"):
        raise ConfigError(f"unknown RALIS split {key!r}; use d_s, d_t or d_v")
    if dataset_dir.name != "camvid" and not (dataset_dir / "ralis_splits.json").is_file():
        raise ConfigError(f"--ralis-split: {dataset_dir} has no ralis_splits.json (the RALIS split is CamVid's); "
                          "give --stems-file with the stems to train on instead")
    return tuple(ralis_splits(dataset_dir)[key])


def run_train(cmd: TrainCommand) -> dict:
    """Trains, keeps the best validation checkpoint, and returns the final metrics."""
    paths.output_dir(cmd.out, "out / --out")
    paths.output_dir(cmd.cache_dir, "cache_dir / --cache-dir")
    generator = seed_everything(cmd.seed)
    device = resolve_device(cmd.device)
    dataset_dir = resolve_dataset_dir(cmd.data.dataset, cmd.data.data_root)
    train_split = load_split(dataset_dir, cmd.split, cmd.data.size, cmd.data.fit,
                             list(cmd.stems) if cmd.stems else None, cmd.progress)
    val_split = (load_split(dataset_dir, cmd.val_split, cmd.data.size, cmd.data.fit, progress=cmd.progress)
                 if cmd.val_split else None)
    classes = train_split.classes
    model = build_model(cmd.model, classes.num_classes).to(device)
    log.info("training on %d images of %s, device %s", len(train_split), dataset_dir, describe_device(device))

    cmd.out.mkdir(parents=True, exist_ok=True)  # data validated: now we may write
    save_yaml(cmd, cmd.out / "config.yaml")
    t0 = time.perf_counter()
    cache = (FeatureCache(model, device, dataset_dir.name, cmd.cache_dir, progress=cmd.progress)
             if cmd.model.freeze_encoder else None)
    train_src = make_source(model, train_split, cache)
    val_src = make_source(model, val_split, cache) if val_split is not None else None
    cache_seconds = time.perf_counter() - t0

    ckpt = cmd.out / "model.pt"
    has_test = bool(cmd.test_split) and (dataset_dir / str(cmd.test_split) / "images").is_dir()
    test_size = resolve_test_size(cmd.test_size, dataset_dir, cmd.test_split) if has_test else None
    extra = {"dataset": str(dataset_dir), "split": cmd.split, "fit": cmd.data.fit,
             "test_size": list(test_size) if test_size else None, "test_split": cmd.test_split}

    def on_improve(m, record):
        save_checkpoint(ckpt, m, cmd.model, classes, cmd.data.size, {**extra, "epoch": record["epoch"]})

    t1 = time.perf_counter()
    result = fit(model, train_src, val_src, classes.num_classes, cmd.train, device, generator,
                 align=coarsest_stride(model), progress=cmd.progress, on_improve=on_improve,
                 desc=f"{cmd.split} ({len(train_src)} images)")
    train_seconds = time.perf_counter() - t1
    (cmd.out / "history.json").write_text(json.dumps(result.history, indent=1))
    metrics = {"best_epoch": result.best_epoch, "epochs_run": len(result.history),
               "train_images": len(train_split), "feature_cache_seconds": cache_seconds,
               "train_seconds": train_seconds, "checkpoint": str(ckpt)}
    if val_src is not None:
        metrics["val"] = summarize(evaluate(model, val_src, classes.num_classes, device), classes.names)
    if has_test:
        test = load_split(dataset_dir, cmd.test_split, cmd.data.size, cmd.data.fit, progress=cmd.progress)
        test_src = scored_at(make_source(model, test, cache), dataset_dir, cmd.test_split, test_size,
                             cmd.data.size, cmd.data.fit, cmd.progress)
        metrics["test"] = summarize(evaluate(model, test_src, classes.num_classes, device), classes.names)
        metrics["test"]["scale"] = scale_note(test_size, cmd.data.size)
    elif cmd.test_split:
        log.info("no %s split in %s: test not scored", cmd.test_split, dataset_dir)
    (cmd.out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def run_evaluate(checkpoint: Path, split: str = "test", dataset: str | None = None,
                 data_root: Path | None = None, device_name: str = "auto", progress: bool = True,
                 label_size: tuple[int, int] | None | str = "checkpoint",
                 cache_dir: Path | None = None) -> dict:
    """mIoU, pixel accuracy and per-class IoU of a checkpoint on a split.

    ``label_size``: the label resolution scored at; 'checkpoint' (default) takes the test size stored
    with the model (what `train` and active learning reported), None the working size. A frozen encoder
    reads its features from the feature cache (``cache_dir``, default the user cache), as training did,
    so the numbers match what training reported.
    """
    paths.output_dir(cache_dir, "--cache-dir")
    device = resolve_device(device_name)
    model, meta = load_checkpoint(checkpoint, device)
    dataset_dir = resolve_dataset_dir(dataset or meta["extra"].get("dataset", "camvid"), data_root)
    size = tuple(meta["image_size"])
    fit = meta["extra"].get("fit", "stretch")
    data = load_split(dataset_dir, split, size, fit, progress=progress)
    if list(data.classes.names) != list(meta["classes"]["classes"]):
        raise ConfigError(f"{dataset_dir}: its classes differ from the checkpoint's; evaluate on the dataset "
                          "the model was trained for")
    if label_size == "checkpoint":  # the test split as train / active learning scored it; others at working size
        label_size = meta["extra"].get("test_size") if split == meta["extra"].get("test_split", "test") else None
    cache = (FeatureCache(model, device, dataset_dir.name, cache_dir or default_cache_dir(), progress=progress)
             if model.freeze_encoder else None)
    source = scored_at(make_source(model, data, cache), dataset_dir, split, label_size, size, fit, progress)
    cm = evaluate(model, source, data.classes.num_classes, device)
    return {"split": split, "images": len(data), "scale": scale_note(label_size, size),
            **summarize(cm, data.classes.names)}


def run_data_info(dataset: str = "camvid", data_root: Path | None = None) -> dict:
    """Per-split image counts and per-class pixel frequencies at native resolution (validates every file)."""
    dataset_dir = resolve_dataset_dir(dataset, data_root)
    classes = load_classes(dataset_dir / "classes.json")
    info = {"dataset": str(dataset_dir), "classes": list(classes.names), "splits": {}}
    for split_dir in sorted(p for p in dataset_dir.iterdir() if (p / "images").is_dir()):
        counts = torch.zeros(classes.num_classes + 1, dtype=torch.long)  # last bin: ignored pixels
        pairs = scan_split(split_dir)
        for _, ip, lp in pairs:
            _, lab = read_pair(ip, lp, classes)
            v = torch.from_numpy(lab).reshape(-1).long().clamp(max=classes.num_classes)
            counts += torch.bincount(v, minlength=classes.num_classes + 1)
        total = int(counts.sum())
        info["splits"][split_dir.name] = {
            "images": len(pairs),
            "pixels": total,
            "frequency": {n: int(c) / total for n, c in zip(list(classes.names) + ["(ignored)"], counts.tolist())},
        }
    return info


def run_download(name: str, data_root: Path | None, url: str | None, sha256: str | None, force: bool,
                 progress: bool = True) -> Path:
    """Downloads a public dataset into the data root (default: the user cache)."""
    if name != "camvid":
        raise ConfigError(f"no download for {name!r}; available: camvid")
    root = data_root or user_data_dir()
    paths.output_dir(root, "--data-root")
    kwargs = {"url": url} if url else {}
    return download_camvid(root / "camvid", sha256=sha256, force=force, progress=progress, **kwargs)


def config_reference() -> str:
    """Markdown: every key of the three kinds of YAML config, with type, default and meaning."""
    header = ["| key | type | default | meaning |", "|---|---|---|---|"]
    parts = ["# Every configuration key", "",
             "Generated by `activeseg keys --out docs/config_keys.md`; a test checks it is current. A YAML "
             "config sets any of these keys (nested sections as mappings: `al: {budgets: [480, 960]}`); "
             "unset keys keep their defaults. Numbers may be written `1e-3`.", ""]
    for title, cls, used_by in (
            ("Experiment", ExperimentConfig, "`activeseg run --config`, `activeseg benchmark` (configs/camvid_*.yaml, "
             "configs/folder_dataset.yaml)"),
            ("Agent training (RALIS)", AgentConfig, "`activeseg agent train` (configs/ralis_agent_*.yaml)"),
            ("Domain shift (RIPU, protocol A)", DomainShiftConfig, "`activeseg ripu run` (configs/ripu_*.yaml)"),
            ("Supervised training", TrainCommand, "`activeseg train --config` (configs/train_*.yaml)"),
            ("Labelling project", ProjectConfig, "`activeseg project init --config` (configs/project_*.yaml)")):
        parts += [f"## {title}", "", f"Used by {used_by}.", ""] + header + describe_keys(cls) + [""]
    own = [f.name for f in dataclasses.fields(MisicalExperimentConfig)
           if f.name not in {g.name for g in dataclasses.fields(ExperimentConfig)}]
    parts += ["## MiSiCAL-style per-class experiment (reconstruction)", "",
              "Used by `activeseg misical train|premise|benchmark` (configs/misical_*.yaml): every Experiment key "
              "above (the policy options are `al.misical.*`), plus these.", ""] + header + \
        describe_keys(MisicalExperimentConfig, only=own) + [""]
    return "\n".join(parts)


def run_keys(out: Path | None) -> str:
    """The key reference, written to ``out`` when given; returns what to print."""
    text = config_reference()
    if out is None:
        return text
    paths.output_file(out, "--out")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return f"written: {out}"


# --- active learning --------------------------------------------------------------------------

def load_agent_config(config: Path) -> AgentConfig:
    return load_yaml(config, AgentConfig)


def run_agent_train(cfg: AgentConfig, progress: bool = True) -> dict:
    """Trains (or resumes) a RALIS agent; returns the training summary (also in cfg.out/history.json)."""
    paths.output_dir(cfg.out, "out / --out")
    paths.output_dir(cfg.cache_dir, "cache_dir / --cache-dir")
    return train_agent(cfg, progress)


def load_experiment(config: Path | None) -> ExperimentConfig:
    return load_yaml(config, ExperimentConfig) if config else ExperimentConfig()


def run_al(cfg: ExperimentConfig, resume: bool = False, progress: bool = True) -> list[dict]:
    """One active-learning run (cfg.al.strategy, cfg.al.seed); returns its evaluations."""
    check(cfg, (cfg.al.strategy,))  # before the store is created or any image read
    store = RunStore(cfg.store)
    existing = {r["run_id"]: r["status"] for r in store.runs()}
    store.close()
    status = existing.get(cfg.al.run_id)
    if status == "running" and not resume:
        raise ConfigError(f"run {cfg.al.run_id} was interrupted in {cfg.store}; pass --resume to continue it, "
                          "or --store NEW.sqlite to start afresh")
    if status != "done":
        run_one(prepare(cfg, progress), cfg.al, progress)
    store = RunStore(cfg.store)
    try:
        return store.evaluations(cfg.al.run_id)
    finally:
        store.close()


def run_benchmark(cfg: ExperimentConfig, progress: bool = True) -> tuple[Path, Path, str]:
    """The grid of strategies x seeds (finished runs skipped, interrupted ones resumed), then the plot."""
    check(cfg)
    store = run_grid(cfg, progress)
    return run_plot(store, store.parent)


def load_misical(config: Path) -> MisicalExperimentConfig:
    return load_yaml(config, MisicalExperimentConfig)


def _check_misical(cfg: MisicalExperimentConfig) -> None:
    """The experiment's checks (device, store, dataset, image plan) before anything is loaded or written."""
    check(cfg, strategies=())
    paths.output_dir(cfg.policy_dir, "policy_dir")


def run_misical_train(cfg: MisicalExperimentConfig, target_class: str, seed: int | None = None, out: Path | None = None,
                      progress: bool = True) -> dict:
    """Trains (or keeps, when finished) the class policy of (target_class, seed); returns its summary."""
    from activeseg.methods.misical.experiment import train_policy

    paths.output_dir(out, "--out")
    _check_misical(cfg)
    seed = cfg.seeds[0] if seed is None else seed
    path, meta, trained = train_policy(cfg, target_class, seed, out, progress)
    history = meta["history"]
    return {"policy": path, "trained": trained, "seed": seed, "episodes": len(history),
            "seconds_train": meta.get("seconds_train"), "last_return": history[-1]["return"] if history else None,
            "last_quantity": history[-1]["final_quantity"] if history else None}


def run_misical_premise(cfg: MisicalExperimentConfig, subsets: int | None = None, budget: int | None = None,
                        progress: bool = True) -> tuple[Path, Path, str]:
    """The quantity-accuracy check (resumable); returns the markdown and JSON files and the table."""
    from activeseg.methods.misical.premise import run_premise

    _check_misical(cfg)
    md, js, _ = run_premise(cfg, subsets, budget, progress)
    return md, js, md.read_text()


def run_misical_benchmark(cfg: MisicalExperimentConfig, progress: bool = True) -> tuple[Path, Path, str]:
    """The per-class protocol (resumable), then its report; returns the markdown and JSON files and the text."""
    from activeseg.methods.misical.benchmark import run_benchmark as run_per_class

    _check_misical(cfg)
    return run_per_class(cfg, progress)


def run_deal_show(checkpoint: Path, out: Path, split: str = "val", images: int = 4, dataset: str | None = None,
                  data_root: Path | None = None, device_name: str = "auto") -> Path:
    """DEAL: a PNG of image | ground truth | difficulty map | error mask for the first images of a split."""
    from activeseg.methods.deal.show import show_difficulty

    return show_difficulty(checkpoint, out, split, images, dataset, data_root, device_name)


def run_plot(store: Path, out_dir: Path | None = None, against: tuple[str, ...] = ()) -> tuple[Path, Path, str]:
    """Learning-curve PNG and markdown table of a store (with paired differences to random and to each strategy
    of ``against``); returns their paths and the table."""
    db = RunStore.open_existing(store)
    try:
        labels = {r["strategy"] for r in db.runs()}
        evaluations = db.evaluations()  # every evaluation of every run, for tracing the tables to runs and seeds
    finally:
        db.close()
    unknown = [a for a in against if a not in labels]
    if unknown:
        raise ConfigError(f"--against {unknown[0]}: no run of that strategy in {store}; use one of {sorted(labels)}")
    out_dir = out_dir or Path(store).parent
    paths.output_dir(out_dir, "--out")
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot_curves(Path(store), out_dir / "learning_curves.png")
    plot_paired(Path(store), out_dir / "paired_differences.png")
    plot_training(Path(store), out_dir / "training_curves.png")
    table = markdown_table(Path(store), against=tuple(against))
    md = out_dir / "results.md"
    md.write_text(table)
    (out_dir / "evaluations.json").write_text(json.dumps(evaluations, indent=0))
    return png, md, table


def load_domain_experiment(config: Path) -> DomainShiftConfig:
    return load_yaml(config, DomainShiftConfig)


def run_ripu(cfg: DomainShiftConfig, progress: bool = True) -> tuple[Path, str]:
    """Runs the preset's grid into its store, then writes the report beside the store."""
    from activeseg.methods.ripu.experiment import run_domain_benchmark
    from activeseg.methods.ripu.report import write_report

    paths.store_file(cfg.store)
    return write_report(run_domain_benchmark(cfg, progress))


def run_ripu_report(store: Path, out: Path | None = None) -> tuple[Path, str]:
    from activeseg.methods.ripu.report import write_report

    return write_report(store, out)


def run_ripu_show(store: Path, run: str, out: Path, images: int = 4, device: str = "auto") -> Path:
    from activeseg.methods.ripu.show import show_run

    paths.output_file(out, "--out")
    return show_run(store, run, out, images, device)


def run_data_domain(setting: str, out: Path, dataset: str = "camvid", data_root: Path | None = None,
                    force: bool = False) -> Path:
    """``activeseg data domain``: the roles of ``setting`` as a dataset folder at ``out``."""
    from activeseg.data.domains import camvid_day_dusk_from_dir, write_domain_dataset

    if setting != "camvid_day_dusk":
        raise ConfigError(f"unknown domain setting {setting!r}; use camvid_day_dusk (or, for your own data, put the "
                          "source and target images in one split and list each role's stems in a text file)")
    paths.output_dir(out, "--out")
    ddir = resolve_dataset_dir(dataset, data_root)
    return write_domain_dataset(camvid_day_dusk_from_dir(ddir), ddir, out, force)
