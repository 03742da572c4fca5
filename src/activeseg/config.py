"""Configuration: frozen dataclasses per component, loadable from YAML presets.

A YAML file maps section names to the fields of the command's dataclass, e.g.::

    data: {dataset: camvid, height: 180, width: 240}
    model: {encoder: lite0, freeze_encoder: true}
    train: {max_epochs: 40, patience: 10}
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import textwrap
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from activeseg.errors import ConfigError


#: Numeric field types whose range pydantic checks with the type (the message names the key and the value).
Positive = Annotated[int, Field(ge=1)]
NonNegative = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


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


def _forbid_extra(cls: type) -> None:
    """Marks ``cls`` and every dataclass nested in its fields as rejecting unknown keys (pydantic reads
    ``__pydantic_config__`` from standard dataclasses)."""
    if "__pydantic_config__" not in vars(cls):
        cls.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    for tp in typing.get_type_hints(cls).values():
        for inner in (tp, *typing.get_args(tp)):
            if dataclasses.is_dataclass(inner) and isinstance(inner, type):
                _forbid_extra(inner)


@functools.lru_cache(maxsize=None)
def _adapter(cls: type) -> TypeAdapter:
    _forbid_extra(cls)
    return TypeAdapter(cls)


def _section(cls: type, loc: tuple) -> type:
    """The dataclass that owns the key at ``loc`` (a pydantic error location)."""
    for key in loc[:-1]:
        tp = typing.get_type_hints(cls).get(str(key)) if isinstance(key, str) else None
        inner = [t for t in (tp, *typing.get_args(tp)) if dataclasses.is_dataclass(t) and isinstance(t, type)]
        if not inner:
            break
        cls = inner[0]
    return cls


def _explain(cls: type, error: dict) -> str:
    """One line per validation error: the dotted key, what was given and what is expected."""
    loc = tuple(error["loc"])
    key = ".".join(str(k) for k in loc) or "(top level)"
    if error["type"] == "unexpected_keyword_argument":
        owner = _section(cls, loc)
        valid = sorted(f.name for f in dataclasses.fields(owner))
        return f"unknown key '{key}'; valid keys here: {', '.join(valid)}"
    expected = error["msg"].replace("Input should be a valid tuple", "Input should be a list")
    expected = expected.replace("Input should be", "expected").replace("Input", "the value")
    return f"key '{key}': given {error.get('input')!r}; {expected}"


def from_dict(cls: type, values: dict[str, Any] | None) -> Any:
    """Builds dataclass ``cls`` from a dict, validating every field by its type annotation (pydantic, lax
    mode: YAML's ``1e-3`` read as a string becomes a float); unknown keys are rejected with the valid ones.

    Raises:
        ConfigError: naming each offending key, the value given and what is expected.
    """
    values = {} if values is None else values
    if not isinstance(values, dict):
        raise ConfigError(f"expected a mapping of keys to values, got {values!r}")
    try:
        return _adapter(cls).validate_python(values)
    except ValidationError as exc:
        errors = exc.errors()
        unknown = [e for e in errors if e["type"] == "unexpected_keyword_argument"]
        lines = [_explain(cls, e) for e in errors if e not in unknown]
        if unknown:  # one line for all unknown keys of a section
            by_section: dict[tuple, list[str]] = {}
            for e in unknown:
                by_section.setdefault(tuple(e["loc"][:-1]), []).append(".".join(map(str, e["loc"])))
            for section, keys in by_section.items():
                valid = sorted(f.name for f in dataclasses.fields(_section(cls, (*section, "x"))))
                lines.append(f"unknown key{'s' if len(keys) > 1 else ''} {', '.join(repr(k) for k in keys)}; "
                             f"valid keys here: {', '.join(valid)} (every key: docs/config_keys.md)")
        raise ConfigError("; ".join(lines)) from None
    except TypeError as exc:  # e.g. a missing required field
        raise ConfigError(str(exc)) from None


def load_yaml(path: Path, cls: type) -> Any:
    """Loads a YAML preset into dataclass ``cls``."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a YAML config file (the presets are in configs/)")
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; see configs/ for presets") from None
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not a valid YAML text file ({exc})") from None
    try:
        return from_dict(cls, raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


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


def _field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (read from its source, and its dataclass bases')."""
    docs = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):  # a subclass's own docs win
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                    and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _type_name(tp: Any) -> str:
    """A type as a user reads it: ``int``, ``list of int``, ``'stretch' or 'pad'``, ``... or null``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return "null"
    if origin is Literal:
        return " or ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        return f"[{', '.join(_type_name(a) for a in args)}]"
    if tp is Path:
        return "path"
    return getattr(tp, "__name__", str(tp))


def describe_keys(cls: type, prefix: str = "", defaults: Any = None, only: Any = None) -> list[str]:
    """Markdown table rows ``| key | type | default | meaning |`` for every key of a config dataclass
    (nested sections as dotted keys; defaults from ``defaults``, an instance, when given; ``only``: the
    names of the top-level keys to describe, default all)."""
    rows = []
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    for f in dataclasses.fields(cls):
        if only is not None and f.name not in only:
            continue
        tp = hints[f.name]
        default = getattr(defaults, f.name) if defaults is not None else _default(f)
        if dataclasses.is_dataclass(tp):
            rows += describe_keys(tp, f"{prefix}{f.name}.", None if default is dataclasses.MISSING else default)
            continue
        shown = "(required)" if default is dataclasses.MISSING else json.dumps(to_dict(default))
        meaning = docs.get(f.name, "").replace("|", "\\|")
        rows.append(f"| `{prefix}{f.name}` | {_type_name(tp)} | `{shown}` | {meaning} |")
    return rows
