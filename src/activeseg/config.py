"""Configuration: frozen dataclasses per component, loadable from YAML presets.

A YAML file maps section names to the fields of the command's dataclass, e.g.::

    data: {dataset: camvid, height: 180, width: 240}
    model: {encoder: lite0, freeze_encoder: true}
    train: {max_epochs: 40, patience: 10}
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from activeseg.errors import ConfigError


@dataclass(frozen=True)
class DataConfig:
    """Which dataset and at which working resolution."""

    dataset: str = "camvid"
    """Dataset name under the data root, or a path to a dataset folder."""
    data_root: Path | None = None
    """Data root; default: $ACTIVESEG_DATA, then ../shared/data, then the user cache."""
    height: int = 180
    """Working height in pixels (CamVid native: 360)."""
    width: int = 240
    """Working width in pixels (CamVid native: 480)."""
    fit: Literal["stretch", "pad"] = "stretch"
    """How images of another aspect ratio are fitted: 'stretch' or 'pad' (letterbox, padding unlabelled)."""

    def __post_init__(self) -> None:
        if self.height < 32 or self.width < 32:
            raise ConfigError(f"data size {self.height}x{self.width} is too small; use at least 32x32")
        if self.fit not in ("stretch", "pad"):
            raise ConfigError(f"data.fit is {self.fit!r}; use 'stretch' or 'pad'")

    @property
    def size(self) -> tuple[int, int]:
        return (self.height, self.width)


def _convert(tp: Any, value: Any) -> Any:
    """Coerces YAML scalars/lists into the annotated field type (Path, tuple, nested dataclass)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value)
    if value is None:
        return None
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(args[0], value) if len(args) == 1 else value
    if tp is Path:
        return Path(value)
    if origin is tuple:
        return tuple(value)
    return value


def from_dict(cls: type, values: dict[str, Any] | None) -> Any:
    """Builds dataclass ``cls`` from a dict, rejecting unknown keys with the list of valid ones."""
    values = values or {}
    if not isinstance(values, dict):
        raise ConfigError(f"expected a mapping for {cls.__name__}, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} keys {unknown}; valid keys: {sorted(names)}")
    return cls(**{k: _convert(hints[k], v) for k, v in values.items()})


def load_yaml(path: Path, cls: type) -> Any:
    """Loads a YAML preset into dataclass ``cls``."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found; see configs/ for presets") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    try:
        return from_dict(cls, raw)
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


#: Field metadata of options added after run stores and cached models were first written: such a field
#: enters ``to_dict`` only when it differs from its default, so stored run configs and cache keys written
#: before it existed still match (and every non-default choice is still recorded).
ADDED = {"omit_default": True}


def to_dict(cfg: Any) -> dict:
    """A YAML-ready dict of a (nested) dataclass config (fields marked ``ADDED`` only when not default)."""

    def clean(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            out = {}
            for f in dataclasses.fields(v):
                value = getattr(v, f.name)
                if f.metadata.get("omit_default") and value == _default(f):
                    continue
                out[f.name] = clean(value)
            return out
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, (tuple, list)):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    return clean(cfg)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def save_yaml(cfg: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
