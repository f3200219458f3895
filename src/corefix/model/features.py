"""What the encoder sees of an article: overlapping token windows with word alignment and extra features.

Alignment choice: each *word* (see :mod:`corefix.words`) is labelled on its
first sub-word token; its other sub-word tokens get label -100 and are ignored
by the loss and at inference. Articles longer than the encoder's window are cut
into overlapping windows (``stride`` tokens of overlap), using the tokenizer's
own overflow and word alignment.

A word tagged :data:`IGNORE` (a pseudo-label too uncertain to learn from,
:mod:`corefix.model.adapt`) is labelled -100 too: the loss skips it. It is
not a class of the model (``TAG2ID`` does not hold it), so it is never
predicted.

Beside the word pieces, each token carries a token type (the encoder's
``token_type_ids``, whose embedding is trained with the rest of the model)
that holds what a window cannot see on its own (:class:`WordFeatures`):

- *case*: the word starts with a capital letter (the default MiniLM is
  uncased and would otherwise not see the strongest surface cue of a name);
- *evidence*: whether the word repeats one seen earlier in the whole
  article, and how far back (:func:`repeat_evidence`). A copy repeats a
  mention the article already holds; a name's first mention never does.
  Computed over the whole article before it is cut into windows, so a window
  deep into a long article still knows what the article said before it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..words import TAG2ID

NEAR = 5  # words back: an adjacent repeat ("Mr. Putin Mr. Putin")
FAR = 50  # words back: the same paragraph or the one before
EVIDENCE_LEVELS = 8  # 4 distances x (continues a repeated phrase or not)
IGNORE = "IGN"  # the tag of a word the loss skips (label -100): never a class of the model, never predicted


def repeat_evidence(words: list[str]) -> list[int]:
    """Per word, what the article said before it: 0..7.

    The low two bits: 0 the word (case-insensitive) has not appeared before
    in the article, 1 it last appeared more than :data:`FAR` words back, 2
    within ``FAR``, 3 within :data:`NEAR`. Plus 4 when the word and the one
    before it repeat a pair of words seen together earlier (a repeated
    phrase, such as the second word of a copied "Mr. Putin").
    """
    last: dict[str, int] = {}
    pairs: set[tuple[str, str]] = set()
    out = []
    prev = None
    for i, word in enumerate(words):
        key = word.lower()
        j = last.get(key)
        level = 0 if j is None else 3 if i - j <= NEAR else 2 if i - j <= FAR else 1
        if prev is not None:
            if (prev, key) in pairs:
                level += 4
            pairs.add((prev, key))
        out.append(level)
        last[key] = i
        prev = key
    return out


@dataclass(frozen=True)
class WordFeatures:
    """Which word features ride on the token types: ``case`` (1 bit), ``evidence`` (:func:`repeat_evidence`)."""

    case: bool = False
    evidence: bool = False

    @property
    def n_types(self) -> int:
        """Token types the encoder needs: case bit + 2 x evidence level."""
        return 2 * EVIDENCE_LEVELS if self.evidence else 2

    def type_ids(self, words: list[str]) -> list[int] | None:
        """The token type of each word of a whole article (None: no features, all type 0)."""
        if not (self.case or self.evidence):
            return None
        levels = repeat_evidence(words) if self.evidence else [0] * len(words)
        return [int(self.case and w[:1].isupper()) + 2 * lv for w, lv in zip(words, levels)]


def encode_words(tokenizer, words: list[str], max_length: int, stride: int, tags: list[str] | None = None,
                 word_types: list[int] | None = None):
    """Overlapping windows of one article's words: a list of feature dicts.

    Each dict has ``input_ids``, ``attention_mask``, ``word_ids`` (None for
    special tokens) and, when ``tags`` are given, ``labels`` (first sub-word of
    each word in the window, -100 elsewhere and on words tagged :data:`IGNORE`).

    With ``word_types`` (one per word, :meth:`WordFeatures.type_ids`),
    ``token_type_ids`` carries each word's type on all its sub-words (0 on
    special tokens).
    """
    if not words:
        return []
    enc = tokenizer(
        words,
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
    )
    out = []
    for w in range(len(enc["input_ids"])):
        word_ids = enc.word_ids(w)
        feat = {"input_ids": enc["input_ids"][w], "attention_mask": enc["attention_mask"][w], "word_ids": word_ids}
        if word_types is not None:
            feat["token_type_ids"] = [0 if wid is None else word_types[wid] for wid in word_ids]
        if tags is not None:
            labels = []
            prev = None
            for wid in word_ids:
                first = wid is not None and wid != prev
                labels.append(TAG2ID[tags[wid]] if first and tags[wid] != IGNORE else -100)
                prev = wid
            feat["labels"] = labels
        out.append(feat)
    return out


def build_features(records: list[dict], tokenizer, max_length: int, stride: int,
                   features: WordFeatures = WordFeatures()) -> list[dict]:
    """Training windows (input_ids, attention_mask, labels[, token_type_ids]) of all records."""
    feats = []
    for r in records:
        types = features.type_ids(r["words"])
        for f in encode_words(tokenizer, r["words"], max_length, stride, tags=r["tags"], word_types=types):
            f.pop("word_ids")
            feats.append(f)
    return feats


def window_dataset(records, tokenizer, max_length: int, stride: int, features: WordFeatures = WordFeatures()):
    """The training windows of a ``datasets.Dataset`` of records (columns ``words``, ``tags``), by ``map``.

    ``datasets`` caches the result beside the records' Arrow files under a
    fingerprint of this function and its arguments, so a rerun with the same
    data, tokenizer and settings reuses it. Adds a ``length`` column (tokens).
    """
    keys = ["input_ids", "attention_mask", "labels"] + (["token_type_ids"] if features.case or features.evidence else [])

    def encode(batch):
        rows = [{"words": w, "tags": t} for w, t in zip(batch["words"], batch["tags"])]
        feats = build_features(rows, tokenizer, max_length, stride, features)
        out = {k: [f[k] for f in feats] for k in keys}
        out["length"] = [len(f["input_ids"]) for f in feats]
        return out

    return records.map(encode, batched=True, batch_size=32, remove_columns=records.column_names, desc="windows")


def length_grouped_order(lengths: list[int], batch_size: int, seed: int) -> list[int]:
    """Shuffle, then sort by length inside chunks of 50 batches: little padding, still random."""
    rng = random.Random(seed)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    chunk = batch_size * 50
    out = []
    for i in range(0, len(idx), chunk):
        out.extend(sorted(idx[i:i + chunk], key=lambda j: -lengths[j]))
    batches = [out[i:i + batch_size] for i in range(0, len(out), batch_size)]
    rng.shuffle(batches)
    return [j for b in batches for j in b]
