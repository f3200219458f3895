"""Words, IOB2 tags and character spans, and the conversions between them.

Words are runs of letters/digits or single punctuation marks, with their
character offsets in the text. Splitting punctuation off (rather than using
bare whitespace words) keeps a span boundary exact in raw prose: in
``said Ana.`` the inserted ``Ana`` is a word of its own, and deleting it keeps
the full stop.
"""

from __future__ import annotations

import math
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


DECODINGS = ("viterbi", "independent")


def check_decoding(decoding: str) -> str:
    """``decoding`` if it is one of :data:`DECODINGS`, else a ValueError naming them."""
    if decoding not in DECODINGS:
        raise ValueError(f"unknown decoding {decoding!r} (use {', '.join(DECODINGS)})")
    return decoding


def viterbi_tags(probs, o_bias: float = 0.0, split_penalty: float = 0.0) -> list[str]:
    """The most probable valid IOB2 tag sequence under per-word tag probabilities.

    ``probs`` is an ``(n_words, len(TAGS))`` array of per-word probabilities.
    Each word's tags are scored by their log-probability, with ``o_bias``
    added to ``O`` (positive: fewer, surer spans), and the best path is the
    one that never puts ``I-X`` after anything but ``B-X`` or ``I-X``. Deciding
    word by word instead lets a weak ``I-DUP`` open a span on its own or cut
    a name in two; the path decides the span as a whole. ``split_penalty``
    is subtracted where a span starts right after another one (``B-X`` after
    a non-``O`` tag): positive values prefer one long span to two adjacent ones.
    """
    rows = probs.tolist() if hasattr(probs, "tolist") else [list(r) for r in probs]
    if not rows:
        return []
    o = TAG2ID["O"]
    # I-X may only follow B-X or I-X; every other tag may follow any tag
    inside = {TAG2ID["I-" + lab]: (TAG2ID["B-" + lab], TAG2ID["I-" + lab]) for lab in LABELS}
    n_tags = len(TAGS)
    begins = [TAG2ID["B-" + lab] for lab in LABELS]

    def logs(row):
        out = [math.log(max(x, 1e-12)) for x in row]
        out[o] += o_bias
        return out

    score = logs(rows[0])
    for i in inside:
        score[i] = -math.inf  # no I- at the start
    back = []
    for row in rows[1:]:
        lp = logs(row)
        best_prev = max(range(n_tags), key=score.__getitem__)
        ptr = [best_prev] * n_tags
        add = [0.0] * n_tags
        for i, (b, c) in inside.items():
            ptr[i] = b if score[b] >= score[c] else c
        if split_penalty and best_prev != o:  # a new span after a span pays the penalty; after O it may be cheaper
            after_o = score[best_prev] - split_penalty < score[o]
            for j in begins:
                if after_o:
                    ptr[j] = o
                else:
                    add[j] = -split_penalty
        score = [score[ptr[j]] + lp[j] + add[j] for j in range(n_tags)]
        back.append(ptr)
    k = max(range(n_tags), key=score.__getitem__)
    path = [k]
    for ptr in reversed(back):
        k = ptr[k]
        path.append(k)
    return [ID2TAG[i] for i in reversed(path)]


def threshold_bias(threshold: float | None) -> float:
    """The log-odds added to ``O`` that makes :func:`viterbi_tags` demand ``threshold``.

    A word alone is flagged when P(inserted) >= threshold, i.e. when
    log P(O) + log(threshold / (1 - threshold)) falls below the log-probability
    of being inserted; ``None`` (no threshold) adds nothing, 1 or more keeps
    every word ``O`` and 0 or less flags every word.
    """
    if threshold is None:
        return 0.0
    if threshold >= 1.0:
        return math.inf
    if threshold <= 0.0:
        return -math.inf
    return math.log(threshold / (1.0 - threshold))


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
