"""The activeseg folder format, read into memory at a working resolution.

Layout::

    <dataset>/classes.json
    <dataset>/<split>/images/<stem>.jpg|.jpeg|.png
    <dataset>/<split>/labels/<stem>.png      (single-channel class-index PNG)

Images are resized bilinearly and labels by nearest neighbour to the working size. ``fit`` says how
an image whose aspect ratio differs from the working size is fitted: ``stretch`` resizes it to the
working size exactly (default; CamVid needs nothing else); ``pad`` scales it to fit inside, keeping its
aspect ratio, centres it and pads with black pixels labelled 255 (unlabelled, ignored); the split's ``content`` mask
keeps which pixels are image, so that padding is never selected, scored or counted as labelled.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from activeseg import UNLABELLED
from activeseg.data.classes import ClassInfo, load_classes
from activeseg.errors import DatasetError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
Fit = Literal["stretch", "pad"]


@dataclass
class SegmentationSplit:
    """One split held in memory at the working resolution.

    Attributes:
        name: split name (``train``, ``val``, ...).
        stems: file stems, sorted; index i of the tensors is ``stems[i]``.
        images: uint8 RGB images. Shape: ``[N, 3, H, W]``.
        labels: uint8 label maps; values ``>= classes.num_classes`` are ignored. Shape: ``[N, H, W]``.
        classes: the dataset's classes.
        content: image pixels (False: padding added by ``fit: pad``); None when every pixel is image.
            Shape: ``[N, H, W]`` bool.
    """

    name: str
    stems: list[str]
    images: torch.Tensor
    labels: torch.Tensor
    classes: ClassInfo
    content: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.stems)

    @property
    def size(self) -> tuple[int, int]:
        return (self.images.shape[-2], self.images.shape[-1])

    def subset(self, stems: list[str]) -> "SegmentationSplit":
        """The images named by ``stems`` (in that order)."""
        index = {s: i for i, s in enumerate(self.stems)}
        missing = [s for s in stems if s not in index]
        if missing:
            raise DatasetError(
                self.name, f"{len(missing)} stems not in this split, e.g. {missing[:3]}",
                "list stems of images that exist in the split's images/ folder",
            )
        rows = torch.tensor([index[s] for s in stems], dtype=torch.long)
        content = None if self.content is None else self.content[rows]
        return SegmentationSplit(self.name, list(stems), self.images[rows], self.labels[rows], self.classes, content)


def _images_by_stem(folder: Path) -> dict[str, Path]:
    """Image files of ``folder`` by stem; two images with one stem are an error."""
    images: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in images:
                raise DatasetError(p, f"two images share the stem '{p.stem}'", "keep one of them")
            images[p.stem] = p
    return images


def scan_split(split_dir: Path) -> list[tuple[str, Path, Path]]:
    """Pairs images with labels by stem; every image needs a label and vice versa.

    Returns:
        ``(stem, image_path, label_path)`` sorted by stem.
    """
    img_dir, lab_dir = split_dir / "images", split_dir / "labels"
    for d in (img_dir, lab_dir):
        if not d.is_dir():
            raise DatasetError(d, "folder not found", f"put the split's files in {d}")
    images = _images_by_stem(img_dir)
    labels = {p.stem: p for p in sorted(lab_dir.iterdir()) if p.suffix.lower() == ".png"}
    if not images and not labels:
        raise DatasetError(split_dir, "split is empty (no images, no labels)",
                           "add images/<stem>.jpg and labels/<stem>.png, or choose another split")
    for stem, p in images.items():
        if stem not in labels:
            raise DatasetError(p, "image has no label", f"add {lab_dir / (stem + '.png')} or remove the image")
    for stem, p in labels.items():
        if stem not in images:
            raise DatasetError(p, "label has no image", f"add {img_dir / stem}.jpg or remove the label")
    return [(s, images[s], labels[s]) for s in sorted(images)]


def _open(path: Path, what: str) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()  # decode now, so a truncated file fails here and not later
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(path, f"unreadable or truncated {what} ({exc})",
                           f"re-export or re-download the {what}, or remove it with its pair") from exc
    return im


def read_pair(image_path: Path, label_path: Path, classes: ClassInfo) -> tuple[Image.Image, np.ndarray]:
    """Reads and validates one image/label pair at its native size.

    Returns:
        the RGB image (EXIF orientation applied) and the label map ``[h, w]`` uint8.
    """
    image = ImageOps.exif_transpose(_open(image_path, "image")).convert("RGB")
    label_im = _open(label_path, "label")
    if label_im.mode not in ("L", "P", "I", "I;16"):
        raise DatasetError(label_path, f"label is a {label_im.mode} image, not a class-index map",
                           "save labels as single-channel PNGs whose pixel values are class indices")
    label = np.asarray(label_im)
    if image.size != label_im.size:
        raise DatasetError(label_path, f"label size {label_im.size} differs from image size {image.size} "
                           f"({image_path.name})", "export the label at the size of its image")
    bad = sorted(set(np.unique(label).tolist()) - classes.valid_values())
    if bad:
        raise DatasetError(label_path, f"label values {bad[:10]} are neither a class index "
                           f"(0..{classes.num_classes - 1}) nor the ignore index ({classes.ignore_index})",
                           "fix the label map, or declare the value as ignore_index in classes.json")
    return image, label.astype(np.uint8)


def fit_pair(image: Image.Image, label: np.ndarray, size: tuple[int, int], fit: Fit
             ) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """Resizes an image (bilinear) and its label (nearest) to ``size = (H, W)``.

    Returns:
        image ``[H, W, 3]`` uint8, label ``[H, W]`` uint8, and the box ``(top, left, height, width)``
        the image occupies (the whole frame when stretched; padding, unlabelled, around it when padded).
    """
    H, W = size
    lab_im = Image.fromarray(label)
    if fit == "stretch":
        return (np.array(image.resize((W, H), Image.BILINEAR)),
                np.array(lab_im.resize((W, H), Image.NEAREST)), (0, 0, H, W))
    w, h = image.size
    scale = min(H / h, W / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    top, left = (H - nh) // 2, (W - nw) // 2
    out_img = np.zeros((H, W, 3), np.uint8)
    out_lab = np.full((H, W), UNLABELLED, np.uint8)
    out_img[top:top + nh, left:left + nw] = np.asarray(image.resize((nw, nh), Image.BILINEAR))
    out_lab[top:top + nh, left:left + nw] = np.asarray(lab_im.resize((nw, nh), Image.NEAREST))
    return out_img, out_lab, (top, left, nh, nw)


def load_split(dataset_dir: Path, split: str, size: tuple[int, int], fit: Fit = "stretch",
               stems: list[str] | None = None, progress: bool = True, classes: ClassInfo | None = None
               ) -> SegmentationSplit:
    """Validates and loads a split (or the images named by ``stems``) at ``size = (H, W)``; the classes
    are read from ``dataset_dir/classes.json`` unless given.

    Raises:
        DatasetError: any file breaks the folder format; the message names it and the remedy.
    """
    if fit not in ("stretch", "pad"):
        raise DatasetError(dataset_dir, f"unknown fit mode {fit!r}", "use 'stretch' or 'pad'")
    classes = classes or load_classes(dataset_dir / "classes.json")
    split_dir = dataset_dir / split
    if not split_dir.is_dir():
        known = sorted(p.name for p in dataset_dir.iterdir() if (p / "images").is_dir())
        raise DatasetError(split_dir, "split not found", f"choose one of {known}")
    pairs = scan_split(split_dir)
    if stems is not None:
        by_stem = {p[0]: p for p in pairs}
        missing = [s for s in stems if s not in by_stem]
        if missing:
            raise DatasetError(split_dir, f"{len(missing)} requested stems not found, e.g. {missing[:3]}",
                               "list stems of images present in the split")
        pairs = [by_stem[s] for s in stems]
    H, W = size
    images = torch.empty((len(pairs), 3, H, W), dtype=torch.uint8)
    labels = torch.empty((len(pairs), H, W), dtype=torch.uint8)
    content = torch.zeros((len(pairs), H, W), dtype=torch.bool)
    distorted = []
    for i, (stem, ip, lp) in enumerate(tqdm(pairs, desc=f"load {split}", disable=not progress, leave=False)):
        pair = read_pair(ip, lp, classes)
        w, h = pair[0].size
        if fit == "stretch" and abs(math.log((w / h) / (W / H))) > math.log(1.1):
            distorted.append(f"{stem} ({w}x{h})")
        img, lab, (top, left, nh, nw) = fit_pair(*pair, size, fit)
        images[i] = torch.from_numpy(img).permute(2, 0, 1)  # [H, W, 3] -> [3, H, W]
        labels[i] = torch.from_numpy(lab)
        content[i, top:top + nh, left:left + nw] = True
    if distorted:
        log.warning("%s: %d of %d images have an aspect ratio more than 10%% away from the working size %dx%d "
                    "(W x H) and are stretched, e.g. %s; set data.fit: pad to letterbox them instead",
                    split_dir, len(distorted), len(pairs), W, H, ", ".join(distorted[:3]))
    return SegmentationSplit(split, [p[0] for p in pairs], images, labels, classes,
                             None if bool(content.all()) else content)


def list_images(folder: Path) -> list[tuple[str, Path]]:
    """``(stem, path)`` of every image file in ``folder``, sorted by stem.

    Raises:
        DatasetError: the folder is missing or empty, or two images share a stem.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(folder, "images folder not found", "give the folder that holds your .jpg/.png images")
    images = _images_by_stem(folder)
    if not images:
        raise DatasetError(folder, f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder",
                           "give the folder that holds your images")
    return sorted(images.items())


def load_images(items: list[tuple[str, Path]], size: tuple[int, int], classes: ClassInfo, name: str = "images",
                progress: bool = True) -> SegmentationSplit:
    """Unlabelled images (``(stem, path)`` pairs, in that order) at ``size = (H, W)``, stretched, with
    label maps that are all 255 (unlabelled)."""
    H, W = size
    images = torch.empty((len(items), 3, H, W), dtype=torch.uint8)
    for i, (_, path) in enumerate(tqdm(items, desc=f"load {name}", disable=not progress, leave=False)):
        image = ImageOps.exif_transpose(_open(path, "image")).convert("RGB")
        images[i] = torch.from_numpy(np.array(image.resize((W, H), Image.BILINEAR))).permute(2, 0, 1)
    labels = torch.full((len(items), H, W), UNLABELLED, dtype=torch.uint8)
    return SegmentationSplit(name, [s for s, _ in items], images, labels, classes)


def native_size(dataset_dir: Path, split: str) -> tuple[int, int] | None:
    """The (H, W) every label of a split shares, read from the file headers; None if sizes differ."""
    sizes = set()
    for _, _, label_path in scan_split(Path(dataset_dir) / split):
        with Image.open(label_path) as im:
            sizes.add((im.height, im.width))
        if len(sizes) > 1:
            return None
    return sizes.pop() if sizes else None


def class_pixel_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Pixels per class; ignored values are not counted.

    Shape:
        labels ``[N, H, W]`` -> ``[num_classes]`` int64.
    """
    flat = labels.reshape(-1).long()
    return torch.bincount(flat[flat < num_classes], minlength=num_classes)


def read_stems_file(path: Path) -> tuple[str, ...]:
    """Image stems listed one per line (blank lines and ``#`` comments skipped)."""
    if Path(path).is_dir():
        raise DatasetError(path, "is a folder, not a stems file", "give a text file with one image stem per line")
    if not Path(path).is_file():
        raise DatasetError(path, "stems file not found", "write one image stem per line")
    stems = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    if not stems:
        raise DatasetError(path, "no stems listed", "write one image stem per line")
    return tuple(stems)
