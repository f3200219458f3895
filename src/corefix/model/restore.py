"""Restoration rules, shared by evaluation and prediction.

Given a damaged text and spans labelled ``DUP`` or ``SUB``:

- a ``DUP`` (misplaced or overflowing copy) is deleted, or, by the gap mode
  (:data:`GAP_MODES`), replaced by a visible mark where the gap head says it
  destroyed words, or by the words it destroyed where the head is confident
  (:func:`gap_text`, :mod:`corefix.model.heads`);
- a ``SUB`` (representative put in place of a mention) is replaced by the
  pronoun the pronoun head chose when the span has one, else by the pronoun
  rules (:func:`choose_pronoun`): number and gender from the representative
  and the pronouns of its neighbourhood, case from the words around the slot;
- every character outside the spans is kept, except the whitespace at each
  seam of a deletion, which is tidied so no double space or dangling line is
  left (:func:`apply_spans`).
"""

from __future__ import annotations

from .options import GAP_MODES
from .pronouns import at_sentence_start, choose_pronoun


GAP_MARK = "[…]"  # --gaps mark: where a copy destroyed words
DESTROYED = 0.5  # a copy is a gap when the gap head puts P(words were destroyed) at least this high


def left_gap(span: dict) -> bool:
    """Whether removing ``span`` leaves a gap: a ``DUP`` the gap head says destroyed words
    (P at least :data:`DESTROYED`). The one place this is decided."""
    gap = span.get("gap")
    return span["label"] == "DUP" and bool(gap) and gap["destroyed"] >= DESTROYED


def gap_text(span: dict, gaps: str = "drop", fill_threshold: float | None = None) -> str:
    """What goes in place of a ``DUP``: nothing (``drop``), :data:`GAP_MARK` where it left a gap
    (:func:`left_gap`; ``mark``), or the head's words when their score reaches ``fill_threshold``
    (``fill``; nothing otherwise)."""
    if gaps not in GAP_MODES:
        raise ValueError(f"unknown gap mode {gaps!r} (use {', '.join(GAP_MODES)})")
    gap = span.get("gap")
    if gaps == "drop" or not gap:
        return ""
    if gaps == "mark":
        return GAP_MARK if left_gap(span) else ""
    if fill_threshold is not None and gap["words"] and gap["score"] >= fill_threshold:
        return gap["words"]
    return ""


def replacement_kind(span: dict) -> str:
    """What restoration put in place of a restored span: ``pronoun`` (a ``SUB``), ``mark``
    (:data:`GAP_MARK`), ``fill`` (words filled into a gap) or ``""`` (nothing: the copy was deleted)."""
    if span["label"] == "SUB":
        return "pronoun"
    repl = span.get("replacement", "")
    return "" if not repl else "mark" if repl == GAP_MARK else "fill"


def pronoun_text(text: str, span: dict) -> str:
    """What goes in place of a ``SUB``: the pronoun head's choice when the span has one, else the
    pronoun rules' (:func:`choose_pronoun`); capitalised at the start of a sentence."""
    start, end = span["start"], span["end"]
    choice = span.get("pronoun")
    if choice is None:
        return choose_pronoun(text, start, end)
    return choice.capitalize() if at_sentence_start(text, start) else choice


def with_replacements(text: str, spans: list[dict], gaps: str = "drop", fill_threshold: float | None = None) -> list[dict]:
    """Copies of ``spans`` with a ``replacement``: for a ``SUB`` a pronoun (:func:`pronoun_text`), for a
    ``DUP`` "" or what the gap mode puts there (:func:`gap_text`)."""
    out = []
    for s in spans:
        s = dict(s)
        s["replacement"] = pronoun_text(text, s) if s["label"] == "SUB" else gap_text(s, gaps, fill_threshold)
        out.append(s)
    return out


def apply_spans(text: str, spans: list[dict]) -> str:
    """The restored text: each span replaced by its ``replacement`` ("" deletes).

    Spans must not overlap. Only whitespace touching a deleted span changes:
    at the end of the text the whitespace before the copy goes with it; between
    two whitespace runs the one after it goes; before punctuation in prose the
    space before it goes.
    """
    return apply_spans_at(text, spans)[0]


def apply_spans_at(text: str, spans: list[dict]) -> tuple[str, list[int]]:
    """:func:`apply_spans`, and where each span's replacement starts in the restored text
    (in the order of ``spans``; for a deletion, where the text closed up)."""
    order = sorted(range(len(spans)), key=lambda i: spans[i]["start"])
    for a, b in zip(order, order[1:]):
        if spans[b]["start"] < spans[a]["end"]:
            raise ValueError(f"overlapping spans at {spans[a]['start']}-{spans[a]['end']} and {spans[b]['start']}-{spans[b]['end']}")
    out = text
    placed = []  # (span index, position in the text at the time, length change), last span first
    for i in reversed(order):
        s = spans[i]
        start, end = s["start"], s["end"]
        repl = s.get("replacement", "")
        before = len(out)
        if repl:
            out, at = out[:start] + repl + out[end:], start
            placed.append((i, at, len(out) - before))
            continue
        left = start
        while left > 0 and out[left - 1].isspace():
            left -= 1
        right = end
        while right < len(out) and out[right].isspace():
            right += 1
        if right == len(out) or left == 0:
            # nothing but whitespace after (a tail) or before: drop the seam's spaces on the inner side
            if right == len(out):
                out, at = out[:left] + out[end:], left
            else:
                out, at = out[:start] + out[right:], start
        elif left < start and right > end:
            out, at = out[:start] + out[right:], start
        elif left < start and right == end and out[end] in ",.;:!?)":
            out, at = out[:left] + out[end:], left
        else:
            out, at = out[:start] + out[end:], start
        placed.append((i, at, len(out) - before))
    positions = [0] * len(spans)
    shift = 0  # every later edit sits before this one: its length change moves this one
    # the edits were made last span first, so an edit's final position adds the changes of the edits made after it
    for k in range(len(placed) - 1, -1, -1):
        i, at, delta = placed[k]
        positions[i] = at + shift
        shift += delta
    return out, positions


def restore_text(text: str, spans: list[dict], gaps: str = "drop", fill_threshold: float | None = None) -> tuple[str, list[dict]]:
    """Apply the restoration: ``(restored text, spans with replacements)``; each span also gets ``at``,
    where its replacement starts in the restored text (``gaps``, ``fill_threshold``: :func:`gap_text`)."""
    spans = with_replacements(text, spans, gaps, fill_threshold)
    out, positions = apply_spans_at(text, spans)
    for s, at in zip(spans, positions):
        s["at"] = at
    return out, spans
