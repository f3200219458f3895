"""What the encoder sees of an article: overlapping token windows with word alignment and extra features.

Alignment choice: each *word* (see :mod:`corefix.words`) is labelled on its
first sub-word token; its other sub-word tokens get label -100 and are ignored
by the loss and at inference. Articles longer than the encoder's window are cut
into overlapping windows (``stride`` tokens of overlap), using the tokenizer's
own overflow and word alignment.
"""

from __future__ import annotations

import random

from ..words import TAG2ID


def encode_words(tokenizer, words: list[str], max_length: int, stride: int, tags: list[str] | None = None,
                 case_feature: bool = False):
    """Overlapping windows of one article's words: a list of feature dicts.

    Each dict has ``input_ids``, ``attention_mask``, ``word_ids`` (None for
    special tokens) and, when ``tags`` are given, ``labels`` (first sub-word of
    each word in the window, -100 elsewhere).

    With ``case_feature``, ``token_type_ids`` is 1 on the sub-words of words
    that start with a capital letter: an uncased encoder (the default MiniLM
    lower-cases its input) otherwise cannot see capitalisation, the strongest
    surface cue of an inserted name. The token-type embedding is trained with
    the rest of the model.
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
        if case_feature:
            feat["token_type_ids"] = [int(wid is not None and words[wid][:1].isupper()) for wid in word_ids]
        if tags is not None:
            labels = []
            prev = None
            for wid in word_ids:
                labels.append(TAG2ID[tags[wid]] if wid is not None and wid != prev else -100)
                prev = wid
            feat["labels"] = labels
        out.append(feat)
    return out


def build_features(records: list[dict], tokenizer, max_length: int, stride: int, case_feature: bool = False) -> list[dict]:
    """Training windows (input_ids, attention_mask, labels[, token_type_ids]) of all records."""
    feats = []
    for r in records:
        for f in encode_words(tokenizer, r["words"], max_length, stride, tags=r["tags"], case_feature=case_feature):
            f.pop("word_ids")
            feats.append(f)
    return feats


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
