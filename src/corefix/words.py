"""Words, IOB2 tags and character spans, and the conversions between them.

Words are runs of letters/digits or single punctuation marks, with their
character offsets in the text. Splitting punctuation off (rather than using
bare whitespace words) keeps a span boundary exact in raw prose: in
``said Ana.`` the inserted ``Ana`` is a word of its own, and deleting it keeps
the full stop.

:func:`chunks` is the one IOB2 chunker of the package: spans, evaluation
breakdowns and restoration all read tags through it.
"""

from __future__ import annotations

import bisect
import re

LABELS = ("SUB", "DUP")
TAGS = ("O", "B-SUB", "I-SUB", "B-DUP", "I-DUP")
TAG2ID = {t: i for i, t in enumerate(TAGS)}
ID2TAG = dict(enumerate(TAGS))

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def word_offsets(text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of each word of ``text``."""
    return [(m.start(), m.end()) for m in _WORD.finditer(text)]


def split_words(text: str) -> tuple[list[tuple[int, int]], list[str]]:
    """``(offsets, words)`` of ``text``."""
    offsets = word_offsets(text)
    return offsets, [text[s:e] for s, e in offsets]


def word_range(words: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """``(a, b)``: the words ``a..b-1`` (``words``: their offsets) that overlap the characters
    ``start..end``; ``a == b`` when none does."""
    a = bisect.bisect_right([e for _, e in words], start)
    b = a
    while b < len(words) and words[b][0] < end:
        b += 1
    return a, b


def spans_to_tags(words: list[tuple[int, int]], spans: list[dict]) -> list[str]:
    """IOB2 tag of each word: a word is inside a span when it overlaps it."""
    tags = ["O"] * len(words)
    spans = sorted(spans, key=lambda s: s["start"])
    k = 0
    for i, (ws, we) in enumerate(words):
        while k < len(spans) and spans[k]["end"] <= ws:
            k += 1
        if k < len(spans) and spans[k]["start"] < we:
            label = spans[k]["label"]
            first = i == 0 or tags[i - 1] == "O" or not _overlaps(words[i - 1], spans[k])
            tags[i] = ("B-" if first else "I-") + label
    return tags


def _overlaps(word: tuple[int, int], span: dict) -> bool:
    return word[0] < span["end"] and span["start"] < word[1]


def chunks(tags: list[str]) -> list[tuple[str, int, int]]:
    """``(label, first word, one past the last word)`` of each IOB2 chunk, in order.

    seqeval's own chunker in its default (non-strict) mode, so spans, scores
    and breakdowns agree with seqeval: a stray ``I-X`` opens a chunk, and
    ``I-Y`` after ``X`` closes ``X`` and opens ``Y``.
    """
    from seqeval.metrics.sequence_labeling import get_entities  # here: seqeval pulls in scikit-learn (slow start-up)

    return [(label, a, b + 1) for label, a, b in get_entities(list(tags))]


def tags_to_spans(
    words: list[tuple[int, int]], tags: list[str], scores: list[float] | None = None
) -> list[dict]:
    """Character spans of the IOB2 chunks of ``tags`` (:func:`chunks`).

    With ``scores``, each span gets the mean score of its words.
    """
    spans = []
    for label, a, b in chunks(tags):
        span = {"start": words[a][0], "end": words[b - 1][1], "label": label}
        if scores is not None:
            span["score"] = sum(scores[a:b]) / (b - a)
        spans.append(span)
    return spans
