"""Damage clean news the way a broken coreference-substitution pass does.

The mechanism follows ``CORRUPTION.md``: a resolver finds clusters of mentions
and rewrites each chosen mention with its cluster's representative, but the
rewrite applies the resolver's token indices to a *different* token list of
the same text. Every disagreement between the two tokenizations before a
mention (a space run left by a dropped word, a punctuation token split
differently, ...) shifts the rewrite one token to the right: the drift. A
rewrite with drift 0 is an aligned substitution (``SUB``); with drift k > 0 the
copy lands k tokens right of its mention, puts the representative on the first
token of the shifted range and blanks the rest (a misplaced copy, ``DUP``);
one whose shifted index falls past the end is appended after the text (an
overflow copy, also ``DUP``).

Every damaged document comes with its gold spans, so that putting each span's
``overwritten`` text back in place of ``text[start:end]`` gives ``original``
exactly.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from ..lexicon import PRONOUNS, TITLE_ABBREVIATIONS, TITLE_WORDS, pronoun_for
from ..nlp import load_nlp
from ..words import spans_to_tags, word_offsets
from .mentions import Cluster, Mention, find_clusters
from .settings import Profile, SimulatorSettings, draw_profile

DATELINES = ["LONDON", "MOSCOW", "WASHINGTON", "PARIS", "BRUSSELS", "NEW YORK", "BERLIN", "TOKYO", "EDINBURGH"]


@dataclass
class Tok:
    text: str
    ws: str  # whitespace that follows the token
    dropped: bool = False  # a word the cleaning step dropped (text == "")
    space: bool = False  # a paragraph break token (raw prose)
    pos: str = ""


@dataclass
class Edit:
    start: int  # first token overwritten
    end: int  # one past the last token overwritten
    insert: str
    label: str  # "SUB" or "DUP"
    replacement: str = ""  # the readable text for the span: the original mention of a SUB
    glued: str = ""  # a second copy glued right after the insert (DUP)
    drift: int = 0  # how many tokens right of its mention the rewrite landed


@dataclass
class Damaged:
    id: str
    original: str
    text: str
    spans: list[dict]
    profile: str
    style: str

    def to_record(self) -> dict:
        words = word_offsets(self.text)
        return {
            "id": self.id,
            "original": self.original,
            "text": self.text,
            "spans": self.spans,
            "words": [self.text[s:e] for s, e in words],
            "tags": spans_to_tags(words, self.spans),
            "profile": self.profile,
            "style": self.style,
        }


def stable_rng(*parts) -> random.Random:
    """A ``random.Random`` seeded from a stable hash of ``parts`` (not Python's salted hash)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


class Simulator:
    """Turns clean articles into damaged ones with gold labels; deterministic per seed."""

    def __init__(self, settings: SimulatorSettings | None = None, nlp=None):
        self.settings = settings or SimulatorSettings()
        self._nlp = nlp

    @property
    def nlp(self):
        if self._nlp is None:
            self._nlp = load_nlp()
        return self._nlp

    def damage(self, article_id: str, text: str, sample: int = 0, doc=None, dateline: str | None = None) -> Damaged:
        """One damaged copy of ``text`` (``sample`` numbers the copies of an article).

        ``doc``: spaCy's parse of ``text``, if already made. ``dateline``: the
        article's own dateline, if its corpus keeps one apart ("WASHINGTON
        (Reuters) -"); an article drawn to open with a dateline gets it rather
        than a made-up one, and a representative may swallow it.
        """
        rng = stable_rng(self.settings.seed, article_id, sample)
        names = list(self.settings.mixture)
        profile_name = rng.choices(names, weights=[self.settings.mixture[n] for n in names])[0]
        profile = draw_profile(self.settings.profiles[profile_name], self.settings.ranges.get(profile_name, {}),
                               stable_rng(self.settings.seed, article_id, sample, "ranges"))
        style = "tokenized" if rng.random() < profile.surface.tokenized else "raw"
        if text.strip() and rng.random() < profile.surface.dateline:
            dateline = _dateline_opening(dateline.strip()) if dateline and dateline.strip() else rng.choice(DATELINES) + " — "
        else:
            dateline = None
        if doc is None:
            doc = self.nlp(text)
        if dateline is not None:  # parse the dateline alone and join: the article's parse is reused
            from spacy.tokens import Doc

            doc = Doc.from_docs([self.nlp(dateline), doc], exclude=["tensor"])  # a cached parse keeps no tensor
        toks = _surface_tokens(doc, style, profile, rng)
        if stable_rng(self.settings.seed, article_id, sample, "title-periods").random() < profile.surface.title_periods:
            _add_title_periods(toks)
        original = _render(toks)
        finder = stable_rng(self.settings.seed, article_id, sample, "mentions")
        clusters = [_clean_cluster(c, toks) for c in find_clusters(doc, profile.mentions, finder)]
        clusters = [c for c in clusters if c.mentions]
        edits, tail = _plan(toks, clusters, profile, style, rng, dateline is not None)
        damaged, spans = _apply(toks, edits, tail)
        suffix = f"#{sample}" if sample else ""
        return Damaged(article_id + suffix, original, damaged, spans, profile_name, style)


def _dateline_opening(dateline: str) -> str:
    """An article's own dateline as the text that opens it: "WASHINGTON —" + " ", "(CNN)" + " "."""
    return dateline + " " if dateline.endswith(("-", "–", "—", ")", ":")) else dateline + " — "


# ---------------------------------------------------------------------------
# surface style


def _surface_tokens(doc, style: str, profile: Profile, rng: random.Random) -> list[Tok]:
    toks: list[Tok] = []
    if style == "raw":
        for t in doc:
            toks.append(Tok(t.text, t.whitespace_, space=t.is_space, pos=t.pos_))
        return toks
    n = len(doc)
    drop = [False] * n
    for t in doc:
        # a hyphenated compound: word '-' word with no spaces between
        if t.text == "-" and t.i > 0 and t.i + 1 < n and not doc[t.i - 1].whitespace_ and not t.whitespace_:
            if rng.random() < profile.surface.drop_hyphenated:
                drop[t.i - 1] = drop[t.i] = drop[t.i + 1] = True
    for t in doc:
        if t.is_space:
            # kept as an empty token so that indices stay those of spaCy's doc
            if "\n" in t.text and toks:
                toks[-1].ws = "\n"
            toks.append(Tok("", "", space=True))
            continue
        if drop[t.i]:
            toks.append(Tok("", " ", dropped=True))
        else:
            toks.append(Tok(t.text, " ", pos=t.pos_))
    for t in reversed(toks):
        if not t.space:
            t.ws = ""
            break
    return toks


# British news style (the BBC corpus) -> US style (the real damaged text): "Mr Putin" -> "Mr. Putin".
_US_STYLE = {**{t: t + "." for t in TITLE_ABBREVIATIONS}, "US": "U.S."}


def _add_title_periods(toks: list[Tok]) -> None:
    """Give abbreviated titles their US full stop, in place (a separate rng draw decides per article,
    so the rest of the damage is the same with or without it)."""
    for i, t in enumerate(toks):
        if t.text == "US" or (t.text in _US_STYLE and i + 1 < len(toks) and toks[i + 1].text[:1].isupper()):
            t.text = _US_STYLE[t.text]


def _render(toks: list[Tok]) -> str:
    return "".join(t.text + t.ws for t in toks)


def _clean_cluster(cluster: Cluster, toks: list[Tok]) -> Cluster:
    """Drop mentions that lost a word to the cleaning step or span a paragraph break."""
    keep = [
        m for m in cluster.mentions
        if not any(t.dropped or t.space for t in toks[m.start:m.end])
    ]
    return Cluster(cluster.label, keep, cluster.gender)


def _span_text(toks: list[Tok], start: int, end: int) -> str:
    """The surface text of tokens ``start..end-1``, without the last one's whitespace."""
    if end <= start:
        return ""
    return "".join(t.text + t.ws for t in toks[start:end - 1]) + toks[end - 1].text


# ---------------------------------------------------------------------------
# planning the rewrites


def _plan(toks, clusters, profile: Profile, style: str, rng: random.Random, has_dateline: bool):
    """The edits of one article and its overflow tail: the drift, the rewrites, then where each lands."""
    drift = _drift(toks, profile, style, rng)
    rewrites = _rewrites(toks, clusters, profile, rng, has_dateline)
    return _edits(toks, rewrites, drift, profile, rng)


def _drift(toks, profile: Profile, style: str, rng: random.Random) -> list[int]:
    """Per token, how far the applier's index is shifted by the disagreements before it."""
    n = len(toks)
    # drift: the applier's index is shifted by each disagreement before a token
    drift = [0] * (n + 1)
    d = 0
    for i, t in enumerate(toks):
        drift[i] = min(d, profile.drift.max) if profile.drift.enabled else 0
        if t.dropped:
            d += rng.random() < profile.drift.space_run
        elif t.pos == "PUNCT" or (t.text and not t.text[0].isalnum() and not t.space):
            p = profile.drift.punct if style == "tokenized" else (profile.drift.punct_raw if not t.ws or (i and not toks[i - 1].ws) else 0.0)
            d += rng.random() < p
    drift[n] = min(d, profile.drift.max) if profile.drift.enabled else 0
    return drift


def _rewrites(toks, clusters, profile: Profile, rng: random.Random, has_dateline: bool) -> list[tuple]:
    """``(mention, text)`` of each mention the cluster's representative (or a pronoun) overwrites."""
    rewrites = []  # (mention, the text that overwrites it)
    person_reps: list[tuple[int, str]] = []  # (position, representative) of person clusters
    for ci, cl in enumerate(clusters):
        rep_m = _choose_representative(cl, profile, rng)
        rep = _span_text(toks, rep_m.start, rep_m.end)
        if not rep.strip():
            continue
        rep_start = rep_m.start
        if ci == 0 and has_dateline and rep_m.start <= 12 and rng.random() < profile.representative.swallow_dateline:
            rep = _span_text(toks, 0, rep_m.end)
            rep_start = 0
        if rng.random() < profile.representative.overlong:
            rep = _overlong(toks, rep_start, rep_m.end, rep)
        if chance(rng, profile.representative.possessive) and not rep.endswith(("'s", "'")):
            rep = _possessive(rep)
        pronoun_rep = None
        if cl.label == "PERSON" and cl.gender and rng.random() < profile.representative.pronoun:
            pronoun_rep = pronoun_for(cl.gender, "subj")
            pronoun_rep = pronoun_rep.capitalize() if rng.random() < 0.5 else pronoun_rep
        if cl.label == "PERSON":
            person_reps.append((rep_m.start, rep))
        for m in cl.mentions:
            p = {
                "pronoun": profile.replace.pronoun,
                "name": profile.replace.name,
                "nominal": profile.replace.nominal,
            }[m.kind]
            if m is rep_m:
                p = profile.replace.representative
            if rng.random() >= p:
                continue
            text = rep
            if pronoun_rep is not None:
                if m.kind != "pronoun":
                    continue
                text = pronoun_rep
            elif m.kind == "pronoun" and PRONOUNS[m.text.lower()].number == "plural":
                earlier = [r for pos, r in person_reps if pos < m.start]
                if len(earlier) >= 2 and rng.random() < profile.representative.split_antecedent:
                    text = f"{earlier[-2]} and {earlier[-1]}"
            if m.kind == "pronoun" and PRONOUNS[m.text.lower()].case == "poss" and rng.random() < profile.variants.possessive_s:
                text = _possessive(text)
            rewrites.append((m, text))
    return rewrites


def _edits(toks, rewrites: list[tuple], drift: list[int], profile: Profile, rng: random.Random):
    """Where each rewrite lands (drifted, maybe at a wrong position) as edits, and the overflow tail."""
    n = len(toks)
    rewrites.sort(key=lambda r: r[0].start)
    edits: list[Edit] = []
    tail: list[str] = []
    used = [False] * n
    # the overflow tail: the last rewrites of a long article fall past the end
    n_words = sum(1 for t in toks if t.text.strip())
    n_tail = 0
    if rewrites and n_words >= profile.tail.min_words and rng.random() < profile.tail.prob:
        n_tail = min(len(rewrites), rng.randint(profile.tail.min_mentions, profile.tail.max_mentions))
    left = chance(rng, profile.drift.left)
    for k, (m, text) in enumerate(rewrites):
        if k >= len(rewrites) - n_tail:
            tail.append(text)
            continue
        width = m.end - m.start
        shift = -drift[m.start] if left else drift[m.start]
        if profile.variants.wrong_position and rng.random() < profile.variants.wrong_position:
            verbs = [j for j in range(m.end, min(n, m.end + 4)) if toks[j].pos in ("VERB", "AUX")]
            if verbs:
                shift = verbs[0] - m.start
                width = 1
        if shift and chance(rng, profile.variants.rep_width):
            width = max(1, len(text.split()))
        a, b = m.start + shift, m.start + shift + width
        if a >= n:
            tail.append(text)
            continue
        if a < 0:
            continue
        b = min(b, n)
        if shift and chance(rng, profile.variants.insert) and (a == 0 or toks[a - 1].ws) and not toks[a].space:
            b = a  # inserted before the slot: nothing overwritten
        if any(used[a:max(b, a + 1)]) or any(toks[j].space for j in range(a, b)):
            continue
        if chance(rng, profile.variants.recase):
            text = _recased(toks, a, text)
        original_span = _span_text(toks, a, b)
        if shift == 0:
            if original_span == text:
                continue  # a rewrite with itself changes nothing
            edit = Edit(a, b, text, "SUB", replacement=original_span)
            if profile.variants.glued_double and rng.random() < profile.variants.glued_double:
                edit.glued = text
        else:
            edit = Edit(a, b, text, "DUP", drift=shift)
        for j in range(a, max(b, a + 1)):
            used[j] = True
        edits.append(edit)
    return edits, tail


def chance(rng: random.Random, p: float) -> bool:
    """``rng.random() < p``, drawing nothing when ``p`` is 0: a knob left at 0 keeps the rest of the damage as it was."""
    return p > 0 and rng.random() < p


def _choose_representative(cl: Cluster, profile: Profile, rng: random.Random) -> Mention:
    """The cluster's longest name, its shortest (a bare surname, country or party), the longest name's last
    word or title alone, or its first mention."""
    names = cl.names or [m for m in cl.mentions if m.kind == "nominal"] or cl.mentions
    rep = profile.representative
    r = rng.random()
    longest = max(names, key=lambda m: (len(m.text), -m.start))
    if r < rep.longest:
        return longest
    if r < rep.longest + rep.shortest:
        return min(names, key=lambda m: (len(m.text.split()), len(m.text), m.start))
    if r < rep.longest + rep.shortest + rep.last_word and longest.kind == "name" and longest.end - longest.start > 1:
        return Mention(longest.end - 1, longest.end, "name", longest.text.split()[-1])
    if r < rep.longest + rep.shortest + rep.last_word + rep.title_alone and cl.label == "PERSON" \
            and longest.end - longest.start > 1 and longest.text.split()[0].lower().rstrip(".") in TITLE_WORDS:
        return Mention(longest.start, longest.start + 1, "name", longest.text.split()[0])
    return names[0]


def _possessive(text: str) -> str:
    """``text`` in the possessive: "Ana's", "the Smiths'"."""
    return text + ("'s" if not text.endswith("s") else "'")


def _recased(toks: list[Tok], a: int, text: str) -> str:
    """``text`` with its first letter fitted to slot ``a``: capital at a sentence start, "the" lower-cased inside one."""
    prev = next((t.text for t in reversed(toks[:a]) if t.text), "")
    if not prev or prev in (".", "!", "?") or prev.endswith((".", "!", "?")) and len(prev) > 1 and prev[-2].islower():
        return text[:1].upper() + text[1:]
    if text.startswith("The "):
        return "the " + text[4:]
    return text


def _overlong(toks: list[Tok], start: int, end: int, rep: str) -> str:
    """A representative that swallowed a bracket, an appositive or a trailing comma."""
    if start > 0 and toks[start - 1].text in ("(", "[", '"'):
        return _span_text(toks, start - 1, end)
    if end < len(toks) and toks[end].text in (",", "("):
        close = "," if toks[end].text == "," else ")"
        for j in range(end + 1, min(len(toks), end + 8)):
            if toks[j].space or toks[j].text in (".", ";"):
                break
            if toks[j].text == close:
                return _span_text(toks, start, j + 1)
        return _span_text(toks, start, end + 1)  # just the trailing comma or bracket
    return rep


# ---------------------------------------------------------------------------
# applying the rewrites


def _apply(toks: list[Tok], edits: list[Edit], tail: list[str]):
    out: list[str] = []
    pos = 0
    spans: list[dict] = []
    by_start = {e.start: e for e in edits}
    i = 0
    n = len(toks)
    while i < n:
        e = by_start.get(i)
        if e is None:
            piece = toks[i].text + toks[i].ws
            out.append(piece)
            pos += len(piece)
            i += 1
            continue
        if e.end == e.start:  # an inserted copy: the copy and a space before token i, which stays
            piece = e.insert + " "
            out.append(piece)
            spans.append({"start": pos, "end": pos + len(piece), "label": e.label,
                          "overwritten": "", "replacement": "", "drift": e.drift})
            pos += len(piece)
            piece = toks[i].text + toks[i].ws
            out.append(piece)
            pos += len(piece)
            i += 1
            continue
        overwritten = _span_text(toks, e.start, e.end)
        out.append(e.insert)
        spans.append({"start": pos, "end": pos + len(e.insert), "label": e.label,
                      "overwritten": overwritten, "replacement": e.replacement, "drift": e.drift})
        pos += len(e.insert)
        if e.glued:
            out.append(e.glued)
            spans.append({"start": pos, "end": pos + len(e.glued), "label": "DUP",
                          "overwritten": "", "replacement": "", "drift": None})
            pos += len(e.glued)
        ws = toks[e.end - 1].ws
        out.append(ws)
        pos += len(ws)
        i = e.end
    for k, text in enumerate(tail):
        piece = ("\n " if k == 0 else " ") + text
        out.append(piece)
        spans.append({"start": pos, "end": pos + len(piece), "label": "DUP",
                      "overwritten": "", "replacement": "", "drift": None})
        pos += len(piece)
    return "".join(out), spans


def undo(text: str, spans: list[dict]) -> str:
    """Put each span's ``overwritten`` text back: the gold inverse of the damage."""
    out = []
    prev = 0
    for s in sorted(spans, key=lambda s: s["start"]):
        out.append(text[prev:s["start"]])
        out.append(s["overwritten"])
        prev = s["end"]
    out.append(text[prev:])
    return "".join(out)
