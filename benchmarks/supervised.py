"""Supervised CamVid benchmark of the segmentation core (issue 2).

Measures, at the working resolution with the frozen ImageNet Lite0 encoder:
  * feature-cache build time and size per image;
  * seconds per training epoch reading the cache vs. recomputing the encoder every step;
  * val and test mIoU and per-class IoU of a model trained on all train images with early stopping
    on val (the test split is evaluated once, for reporting);
  * optionally the same with the encoder fine-tuned (--finetune-epochs N > 0).

Writes a JSON file and a markdown report beside it. Run:
    .venv/bin/python benchmarks/supervised.py --out docs/supervised.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from activeseg.data.folder import load_split
from activeseg.data.roots import resolve_dataset_dir
from activeseg.device import resolve_device, seed_everything
from activeseg.features import FeatureCache
from activeseg.models import ModelConfig, build_model
from activeseg.pipeline import describe_device, make_source
from activeseg.train.checkpoint import save_checkpoint
from activeseg.train.metrics import summarize
from activeseg.train.sources import ImageSource
from activeseg.train.trainer import (
    TrainConfig,
    evaluate,
    fit,
    make_batches,
    make_optimizer,
    train_one_epoch,
)


def epoch_seconds(model, source, cfg, device, seed) -> float:
    """Wall time of one training epoch over ``source``."""
    g = torch.Generator().manual_seed(seed)
    opt = make_optimizer(model, cfg)
    t = time.perf_counter()
    train_one_epoch(model, make_batches(source, torch.arange(len(source)), cfg.batch_size, g, cfg.flip), opt, device)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--height", type=int, default=180)
    ap.add_argument("--width", type=int, default=240)
    ap.add_argument("--max-epochs", type=int, default=60)
    ap.add_argument("--patience", type=int, default=12)
    ap.add_argument("--finetune-epochs", type=int, default=0, help="also fine-tune the encoder (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("docs/supervised.json"))
    ap.add_argument("--checkpoints", type=Path, default=Path("runs/benchmark_supervised"))
    args = ap.parse_args()

    device = resolve_device(args.device)
    generator = seed_everything(args.seed)
    size = (args.height, args.width)
    ddir = resolve_dataset_dir("camvid", args.data_root)
    train, val, test = (load_split(ddir, s, size) for s in ("train", "val", "test"))
    native = load_split(ddir, "test", (360, 480))  # labels for scoring at CamVid's native resolution
    names = train.classes.names
    C = train.classes.num_classes
    report: dict = {"device": describe_device(device), "machine": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "size": list(size), "images": {"train": len(train), "val": len(val), "test": len(test)}}

    model_cfg = ModelConfig()
    train_cfg = TrainConfig(max_epochs=args.max_epochs, patience=args.patience)
    report["model_config"], report["train_config"] = asdict(model_cfg), asdict(train_cfg)
    model = build_model(model_cfg, C).to(device)

    # 1. cache build (a fresh disk cache, so every image is encoded: image + mirror)
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(model, device, "camvid", Path(tmp))
        t = time.perf_counter()
        bank = cache.bank(train.images)
        build = time.perf_counter() - t
        disk = sum(p.stat().st_size for p in Path(tmp).rglob("*.pt"))
    report["cache"] = {"build_seconds_train": build, "seconds_per_image": build / len(train),
                       "mb_per_image_in_memory": bank.nbytes_per_image() / 2**20,
                       "mb_per_image_on_disk": disk / len(train) / 2**20}
    print(json.dumps(report["cache"], indent=1))
    train_src = make_source(model, train, cache)
    val_src, test_src = make_source(model, val, cache), make_source(model, test, cache)
    # same inputs, native labels: logits are upsampled bilinearly to 360x480 before the argmax
    test_native_src = replace(test_src, labels=native.labels)

    # 2. epoch time: cached features vs. the encoder recomputed at every step (same model, same data)
    probe = build_model(model_cfg, C).to(device)
    cached_s = epoch_seconds(probe, train_src, train_cfg, device, args.seed)
    raw_s = epoch_seconds(probe, ImageSource(train.images, train.labels), train_cfg, device, args.seed)
    report["epoch_seconds"] = {"cached": cached_s, "recomputed_encoder": raw_s, "ratio": raw_s / cached_s}
    print(json.dumps(report["epoch_seconds"], indent=1))

    # 3. the frozen-encoder model, early stopping on val
    t = time.perf_counter()
    result = fit(model, train_src, val_src, C, train_cfg, device, generator)
    report["frozen"] = {
        "train_seconds": time.perf_counter() - t, "epochs_run": len(result.history), "best_epoch": result.best_epoch,
        "history": result.history,
        "val": summarize(evaluate(model, val_src, C, device), names),
        "test": summarize(evaluate(model, test_src, C, device), names),
        "test_native_360x480": summarize(evaluate(model, test_native_src, C, device), names),
    }
    save_checkpoint(args.checkpoints / "frozen.pt", model, model_cfg, train.classes, size)
    print("frozen: val", report["frozen"]["val"]["miou"], "test", report["frozen"]["test"]["miou"])

    # 4. optional: fine-tune the whole network, starting from the frozen-encoder model
    if args.finetune_epochs > 0:
        tuned = build_model(ModelConfig(freeze_encoder=False), C).to(device)
        tuned.load_state_dict(model.state_dict())
        ft_cfg = TrainConfig(max_epochs=args.finetune_epochs, patience=args.patience, lr=2e-4)
        src = lambda s: ImageSource(s.images, s.labels)  # noqa: E731
        t = time.perf_counter()
        r = fit(tuned, src(train), src(val), C, ft_cfg, device, generator)
        report["finetuned"] = {
            "train_config": asdict(ft_cfg), "train_seconds": time.perf_counter() - t, "epochs_run": len(r.history),
            "best_epoch": r.best_epoch, "history": r.history,
            "val": summarize(evaluate(tuned, src(val), C, device), names),
            "test": summarize(evaluate(tuned, src(test), C, device), names),
            "test_native_360x480": summarize(evaluate(tuned, ImageSource(test.images, native.labels), C, device), names),
        }
        save_checkpoint(args.checkpoints / "finetuned.pt", tuned, ModelConfig(freeze_encoder=False), train.classes, size)
        print("finetuned: val", report["finetuned"]["val"]["miou"], "test", report["finetuned"]["test"]["miou"])

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown(report, names))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def markdown(r: dict, names: tuple[str, ...]) -> str:
    rows = [("frozen encoder (cached)", r["frozen"])]
    if "finetuned" in r:
        rows.append(("encoder fine-tuned", r["finetuned"]))
    lines = [
        f"Device: {r['device']}, torch {r['torch']}, working size {r['size'][0]}x{r['size'][1]}.", "",
        "| model | epochs run (best) | train s | val mIoU | test mIoU | test mIoU at 360x480 | test pixel acc |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, m in rows:
        lines.append(f"| {label} | {m['epochs_run']} ({m['best_epoch']}) | {m['train_seconds']:.0f} | "
                     f"{100 * m['val']['miou']:.1f} | {100 * m['test']['miou']:.1f} | "
                     f"{100 * m['test_native_360x480']['miou']:.1f} | {100 * m['test']['pixel_accuracy']:.1f} |")
    lines += ["", "Per-class IoU (%):", "", "| split | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, m in rows:
        for split in ("val", "test"):
            vals = [m[split]["iou"][n] for n in names]
            lines.append(f"| {label}, {split} | " + " | ".join("-" if v is None else f"{100 * v:.1f}" for v in vals) + " |")
    c, e = r["cache"], r["epoch_seconds"]
    lines += ["", "| feature cache | value |", "| --- | --- |",
              f"| build time, {r['images']['train']} train images (image + mirror) | {c['build_seconds_train']:.1f} s ({1000 * c['seconds_per_image']:.0f} ms/image) |",
              f"| size per image (float16, image + mirror), memory / disk | {c['mb_per_image_in_memory']:.3f} MB / {c['mb_per_image_on_disk']:.3f} MB |",
              f"| seconds per epoch, cached features | {e['cached']:.1f} |",
              f"| seconds per epoch, encoder recomputed every step | {e['recomputed_encoder']:.1f} |",
              f"| ratio | {e['ratio']:.2f}x |", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
