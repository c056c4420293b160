"""Typed configs: dataclasses filled from YAML files and ``a.b=value`` overrides.

No global config object: a config is built once at the entry point and its
fields are passed on as explicit arguments.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from mars_action.errors import MarsError

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from a nested dict, rejecting unknown keys."""
    if not isinstance(data, dict):
        raise MarsError(f"{where or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise MarsError(f"{where or cls.__name__}: unknown key(s) {', '.join(unknown)}")
    values = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        values[name] = _coerce(hints[name], value, key)
    return cls(**values)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value or {}, where)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(options[0], value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise MarsError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        item = args[0] if args else Any
        items = [_coerce(item, v, where) for v in value]
        return tuple(items) if origin is tuple else items
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise MarsError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise MarsError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    # bool is an int to Python: ``batch_size: true`` must not pass as 1.
    wrong_bool = hint is int and isinstance(value, bool)
    if hint in (int, str, bool) and (wrong_bool or not isinstance(value, hint)):
        raise MarsError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """The plain nested dict of a dataclass config (tuples become lists)."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` strings (values parsed as YAML) to a nested dict."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise MarsError(f"override {override!r}: expected KEY=VALUE, e.g. optim.lr=0.01")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise MarsError(f"override {override!r}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(cls: type[T], path: str | Path | None, overrides: list[str] = ()) -> T:
    """Read a YAML file (or start from defaults), apply overrides, build ``cls``."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as error:
            raise MarsError(f"{path}: cannot read config ({error.strerror})") from None
        except yaml.YAMLError as error:
            raise MarsError(f"{path}: not valid YAML ({error})") from None
    data = apply_overrides(data, list(overrides))
    try:
        return from_dict(cls, data)
    except MarsError as error:
        raise MarsError(f"{path}: {error}" if path else str(error)) from None


def save_config(config: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (what a run folder keeps)."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
