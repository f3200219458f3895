"""The pronoun rules: which pronoun a representative put in place of a mention replaced.

Number and gender come from the representative and the pronouns of its
neighbourhood (:func:`pronoun_gender`), case from the words around the slot
(:func:`case_by_rules`) or spaCy's parse of it (:func:`parse_slot`, through
:mod:`corefix.nlp`); :func:`choose_pronoun` puts them together. Restoration
(:mod:`corefix.model.restore`) uses them where a model has no pronoun head,
and the span heads (:mod:`corefix.model.heads`) read the same facts as
features.
"""

from __future__ import annotations

import re

from ..lexicon import FEMALE_WORDS, MALE_WORDS, PERSON_TITLES, PRONOUNS, pronoun_for
from ..nlp import load_nlp

ORG_WORDS = {
    "inc", "ltd", "plc", "corp", "co", "group", "bank", "company", "party", "ministry", "council",
    "commission", "union", "association", "club", "united", "fc", "government", "department",
    "office", "agency", "court", "parliament", "board", "authority", "service", "times", "news",
    "bbc", "organisation", "organization", "committee", "federation", "league", "institute",
}
PREPOSITIONS = {
    "of", "to", "for", "with", "by", "from", "about", "against", "at", "on", "in", "into", "onto",
    "over", "under", "between", "among", "after", "before", "behind", "without", "within",
    "towards", "toward", "through", "upon", "like", "than", "beside", "around", "near",
}
SUBJECT_VERBS = {
    "said", "says", "is", "was", "are", "were", "has", "had", "have", "will", "would", "can",
    "could", "should", "may", "might", "must", "did", "does", "do", "added", "told", "believes",
    "thinks", "wants", "plans", "also", "now", "still", "then", "later", "insisted", "argued",
}
OBJECT_VERBS = {"told", "asked", "gave", "give", "gives", "made", "make", "help", "helped", "let", "see", "saw", "urged", "called", "beat", "join", "joined", "named", "sent", "offered"}
# after these a new clause starts, so the slot is a subject
CLAUSE_OPENERS = {
    "and", "but", "that", "when", "while", "as", "because", "if", "so", "what", "who", "where",
    "which", "why", "how", "whether", "although", "though", "since", "until", "unless", "said", "says",
    "then", "once", "after", "before",
}
SENTENCE_END = re.compile(r"""[.!?]["'”’)]*\s*$|^\s*$|\n\s*$""")
WORD = re.compile(r"[\w']+|[^\w\s]")  # words as the pronoun rules read them (an apostrophe stays inside)
_PRONOUN_RE = re.compile(r"\b(he|him|his|she|her|it|its|they|them|their)\b", re.IGNORECASE)


def words_before(text: str, pos: int, n: int = 2) -> list[str]:
    """The last ``n`` words before ``pos`` (within 80 characters)."""
    return WORD.findall(text[max(0, pos - 80):pos])[-n:]


def words_after(text: str, pos: int, n: int = 2) -> list[str]:
    """The first ``n`` words from ``pos`` (within 80 characters)."""
    return WORD.findall(text[pos:pos + 80])[:n]


def pronoun_counts(text: str) -> dict[str, int]:
    """How many pronouns of each gender (m, f, n, p) ``text`` holds."""
    counts = {"m": 0, "f": 0, "n": 0, "p": 0}
    for m in _PRONOUN_RE.finditer(text):
        counts[PRONOUNS[m.group(1).lower()].gender] += 1
    return counts


def pronoun_gender(text: str, start: int, end: int, plural: bool | None = None, entity: str = "") -> str:
    """m, f, n or p for the representative ``text[start:end]``.

    ``plural`` (the verb agreement of the slot) and ``entity`` (spaCy's entity
    label of the slot) come from :func:`parse_slot` when available.
    """
    rep = text[start:end].strip()
    low = re.sub(r"(?:'s|’s|')$", "", rep.lower()).strip()
    words = [w.strip(".").lower() for w in low.split() if w.strip(".")]
    if low in PRONOUNS:
        return PRONOUNS[low].gender
    if " and " in f" {low} " or "," in low and " and " in low:
        return "p"
    if words and words[0] in MALE_WORDS:
        return "m"
    if words and words[0] in FEMALE_WORDS:
        return "f"
    if plural:
        return "p"
    if entity in ("ORG", "GPE", "LOC", "FAC", "PRODUCT", "WORK_OF_ART", "LAW", "EVENT"):
        return "n"
    if entity == "NORP":
        return "p" if low.endswith("s") else "n"
    if words and (words[-1] in ORG_WORDS or any(w in ORG_WORDS for w in words)):
        return "n"
    if words and words[0] == "the":
        last = words[-1]
        if last.endswith("s") and not last.endswith("ss") and rep.split()[-1].islower():
            return "p"
        return "n"
    # Otherwise let the pronouns around the slot decide between a person and a thing.
    counts = pronoun_counts(text[max(0, start - 400):start] + " " + text[end:end + 400])
    is_name = all(w[:1].isupper() for w in rep.split() if w[:1].isalpha())
    if is_name and len(rep.split()) >= 2 and counts["m"] == counts["f"] == 0:
        counts["m"] += 0.5  # two capitalised words and no pronoun evidence: most often a person's name
    if words and words[0] in PERSON_TITLES or entity == "PERSON":
        counts["n"] = counts["p"] = 0
        if counts["m"] == counts["f"] == 0:
            return "m"
    best = max(counts, key=lambda g: (counts[g], g == "n"))
    return best if counts[best] else "n"


PARSE_CASE = {
    "nsubj": "subj", "nsubjpass": "subj", "csubj": "subj", "expl": "subj",
    "dobj": "obj", "pobj": "obj", "dative": "obj", "obj": "obj", "iobj": "obj", "agent": "obj",
    "poss": "poss", "compound": "poss", "nmod": "poss",
}


_SLOTS: dict[tuple[str, int, int], tuple] = {}  # parse_slot's answers, oldest first
_SLOTS_KEPT = 65536


def _window(text: str, start: int, end: int) -> tuple[int, int]:
    """The neighbourhood of a slot that spaCy parses: 200 characters either side."""
    return max(0, start - 200), min(len(text), end + 200)


def _remember(key: tuple[str, int, int], value: tuple) -> tuple:
    if len(_SLOTS) >= _SLOTS_KEPT:
        del _SLOTS[next(iter(_SLOTS))]
    _SLOTS[key] = value
    return value


def parse_slot(text: str, start: int, end: int):
    """spaCy's view of the slot: (case or None, plural verb agreement or None, entity label or "").

    Remembered: evaluation asks for the same slots once per system (the model's spans with the rules and with
    the heads, the gold spans with each), and the span heads again for their features;
    :func:`prefetch_slots` parses many at once.
    """
    key = (text, start, end)
    known = _SLOTS.get(key)
    if known is not None:
        return known
    lo, hi = _window(text, start, end)
    return _remember(key, _read_slot(load_nlp()(text[lo:hi]), start - lo, end - lo))


def prefetch_slots(slots, batch_size: int = 64) -> None:
    """Parse the slots ``(text, start, end)`` that :func:`parse_slot` has not read yet, in batches
    (spaCy's ``nlp.pipe``: the same parses as one at a time, in about two thirds of the time); evaluation
    knows every slot it will ask about before it restores anything."""
    todo = [k for k in dict.fromkeys(slots) if k not in _SLOTS]
    windows = [_window(*k) for k in todo]
    docs = load_nlp().pipe((k[0][lo:hi] for k, (lo, hi) in zip(todo, windows)), batch_size=batch_size)
    for (text, start, end), (lo, _), doc in zip(todo, windows, docs):
        _remember((text, start, end), _read_slot(doc, start - lo, end - lo))


def _read_slot(doc, start: int, end: int) -> tuple:
    """(case, plural, entity label) of the characters ``start:end`` of ``doc``."""
    span = doc.char_span(start, end, alignment_mode="expand")
    if span is None or len(span) == 0:
        return None, None, ""
    root = span.root
    case = PARSE_CASE.get(root.dep_)
    if case == "poss" and root.dep_ in ("compound", "nmod") and not (root.head.i > root.i and root.head.pos_ in ("NOUN", "PROPN", "NUM")):
        case = None
    plural = None
    if root.dep_ in ("nsubj", "nsubjpass"):
        verb = root.head
        aux = [c for c in verb.children if c.dep_ in ("aux", "auxpass") and c.i > root.i] or [verb]
        tag = aux[0].tag_
        plural = True if tag == "VBP" or aux[0].lower_ in ("are", "were", "have") else False if tag == "VBZ" or aux[0].lower_ in ("is", "was", "has") else None
    labels = [t.ent_type_ for t in span if t.ent_type_]
    return case, plural, (labels[-1] if labels else "")


def pronoun_case(text: str, start: int, end: int, parsed_case: str | None = None) -> str:
    """subj, obj or poss for the slot ``text[start:end]``: the parser's reading, else word rules."""
    rep = text[start:end].rstrip()
    if rep.endswith(("'s", "’s", "s'")):
        return "poss"
    return parsed_case or case_by_rules(text, start, end)


def case_by_rules(text: str, start: int, end: int) -> str:
    before = [w.lower() for w in words_before(text, start)]
    after = [w.lower() for w in words_after(text, end)]
    prev = before[-1] if before else ""
    nxt = after[0] if after else ""
    if prev in PREPOSITIONS:
        return "obj"
    if nxt in SUBJECT_VERBS or (nxt.endswith("ed") and len(nxt) > 3):
        return "subj"
    if prev in OBJECT_VERBS or (prev.endswith("ed") and len(prev) > 3 and prev not in SUBJECT_VERBS):
        return "obj"
    if nxt.isalpha() and nxt.islower() and nxt not in PREPOSITIONS and nxt not in ("and", "or", "but", "who", "which", "that"):
        if prev in CLAUSE_OPENERS:
            return "subj"
        if prev and prev.isalpha() and prev.islower():
            return "poss"
        return "subj" if nxt.endswith(("s", "ed")) else "poss"
    return "subj"


def at_sentence_start(text: str, pos: int) -> bool:
    return bool(SENTENCE_END.search(text[max(0, pos - 6):pos]))


def choose_pronoun(text: str, start: int, end: int) -> str:
    """The pronoun that best replaces the representative at ``text[start:end]``."""
    case, plural, entity = parse_slot(text, start, end)
    p = pronoun_for(pronoun_gender(text, start, end, plural, entity), pronoun_case(text, start, end, case))
    return p.capitalize() if at_sentence_start(text, start) else p
