"""A rule-based detector: what a careful engineer writes in an afternoon.

It knows no model, only three regularities of the damage:

1. *adjacent repeated mentions*: a run of capitalised words that splits into
   two mentions both seen elsewhere in the article ("Mr. Okafor Mr. Okafor",
   "Ms. Lopez Mr. Okafor"): the second is a copy (DUP);
2. *a mention where the grammar breaks*: a known name right after an article or
   possessive ("a Ms. Lopez", "his Ghana"): a copy (DUP); a long name (4+
   words) repeated in full: a substituted representative (SUB);
3. *a trailing run of mentions* after the last sentence: overflow copies (DUP).

It is the yardstick the model must beat, so it is kept honest: no rule was
fitted to the test split.
"""

from __future__ import annotations

from ..lexicon import BASELINE_TITLES as TITLES
from ..words import split_words
STOP_CAPS = {
    "the", "a", "an", "but", "and", "in", "on", "at", "it", "he", "she", "they", "we", "i", "this", "that",
    "however", "meanwhile", "if", "when", "while", "as", "for", "last", "mr", "its", "his", "her", "their",
    "there", "after", "before", "also", "so", "with", "from", "by", "of", "to", "what", "some", "many",
}
BREAK_BEFORE = {"a", "an", "his", "her", "its", "their", "my", "our", "your", "this", "these", "those"}
SENTENCE_END = {".", "!", "?"}


def _runs(words: list[str]) -> list[tuple[int, int]]:
    """Maximal runs of capitalised words (titles with their full stop, a leading "the")."""
    runs = []
    i, n = 0, len(words)
    while i < n:
        w = words[i]
        if w[:1].isupper() and w.lower() not in STOP_CAPS or w.lower() in TITLES and w[:1].isupper():
            j = i
            while j < n:
                x = words[j]
                if x[:1].isupper() and (x.lower() not in STOP_CAPS or x.lower() in TITLES or j == i):
                    j += 1
                elif x == "." and j > i and (len(words[j - 1]) == 1 or words[j - 1].lower() in TITLES) and j + 1 < n and words[j + 1][:1].isupper():
                    j += 1
                else:
                    break
            start = i - 1 if i > 0 and words[i - 1].lower() == "the" else i
            runs.append((start, j))
            i = j
        else:
            i += 1
    return runs


def _norm(words: list[str]) -> str:
    return " ".join(w.lower() for w in words)


def rule_tags(text: str) -> tuple[list[tuple[int, int]], list[str]]:
    """Word offsets of ``text`` and the baseline's IOB2 tag for each."""
    offsets, words = split_words(text)
    tags = ["O"] * len(words)
    runs = _runs(words)
    counts: dict[str, int] = {}
    for a, b in runs:
        key = _norm(words[a:b])
        counts[key] = counts.get(key, 0) + 1
    known = {k for k, c in counts.items() if c >= 2 or len(k.split()) >= 2}

    def mark(a, b, label):
        if all(t == "O" for t in tags[a:b]):
            tags[a] = "B-" + label
            for k in range(a + 1, b):
                tags[k] = "I-" + label

    # 3. trailing run of mentions after the last sentence
    def ends_sentence(i):
        # a full stop after a title or an initial ("Mr.", "V.") ends no sentence
        return words[i] in SENTENCE_END and not (
            words[i] == "." and i > 0 and (words[i - 1].lower() in TITLES or len(words[i - 1]) == 1 and words[i - 1].isupper()))

    last_end = max((i for i in range(len(words)) if ends_sentence(i)), default=-1)
    tail_start = last_end + 1
    while tail_start < len(words) and words[tail_start] in ('"', "'", "”", "’", ")"):
        tail_start += 1
    if 0 <= last_end < len(words) - 1:
        tail_runs = [(a, b) for a, b in runs if a >= tail_start]
        covered = sum(b - a for a, b in tail_runs)
        if tail_runs and covered == len(words) - tail_start:
            for a, b in tail_runs:
                mark(a, b, "DUP")

    seen: dict[str, int] = {}
    for a, b in runs:
        key = _norm(words[a:b])
        seen[key] = seen.get(key, 0) + 1
        # 1. adjacent repeated mentions inside one run
        split = None
        for k in range(a + 1, b):
            left, right = _norm(words[a:k]), _norm(words[k:b])
            if left == right or (right in known and left in known):
                split = k
                break
        if split is not None:
            mark(split, b, "DUP")
            continue
        # 2. a known name right after an article or possessive
        if a > 0 and words[a - 1].lower() in BREAK_BEFORE and key in known and words[a].lower() != "the":
            mark(a, b, "DUP")
            continue
        if len(key.split()) >= 4 and seen[key] >= 2:
            mark(a, b, "SUB")
    return offsets, tags
