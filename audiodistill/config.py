"""Stage options as frozen dataclasses, loaded from YAML plus dotted command-line overrides.

Every stage (synth, pseudo-label, ...) has one options dataclass. YAML holds plain values
(never import paths); `key.sub=value` overrides are parsed as YAML scalars. Unknown keys and
wrong types are rejected with the dotted name of the field, before any work starts.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from audiodistill.errors import UserError

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A config value is missing, unknown or of the wrong type; the message names the field."""


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] = ()) -> T:
    """Build `cls` from an optional YAML file and `a.b=value` overrides (later wins)."""
    raw: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping, got {type(loaded).__name__}")
        raw = loaded
    for item in overrides:
        _apply_override(raw, item)
    return from_dict(cls, raw)


def _apply_override(raw: dict[str, Any], item: str) -> None:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    node = raw
    *parents, leaf = key.strip().split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part} is not a section")
    node[leaf] = yaml.safe_load(value) if value.strip() else ""


def from_dict(cls: type[T], raw: dict[str, Any], prefix: str = "") -> T:
    """Validate `raw` against dataclass `cls`; errors name the dotted field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]} (known keys: {', '.join(sorted(fields))})"
        )
    values = {}
    for name, value in raw.items():
        values[name] = _coerce(hints[name], value, f"{prefix}{name}")
    missing = [
        n
        for n, f in fields.items()
        if n not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing required key {prefix}{missing[0]}")
    try:
        return cls(**values)
    except ValueError as err:  # a check across fields (__post_init__): say where
        if isinstance(err, ConfigError) or not prefix:
            raise ConfigError(str(err)) from err
        raise ConfigError(f"{prefix.rstrip('.')}: {err}") from err


def _coerce(hint: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, name)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, prefix=f"{name}.")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{name} must be one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{name}[{i}]") for i, v in enumerate(value))
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        return _float_from_text(value, name)  # YAML 1.1 reads 1e-4 (no dot) as a string
    if hint is Path and isinstance(value, str):
        return Path(value)
    if hint in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{name} must be {hint.__name__}, got {value!r}")
    if not isinstance(value, hint):
        raise ConfigError(f"{name} must be {hint.__name__}, got {value!r}")
    return value


def _float_from_text(value: str, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name} must be float, got {value!r}") from None


def to_dict(options: Any) -> dict[str, Any]:
    """Plain, YAML-safe dict of an options dataclass (paths as strings, tuples as lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(options)


def save_config(options: Any, path: str | Path) -> None:
    """Write the resolved options beside an output, so a run can be reproduced."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(to_dict(options), sort_keys=False))
