"""Words, IOB2 tags and character spans, and the conversions between them.

Words are runs of letters/digits or single punctuation marks, with their
character offsets in the text. Splitting punctuation off (rather than using
bare whitespace words) keeps a span boundary exact in raw prose: in
``said Ana.`` the inserted ``Ana`` is a word of its own, and deleting it keeps
the full stop.
"""

from __future__ import annotations

import re

LABELS = ("SUB", "DUP")
TAGS = ("O", "B-SUB", "I-SUB", "B-DUP", "I-DUP")
TAG2ID = {t: i for i, t in enumerate(TAGS)}
ID2TAG = dict(enumerate(TAGS))

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)

# Titles abbreviated with a full stop in US style ("Mr. Putin"): the stop is a word of its own here.
TITLE_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "St", "Gen", "Sen", "Gov", "Prof", "Rev")


def word_offsets(text: str) -> list[tuple[int, int]]:
    """Character ``(start, end)`` of each word of ``text``."""
    return [(m.start(), m.end()) for m in _WORD.finditer(text)]


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


def tags_to_spans(
    words: list[tuple[int, int]], tags: list[str], scores: list[float] | None = None
) -> list[dict]:
    """Character spans of the IOB2 chunks of ``tags`` (seqeval's chunking rules).

    A stray ``I-X`` opens a chunk as seqeval does in its default (non-strict)
    mode. With ``scores``, each span gets the mean score of its words.
    """
    spans: list[dict] = []
    cur = None
    for i, tag in enumerate(tags):
        prefix, _, label = tag.partition("-")
        if cur is not None and (prefix != "I" or label != cur["label"]):
            spans.append(cur)
            cur = None
        if prefix in ("B", "I") and cur is None:
            cur = {"start": words[i][0], "end": words[i][1], "label": label, "_scores": []}
        if cur is not None:
            cur["end"] = words[i][1]
            if scores is not None:
                cur["_scores"].append(scores[i])
    if cur is not None:
        spans.append(cur)
    for s in spans:
        sc = s.pop("_scores")
        if scores is not None:
            s["score"] = sum(sc) / len(sc)
    return spans


def keep_titles(words: list[str], tags: list[str]) -> list[str]:
    """Tags where an abbreviated title stays with its name ("Mr" "." "Putin").

    No span starts at the title's full stop (the title joins it: representatives
    carry their titles), and no span ends there when the next word starts one
    of the same label (the two join): the one boundary fix worth a rule, since
    the word split makes the stop look like the end of a sentence.
    """
    out = list(tags)
    for i in range(1, len(out)):
        if words[i] != "." or words[i - 1] not in TITLE_ABBREVIATIONS or out[i] == "O":
            continue
        label = out[i][2:]
        if out[i - 1] == "O":
            out[i - 1], out[i] = "B-" + label, "I-" + label
        if i + 1 < len(out) and out[i + 1] == "B-" + label:
            out[i + 1] = "I-" + label
    return out
