"""What a round's annotators receive: crop (or full-image) PNGs, Label Studio tasks with the labelling
config, a CVAT task zip and a CVAT Segmentation-mask zip, each carrying the model's prediction inside the
query box as a pre-annotation (spec formats.md §3, §4, §7).

Every file is written into a temporary folder that is renamed to ``exports/round_NNN`` when complete.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from activeseg import UNLABELLED
from activeseg.formats.brush_rle import encode_brush
from activeseg.formats.common import VOID_NAME, Box
from activeseg.formats.crops import CropSpec, crop_for_query
from activeseg.formats.cvat import CvatTaskImage, write_cvat_xml, write_segmask_zip
from activeseg.formats.labelstudio import labelling_config, local_files_url, make_task
from activeseg.project.config import ExportConfig
from activeseg.project.workspace import query_box


@dataclass(frozen=True)
class ExportItem:
    """One query to export: its manifest row, its image's pixels and the model's prediction (native size)."""

    row: dict
    image: np.ndarray
    """RGB pixels of the full image. Shape: ``[H, W, 3]`` uint8."""
    prediction: np.ndarray | None
    """Predicted class map of the full image. Shape: ``[H, W]`` uint8; None: no pre-annotation."""


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(ImageOps.exif_transpose(im).convert("RGB"))


def task_file(row: dict, mode: str) -> str:
    """Relative path (under the round's folder) of the image a query's task shows."""
    return f"crops/{row['query_id']}.png" if mode == "crop" else f"images/{row['image_id']}.png"


def crop_of(row: dict, margin: float) -> CropSpec:
    box = query_box(row)
    return crop_for_query(box, row["image_width"], row["image_height"], margin)


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def brush_results(prediction: np.ndarray, target: Box, class_names: tuple[str, ...], origin: str = "prediction"
                  ) -> list[dict]:
    """Label Studio brush layers of ``prediction`` inside ``target`` (one per class present), marked with
    ``origin`` ('prediction': a pre-annotation, ids ``pre-<value>``; 'manual': an annotator's strokes)."""
    height, width = prediction.shape
    inside = np.full(prediction.shape, UNLABELLED, dtype=np.uint8)
    inside[target.slices] = prediction[target.slices]
    names = (*class_names, VOID_NAME)
    out = []
    for value in np.unique(inside[target.slices]).tolist():
        if value >= len(names):
            continue
        out.append({
            "id": f"{'pre' if origin == 'prediction' else 'ann'}-{value}", "origin": origin, "from_name": "mask", "to_name": "image", "type": "brushlabels",
            "original_width": width, "original_height": height, "image_rotation": 0,
            "value": {"format": "rle", "rle": encode_brush(inside == value), "brushlabels": [names[value]]},
        })
    return out


def write_round(folder: Path, items: list[ExportItem], cfg: ExportConfig, class_names: tuple[str, ...],
                colors: tuple, project_id: str, rel_root: str) -> dict[str, str]:
    """Writes one round's exports into ``folder`` (renamed into place at the end); returns
    ``query_id -> crop manifest object`` (empty for full-image exports).

    ``rel_root`` is the round folder's path relative to the project folder, the root Label Studio serves
    local files from (``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` = the project folder).
    """
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    crops: dict[str, dict] = {}
    files: dict[str, tuple[np.ndarray, np.ndarray | None, list[Box]]] = {}  # task image -> pixels, prediction, boxes
    tasks = []
    for it in items:
        row, name = it.row, task_file(it.row, cfg.mode)
        box = query_box(row)
        if cfg.mode == "crop":
            spec = crop_of(row, cfg.crop_margin)
            pixels, target = it.image[spec.box.slices], spec.target_in_crop
            pred = None if it.prediction is None else it.prediction[spec.box.slices]
            crops[row["query_id"]] = spec.to_manifest(f"{rel_root}/{name}")
        else:
            spec, pixels, target, pred = None, it.image, box, it.prediction
        entry = files.setdefault(name, (pixels, None if pred is None else np.full(pred.shape, UNLABELLED, np.uint8), []))
        entry[2].append(target)
        if pred is not None:
            entry[1][target.slices] = pred[target.slices]
        task = make_task(image_url=local_files_url(f"{rel_root}/{name}"), query_id=row["query_id"], box=box,
                         image_size=(row["image_width"], row["image_height"]), al_round=row["round"],
                         strategy=row["strategy"], acq_score=row["score"] if row["score"] is not None else 0.0,
                         model_version=row["model_version"], crop=spec)
        task["data"]["activeseg_project"] = project_id
        if pred is not None and cfg.pre_annotations and cfg.labelling_tool == "brush":  # brush layers need BrushLabels
            task["predictions"][0]["result"].extend(brush_results(pred, target, class_names))
        tasks.append(task)
    for name, (pixels, _, _) in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(_png(pixels))
    if "labelstudio" in cfg.formats:
        (tmp / "labelstudio_tasks.json").write_text(json.dumps(tasks, indent=1))
        (tmp / "labelstudio_config.xml").write_text(labelling_config(class_names, colors, tool=cfg.labelling_tool))
    if "cvat_xml" in cfg.formats:
        images = [CvatTaskImage(Path(n).name, p.shape[1], p.shape[0], tuple(b)) for n, (p, _, b) in files.items()]
        with zipfile.ZipFile(tmp / "cvat_task.zip", "w") as zf:
            zf.writestr("annotations.xml", write_cvat_xml(images, class_names, colors))
            for n in files:
                zf.write(tmp / n, f"images/{Path(n).name}")
    if "cvat_segmask" in cfg.formats and cfg.pre_annotations and all(p is not None for _, p, _ in files.values()):
        maps = {Path(n).stem: p for n, (_, p, _) in files.items()}
        (tmp / "cvat_pre_annotations.zip").write_bytes(write_segmask_zip(maps, class_names, colors))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return crops
