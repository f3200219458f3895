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


class _Clusterer:
    """The clusters of one document as its mentions are read in order (:func:`find_clusters`)."""

    def __init__(self, doc, window: int, titles: bool = True, exact_names: bool = False,
                 salient: float = 0.0, rng=None):
        self.doc, self.window = doc, window
        self.titles, self.exact_names, self.salient, self.rng = titles, exact_names, salient, rng
        self.clusters: dict[tuple[str, str], Cluster] = {}
        self.taken: set[int] = set()
        self.history: list[tuple[int, Cluster]] = []  # (token index, cluster) of every mention so far

    def add(self, key, label, mention, gender=None):
        cl = self.clusters.get(key)
        if cl is None:
            cl = self.clusters[key] = Cluster(label=label)
        cl.mentions.append(mention)
        if gender and cl.gender is None:
            cl.gender = gender
        self.taken.update(range(mention.start, mention.end))
        self.history.append((mention.start, cl))

    def antecedent(self, i: int, want) -> Cluster | None:
        if self.salient > 0 and self.rng is not None and self.rng.random() < self.salient:
            return self.most_mentioned(i, want)
        for j, cl in reversed(self.history):
            if i - j > self.window:
                return None
            if want(cl):
                return cl
        return None

    def most_mentioned(self, i: int, want) -> Cluster | None:
        """The fitting cluster mentioned most often within the window (a resolver that prefers the salient entity)."""
        counts: dict[int, tuple[int, Cluster]] = {}
        for j, cl in self.history:
            if i - j <= self.window and want(cl):
                n, _ = counts.get(id(cl), (0, cl))
                counts[id(cl)] = (n + 1, cl)
        return max(counts.values(), key=lambda nc: nc[0])[1] if counts else None

    def attach(self, cl: Cluster, mention: Mention) -> None:
        """``mention`` joins the antecedent's cluster ``cl``."""
        cl.mentions.append(mention)
        self.history.append((mention.start, cl))
        self.taken.update(range(mention.start, mention.end))

    def entity(self, ent) -> int:
        """A named entity's mention; the index after it."""
        doc = self.doc
        start, end = ent.start, ent.end
        # strip a trailing possessive and leading determiners / punctuation
        while end > start and (doc[end - 1].tag_ == "POS" or doc[end - 1].is_punct):
            end -= 1
        if ent.label_ == "PERSON" and self.titles:
            start = _extend_with_titles(doc, start)
        elif ent.label_ != "NORP" and start > 0 and doc[start - 1].lower_ == "the":
            start -= 1  # resolvers' mentions are noun phrases: "the State Duma"
        if end > start and not self.taken.intersection(range(start, end)):
            span = doc[start:end]
            title = span[0].text.lower().rstrip(".")
            gender = "m" if title in MALE_TITLES else "f" if title in FEMALE_TITLES else None
            person = ent.label_ == "PERSON" and not self.exact_names
            key = (ent.label_, _person_key(span) if person else _other_key(span))
            self.add(key, ent.label_, Mention(start, end, "name", span.text), gender)
        return ent.end

    def pronoun(self, i: int, tok) -> None:
        """A pronoun joins the nearest earlier cluster it can stand for."""
        info = PRONOUNS[tok.text.lower()]
        if info.number == "plural":
            cl = self.antecedent(i, lambda c: c.label in {"GROUP", "ORG"})
        elif info.gender == "n":
            cl = self.antecedent(i, lambda c: c.label in NON_PERSON)
        else:
            g = info.gender
            cl = self.antecedent(i, lambda c: c.label == "PERSON" and c.gender in (None, g))
        if cl is not None:
            self.attach(cl, Mention(i, i + 1, "pronoun", tok.text))
            if info.gender in ("m", "f") and cl.gender is None:
                cl.gender = info.gender

    def nominal(self, chunk) -> int | None:
        """A definite noun phrase ("the company", "the ministers") as a mention; the index after it, or None."""
        head = chunk.root
        if head.i != chunk.end - 1 or self.taken.intersection(range(chunk.start, chunk.end)):
            return None
        if head.tag_ == "NNS":
            self.add(("GROUP", chunk.text.lower()), "GROUP", Mention(chunk.start, chunk.end, "nominal", chunk.text))
            return chunk.end
        kind = NOMINAL_HEADS.get(head.text.lower())
        if kind is None:
            return None
        want = (lambda c: c.label in NON_PERSON) if kind != "PERSON" else (lambda c: c.label == "PERSON")
        cl = self.antecedent(chunk.start, want)
        if cl is None:
            return None
        self.attach(cl, Mention(chunk.start, chunk.end, "nominal", chunk.text))
        return chunk.end


def find_clusters(doc, settings=None, rng=None) -> list[Cluster]:
    """Group the mentions of a spaCy ``Doc`` into clusters (in document order).

    ``settings``: a :class:`corefix.data.settings.MentionSettings` (the defaults when None), whose chances
    are drawn with ``rng`` (a ``random.Random``; needed only when a chance lies strictly between 0 and 1).
    """
    from .settings import MentionSettings

    settings = settings or MentionSettings()

    def draw(p: float) -> bool:
        return p >= 1 or (p > 0 and rng.random() < p)

    titles, nominals, exact = draw(settings.titles), draw(settings.nominals), draw(settings.exact_names)
    found = _Clusterer(doc, settings.window, titles=titles, exact_names=exact, salient=settings.salient, rng=rng)
    ents_by_start = {e.start: e for e in doc.ents if e.label_ in ENTITY_LABELS}
    chunks_by_start = {c.start: c for c in doc.noun_chunks}
    i = 0
    n = len(doc)
    while i < n:
        tok = doc[i]
        ent = ents_by_start.get(i)
        if ent is not None:
            i = found.entity(ent)
            continue
        if tok.text.lower() in PRONOUNS and tok.tag_ in {"PRP", "PRP$"}:
            found.pronoun(i, tok)
            i += 1
            continue
        chunk = chunks_by_start.get(i)
        if nominals and chunk is not None and chunk[0].text.lower() == "the" and 2 <= len(chunk) <= 4:
            after = found.nominal(chunk)
            if after is not None:
                i = after
                continue
        i += 1
    out = [c for c in found.clusters.values() if len(c.mentions) >= 1]
    out.sort(key=lambda c: c.mentions[0].start)
    for c in out:
        c.mentions.sort(key=lambda m: m.start)
    return out
