"""Scores shared by training, calibration, evaluation and the ``evaluate`` metric module.

Span scores are seqeval's (strict IOB2, CoNLL conventions); breakdowns count
chunks with seqeval's chunker (:func:`corefix.words.chunks`); word scores are
scikit-learn's binary precision/recall/F. F0.5 (precision weighted twice as
much as recall, the grammatical-error-correction convention) stands beside F1.
"""

from __future__ import annotations

import dataclasses

from seqeval.metrics import classification_report
from seqeval.scheme import IOB2
from sklearn.metrics import precision_recall_fscore_support

from ..lexicon import TITLE_ABBREVIATIONS, is_pronoun
from ..words import chunks, split_words
from .decode import DecodePolicy

METRICS = ("f1", "f0.5")  # what calibration can maximise: span F1, or F0.5 (precision counts twice)


def f_beta(precision: float, recall: float, beta: float = 1.0) -> float:
    b2 = beta * beta
    denom = b2 * precision + recall
    return (1 + b2) * precision * recall / denom if denom else 0.0


def prf(hits: int, predicted: int, gold: int) -> dict:
    """Precision, recall, F1 and F0.5 from counts (0 where undefined)."""
    p = hits / predicted if predicted else 0.0
    r = hits / gold if gold else 0.0
    return {"precision": p, "recall": r, "f1": f_beta(p, r), "f0.5": f_beta(p, r, 0.5)}


def span_scores(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Strict IOB2 span precision/recall/F1 (and F0.5) per label and micro-averaged.

    Labels with no gold and no predicted span are reported with zero support;
    with no span at all (clean articles left clean) there is nothing to report.
    """
    if not any(t != "O" for tags in (*gold, *pred) for t in tags):
        return {}
    report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    out = {}
    for key, vals in report.items():
        name = "micro" if key == "micro avg" else key
        if name in ("macro avg", "weighted avg"):
            continue
        p, r = float(vals["precision"]), float(vals["recall"])
        out[name] = {"precision": p, "recall": r, "f1": float(vals["f1-score"]), "f0.5": f_beta(p, r, 0.5),
                     "support": int(vals["support"])}
    return out


def micro_span_scores(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """The ``micro`` entry of :func:`span_scores` (precision, recall, F1, F0.5, support), the same figures
    in a fraction of the time. Strict IOB2 span counts add up article by article: where both of an article's
    sequences are valid IOB2 (each ``I-X`` after ``B-X`` or ``I-X``), seqeval's strict mode finds exactly the
    chunks of its default chunker (:func:`corefix.words.chunks`), which are counted; the other articles' spans
    are seqeval's strict ``Entities``. For the many scorings of threshold curves and calibration
    (``tests/test_evaluate.py`` checks that the two agree)."""
    from seqeval.scheme import IOB2, Entities

    if not any(t != "O" for tags in (*gold, *pred) for t in tags):
        return {}
    hits = predicted = true = 0
    strict = []
    for k, (g, p) in enumerate(zip(gold, pred)):
        if not (_valid_iob2(g) and _valid_iob2(p)):
            strict.append(k)
            continue
        gold_chunks, pred_chunks = set(chunks(g)), set(chunks(p))
        hits += len(gold_chunks & pred_chunks)
        predicted += len(pred_chunks)
        true += len(gold_chunks)
    if strict:
        gold_entities = Entities([gold[k] for k in strict], IOB2).entities
        pred_entities = Entities([pred[k] for k in strict], IOB2).entities
        for g, p in zip(gold_entities, pred_entities):
            gold_spans, pred_spans = {e.to_tuple() for e in g}, {e.to_tuple() for e in p}
            hits += len(gold_spans & pred_spans)
            predicted += len(pred_spans)
            true += len(gold_spans)
    return {**prf(hits, predicted, true), "support": true}


def _valid_iob2(tags: list[str]) -> bool:
    prev = "O"
    for t in tags:
        if t != "O" and (t[:2] not in ("B-", "I-") or (t[0] == "I" and prev[2:] != t[2:])):
            return False
        prev = t
    return True


def word_scores(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Word-level precision/recall/F1 of "inserted or not", whatever the label."""
    pairs = [(g != "O", p != "O") for gs, ps in zip(gold, pred) for g, p in zip(gs, ps)]
    g = [a for a, _ in pairs]
    p = [b for _, b in pairs]
    support = sum(g)
    if not any(g) and not any(p):
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    precision, recall, f1, _ = precision_recall_fscore_support(g, p, average="binary", zero_division=0)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": support}


def micro(scores: dict, metric: str = "f1") -> float:
    return scores.get("micro", {}).get(metric, 0.0)


THRESHOLDS = [round(0.05 * k, 2) for k in range(1, 20)]


def threshold_curve(gold: list[list[str]], predictions, policy: DecodePolicy,
                    thresholds=THRESHOLDS) -> list[dict]:
    """Micro span precision/recall/F1/F0.5 of word predictions as ``policy``'s threshold moves."""
    curve = []
    for th in thresholds:
        at = dataclasses.replace(policy, threshold=th)
        s = micro_span_scores(gold, [p.tags(at) for p in predictions])
        curve.append({"threshold": th, **{k: s.get(k, 0.0) for k in ("precision", "recall", "f1", "f0.5")}})
    return curve


def best_threshold(predictions, policy: DecodePolicy, score, thresholds=THRESHOLDS) -> tuple[float, float]:
    """The threshold whose decoded tags ``score`` highest (the lowest such one on ties) and that score;
    ``score`` is a function of the predicted tags of every article (calibration's is
    :func:`corefix.model.calibrate.profile_score`: the mean over damage profiles, or the pooled micro score)."""
    curve = {th: score([p.tags(dataclasses.replace(policy, threshold=th)) for p in predictions]) for th in thresholds}
    best = max(curve, key=lambda th: (curve[th], -th))
    return best, curve[best]


def _length_key(n: int) -> str:
    return "4+" if n >= 4 else str(n)


def by_span_length(gold_tags: list[list[str]], pred_tags: list[list[str]], label: str | None = None) -> dict:
    """Span precision/recall/F1 by span length in words (1, 2, 3, 4+); a hit matches label and boundaries.
    ``label``: only gold and predicted spans of that label (``DUP``: misplaced copies; ``SUB``: substitutions)."""
    counts: dict[str, list[int]] = {}
    for gt, pt in zip(gold_tags, pred_tags):
        gold, pred = set(chunks(gt)), set(chunks(pt))
        if label is not None:
            gold, pred = {s for s in gold if s[0] == label}, {s for s in pred if s[0] == label}
        for kind, spans in ((0, gold), (1, pred)):
            for span in spans:  # (label, first word, end word)
                c = counts.setdefault(_length_key(span[2] - span[1]), [0, 0, 0])  # gold, predicted, hits
                c[kind] += 1
                c[2] += kind == 1 and span in gold
    out = {}
    for key in sorted(counts):
        g, p, h = counts[key]
        scores = prf(h, p, g)
        out[key] = {"precision": scores["precision"], "recall": scores["recall"], "f1": scores["f1"],
                    "gold": g, "predicted": p}
    return out


_SENTENCE_OPENERS = {".", "!", "?", '"', "“", "‘", "(", ":", "—", "-", "–"}


def first_mentions(text: str, gold_tags: list[str] | None = None) -> list[int]:
    """Word indexes of the first appearance of each name word in ``text``.

    A name word starts with a capital letter and does not open a sentence or
    a line (where any word is capitalised); it is a first mention when no
    earlier genuine word of the article is the same word (case-insensitive).
    Words inside gold inserted spans (``gold_tags`` not ``O``) are neither
    first mentions nor evidence of an earlier one; without gold tags every
    word counts as genuine.
    """
    offsets, words = split_words(text)
    seen: set[str] = set()
    out = []
    for i, (s, e) in enumerate(offsets):
        if gold_tags is not None and gold_tags[i] != "O":
            continue
        word = text[s:e]
        opens = i == 0 or words[i - 1] in _SENTENCE_OPENERS or "\n" in text[offsets[i - 1][1]:s]
        if opens and i >= 2 and words[i - 1] == "." and (len(words[i - 2]) == 1 or words[i - 2] in TITLE_ABBREVIATIONS):
            opens = False  # the full stop of an initial or a title ("V. Putin", "Mr. Putin") ends no sentence
        if word[:1].isupper() and word[:1].isalpha() and not opens and word.lower() not in seen:
            out.append(i)
        seen.add(word.lower())
    return out


def first_mention_flag_rate(texts: list[str], gold_tags: list[list[str]] | None, pred_tags: list[list[str]]) -> tuple[float, int]:
    """Share of first mentions (:func:`first_mentions`) that ``pred_tags`` flag, and how many there are."""
    firsts = flagged = 0
    for k, (text, tags) in enumerate(zip(texts, pred_tags)):
        for i in first_mentions(text, gold_tags[k] if gold_tags is not None else None):
            firsts += 1
            flagged += tags[i] != "O"
    return (flagged / firsts if firsts else 0.0), firsts


def gold_by_position(record: dict) -> dict[tuple[int, int], dict]:
    """A record's gold spans by ``(start, end)``, each also under its start without leading whitespace
    (a span found from word tags cannot see the whitespace an overflow copy starts with)."""
    text, out = record["text"], {}
    for g in record["spans"]:
        out[(g["start"], g["end"])] = g
        body = text[g["start"]:g["end"]]
        out.setdefault((g["start"] + len(body) - len(body.lstrip()), g["end"]), g)
    return out


def pronoun_scores(records: list[dict], spans: list[list[dict]], key: str = "replacement") -> dict:
    """How often the pronoun put in place of a ``SUB`` (each span's ``key``: ``replacement``, or the
    pronoun head's ``pronoun``) is the pronoun the representative replaced, over the gold ``SUB`` spans
    that replaced a pronoun and that ``spans`` found exactly (:func:`gold_by_position`): ``accuracy``,
    ``found``, and ``gold`` (all such gold spans, found or not)."""
    right = found = gold_total = 0
    for r, sp in zip(records, spans):
        gold = gold_by_position(r)
        for s in sp:
            g = gold.get((s["start"], s["end"]))
            if s["label"] == "SUB" and g is not None and g["label"] == "SUB" and is_pronoun(g["overwritten"]):
                found += 1
                right += str(s.get(key) or "").lower() == g["overwritten"].strip().lower()
        gold_total += sum(g["label"] == "SUB" and is_pronoun(g["overwritten"]) for g in r["spans"])
    return {"accuracy": right / found if found else None, "found": found, "gold": gold_total}


def fill_scores(records: list[dict], filled: list[list[dict]]) -> dict:
    """How well filled gaps put back what the copies destroyed.

    ``filled``: per record, the spans that were filled (``start``, ``end``,
    ``fill``: the string put in place of the copy). A filled word counts as
    right when it is the word at the same place of the destroyed string of a
    gold copy at exactly that span (words as :func:`corefix.words.split_words`
    cuts them, so a full stop is a word). Precision: right / filled words;
    recall: right / every word the gold copies destroyed.
    """
    right = n_filled = destroyed = 0
    for r, spans in zip(records, filled):
        gold = gold_by_position(r)
        destroyed += sum(len(split_words(g["overwritten"])[1]) for g in r["spans"] if g["label"] == "DUP")
        for s in spans:
            words = split_words(s["fill"])[1]
            g = gold.get((s["start"], s["end"]))
            truth = split_words(g["overwritten"])[1] if g is not None and g["label"] == "DUP" else []
            n_filled += len(words)
            right += sum(a == b for a, b in zip(words, truth))
    p = right / n_filled if n_filled else 0.0
    return {"precision": p, "recall": right / destroyed if destroyed else 0.0, "right_words": right,
            "filled_words": n_filled, "destroyed_words": destroyed}


def flagged_share(pred_tags: list[list[str]]) -> float:
    """Share of the articles in which ``pred_tags`` flag any word (0 for no article)."""
    return sum(any(t != "O" for t in tags) for tags in pred_tags) / len(pred_tags) if pred_tags else 0.0


def clean_flag_rate(gold_tags: list[list[str]], pred_tags: list[list[str]]) -> tuple[float, int]:
    """Share of clean articles (no gold span) in which ``pred_tags`` flag any word, and how many are clean."""
    clean = [pt for gt, pt in zip(gold_tags, pred_tags) if all(t == "O" for t in gt)]
    return flagged_share(clean), len(clean)
