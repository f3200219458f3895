"""Calibration: choose a trained model's decoding policy on labelled validation articles.

Candidates: plain arg-max, then each decoding (:data:`corefix.model.decode.DECODINGS`)
at each threshold of :data:`corefix.model.metrics.THRESHOLDS`; for Viterbi
decoding, then each of :data:`SPLIT_PENALTIES` at the chosen threshold. The
policy with the best micro span score (``metric``: ``f1`` or ``f0.5``) is
written into the model card with every candidate's score.
"""

from __future__ import annotations

from pathlib import Path

from .card import ModelCard
from .decode import DECODINGS, DecodePolicy
from .inference import Detector
from .metrics import best_threshold, micro, span_scores

SPLIT_PENALTIES = (0.0, 0.25, 0.5, 0.75, 1.0)  # log-odds against two adjacent spans
METRICS = ("f1", "f0.5")


def choose_policy(gold: list[list[str]], predictions, metric: str = "f1") -> tuple[DecodePolicy, dict]:
    """The best decoding policy for ``predictions`` against ``gold``, and every candidate's score."""
    if metric not in METRICS:
        raise ValueError(f"unknown calibration metric {metric!r} (use {', '.join(METRICS)})")

    def score(policy):
        return micro(span_scores(gold, [p.tags(policy) for p in predictions]), metric)

    argmax = DecodePolicy("independent", None)
    calibration = {"articles": len(gold), "metric": metric, "argmax_" + metric: score(argmax)}
    choice, best = argmax, calibration["argmax_" + metric]
    for decoding in DECODINGS:
        threshold, value = best_threshold(gold, predictions, DecodePolicy(decoding), metric=metric)
        calibration[decoding] = {"best_threshold": threshold, metric: value}
        if value > best:
            choice, best = DecodePolicy(decoding, threshold), value
    if choice.decoding == "viterbi":  # then at that threshold: the penalty on adjacent spans
        tried = {k: score(DecodePolicy("viterbi", choice.threshold, k)) for k in SPLIT_PENALTIES}
        penalty = max(tried, key=lambda k: (tried[k], -k))
        choice = DecodePolicy("viterbi", choice.threshold, penalty)
        calibration["viterbi"][f"split_penalty_{metric}"] = {str(k): v for k, v in tried.items()}
    return choice, calibration


def calibrate(model_dir: str | Path, records: list[dict], metric: str = "f1") -> ModelCard:
    """Choose the policy of the model in ``model_dir`` on ``records`` (labelled articles); rewrite its card."""
    detector = Detector.load(model_dir)
    predictions = detector.predict([r["text"] for r in records])
    policy, calibration = choose_policy([r["tags"] for r in records], predictions, metric)
    card = detector.card.with_policy(policy, calibration)
    card.save(model_dir)
    return card
