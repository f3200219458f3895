"""Score a detector on a labelled JSONL split, beside the baselines and the oracle.

For each system (the input copied as it is, the rule baseline, the model, the
oracle with the gold spans) it reports:

- strict IOB2 span precision/recall/F1 per label and micro-averaged (seqeval)
  and word-level F1 of "inserted or not";
- the word error rate of the restored text against ``original`` (jiwer), every
  system's spans restored by the same code as prediction
  (:func:`corefix.model.restore.restore_text`, the pronoun rules, copies dropped);
- the accuracy of the pronoun put back for gold ``SUB`` spans whose overwritten
  text was a pronoun, among those the system found exactly;
- the flag rate on first mentions (:func:`corefix.model.metrics.first_mentions`): a name's first
  appearance in an article is never a copy, and deleting it destroys the
  article's lede, so this rate should be practically zero.

With a model's span heads, :func:`restoration_table` compares the ways of
restoring (the rules, the heads in each gap mode, the oracles); the heads read
the spans through :func:`corefix.model.heads.annotate_articles`, as prediction
and head fitting do. Printing and writing the reports of one or several files:
:mod:`corefix.model.reports`.
"""

from __future__ import annotations

import json
from pathlib import Path

import jiwer

from ..words import chunks, tags_to_spans, word_offsets, word_range
from .baseline import rule_tags
from .decode import DecodePolicy
from .metrics import (by_span_length, clean_flag_rate, fill_scores, first_mention_flag_rate, first_mentions, prf,
                      pronoun_scores, span_scores, threshold_curve, word_scores)
from .heads import annotate_articles
from .pronouns import prefetch_slots
from .options import GAP_MODES
from .restore import restore_text


def wer_parts(references: list[str], hypotheses: list[str]) -> dict:
    """Word error rate of ``hypotheses`` against ``references`` (jiwer; words split at whitespace, as jiwer
    does), and its deletions, insertions and substitutions per 100 reference words."""
    pairs = [(r, h) for r, h in zip(references, hypotheses) if r.strip()]
    if not pairs:
        return {"wer": 0.0, "deletions": 0.0, "insertions": 0.0, "substitutions": 0.0, "words": 0}
    out = jiwer.process_words([r for r, _ in pairs], [h if h.strip() else "<empty>" for _, h in pairs])
    n = out.hits + out.substitutions + out.deletions
    return {"wer": float(out.wer), "deletions": 100 * out.deletions / n, "insertions": 100 * out.insertions / n,
            "substitutions": 100 * out.substitutions / n, "words": n}


def restoration_scores(records: list[dict], spans: list[list[dict]], gaps: str = "drop",
                       fill_threshold: float | None = None) -> dict:
    """How readable the restoration of ``spans`` is (:func:`corefix.model.restore.restore_text`):
    WER against ``original`` with its parts; accuracy of the pronoun put back for the gold ``SUB`` spans
    whose overwritten text was a pronoun and that the system found exactly (``pronoun_found`` of
    ``pronoun_total``, :func:`corefix.model.metrics.pronoun_scores`); and, where copies were
    filled, how many filled words were right (:func:`corefix.model.metrics.fill_scores`)."""
    restored, replaced = [], []
    for r, sp in zip(records, spans):
        out, with_repl = restore_text(r["text"], sp, gaps, fill_threshold)
        restored.append(out)
        replaced.append(with_repl)
    filled = [[{"start": s["start"], "end": s["end"], "fill": s["replacement"]}
               for s in sp if s["label"] == "DUP" and s["replacement"]] for sp in replaced]
    pronouns = pronoun_scores(records, replaced)
    wer = wer_parts([r["original"] for r in records], restored)
    result = {"wer": wer["wer"], "wer_parts": wer, "pronoun_accuracy": pronouns["accuracy"],
              "pronoun_found": pronouns["found"], "pronoun_total": pronouns["gold"]}
    if gaps != "drop":
        result["fill"] = fill_scores(records, filled) if gaps == "fill" else None
    return result


def score_system(records: list[dict], pred_tags: list[list[str]], pred_spans: list[list[dict]] | None = None) -> dict:
    """All figures for one system's word tags (or exact character spans, for the oracle), restored by the rules."""
    gold_tags = [r["tags"] for r in records]
    if pred_spans is None:
        pred_spans = [tags_to_spans(word_offsets(r["text"]), t) for r, t in zip(records, pred_tags)]
    first_rate, firsts = first_mention_flag_rate([r["text"] for r in records], gold_tags, pred_tags)
    clean_rate, cleans = clean_flag_rate(gold_tags, pred_tags)
    return {
        "spans": span_scores(gold_tags, pred_tags),
        "words": word_scores(gold_tags, pred_tags),
        **restoration_scores(records, pred_spans),
        "first_mention_flag_rate": first_rate,
        "first_mentions": firsts,
        "clean_flag_rate": clean_rate,
        "clean_articles": cleans,
    }


def evaluate(records: list[dict], predictions=None, policy: DecodePolicy | None = None, heads=None) -> dict:
    """Figures for the input, the rule baseline, the oracle and (given its
    :class:`~corefix.model.inference.WordPredictions`, decoded under ``policy``) the model.

    With the model's span heads (:class:`~corefix.model.heads.SpanHeads`; the
    predictions must then carry word vectors), ``restoration`` compares the
    readability of each way of restoring (:func:`restoration_table`).
    """
    input_tags = [["O"] * len(r["tags"]) for r in records]
    baseline_tags = [rule_tags(r["text"])[1] for r in records]
    policy = policy or DecodePolicy()
    tags = [p.tags(policy) for p in predictions] if predictions is not None else None
    prefetch_slots(_substitution_slots(records, [baseline_tags] + ([tags] if tags is not None else [])))
    result = {
        "articles": len(records),
        "input": score_system(records, input_tags),
        "rule_baseline": score_system(records, baseline_tags),
        "oracle": score_system(records, [r["tags"] for r in records], [r["spans"] for r in records]),
    }
    if predictions is not None:
        gold = [r["tags"] for r in records]
        model = result["model"] = score_system(records, tags)
        model["threshold"] = policy.threshold
        model["decoding"] = policy.decoding
        model["split_penalty"] = policy.split_penalty
        model["first_mention_bias"] = policy.first_mention_bias
        model["article_gate"], model["gate_density"] = policy.article_gate, policy.gate_density
        model["by_span_length"] = by_span_length(gold, tags)
        model["by_span_length_label"] = {label: by_span_length(gold, tags, label) for label in ("DUP", "SUB")}
        model["by_drift"] = by_drift(records, tags)
        model["threshold_curve"] = threshold_curve(gold, predictions, policy)
        if heads is not None:
            result["restoration"] = restoration_table(records, predictions, policy, heads, result)
    return result


def _substitution_slots(records: list[dict], systems: list[list[list[str]]]):
    """``(text, start, end)`` of every ``SUB`` span of the gold and of each system's word tags: the slots
    whose pronoun restoration will ask spaCy about (:func:`corefix.model.pronouns.prefetch_slots`)."""
    for k, r in enumerate(records):
        offsets = word_offsets(r["text"])
        spans = list(r["spans"]) + [s for tags in systems for s in tags_to_spans(offsets, tags[k])]
        yield from ((r["text"], s["start"], s["end"]) for s in spans if s["label"] == "SUB")


def restoration_table(records: list[dict], predictions, policy: DecodePolicy, heads, result: dict) -> dict:
    """Readability of each way of restoring, beside the input, the rule baseline and two oracles:
    the model's spans with the rules (pronoun rules, copies dropped) and with the span heads in each gap
    mode; the gold spans with the rules (gold spans deleted) and with the heads; the gold spans with their
    true overwritten words put back (WER 0 by construction of the data: a check of the data, not a target)."""
    from ..data.simulate import undo  # the gold inverse of the damage: evaluation only, never inference

    texts = [r["text"] for r in records]
    model_spans = annotate_articles(heads, texts, predictions, [p.spans(policy) for p in predictions])
    gold_spans = annotate_articles(heads, texts, predictions, [[dict(g) for g in r["spans"]] for r in records])
    rows = {"input": _restoration_row(result["input"]), "rule baseline": _restoration_row(result["rule_baseline"]),
            "model, rules": _restoration_row(result["model"])}
    for gaps in GAP_MODES:
        rows[f"model, heads, gaps {gaps}"] = restoration_scores(records, model_spans, gaps, heads.fill_threshold)
    rows["oracle: gold spans deleted, rules"] = _restoration_row(result["oracle"])
    for gaps in ("drop", "fill"):
        rows[f"oracle: gold spans, heads, gaps {gaps}"] = restoration_scores(records, gold_spans, gaps, heads.fill_threshold)
    wer = wer_parts([r["original"] for r in records], [undo(r["text"], r["spans"]) for r in records])
    rows["oracle: overwritten words put back"] = {"wer": wer["wer"], "wer_parts": wer, "pronoun_accuracy": None}
    return {"fill_threshold": heads.fill_threshold, "rows": rows}


def _restoration_row(scores: dict) -> dict:
    return {k: scores[k] for k in ("wer", "wer_parts", "pronoun_accuracy", "pronoun_found", "pronoun_total") if k in scores}


def format_restoration(table: dict) -> str:
    """A markdown table of :func:`restoration_table`: WER and its parts per 100 original words, pronoun
    accuracy, and for filled gaps the share of filled words that were right and of destroyed words put back."""
    rows = [f"Fill threshold (chosen on validation data): {table['fill_threshold']}", "",
            "| restoration | WER | deletions /100 | insertions /100 | substitutions /100 | pronoun acc. "
            "| filled words right | destroyed words put back |", "|---|---|---|---|---|---|---|---|"]
    for name, r in table["rows"].items():
        w, pa, fill = r["wer_parts"], r.get("pronoun_accuracy"), r.get("fill")
        rows.append(f"| {name} | {w['wer']:.4f} | {w['deletions']:.2f} | {w['insertions']:.2f} | {w['substitutions']:.2f} | "
                    f"{'-' if pa is None else f'{pa:.3f}'} | "
                    + (f"{fill['precision']:.3f} ({fill['right_words']}/{fill['filled_words']}) | "
                       f"{fill['recall']:.3f} ({fill['right_words']}/{fill['destroyed_words']}) |" if fill else "- | - |"))
    return "\n".join(rows)


def by_drift(records: list[dict], pred_tags: list[list[str]]) -> dict:
    """Recall of gold spans by how far their rewrite drifted (0 = in place; "tail" = overflow or glued)."""
    counts: dict[str, list[int]] = {}
    for r, pt in zip(records, pred_tags):
        pred = set(chunks(pt))
        offsets = word_offsets(r["text"])
        for s in r["spans"]:
            a, b = word_range(offsets, s["start"], s["end"])
            if a == b:
                continue
            drift = s.get("drift", 0)
            key = "tail" if drift is None else str(drift)
            hit = (s["label"], a, b) in pred
            counts.setdefault(key, [0, 0])
            counts[key][0] += hit
            counts[key][1] += 1
    return {k: {"recall": h / n, "gold": n} for k, (h, n) in sorted(counts.items())}


def per_article(records: list[dict], pred_tags: list[list[str]]) -> list[dict]:
    """Each article's span F1 with its missed and spurious spans (character offsets)."""
    out = []
    for r, pt in zip(records, pred_tags):
        gold, pred = set(chunks(r["tags"])), set(chunks(pt))
        offsets = word_offsets(r["text"])
        hit = len(gold & pred)
        # an article with nothing to find and nothing found is perfect
        f1 = prf(hit, len(pred), len(gold))["f1"] if gold or pred else 1.0

        def chars(spans):
            return [{"start": offsets[a][0], "end": offsets[b - 1][1], "label": lb} for lb, a, b in sorted(spans, key=lambda x: x[1])]

        out.append({"id": r["id"], "f1": f1, "gold": len(gold), "missed": chars(gold - pred), "spurious": chars(pred - gold)})
    return out


def blockquotes(markdown: str) -> list[str]:
    """The text of each blockquote of a markdown page (consecutive ``> `` lines, indented or not, joined by newlines)."""
    quotes, cur = [], []
    for line in markdown.splitlines() + [""]:
        line = line.lstrip(" ")  # a quote inside a list item is indented
        if line.startswith(">"):
            cur.append(line[2:] if line.startswith("> ") else line[1:])
        elif cur:
            text = "\n".join(cur)
            if text.strip():
                quotes.append(text)
            cur = []
    return quotes


def probe(texts: list[str], predictions, policy: DecodePolicy) -> dict:
    """What a model flags in unlabelled texts, and how often it flags a first mention (:func:`~corefix.model.metrics.first_mentions`)."""
    items, firsts, flagged = [], 0, 0
    for text, p in zip(texts, predictions):
        tags = p.tags(policy)
        fm = first_mentions(text)
        firsts += len(fm)
        flagged += sum(tags[i] != "O" for i in fm)
        spans = [{"text": text[s["start"]:s["end"]], "label": s["label"], "score": s["score"]} for s in p.spans(policy)]
        items.append({"text": text, "flagged": spans})
    return {"items": items, "first_mentions": firsts, "first_mentions_flagged": flagged,
            "first_mention_flag_rate": flagged / firsts if firsts else 0.0}


SYSTEMS = (("input", "input as is"), ("rule_baseline", "rule baseline"), ("model", "model"), ("oracle", "oracle"))


def format_table(result: dict) -> str:
    """A markdown table of the main figures, one row per system."""
    rows = ["| system | micro P | micro R | micro F1 | micro F0.5 | SUB F1 | DUP F1 | word F1 | WER | pronoun acc. "
            "| first mentions flagged | clean articles flagged |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, name in SYSTEMS:
        if key not in result:
            continue
        r = result[key]
        sp = r["spans"]
        micro = sp.get("micro", {"precision": 0, "recall": 0, "f1": 0, "f0.5": 0})
        pa = r["pronoun_accuracy"]
        rows.append(
            f"| {name} | {micro['precision']:.3f} | {micro['recall']:.3f} | {micro['f1']:.3f} | {micro['f0.5']:.3f} | "
            f"{sp.get('SUB', {}).get('f1', 0):.3f} | {sp.get('DUP', {}).get('f1', 0):.3f} | "
            f"{r['words']['f1']:.3f} | {r['wer']:.4f} | {'-' if pa is None else f'{pa:.3f}'} | "
            f"{100 * r['first_mention_flag_rate']:.2f} % of {r['first_mentions']} | {_clean_cell(r)} |")
    return "\n".join(rows)


def _clean_cell(r: dict) -> str:
    """The share of clean articles flagged, or "-" where the data holds none (older results hold no count)."""
    n = r.get("clean_articles", 0)
    return f"{100 * r['clean_flag_rate']:.1f} % of {n}" if n else "-"


def _one_word_recall(m: dict, label: str) -> str:
    """Recall of one-word spans of ``label`` (``DUP``: copies; ``SUB``: substitutions), or "-" where there are
    none (or the result predates the split: its ``by_span_length`` mixed both labels)."""
    one = m.get("by_span_length_label", {}).get(label, {}).get("1")
    return f"{one['recall']:.3f}" if one and one["gold"] else "-"


def format_summary(results: dict[str, dict]) -> str:
    """One row per evaluated data file: the model beside the input, the rule baseline and the oracle."""
    rows = ["| data | articles | model P | model R | model F1 | model F0.5 | word F1 | 1-word copies R "
            "| 1-word SUB R | first mentions flagged | clean articles flagged | rule F1 | WER input | WER model "
            "| WER oracle |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        m = r.get("model")
        micro = m["spans"].get("micro", {}) if m else {}
        cells = ([f"{micro.get(k, 0):.3f}" for k in ("precision", "recall", "f1", "f0.5")]
                 + [f"{m['words']['f1']:.3f}", _one_word_recall(m, "DUP"), _one_word_recall(m, "SUB"),
                    f"{100 * m['first_mention_flag_rate']:.2f} %", _clean_cell(m)] if m else ["-"] * 9)
        rule = r["rule_baseline"]["spans"].get("micro", {}).get("f1", 0)
        rows.append(f"| {name} | {r['articles']} | " + " | ".join(cells) + f" | {rule:.3f} | {r['input']['wer']:.4f} | "
                    + (f"{m['wer']:.4f}" if m else "-") + f" | {r['oracle']['wer']:.4f} |")
    return "\n".join(rows)


def _length_table(lengths: dict) -> list[str]:
    """Markdown rows of :func:`corefix.model.metrics.by_span_length`'s figures, header included."""
    return ["| words | precision | recall | F1 | gold | predicted |", "|---|---|---|---|---|---|"] + [
        f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['gold']} | {v['predicted']} |"
        for k, v in lengths.items()]


def write_report(result: dict, out_dir: str | Path, title: str = "corefix evaluation") -> Path:
    """``metrics.json``, plots and a markdown report in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    figures = []
    model = result.get("model")
    if model:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        lengths = model["by_span_length"]
        axes[0].bar(list(lengths), [v["f1"] for v in lengths.values()], color="#4c72b0")
        axes[0].set(title="span F1 by length (words)", ylim=(0, 1), xlabel="words")
        labels = [k for k in ("SUB", "DUP", "micro") if k in model["spans"]]
        systems = [k for k, _ in SYSTEMS if k in result and k != "input"]
        for j, sysname in enumerate(systems):
            axes[1].bar([i + 0.27 * j for i in range(len(labels))],
                        [result[sysname]["spans"].get(lb, {}).get("f1", 0) for lb in labels], width=0.27, label=sysname)
        axes[1].set_xticks([i + 0.27 for i in range(len(labels))], labels)
        axes[1].set(title="span F1 by label", ylim=(0, 1))
        axes[1].legend(fontsize=7)
        curve = model["threshold_curve"]
        axes[2].plot([c["threshold"] for c in curve], [c["precision"] for c in curve], label="precision")
        axes[2].plot([c["threshold"] for c in curve], [c["recall"] for c in curve], label="recall")
        axes[2].plot([c["threshold"] for c in curve], [c["f1"] for c in curve], label="F1")
        axes[2].set(title="micro span P/R vs threshold", xlabel="threshold on P(inserted)", ylim=(0, 1))
        axes[2].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "plots.png", dpi=80)
        plt.close(fig)
        figures.append("plots.png")
    lines = [f"# {title}", "", f"{result['articles']} articles.", "", format_table(result), ""]
    if "restoration" in result:
        lines += ["## Restoration (WER against the original; parts per 100 original words)", "",
                  format_restoration(result["restoration"]), ""]
    if model:
        lines += ["## By span length (model)", "", *_length_table(model["by_span_length"]), ""]
        for label, name in (("DUP", "misplaced copies"), ("SUB", "substitutions")):
            lines += [f"By span length, {name} only ({label}):", "",
                      *_length_table(model.get("by_span_length_label", {}).get(label, {})), ""]
        lines += ["## Recall by drift (model)", "", "| drift | recall | gold spans |", "|---|---|---|"]
        for k, v in model["by_drift"].items():
            lines.append(f"| {k} | {v['recall']:.3f} | {v['gold']} |")
        lines.append("")
    lines += [f"![plots]({f})" for f in figures]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
