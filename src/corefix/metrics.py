"""Span and token scores (seqeval, CoNLL conventions) shared by training and evaluation."""

from __future__ import annotations

from seqeval.metrics import classification_report
from seqeval.scheme import IOB2


def span_scores(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Strict IOB2 span precision/recall/F1 per label and micro-averaged.

    Labels with no gold and no predicted span are reported with zero support.
    """
    report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    out = {}
    for key, vals in report.items():
        name = "micro" if key == "micro avg" else key
        if name in ("macro avg", "weighted avg"):
            continue
        out[name] = {
            "precision": float(vals["precision"]),
            "recall": float(vals["recall"]),
            "f1": float(vals["f1-score"]),
            "support": int(vals["support"]),
        }
    return out


def token_scores(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Word-level precision/recall/F1 of "inserted or not", whatever the label."""
    tp = fp = fn = 0
    for g_seq, p_seq in zip(gold, pred):
        for g, p in zip(g_seq, p_seq):
            gi, pi = g != "O", p != "O"
            tp += gi and pi
            fp += pi and not gi
            fn += gi and not pi
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}


THRESHOLDS = [round(0.05 * k, 2) for k in range(1, 20)]


def threshold_curve(gold: list[list[str]], predictions, thresholds=THRESHOLDS, decoding: str | None = None) -> list[dict]:
    """Micro span precision/recall/F1 of word predictions as the threshold on P(inserted) moves.

    ``decoding``: how tags are read off the probabilities (``WordPredictions.tags``; None: their default).
    """
    curve = []
    for th in thresholds:
        s = span_scores(gold, [p.tags(th, decoding=decoding) for p in predictions]).get("micro", {})
        curve.append({"threshold": th, "precision": s.get("precision", 0.0), "recall": s.get("recall", 0.0),
                      "f1": s.get("f1", 0.0)})
    return curve


def best_threshold(gold: list[list[str]], predictions, thresholds=THRESHOLDS,
                   decoding: str | None = None) -> tuple[float, float]:
    """The threshold with the highest micro span F1 (the lowest such one on ties) and that F1."""
    best = max(threshold_curve(gold, predictions, thresholds, decoding), key=lambda c: (c["f1"], -c["threshold"]))
    return best["threshold"], best["f1"]
