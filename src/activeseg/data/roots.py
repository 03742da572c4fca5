"""Where datasets live: ``--data-root`` flag, then ``ACTIVESEG_DATA``, then the project's
``../shared/data``, then the user cache directory."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from activeseg.errors import DatasetError

ENV_VAR = "ACTIVESEG_DATA"
#: The repository root when the package is installed from a checkout (src layout).
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def user_data_dir() -> Path:
    """The per-user cache where ``activeseg data download`` puts datasets."""
    return Path(platformdirs.user_cache_dir("activeseg")) / "data"


def candidate_roots(flag: Path | None = None) -> list[tuple[str, Path]]:
    """Data roots in the order they are tried, each with where it came from."""
    if flag is not None:
        return [("--data-root", Path(flag).expanduser())]
    if os.environ.get(ENV_VAR):
        return [(ENV_VAR, Path(os.environ[ENV_VAR]).expanduser())]
    return [
        ("project ../shared/data", PROJECT_ROOT.parent / "shared" / "data"),
        ("user cache", user_data_dir()),
    ]


def resolve_dataset_dir(dataset: str, data_root: Path | None = None) -> Path:
    """Finds the folder of ``dataset``.

    Args:
        dataset: a dataset name (a folder under the data root, e.g. ``camvid``) or a path to a
            dataset folder holding ``classes.json``.
        data_root: the ``--data-root`` flag, if given; it overrides every other source.

    Raises:
        DatasetError: no source holds the dataset; the message lists where it looked.
    """
    direct = Path(dataset).expanduser()
    classes_remedy = ('write classes.json in it, e.g. {"classes": ["sky", "road"], "ignore_index": 11} '
                      "(see the README's folder format)")
    if (direct / "classes.json").is_file():
        return direct
    is_path = direct.is_absolute() or len(direct.parts) > 1 or dataset.startswith(".")
    if direct.is_dir() and (is_path or any((direct / s / "images").is_dir() for s in ("train", "val", "test"))):
        raise DatasetError(direct / "classes.json", "the dataset folder has no classes.json", classes_remedy)
    if is_path:
        raise DatasetError(direct, "dataset folder not found", "give the path of a folder holding classes.json "
                           "and train/, val/, test/ splits, or a dataset name under the data root")
    tried = []
    for origin, root in candidate_roots(data_root):
        folder = root / dataset
        if (folder / "classes.json").is_file():
            return folder
        if folder.is_dir():
            raise DatasetError(folder / "classes.json", f"the dataset folder (found via the {origin}) has no "
                               "classes.json", classes_remedy)
        tried.append(f"{folder} ({origin})")
    remedy = (
        f"pass --data-root DIR (or set {ENV_VAR}) to a folder holding {dataset}/classes.json"
        + (", or run `activeseg data download camvid`" if dataset == "camvid" else "")
    )
    raise DatasetError(Path(dataset), "dataset not found; looked in " + ", ".join(tried), remedy)
