"""Calibration: choose a trained model's decoding policy on labelled validation articles.

Candidates: plain arg-max, then each decoding (:data:`corefix.model.decode.DECODINGS`)
at each threshold of :data:`corefix.model.metrics.THRESHOLDS`; for Viterbi
decoding, then each of :data:`SPLIT_PENALTIES` at its best threshold, and
glued copies on or off. Each decoding is compared at its own best settings
(Viterbi's penalty used to be tuned only where Viterbi had already won at
its threshold alone, which could leave a better Viterbi policy untried).
The policy with the best span score (``metric``: ``f1`` or ``f0.5``) is
written into the model card with every candidate's score. Given the
articles' groups (their damage profiles), the score is the mean of each
group's micro score, each profile counted once: pooled, the most numerous
profile decided the threshold, and a sparse one (the resolvers profile is
a small share of a mixture's validation articles) paid for it on its own
test set. With one group it is the pooled micro score.

Given clean articles (the validation articles' undamaged originals), the
threshold is then chosen by the one-standard-error rule (Breiman et al. 1984;
Hastie, Tibshirani and Friedman, *Elements of Statistical Learning*, 7.10):
among the thresholds whose span score is within one standard error of the
best (a bootstrap over the articles, each profile resampled on its own), the
one that flags the fewest clean articles (the best-scoring, then the nearest,
on a tie). On a few hundred validation articles neighbouring thresholds differ
by less than their noise, and the best one alone ignored what a threshold does to articles
that hold nothing to find: a model trained to flag less could be handed a
lower threshold that gave it back. Given ``prefer_threshold`` (the threshold of
the model a candidate would replace), that threshold is kept whenever it is
inside the band: a candidate moves off the incumbent's operating point only
where its validation score says so by more than its noise (docs/results.md
2026-12-07 (3): stage 10 lost six test sets by 0.03-0.6 points after the
rule moved it from 0.70 to 0.75 inside one standard error).

Last, the first-mention bias (:class:`corefix.model.decode.DecodePolicy`):
the best-scoring of :data:`FIRST_MENTION_BIASES` among those whose share of
the validation articles' first mentions flagged is, with 95 % confidence
(the one-sided upper bound of its Wilson interval), at most
:data:`FIRST_MENTION_LIMIT` (the lowest flag rate when none is). A name's
first mention is never a copy, and deleting it costs a reader the lede, so
this is a limit, not a trade; the bound, not the rate, keeps the choice
within it on articles the calibration did not see.

Then, given clean articles (the validation articles' undamaged originals),
the article gate, each of :data:`ARTICLE_GATES` with each of
:data:`GATE_DENSITIES` (sure spans per 100 words an article must hold): among
those whose span score is within :data:`GATE_COST` of the best, and within
:data:`GATE_COST` of no gate on each group of articles given (a damage
profile: a gate tuned on the pooled score could drop a sparse profile's
articles whole, unseen among the dense ones), the best-scoring one that flags
at most :data:`CLEAN_LIMIT` of the clean articles (the mildest on a tie),
else the one that flags the fewest.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..words import chunks
from .card import ModelCard
from .decode import DECODINGS, DecodePolicy, passes_gate, span_confidences
from .inference import Detector
from .metrics import (METRICS, THRESHOLDS, best_threshold, first_mention_flag_rate, flagged_share, micro_span_scores,
                      prf)

SPLIT_PENALTIES = (0.0, 0.25, 0.5, 0.75, 1.0)  # log-odds against two adjacent spans
FIRST_MENTION_BIASES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)  # log-odds for O on a capitalised word new to the article
FIRST_MENTION_LIMIT = 0.01  # the share of first mentions a chosen policy may flag (issue #22's target), at 95 %
FIRST_MENTION_CONFIDENCE = 0.95  # how sure the validation articles must make it (one-sided)
ARTICLE_GATES = (0.0, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999)  # P(inserted) some flag of an article must reach
GATE_DENSITIES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)  # sure spans per 100 words (0: one is enough)
GATE_COST = 0.01  # the span score a gate may cost on damaged articles, pooled and in each group
CLEAN_LIMIT = 0.02  # the share of clean articles with any flag that a chosen gate aims under
BOOTSTRAP_RESAMPLES = 200  # resamples of the validation articles behind the one-standard-error rule
BOOTSTRAP_SEED = 0  # the same articles give the same standard error, run after run


def choose_policy(gold: list[list[str]], predictions, metric: str = "f1",
                  texts: list[str] | None = None, clean=None, groups: list[str] | None = None,
                  prefer_threshold: float | None = None) -> tuple[DecodePolicy, dict]:
    """The best decoding policy for ``predictions`` against ``gold``, and every candidate's score.

    With the articles' ``texts``, the first-mention bias is chosen too; with predictions on ``clean``
    articles (no span to find), the article gate, held to its cost on each of the articles' ``groups``
    (one name per article, e.g. its damage profile) as well as on all of them. ``prefer_threshold``: the
    threshold kept when it is within one standard error of the best (with clean articles only).
    """
    _check_metric(metric)
    members = groups_with_spans(gold, groups)
    score_tags = profile_score(gold, metric, members)

    def score(policy):
        return score_tags([p.tags(policy) for p in predictions])

    argmax = DecodePolicy("independent", None)
    calibration = {"articles": len(gold), "metric": metric,
                   "average": "profiles" if len(members) > 1 else "pooled", "argmax_" + metric: score(argmax)}
    if len(members) > 1:
        calibration["profiles"] = {g: len(ix) for g, ix in members.items()}
    choice, best = argmax, calibration["argmax_" + metric]
    for decoding in DECODINGS:  # each decoding at its own best settings, then the best of them
        threshold, value = best_threshold(predictions, DecodePolicy(decoding), score_tags)
        calibration[decoding] = {"best_threshold": threshold, metric: value}
        policy = DecodePolicy(decoding, threshold)
        if decoding == "viterbi":  # at that threshold: the penalty on adjacent spans, then glued copies
            tried = {k: score(DecodePolicy("viterbi", threshold, k)) for k in SPLIT_PENALTIES}
            penalty = max(tried, key=lambda k: (tried[k], -k))
            policy = DecodePolicy("viterbi", threshold, penalty)
            calibration["viterbi"][f"split_penalty_{metric}"] = {str(k): v for k, v in tried.items()}
            glued = {g: score(dataclasses.replace(policy, glued_copies=g)) for g in (False, True)}
            policy = dataclasses.replace(policy, glued_copies=glued[True] > glued[False])  # only where it gains
            calibration["viterbi"][f"glued_copies_{metric}"] = {str(g): v for g, v in glued.items()}
            value = max(glued.values())
        if value > best:
            choice, best = policy, value
    if clean:
        choice = _one_se_threshold(gold, predictions, metric, clean, choice, calibration, members, score_tags,
                                   prefer_threshold)
    if texts is not None:
        choice = _first_mention_bias(gold, predictions, metric, texts, choice, calibration, score_tags)
    if clean:
        choice = _article_gate(gold, predictions, metric, clean, choice, calibration, groups)
    return choice, calibration


def groups_with_spans(gold: list[list[str]], groups: list[str] | None) -> dict[str, list[int]]:
    """Group name -> indices of its articles, for the groups (damage profiles) that hold a span to find."""
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups or []):
        members.setdefault(g, []).append(i)
    return {g: ix for g, ix in members.items() if any(t != "O" for i in ix for t in gold[i])}


def group_scores(gold: list[list[str]], metric: str, members: dict[str, list[int]]):
    """A function of predicted tags: group name -> the micro span ``metric`` over that group's articles."""
    def scores(tags):
        return {g: micro_span_scores([gold[i] for i in ix], [tags[i] for i in ix]).get(metric, 0.0) for g, ix in members.items()}
    return scores


def profile_score(gold: list[list[str]], metric: str, members: dict[str, list[int]]):
    """A function of predicted tags: the mean over ``members``' groups of each one's micro span ``metric``;
    the pooled micro score where there are fewer than two groups."""
    if len(members) < 2:
        return lambda tags: micro_span_scores(gold, tags).get(metric, 0.0)
    by_group = group_scores(gold, metric, members)
    return lambda tags: sum(by_group(tags).values()) / len(members)


def bootstrap_se(gold: list[list[str]], pred: list[list[str]], metric: str, members: dict[str, list[int]],
                 resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> float:
    """The bootstrap standard error of :func:`profile_score` (each group's micro span ``metric``, averaged):
    the articles of each group resampled with replacement, ``resamples`` times. Spans are counted per article
    once (seqeval's chunks), so a resample is a sum, not a new seqeval run."""
    counts = np.zeros((len(gold), 3))  # hits, predicted, gold spans of each article
    for i, (gt, pt) in enumerate(zip(gold, pred)):
        g, p = set(chunks(gt)), set(chunks(pt))
        counts[i] = len(g & p), len(p), len(g)
    groups = list(members.values()) if len(members) > 1 else [list(range(len(gold)))]
    rng = np.random.default_rng(seed)
    scores = np.zeros(resamples)
    for ix in groups:
        ix = np.asarray(ix)
        for r in range(resamples):
            scores[r] += prf(*counts[rng.choice(ix, size=len(ix))].sum(axis=0))[metric] / len(groups)
    return float(scores.std(ddof=1)) if resamples > 1 else 0.0


def _one_se_threshold(gold, predictions, metric, clean, choice: DecodePolicy, calibration: dict, members,
                      score_tags, prefer: float | None = None) -> DecodePolicy:
    if choice.threshold is None:  # arg-max has no threshold to move
        return choice
    tried, best_tags = {}, None
    candidates = {*THRESHOLDS, choice.threshold} | ({prefer} if prefer is not None else set())
    for th in sorted(candidates):  # each threshold decoded once
        policy = dataclasses.replace(choice, threshold=th)
        tags = [p.tags(policy) for p in predictions]
        tried[th] = (score_tags(tags), flagged_share([p.tags(policy) for p in clean]))
        if th == choice.threshold:
            best_tags = tags
    best = tried[choice.threshold][0]
    se = bootstrap_se(gold, best_tags, metric, members)
    band = [th for th, (v, _) in tried.items() if v >= best - se]
    threshold = min(band, key=lambda th: (tried[th][1], -tried[th][0], abs(th - choice.threshold)))
    if prefer is not None and prefer in band:  # the incumbent's operating point, unless the evidence says otherwise
        threshold = prefer
    calibration["one_se_threshold"] = {
        "clean_articles": len(clean), "standard_error": se, "best_threshold": choice.threshold, "best": best,
        "chosen": threshold, **({"preferred": prefer} if prefer is not None else {}),
        **{str(th): {metric: v, "clean_flag_rate": r} for th, (v, r) in tried.items()}}
    return dataclasses.replace(choice, threshold=threshold)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"unknown calibration metric {metric!r} (use {', '.join(METRICS)})")


def _article_gate(gold, predictions, metric, clean, choice: DecodePolicy, calibration: dict,
                  groups: list[str] | None = None) -> DecodePolicy:
    # the gate only filters decoded tags: decode once, note each article's span confidences, then gate
    ungated = dataclasses.replace(choice, article_gate=0.0, gate_density=0.0)
    damaged = [(tags, span_confidences(p.probs, tags)) for p in predictions for tags in [p.tags(ungated)]]
    cleaned = [(tags, span_confidences(p.probs, tags)) for p in clean for tags in [p.tags(ungated)]]
    members = groups_with_spans(gold, groups)
    scores_by_group = group_scores(gold, metric, members)

    def gated(items, gate, density):
        return [tags if passes_gate(conf, len(tags), gate, density) else ["O"] * len(tags) for tags, conf in items]

    candidates = [(0.0, 0.0)] + [(g, d) for g in ARTICLE_GATES if g > 0 for d in GATE_DENSITIES]
    tried = {}
    for gate, density in candidates:
        tags = gated(damaged, gate, density)
        flagged = flagged_share(gated(cleaned, gate, density))
        tried[gate, density] = (micro_span_scores(gold, tags).get(metric, 0.0), flagged, scores_by_group(tags))
    best = max(v for v, _, _ in tried.values())
    plain = tried[0.0, 0.0][2]
    affordable = [c for c, (v, _, by_group) in tried.items()
                  if v >= best - GATE_COST and all(by_group[g] >= plain[g] - GATE_COST for g in by_group)]
    within = [c for c in affordable if tried[c][1] <= CLEAN_LIMIT]
    gate, density = (max(within, key=lambda c: (tried[c][0], -c[0], -c[1])) if within
                     else min(affordable, key=lambda c: (tried[c][1], c[0], c[1])))
    calibration["article_gate"] = {
        "clean_articles": len(clean), "groups": {g: len(ix) for g, ix in members.items()},
        **{(str(g) if not d else f"{g}@{d}"): {metric: v, "clean_flag_rate": r, **({"by_group": b} if b else {})}
           for (g, d), (v, r, b) in tried.items()}}
    return dataclasses.replace(choice, article_gate=gate, gate_density=density)


def _first_mention_bias(gold, predictions, metric, texts, choice: DecodePolicy, calibration: dict,
                        score_tags) -> DecodePolicy:
    tried = {}
    for bias in FIRST_MENTION_BIASES:
        tags = [p.tags(dataclasses.replace(choice, first_mention_bias=bias)) for p in predictions]
        rate, firsts = first_mention_flag_rate(texts, gold, tags)
        tried[bias] = (score_tags(tags), rate, flag_rate_bound(rate, firsts))
    within = [b for b in tried if tried[b][2] <= FIRST_MENTION_LIMIT]
    bias = (max(within, key=lambda b: (tried[b][0], -b)) if within
            else min(tried, key=lambda b: (tried[b][1], -tried[b][0])))
    calibration["first_mention_bias"] = {str(b): {metric: v, "first_mention_flag_rate": r, "flag_rate_bound": u}
                                         for b, (v, r, u) in tried.items()}
    return dataclasses.replace(choice, first_mention_bias=bias)


def flag_rate_bound(rate: float, n: int, confidence: float = FIRST_MENTION_CONFIDENCE) -> float:
    """The one-sided upper ``confidence`` bound on a flag rate measured as ``rate`` of ``n`` (Wilson score
    interval, scipy's); 1.0 when nothing was measured."""
    if n <= 0:
        return 1.0
    from scipy.stats import binomtest

    interval = binomtest(round(rate * n), n).proportion_ci(2 * confidence - 1, method="wilson")
    return float(interval.high)


def calibrate(model_dir: str | Path, records: list[dict], metric: str = "f1",
              only_first_mention_bias: bool = False, prefer_threshold: float | None = None) -> ModelCard:
    """Choose the policy of the model in ``model_dir`` on ``records`` (labelled articles); rewrite its card.

    With ``only_first_mention_bias``, only the first-mention bias is chosen again, at the rest of the card's
    policy, which is kept with its calibration: a flag rate's bound needs more articles than the other knobs.
    ``prefer_threshold``: see :func:`choose_policy`.
    """
    _check_metric(metric)
    detector = Detector.load(model_dir)
    predictions = detector.predict([r["text"] for r in records])
    gold, texts = [r["tags"] for r in records], [r["text"] for r in records]
    groups = [r.get("profile") or "" for r in records]  # damage profiles: each counts once, and a gate's cost is held on each
    if only_first_mention_bias:
        calibration = dict(detector.card.calibration)
        score_tags = profile_score(gold, metric, groups_with_spans(gold, groups))
        policy = _first_mention_bias(gold, predictions, metric, texts, detector.card.policy, calibration, score_tags)
        calibration["first_mention_bias_articles"] = len(records)
    else:
        # the undamaged originals (in the damaged text's surface style): articles that must come back untouched
        clean = detector.predict([r["original"] for r in records if r.get("original")])
        policy, calibration = choose_policy(gold, predictions, metric, texts, clean, groups, prefer_threshold)
    card = detector.card.with_policy(policy, calibration)
    card.save(model_dir)
    return card
