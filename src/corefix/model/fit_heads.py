"""Fit the span heads (:mod:`corefix.model.heads`) of a trained detector on labelled articles.

1. The detector reads training articles once and keeps each word's vector
   (its encoder stays frozen: detection does not change).
2. Each gold span of those articles is an example: a ``SUB`` that replaced a
   pronoun labelled with that pronoun, a ``DUP`` with the string it destroyed
   (one of the :data:`~corefix.model.heads.GAP_VOCAB` commonest, ``NOTHING``
   or ``OTHER``). Both heads are trained on them with cross-entropy.
3. On validation articles the detector *predicts* its spans, the heads read
   them, and the fill threshold is the lowest score at which the filled words
   are right at least :data:`FILL_PRECISION` of the time
   (:func:`corefix.model.metrics.fill_scores`): a wrong word is worse than a
   marked gap. When no threshold reaches it, the card says never fill.

Heads and threshold are written beside the model (``heads.safetensors`` and
the card's ``heads``).
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import numpy as np
import torch

from .heads import (GAP_MIN_COUNT, GAP_VOCAB, NEVER_FILL, NOTHING, OTHER, PRONOUN_CLASSES, SpanHeads, annotate_articles,
                    span_input)
from .inference import Detector
from .metrics import fill_scores, pronoun_scores

FILL_PRECISION = 0.8  # filled words must be right this often on validation articles
FILL_THRESHOLDS = [round(0.05 * k, 2) for k in range(6, 20)] + [0.97, 0.98, 0.99]
MIN_FILLED_WORDS = 20  # a threshold is judged on at least this many filled validation words


def gap_vocabulary(records: list[dict], size: int = GAP_VOCAB, min_count: int = GAP_MIN_COUNT) -> list[str]:
    """The gap head's classes: ``NOTHING``, ``OTHER`` and the strings gold copies destroyed most often."""
    counts = collections.Counter(g["overwritten"] for r in records for g in r["spans"]
                                 if g["label"] == "DUP" and g["overwritten"].strip())
    return [NOTHING, OTHER] + [s for s, c in counts.most_common(size) if c >= min_count]


def pronoun_class(overwritten: str) -> int | None:
    """The pronoun head's class for a gold ``SUB`` that replaced ``overwritten`` (None: no pronoun)."""
    word = overwritten.strip().lower()
    return PRONOUN_CLASSES.index(word) if word in PRONOUN_CLASSES else None


def gap_class(overwritten: str, index: dict[str, int]) -> int:
    """The gap head's class for a gold ``DUP`` that destroyed ``overwritten`` (``index``: class -> number)."""
    if not overwritten.strip():
        return index[NOTHING]
    return index.get(overwritten, index[OTHER])


def span_examples(records: list[dict], predictions, gap_classes: list[str]):
    """``(X_sub, y_sub, X_dup, y_dup)``: the heads' input and class of each gold span."""
    index = {c: i for i, c in enumerate(gap_classes)}
    xs, ys, xd, yd = [], [], [], []
    for r, p in zip(records, predictions):
        if p.vectors is None:
            continue
        for g in r["spans"]:
            if g["label"] == "SUB":
                k = pronoun_class(g["overwritten"])
                if k is not None:
                    xs.append(span_input(p.vectors, p.offsets, r["text"], g["start"], g["end"], "SUB"))
                    ys.append(k)
            else:
                xd.append(span_input(p.vectors, p.offsets, r["text"], g["start"], g["end"]))
                yd.append(gap_class(g["overwritten"], index))
    width = len(xs[0]) if xs else len(xd[0]) if xd else 0

    def arr(x):
        return np.stack(x) if x else np.zeros((0, width), dtype=np.float32)

    return arr(xs), np.array(ys, dtype=np.int64), arr(xd), np.array(yd, dtype=np.int64)


def train_head(head: torch.nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 20, lr: float = 1e-3,
               batch_size: int = 256, seed: int = 0) -> list[float]:
    """Cross-entropy training of one head (AdamW, one-cycle schedule); the mean loss of each epoch."""
    if len(x) == 0:
        return []
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    losses = []
    head.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            loss = torch.nn.functional.cross_entropy(head(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(x))
    head.eval()
    return losses


def fills(annotated: list[list[dict]], threshold: float) -> list[list[dict]]:
    """Per article, the predicted copies that ``threshold`` fills: ``start``, ``end``, ``fill``."""
    return [[{"start": s["start"], "end": s["end"], "fill": s["gap"]["words"]} for s in spans
             if s["label"] == "DUP" and s.get("gap") and s["gap"]["words"] and s["gap"]["score"] >= threshold]
            for spans in annotated]


def choose_fill_threshold(records: list[dict], annotated: list[list[dict]]) -> tuple[float, dict]:
    """The lowest threshold whose filled words are right at least :data:`FILL_PRECISION` of the time
    (:data:`~corefix.model.heads.NEVER_FILL` when none is), and every candidate's scores."""
    table = {t: fill_scores(records, fills(annotated, t)) for t in FILL_THRESHOLDS}
    good = [t for t, s in table.items() if s["filled_words"] >= MIN_FILLED_WORDS and s["precision"] >= FILL_PRECISION]
    return (min(good) if good else NEVER_FILL), {str(t): s for t, s in table.items()}


def fit_heads(model_dir: str | Path, train_records: list[dict], validation_records: list[dict],
              pronoun_epochs: int = 40, gap_epochs: int = 10, seed: int = 0, progress: bool = True,
              log=print) -> SpanHeads:
    """Fit, calibrate and save the span heads of the model in ``model_dir``; rewrite its card."""
    torch.manual_seed(seed)
    detector = Detector.load(model_dir)
    t0 = time.monotonic()
    preds = detector.predict([r["text"] for r in train_records], progress=progress, vectors=True)
    classes = gap_vocabulary(train_records)
    xs, ys, xd, yd = span_examples(train_records, preds, classes)
    hidden = next(p.vectors.shape[1] for p in preds if p.vectors is not None)
    del preds
    log(f"span heads: {len(xs)} SUB and {len(xd)} DUP examples from {len(train_records)} articles, "
        f"{len(classes) - 2} destroyed strings known ({time.monotonic() - t0:.0f} s to read them)")
    heads = SpanHeads.new(hidden, classes)
    loss_p = train_head(heads.pronoun, xs, ys, epochs=pronoun_epochs, seed=seed)
    loss_g = train_head(heads.gap, xd, yd, epochs=gap_epochs, seed=seed)
    val_preds = detector.predict([r["text"] for r in validation_records], progress=progress, vectors=True)
    annotated = annotate_articles(heads, [r["text"] for r in validation_records], val_preds,
                                  [detector.spans(p) for p in val_preds])
    threshold, table = choose_fill_threshold(validation_records, annotated)
    heads.fill_threshold = threshold
    heads.info = {
        "train_articles": len(train_records), "validation_articles": len(validation_records),
        "sub_examples": len(xs), "dup_examples": len(xd),
        "epochs": {"pronoun": pronoun_epochs, "gap": gap_epochs}, "seed": seed,
        "final_loss": {"pronoun": loss_p[-1] if loss_p else None, "gap": loss_g[-1] if loss_g else None},
        "fill_precision_target": FILL_PRECISION, "fill_thresholds": table,
        "validation_pronoun": pronoun_scores(validation_records, annotated, key="pronoun"),
    }
    heads.save(model_dir)
    card = detector.card
    card.heads = heads.card_fields()
    card.save(model_dir)
    chosen = table.get(str(threshold))
    log(f"span heads: fill threshold {threshold}"
        + (f" (validation: {chosen['precision']:.3f} of filled words right, {chosen['recall']:.3f} of destroyed words put back)"
           if chosen else " (no threshold reaches the precision target: gaps are never filled)")
        + f"; pronoun accuracy on exactly found SUBs {heads.info['validation_pronoun']['accuracy']}")
    return heads
