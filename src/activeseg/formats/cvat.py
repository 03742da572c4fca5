"""CVAT: "CVAT for images 1.1" XML and the "Segmentation mask 1.1" zip (spec §4).

XML shapes are in pixels. A ``<mask>`` holds plain run lengths over its ``width x height`` box,
row-major, alternating background / foreground and starting with background (a leading 0 when the
first pixel is foreground); the runs must sum to ``width * height``. The Segmentation-mask zip holds
colour PNGs whose colours ``labelmap.txt`` (``name:R,G,B:parts:actions``) maps to label names.
"""

from __future__ import annotations

import io
import zipfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from activeseg import UNLABELLED
from activeseg.errors import ConfigError, DatasetError
from activeseg.formats.common import (
    VOID_NAME,
    Box,
    alternating_runs,
    check_label_map,
    check_overlap_policy,
    expand_runs,
    label_values,
    merge_layers,
    open_safe_zip,
    rasterise_polygon,
    read_zip_entry,
    value_of,
)

QUERY_LABEL = "query_region"
BACKGROUND = "background"
DEFAULT_VOID_COLOR = (32, 32, 32)
_XML_SOURCE = "<CVAT XML>"
_ZIP_SOURCE = "<CVAT segmentation-mask zip>"


# ---- mask runs ----------------------------------------------------------------------------------


def encode_runs(mask: np.ndarray) -> list[int]:
    """CVAT run lengths of a box mask: row-major, alternating background / foreground, background first.

    Example: ``[[0,1,1,0],[1,1,1,1],[0,0,1,0]]`` -> ``[1, 2, 1, 4, 2, 1, 1]``.

    Shape:
        mask: ``[height, width]`` bool.
    """
    return alternating_runs(np.asarray(mask, dtype=bool).ravel())  # row-major inside the box


def decode_runs(
    runs: Sequence[int], width: int, height: int, *, source: Path | str = _XML_SOURCE, item: str = "mask"
) -> np.ndarray:
    """The box mask of CVAT run lengths.

    Raises:
        DatasetError: a negative run, or runs that do not sum to ``width * height``.

    Shape:
        returns ``[height, width]`` bool.
    """
    counts = np.asarray(runs, dtype=np.int64)
    if (counts < 0).any() or counts.sum() != width * height:
        raise DatasetError(
            source,
            f"{item}: mask runs sum to {int(counts.sum())} (or hold a negative run), but the "
            f"{width}x{height} mask box has {width * height} pixels",
            "re-export the task from CVAT; the mask's rle must cover its width x height box exactly",
        )
    return expand_runs(counts).reshape(height, width)  # row-major inside the box


def mask_to_cvat(mask: np.ndarray) -> tuple[list[int], Box] | None:
    """Runs and box (``left, top, right, bottom`` half-open) of the tight bounding box of a full-image
    mask, as a ``<mask>`` shape needs them; None for an empty mask.

    Shape:
        mask: ``[H, W]`` bool.
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    box = Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return encode_runs(mask[box.slices]), box


# ---- CVAT for images 1.1 XML --------------------------------------------------------------------


@dataclass(frozen=True)
class CvatTaskImage:
    """One image of an export: its file name, size and the query boxes to show on it."""

    name: str
    width: int
    height: int
    boxes: tuple[Box, ...] = ()


def write_cvat_xml(
    images: Sequence[CvatTaskImage], class_names: Sequence[str],
    colors: Sequence[Sequence[int]] | None = None,
) -> str:
    """``annotations.xml`` declaring the class labels, ``void`` and ``query_region``, with each query
    as a ``query_region`` box (``xtl = x0, ytl = y0, xbr = x1, ybr = y1``)."""
    label_values(class_names)
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(task, "size").text = str(len(images))
    labels = ET.SubElement(task, "labels")
    palette = list(colors) if colors is not None else [None] * len(class_names)
    entries = [*zip(class_names, palette), (VOID_NAME, DEFAULT_VOID_COLOR), (QUERY_LABEL, (255, 255, 0))]
    for name, color in entries:
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = name
        if color is not None:
            ET.SubElement(label, "color").text = "#" + "".join(f"{int(c):02x}" for c in color)
        ET.SubElement(label, "type").text = "rectangle" if name == QUERY_LABEL else "any"
        ET.SubElement(label, "attributes")
    for i, img in enumerate(images):
        node = ET.SubElement(root, "image", id=str(i), name=img.name, width=str(img.width),
                             height=str(img.height))
        for b in img.boxes:
            corners = {"xtl": b.x0, "ytl": b.y0, "xbr": b.x1, "ybr": b.y1}
            ET.SubElement(node, "box", label=QUERY_LABEL, source="manual", occluded="0",
                          **{k: f"{v:.2f}" for k, v in corners.items()}, z_order="0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode")


@dataclass(frozen=True)
class CvatImageAnswer:
    """The decoded shapes of one ``<image>``.

    Attributes:
        name: the image's ``name`` attribute (the task image or crop file).
        labels: class map, 255 where no shape paints. Shape: ``[height, width]`` uint8.
        conflicts: pixels painted with different labels (spec §2 rule 4).
        shapes: number of class shapes (query boxes not counted).
    """

    name: str
    labels: np.ndarray
    conflicts: int = 0
    shapes: int = 0


def _float(node: ET.Element, key: str, item: str, source: Path | str) -> float:
    try:
        return float(node.attrib[key])
    except (KeyError, ValueError) as exc:
        raise DatasetError(source, f"{item}: attribute {key!r} missing or not a number",
                           "export the task again as 'CVAT for images 1.1'") from exc


def _shape_mask(node: ET.Element, width: int, height: int, item: str, source: Path | str) -> np.ndarray:
    """The pixels a ``box``, ``polygon`` or ``mask`` element paints (pixel-centre rule)."""
    out = np.zeros((height, width), dtype=bool)
    if node.tag == "box":
        rotation = float(node.attrib.get("rotation", 0) or 0)
        if rotation != 0:
            raise DatasetError(source, f"{item}: box rotated by {rotation} degrees",
                               "draw boxes without rotation, or use a polygon or mask")
        xtl, ytl, xbr, ybr = (_float(node, k, item, source) for k in ("xtl", "ytl", "xbr", "ybr"))
        x0, x1 = (int(np.clip(np.ceil(v - 0.5), 0, width)) for v in (xtl, xbr))
        y0, y1 = (int(np.clip(np.ceil(v - 0.5), 0, height)) for v in (ytl, ybr))
        out[y0:y1, x0:x1] = True
        return out
    if node.tag == "polygon":
        try:
            pts = np.array([[float(c) for c in p.split(",")] for p in node.attrib["points"].split(";")])
            if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
                raise ValueError("needs at least 3 'x,y' points")
        except (KeyError, ValueError) as exc:
            raise DatasetError(source, f"{item}: malformed polygon points ({exc})",
                               "export again as 'CVAT for images 1.1'; delete degenerate polygons") from exc
        return rasterise_polygon(pts, height, width)
    left, top, w, h = (int(_float(node, k, item, source)) for k in ("left", "top", "width", "height"))
    if not Box(left, top, left + w, top + h).inside(width, height):
        raise DatasetError(source, f"{item}: mask box left={left} top={top} {w}x{h} leaves the "
                           f"{width}x{height} image", "re-export the task from CVAT")
    try:
        runs = [int(r) for r in node.attrib["rle"].split(",")]
    except (KeyError, ValueError) as exc:
        raise DatasetError(source, f"{item}: mask rle missing or not comma-separated integers",
                           "re-export the task from CVAT") from exc
    out[top : top + h, left : left + w] = decode_runs(runs, w, h, source=source, item=item)
    return out


def parse_cvat_xml(
    xml: str | bytes,
    class_names: Sequence[str],
    *,
    expected_sizes: Mapping[str, tuple[int, int]] | None = None,
    overlap_policy: str = "ignore",
    source: Path | str = _XML_SOURCE,
) -> dict[str, CvatImageAnswer]:
    """Decodes "CVAT for images 1.1" annotations into one class map per image name.

    Boxes, polygons and masks are painted in document order; ``query_region`` boxes are ignored.

    Args:
        xml: the ``annotations.xml`` text.
        class_names: class names in class-index order (``void`` -> ``len(class_names)``).
        expected_sizes: ``image name -> (width, height)``, checked against ``<image width height>``.
        overlap_policy: ``ignore`` or ``last_wins`` (spec §2 rule 4).
        source: the file, for error messages.

    Raises:
        DatasetError: not CVAT 1.1 XML, unknown labels, rotated boxes, mask runs that do not add up,
            unsupported shapes, sizes that differ.
    """
    check_overlap_policy(overlap_policy)
    values = label_values(class_names)
    remedy = "export the task as 'CVAT for images 1.1'"
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise DatasetError(source, f"not well-formed XML ({exc})", remedy) from exc
    version = root.findtext("version")
    if root.tag != "annotations" or (version or "").strip() != "1.1":
        raise DatasetError(
            source, f"root <{root.tag}> with version {version!r}, expected <annotations> 1.1", remedy
        )
    if root.find("track") is not None:
        raise DatasetError(source, "holds <track> elements (video annotations)", remedy)
    sizes = expected_sizes or {}
    answers: dict[str, CvatImageAnswer] = {}
    for image in root.findall("image"):
        name = image.attrib.get("name", "")
        where = f"image {name!r}"
        width, height = (int(_float(image, k, where, source)) for k in ("width", "height"))
        if name in sizes and tuple(sizes[name]) != (width, height):
            w, h = sizes[name]
            raise DatasetError(source, f"{where} is {width}x{height}, the exported image {w}x{h}",
                               "import the annotations of the task these images were exported to")
        layers = []
        for k, node in enumerate(image):
            item = f"{where}, {node.tag} #{k}"
            if node.tag == "box" and node.attrib.get("label") == QUERY_LABEL:
                continue
            if node.tag not in ("box", "polygon", "mask"):
                raise DatasetError(source, f"{item}: shape type <{node.tag}> is not supported",
                                   "use boxes, polygons or masks (brush), or delete the shape")
            value = value_of(node.attrib.get("label"), values, source, item)
            layers.append((value, _shape_mask(node, width, height, item, source)))
        labels, conflicts = merge_layers(layers, height, width, overlap_policy)
        answers[name] = CvatImageAnswer(name, labels, conflicts, len(layers))
    return answers


def read_cvat_xml_zip(path: Path | str, class_names: Sequence[str], **kwargs) -> dict[str, CvatImageAnswer]:
    """:func:`parse_cvat_xml` of the ``annotations.xml`` inside a CVAT export zip (checked for unsafe
    entry names first)."""
    with open_safe_zip(path) as zf:
        xml = read_zip_entry(zf, "annotations.xml", path)
    return parse_cvat_xml(xml, class_names, source=path, **kwargs)


# ---- Segmentation mask 1.1 zip ------------------------------------------------------------------


def labelmap_text(
    class_names: Sequence[str],
    colors: Sequence[Sequence[int]],
    void_color: Sequence[int] = DEFAULT_VOID_COLOR,
) -> str:
    """``labelmap.txt``: ``background:0,0,0::``, one line per class, then ``void``.

    Raises:
        ConfigError: a colour repeats, a class or void uses black (the background colour), or a class is
            named like the format's reserved background label.
    """
    label_values(class_names)
    if BACKGROUND in class_names:
        raise ConfigError(f"a class is named {BACKGROUND!r}, the label the Segmentation mask format reserves for "
                          f"unlabelled pixels; rename the class (e.g. 'ground') or export Label Studio or CVAT XML")
    entries = [(BACKGROUND, (0, 0, 0)), *zip(class_names, colors), (VOID_NAME, void_color)]
    rgb = [tuple(int(c) for c in color) for _, color in entries]
    if len(set(rgb)) != len(rgb):
        raise ConfigError("labelmap colours must differ (black is background); choose another void_color")
    lines = ["# label:color_rgb:parts:actions"]
    lines += [f"{name}:{r},{g},{b}::" for (name, _), (r, g, b) in zip(entries, rgb)]
    return "\n".join(lines) + "\n"


def parse_labelmap(
    text: str, class_names: Sequence[str], *, source: Path | str = _ZIP_SOURCE
) -> dict[int, int]:
    """Colour -> label value from ``labelmap.txt``; ``background`` -> 255 (unlabelled).

    Colours are keyed as ``r << 16 | g << 8 | b``.

    Raises:
        DatasetError: a malformed line, an unknown label name, or one colour for two labels.
    """
    values = label_values(class_names)
    out: dict[int, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item = f"labelmap.txt line {n}"
        parts = line.split(":")
        try:
            r, g, b = (int(c) for c in parts[1].split(","))
            if not all(0 <= c <= 255 for c in (r, g, b)):
                raise ValueError
        except (IndexError, ValueError) as exc:
            raise DatasetError(source, f"{item}: {line!r} is not 'name:R,G,B:parts:actions'",
                               "export the task again as 'Segmentation mask 1.1'") from exc
        name = parts[0]
        value = UNLABELLED if name == BACKGROUND else value_of(name, values, source, item)
        key = r << 16 | g << 8 | b
        if out.get(key, value) != value:
            raise DatasetError(source, f"{item}: colour {r},{g},{b} is used by two labels",
                               "give every label its own colour in CVAT")
        out[key] = value
    return out


def _decode_png(data: bytes, colors: dict[int, int], item: str, source: Path | str) -> np.ndarray:
    try:
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int64)  # [H, W, 3]
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(
            source, f"{item}: not a readable PNG ({exc})", "re-export the task from CVAT"
        ) from exc
    keys = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]  # [H, W]
    uniq, inverse = np.unique(keys, return_inverse=True)
    unknown = [f"{k >> 16},{k >> 8 & 255},{k & 255}" for k in uniq.tolist() if k not in colors]
    if unknown:
        raise DatasetError(source, f"{item}: colours {unknown[:5]} are not declared in labelmap.txt",
                           "paint only with the task's labels; never save masks as JPEG (it blurs colours)")
    lut = np.array([colors[k] for k in uniq.tolist()], dtype=np.uint8)
    return lut[inverse.reshape(keys.shape)]


def read_segmask_zip(
    archive: Path | str | bytes,
    class_names: Sequence[str],
    *,
    expected_sizes: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, np.ndarray]:
    """Class maps of a "Segmentation mask 1.1" zip, keyed by image name (its path under
    ``SegmentationClass/`` without ``.png``). Background -> 255, ``void`` -> ``len(class_names)``.

    Raises:
        DatasetError: unsafe entry names, no ``labelmap.txt``, unknown names or undeclared colours,
            sizes that differ from ``expected_sizes`` (``name -> (width, height)``).
    """
    source: Path | str = _ZIP_SOURCE if isinstance(archive, bytes) else archive
    sizes = expected_sizes or {}
    out = {}
    with open_safe_zip(io.BytesIO(archive) if isinstance(archive, bytes) else archive, source) as zf:
        colors = parse_labelmap(read_zip_entry(zf, "labelmap.txt", source).decode("utf-8", "replace"),
                                class_names, source=source)
        for entry in sorted(zf.namelist()):
            path = PurePosixPath(entry.replace("\\", "/"))
            if path.parts[:1] != ("SegmentationClass",) or path.suffix.lower() != ".png":
                continue
            name = str(path.relative_to("SegmentationClass").with_suffix(""))
            labels = _decode_png(read_zip_entry(zf, entry, source), colors, f"entry {entry!r}", source)
            if name in sizes and tuple(sizes[name]) != (labels.shape[1], labels.shape[0]):
                raise DatasetError(source, f"entry {entry!r} is {labels.shape[1]}x{labels.shape[0]}, "
                                   f"the exported image {sizes[name][0]}x{sizes[name][1]}",
                                   "import the masks of the images this task exported")
            out[name] = labels
    return out


def write_segmask_zip(
    label_maps: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    colors: Sequence[Sequence[int]],
    void_color: Sequence[int] = DEFAULT_VOID_COLOR,
) -> bytes:
    """A "Segmentation mask 1.1" zip of class maps (255 -> background, void -> ``void_color``):
    ``labelmap.txt``, ``ImageSets/Segmentation/default.txt`` and ``SegmentationClass/<name>.png``.

    Shape:
        each label map: ``[H, W]``.
    """
    palette = np.zeros((256, 3), dtype=np.uint8)  # 255 and any unused value -> black = background
    palette[: len(class_names)] = np.asarray(colors, dtype=np.uint8)
    palette[len(class_names)] = void_color
    buf = io.BytesIO()
    with io.BytesIO() as png, zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("labelmap.txt", labelmap_text(class_names, colors, void_color))
        zf.writestr("ImageSets/Segmentation/default.txt", "".join(f"{n}\n" for n in label_maps))
        for name, labels in label_maps.items():
            check_label_map(labels, len(class_names), name, "label map")
            png.seek(0)
            png.truncate()
            Image.fromarray(palette[labels]).save(png, format="PNG")  # [H, W] -> [H, W, 3]
            zf.writestr(f"SegmentationClass/{name}.png", png.getvalue())
    return buf.getvalue()
