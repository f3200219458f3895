"""Simulator settings: every rate and range of the damage, loadable from YAML.

``configs/simulate.yaml`` holds the defaults of the ``seed`` profile (rates
measured on the real damaged article, see ``CORRUPTION.md``) and of the
``resolvers`` profile (the variants other resolvers produce), and the mixture
of the two.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import check_fields, read_yaml


@dataclass
class SurfaceSettings:
    tokenized: float = 1.0  # share of documents in tokenized style (the rest: raw prose)
    drop_hyphenated: float = 0.9  # tokenized style: a hyphenated word is dropped, leaving a space run
    dateline: float = 0.3  # an article opens with a dateline ("LONDON  —  ")
    title_periods: float = 0.5  # share of documents in US style: "Mr." / "Dr." / "U.S." for BBC's "Mr" / "Dr" / "US"


@dataclass
class ReplaceSettings:
    pronoun: float = 0.8  # chance each pronoun mention is rewritten
    name: float = 0.65  # each non-representative name mention
    nominal: float = 0.7  # each nominal mention ("the firm", "the two men")
    representative: float = 0.3  # the representative mention itself (visible only with drift)


@dataclass
class RepresentativeSettings:
    longest: float = 0.9  # the representative is the longest name ...
    shortest: float = 0.0  # ... or the shortest (a bare surname, country, party); else the first mention
    swallow_dateline: float = 0.8  # the first cluster's representative swallows the dateline
    overlong: float = 0.6  # representative runs on over an appositive, bracket or comma
    split_antecedent: float = 0.1  # "they" becomes "A and B"
    pronoun: float = 0.0  # a person cluster whose representative is a pronoun ("He")


@dataclass
class DriftSettings:
    enabled: bool = True
    space_run: float = 1.0  # a dropped-word space run shifts the applier's token index
    punct: float = 0.05  # a punctuation token does (tokenized style)
    punct_raw: float = 0.12  # a punctuation token glued to a word does (raw prose)
    max: int = 4  # copies land at most this many tokens to the right


@dataclass
class TailSettings:
    prob: float = 0.6  # chance an article of at least min_words gets an overflow tail
    min_words: int = 250
    min_mentions: int = 2  # min..max of the last rewrites overflow
    max_mentions: int = 4


@dataclass
class VariantSettings:
    possessive_s: float = 0.0  # possessive pronoun -> representative + "'s"
    wrong_position: float = 0.0  # rewrite lands on a nearby verb instead of the mention
    glued_double: float = 0.0  # a second copy glued to the first without a space


@dataclass
class Profile:
    surface: SurfaceSettings = field(default_factory=SurfaceSettings)
    replace: ReplaceSettings = field(default_factory=ReplaceSettings)
    representative: RepresentativeSettings = field(default_factory=RepresentativeSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)
    tail: TailSettings = field(default_factory=TailSettings)
    variants: VariantSettings = field(default_factory=VariantSettings)


def seed_profile() -> Profile:
    return Profile()


def resolvers_profile() -> Profile:
    return Profile(
        surface=SurfaceSettings(tokenized=0.4, drop_hyphenated=0.5, dateline=0.1),
        replace=ReplaceSettings(pronoun=0.6, name=0.4, nominal=0.5, representative=0.0),
        representative=RepresentativeSettings(
            longest=0.6, swallow_dateline=0.5, overlong=0.2, split_antecedent=0.15, pronoun=0.15
        ),
        drift=DriftSettings(enabled=False),
        tail=TailSettings(prob=0.05),
        variants=VariantSettings(possessive_s=0.5, wrong_position=0.08, glued_double=0.03),
    )


@dataclass
class SimulatorSettings:
    seed: int = 13
    mixture: dict[str, float] = field(default_factory=lambda: {"seed": 1.0, "resolvers": 0.0})
    profiles: dict[str, Profile] = field(
        default_factory=lambda: {"seed": seed_profile(), "resolvers": resolvers_profile()}
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "SimulatorSettings":
        data = dict(data or {})
        check_fields(cls, data, "simulator settings")
        out = cls()
        if "seed" in data:
            out.seed = int(data["seed"])
        if "mixture" in data:
            out.mixture = {str(k): float(v) for k, v in data["mixture"].items()}
        for name, overrides in (data.get("profiles") or {}).items():
            base = out.profiles.get(name) or Profile()
            out.profiles[name] = _merge(base, overrides or {}, f"profiles.{name}")
        for name, weight in out.mixture.items():
            if name not in out.profiles:
                raise ValueError(f"mixture names unknown profile {name!r}")
            if weight < 0:
                raise ValueError(f"mixture weight of {name!r} is negative")
        if sum(out.mixture.values()) <= 0:
            raise ValueError("mixture weights sum to zero")
        return out

    @classmethod
    def from_yaml(cls, path: str | Path | None) -> "SimulatorSettings":
        if path is None:
            return cls()
        data = read_yaml(path)
        return cls.from_dict(data.get("simulate", data))


def _merge(obj, overrides: dict[str, Any], where: str):
    if not isinstance(overrides, dict):
        raise ValueError(f"{where}: expected a mapping, got {overrides!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            raise ValueError(f"unknown setting {where}.{key}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value, f"{where}.{key}")
        else:
            changes[key] = type(current)(value)
    return dataclasses.replace(obj, **changes)
