"""Label Studio: percent coordinates, tasks, labelling config and export parsing (spec §3).

Rectangles and polygons are in percent of the task image size (0-100), top-left origin; brush layers
are decoded by :mod:`activeseg.formats.brush_rle`. Import reads the full JSON export (not JSON_MIN).
"""

from __future__ import annotations

import json
import logging
import math
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from activeseg import UNLABELLED
from activeseg.errors import ConfigError, DatasetError
from activeseg.formats.brush_rle import check_alpha_threshold, decode_brush
from activeseg.formats.common import (
    VOID_NAME,
    Box,
    check_overlap_policy,
    label_values,
    merge_layers,
    rasterise_polygon,
    value_of,
)
from activeseg.formats.crops import CropSpec

log = logging.getLogger(__name__)

QUERY_FROM_NAME = "query"
QUERY_LABEL = "LABEL INSIDE THIS BOX"
_DEFAULT_SOURCE = "<Label Studio export>"


# ---- coordinates --------------------------------------------------------------------------------


def box_to_percent(box: Box, width: int, height: int) -> dict[str, float]:
    """A pixel box as Label Studio ``x, y, width, height`` in percent of the image size."""
    return {
        "x": 100 * box.x0 / width,
        "y": 100 * box.y0 / height,
        "width": 100 * (box.x1 - box.x0) / width,
        "height": 100 * (box.y1 - box.y0) / height,
    }


def percent_to_box(x: float, y: float, w: float, h: float, width: int, height: int) -> Box:
    """The pixel box of a percent rectangle; rounds (never floors), so conversions round-trip."""
    return Box(
        round(x * width / 100),
        round(y * height / 100),
        round((x + w) * width / 100),
        round((y + h) * height / 100),
    )


def points_to_percent(points: np.ndarray, width: int, height: int) -> list[list[float]]:
    """Polygon vertices in pixels -> Label Studio ``points`` in percent. Shape: points ``[N, 2]`` (x, y)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return [[100 * x / width, 100 * y / height] for x, y in pts.tolist()]


def percent_to_points(points: Sequence[Sequence[float]], width: int, height: int) -> np.ndarray:
    """Label Studio ``points`` in percent -> continuous pixel coordinates. Shape: returns ``[N, 2]``."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts * np.array([width / 100, height / 100])


# ---- export to Label Studio ---------------------------------------------------------------------


def _hex(color: Sequence[int]) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in color)


def labelling_config(
    class_names: Sequence[str],
    colors: Sequence[Sequence[int]] | None = None,
    *,
    tool: str = "brush",
    void_color: Sequence[int] = (32, 32, 32),
) -> str:
    """The labelling config XML: the image, the read-only query rectangle, one label per class + void.

    Args:
        class_names: class names in class-index order.
        colors: optional ``[r, g, b]`` per class, shown as label colours.
        tool: ``brush`` (``BrushLabels``) or ``polygon`` (``PolygonLabels``).
        void_color: colour of the ``void`` label.
    """
    label_values(class_names)  # validates the names
    tags = {"brush": "BrushLabels", "polygon": "PolygonLabels"}
    if tool not in tags:
        raise ConfigError(f"labelling tool is {tool!r}; choose one of {sorted(tags)}")
    view = ET.Element("View")
    ET.SubElement(view, "Image", name="image", value="$image", zoom="true")
    query = ET.SubElement(view, "RectangleLabels", name=QUERY_FROM_NAME, toName="image")
    ET.SubElement(query, "Label", value=QUERY_LABEL, background="#ffff00")
    labels = ET.SubElement(view, tags[tool], name="mask", toName="image")
    for i, name in enumerate(class_names):
        attrs = {"value": name} | ({"background": _hex(colors[i])} if colors is not None else {})
        ET.SubElement(labels, "Label", attrs)
    ET.SubElement(labels, "Label", value=VOID_NAME, background=_hex(void_color))
    ET.indent(view)
    return ET.tostring(view, encoding="unicode")


def local_files_url(relative_path: str) -> str:
    """The ``/data/local-files/?d=...`` URL of a file under the server's local-files root."""
    return "/data/local-files/?d=" + urllib.parse.quote(relative_path, safe="/")


def prediction_score(acq_score: float) -> float:
    """The acquisition score squashed into (0, 1) (a logistic, order kept): Label Studio checks that a
    prediction's score lies in [0, 1]; the raw score stays in ``data.acq_score``."""
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, float(acq_score)))))


def make_task(
    *,
    image_url: str,
    query_id: str,
    box: Box,
    image_size: tuple[int, int],
    al_round: int,
    strategy: str,
    acq_score: float,
    model_version: str,
    crop: CropSpec | None = None,
) -> dict:
    """One Label Studio task: the query's data and its box as a read-only prediction.

    Args:
        image_url: URL of the task image (the full image, or the crop for crop tasks).
        query_id: the manifest's query id.
        box: the query box in native image pixels (``data.region_px``).
        image_size: native ``(width, height)`` of the full image.
        al_round: AL round that produced the query.
        strategy: the selector's name.
        acq_score: its score (squashed into (0, 1) as the prediction score, so tasks sort by it).
        model_version: the model that scored the query.
        crop: the crop this task shows; the prediction then holds the target box in crop pixels
            and ``original_width/height`` = the crop size, and ``data.crop_px`` the crop box in
            native image pixels.
    """
    width, height = (crop.box.width, crop.box.height) if crop is not None else image_size
    target = crop.target_in_crop if crop is not None else box
    rect = {
        "id": "query",
        "from_name": QUERY_FROM_NAME,
        "to_name": "image",
        "type": "rectanglelabels",
        "readonly": True,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": box_to_percent(target, width, height) | {"rotation": 0, "rectanglelabels": [QUERY_LABEL]},
    }
    return {
        "data": {
            "image": image_url,
            "query_id": query_id,
            "region_px": box._asdict(),
            "al_round": al_round,
            "strategy": strategy,
            "acq_score": acq_score,
        } | ({"crop_px": crop.box._asdict()} if crop is not None else {}),
        "predictions": [{"model_version": model_version, "score": prediction_score(acq_score), "result": [rect]}],
    }


# ---- import from Label Studio -------------------------------------------------------------------


@dataclass(frozen=True)
class TaskAnswer:
    """The decoded answer of one task.

    Attributes:
        task_id: Label Studio's task id.
        query_id: ``data.query_id`` of the task (None if the task has none).
        annotation_id: id of the annotation used (None when the task has no submitted one).
        labels: class map of the task image (255 = unpainted), None when nothing was submitted.
            Shape: ``[H, W]`` uint8, the task image's size (the crop's for crop tasks).
        conflicts: pixels painted with different labels (spec §2 rule 4).
    """

    task_id: object
    query_id: str | None
    annotation_id: object
    labels: np.ndarray | None
    conflicts: int = 0


def _latest_annotation(annotations: list[dict]) -> dict | None:
    done = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled", False)]
    if not done:
        return None
    return max(done, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), str(a.get("id"))))


def _result_size(result: dict, item: str, source: Path | str) -> tuple[int, int] | None:
    w, h = result.get("original_width"), result.get("original_height")
    if w is None and h is None:
        return None
    if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
        raise DatasetError(
            source, f"{item}: original_width/height are {w!r}/{h!r}", "re-export the task from Label Studio"
        )
    return w, h


def _result_layer(
    result: dict, values: dict[str, int], size: tuple[int, int], alpha_threshold: int,
    item: str, source: Path | str,
) -> tuple[int, np.ndarray] | None:
    """The ``(value, mask)`` layer of one result; None for the query rectangle."""
    kind, value, (width, height) = result.get("type"), result.get("value"), size
    if kind == "rectanglelabels" and result.get("from_name") == QUERY_FROM_NAME:
        return None
    if kind not in ("brushlabels", "polygonlabels", "rectanglelabels"):
        raise DatasetError(
            source,
            f"{item}: result type {kind!r} is not supported",
            "label with the labelling config of labelling_config() (brush or polygon labels); "
            "BitmaskLabels import is not implemented",
        )
    if not isinstance(value, dict):
        raise DatasetError(source, f"{item}: 'value' is not an object", "re-export the project as 'JSON'")
    names = value.get(kind)
    if not isinstance(names, list) or len(names) != 1:
        raise DatasetError(source, f"{item}: expected one label in value.{kind}, got {names!r}",
                           "give every stroke or shape exactly one label")
    label = value_of(names[0], values, source, item)
    if kind == "brushlabels":
        if value.get("format") != "rle":
            raise DatasetError(source, f"{item}: brush format {value.get('format')!r}, expected 'rle'",
                               "export the project as Label Studio JSON")
        mask = decode_brush(value.get("rle"), height, width, alpha_threshold=alpha_threshold,
                            source=source, item=item)
        return label, mask
    try:
        if kind == "polygonlabels":
            points = percent_to_points(value["points"], width, height)
            if len(points) < 3 or not np.isfinite(points).all():
                raise ValueError("fewer than 3 finite points")
            return label, rasterise_polygon(points, height, width)
        rotation = float(value.get("rotation", 0))
        b = percent_to_box(*(float(value[k]) for k in ("x", "y", "width", "height")), width, height)
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(source, f"{item}: malformed {kind} value ({exc!r})",
                           "re-export the project as 'JSON'; delete shapes that are not closed") from exc
    if rotation != 0:
        raise DatasetError(source, f"{item}: rectangle rotated by {rotation} degrees",
                           "draw rectangles without rotation, or paint the region with the brush")
    mask = np.zeros((height, width), dtype=bool)
    mask[max(b.y0, 0) : max(b.y1, 0), max(b.x0, 0) : max(b.x1, 0)] = True
    return label, mask


def annotation_level(result: dict) -> int:
    """Who made a result, highest priority first: 0 the annotator (``origin: manual``, or no origin and
    not one of activeseg's ``pre-`` layers), 1 a pre-annotation layer the annotator edited
    (``prediction-changed``: painted into, erased from or relabelled), 2 a pre-annotation accepted untouched
    (``origin: prediction``, or no origin and an id starting with ``pre-``)."""
    origin = result.get("origin")
    if origin is None:
        return 2 if str(result.get("id", "")).startswith("pre-") else 0
    return {"prediction": 2, "prediction-changed": 1}.get(origin, 0)


def parse_task(
    task: dict,
    class_names: Sequence[str],
    *,
    expected_size: tuple[int, int] | None = None,
    alpha_threshold: int = 1,
    overlap_policy: str = "ignore",
    source: Path | str = _DEFAULT_SOURCE,
) -> TaskAnswer:
    """Decodes one task of a full JSON export: its latest non-cancelled annotation into a class map.

    Brush layers and polygons are painted in export order; the query rectangle is ignored.

    Args:
        task: one element of the export list.
        class_names: class names in class-index order (``void`` is added as value ``len(class_names)``).
        expected_size: ``(width, height)`` of the task image (the crop's for crop tasks); every
            result's ``original_width/height`` must equal it.
        alpha_threshold: a brush pixel is painted when its alpha is at least this.
        overlap_policy: ``ignore`` or ``last_wins`` (spec §2 rule 4).
        source: the export file, for error messages.

    Raises:
        DatasetError: not a full JSON export, unknown label names, rotated rectangles, damaged RLE,
            sizes that disagree.
    """
    check_overlap_policy(overlap_policy)
    check_alpha_threshold(alpha_threshold)
    values = label_values(class_names)
    if not isinstance(task, dict) or not isinstance(task.get("annotations"), list):
        what = task.get("id") if isinstance(task, dict) else repr(task)[:40]
        raise DatasetError(source, f"task {what} has no 'annotations' list",
                           "export the project as 'JSON' (the full format, not JSON_MIN)")
    data = task.get("data") if isinstance(task.get("data"), dict) else {}
    task_id, query_id = task.get("id"), data.get("query_id")
    annotation = _latest_annotation(task["annotations"])
    if annotation is None:
        return TaskAnswer(task_id, query_id, None, None)
    where = f"task {task_id} (query {query_id}), annotation {annotation.get('id')}"
    results = annotation.get("result") or []
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise DatasetError(source, f"{where}: 'result' is not a list of objects",
                           "export the project as 'JSON' (the full format)")
    size = expected_size
    for k, result in enumerate(results):
        found = _result_size(result, f"{where}, result {result.get('id', k)!r}", source)
        if found is not None and size is not None and found != tuple(size):
            raise DatasetError(
                source,
                f"{where}: original size {found[0]}x{found[1]} differs from the task image's "
                f"{size[0]}x{size[1]}",
                "import the answers into the project whose images the tasks show",
            )
        size = size or found
    if size is None:
        raise DatasetError(source, f"{where}: no result gives original_width/height",
                           "pass the task image size (expected_size)")
    levels: list[list] = [[], [], []]  # the annotator's strokes, edited pre-annotation layers, untouched ones
    for k, result in enumerate(results):
        layer = _result_layer(result, values, tuple(size), alpha_threshold,
                              f"{where}, result {result.get('id', k)!r}", source)
        if layer is not None:
            levels[annotation_level(result)].append(layer)
    labels, conflicts = merge_layers(levels[0], size[1], size[0], overlap_policy)
    for layers in levels[1:]:  # a pre-annotation only fills what the levels above leave unpainted
        if layers:
            filled, more = merge_layers(layers, size[1], size[0], overlap_policy)
            keep = labels == UNLABELLED
            labels[keep] = filled[keep]
            conflicts += more
    if conflicts:
        log.warning("%s: %d pixels carry different labels (%s)", where, conflicts, overlap_policy)
    return TaskAnswer(task_id, query_id, annotation.get("id"), labels, conflicts)


def parse_export(
    export: list | Path | str,
    class_names: Sequence[str],
    *,
    expected_sizes: Mapping[str, tuple[int, int]] | None = None,
    alpha_threshold: int = 1,
    overlap_policy: str = "ignore",
) -> list[TaskAnswer]:
    """Decodes a full Label Studio JSON export (a loaded list, or the path of the file).

    Args:
        export: the export list, or the path of the JSON file.
        class_names: class names in class-index order.
        expected_sizes: ``query_id -> (width, height)`` of each task image, checked when given.
        alpha_threshold: see :func:`parse_task`.
        overlap_policy: see :func:`parse_task`.
    """
    source: Path | str = _DEFAULT_SOURCE
    if isinstance(export, (str, Path)):
        source = Path(export)
        try:
            export = json.loads(source.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(
                source, f"cannot read as JSON ({exc})", "export the project as 'JSON'"
            ) from exc
    if not isinstance(export, list):
        raise DatasetError(source, "the export is not a list of tasks", "export the project as 'JSON'")
    sizes = expected_sizes or {}
    answers = []
    for task in export:
        data = task.get("data") if isinstance(task, dict) else None
        qid = data.get("query_id") if isinstance(data, dict) else None
        answers.append(parse_task(task, class_names, expected_size=sizes.get(qid),
                                  alpha_threshold=alpha_threshold, overlap_policy=overlap_policy,
                                  source=source))
    return answers
