"""Reading settings objects (training configs, model cards, simulator settings) from plain data."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml


def check_fields(cls, data: dict[str, Any], what: str) -> None:
    """A ValueError naming every key of ``data`` that is not a field of the dataclass ``cls``."""
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what}: {sorted(unknown)}")


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The mapping at the top of a YAML file (an empty file is an empty mapping).

    A top-level ``base: OTHER.yaml`` (a path relative to this file) reads that file first and lays this one
    over it: mappings merge key by key, at every depth; any other value (a list, a number) replaces the base's,
    except that ``KEY+: [...]`` appends to the base's list ``KEY`` and ``KEY-: [NAME, ...]`` removes those keys
    from the base's mapping ``KEY`` (before the rest of this file is laid over it). A config that differs from
    another in a few settings is then written as those settings alone.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    if "base" not in data:
        return data
    base = data.pop("base")
    if not isinstance(base, str):
        raise ValueError(f"{path}: base must be the path of another YAML file, got {base!r}")
    base_path = (path.parent / base).resolve()
    if base_path in _seen or base_path == path.resolve():
        raise ValueError(f"{path}: base {base} leads back to itself")
    if not base_path.is_file():
        raise ValueError(f"{path}: base {base} not found ({base_path})")
    return _laid_over(read_yaml(base_path, (*_seen, path.resolve())), data, path)


def _laid_over(base: dict[str, Any], top: dict[str, Any], path: Path) -> dict[str, Any]:
    """``top`` over ``base``: ``KEY-`` names removed from the base's mapping ``KEY``, then mappings merged key by
    key, ``KEY+`` lists appended to the base's ``KEY``, every other value of ``top`` replacing the base's."""
    out = dict(base)
    for key, names in top.items():
        if not (isinstance(key, str) and key.endswith("-")):
            continue
        key = key[:-1]
        kept = out.get(key)
        if (not isinstance(names, list) or not isinstance(kept, dict)
                or not all(isinstance(n, str) and n in kept for n in names)):
            raise ValueError(f"{path}: {key}-: removes keys that the base's mapping {key} has, "
                             f"got {names!r} for a base value {kept!r}")
        out[key] = {k: v for k, v in kept.items() if k not in names}
    for key, value in top.items():
        if isinstance(key, str) and key.endswith("-"):
            continue
        if isinstance(key, str) and key.endswith("+"):
            key = key[:-1]
            if not isinstance(value, list) or not isinstance(out.get(key), list):
                raise ValueError(f"{path}: {key}+ appends a list to the base's list {key}, "
                                 f"got {value!r} for a base value {out.get(key)!r}")
            out[key] = out[key] + value
            continue
        both_maps = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _laid_over(out[key], value, path) if both_maps else value
    return out


def setting_types(cls) -> dict[str, str]:
    """Each field of the dataclass ``cls`` and its declared type, as written (``"int | None"``)."""
    return {f.name: str(f.type) for f in dataclasses.fields(cls)}


_TRUE, _FALSE, _NONE = ("true", "yes", "on", "1"), ("false", "no", "off", "0"), ("none", "null", "~", "")


def parse_override(name: str, type_name: str, raw: str) -> Any:
    """A ``KEY=VALUE`` override's text read as its setting's declared type.

    A text setting takes the text as it is (``mixed_precision=no`` is "no",
    not YAML's false); numbers, booleans, lists and None are read by type, and
    a value that is none of what the setting takes is a one-line error.
    """
    kinds = [k.strip() for k in type_name.split("|")]
    text = raw.strip()
    if "None" in kinds and text.lower() in _NONE:
        return None
    if any(k.startswith("list") for k in kinds) and text.startswith("["):
        value = yaml.safe_load(text)
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a list, got {raw!r}")
        return [str(v) for v in value]
    if "str" in kinds:
        return text
    if any(k.startswith("list") for k in kinds):
        return [part.strip() for part in text.split(",") if part.strip()]
    if "bool" in kinds:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError(f"{name} must be true or false, got {raw!r}")
    return coerce_setting(name, type_name, text)


def coerce_setting(name: str, type_name: str, value: Any) -> Any:
    """A setting's value (from YAML or an override) as its declared type, or a one-line error naming it.

    YAML reads ``2e-4`` (no dot) as text, so numbers are read from text; it
    reads a bare ``no`` as false, so a text setting given a boolean is an
    error that says to quote it.
    """
    kinds = [k.strip() for k in type_name.split("|")]
    if value is None:
        if "None" in kinds:
            return None
        raise ValueError(f"{name} needs a value")
    if "int" in kinds or "float" in kinds:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{name} must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if "int" in kinds:
            if not float(value).is_integer():
                raise ValueError(f"{name} must be a whole number, got {value!r}")
            return int(value)
        return float(value)
    if "bool" in kinds:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(value, list) and any(k.startswith("list") for k in kinds):
        if not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of text, got {value!r}")
        return value
    if "str" in kinds:
        if isinstance(value, bool):
            raise ValueError(f"{name} must be text, got {value!r} (YAML reads a bare no/yes/off/on as a boolean: "
                             f"quote it, e.g. {name}: \"no\")")
        if not isinstance(value, (str, int, float)):
            raise ValueError(f"{name} must be text, got {value!r}")
        return str(value)
    if any(k.startswith("list") for k in kinds):
        if isinstance(value, str):
            return [value]
        raise ValueError(f"{name} must be a list, got {value!r}")
    return value
