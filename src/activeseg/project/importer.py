"""`activeseg project import`: labels back from a labelling tool, merged by the contract of spec
formats.md §2, all or nothing.

Accepted: a Label Studio JSON export (brush RLE, polygons), CVAT for images 1.1 XML (or its zip), a CVAT
Segmentation-mask 1.1 zip, a COCO JSON with RLE segmentations, and a folder of class-index PNG masks.
Each answer is named by its query (crop tasks: ``<query_id>.png``; Label Studio: ``data.query_id``) or by
its image (full-image tasks: ``<image_id>.png``, answering every open query of the image). The file is
decoded and checked completely before the store is touched; the merge and the new manifest rows are
written in one transaction that reads the label maps it merges into, so a failed, killed or concurrent
import never leaves half an import behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from activeseg import UNLABELLED
from activeseg.errors import DatasetError
from activeseg.formats.coco import decode as coco_decode
from activeseg.formats.common import (
    Box,
    check_label_map,
    label_values,
    merge_layers,
    open_safe_zip,
    read_zip_entry,
    value_of,
)
from activeseg.formats.crops import CropSpec, MergeResult, crop_answer_to_image, merge_answer
from activeseg.formats.cvat import parse_cvat_xml, read_segmask_zip
from activeseg.formats.labelstudio import parse_export
from activeseg.config import to_dict
from activeseg.project.config import ImportConfig
from activeseg.project.mirror import sync_mirrors
from activeseg.project.store import ProjectStore
from activeseg.project.workspace import Project, now_iso, query_box

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """One decoded answer: the name it carries (a query id or an image id) and its class map."""

    key: str
    labels: np.ndarray
    """Class map of the task image (crop- or image-sized; 255 = unpainted). Shape: ``[H, W]`` uint8."""
    conflicts: int = 0


def detect_format(path: Path) -> str:
    """labelstudio, coco, cvat_xml, cvat_segmask or png_folder, from the file's name and content."""
    if path.is_dir():
        return "png_folder"
    if not path.is_file():
        raise DatasetError(path, "file not found", "give the export file (or folder of PNG masks) to import")
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return "cvat_xml"
    if suffix == ".zip":
        with open_safe_zip(path) as zf:
            names = set(zf.namelist())
        if "annotations.xml" in names:
            return "cvat_xml"
        if "labelmap.txt" in names:
            return "cvat_segmask"
        raise DatasetError(path, "a zip with neither annotations.xml nor labelmap.txt",
                           "export from CVAT as 'CVAT for images 1.1' or 'Segmentation mask 1.1'")
    if suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(path, f"cannot read as JSON ({exc})", "export the labels again") from exc
        if isinstance(data, list):
            return "labelstudio"
        if isinstance(data, dict) and {"images", "annotations"} <= set(data):
            return "coco"
        raise DatasetError(path, "JSON that is neither a Label Studio export (a list of tasks) nor COCO "
                           "(images + annotations)", "export as Label Studio 'JSON' or COCO")
    raise DatasetError(path, f"unknown file type {suffix!r}",
                       "import a .json (Label Studio, COCO), .xml/.zip (CVAT) or a folder of PNG masks")


def _stem(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).stem


def read_answers(path: Path, fmt: str, project: Project, policy: ImportConfig,
                 expected_sizes: dict[str, tuple[int, int]] | None = None) -> list[Answer]:
    """Decodes every answer of an export; ``expected_sizes`` (query id -> task image size) checks and
    completes Label Studio results that carry no size."""
    names = project.classes.names
    if fmt == "labelstudio":
        tasks = json.loads(path.read_text())
        for task in tasks:
            data = task.get("data") if isinstance(task, dict) else None
            pid = data.get("activeseg_project") if isinstance(data, dict) else None
            if pid is not None and pid != project.project_id:
                raise DatasetError(path, f"task {task.get('id')} was exported by another project ({pid})",
                                   f"import it into that project; this one is {project.project_id} ({project.dir})")
        answers = []
        for a in parse_export(path, names, expected_sizes=expected_sizes, alpha_threshold=policy.alpha_threshold,
                              overlap_policy=policy.overlap_policy):
            if a.query_id is None:
                raise DatasetError(path, f"task {a.task_id} has no data.query_id",
                                   "import tasks that `activeseg project query` exported")
            if a.labels is not None:
                answers.append(Answer(a.query_id, a.labels, a.conflicts))
        return answers
    if fmt == "cvat_xml":
        if path.suffix.lower() == ".zip":
            with open_safe_zip(path) as zf:
                xml = read_zip_entry(zf, "annotations.xml", path)
        else:
            xml = path.read_bytes()
        parsed = parse_cvat_xml(xml, names, overlap_policy=policy.overlap_policy, source=path)
        return [Answer(_stem(name), a.labels, a.conflicts) for name, a in parsed.items() if a.shapes]
    if fmt == "cvat_segmask":
        return [Answer(_stem(name), lab) for name, lab in read_segmask_zip(path, names).items()]
    if fmt == "coco":
        return _coco_answers(path, names, policy.overlap_policy)
    return _png_answers(path, project)


def _coco_answers(path: Path, class_names: tuple[str, ...], overlap_policy: str) -> list[Answer]:
    """One class map per COCO image. Categories map by name (an unknown name is an error); without a
    categories list, category id = class index + 1 (what activeseg exports)."""
    data = json.loads(path.read_text())
    values = label_values(class_names)
    if data.get("categories"):
        by_id = {}
        for cat in data["categories"]:
            by_id[cat.get("id")] = value_of(cat.get("name"), values, path, f"category {cat.get('id')!r}")
    else:
        by_id = {i + 1: i for i in range(len(class_names))}
    images = {}
    for im in data["images"]:
        try:
            images[im["id"]] = (im["file_name"], int(im["width"]), int(im["height"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(path, f"image entry {im!r:.80} lacks id/file_name/width/height", "export COCO again") from exc
    layers: dict[object, list[tuple[int, np.ndarray]]] = {i: [] for i in images}
    for k, ann in enumerate(data["annotations"]):
        item = f"annotation {ann.get('id', k)}"
        if ann.get("image_id") not in images:
            raise DatasetError(path, f"{item}: image_id {ann.get('image_id')!r} is not among the images",
                               "export COCO again")
        if ann.get("category_id") not in by_id:
            raise DatasetError(path, f"{item}: category_id {ann.get('category_id')!r} is not a declared category",
                               f"use categories named like the classes ({', '.join(class_names)})")
        mask = coco_decode(ann.get("segmentation"), source=path, item=item)
        _, w, h = images[ann["image_id"]]
        if mask.shape != (h, w):
            raise DatasetError(path, f"{item}: RLE size {mask.shape[1]}x{mask.shape[0]}, its image {w}x{h}",
                               "export COCO again")
        layers[ann["image_id"]].append((by_id[ann["category_id"]], mask))
    out = []
    for i, (name, w, h) in images.items():
        labels, conflicts = merge_layers(layers[i], h, w, overlap_policy)
        out.append(Answer(_stem(name), labels, conflicts))
    return out


def _png_answers(folder: Path, project: Project) -> list[Answer]:
    """Class-index PNG masks (palette PNGs: their indices), the classes' ignore index read as void."""
    C = project.num_classes
    void = project.classes.ignore_index
    out = []
    files = sorted(folder.glob("*.png"))
    if not files:
        raise DatasetError(folder, "no .png masks in the folder",
                           "name each mask <query_id>.png (crop) or <image_id>.png (full image)")
    for p in files:
        with Image.open(p) as im:
            if im.mode not in ("L", "P"):
                raise DatasetError(p, f"a {im.mode} image, not a single-channel class-index PNG",
                                   f"save masks as 8-bit class indices (void = {C}, 255 = unlabelled)")
            labels = np.array(im, dtype=np.uint8)
        if void is not None and void not in (C, UNLABELLED):
            labels[labels == void] = C
        check_label_map(labels, C, p, "mask")
        out.append(Answer(p.stem, labels))
    return out


def _targets(answer: Answer, queries: dict[str, dict], by_image: dict[str, list[dict]], path: Path,
             project: Project) -> list[dict]:
    """The queries an answer answers: its own, or every query of its image (full-image answers; the labelled
    ones are then reported as kept)."""
    if answer.key in queries:
        return [queries[answer.key]]
    if answer.key in by_image:
        return by_image[answer.key]
    hint = ("it was exported by another project" if answer.key.startswith("r") and "-" in answer.key
            else "name masks <query_id>.png or <image_id>.png")
    raise DatasetError(path, f"{answer.key!r} is neither a query nor an image of project {project.dir}",
                       f"import answers to this project's queries ({hint}; see queries.jsonl)")


def crop_size(project: Project, q: dict) -> tuple[int, int]:
    """(width, height) of the crop a query exported (manifest rows written before the crop object held its
    size: read from the crop PNG's header)."""
    if "width" in q["crop"]:
        return q["crop"]["width"], q["crop"]["height"]
    path = project.dir / q["crop"]["path"]
    if not path.is_file():
        raise DatasetError(path, f"query {q['query_id']}: its exported crop is missing",
                           "restore the project's exports/ folder (the crop's size checks the answer)")
    with Image.open(path) as im:
        return im.size


def _full_image_answer(project: Project, answer: Answer, q: dict, path: Path) -> np.ndarray:
    """The answer as a class map of the query's whole image (crop answers pasted at the crop's offset)."""
    W, H = q["image_width"], q["image_height"]
    crop = q.get("crop")
    h, w = answer.labels.shape
    if crop is not None and answer.key == q["query_id"]:
        cw, ch = crop_size(project, q)
        if (w, h) != (cw, ch):
            raise DatasetError(path, f"query {q['query_id']}: answer is {w}x{h}, the exported crop {cw}x{ch}",
                               "import the answer made on the crop this query exported")
        box = Box(crop["offset_x"], crop["offset_y"], crop["offset_x"] + w, crop["offset_y"] + h)
        return crop_answer_to_image(answer.labels, CropSpec(box, query_box(q)), W, H,
                                    item=f"{path}: query {q['query_id']}")
    if (w, h) != (W, H):
        raise DatasetError(path, f"query {q['query_id']}: answer is {w}x{h}, its image {W}x{H}",
                           "import answers made on the image (or crop) the query exported")
    return answer.labels


def _expected_sizes(project: Project, queries: dict[str, dict]) -> dict[str, tuple[int, int]]:
    """query id -> (width, height) of the image its task shows (the crop's, or the full image's)."""
    return {qid: (crop_size(project, q) if q.get("crop") else (q["image_width"], q["image_height"]))
            for qid, q in queries.items()}


def import_labels(project: Project, path: Path, fmt: str | None = None, policy: ImportConfig | None = None) -> dict:
    """Imports one export file (or PNG folder) into the project; returns the per-query report.

    An answer that paints nothing inside its box leaves its query open (reported ``unanswered``); a
    query answered twice in one file takes its last answer; already labelled queries are kept unless
    ``overwrite``, so importing a file twice changes nothing.

    Raises:
        DatasetError: anything in the file is invalid; the project is left unchanged.
    """
    path = Path(path)
    fmt = fmt or detect_format(path)
    policy = policy or project.cfg.imports
    answers = read_answers(path, fmt, project, policy, _expected_sizes(project, project.store.queries()))
    digest = _digest(path)
    C = project.num_classes
    store = project.store
    with project.lock():
        with store.transaction() as cur:
            queries = store.queries(cur)
            by_image: dict[str, list[dict]] = {}
            for q in queries.values():
                by_image.setdefault(q["image_id"], []).append(q)
            targets: dict[str, tuple[dict, np.ndarray, Answer]] = {}  # query id -> (query, full-image answer, answer)
            for answer in answers:
                for q in _targets(answer, queries, by_image, path, project):
                    targets[q["query_id"]] = (q, _full_image_answer(project, answer, q, path), answer)  # the last wins
            work: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            reports, rows = [], []
            for qid, (q, full, answer) in targets.items():
                item = f"{path}: query {qid}"
                box = query_box(q)
                if q["status"] == "labelled" and not policy.overwrite:
                    reports.append({"query_id": qid, "status": "already labelled (kept)"})
                    continue
                if not (full[box.slices] != UNLABELLED).any():
                    reports.append({"query_id": qid, "status": "unanswered (nothing painted in the box)"})
                    continue
                image_id = q["image_id"]
                if image_id not in work:
                    maps = store.label_maps(image_id, cur)
                    W, H = q["image_width"], q["image_height"]
                    work[image_id] = maps if maps is not None else (np.full((H, W), UNLABELLED, np.uint8),
                                                                    np.zeros((H, W), np.uint8))
                res: MergeResult = merge_answer(*work[image_id], full, box, C, policy, item=item)
                report = {"query_id": qid, "status": res.status, "coverage": round(res.coverage, 4),
                          "unpainted": res.unpainted, "outside_box": res.outside, "conflicts": answer.conflicts,
                          "notes": res.notes}
                if res.status == q["status"] == "rejected":  # the same verdict again: nothing to record
                    reports.append({**report, "status": "already rejected"})
                    continue
                work[image_id] = (res.labels, res.bitmap)
                rows.append({**q, "status": res.status, "labelled_at": now_iso()})
                reports.append(report)
            if rows:
                for image_id, (labels, bitmap) in work.items():
                    ProjectStore.put_labels(cur, image_id, labels, bitmap)
                ProjectStore.append_rows(cur, rows)
                cur.execute("INSERT INTO imports (file, sha256, format, report, created) VALUES (?, ?, ?, ?, ?)",
                            (str(path.resolve()), digest, fmt, json.dumps({"policy": to_dict(policy), "queries": reports}),
                             time.time()))
        sync_mirrors(project)
    summary = {"file": str(path), "format": fmt, "answers": len(answers),
               "labelled": sum(r["status"] == "labelled" for r in reports),
               "rejected": sum(r["status"] == "rejected" for r in reports),
               "unanswered": sum(r["status"].startswith("unanswered") for r in reports),
               "unchanged": sum(r["status"].startswith("already") for r in reports), "queries": reports}
    log.info("import %s (%s): %d labelled, %d rejected, %d unanswered, %d unchanged", path, fmt, summary["labelled"],
             summary["rejected"], summary["unanswered"], summary["unchanged"])
    return summary


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in ([path] if path.is_file() else sorted(path.glob("*.png"))):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()
