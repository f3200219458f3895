"""Find entity mentions and group them into coreference clusters.

This is a deliberately simple, rule-based "resolver" on top of spaCy's NER,
tagger and noun chunks. It does not need to be a good coreference system: it
needs to produce the *kinds* of clusters real resolvers produce (names with
their titles and short forms, places, organisations, nationalities, groups,
their pronouns and nominal mentions), so that the simulator can damage text the
way a broken resolver does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..lexicon import FEMALE_TITLES, MALE_TITLES, PRONOUNS, TITLE_WORDS

ENTITY_LABELS = {"PERSON", "ORG", "GPE", "NORP", "LOC", "FAC"}


# Head nouns of nominal mentions, with the entity kind they refer to.
NOMINAL_HEADS = {
    "firm": "ORG", "company": "ORG", "group": "ORG", "bank": "ORG", "club": "ORG",
    "government": "ORG", "party": "ORG", "team": "ORG", "side": "ORG",
    "band": "ORG", "airline": "ORG", "carrier": "ORG", "giant": "ORG",
    "retailer": "ORG", "broadcaster": "ORG", "organisation": "ORG",
    "country": "GPE", "nation": "GPE", "city": "GPE", "capital": "GPE",
    "minister": "PERSON", "president": "PERSON", "chairman": "PERSON",
    "star": "PERSON", "singer": "PERSON", "actor": "PERSON", "actress": "PERSON",
    "player": "PERSON", "striker": "PERSON", "champion": "PERSON",
    "spokesman": "PERSON", "spokeswoman": "PERSON", "leader": "PERSON",
    "chief": "PERSON", "boss": "PERSON", "coach": "PERSON", "manager": "PERSON",
    "director": "PERSON", "executive": "PERSON", "man": "PERSON", "woman": "PERSON",
}
NON_PERSON = {"ORG", "GPE", "LOC", "FAC"}


@dataclass
class Mention:
    start: int  # token index, inclusive
    end: int  # token index, exclusive
    kind: str  # "name", "nominal" or "pronoun"
    text: str


@dataclass
class Cluster:
    label: str  # PERSON, ORG, GPE, NORP, LOC, FAC or GROUP
    mentions: list[Mention] = field(default_factory=list)
    gender: str | None = None  # "m", "f", or None when unknown

    @property
    def names(self) -> list[Mention]:
        return [m for m in self.mentions if m.kind == "name"]


def _extend_with_titles(doc, start: int) -> int:
    while start > 0 and doc[start - 1].text.lower() in TITLE_WORDS and doc[start - 1].text[:1].isupper():
        start -= 1
    return start


def _person_key(span) -> str:
    words = [t.text.lower() for t in span if t.is_alpha and t.text.lower() not in TITLE_WORDS]
    return words[-1] if words else span.text.lower()


def _other_key(span) -> str:
    words = [t.text.lower() for t in span if not t.is_punct]
    if words and words[0] == "the":
        words = words[1:]
    return " ".join(words)


def find_clusters(doc, window: int = 60) -> list[Cluster]:
    """Group the mentions of a spaCy ``Doc`` into clusters (in document order)."""
    clusters: dict[tuple[str, str], Cluster] = {}
    taken: set[int] = set()
    # (token index, cluster) of every mention so far, for antecedent search
    history: list[tuple[int, Cluster]] = []

    def add(key, label, mention, gender=None):
        cl = clusters.get(key)
        if cl is None:
            cl = clusters[key] = Cluster(label=label)
        cl.mentions.append(mention)
        if gender and cl.gender is None:
            cl.gender = gender
        taken.update(range(mention.start, mention.end))
        history.append((mention.start, cl))

    def antecedent(i: int, want) -> Cluster | None:
        for j, cl in reversed(history):
            if i - j > window:
                return None
            if want(cl):
                return cl
        return None

    ents_by_start = {e.start: e for e in doc.ents if e.label_ in ENTITY_LABELS}
    chunks_by_start = {c.start: c for c in doc.noun_chunks}
    i = 0
    n = len(doc)
    while i < n:
        tok = doc[i]
        ent = ents_by_start.get(i)
        if ent is not None:
            start, end = ent.start, ent.end
            # strip a trailing possessive and leading determiners / punctuation
            while end > start and (doc[end - 1].tag_ == "POS" or doc[end - 1].is_punct):
                end -= 1
            if ent.label_ == "PERSON":
                start = _extend_with_titles(doc, start)
            elif ent.label_ != "NORP" and start > 0 and doc[start - 1].lower_ == "the":
                start -= 1  # resolvers' mentions are noun phrases: "the State Duma"
            if end > start and not taken.intersection(range(start, end)):
                span = doc[start:end]
                title = span[0].text.lower().rstrip(".")
                gender = "m" if title in MALE_TITLES else "f" if title in FEMALE_TITLES else None
                key = (ent.label_, _person_key(span) if ent.label_ == "PERSON" else _other_key(span))
                add(key, ent.label_, Mention(start, end, "name", span.text), gender)
            i = ent.end
            continue
        low = tok.text.lower()
        if low in PRONOUNS and tok.tag_ in {"PRP", "PRP$"}:
            info = PRONOUNS[low]
            if info.number == "plural":
                cl = antecedent(i, lambda c: c.label in {"GROUP", "ORG"})
            elif info.gender == "n":
                cl = antecedent(i, lambda c: c.label in NON_PERSON)
            else:
                g = info.gender
                cl = antecedent(i, lambda c: c.label == "PERSON" and c.gender in (None, g))
            if cl is not None:
                cl.mentions.append(Mention(i, i + 1, "pronoun", tok.text))
                if info.gender in ("m", "f") and cl.gender is None:
                    cl.gender = info.gender
                history.append((i, cl))
                taken.add(i)
            i += 1
            continue
        chunk = chunks_by_start.get(i)
        if chunk is not None and chunk[0].text.lower() == "the" and 2 <= len(chunk) <= 4:
            head = chunk.root
            if head.i == chunk.end - 1 and not taken.intersection(range(chunk.start, chunk.end)):
                head_low = head.text.lower()
                if head.tag_ == "NNS":
                    key = ("GROUP", chunk.text.lower())
                    add(key, "GROUP", Mention(chunk.start, chunk.end, "nominal", chunk.text))
                    i = chunk.end
                    continue
                kind = NOMINAL_HEADS.get(head_low)
                if kind is not None:
                    want = (lambda c: c.label in NON_PERSON) if kind != "PERSON" else (lambda c: c.label == "PERSON")
                    cl = antecedent(chunk.start, want)
                    if cl is not None:
                        cl.mentions.append(Mention(chunk.start, chunk.end, "nominal", chunk.text))
                        history.append((chunk.start, cl))
                        taken.update(range(chunk.start, chunk.end))
                        i = chunk.end
                        continue
        i += 1
    out = [c for c in clusters.values() if len(c.mentions) >= 1]
    out.sort(key=lambda c: c.mentions[0].start)
    for c in out:
        c.mentions.sort(key=lambda m: m.start)
    return out
