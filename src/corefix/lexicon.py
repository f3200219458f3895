"""The word lists of the package, in one place: pronouns, titles, gendered words.

Each stage that needs a list takes it from here (the simulator's mention
finder, the rule baseline, decoding's title rule, the restorer's pronoun
choice), so a title added once is known everywhere.
"""

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


# Titles abbreviated with a full stop in US style ("Mr. Putin"); the word split makes the stop a word of its own.
TITLE_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "St", "Gen", "Sen", "Gov", "Prof", "Rev")

# Titles that tell a person's gender (lower case, without the full stop).
MALE_TITLES = {"mr", "sir", "lord", "king", "prince", "pope"}
FEMALE_TITLES = {"mrs", "ms", "lady", "dame", "queen", "princess"}

# Words that, standing right before a person's name, belong to the mention
# ("Mr. Okafor", "Prime Minister Tony Blair"): lower case, with and without the full stop.
_TITLE_STEMS = MALE_TITLES | FEMALE_TITLES | {
    "dr", "president", "prime", "minister", "chancellor", "secretary", "senator", "governor",
    "judge", "general", "chairman", "chief", "executive", "coach", "manager", "captain",
    "professor", "prof", "rev", "st",
}
TITLE_WORDS = _TITLE_STEMS | {t + "." for t in ("mr", "mrs", "ms", "dr", "prof", "rev", "sen", "gov", "gen", "st")}

# The rule baseline's titles: words that open a name run or make a full stop part of it.
BASELINE_TITLES = {"mr", "mrs", "ms", "dr", "st", "sir", "lord", "lady", "president", "prime", "minister", "chancellor"}

# Words that tell the restorer a representative is male / female / a person.
MALE_WORDS = MALE_TITLES | {"he", "him", "his", "father", "son", "brother", "man"}
FEMALE_WORDS = FEMALE_TITLES | {"miss", "she", "her", "mother", "daughter", "sister", "woman"}
PERSON_TITLES = MALE_WORDS | FEMALE_WORDS | {
    "dr", "president", "minister", "chancellor", "secretary", "senator", "governor", "judge",
    "general", "chairman", "professor", "prof", "rev", "coach", "captain",
}
