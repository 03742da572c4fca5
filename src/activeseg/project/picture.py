"""A picture of one round for people: per query, the crop the annotator sees with the query box, the
model's pre-annotation inside the box, and the labels imported so far (`activeseg project show`)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from activeseg import UNLABELLED  # noqa: E402
from activeseg.errors import ConfigError  # noqa: E402
from activeseg.formats.brush_rle import decode_brush  # noqa: E402
from activeseg.formats.common import Box  # noqa: E402
from activeseg.project.workspace import Project  # noqa: E402


def _colour(labels: np.ndarray, colors: tuple, under: np.ndarray) -> np.ndarray:
    """Class colours blended over ``under`` where ``labels`` is a class or void, ``under`` elsewhere."""
    palette = np.zeros((256, 3), np.float32)
    palette[: len(colors)] = colors
    palette[len(colors)] = (32, 32, 32)
    out = under.astype(np.float32)
    known = labels != UNLABELLED
    out[known] = 0.35 * out[known] + 0.65 * palette[labels[known]]
    return out.astype(np.uint8)


def show_round(project: Project, rnd: int, out: Path, limit: int = 8) -> Path:
    """Writes the round's picture (at most ``limit`` queries, one row each) as a PNG."""
    folder = project.dir / "exports" / f"round_{rnd:03d}"
    tasks_file = folder / "labelstudio_tasks.json"
    queries = [q for q in project.store.queries().values() if q["round"] == rnd][:limit]
    if not queries:
        raise ConfigError(f"round {rnd} has no queries; see `activeseg project status {project.dir}`")
    tasks = {t["data"]["query_id"]: t for t in json.loads(tasks_file.read_text())} if tasks_file.is_file() else {}
    names, colors = project.classes.names, project.classes.colors
    fig, axes = plt.subplots(len(queries), 3, figsize=(9, 2.6 * len(queries)), squeeze=False)
    for row, q in zip(axes, queries):
        crop = q["crop"] or {"path": f"exports/round_{rnd:03d}/images/{q['image_id']}.png", "offset_x": 0,
                             "offset_y": 0, "target_in_crop": [q["x0"], q["y0"], q["x1"], q["y1"]]}
        pixels = np.array(Image.open(project.dir / crop["path"]).convert("RGB"))
        h, w = pixels.shape[:2]
        target = Box(*crop["target_in_crop"])
        pre = np.full((h, w), UNLABELLED, np.uint8)
        for r in (tasks.get(q["query_id"], {}).get("predictions") or [{}])[0].get("result", []):
            if r.get("type") == "brushlabels":
                pre[decode_brush(r["value"]["rle"], h, w)] = ([*names, "void"]).index(r["value"]["brushlabels"][0])
        imported = np.full((h, w), UNLABELLED, np.uint8)
        maps = project.store.label_maps(q["image_id"])
        if maps is not None:
            ox, oy = crop["offset_x"], crop["offset_y"]
            imported = maps[0][oy:oy + h, ox:ox + w].copy()
        panels = [(pixels, f"{q['query_id']}\n{q['strategy']} score {q['score'] if q['score'] is None else round(q['score'], 3)}"),
                  (_colour(pre, colors, pixels), "pre-annotation (model)"),
                  (_colour(imported, colors, pixels), f"labels ({q['status']})")]
        for ax, (img, title) in zip(row, panels):
            ax.imshow(img)
            ax.add_patch(patches.Rectangle((target.x0 - 0.5, target.y0 - 0.5), target.width, target.height,
                                           fill=False, edgecolor="yellow", linewidth=1.5))
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    handles = [patches.Patch(color=np.array(c) / 255, label=n) for n, c in zip(names, colors)]
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(names)), fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
