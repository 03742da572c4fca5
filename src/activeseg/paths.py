"""Checks of the paths a user gives for outputs, made before anything is loaded or written.

Each raises a ``ConfigError`` naming the option or key and the remedy, so a file given where a folder
belongs (or the reverse) stops the command with one line instead of a traceback half-way through.
"""

from __future__ import annotations

from pathlib import Path

from activeseg.errors import ConfigError

SQLITE_HEADER = b"SQLite format 3\x00"


def _parents_are_folders(path: Path, key: str) -> None:
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{key}: {path} lies under {parent}, which is a file, not a folder; "
                                  f"choose a path under a folder")
            return


def output_dir(path: Path | None, key: str) -> None:
    """``path`` may be created as a folder, or is one already."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}: {path} is a file; give a folder (it is created if missing)")
    _parents_are_folders(path, key)


def output_file(path: Path | None, key: str) -> None:
    """``path`` may be written as a file: not a folder, and its parent is (or can be) a folder."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{key}: {path} is a folder; give a file path")
    _parents_are_folders(path, key)


def store_file(path: Path, key: str = "store / --store") -> None:
    """``path`` is a run store, or nothing yet (an empty file counts as nothing)."""
    output_file(path, key)
    path = Path(path)
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as f:
            if f.read(16) != SQLITE_HEADER:
                raise ConfigError(f"{key}: {path} exists and is not a run store (not an SQLite database); "
                                  "give a new path such as runs/NAME/store.sqlite")
