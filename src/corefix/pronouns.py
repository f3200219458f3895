"""English personal pronouns: their features, and the form that fits a slot."""

from __future__ import annotations

from typing import NamedTuple


class PronounInfo(NamedTuple):
    gender: str  # "m", "f", "n" (it) or "p" (they)
    number: str  # "singular" or "plural"
    case: str  # "subj", "obj" or "poss"


PRONOUNS: dict[str, PronounInfo] = {
    "he": PronounInfo("m", "singular", "subj"),
    "him": PronounInfo("m", "singular", "obj"),
    "his": PronounInfo("m", "singular", "poss"),
    "she": PronounInfo("f", "singular", "subj"),
    "her": PronounInfo("f", "singular", "obj"),
    "it": PronounInfo("n", "singular", "subj"),
    "its": PronounInfo("n", "singular", "poss"),
    "they": PronounInfo("p", "plural", "subj"),
    "them": PronounInfo("p", "plural", "obj"),
    "their": PronounInfo("p", "plural", "poss"),
}

FORMS = {
    ("m", "subj"): "he", ("m", "obj"): "him", ("m", "poss"): "his",
    ("f", "subj"): "she", ("f", "obj"): "her", ("f", "poss"): "her",
    ("n", "subj"): "it", ("n", "obj"): "it", ("n", "poss"): "its",
    ("p", "subj"): "they", ("p", "obj"): "them", ("p", "poss"): "their",
}


def pronoun_for(gender: str, case: str) -> str:
    """The pronoun of ``gender`` (m, f, n, p) in ``case`` (subj, obj, poss)."""
    return FORMS[(gender, case)]


def is_pronoun(text: str) -> bool:
    return text.strip().lower() in PRONOUNS
