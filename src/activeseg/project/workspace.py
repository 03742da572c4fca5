"""A labelling project on disk: its folder, settings, images and what has been labelled so far.

Layout of ``DIR``::

    project.sqlite        the project's state (activeseg.project.store); everything else is derived
    project.json          settings and classes (mirror, for people)
    queries.jsonl         the query manifest (spec formats.md §1; append-only mirror)
    labels/<image>.png    class maps at native size: 0..C-1, C = void, 255 = unlabelled (mirror, §2)
    labelled/<image>.png  region bitmaps: 255 inside every labelled query box (mirror, §2)
    exports/round_NNN/    what `project query` wrote for the round's annotators
    models/               model weights (start, one per round, trained), registered in the store

Images are worked on at the project's working size (stretched); queries, exports and labels are in each
image's own (native) pixels. Grid region ``rid`` of an image covers, in native pixels, the working box
scaled by native/working size (exact for CamVid at 180 x 240: x 2).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # no advisory file locks (Windows): SQLite still serialises every write
    fcntl = None

import numpy as np
import torch
from PIL import Image

from activeseg import UNLABELLED
from activeseg.al.state import LabelledState
from activeseg.config import from_dict, load_yaml, to_dict
from activeseg.data.classes import ClassInfo, load_classes
from activeseg.data.folder import _open, list_images, scan_split
from activeseg.data.subsets import resolve_images
from activeseg.errors import ConfigError, DatasetError
from activeseg.formats.common import Box
from activeseg.project.config import ProjectConfig
from activeseg.project.mirror import sync_mirrors
from activeseg.project.store import FORMAT, ProjectStore
from activeseg.regions import RegionGrid

log = logging.getLogger(__name__)

STORE_NAME = "project.sqlite"


def read_label_png(path: Path, size: tuple[int, int], classes: ClassInfo) -> np.ndarray:
    """A user's label PNG as a project label map: class indices, void (the classes' ignore index, or C)
    -> C, 255 -> unlabelled. ``size`` = the image's (width, height).

    Raises:
        DatasetError: not a single-channel PNG, wrong size, or values outside the classes.
    """
    im = _open(path, "label")
    if im.mode not in ("L", "P"):
        raise DatasetError(path, f"label is a {im.mode} image, not a single-channel class-index PNG",
                           "save labels as 8-bit single-channel PNGs of class indices (255 = unlabelled)")
    if im.size != tuple(size):
        raise DatasetError(path, f"label is {im.size[0]}x{im.size[1]}, its image {size[0]}x{size[1]}",
                           "export the label at the size of its image")
    label = np.array(im, dtype=np.uint8)
    C = classes.num_classes
    void = classes.ignore_index
    allowed = set(range(C)) | {C, UNLABELLED} | ({void} if void is not None and void < 256 else set())
    bad = sorted(set(np.unique(label).tolist()) - allowed)
    if bad:
        raise DatasetError(path, f"label values {bad[:10]} are not class indices 0..{C - 1}, void ({C}) or "
                           f"unlabelled (255)", "fix the label map or the classes file")
    if void is not None and void not in (C, UNLABELLED):
        label[label == void] = C
    return label


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file after its EXIF orientation."""
    with Image.open(path) as im:
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


@dataclass
class Project:
    """An open labelling project."""

    dir: Path
    store: ProjectStore
    cfg: ProjectConfig
    classes: ClassInfo
    _lock_depth: int = 0

    # --- creation and opening -------------------------------------------------------------------

    @classmethod
    def init(cls, directory: Path, images: Path, classes: Path, labels: Path | None = None,
             val: Path | None = None, config: Path | None = None, state_images: str | None = None) -> "Project":
        """Creates a project over the images of ``images`` (nothing is copied; paths are recorded).

        Args:
            labels: optional folder of label PNGs named like the images: a label with no unlabelled pixel
                makes its image a fully labelled start image (it trains the start model and leaves the
                pool); a partial one labels every grid region it covers completely.
            val: optional labelled validation folder (``images/`` and ``labels/``): early stopping and the
                validation mIoU of every training.
            config: optional settings file (keys of :class:`ProjectConfig`).
            state_images: RALIS's state set, taken out of the pool: ``random:N`` or a file of image stems
                (only their pixels are used, never labels).
        """
        directory = Path(directory)
        leftovers = [p for p in directory.glob(STORE_NAME + ".init*")] if directory.is_dir() else []
        for p in leftovers:  # a killed init: its unfinished store, never a project
            p.unlink()
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise ConfigError(f"{directory} exists and is not an empty folder; give a new folder for the project "
                              f"(or open the existing project with the other `activeseg project` commands)")
        cfg = load_yaml(config, ProjectConfig) if config is not None else ProjectConfig()
        info = load_classes(Path(classes))
        items = list_images(Path(images))
        sizes = {stem: image_size(p) for stem, p in items}
        initial: dict[str, np.ndarray] = {}
        if labels is not None:
            if not Path(labels).is_dir():
                raise DatasetError(labels, "labels folder not found", "give the folder holding <image>.png labels")
            stems = dict(items)
            for p in sorted(Path(labels).glob("*.png")):
                if p.stem not in stems:
                    raise DatasetError(p, "label has no image of the same name in the images folder",
                                       "name each label like its image (<stem>.png), or remove it")
                initial[p.stem] = read_label_png(p, sizes[p.stem], info)
        val_dir = None
        if val is not None:
            val_dir = Path(val).resolve()
            scan_split(val_dir)  # images/ and labels/ pair up
        start = [s for s, lab in initial.items() if not (lab == UNLABELLED).any()]
        state: list[str] = []
        if state_images is not None:
            state = sorted(resolve_images(state_images, "--state-images", Path(images), [s for s, _ in items],
                                          set(start), cfg.start_seed))
        pool = [s for s, _ in items if s not in set(start) | set(state)]
        if not pool:
            raise ConfigError("every image is fully labelled: nothing is left to query; add unlabelled images")
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (STORE_NAME + ".init")
        tmp.unlink(missing_ok=True)
        store = ProjectStore(tmp, create=True)
        try:
            with store.transaction() as cur:
                ProjectStore.set_meta(cur, "format", FORMAT)
                ProjectStore.set_meta(cur, "project_id", uuid.uuid4().hex)
                ProjectStore.set_meta(cur, "created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
                ProjectStore.set_meta(cur, "settings", json.dumps(to_dict(cfg), default=str))
                ProjectStore.set_meta(cur, "classes", json.dumps(info.to_json()))
                ProjectStore.set_meta(cur, "images_dir", str(Path(images).resolve()))
                ProjectStore.set_meta(cur, "val_dir", str(val_dir) if val_dir else "")
                paths = dict(items)
                rows = [(s, "pool") for s in pool] + [(s, "start") for s in sorted(start)] + [(s, "state") for s in state]
                cur.executemany("INSERT INTO images (idx, image_id, path, width, height, role) VALUES (?,?,?,?,?,?)",
                                [(i, s, str(Path(images).resolve() / paths[s].name), *sizes[s], role)
                                 for i, (s, role) in enumerate(rows)])
                project = cls(directory, store, cfg, info)
                grid_rows = project.initial_label_rows(initial, pool)
                for stem, lab in initial.items():  # bitmap: the start images whole, the covered grid boxes
                    bitmap = np.full(lab.shape, 255 if stem in start else 0, np.uint8)
                    for r in grid_rows:
                        if r["image_id"] == stem:
                            bitmap[r["y0"]:r["y1"], r["x0"]:r["x1"]] = 255
                    ProjectStore.put_labels(cur, stem, lab, bitmap)
                ProjectStore.append_rows(cur, grid_rows)
        finally:
            store.close()
        tmp.rename(directory / STORE_NAME)  # the project exists once its complete store has its name
        project = cls.open(directory)
        log.info("project %s: %d pool images, %d start images, %d regions labelled from the labels folder",
                 directory, len(pool), len(start), len(project.initial_regions()))
        return project

    @classmethod
    def open(cls, directory: Path, sync: bool = True) -> "Project":
        directory = Path(directory)
        if not directory.is_dir():
            raise ConfigError(f"{directory}: no such project folder; create it with `activeseg project init`")
        store = ProjectStore(directory / STORE_NAME)
        cfg = from_dict(ProjectConfig, json.loads(store.meta("settings")))
        classes_json = json.loads(store.meta("classes"))
        classes = ClassInfo(tuple(classes_json["classes"]), tuple(tuple(c) for c in classes_json["colors"]),
                            classes_json.get("ignore_index"))
        project = cls(directory, store, cfg, classes)
        if sync:
            with project.lock():
                sync_mirrors(project)
        return project

    def close(self) -> None:
        self.store.close()

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Holds the project's file lock (``.lock``): commands that write exports, manifest rows and mirrors
        (query, import) run one at a time, and a mirror never goes back to an older state. Re-entrant."""
        if self._lock_depth or fcntl is None:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        with open(self.dir / ".lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            self._lock_depth = 1
            try:
                yield
            finally:
                self._lock_depth = 0
                fcntl.flock(f, fcntl.LOCK_UN)

    # --- geometry ---------------------------------------------------------------------------------

    @property
    def project_id(self) -> str:
        return self.store.meta("project_id")

    @property
    def grid(self) -> RegionGrid:
        return RegionGrid.from_counts(*self.cfg.data.size, self.cfg.region_rows, self.cfg.region_cols)

    @property
    def num_classes(self) -> int:
        return self.classes.num_classes

    def native_box(self, image: dict, rid: int) -> Box:
        """Grid region ``rid`` of an image row, in the image's native pixels (half-open)."""
        y0, y1, x0, x1 = self.grid.box(rid)
        h, w = self.cfg.data.size
        W, H = image["width"], image["height"]
        return Box(x0 * W // w, y0 * H // h, x1 * W // w, y1 * H // h)

    def pool_images(self) -> list[dict]:
        return self.store.images("pool")

    def start_images(self) -> list[dict]:
        return self.store.images("start")

    def state_images(self) -> list[dict]:
        return self.store.images("state")

    @property
    def val_dir(self) -> Path | None:
        value = self.store.meta("val_dir")
        return Path(value) if value else None

    # --- the labelled state -----------------------------------------------------------------------

    def initial_label_rows(self, initial: dict[str, np.ndarray], pool: list[str]) -> list[dict]:
        """Manifest rows (round 0, status labelled) for every grid region a partial label covers."""
        rows = []
        images = {r["image_id"]: r for r in self.store.images()}
        for stem in pool:
            lab = initial.get(stem)
            if lab is None:
                continue
            for rid in range(self.grid.regions_per_image):
                box = self.native_box(images[stem], rid)
                if (lab[box.slices] != UNLABELLED).all():
                    rows.append(manifest_row(images[stem], box, rid, 0, "initial_labels", None, "-", "labelled",
                                             labelled_at=now_iso()))
        return rows

    def initial_regions(self) -> list[dict]:
        return [q for q in self.store.queries().values() if q["round"] == 0 and q["status"] == "labelled"]

    def labelled_state(self, through_round: int | None = None) -> tuple[LabelledState, dict[int, list[int]]]:
        """The labelled grid regions (up to ``through_round``), and each round's labelled region ids in
        selection order."""
        index = {r["image_id"]: r["idx"] for r in self.pool_images()}
        R = self.grid.regions_per_image
        state = LabelledState(len(index), self.grid)
        by_round: dict[int, list[int]] = {}
        for q in self.store.queries().values():
            if q["status"] != "labelled" or q["region_id"] is None or q["image_id"] not in index:
                continue
            if through_round is not None and q["round"] > through_round:
                continue
            by_round.setdefault(q["round"], []).append(index[q["image_id"]] * R + q["region_id"])
        for rnd in sorted(by_round):
            state.label(torch.tensor(by_round[rnd]), rnd)
        return state, by_round

    def working_labels(self, images: list[dict]) -> torch.Tensor:
        """Imported labels of ``images`` at the working size (nearest), 255 where nothing is known.

        Shape: ``[N, H, W]`` uint8."""
        h, w = self.cfg.data.size
        out = torch.full((len(images), h, w), UNLABELLED, dtype=torch.uint8)
        for i, image in enumerate(images):
            maps = self.store.label_maps(image["image_id"])
            if maps is not None:
                out[i] = torch.from_numpy(np.array(Image.fromarray(maps[0]).resize((w, h), Image.NEAREST)))
        return out


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def query_box(row: dict) -> Box:
    """The half-open box of a manifest row, in its image's native pixels."""
    return Box(row["x0"], row["y0"], row["x1"], row["y1"])


def manifest_row(image: dict, box: Box, rid: int | None, rnd: int, strategy: str, score: float | None,
                 model_version: str, status: str, exported_to: str | None = None, labelled_at: str | None = None,
                 crop: dict | None = None, unit: str = "grid") -> dict:
    """One manifest row (spec formats.md §1)."""
    return {
        "query_id": f"r{rnd:03d}-{image['image_id']}-{box.x0}-{box.y0}-{box.x1}-{box.y1}",
        "image_id": image["image_id"],
        "image_path": image.get("relative_path", image["path"]),
        "image_width": image["width"],
        "image_height": image["height"],
        "x0": box.x0, "y0": box.y0, "x1": box.x1, "y1": box.y1,
        "region_id": rid,
        "unit": unit,
        "round": rnd,
        "strategy": strategy,
        "score": score,
        "model_version": model_version,
        "status": status,
        "exported_to": exported_to,
        "labelled_at": labelled_at,
        "crop": crop,
    }
