"""Atomic writes: a reader never sees a half-written file, an interrupt leaves the old one intact."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from activeseg.errors import ConfigError


def _readable(fd: int) -> None:
    """Gives a ``mkstemp`` file (created 0600) the mode a plain ``open`` would: 0666 minus the umask."""
    mask = os.umask(0)
    os.umask(mask)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o666 & ~mask)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to a temporary file beside ``path``, fsyncs it, and renames it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        _readable(fd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_torch_save(obj: object, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
    try:
        _readable(fd)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checked(path: Path | str, fmt: str, missing: str, wrong: str) -> dict:
    """The dict saved at ``path`` whose ``format`` entry is ``fmt`` (a file this project wrote).

    Raises:
        ConfigError: ``"{path}: {missing}"`` when there is no such file, ``"{path}: {wrong} (expected format
            {fmt})"`` when it holds something else.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {missing}")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(saved, dict) or saved.get("format") != fmt:
        raise ConfigError(f"{path}: {wrong} (expected format {fmt})")
    return saved
