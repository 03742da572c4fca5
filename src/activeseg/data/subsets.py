"""Which images of a split a config key names: the start set, the pool, the RALIS state set.

Forms of a key's value (``start_images``, ``state_images``, ``pool_images``):

- ``all``: every image of the split;
- ``rest``: every image not taken by the keys resolved before it (start, then state, then pool);
- ``random:N``: N images drawn with the given seed from those not taken before;
- ``ralis:d_s`` / ``ralis:d_t`` / ``ralis:d_v``: the RALIS split of CamVid's train images (from the
  dataset's ``ralis_splits.json``; a dataset folder named ``camvid`` may use the copy in the package);
- ``ralis_day_only:d_s|d_t|d_v``: the same split without a dusk (``0001TP``) image in d_t and d_s (spec
  ripu.md section 7: an agent for the day -> dusk setting must not have seen dusk labels);
- a path to a text file of stems, one per line (``#`` comments allowed);
- ``none``: no image (``start_images`` of DEAL's original protocol, which draws a start set per seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from activeseg.data.camvid import RALIS_KEYS, ralis_splits
from activeseg.data.domains import ralis_day_only
from activeseg.data.folder import read_stems_file
from activeseg.errors import ConfigError

FORMS = "'all', 'rest', 'random:N', 'ralis:d_s|d_t|d_v', 'ralis_day_only:d_s|d_t|d_v', 'none' or a file of stems"


def resolve_images(spec: str, key: str, dataset_dir: Path, stems: Sequence[str],
                   taken: set[str] | frozenset[str] = frozenset(), seed: int = 0) -> list[str]:
    """The stems ``spec`` names among the split's ``stems``.

    Args:
        spec: the key's value (see the module docstring).
        key: the config key, named in every error.
        dataset_dir: the dataset folder (for ``ralis_splits.json``).
        stems: every stem of the split.
        taken: stems already given to other keys (``rest`` and ``random:N`` avoid them).
        seed: seed of ``random:N``.

    Raises:
        ConfigError: the form is unknown, the file or split is missing, too few images are left, or a
            named stem is not in the split; each names the key and the remedy.
    """
    if spec == "all":
        return list(stems)
    if spec == "none":
        return []
    if spec == "rest":
        return [s for s in stems if s not in taken]
    if spec.startswith("random:"):
        count = spec.split(":", 1)[1]
        free = [s for s in stems if s not in taken]
        if not count.isdigit() or not 0 < int(count) <= len(free):
            raise ConfigError(f"{key}: {spec!r} needs N between 1 and the {len(free)} split images not taken by "
                              f"earlier keys (e.g. random:10)")
        pick = np.random.default_rng(seed).choice(len(free), int(count), replace=False)
        return sorted(free[i] for i in pick)
    if spec.startswith(("ralis:", "ralis_day_only:")):
        variant, part = spec.split(":", 1)
        if part not in RALIS_KEYS:
            raise ConfigError(f"{key}: unknown RALIS split {part!r} in {spec!r}; use {variant}:d_s, {variant}:d_t or "
                              f"{variant}:d_v")
        own = Path(dataset_dir) / "ralis_splits.json"
        if not own.is_file() and Path(dataset_dir).name != "camvid":
            raise ConfigError(f"{key}: {spec!r} is the RALIS split of CamVid's train images, and {dataset_dir} has "
                              f"no ralis_splits.json; for this dataset use {FORMS} (see configs/folder_dataset.yaml)")
        splits = ralis_splits(Path(dataset_dir))
        names = (ralis_day_only(splits) if variant == "ralis_day_only" else splits)[part]
    else:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"{key}: {spec!r} is neither a file of stems nor one of {FORMS}")
        names = list(read_stems_file(path))
    known = set(stems)
    missing = [s for s in names if s not in known]
    if missing:
        raise ConfigError(f"{key}: {len(missing)} of the {len(names)} images {spec!r} names are not in the split "
                          f"(e.g. {missing[:3]}); name images of this dataset's split, or use {FORMS}")
    return list(names)
