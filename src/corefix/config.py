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


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping at the top of a YAML file (an empty file is an empty mapping)."""
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data
