"""A ground-truth annotator that answers through files: it reads the open queries, paints the true labels
of each query box onto the task image and writes them in a labelling tool's export format, which
`activeseg project import` then reads like any person's export. A simulated project thus goes through
the same import code as real labels (``activeseg project simulate`` drives whole rounds).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from activeseg import UNLABELLED
from activeseg.errors import ConfigError
from activeseg.formats.common import Box
from activeseg.formats.cvat import write_segmask_zip
from activeseg.project.exports import brush_results
from activeseg.fileio import atomic_write_bytes
from activeseg.project.session import OPEN_STATUSES
from activeseg.project.workspace import Project, query_box, read_label_png

ANSWER_FORMATS = ("labelstudio", "cvat_segmask", "png_folder")


def _task_answer(project: Project, q: dict, truth: np.ndarray) -> tuple[np.ndarray, Box, str]:
    """The true class map of the query's task image (255 outside the box), the box in task pixels and
    the answer's name (the query id)."""
    box = query_box(q)
    crop = q.get("crop")
    if crop is None:
        out = np.full(truth.shape, UNLABELLED, np.uint8)
        out[box.slices] = truth[box.slices]
        return out, box, q["query_id"]
    with Image.open(project.dir / crop["path"]) as im:  # the crop the annotator sees
        w, h = im.size
    target = Box(*crop["target_in_crop"])
    out = np.full((h, w), UNLABELLED, np.uint8)
    out[target.slices] = truth[box.slices]
    return out, target, q["query_id"]


def write_answers(project: Project, truth_dir: Path, out: Path, fmt: str = "labelstudio") -> int:
    """Answers every open query from the label PNGs in ``truth_dir`` (``<image_id>.png``, native size);
    writes ``out`` (a JSON file, a zip, or a folder of PNGs); returns the number of answers."""
    if fmt not in ANSWER_FORMATS:
        raise ConfigError(f"answer format {fmt!r}; choose one of {', '.join(ANSWER_FORMATS)}")
    queries = [q for q in project.store.queries().values() if q["status"] in OPEN_STATUSES]
    truths: dict[str, np.ndarray] = {}
    answers = []
    for q in queries:
        if q["image_id"] not in truths:
            truths[q["image_id"]] = read_label_png(Path(truth_dir) / f"{q['image_id']}.png",
                                                   (q["image_width"], q["image_height"]), project.classes)
        answers.append((q, *_task_answer(project, q, truths[q["image_id"]])))
    if fmt == "labelstudio":
        tasks = []
        for i, (q, labels, box, _) in enumerate(answers):
            tasks.append({"id": i + 1, "data": {"query_id": q["query_id"], "activeseg_project": project.project_id},
                          "annotations": [{"id": i + 1, "was_cancelled": False, "created_at": "2000-01-01T00:00:00Z",
                                           "result": brush_results(labels, box, project.classes.names, "manual")}]})
        atomic_write_bytes(Path(out), json.dumps(tasks).encode())
    elif fmt == "cvat_segmask":
        maps = {name: labels for _, labels, _, name in answers}
        atomic_write_bytes(Path(out), write_segmask_zip(maps, project.classes.names, project.classes.colors))
    else:
        Path(out).mkdir(parents=True, exist_ok=True)
        for _, labels, _, name in answers:
            buf = io.BytesIO()
            Image.fromarray(labels, mode="L").save(buf, format="PNG")
            atomic_write_bytes(Path(out) / f"{name}.png", buf.getvalue())
    return len(answers)

