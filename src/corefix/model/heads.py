"""Span heads: what to put in place of a detected span.

Detection says *where* the damage is; two small heads say what to put back.
Each reads, for one span, the encoder's last layer (the vectors the tag
classifier reads, kept from the same forward pass by
:func:`corefix.model.inference.predict_words`: no second encoder runs) at the
word before the span, its first and last word, the word after it and its
mean, plus a few surface facts the uncased encoder cannot see or that lie
beyond its window (:func:`surface_features`: titles, capitals, a possessive
``'s``, the pronouns of the neighbourhood and of the article, those after the
other mentions of the same name, the pronoun rules' word-level reading) and,
for a ``SUB``, spaCy's parse of the slot as the pronoun rules read it
(:func:`parse_features`: the one parse restoration made before the heads, so
no slower).

- the **pronoun head**, for a ``SUB``: which pronoun the representative
  replaced (``he``, ``him``, ``his``, ``she``, ``her``, ``it``, ``its``,
  ``they``, ``them``, ``their``). It is trained on the substitutions that
  replaced a pronoun only: one that replaced a name gets a pronoun too, as
  from the rules (keeping the representative there was measured no better:
  a class for it took the place of right pronouns);
- the **gap head**, for a ``DUP``: what the misplaced copy overwrote, one
  class per string of the :data:`GAP_VOCAB` strings copies destroy most in
  the training data (words with their punctuation and spacing: ``the``,
  ``,``, ``said``, ``. The``), :data:`NOTHING` (an overflow or glued copy
  destroyed nothing) or :data:`OTHER` (words were destroyed, but not a string
  the head knows). This is the phrase-vocabulary edit of LaserTagger, on one
  span.

Each head is a one-hidden-layer MLP, trained on the frozen encoder's vectors
of the gold spans of training articles (:mod:`corefix.model.fit_heads`), so
fitting needs no new training of the detector and running costs two small
matrix products per span. Weights: ``heads.safetensors`` beside the model;
classes and the fill threshold: the model card's ``heads``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..lexicon import FEMALE_WORDS, MALE_WORDS, PERSON_TITLES, PRONOUNS
from ..words import word_range
from .pronouns import (OBJECT_VERBS, PREPOSITIONS, SUBJECT_VERBS, WORD, at_sentence_start, case_by_rules, parse_slot,
                      pronoun_case, pronoun_counts, pronoun_gender, words_after, words_before)

HEADS_FILE = "heads.safetensors"
NOTHING = "<nothing>"  # a DUP that destroyed nothing
OTHER = "<other>"  # a DUP that destroyed words the gap head has no class for
PRONOUN_CLASSES = tuple(PRONOUNS)  # he, him, his, she, her, it, its, they, them, their
GAP_VOCAB = 1000  # the most frequent destroyed strings get a class ...
GAP_MIN_COUNT = 3  # ... if seen at least this often
HIDDEN = 256  # width of each head's hidden layer
PARTS = 5  # encoder vectors per span: before, first, last, after, mean
NEIGHBOURHOOD = 400  # characters on each side in which the pronouns are counted
NEVER_FILL = 1.01  # a fill threshold no probability reaches
_GENDERS = ("m", "f", "n", "p")
_CASES = ("subj", "obj", "poss")


def span_vector(vectors: np.ndarray, a: int, b: int) -> np.ndarray:
    """The encoder part of a span's input, words ``a..b-1``: the word before, the first, the last,
    the word after, the mean (zeros where the article ends or the span holds no word)."""
    n, h = vectors.shape
    zero = np.zeros(h, dtype=np.float32)
    inside = [vectors[a], vectors[b - 1], vectors[a:b].astype(np.float32).mean(0)] if b > a else [zero, zero, zero]
    before = vectors[a - 1] if 0 < a <= n else zero
    after = vectors[b] if b < n else zero
    return np.concatenate([before, inside[0], inside[1], after, inside[2]]).astype(np.float32)


_ENTITIES = ("PERSON", "ORG", "GPE", "NORP")


def parse_features(text: str, start: int, end: int) -> np.ndarray:
    """spaCy's reading of the slot ``text[start:end]``, as the pronoun rules use it
    (:func:`~corefix.model.pronouns.parse_slot`): its case, the number its verb agrees with, its
    entity label, and the rules' gender and case with that parse (:data:`N_PARSE` numbers)."""
    case, plural, entity = parse_slot(text, start, end)
    gender = pronoun_gender(text, start, end, plural, entity)
    rule_case = pronoun_case(text, start, end, case)
    return np.array([case == c for c in _CASES] + [case is None, plural is True, plural is False]
                    + [entity == e for e in _ENTITIES] + [entity not in _ENTITIES and bool(entity)]
                    + [gender == g for g in _GENDERS] + [rule_case == c for c in _CASES], dtype=np.float32)


N_PARSE = 3 + 3 + 5 + 4 + 3


def surface_features(text: str, start: int, end: int) -> np.ndarray:
    """What the words around ``text[start:end]`` say on their surface (:data:`N_SURFACE` numbers)."""
    body = text[start:end]
    words = [w.lower() for w in WORD.findall(body) if w[0].isalnum()]
    before, after = words_before(text, start, 1), words_after(text, end, 1)
    prev, nxt = (before[-1] if before else ""), (after[0] if after else "")
    counts = []
    for lo, hi in ((max(0, start - NEIGHBOURHOOD), start), (end, end + NEIGHBOURHOOD), (0, len(text))):
        counts += _pronoun_counts(text[lo:hi])
    # the pronouns that follow the other mentions of the span's last word (its surname, its noun)
    after_mentions = ""
    head = next((w for w in reversed(WORD.findall(body)) if w[0].isalpha() and w[0].isupper()), "")
    if len(head) > 1:
        for m in re.finditer(rf"\b{re.escape(head)}\b", text):
            if not start <= m.start() < end:
                after_mentions += " " + text[m.end():m.end() + 60]
    counts += _pronoun_counts(after_mentions)
    first = words[0] if words else ""
    last = words[-1] if words else ""
    rule_case = case_by_rules(text, start, end)
    rule_gender = pronoun_gender(text, start, end) if words else "n"
    stripped = body.rstrip()
    flags = [
        first in MALE_WORDS, first in FEMALE_WORDS, any(w in PERSON_TITLES for w in words), " and " in f" {body.lower()} ",
        last.endswith("s") and body.split()[-1:] != [] and body.split()[-1][:1].islower(), first == "the",
        last.endswith("s") and not last.endswith(("ss", "'s", "’s")),
        bool(words) and all(w[:1].isupper() for w in body.split() if w[:1].isalpha()),
        stripped.endswith(("'s", "’s", "s'")),
        len(words) == 1, len(words) == 2, len(words) == 3, len(words) >= 4,
        prev.lower() in PREPOSITIONS, prev.lower() in OBJECT_VERBS, nxt.lower() in SUBJECT_VERBS,
        nxt.isalpha() and nxt.islower(), at_sentence_start(text, start), nxt.endswith("ed"), nxt.endswith("s"),
        nxt[:1].isupper(), prev in (".", "!", "?"), prev.lower() in PRONOUNS, not text[end:].strip(),
        "\n" in text[max(0, start - 3):start], bool(nxt) and not nxt[0].isalnum(), bool(words) and prev.lower() == first,
    ]
    return np.array([float(f) for f in flags] + counts + [rule_case == c for c in _CASES]
                    + [rule_gender == g for g in _GENDERS], dtype=np.float32)


def _pronoun_counts(text: str) -> list[float]:
    """log(1 + n) of the pronouns of ``text`` by gender (m, f, n, p)."""
    c = pronoun_counts(text)
    return [math.log1p(c[g]) for g in _GENDERS]


N_SURFACE = len(surface_features("a b c", 2, 3))


def span_input(vectors: np.ndarray, offsets: list[tuple[int, int]], text: str, start: int, end: int,
               label: str = "DUP") -> np.ndarray:
    """The heads' whole input for one span; the parse (:func:`parse_features`, a spaCy parse of the
    neighbourhood, as the pronoun rules make) only for a ``SUB``, zeros for a ``DUP``."""
    parse = parse_features(text, start, end) if label == "SUB" else np.zeros(N_PARSE, dtype=np.float32)
    return np.concatenate([span_vector(vectors, *word_range(offsets, start, end)), surface_features(text, start, end), parse])


class SpanMLP(nn.Module):
    def __init__(self, n_in: int, n_out: int, hidden: int = HIDDEN, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(n_in), nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class SpanHeads:
    """The two heads with their classes and the gap fill threshold (``info``: how they were fitted)."""

    pronoun: SpanMLP
    gap: SpanMLP
    gap_classes: list[str]
    fill_threshold: float = NEVER_FILL
    info: dict = field(default_factory=dict)

    @classmethod
    def new(cls, hidden_size: int, gap_classes: list[str]) -> "SpanHeads":
        n_in = PARTS * hidden_size + N_SURFACE + N_PARSE
        return cls(SpanMLP(n_in, len(PRONOUN_CLASSES)), SpanMLP(n_in, len(gap_classes)), list(gap_classes))

    @torch.inference_mode()
    def probabilities(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(pronoun probabilities, gap probabilities)`` of a batch of span inputs."""
        self.pronoun.eval()
        self.gap.eval()
        t = torch.from_numpy(np.asarray(x, dtype=np.float32))
        return torch.softmax(self.pronoun(t), -1).numpy(), torch.softmax(self.gap(t), -1).numpy()

    def annotate(self, text: str, vectors: np.ndarray | None, offsets: list[tuple[int, int]], spans: list[dict]) -> list[dict]:
        """Copies of ``spans`` with the heads' reading: a ``SUB`` gets ``pronoun`` and ``pronoun_score``; a ``DUP`` gets ``gap``: ``destroyed`` (P(words were
        destroyed here)), ``words`` (the likeliest destroyed string the head knows) and ``score``
        (its probability). Without vectors (an empty article) the spans come back as they are."""
        spans = [dict(s) for s in spans]
        if vectors is None or not spans or len(vectors) == 0:
            return spans
        x = np.stack([span_input(vectors, offsets, text, s["start"], s["end"], s["label"]) for s in spans])
        p_pron, p_gap = self.probabilities(x)
        nothing = self.gap_classes.index(NOTHING)
        known = np.array([c not in (NOTHING, OTHER) for c in self.gap_classes])
        for s, pp, pg in zip(spans, p_pron, p_gap):
            if s["label"] == "SUB":
                k = int(pp.argmax())
                s["pronoun"], s["pronoun_score"] = PRONOUN_CLASSES[k], round(float(pp[k]), 4)
            else:
                k = int(np.where(known, pg, -1.0).argmax())
                s["gap"] = {"destroyed": round(1.0 - float(pg[nothing]), 4), "words": self.gap_classes[k] if known[k] else "",
                            "score": round(float(pg[k]), 4) if known[k] else 0.0}
        return spans

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**{f"pronoun.{k}": v for k, v in self.pronoun.state_dict().items()},
                **{f"gap.{k}": v for k, v in self.gap.state_dict().items()}}

    def card_fields(self) -> dict:
        """What the model card keeps of the heads (the weights go to :data:`HEADS_FILE`)."""
        return {"pronoun_classes": list(PRONOUN_CLASSES), "gap_classes": self.gap_classes,
                "fill_threshold": self.fill_threshold, "surface_features": N_SURFACE + N_PARSE, "info": self.info}

    def save(self, model_dir: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(model_dir) / HEADS_FILE
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(path))
        return path

    @classmethod
    def of_model(cls, model_dir: str | Path, card) -> "SpanHeads | None":
        """The heads the card of ``model_dir`` names, or None when it names none."""
        return cls.load(model_dir, card.heads) if card.heads else None

    @classmethod
    def load(cls, model_dir: str | Path, fields: dict) -> "SpanHeads":
        """The heads of ``model_dir`` from :data:`HEADS_FILE` (safetensors) and the card's ``heads`` fields."""
        from safetensors.torch import load_file

        path = Path(model_dir) / HEADS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: the model card names span heads but their weights are missing")
        if list(fields.get("pronoun_classes", [])) != list(PRONOUN_CLASSES) or fields.get("surface_features") != N_SURFACE + N_PARSE:
            raise ValueError(f"{path}: span heads written by another version of corefix (refit them with corefix fit-heads)")
        state = load_file(str(path))
        n_in = state["pronoun.net.0.weight"].shape[0]
        heads = cls.new((n_in - N_SURFACE - N_PARSE) // PARTS, list(fields["gap_classes"]))
        heads.pronoun.load_state_dict({k[len("pronoun."):]: v for k, v in state.items() if k.startswith("pronoun.")})
        heads.gap.load_state_dict({k[len("gap."):]: v for k, v in state.items() if k.startswith("gap.")})
        heads.fill_threshold = float(fields.get("fill_threshold", NEVER_FILL))
        heads.info = fields.get("info") or {}
        return heads


def annotate_articles(heads: SpanHeads | None, texts: list[str], predictions, spans: list[list[dict]]) -> list[list[dict]]:
    """Each article's ``spans`` read by the span heads (:meth:`SpanHeads.annotate`, on the word vectors
    and offsets of its :class:`~corefix.model.inference.WordPredictions`); unchanged without heads.
    The one annotate path of prediction, evaluation and head fitting."""
    if heads is None:
        return spans
    return [heads.annotate(t, p.vectors, p.offsets, s) for t, p, s in zip(texts, predictions, spans)]
