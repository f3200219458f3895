"""Simulator settings: every rate and range of the damage, loadable from YAML.

``configs/simulate.yaml`` holds the defaults of the ``seed`` profile (rates
measured on the real damaged article, see ``CORRUPTION.md``) and of the
``resolvers`` profile (the variants other resolvers produce), and the mixture
of the two.
"""

from __future__ import annotations

import copy
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
    last_word: float = 0.0  # the last word of the longest name alone ("Trump", "Putin"): one-word copies
    title_alone: float = 0.0  # a person's title alone ("President", "Mr."), where the longest name has one
    possessive: float = 0.0  # the representative keeps a possessive "'s" ("Trump's"), repeated everywhere


@dataclass
class DriftSettings:
    enabled: bool = True
    space_run: float = 1.0  # a dropped-word space run shifts the applier's token index
    punct: float = 0.05  # a punctuation token does (tokenized style)
    punct_raw: float = 0.12  # a punctuation token glued to a word does (raw prose)
    max: int = 4  # copies land at most this many tokens away from their mention
    left: float = 0.0  # chance an article's copies land left of their mentions (the applier's index runs behind)


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
    insert: float = 0.0  # a misplaced copy is inserted before its slot instead of overwriting it
    rep_width: float = 0.0  # a misplaced copy overwrites as many tokens as the representative has, not the mention
    recase: float = 0.0  # a copy's first letter follows its slot: capital at a sentence start, "the" lower-cased mid-sentence


@dataclass
class MentionSettings:
    """How the resolver finds mentions: one rule-based finder with knobs, drawn per article."""

    window: int = 60  # tokens back that a pronoun or nominal looks for its antecedent
    salient: float = 0.0  # chance a pronoun goes to the most-mentioned fitting cluster, not the nearest
    titles: float = 1.0  # chance an article's person names take their titles ("Mr. Putin", not "Putin")
    nominals: float = 1.0  # chance an article's definite noun phrases ("the company") are mentions at all
    exact_names: float = 0.0  # chance an article's names cluster by their full text, not by surname


@dataclass
class Profile:
    surface: SurfaceSettings = field(default_factory=SurfaceSettings)
    replace: ReplaceSettings = field(default_factory=ReplaceSettings)
    representative: RepresentativeSettings = field(default_factory=RepresentativeSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)
    tail: TailSettings = field(default_factory=TailSettings)
    variants: VariantSettings = field(default_factory=VariantSettings)
    mentions: MentionSettings = field(default_factory=MentionSettings)


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


def clean_profile() -> Profile:
    """No rewrite at all: the article keeps only its surface style (an article the pass left alone)."""
    return Profile(
        replace=ReplaceSettings(pronoun=0.0, name=0.0, nominal=0.0, representative=0.0),
        tail=TailSettings(prob=0.0),
    )


@dataclass
class SimulatorSettings:
    seed: int = 13
    mixture: dict[str, float] = field(default_factory=lambda: {"seed": 1.0, "resolvers": 0.0})
    profiles: dict[str, Profile] = field(
        default_factory=lambda: {"seed": seed_profile(), "resolvers": resolvers_profile(), "clean": clean_profile()}
    )
    # per profile, knobs drawn anew for every article: {"random": {"drift.max": [1, 6], "drift.enabled": 0.8}}
    # ([low, high] uniform, integers for integer knobs; one number for a yes/no knob: its chance of yes)
    ranges: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        for name, knobs in (data.get("ranges") or {}).items():
            if name not in out.profiles:
                out.profiles[name] = Profile()
            out.ranges[name] = {k: check_range(out.profiles[name], k, v, f"ranges.{name}") for k, v in (knobs or {}).items()}
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


def _knob(profile: Profile, path: str, where: str) -> tuple[Any, str]:
    """The settings object holding the dotted knob ``path`` ("drift.max") and the knob's name."""
    parts = path.split(".")
    obj = profile
    for part in parts[:-1]:
        if not dataclasses.is_dataclass(obj) or not hasattr(obj, part):
            raise ValueError(f"unknown knob {where}.{path}")
        obj = getattr(obj, part)
    if not dataclasses.is_dataclass(obj) or parts[-1] not in {f.name for f in dataclasses.fields(obj)} \
            or dataclasses.is_dataclass(getattr(obj, parts[-1])):
        raise ValueError(f"unknown knob {where}.{path}")
    return obj, parts[-1]


def check_range(profile: Profile, path: str, value: Any, where: str) -> list[float]:
    """A knob's range as ``[low, high]`` (a yes/no knob: ``[chance]``), checked against the knob's type."""
    obj, name = _knob(profile, path, where)
    current = getattr(obj, name)
    values = value if isinstance(value, (list, tuple)) else [value]
    try:
        values = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"{where}.{path}: expected numbers, got {value!r}") from None
    if isinstance(current, bool):
        if len(values) != 1 or not 0.0 <= values[0] <= 1.0:
            raise ValueError(f"{where}.{path}: a yes/no knob takes one chance in [0, 1], got {value!r}")
        return values
    if len(values) != 2 or values[0] > values[1]:
        raise ValueError(f"{where}.{path}: expected [low, high] with low <= high, got {value!r}")
    if isinstance(current, float) and not (0.0 <= values[0] and values[1] <= 1.0) and name not in _UNBOUNDED:
        raise ValueError(f"{where}.{path}: a rate lies in [0, 1], got {value!r}")
    return values


_UNBOUNDED: set[str] = set()  # float knobs that are not rates (none yet)


def draw_profile(profile: Profile, ranges: dict[str, list[float]], rng) -> Profile:
    """A copy of ``profile`` with every knob of ``ranges`` drawn from its range by ``rng``."""
    if not ranges:
        return profile
    out = copy.deepcopy(profile)
    for path, values in sorted(ranges.items()):
        obj, name = _knob(out, path, "ranges")
        current = getattr(obj, name)
        if isinstance(current, bool):
            setattr(obj, name, rng.random() < values[0])
        elif isinstance(current, int):
            setattr(obj, name, rng.randint(int(values[0]), int(values[1])))
        else:
            setattr(obj, name, rng.uniform(values[0], values[1]))
    return out


def range_covers(ranges: dict[str, list[float]], profile: Profile) -> list[str]:
    """The knobs of ``ranges`` whose range leaves out ``profile``'s value (empty: the profile lies inside)."""
    outside = []
    for path, values in sorted(ranges.items()):
        obj, name = _knob(profile, path, "ranges")
        v = getattr(obj, name)
        if isinstance(v, bool):
            ok = (values[0] > 0) if v else (values[0] < 1)
        else:
            ok = values[0] <= v <= values[1]
        if not ok:
            outside.append(f"{path}={v} outside {values}")
    return outside


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
