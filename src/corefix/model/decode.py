"""Decoding: from per-word tag probabilities to IOB2 tags and character spans.

A :class:`DecodePolicy` is the whole decision rule, frozen: how tags are read
off the probabilities (``viterbi``: the most probable valid IOB2 path;
``independent``: word by word), the threshold on P(inserted), the penalty on
two adjacent spans, and the title rule. The model card supplies the policy
chosen on validation data (:mod:`corefix.model.card`); a user may override
any field (:class:`corefix.model.options.InferenceOptions`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..lexicon import TITLE_ABBREVIATIONS
from ..words import ID2TAG, LABELS, TAG2ID, TAGS, chunks, tags_to_spans
from .features import repeat_evidence

DECODINGS = ("viterbi", "independent")


def check_decoding(decoding: str) -> str:
    """``decoding`` if it is one of :data:`DECODINGS`, else a ValueError naming them."""
    if decoding not in DECODINGS:
        raise ValueError(f"unknown decoding {decoding!r} (use {', '.join(DECODINGS)})")
    return decoding


@dataclass(frozen=True)
class DecodePolicy:
    """How word probabilities become tags.

    ``threshold``: a word is inserted when P(inserted) >= threshold (None:
    arg-max word by word, no bias on the Viterbi path). ``split_penalty``:
    log-odds against a span starting right where another ends (Viterbi
    only). ``titles``: an abbreviated title keeps its full stop and its name
    (:func:`keep_titles`). ``first_mention_bias``: log-odds added to ``O`` on
    a capitalised word new to the article (:func:`new_names`): a copy repeats
    a mention the article already holds, and deleting a name's first mention
    destroys the article's lede, so calibration may ask for more evidence there.
    ``article_gate``: an article keeps its spans only if one of its flagged
    words has P(inserted) >= the gate (0: no gate): an article the pass left
    alone must come back untouched, so a few lukewarm flags are dropped
    (:func:`gate_article`). ``gate_density`` (with a gate): it must hold at
    least this many such sure spans per 100 words (and one at least): the
    pass damages an article all through (CORRUPTION.md: 4.2 spans per 100
    words), while an undamaged one draws a false flag or two, whatever its
    length. ``glued_copies`` (Viterbi only): a misplaced copy may start inside
    the last word of a substitution it was glued to (:data:`GLUED_AFTER`).
    """

    decoding: str = "viterbi"
    threshold: float | None = None
    split_penalty: float = 0.0
    titles: bool = True
    first_mention_bias: float = 0.0
    article_gate: float = 0.0
    glued_copies: bool = False
    gate_density: float = 0.0

    def __post_init__(self):
        check_decoding(self.decoding)


# With ``DecodePolicy.glued_copies``, labels whose I- tag may also follow a span of another label: a copy glued
# to the end of a substitution with no space ("the old planthe old plan", CORRUPTION.md) starts inside the word
# that ends the substitution, so the simulator's gold writes "B-SUB I-SUB I-DUP" (318 of the 14,725 spans of
# the US resolvers test set, 39 of 1,977 BBC; none on the seed profile), and seqeval reads the I-DUP as a new
# DUP chunk. The glued start pays ``split_penalty``, as any span starting right after another does.
GLUED_AFTER = {"DUP": ("SUB",)}


def may_precede(label: str, glued: bool = False) -> list[int]:
    """Tag ids an ``I-label`` may follow, in order of preference on a tie: ``B-label``, ``I-label``, then
    (``glued``) the tags of a span it may be glued to (:data:`GLUED_AFTER`)."""
    labels = (label, *GLUED_AFTER.get(label, ())) if glued else (label,)
    return [TAG2ID[f"{p}-{lab}"] for lab in labels for p in ("B", "I")]


def viterbi_tags(probs, o_bias: float = 0.0, split_penalty: float = 0.0, glued: bool = False) -> list[str]:
    """The most probable valid IOB2 tag sequence under per-word tag probabilities.

    ``probs`` is an ``(n_words, len(TAGS))`` array of per-word probabilities.
    Each word's tags are scored by their log-probability, with ``o_bias``
    added to ``O`` (positive: fewer, surer spans), and the best path is the
    one that never puts ``I-X`` after anything but ``B-X`` or ``I-X`` (or, with
    ``glued``, ``I-DUP`` after a substitution it is glued to: :data:`GLUED_AFTER`). Deciding
    word by word instead lets a weak ``I-DUP`` open a span on its own or cut
    a name in two; the path decides the span as a whole. ``split_penalty``
    is subtracted where a span starts right after another one (``B-X`` after
    a non-``O`` tag, or a glued ``I-DUP``): positive values prefer one long
    span to two adjacent ones.
    """
    n_tags = len(TAGS)
    flat = np.maximum(np.asarray(probs, dtype=np.float64).reshape(-1), 1e-12).tolist()
    if not flat:
        return []
    o = TAG2ID["O"]
    # I-X may only follow B-X or I-X (or a span it may be glued to); every other tag may follow any tag
    inside = {TAG2ID["I-" + lab]: may_precede(lab, glued) for lab in LABELS}
    pairs = [(i, allowed[0], allowed[1]) for i, allowed in inside.items()]  # B-X, I-X
    glued_to = [(i, g) for i, allowed in inside.items() for g in allowed[2:]]  # in order of preference
    begins = [TAG2ID["B-" + lab] for lab in LABELS]
    logs = list(map(math.log, flat))  # every word's log-probabilities in one pass
    for w in range(o, len(logs), n_tags):
        logs[w] += o_bias
    rows = [logs[w:w + n_tags] for w in range(0, len(logs), n_tags)]

    score = rows[0]
    for i in inside:
        score[i] = -math.inf  # no I- at the start
    back = []
    for lp in rows[1:]:
        best_prev = score.index(max(score))  # the first index of the best score, as max(range, key) gives
        ptr = [best_prev] * n_tags
        add = [0.0] * n_tags
        for i, b, c in pairs:
            ptr[i] = b if score[b] >= score[c] else c
        for i, g in glued_to:  # a glued copy pays as a new span after a span does; the first on a tie
            if score[g] - split_penalty > score[ptr[i]] + add[i]:
                ptr[i], add[i] = g, -split_penalty
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


def independent_tags(probs: np.ndarray, threshold: float | None) -> list[str]:
    """Word-by-word tags: arg-max (``threshold=None``), or inserted when P(not O) >= threshold, then the likelier label."""
    if threshold is None:
        ids = probs.argmax(-1)
    else:
        inserted = 1.0 - probs[:, TAG2ID["O"]] >= threshold
        best_non_o = probs[:, 1:].argmax(-1) + 1
        ids = np.where(inserted, best_non_o, TAG2ID["O"])
    return [ID2TAG[int(i)] for i in ids]


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


def new_names(words: list[str]) -> np.ndarray:
    """True on each capitalised word that has not appeared earlier in the article (in any case)."""
    levels = repeat_evidence(words)
    return np.array([w[:1].isupper() and lv % 4 == 0 for w, lv in zip(words, levels)], dtype=bool)


def favour_o(probs: np.ndarray, mask: np.ndarray, bias: float) -> np.ndarray:
    """``probs`` with P(O) of the masked words multiplied by e^bias, renormalised.

    Viterbi and word-by-word decoding of the result are the decodings of
    ``probs`` with ``bias`` added to the log-odds of ``O`` on those words.
    """
    out = probs.astype(np.float64, copy=True)
    out[mask, TAG2ID["O"]] *= math.exp(bias)
    return out / out.sum(-1, keepdims=True)


def decode_tags(probs: np.ndarray, words: list[str] | None, policy: DecodePolicy) -> list[str]:
    """IOB2 tags of one article's words under ``policy`` (``words`` for the title rule and the
    first-mention bias; None skips both)."""
    if len(probs) == 0:
        return []
    if policy.first_mention_bias and words is not None:
        probs = favour_o(probs, new_names(words), policy.first_mention_bias)
    if policy.decoding == "viterbi":
        tags = viterbi_tags(probs, threshold_bias(policy.threshold), policy.split_penalty, policy.glued_copies)
    else:
        tags = independent_tags(probs, policy.threshold)
    tags = keep_titles(words, tags) if policy.titles and words is not None else tags
    return article_checks(probs, tags, words, policy)


def article_checks(probs: np.ndarray, tags: list[str], words: list[str] | None, policy: DecodePolicy) -> list[str]:
    """What both decoders do last, on a whole article's tags: the article gate, then :func:`keep_some_text`."""
    return keep_some_text(gate_article(probs, tags, policy.article_gate, policy.gate_density), words)


def span_confidences(probs: np.ndarray, tags: list[str]) -> list[float]:
    """Each flagged span's P(inserted) at its surest word, in the order of the spans."""
    inserted = 1.0 - probs[:, TAG2ID["O"]]
    return [float(inserted[start:end].max()) for _, start, end in chunks(tags)]


def passes_gate(confidences: list[float], n_words: int, gate: float, density: float = 0.0) -> bool:
    """Whether an article whose spans have these ``confidences`` keeps them: some span reaches ``gate`` (0: no
    gate), and with ``density``, at least ``density`` spans per 100 of its ``n_words`` words do."""
    if gate <= 0:
        return True
    sure = sum(c >= gate for c in confidences)
    return sure >= 1 and sure >= density * n_words / 100.0


def gate_article(probs: np.ndarray, tags: list[str], gate: float, density: float = 0.0) -> list[str]:
    """``tags``, or every word ``O`` when the article's flags do not pass the gate (:func:`passes_gate`)."""
    if gate <= 0 or not tags or passes_gate(span_confidences(probs, tags), len(tags), gate, density):
        return tags
    return ["O"] * len(tags)


def keep_some_text(tags: list[str], words: list[str] | None) -> list[str]:
    """``tags``, or every word ``O`` when they flag every word that holds a letter or a digit (every word, without
    ``words``): a copy is pasted into an article's own text, so an article is never restored to nothing (a
    one-word text such as "secret" is left as it is, not deleted)."""
    for i, t in enumerate(tags):  # the first kept word with a letter or digit ends the search (most articles: the first)
        if t == "O" and (words is None or any(c.isalnum() for c in words[i])):
            return tags
    return ["O"] * len(tags)


def viterbi_tags_batch(probs_list: list[np.ndarray], o_bias: float = 0.0,
                       split_penalty: float = 0.0, glued: bool = False) -> list[list[str]]:
    """:func:`viterbi_tags` of many articles at once, the same tags to the bit: one step of numpy work per
    word position for all articles together, instead of one step of Python per word.

    The same float64 arithmetic in the same order (``math.log`` of each probability, first index on a tie),
    so the paths are those of :func:`viterbi_tags`, not merely close to them.
    """
    n_tags = len(TAGS)
    lengths = np.array([len(p) for p in probs_list], dtype=np.int64)
    out: list[list[str]] = [[] for _ in probs_list]
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] > 0]  # longest first: the articles still running at a step are a prefix
    if not len(order):
        return out
    lens = lengths[order]
    n_art, longest = len(order), int(lens[0])
    flat = np.maximum(np.concatenate([np.asarray(probs_list[a], dtype=np.float64).reshape(-1) for a in order]), 1e-12)
    logs = np.fromiter(map(math.log, flat.tolist()), dtype=np.float64, count=len(flat))  # as viterbi_tags logs
    lp = np.zeros((n_art, longest, n_tags))
    lp[np.arange(longest)[None, :] < lens[:, None]] = logs.reshape(-1, n_tags)
    o = TAG2ID["O"]
    lp[:, :, o] += o_bias
    # as viterbi_tags allows, and which of them pay the split penalty: the glued ones, after B-X and I-X
    inside = [(TAG2ID["I-" + lab], np.array(allowed), (np.arange(len(allowed)) >= 2).astype(np.float64))
              for lab in LABELS for allowed in [may_precede(lab, glued)]]
    begins = [TAG2ID["B-" + lab] for lab in LABELS]
    running = np.searchsorted(-lens, -np.arange(longest), side="left")  # articles longer than each position
    score = lp[:, 0].copy()
    for i, _, _ in inside:
        score[:, i] = -math.inf  # no I- at the start
    back = np.zeros((max(longest - 1, 0), n_art, n_tags), dtype=np.int8)
    for t in range(1, longest):
        m = int(running[t])
        s = score[:m]
        rows = np.arange(m)
        best_prev = s.argmax(1)
        ptr = np.repeat(best_prev[:, None], n_tags, axis=1)
        add = np.zeros((m, n_tags))
        for i, allowed, glued in inside:
            pick = (s[:, allowed] - split_penalty * glued).argmax(1)  # the first of the allowed on a tie
            ptr[:, i] = allowed[pick]
            add[:, i] = -split_penalty * glued[pick]
        if split_penalty:  # a new span after a span pays the penalty; after O it may be cheaper
            after_span = best_prev != o
            after_o = s[rows, best_prev] - split_penalty < s[:, o]
            to_o, pays = after_span & after_o, after_span & ~after_o
            for j in begins:
                ptr[to_o, j] = o
                add[pays, j] = -split_penalty
        score[:m] = s[rows[:, None], ptr] + lp[:m, t] + add
        back[t - 1, :m] = ptr
    k = score.argmax(1)
    path = np.zeros((n_art, longest), dtype=np.int64)
    path[np.arange(n_art), lens - 1] = k
    for t in range(longest - 1, 0, -1):
        m = int(running[t])  # articles with a word at position t
        k[:m] = back[t - 1, np.arange(m), k[:m]]
        path[:m, t - 1] = k[:m]
    for r, a in enumerate(order):
        out[a] = list(map(TAGS.__getitem__, path[r, :lens[r]].tolist()))
    return out


def decode_tags_batch(probs_list: list[np.ndarray], words_list: list[list[str] | None],
                      policy: DecodePolicy) -> list[list[str]]:
    """:func:`decode_tags` of many articles at once (Viterbi by :func:`viterbi_tags_batch`): the same tags."""
    if policy.first_mention_bias:
        probs_list = [favour_o(p, new_names(w), policy.first_mention_bias) if w is not None and len(p) else p
                      for p, w in zip(probs_list, words_list)]
    if policy.decoding == "viterbi":
        tags = viterbi_tags_batch(probs_list, threshold_bias(policy.threshold), policy.split_penalty,
                                  policy.glued_copies)
    else:
        tags = [independent_tags(p, policy.threshold) if len(p) else [] for p in probs_list]
    if policy.titles:
        tags = [keep_titles(w, t) if w is not None else t for w, t in zip(words_list, tags)]
    return [article_checks(p, t, w, policy) for p, t, w in zip(probs_list, tags, words_list)]


def inserted_scores(probs: np.ndarray) -> list[float]:
    """Probability that each word is inserted (1 - P(O))."""
    return (1.0 - probs[:, TAG2ID["O"]]).tolist() if len(probs) else []


def decode_spans(offsets: list[tuple[int, int]], probs: np.ndarray, words: list[str] | None,
                 policy: DecodePolicy) -> list[dict]:
    """Character spans (start, end, label, score rounded to 4 places) of one article under ``policy``."""
    spans = tags_to_spans(offsets, decode_tags(probs, words, policy), inserted_scores(probs))
    for s in spans:
        s["score"] = round(float(s["score"]), 4)
    return spans
