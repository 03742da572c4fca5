"""A picture of what RIPU looks at: for a few target pool images, the image with the squares (or pixels)
the run labelled, the region impurity, the prediction uncertainty and their product (the score), from
the run's final model."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from activeseg.config import from_dict  # noqa: E402
from activeseg.errors import ConfigError  # noqa: E402
from activeseg.methods.ripu.config import SELECTORS, DomainShiftConfig  # noqa: E402
from activeseg.methods.ripu.experiment import prepare_domain  # noqa: E402
from activeseg.methods.ripu.scores import ripu_score  # noqa: E402
from activeseg.store import RunStore  # noqa: E402
from activeseg.train.trainer import predict  # noqa: E402


def show_run(store_path: Path, run_id: str, out: Path, images: int = 4, device: str = "auto",
             progress: bool = False) -> Path:
    """Writes the picture of run ``run_id`` of the store at ``store_path`` to ``out`` (PNG).

    Raises:
        ConfigError: the run is unknown, not a selector run, or has no final model yet.
    """
    store = RunStore.open_existing(store_path)
    try:
        configs = store.run_configs()
        if run_id not in configs:
            raise ConfigError(f"run {run_id!r} is not in {store_path}; its runs: {sorted(configs)}")
        config = configs[run_id]
        saved = store.load_checkpoint(run_id)
        steps = store.steps(run_id)
    finally:
        store.close()
    variant = config.get("variant")
    if variant not in SELECTORS:
        raise ConfigError(f"run {run_id!r} is a reference ({variant}); show a selector run, e.g. ripu_ra-s20")
    ripu = config["ripu"]
    if saved is None or saved[1]["iteration"] < ripu["iterations"]:
        raise ConfigError(f"run {run_id!r} has not finished training; finish it with `activeseg ripu run`")
    cfg = from_dict(DomainShiftConfig, {"data": config["data"], "model": config["model"], "ripu": ripu,
                                        "setting": config["setting"], "domain": config.get("domain", {}),
                                        "test_size": None, "store": str(store_path),
                                        "device": device})
    exp = prepare_domain(cfg, progress)
    model = exp.model(variant, 0)
    model.load_state_dict(saved[1]["model"])
    h, w = exp.data.size
    n = min(images, len(exp.data.target))
    index = torch.arange(n)
    target = exp.data.target
    logits = torch.cat([lg.cpu() for lg, _ in predict(model, target, exp.device, indices=index)])
    mode, kind = SELECTORS[variant]
    maps = ripu_score(logits, mode, k=cfg.ripu.k, pa_window_k=cfg.ripu.pa_window_k, norm_classes=cfg.ripu.norm_classes)
    picked = [[] for _ in range(n)]
    for step in steps:
        for c in step["selected"]:
            image, rest = divmod(c, h * w)
            if image < n:
                picked[image].append(divmod(rest, w))
    fig, axes = plt.subplots(n, 4, figsize=(16, 3.1 * n), squeeze=False)
    pool_images = _pool_images(exp)
    for i in range(n):
        axes[i, 0].imshow(pool_images[i].permute(1, 2, 0).numpy())
        if mode == "RA":
            half = cfg.ripu.k
            for y, x in picked[i]:
                axes[i, 0].add_patch(plt.Rectangle((x - half - 0.5, y - half - 0.5), 2 * half + 1, 2 * half + 1,
                                                   fill=False, edgecolor="yellow", lw=0.8))
        elif picked[i]:
            ys, xs = zip(*picked[i])
            axes[i, 0].scatter(xs, ys, s=12, c="yellow", marker="x")
        axes[i, 0].set_title(f"{exp.split.target_pool[i]}: {len(picked[i])} {'squares' if mode == 'RA' else 'pixels'}",
                             fontsize=8)
        for j, key in enumerate(("impurity", "uncertainty", "score"), start=1):
            im = axes[i, j].imshow(maps[key][i].numpy(), cmap="magma", vmin=0, vmax=float(maps[key][i].max()) or 1)
            axes[i, j].set_title("score A = P x U" if key == "score" else key, fontsize=8)
            fig.colorbar(im, ax=axes[i, j], fraction=0.035)
        for ax in axes[i]:
            ax.set_axis_off()
    fig.suptitle(f"{run_id}: final model, maps of RIPU ({mode}, k={cfg.ripu.k if mode == 'RA' else cfg.ripu.pa_window_k})",
                 fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _pool_images(exp) -> torch.Tensor:
    """The target pool's uint8 images (the sources may hold only cached features)."""
    from activeseg.data.folder import load_split
    from activeseg.data.roots import resolve_dataset_dir

    ddir = resolve_dataset_dir(exp.cfg.data.dataset, exp.cfg.data.data_root)
    return load_split(ddir, exp.split.pool_split, exp.cfg.data.size, exp.cfg.data.fit, stems=list(exp.split.target_pool),
                      progress=False).images
