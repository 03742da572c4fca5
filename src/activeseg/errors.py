"""Errors that reach the user: each names the offending file and the remedy."""

from __future__ import annotations

from pathlib import Path


class ActiveSegError(Exception):
    """Base class for errors caused by user input (bad data, bad config)."""


class DatasetError(ActiveSegError):
    """A dataset on disk does not follow the folder format.

    Args:
        path: the file or folder at fault.
        problem: what is wrong with it.
        remedy: what the user should do about it.
    """

    def __init__(self, path: Path | str, problem: str, remedy: str) -> None:
        self.path = Path(path)
        self.problem = problem
        self.remedy = remedy
        super().__init__(f"{path}: {problem}. Remedy: {remedy}")


class ConfigError(ActiveSegError):
    """A configuration value is invalid; the message says how to fix it."""
