"""A picture of DEAL's difficulty maps: per image, the image, its ground truth, M^d and the error mask."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from activeseg.data.folder import load_split  # noqa: E402
from activeseg.data.roots import resolve_dataset_dir  # noqa: E402
from activeseg.device import resolve_device  # noqa: E402
from activeseg.errors import ConfigError  # noqa: E402
from activeseg.methods.deal.head import error_mask  # noqa: E402
from activeseg.methods.deal.policy import DIFFICULTY  # noqa: E402
from activeseg.train.checkpoint import load_checkpoint  # noqa: E402


def palette_image(labels: np.ndarray, colors: list[list[int]]) -> np.ndarray:
    """Label map ``[H, W]`` -> RGB ``[H, W, 3]`` uint8 in the dataset's colours (black: no class)."""
    table = np.zeros((256, 3), np.uint8)
    table[:len(colors)] = np.asarray(colors, np.uint8)
    return table[labels]


def show_difficulty(checkpoint: Path, out: Path, split: str = "val", images: int = 4, dataset: str | None = None,
                    data_root: Path | None = None, device_name: str = "auto") -> Path:
    """Writes a PNG grid, one row per image (the first ``images`` of ``split``): image | ground truth |
    difficulty map M^d (0 to 1) | error mask (white: wrong, black: right, grey: no class)."""
    if images < 1:
        raise ConfigError(f"--images is {images}; give 1 or more")
    device = resolve_device(device_name)
    model, meta = load_checkpoint(checkpoint, device)
    if DIFFICULTY not in model.heads:
        raise ConfigError(f"{checkpoint}: the model has no difficulty head; pass the start model of a DEAL run "
                          "(start_model-*.pt in the start-model cache, trained by `activeseg run --strategy deal_de`)")
    ddir = resolve_dataset_dir(dataset or meta["extra"].get("dataset", "camvid"), data_root)
    data = load_split(ddir, split, tuple(meta["image_size"]), meta["extra"].get("fit", "stretch"), progress=False)
    n = min(images, len(data))
    model.eval()
    with torch.no_grad():
        outputs = model.outputs(data.images[:n].to(device))
    labels = data.labels[:n]
    difficulty = outputs[DIFFICULTY].cpu().numpy()
    errors = error_mask(outputs["logits"].cpu(), labels).numpy()
    is_class = (labels.long() < data.classes.num_classes).numpy()
    colors = [list(c) for c in data.classes.colors]
    fig, axes = plt.subplots(n, 4, figsize=(12, 2.4 * n), squeeze=False)
    for i in range(n):
        mask = np.where(is_class[i], errors[i], 0.5)
        panels = [(data.images[i].permute(1, 2, 0).numpy(), {}), (palette_image(labels[i].numpy(), colors), {}),
                  (difficulty[i], {"cmap": "magma", "vmin": 0.0, "vmax": 1.0}),
                  (mask, {"cmap": "gray", "vmin": 0.0, "vmax": 1.0})]
        for ax, (picture, style), title in zip(axes[i], panels, ("image", "ground truth", "difficulty", "error")):
            im = ax.imshow(picture, **style)
            ax.set_axis_off()
            if i == 0:
                ax.set_title(title)
            if title == "difficulty":
                fig.colorbar(im, ax=ax, fraction=0.035)
        axes[i][0].text(0, -2, data.stems[i], fontsize=7)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
